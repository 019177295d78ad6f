"""Formats a user meets every day: sniffed delimiters and decimal commas, duplicate ids, embedding across
file types (features matched by name), embed --layer and --allow-missing-features."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, make_adata, make_table, run_cli
from archetool.data.readers import open_source
from archetool.data.readers.table import sniff_delimiter
from archetool.data.source import ReadOptions

FEATURES = [f"f{i}" for i in range(8)]


@pytest.mark.parametrize("name, sep, decimal", [
    ("semi.csv", ";", ","), ("semi_dot.csv", ";", "."), ("tabs.csv", "\t", "."), ("tabs_comma.csv", "\t", ","),
    ("pipe.csv", "|", "."), ("plain.csv", ",", "."), ("semi.csv.gz", ";", ","),
])
def test_delimiter_and_decimal_comma_are_sniffed(tmp_path, name, sep, decimal):
    table = make_table(n=30)
    path = tmp_path / name
    table.to_csv(path, sep=sep, decimal=decimal, index=False)
    assert sniff_delimiter(path, ",") == (sep, decimal == ",")
    read = open_source(path).read().obs
    assert read.columns.tolist() == table.columns.tolist()
    np.testing.assert_allclose(read[FEATURES + ["y"]].to_numpy(float), table[FEATURES + ["y"]].to_numpy(float), rtol=1e-12)
    chunks = [b.obs for b in open_source(path).iter_batches(7)]  # the streaming reader agrees
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read)


def test_quoted_commas_do_not_fool_the_sniffer(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('id,name,x\n1,"a; b; c",1.5\n2,"d; e; f",2.5\n')
    assert sniff_delimiter(path, ",") == (",", False)
    assert open_source(path).read().obs["x"].tolist() == [1.5, 2.5]


def test_fit_on_a_semicolon_csv_with_side_column(tmp_path):
    """The European export that used to fail with 'side column does not exist'."""
    path = tmp_path / "export.csv"
    make_table(n=60).to_csv(path, sep=";", decimal=",", index=False)
    out = tmp_path / "m"
    result = run_cli("fit", path, "--side", "y", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "training_rows.parquet")
    np.testing.assert_allclose(rows["y"], make_table(n=60)["y"], rtol=1e-12)
    embedded = run_cli("embed", out, path)  # the same file embeds too
    assert embedded.exit_code == 0 and embedded.stdout.splitlines()[1].startswith("s000,")


def test_explicit_sep_overrides_sniffing(tmp_path):
    path = tmp_path / "odd.txt"  # .txt defaults to tab; the file uses semicolons
    make_table(n=20).to_csv(path, sep=";", index=False)
    assert open_source(path, ReadOptions(sep=";")).read().obs.shape == (20, 11)
    out = tmp_path / "m"
    assert run_cli("fit", path, "--sep", "semicolon", "--side", "y", "--out", out, *FAST_FIT).exit_code == 0
    result = run_cli("embed", out, path, "--sep", ";", "--out", tmp_path / "e.parquet")
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 20
    bad = run_cli("embed", out, path, "--sep", "ab")
    assert bad.exit_code == 2 and "error: --sep 'ab': give one character" in bad.stderr


def test_duplicate_ids_warn_at_fit_and_are_kept_by_embed(tmp_path):
    table = make_table(n=40)
    table.loc[5, "id"] = table.loc[4, "id"] = table.loc[3, "id"] = "s003"
    table.loc[20, "id"] = "s019"
    path = tmp_path / "dupes.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "m"
    result = run_cli("fit", path, "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if "more than once" in line]
    assert len(warning) == 1 and "2 ids occur more than once in id column 'id' (5 rows in all)" in warning[0]
    assert "'s003' x3, 's019' x2" in warning[0]
    assert len(pd.read_parquet(out / "training_rows.parquet")) == 40
    target = tmp_path / "e.parquet"
    assert run_cli("embed", out, path, "--out", target, "--chunk-rows", "16").exit_code == 0
    embedded = pd.read_parquet(target)
    assert embedded["id"].tolist() == table["id"].tolist()  # every row, in order, duplicates kept
    training = pd.read_parquet(out / "training_rows.parquet")
    z = [c for c in embedded.columns if c.startswith("z")]
    np.testing.assert_allclose(embedded[z].to_numpy(), training[z].to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture
def cells(tmp_path):
    """The same cells as .h5ad and as a table of gene columns (shuffled column order, plus a text column)."""
    adata = make_adata(n=60, genes=12)
    h5ad = tmp_path / "cells.h5ad"
    adata.write_h5ad(h5ad)
    frame = pd.DataFrame(adata.X, columns=adata.var_names)
    frame = frame[frame.columns[::-1]]
    frame.insert(0, "id", adata.obs_names)
    csv = tmp_path / "cells.csv"
    frame.to_csv(csv, index=False)
    return adata, h5ad, csv


def _z(path):
    frame = pd.read_parquet(path)
    return frame, frame[[c for c in frame.columns if c.startswith("z")]].to_numpy()


@pytest.mark.parametrize("fit_on", ["h5ad", "csv"])
def test_model_embeds_the_other_file_type_by_feature_name(tmp_path, cells, fit_on):
    adata, h5ad, csv = cells
    train, other = (h5ad, csv) if fit_on == "h5ad" else (csv, h5ad)
    out = tmp_path / "m"
    assert run_cli("fit", train, "--out", out, *FAST_FIT).exit_code == 0
    for data, name in ((train, "same.parquet"), (other, "other.parquet")):
        result = run_cli("embed", out, data, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
    same, z_same = _z(tmp_path / "same.parquet")
    other_rows, z_other = _z(tmp_path / "other.parquet")
    assert same.iloc[:, 0].tolist() == other_rows.iloc[:, 0].tolist() == adata.obs_names.tolist()
    np.testing.assert_allclose(z_other, z_same, rtol=1e-5, atol=1e-6)


def test_table_model_embeds_gct_and_gctx(tmp_path, cells):
    from archetool.data.readers.gctx import write_gctx

    adata, _, csv = cells
    out = tmp_path / "m"
    assert run_cli("fit", csv, "--out", out, *FAST_FIT).exit_code == 0
    gctx = tmp_path / "cells.gctx"
    write_gctx(gctx, np.asarray(adata.X, np.float32), list(adata.var_names), list(adata.obs_names))
    assert run_cli("embed", out, csv, "--out", tmp_path / "a.parquet").exit_code == 0
    result = run_cli("embed", out, gctx, "--out", tmp_path / "b.parquet")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(_z(tmp_path / "b.parquet")[1], _z(tmp_path / "a.parquet")[1], rtol=1e-5, atol=1e-6)


def test_embed_layer(tmp_path, cells):
    adata, h5ad, _ = cells
    out = tmp_path / "m"
    assert run_cli("fit", h5ad, "--layer", "counts", "--out", out, *FAST_FIT).exit_code == 0
    # default: the model's training layer; --layer overrides it
    assert run_cli("embed", out, h5ad, "--out", tmp_path / "default.parquet").exit_code == 0
    assert run_cli("embed", out, h5ad, "--layer", "counts", "--out", tmp_path / "counts.parquet").exit_code == 0
    np.testing.assert_array_equal(_z(tmp_path / "default.parquet")[1], _z(tmp_path / "counts.parquet")[1])
    bad = run_cli("embed", out, h5ad, "--layer", "spliced")
    assert bad.exit_code != 0 and "layer 'spliced' not found; layers are: counts" in bad.stderr
    # a model fitted on X, embedding a layer: same genes, other values
    out_x = tmp_path / "mx"
    assert run_cli("fit", h5ad, "--out", out_x, *FAST_FIT).exit_code == 0
    assert run_cli("embed", out_x, h5ad, "--layer", "counts", "--out", tmp_path / "xc.parquet").exit_code == 0
    assert run_cli("embed", out_x, h5ad, "--out", tmp_path / "xx.parquet").exit_code == 0
    assert not np.allclose(_z(tmp_path / "xc.parquet")[1], _z(tmp_path / "xx.parquet")[1])


def test_missing_features_listed_or_filled_with_the_training_mean(tmp_path, cells):
    adata, h5ad, csv = cells
    out = tmp_path / "m"
    assert run_cli("fit", h5ad, "--out", out, *FAST_FIT).exit_code == 0
    lacking = tmp_path / "lacking.csv"
    pd.read_csv(csv).drop(columns=["GENE3", "GENE7"]).to_csv(lacking, index=False)
    refused = run_cli("embed", out, lacking, "--out", tmp_path / "e.parquet")
    assert refused.exit_code == 2 and not (tmp_path / "e.parquet").exists()
    assert refused.stderr.strip() == (f"error: {lacking}: lacks 2 of the model's 12 genes (missing: GENE3, GENE7); features are "
                                      "matched by name; pass --allow-missing-features to fill them with the training mean")
    filled = run_cli("embed", out, lacking, "--allow-missing-features", "--out", tmp_path / "e.parquet")
    assert filled.exit_code == 0, filled.output
    assert "2 of the model's 12 features are missing and were filled with the training mean (--allow-missing-features): GENE3, GENE7" in filled.stderr
    # the same as the full data with those genes set to the training mean
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(out)
    x = pd.read_csv(csv)[model.prep.feature_names].to_numpy(np.float32)
    for gene in ("GENE3", "GENE7"):
        j = model.prep.feature_names.index(gene)
        x[:, j] = model.prep.x_mean[j]
    expected = model.transform(model.prep.scale_x(x))["z"]
    np.testing.assert_allclose(_z(tmp_path / "e.parquet")[1], expected, rtol=1e-5, atol=1e-5)
    nothing = tmp_path / "nothing.csv"
    pd.DataFrame({"id": ["a", "b"], "other": [1.0, 2.0]}).to_csv(nothing, index=False)
    none = run_cli("embed", out, nothing, "--allow-missing-features")
    assert none.exit_code == 2
    assert f"error: {nothing}: has none of the model's 12 genes (GENE0, GENE1, GENE2, GENE3, GENE4, ... (12 in all))" in none.stderr


def test_table_model_missing_column_message(tmp_path, table_csv):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--side", "y", "--out", out, *FAST_FIT).exit_code == 0
    data = tmp_path / "less.csv"
    pd.read_csv(table_csv).drop(columns=["f2"]).to_csv(data, index=False)
    result = run_cli("embed", out, data)
    assert result.exit_code == 2 and "lacks 1 of the model's 8 features (missing: f2)" in result.stderr


def test_molecule_model_refuses_expression_data(tmp_path, smi_file, cells):
    out = tmp_path / "m"
    assert run_cli("fit", smi_file, "--out", out, "--n-bits", "64", "--no-descriptors", *FAST_FIT).exit_code == 0
    result = run_cli("embed", out, cells[1])
    assert result.exit_code == 2
    assert "holds expression data but the model was fitted on molecules (SMILES)" in result.stderr
