"""Negative-binomial likelihood for raw counts (--likelihood nb), the count-data warning, and pictures."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST_FIT, make_adata, run_cli
from test_bad_input import assert_clean_error


def test_nb_log_prob_matches_scipy_and_uses_the_row_library_size():
    from scipy.stats import nbinom

    from archetool.models.likelihoods import NegativeBinomialLikelihood

    lik = NegativeBinomialLikelihood(3)
    with torch.no_grad():
        lik.log_theta.copy_(torch.log(torch.tensor([0.5, 2.0, 10.0])))
    counts = torch.tensor([[0.0, 3.0, 7.0], [12.0, 0.0, 1.0]])
    out = torch.tensor([[0.1, -0.3, 0.8], [1.0, 0.0, -1.0]])
    got = lik.log_prob(out, counts).detach().numpy()
    mu = torch.softmax(out, -1).numpy() * counts.sum(-1, keepdim=True).numpy()
    theta = np.array([0.5, 2.0, 10.0])
    expected = nbinom.logpmf(counts.numpy(), theta, theta / (theta + mu))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    x = torch.log1p(counts)  # model space
    np.testing.assert_allclose(lik.nll(out, x).detach().numpy(), -expected.sum(1), rtol=1e-5, atol=1e-4)


def test_nb_mean_is_log1p_counts_at_the_training_library_size():
    from archetool.models.likelihoods import NegativeBinomialLikelihood

    lik = NegativeBinomialLikelihood(2).train()
    x = torch.log1p(torch.tensor([[10.0, 30.0], [50.0, 10.0]]))
    lik.nll(torch.zeros(2, 2), x)  # first training batch sets the library to its mean (50)
    assert float(lik.library) == pytest.approx(50.0)
    np.testing.assert_allclose(torch.expm1(lik.mean(torch.zeros(1, 2))).detach().numpy(), [[25.0, 25.0]], rtol=1e-5)


def _counts_h5ad(tmp_path, negative=False):
    adata = make_adata(n=60, genes=10)
    adata.X = adata.layers["counts"].copy()
    if negative:
        adata.X[4, 2] = -1.5
    path = tmp_path / ("neg.h5ad" if negative else "counts.h5ad")
    adata.write_h5ad(path)
    return path


def test_fit_nb_on_counts_log1p_input_and_embed_reproduces_training_rows(tmp_path):
    path = _counts_h5ad(tmp_path)
    out = tmp_path / "nb"
    result = run_cli("fit", path, "--model", "nvae", "--label", "cell_type", "--likelihood", "nb", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["likelihood"] == "nb" and prep["x_transform"] == "log1p" and prep["x_mean"] is None
    state = torch.load(out / "weights.pt", weights_only=True)
    assert state["likelihood.log_theta"].shape == (10,) and float(state["likelihood.library"]) > 0
    result = run_cli("embed", out, path, "--out", tmp_path / "e.parquet")
    assert result.exit_code == 0, result.output
    emb = pd.read_parquet(tmp_path / "e.parquet")
    rows = pd.read_parquet(out / "training_rows.parquet")
    z = [c for c in emb.columns if c.startswith("z")]
    np.testing.assert_allclose(emb[z].to_numpy(), rows[z].to_numpy(), rtol=1e-5, atol=1e-5)
    # decoded prototypes come back as counts (non-negative, a typical cell's depth)
    result = run_cli("archetypes", out, "--out", tmp_path / "arch")
    assert result.exit_code == 0, result.output
    genes = pd.read_csv(tmp_path / "arch" / "archetypes.csv")[[f"GENE{i}" for i in range(10)]].to_numpy()
    assert (genes >= 0).all() and genes.sum(1) == pytest.approx(np.full(3, float(state["likelihood.library"])), rel=1e-3)


def test_nb_on_negative_values_is_one_clear_line(tmp_path):
    path = _counts_h5ad(tmp_path, negative=True)
    result = run_cli("fit", path, "--likelihood", "nb", "--out", tmp_path / "m", *FAST_FIT)
    assert_clean_error(result, "neg.h5ad: --likelihood nb needs non-negative counts", "'cell4'", "-1.5",
                       "'GENE2'", "--likelihood gaussian")
    assert not (tmp_path / "m" / "config.json").exists()


def test_nb_model_refuses_negative_values_at_embed(tmp_path):
    path = _counts_h5ad(tmp_path)
    out = tmp_path / "nb"
    assert run_cli("fit", path, "--likelihood", "nb", "--k", "2", "--out", out, *FAST_FIT).exit_code == 0
    result = run_cli("embed", out, _counts_h5ad(tmp_path, negative=True), "--out", tmp_path / "e.csv")
    assert_clean_error(result, "neg.h5ad: --likelihood nb needs non-negative counts", "'cell4'")
    assert not (tmp_path / "e.csv").exists()


def test_raw_counts_without_likelihood_warn_and_suggest_nb(tmp_path):
    path = _counts_h5ad(tmp_path)
    result = run_cli("fit", path, "--k", "2", "--out", tmp_path / "g", *FAST_FIT)
    assert result.exit_code == 0, result.output
    assert "look like raw counts" in result.stderr and "--likelihood nb" in result.stderr
    result = run_cli("fit", path, "--k", "2", "--likelihood", "gaussian", "--out", tmp_path / "g2", *FAST_FIT)
    assert "look like raw counts" not in result.stderr  # an explicit choice is respected silently


def test_api_fit_nb_on_an_anndata_layer(tmp_path):
    import archetool

    adata = make_adata(n=45, genes=8)
    model = archetool.fit(adata, layer="counts", likelihood="nb", k=2, epochs=2, hidden=[8], out=str(tmp_path / "m"),
                          progress_bar=False)
    assert model.prep.layer == "counts" and model.prep.x_transform == "log1p"
    table = model.embed(adata)
    assert adata.obsm["X_deepaa"].shape == (45, 1) and adata.obsm["deepaa_weights"].shape == (45, 2)
    np.testing.assert_allclose(adata.obsm["deepaa_weights"].sum(1), 1, rtol=1e-5)
    assert len(table) == 45


def test_molecule_depictions_have_no_overlapping_atoms():
    from archetool.analysis.plots import depict, molecule_png

    smiles = ["C1CCCCCCCCCCCC1", "CC(C)(C)C(C)(C)C(C)(C)C", "c1ccc2c(c1)ccc1ccccc12",
              "O=C(O)C1=CC=CC=C1OC(C)=O", "CC12CCC3C(CCC4=CC(=O)CCC34C)C1CCC2O", "bad("]
    mols = depict(smiles)
    assert mols[-1] is None
    for mol in mols[:-1]:
        xy = mol.GetConformer().GetPositions()[:, :2]
        d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)[np.triu_indices(len(xy), 1)]
        bond = np.median([np.linalg.norm(xy[b.GetBeginAtomIdx()] - xy[b.GetEndAtomIdx()]) for b in mol.GetBonds()])
        assert d.min() > 0.5 * bond, Chem_smiles(mol)
    png = molecule_png(smiles, [f"m{i}" for i in range(6)], 3, cell=(200, 150))
    import io

    import matplotlib.pyplot as plt

    image = plt.imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (300, 600) and image[..., :3].std() > 0.05  # drawn, not blank


def Chem_smiles(mol):
    from rdkit import Chem

    return Chem.MolToSmiles(mol)
