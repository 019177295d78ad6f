"""Every bad-input path of the issues: one clear stderr line, non-zero exit, no traceback."""

import json

import pandas as pd
import pytest

from conftest import FAST_FIT, make_table, run_cli


def assert_clean_error(result, *needles):
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_missing_file(tmp_path):
    assert_clean_error(run_cli("fit", tmp_path / "nope.csv"), "nope.csv", "no such file")


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("a,b\n1,2\n")
    assert_clean_error(run_cli("fit", path), "data.xlsx", "unknown file extension '.xlsx'", ".csv")


@pytest.mark.parametrize("name", ["empty.csv", "empty.smi", "empty.h5ad", "empty.parquet"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    assert_clean_error(run_cli("fit", path), name, "empty")


def test_header_only_table(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b,c\n")
    assert_clean_error(run_cli("fit", path), "h.csv", "no rows")


def test_side_column_that_does_not_exist_lists_the_columns(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--side", "heat"), "side column 'heat' not found", "id, f0, f1")


def test_non_numeric_side_column(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--side", "cls"), "side column 'cls' is not numeric", "data row 1 holds 'C'")


def test_missing_side_values_need_a_flag(tmp_path):
    frame = make_table(n=60)
    frame.loc[[3, 10, 11], "y"] = None
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    assert_clean_error(run_cli("fit", path, "--side", "y"), "3 missing values", "data row 4", "--drop-missing")
    result = run_cli("fit", path, "--side", "y", "--drop-missing", "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "m" / "training_rows.parquet")
    assert len(rows) == 57 and "s003" not in set(rows["id"]) and "s004" in set(rows["id"])


def test_every_smiles_invalid(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("smiles id cv\nxx a 1\nC1CC b 2\n")
    assert_clean_error(run_cli("fit", path, "--side", "cv"), "bad.smi", "none of the 2 SMILES could be parsed")


def test_missing_h5ad_obs_key(h5ad_file):
    assert_clean_error(run_cli("fit", h5ad_file, "--side", "depth"), "cells.h5ad", "'depth' not found", "cell_type, n_counts")
    assert_clean_error(run_cli("fit", h5ad_file, "--model", "svqvae", "--label", "celltype"), "label column 'celltype' not found")


def test_missing_h5ad_layer(h5ad_file):
    assert_clean_error(run_cli("fit", h5ad_file, "--layer", "spliced"), "layer 'spliced' not found", "counts")


def test_embed_data_lacking_the_models_genes(tmp_path, h5ad_file):
    from conftest import make_adata

    out = tmp_path / "m"
    assert run_cli("fit", h5ad_file, "--out", out, *FAST_FIT).exit_code == 0
    other = make_adata(genes=10)
    other.var_names = [f"OTHER{i}" for i in range(5)] + [f"GENE{i}" for i in range(5)]
    path = tmp_path / "other.h5ad"
    other.write_h5ad(path)
    assert_clean_error(run_cli("embed", out, path), "other.h5ad", "lacks 25 of the model's 30 genes", "GENE5")


def test_embed_table_lacking_feature_columns(tmp_path, table_csv):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, *FAST_FIT).exit_code == 0
    path = tmp_path / "less.csv"
    make_table().drop(columns=["f2"]).to_csv(path, index=False)
    assert_clean_error(run_cli("embed", out, path), "lacks 1 of the model's", "f2")


def test_model_path_missing_or_not_a_model(tmp_path):
    assert_clean_error(run_cli("info", tmp_path / "nothing"), "no such model directory")
    (tmp_path / "plain").mkdir()
    assert_clean_error(run_cli("embed", tmp_path / "plain", tmp_path / "x.csv"), "not an archetool model directory")
    bad = tmp_path / "badjson"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    assert_clean_error(run_cli("archetypes", bad), "not valid JSON")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"name": "something else"}))
    assert_clean_error(run_cli("sample", other), "not an archetool model config")


def test_k_below_two(table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--k", "1"), "--k 1", "at least 2 archetypes")
    assert_clean_error(run_cli("fit", table_csv, "--k", "1-3"), "every k must be at least 2")
    assert_clean_error(run_cli("fit", table_csv, "--k", "four"), "--k 'four'")


def test_bad_device_and_output_extension(tmp_path, table_csv):
    assert_clean_error(run_cli("fit", table_csv, "--device", "cuda:7", *FAST_FIT), "--device cuda:7")
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, *FAST_FIT).exit_code == 0
    assert_clean_error(run_cli("embed", out, table_csv, "--out", tmp_path / "e.xlsx"), "unknown output extension '.xlsx'")


def test_interpolate_unknown_endpoint(tmp_path, table_csv):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, *FAST_FIT).exit_code == 0
    assert_clean_error(run_cli("interpolate", out, "--start", "a0", "--end", "zzz"), "endpoint 'zzz'", "a0, a1")


def test_subprocess_error_has_no_traceback_and_exit_code_2(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "archetool", "fit", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'x.csv'}: no such file; check the path"


# ----------------------------------------------------------------------------- infinite values


def test_infinite_feature_value_is_refused_by_fit_with_the_row_and_column(tmp_path):
    frame = make_table(n=60)
    frame.loc[7, "f2"] = float("-inf")
    path = tmp_path / "inf.csv"
    frame.to_csv(path, index=False)
    assert_clean_error(run_cli("fit", path, "--side", "y", *FAST_FIT, "--out", tmp_path / "m"),
                       "inf.csv", "row with id 's007'", "infinite value in feature 'f2'", "leave it empty")
    assert not (tmp_path / "m").exists()


def test_infinite_side_value_is_refused_with_the_row(tmp_path):
    frame = make_table(n=60)
    frame.loc[11, "y"] = float("inf")
    path = tmp_path / "inf.csv"
    frame.to_csv(path, index=False)
    assert_clean_error(run_cli("fit", path, "--side", "y", *FAST_FIT), "inf.csv", "side column 'y'",
                       "infinite value (data row 12)")


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("out_name", ["emb.parquet", "emb.npy"])
def test_infinite_value_met_while_streaming_embed_leaves_no_output(tmp_path, threads, out_name):
    frame = make_table(n=200)
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    model = tmp_path / "m"
    assert run_cli("fit", good, *FAST_FIT, "--out", model).exit_code == 0
    frame.loc[150, "f5"] = float("inf")  # in the third chunk of 64 rows
    frame.loc[20, "f1"] = float("nan")  # missing values are fine
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / out_name
    assert_clean_error(run_cli("embed", model, bad, "--out", out, "--chunk-rows", "64", "--batch-size", "16",
                               "--threads", threads),
                       "bad.csv", "row with id 's150'", "infinite value in feature 'f5'")
    assert not out.exists() and list(tmp_path.glob("emb*")) == []
