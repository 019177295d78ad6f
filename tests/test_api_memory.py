"""Python API on in-memory objects (AnnData, DataFrame, array), model methods, archetool.pl figures."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import MOLECULES, make_adata, make_table, run_cli
from archetool.errors import InputError

FAST = dict(epochs=3, batch_size=32, hidden=[16], progress_bar=False)


@pytest.fixture(scope="module")
def adata_nvae(tmp_path_factory):
    import archetool

    adata = make_adata(n=60, genes=12, sparse=True)
    out = tmp_path_factory.mktemp("nv") / "model"
    model = archetool.fit(adata, model="nvae", label="cell_type", out=str(out), **FAST)
    return adata, model, out


def test_fit_on_anndata_records_it_and_embeds_into_obsm(adata_nvae, tmp_path):
    adata, model, out = adata_nvae
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == "AnnData (60 cells x 12 genes)" and config["options"]["label"] == "cell_type"
    before = adata.X.copy()
    table = model.embed(adata)
    assert (adata.X != before).nnz == 0  # the input is not modified
    z = adata.obsm["X_nvae"]
    assert z.shape == (60, model.module.latent_dim) and z.dtype == np.float32
    np.testing.assert_allclose(z, table[[f"z{j}" for j in range(z.shape[1])]].to_numpy(), rtol=1e-6)
    assert list(table["id"]) == list(adata.obs_names)
    assert isinstance(adata.obs["nvae_pred_label"].dtype, pd.CategoricalDtype)
    assert list(adata.obs["nvae_pred_label"].cat.categories) == ["B", "NK", "T"]
    assert list(adata.obs["nvae_pred_label"].astype(str)) == list(table["pred_label"])
    # the same numbers as embedding the file written from it (one code path)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    pd.testing.assert_frame_equal(table, model.embed(str(path)), rtol=1e-5, atol=1e-5)
    fresh = make_adata(n=60, genes=12, sparse=True)
    model.embed(fresh, inplace=False)
    assert "X_nvae" not in fresh.obsm and "nvae_pred_label" not in fresh.obs


def test_model_methods_return_the_cli_tables(adata_nvae, tmp_path):
    _, model, out = adata_nvae
    sample = model.sample(n=5, label="B", seed=3)
    assert list(sample["cell_type"]) == ["B"] * 5 and "GENE0" in sample.columns
    pd.testing.assert_frame_equal(sample, model.sample(n=5, label="B", seed=3))
    result = run_cli("sample", out, "--n", "5", "--label", "B", "--seed", "3", "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), sample, check_dtype=False, rtol=1e-5, atol=1e-6)
    line = model.interpolate("B", "T", steps=4)
    assert list(line["t"]) == pytest.approx([0, 1 / 3, 2 / 3, 1]) and line["cell_type"].iloc[0] == "B"
    result = run_cli("interpolate", out, "--start", "B", "--end", "T", "--steps", "4", "--out", tmp_path / "i.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "i.csv"), line, check_dtype=False, rtol=1e-5, atol=1e-6)
    codes = model.archetypes()
    result = run_cli("archetypes", out, "--out", tmp_path / "arch")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "arch" / "archetypes.csv"), codes, check_dtype=False,
                                  rtol=1e-5, atol=1e-6)
    assert list(codes["cell_type"]) == ["B", "NK", "T"] and codes["n_samples"].sum() == 60


def test_pl_figures_return_figures_and_draw_on_given_axes(adata_nvae):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import archetool

    adata, model, _ = adata_nvae
    fig = archetool.pl.kl_bars(model)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].patches) == model.module.latent_dim
    fig2, (ax1, ax2) = plt.subplots(1, 2)
    assert archetool.pl.kl_bars(model, data=adata, ax=ax1) is fig2 and len(ax1.patches) == model.module.latent_dim
    assert "AnnData (60 cells x 12 genes), labels from 'cell_type'" in ax1.get_title()
    assert archetool.pl.code_heatmap(model, "distances", ax=ax2) is fig2 and ax2.images
    plt.close("all")


def test_deepaa_on_a_dataframe_matches_the_csv_path(tmp_path):
    import archetool

    frame = make_table(n=80)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    a = archetool.fit(frame, side="y", k=3, out=str(tmp_path / "a"), seed=1, **FAST)
    b = archetool.fit(str(path), side="y", k=3, out=str(tmp_path / "b"), seed=1, **FAST)
    pd.testing.assert_frame_equal(a.embed(frame), b.embed(str(path)), rtol=1e-5, atol=1e-5)
    assert a.embed(frame)["id"].tolist() == frame["id"].tolist()
    import matplotlib

    matplotlib.use("Agg")
    fig = archetool.pl.simplex(a, data=frame, color="cls")
    assert fig.axes[0].get_legend() is not None  # a categorical colour gets a legend
    with pytest.raises(Exception, match="color='nope' is not a column"):
        archetool.pl.simplex(a, color="nope")
    table = a.archetypes()
    assert list(table["archetype"]) == ["a0", "a1", "a2"] and "pred_y" in table.columns
    grid = a.interpolate(grid=2)
    assert len(grid) == 6 and np.allclose(grid[["a0", "a1", "a2"]].sum(1), 1)


def test_numpy_array_needs_feature_names_and_embeds_by_name(tmp_path):
    import archetool

    frame = make_table(n=60)
    x = frame[[f"f{i}" for i in range(8)]].to_numpy()
    with pytest.raises(InputError, match=r"array 60x8: a numpy array needs feature_names="):
        archetool.fit(x, out=str(tmp_path / "m"), **FAST)
    names = [f"f{i}" for i in range(8)]
    model = archetool.fit(x, feature_names=names, k=2, out=str(tmp_path / "m"), **FAST)
    shuffled = frame[names[::-1]]  # columns are matched by name
    np.testing.assert_allclose(model.embed(shuffled)["z0"], model.embed(pd.DataFrame(x, columns=names))["z0"], rtol=1e-5, atol=1e-6)


def test_dataframe_of_smiles_fits_molecules(tmp_path):
    import archetool

    frame = pd.DataFrame({"smiles": [s for s, _ in MOLECULES], "cv": [c for _, c in MOLECULES]},
                         index=[f"m{i}" for i in range(len(MOLECULES))])
    model = archetool.fit(frame, side="cv", k=2, n_bits=64, out=str(tmp_path / "mol"), **FAST)
    assert model.prep.featurizer["name"] == "morgan"
    table = model.embed(frame)
    assert table["id"].tolist() == list(frame.index)  # a labelled index names the rows
    smiles, legends = __import__("archetool.analysis", fromlist=["adapter"]).adapter("deepaa").exemplar_molecules(
        model, model.training_rows, 2)
    assert len(smiles) == 4 and legends[0].startswith("a0 #1 m") and "cv=" in legends[0]


def test_in_memory_default_out_is_a_fresh_temporary_directory(caplog, tmp_path, monkeypatch):
    import tempfile

    import archetool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frame = make_table(n=40)
    with caplog.at_level("INFO", logger="archetool"):
        model = archetool.fit(frame, k=2, **FAST)
    assert model.directory.name.startswith("archetool-deepaa-") and (model.directory / "config.json").is_file()
    assert any("in-memory data and no out=" in r.getMessage() for r in caplog.records)
    # one directory: the one locked during the fit is the one the model is saved to
    assert [d.name for d in tmp_path.iterdir() if d.name.startswith("archetool-")] == [model.directory.name]


# --- bad input ------------------------------------------------------------------------------------
def test_anndata_side_not_in_obs_is_one_clear_line():
    import archetool

    with pytest.raises(InputError) as err:
        archetool.fit(make_adata(n=30, genes=5), side="nope", **FAST)
    assert str(err.value) == ("AnnData (30 cells x 5 genes): side obs column 'nope' not found; columns are: "
                              "cell_type, n_counts (use side= with one of them)")


def test_anndata_unknown_layer():
    import archetool

    with pytest.raises(InputError, match=r"AnnData \(30 cells x 5 genes\): layer 'raw' not found; layers are: counts"):
        archetool.fit(make_adata(n=30, genes=5), layer="raw", **FAST)


def test_dataframe_without_numeric_or_smiles_columns_is_one_clear_line():
    import archetool

    frame = pd.DataFrame({"name": ["a", "b", "c"], "colour": ["red", "blue", "red"]})
    with pytest.raises(InputError) as err:
        archetool.fit(frame, **FAST)
    assert str(err.value) == ("DataFrame (3 rows x 2 columns): no numeric columns and no SMILES column "
                              "(columns: name, colour); pass numeric features, or name the SMILES column with smiles_column=")


def test_dataframe_with_a_repeated_column_name_is_one_clear_line():
    """A repeated name (also 1 and "1", equal as text) is ambiguous for --side/--label and for embed's matching
    by name; it was a TypeError from pandas."""
    import archetool

    frame = pd.DataFrame(np.arange(24.0).reshape(6, 4), columns=["a", "b", "a", "c"])
    with pytest.raises(InputError) as err:
        archetool.fit(frame, **FAST)
    assert str(err.value) == ("DataFrame (6 rows x 4 columns): the column name 'a' occurs more than once (columns 1 "
                              "and 3); column names must be unique: rename one of them")
    frame = pd.DataFrame(np.arange(12.0).reshape(6, 2), columns=[1, "1"])
    with pytest.raises(InputError, match="the column name '1' occurs more than once"):
        archetool.fit(frame, **FAST)


def test_unsupported_object_is_one_clear_line():
    import archetool

    with pytest.raises(InputError, match="cannot read a list: pass a file path, an AnnData, a pandas DataFrame"):
        archetool.fit([[1, 2], [3, 4]], **FAST)


def test_readme_notebook_flow_on_bundled_pbmc68k_reduced(tmp_path):
    """The README's notebook section, small: scanpy's bundled data (no download), nvae, neighbours, UMAP."""
    sc = pytest.importorskip("scanpy")
    import archetool

    adata = sc.datasets.pbmc68k_reduced()[:, :60].copy()
    model = archetool.fit(adata, model="nvae", label="bulk_labels", out=str(tmp_path / "m"), **FAST)
    model.embed(adata)
    assert adata.obsm["X_nvae"].shape == (700, model.module.latent_dim)
    assert set(adata.obs["nvae_pred_label"].cat.categories) == set(adata.obs["bulk_labels"].astype(str))
    sc.pp.neighbors(adata, use_rep="X_nvae", n_neighbors=10)
    sc.tl.umap(adata, random_state=0, maxiter=20)
    assert adata.obsm["X_umap"].shape == (700, 2) and np.isfinite(adata.obsm["X_umap"]).all()
