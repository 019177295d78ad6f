"""Fits that scale (issue 18, item 4): the decoder stage runs the decoder alone on cached latent parts, and the
default --epochs keeps large data within a step budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.data.selfies_tokens import EOS
from archetool.training import loop
from conftest import MOLECULES, run_cli
from test_molecule_generation import FIT, mol_model  # noqa: F401 -- mol_model: a tiny deepaa model with a decoder


def test_decoder_stage_loss_equals_the_tokens_term_of_the_full_loss(mol_model, monkeypatch):
    from archetool.model import ArchetoolModel
    from archetool.models.sequence_decoder import DecoderStage

    module = ArchetoolModel.load(mol_model).module
    stage = DecoderStage(module).eval()
    rng = np.random.default_rng(0)
    # the last row is a molecule over the decoder's max_length (a row of padding): left out of both losses
    arrays = {"x": rng.normal(size=(6, module.n_features)).astype(np.float32), "side": rng.normal(size=(6, 1)),
              "tokens": np.array([[3, 4, EOS, 0]] * 3 + [[5, 3, 4, EOS]] * 2 + [[0, 0, 0, 0]])}
    cached = stage.training_arrays(arrays)
    assert set(cached) == set(arrays) | {"condition_mu", "condition_sigma"} and len(cached["condition_mu"]) == 6
    to_batch = lambda a: {k: torch.as_tensor(v, dtype=torch.long if v.dtype.kind in "iu" else torch.float32)  # noqa: E731
                          for k, v in a.items()}
    torch.manual_seed(3)
    full = module.loss_terms(to_batch(arrays))["tokens"]
    monkeypatch.setattr(module, "loss_terms", lambda batch: pytest.fail("the cached stage ran the whole model"))
    torch.manual_seed(3)
    alone = stage.loss_terms(to_batch(cached))
    assert alone["loss"] is alone["tokens"] and torch.allclose(alone["tokens"], full, rtol=1e-5, atol=1e-6)
    stage.train()
    alone = stage.loss_terms(to_batch(cached))
    alone["loss"].backward()
    assert all(p.grad is None for p in module.encoder.parameters())
    assert any(p.grad is not None for p in module.sequence_decoder.parameters())


def test_default_epochs_keeps_small_data_at_100_and_large_data_within_the_budget():
    assert loop.default_epochs(900, 128) == 100  # the README's 1,000 molecules
    assert loop.default_epochs(12_800, 128) == 100
    assert loop.default_epochs(45_000, 128) == 29  # 50k molecules, 10 % held out
    assert loop.default_epochs(10**7, 128) == loop.MIN_EPOCHS
    assert loop.default_epochs(45_000, 128, step_budget=3_510) == 10


@given(st.integers(1, 2_000_000), st.integers(2, 1024))
@settings(max_examples=200, deadline=None)
def test_default_epochs_is_bounded_and_spends_at_most_one_epoch_past_the_budget(n_train, batch_size):
    epochs = loop.default_epochs(n_train, batch_size)
    steps = max(1, n_train // batch_size)
    assert loop.MIN_EPOCHS <= epochs <= loop.MAX_EPOCHS
    assert epochs == loop.MIN_EPOCHS or (epochs - 1) * steps < loop.STEP_BUDGET
    assert loop.default_epochs(n_train + batch_size, batch_size) <= epochs  # more data: never more epochs


def _fit_args(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)]) + "\n")
    return path, [a for a in FIT if a not in ("--epochs", "4")]


def test_fit_without_epochs_runs_the_budgets_epochs_and_says_so(tmp_path, monkeypatch):
    path, args = _fit_args(tmp_path)
    monkeypatch.setattr(loop, "STEP_BUDGET", 3)
    result = run_cli("fit", path, "--side", "heat_capacity", "--out", tmp_path / "m", "--patience", "0", *args)
    assert result.exit_code == 0, result.output
    n_train = len(MOLECULES) - round(0.1 * len(MOLECULES))
    epochs = loop.default_epochs(n_train, 32, step_budget=3)
    assert epochs < loop.MAX_EPOCHS and len(pd.read_csv(tmp_path / "m" / "history.csv")) == epochs
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["options"]["epochs"] == epochs == config["train"]["epochs"]
    assert f"{n_train} training rows: {epochs} epochs of" in result.stderr
    decoder = pd.read_csv(tmp_path / "m" / "decoder_history.csv")
    assert len(decoder) == config["summary"]["decoder_epochs_run"] and decoder["val_tokens"].gt(0).all()
    assert decoder["val_tokens"].min() == pytest.approx(config["summary"]["decoder_val_tokens"], abs=1e-4)
    # a refit without the decoder stage leaves no decoder history of the previous fit behind
    result = run_cli("fit", path, "--side", "heat_capacity", "--out", tmp_path / "m", "--overwrite", "--decoder-epochs", "0",
                     "--epochs", "2", *args)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "m" / "decoder_history.csv").exists()
