"""ModelAnalysis.points_table and .endpoint, on a stand-in model (no training)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from archetool.analysis.base import ModelAnalysis
from archetool.errors import ArchetoolError


class TwoCodes(ModelAnalysis):
    """Codes (2, 2) named by the classes; decode_table: f0 = z0 + z1 (+ the class id when given)."""

    def codes(self, model) -> np.ndarray:
        return np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)

    def decode_table(self, model, latent, labels=None) -> pd.DataFrame:
        f0 = latent.sum(1) + (0 if labels is None else np.asarray(labels))
        return pd.DataFrame({"f0": f0})


MODEL = SimpleNamespace(module=SimpleNamespace(latent_dim=2),
                        prep=SimpleNamespace(id_column="id", classes=["lo", "hi"]))


def rows(smiles: bool) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ["m0", "m1", "m2"], "z0": [0.0, 1.0, 9.0], "z1": [0.0, 0.0, 0.0]})
    if smiles:
        frame.insert(1, "smiles", ["C", "CC", "CCC"])
    return frame


def test_points_table_front_nearest_molecules_then_decoded():
    latent = np.array([[0.2, 0.0], [8.0, 0.0]], np.float32)
    front = pd.DataFrame({"step": [0, 1]})
    table = TwoCodes().points_table(MODEL, front, latent, rows(smiles=True), n_nearest=2, labels=[1, 2])
    assert table.columns.tolist() == ["step", "nearest_id_1", "nearest_smiles_1", "nearest_distance_1",
                                      "nearest_id_2", "nearest_smiles_2", "nearest_distance_2", "f0"]
    assert table["nearest_id_1"].tolist() == ["m0", "m2"] and table["nearest_smiles_2"].tolist() == ["CC", "CC"]
    np.testing.assert_allclose(table["nearest_distance_1"], [0.2, 1.0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table["f0"], [1.2, 10.0], rtol=1e-5, atol=1e-6)  # decode_table got labels=[1, 2]


def test_points_table_without_molecules_has_no_nearest_columns():
    latent = np.zeros((3, 2), np.float32)
    front = pd.DataFrame({"sample": [0, 1, 2]})
    for r in (rows(smiles=False), None):
        table = TwoCodes().points_table(MODEL, front, latent, r, n_nearest=3)
        assert table.columns.tolist() == ["sample", "f0"] and len(table) == 3


def test_endpoint_code_name_then_row_id_else_clear_error():
    analysis = TwoCodes()
    np.testing.assert_array_equal(analysis.endpoint(MODEL, "hi", None), [10.0, 0.0])
    np.testing.assert_array_equal(analysis.endpoint(MODEL, "m1", rows(smiles=False)), [1.0, 0.0])
    with pytest.raises(ArchetoolError, match=r"endpoint 'zzz' is neither a class label nor a sample id of the data; "
                                             r"use one of: lo, hi, m0, m1, m2"):
        analysis.endpoint(MODEL, "zzz", rows(smiles=False))
