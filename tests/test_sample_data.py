"""Fast checks of the files in sample_data/ (see sample_data/README.md).

They read only the committed files; none of the generators' sources
(qm9pack, scanpy's bundled data) is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SMI = SAMPLE / "molecules.smi"
H5AD = SAMPLE / "pbmc_small.h5ad"
CSV = SAMPLE / "wine.csv"

WINE_FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium",
    "total_phenols", "flavanoids", "nonflavanoid_phenols", "proanthocyanins",
    "color_intensity", "hue", "od280_od315_of_diluted_wines", "proline",
]


@pytest.mark.parametrize(
    "name",
    ["molecules.smi", "pbmc_small.h5ad", "wine.csv", "README.md",
     "make_molecules.py", "make_expression.py", "make_table.py"],
)
def test_file_exists(name):
    assert (SAMPLE / name).is_file()


# --- molecules.smi ---------------------------------------------------------

def _read_smi():
    lines = SMI.read_text().splitlines()
    header = lines[0].split()
    rows = [line.split() for line in lines[1:] if line.strip()]
    return header, rows


def test_molecules_header_and_shape():
    header, rows = _read_smi()
    assert header == ["smiles", "id", "heat_capacity", "band_gap"]
    assert 500 <= len(rows) <= 2000
    assert all(len(r) == 4 for r in rows)
    ids = [r[1] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("qm9_") and i[4:].isdigit() for i in ids)
    # QM9 indices run from 1 to 133885
    assert all(1 <= int(i[4:]) <= 133885 for i in ids)


def test_molecules_parse_with_rdkit():
    Chem = pytest.importorskip("rdkit.Chem")
    _, rows = _read_smi()
    bad = [r[0] for r in rows if Chem.MolFromSmiles(r[0]) is None]
    assert bad == []
    # QM9: at most 9 heavy atoms, all from C, N, O, F
    for r in rows:
        mol = Chem.MolFromSmiles(r[0])
        assert 1 <= mol.GetNumHeavyAtoms() <= 9
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O", "F"}


def test_molecules_properties_plausible():
    _, rows = _read_smi()
    cv = np.array([float(r[2]) for r in rows])
    gap = np.array([float(r[3]) for r in rows])
    assert np.isfinite(cv).all() and np.isfinite(gap).all()
    # QM9 Cv at 298.15 K spans about 6.0-47.0 cal/mol/K
    assert cv.min() >= 6.0 and cv.max() <= 47.0
    assert cv.std() > 1.0  # a real spread, not a constant
    # QM9 HOMO-LUMO gaps (Hartree) span about 0.02-0.63
    assert gap.min() > 0.0 and gap.max() < 0.7


def test_molecules_readable_by_pandas():
    df = pd.read_csv(SMI, sep=r"\s+")
    assert list(df.columns) == ["smiles", "id", "heat_capacity", "band_gap"]
    assert df["heat_capacity"].dtype.kind == "f"


# --- pbmc_small.h5ad -------------------------------------------------------

def test_expression_h5ad():
    ad = pytest.importorskip("anndata")
    a = ad.read_h5ad(H5AD)
    assert 300 <= a.n_obs <= 500
    assert 150 <= a.n_vars <= 250
    X = a.X
    assert isinstance(X, np.ndarray) and X.dtype == np.float32
    assert np.isfinite(X).all()
    assert a.obs_names.is_unique and a.var_names.is_unique
    assert "bulk_labels" in a.obs
    labels = a.obs["bulk_labels"].astype(str)
    assert labels.nunique() >= 5 and not labels.isna().any()
    for col in ("n_counts", "percent_mito"):
        assert col in a.obs
        v = a.obs[col].to_numpy(dtype=float)
        assert np.isfinite(v).all()
    assert "log1p" in a.layers
    L = np.asarray(a.layers["log1p"])
    assert L.shape == X.shape and (L >= 0).all()


def test_expression_file_small():
    assert H5AD.stat().st_size < 1_000_000


# --- wine.csv --------------------------------------------------------------

def test_wine_csv():
    df = pd.read_csv(CSV)
    assert list(df.columns) == ["id"] + WINE_FEATURES + ["cultivar"]
    assert len(df) == 178
    assert df["id"].is_unique and df["id"].iloc[0] == "wine_000"
    assert set(df["cultivar"]) == {"class_0", "class_1", "class_2"}
    feats = df[WINE_FEATURES]
    assert all(feats[c].dtype.kind == "f" for c in WINE_FEATURES)
    assert not feats.isna().any().any()
    assert math.isclose(df.loc[0, "alcohol"], 14.23)
