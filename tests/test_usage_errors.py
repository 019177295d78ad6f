"""Ordinary command-line mistakes: one plain ``error:`` line, exit code 2, no traceback and no boxed panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, run_cli


def one_line(result, *needles, exit_code=2, after_progress=False) -> str:
    """The single stderr line (``after_progress``: the last line, after 'archetool: ...' log lines)."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "╭" not in result.output and "Usage:" not in result.output
    lines = result.stderr.strip().splitlines()
    if after_progress:
        assert all(line.startswith("archetool: ") for line in lines[:-1]), lines
        lines = lines[-1:]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("spec, needles", [
    ("5-2", ["--k 5-2: the range runs downwards", "--k 2-5"]),
    ("", ["--k is empty", "a range (2-8)"]),
    ("   ", ["--k is empty"]),
    ("-3", ["--k -3: the number of archetypes cannot be negative"]),
    ("2-", ["--k '2-': not understood", "a list (2,3,5)"]),
    ("a-b", ["--k 'a-b': not understood"]),
    ("2,x", ["--k '2,x': not understood"]),
    ("1", ["--k 1: deep archetypal analysis needs at least 2 archetypes"]),
    ("0-3", ["--k 0-3: every k must be at least 2"]),
])
def test_bad_k(table_csv, tmp_path, spec, needles):
    one_line(run_cli("fit", table_csv, "--k", spec, "--out", tmp_path / "m", *FAST_FIT), *needles)
    assert not (tmp_path / "m").exists()


def test_parse_ks_accepts_the_documented_forms():
    from archetool.cli.app import _parse_ks

    assert _parse_ks("4") == [4] and _parse_ks("2-5") == [2, 3, 4, 5] and _parse_ks(" 3 - 3 ") == [3]
    assert _parse_ks("2,3,5") == [2, 3, 5] and _parse_ks("5, 3,5,") == [5, 3]


@pytest.mark.parametrize("args, expected", [
    (["fit", "{data}", "--epochs", "x"], "error: --epochs: 'x' is not a valid integer (see 'archetool fit --help')"),
    (["fit", "{data}", "--lr", "fast"], "error: --lr: 'fast' is not a valid number (see 'archetool fit --help')"),
    (["fit", "{data}", "--epochs", "0"], "error: --epochs: must be at least 1, got '0' (see 'archetool fit --help')"),
    (["fit", "{data}", "--bogus"], "error: --bogus: no such option of 'archetool fit'"),
    (["fit", "{data}", "--progres"], "did you mean --progress"),
    (["fit", "{data}", "--epochs"], "error: --epochs: needs a value (see 'archetool fit --help')"),
    (["fit"], "error: missing argument DATA (see 'archetool fit --help')"),
    (["embed", "model-dir"], "error: missing argument DATA (see 'archetool embed --help')"),
    (["info"], "error: missing argument MODEL (see 'archetool info --help')"),
    (["info", "a", "b"], "error: got unexpected extra argument(s) (b) (see 'archetool info --help')"),
    (["interpolate", "m", "a0", "a1"], "error: got unexpected extra argument(s) (a0 a1); the endpoints are options: "
                                       "archetool interpolate MODEL --start a0 --end a1 (see 'archetool interpolate --help')"),
    (["sample", "m", "a0"], "choose with options, e.g. archetool sample MODEL --archetype a0, --label L or --target SIDE=VALUE"),
    (["fit", "{data}", "-q"], "error: -q: no such option of 'archetool fit'; -q goes before the command: archetool -q fit ..."),
    (["fitt"], "error: no such command 'fitt'; did you mean 'fit'? (see 'archetool --help')"),
])
def test_usage_errors_read_like_archetool_errors(table_csv, args, expected):
    args = [str(table_csv) if a == "{data}" else a for a in args]
    assert expected in one_line(run_cli(*args))


def test_usage_error_from_the_console_script_is_one_line(table_csv):
    """The installed entry point (not only CliRunner) prints the plain line and exits 2."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "archetool", "fit", str(table_csv), "--batch-size", "many"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --batch-size: 'many' is not a valid integer (see 'archetool fit --help')"
    assert proc.stdout == ""


def test_help_still_exits_zero():
    result = run_cli("fit", "--help")
    assert result.exit_code == 0 and "--epochs" in result.output


@pytest.mark.parametrize("hidden", ["32,abc", "0", ",", "16,,8"])
def test_bad_hidden(table_csv, tmp_path, hidden):
    one_line(run_cli("fit", table_csv, "--hidden", hidden, "--out", tmp_path / "m", "--epochs", "1"),
             f"--hidden {hidden!r}: give layer widths as whole numbers of at least 1")


def test_unknown_set_key_for_deepaa(table_csv, tmp_path):
    one_line(run_cli("fit", table_csv, "--set", "foo=1", "--out", tmp_path / "m", *FAST_FIT),
             "unknown hyper-parameter 'foo'", "n_archetypes", after_progress=True)


def test_unknown_linear_head_fit_for_nvae(table_csv, tmp_path):
    one_line(run_cli("fit", table_csv, "--model", "nvae", "--label", "cls", "--set", "linear_head_fit=sgd",
                     "--out", tmp_path / "m", *FAST_FIT),
             "--model nvae: unknown linear_head_fit 'sgd'", "'auto', 'convex', 'joint'", after_progress=True)
    assert not (tmp_path / "m").exists()


def test_unwritable_output_names_the_target_not_a_temporary(tmp_path, table_csv):
    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, *FAST_FIT).exit_code == 0
    target = tmp_path / "missing-dir-is-a-file"
    target.write_text("")
    line = one_line(run_cli("embed", model, table_csv, "--out", target / "e.csv"), exit_code=1)
    assert line == f"error: {target / 'e.csv'}: cannot write here: a file stands where its folder should be"
    line = one_line(run_cli("embed", model, table_csv, "--out", "/proc/e.csv"), exit_code=1)
    assert line.startswith("error: /proc/e.csv: cannot write here (") and ".part" not in line


@pytest.fixture
def molecule_model(tmp_path, smi_file):
    out = tmp_path / "mol.deepaa"
    result = run_cli("fit", smi_file, "--out", out, "--n-bits", "64", "--no-descriptors", *FAST_FIT)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy", None])
def test_embed_with_every_smiles_invalid_leaves_nothing(tmp_path, molecule_model, suffix):
    data = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["x1", "x2", "x3"], "smiles": ["not-a-smiles", "C1CC", "Xx"]}).to_csv(data, index=False)
    before = set(tmp_path.iterdir())
    args = ["embed", molecule_model, data] + (["--out", tmp_path / f"emb{suffix}"] if suffix else [])
    result = run_cli(*args)
    one_line(result, "bad.csv: none of the 3 SMILES could be parsed", "'not-a-smiles' (row 1)", "nothing was written")
    assert result.stdout == ""
    assert set(tmp_path.iterdir()) == before  # no output, no temporary, no rejects file


def test_embed_keeps_the_valid_rows_after_an_all_invalid_chunk(tmp_path, molecule_model, monkeypatch):
    """A first chunk without a valid SMILES writes nothing; the header comes with the first rows. With the
    embedding on stdout the rejects go to the working directory (here tmp_path, never the repository)."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "mixed.csv"
    pd.DataFrame({"id": ["x1", "x2", "m1", "m2"], "smiles": ["bad", "worse", "CCO", "CCN"]}).to_csv(data, index=False)
    result = run_cli("embed", molecule_model, data, "--chunk-rows", "2", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("id,z0") and [line.split(",")[0] for line in lines[1:]] == ["m1", "m2"]
    assert "2 of 4 SMILES could not be parsed" in result.stderr
    assert pd.read_csv(tmp_path / "mixed.rejects.csv")["id"].tolist() == ["x1", "x2"]


def test_interpolate_unknown_endpoint_counts_every_choice(tmp_path, table_csv):
    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, "--k", "3", *FAST_FIT).exit_code == 0
    line = one_line(run_cli("interpolate", model, "--start", "a0", "--end", "nope"),
                    "endpoint 'nope' is neither an archetype")
    # 3 archetypes + 120 training rows, not the length of the preview list
    assert line.endswith("use one of: a0, a1, a2, s000, s001, s002, s003, s004, ... (123 in all)"), line


def test_preview_total():
    from archetool.errors import preview

    assert preview(["a", "b"], 5) == "a, b"
    assert preview(["a", "b", "c"], 2) == "a, b, ... (3 in all)"
    assert preview(["a", "b"], 5, total=40) == "a, b, ... (40 in all)"
    assert np.all([preview([], 3) == ""])


def test_output_directory_that_is_a_file(tmp_path, table_csv):
    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, *FAST_FIT).exit_code == 0
    line = one_line(run_cli("archetypes", model, "--out", table_csv), exit_code=1)
    assert line == f"error: {table_csv}: is a file; give a directory (new or existing) for the output"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left
