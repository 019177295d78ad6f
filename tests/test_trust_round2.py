"""Issue 15: no silently dropped data, no degenerate fits, no mixed model directories, one-line write
failures, standard input named as such, no leftovers, and the README's Python examples run as scripts."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, MOLECULES, REPO, make_table, run_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
WINE = REPO / "sample_data" / "wine.csv"


def archetool_cmd(*args):
    return [sys.executable, "-m", "archetool", *map(str, args)]


def only_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def wine_with(tmp_path, row=5, column="ash", value="?", name="wine.csv") -> Path:
    frame = pd.read_csv(WINE)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


# --- item 1: one non-numeric token never drops a feature ---------------------------------------
def test_fit_refuses_a_stray_token_in_a_numeric_column_naming_column_row_and_value(tmp_path):
    data = wine_with(tmp_path)
    result = run_cli("fit", data, "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code != 0
    line = only_error_line(result)
    assert "feature column 'ash'" in line and "row 6 holds '?'" in line and "--na-values '?'" in line
    assert not (tmp_path / "m").exists()


def test_fit_and_embed_share_one_check_of_a_column():
    """embed refuses the same column with the same words (one check, not a twin)."""
    from archetool.data.featurizers import NumericFeaturizer
    from archetool.data.source import RawBatch
    from archetool.errors import InputError

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["1", "x", "2"]})
    batch = RawBatch(ids=np.array(["0", "1", "2"]), obs=frame)
    messages = []
    for call in (lambda f: f.fit(batch, set(), "t.csv"), lambda f: f.transform(batch, "t.csv")):
        featurizer = NumericFeaturizer(["a", "b"])
        with pytest.raises(InputError) as err:
            call(featurizer)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == ("t.csv: feature column 'b' is not numeric (row 2 holds 'x'); correct it, or "
                                          "if 'x' marks a missing value, read it as one with --na-values x")


def test_na_values_reads_the_token_as_missing_and_keeps_all_13_features(tmp_path):
    data = wine_with(tmp_path)
    out = tmp_path / "m"
    result = run_cli("fit", data, "--out", out, "--na-values", "?", "--label", "cultivar", "--model", "nvae", *FAST_FIT)
    assert result.exit_code == 0, result.stderr
    features = json.loads((out / "preprocessing.json").read_text())["featurizer"]["feature_names"]
    assert len(features) == 13 and "ash" in features
    assert "not numeric" not in result.stderr  # cultivar is the label; nothing else is left out
    embedded = run_cli("embed", out, data, "--na-values", "?")
    assert embedded.exit_code == 0, embedded.stderr
    assert len(pd.read_csv(__import__("io").StringIO(embedded.stdout))) == 178


def test_text_columns_left_out_of_the_features_are_named_in_one_warning(tmp_path, caplog):
    result = run_cli("fit", WINE, "--out", tmp_path / "m", *FAST_FIT)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "not numeric" in line]
    assert warnings == [f"archetool: {WINE}: 1 column is not numeric and left out of the features: 'cultivar' "
                        "(use a class column with --label)"]


# --- item 2: degenerate set-ups --------------------------------------------------------------------
def test_a_constant_side_column_is_refused(tmp_path):
    frame = pd.read_csv(WINE)
    frame["const"] = 1.0
    frame.to_csv(tmp_path / "w.csv", index=False)
    line = only_error_line(run_cli("fit", tmp_path / "w.csv", "--out", tmp_path / "m", "--side", "const", *FAST_FIT))
    assert "side column 'const' holds the same value (1) in every row" in line and "R² is undefined" in line


@pytest.mark.parametrize("rows, k", [(2, "4"), (5, "10")])
def test_more_archetypes_than_rows_is_refused(tmp_path, rows, k):
    pd.read_csv(WINE).head(rows).to_csv(tmp_path / "w.csv", index=False)
    line = only_error_line(run_cli("fit", tmp_path / "w.csv", "--out", tmp_path / "m", "--k", k, *FAST_FIT))
    assert f"{rows} rows cannot define {k} archetypes" in line
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("rows, val_rows", [(3, 0), (5, 1)])
def test_a_validation_split_too_small_to_score_is_a_warning_naming_the_consequence(tmp_path, rows, val_rows):
    frame = pd.read_csv(WINE).head(rows).drop(columns="cultivar")
    frame.to_csv(tmp_path / "w.csv", index=False)
    result = run_cli("fit", tmp_path / "w.csv", "--out", tmp_path / "m", "--k", "2", *FAST_FIT)
    assert result.exit_code == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "validation row" in line]
    assert len(warning) == 1 and f"{rows} rows give {val_rows} validation row" in warning[0]
    assert ("no held-out scores" if val_rows == 0 else "undefined (nan)") in warning[0]
    summary = json.loads((tmp_path / "m" / "config.json").read_text())["summary"]
    assert summary["val_rows"] == val_rows


def test_one_row_cannot_train(tmp_path):
    from archetool.errors import ArchetoolError

    frame = pd.read_csv(WINE).head(1)
    import archetool

    with pytest.raises(ArchetoolError, match="1 row leaves 1 for training; a model needs at least 2 training rows"):
        archetool.fit(frame.drop(columns=["cultivar"]), k=2, epochs=1, out=str(tmp_path / "m"))


def test_a_duplicate_column_name_is_refused_not_renamed(tmp_path):
    text = WINE.read_text().splitlines()
    text[0] = text[0].replace("malic_acid", "alcohol")
    (tmp_path / "dup.csv").write_text("\n".join(text) + "\n")
    for args in (("fit", tmp_path / "dup.csv", "--out", tmp_path / "m", *FAST_FIT),):
        line = only_error_line(run_cli(*args))
        assert "the column name 'alcohol' occurs more than once in the header (columns 2 and 3)" in line
        assert "'alcohol.1'" in line


# --- item 3: refitting into an existing model directory ----------------------------------------------
def test_refit_is_refused_then_overwrite_replaces_everything(tmp_path, table_csv):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, "--side", "y", *FAST_FIT).exit_code == 0
    assert run_cli("archetypes", out).exit_code == 0
    assert (out / "archetypes" / "archetypes.csv").exists()
    weights = (out / "weights.pt").read_bytes()
    (out / "notes.txt").write_text("mine")  # the user's own file stays

    refused = run_cli("fit", WINE, "--out", out, *FAST_FIT)
    line = only_error_line(refused)
    assert line == (f"error: {out}: already holds a deepaa model (fitted on {table_csv}); pass --overwrite to replace "
                    "it (its archetypes and other results go too), or give another --out")
    assert (out / "weights.pt").read_bytes() == weights and (out / "archetypes").exists()

    replaced = run_cli("fit", WINE, "--out", out, "--overwrite", *FAST_FIT)
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads((out / "config.json").read_text())["data"] == str(WINE)
    assert not (out / "archetypes").exists()  # the old dataset's archetypes are gone with its model
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_clears_the_old_fit_before_writing_so_a_crash_leaves_no_mix(tmp_path, table_csv, monkeypatch):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, *FAST_FIT).exit_code == 0
    (out / "archetypes").mkdir()
    from archetool.training import loop

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash during training")

    monkeypatch.setattr(loop, "train", crash)
    import archetool

    with pytest.raises(RuntimeError, match="simulated"):
        archetool.fit(str(WINE), out=str(out), overwrite=True, epochs=2)
    left = sorted(p.name for p in out.iterdir())
    assert left == [], left  # neither the old model nor its archetypes remain beside a new fit's files


def test_in_memory_api_refuses_and_overwrites_too(tmp_path):
    import archetool
    from archetool.errors import ArchetoolError

    frame = make_table(n=60).drop(columns=["cls"])
    out = tmp_path / "m"
    archetool.fit(frame, out=str(out), epochs=2, hidden=[16])
    with pytest.raises(ArchetoolError, match="pass overwrite=True to replace it"):
        archetool.fit(frame, out=str(out), epochs=2, hidden=[16])
    model = archetool.fit(frame, out=str(out), epochs=3, hidden=[16], overwrite=True)
    assert model.config["summary"]["epochs_run"] == 3


def test_resume_still_continues_in_an_existing_directory(tmp_path, table_csv):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, "--epochs", "3", "--batch-size", "32", "--hidden", "16",
                   "--no-progress").exit_code == 0
    (out / "rejects.csv").write_text("row,id,smiles,reason\n")  # a stale output of an earlier fit
    resumed = run_cli("fit", table_csv, "--out", out, "--epochs", "5", "--batch-size", "32", "--hidden", "16",
                      "--no-progress", "--resume", "--patience", "0")
    assert resumed.exit_code == 0, resumed.stderr
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2, 3, 4, 5]
    assert not (out / "rejects.csv").exists()


def test_a_checkpoint_only_directory_points_to_resume(tmp_path, table_csv):
    out = tmp_path / "m"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"x")
    line = only_error_line(run_cli("fit", table_csv, "--out", out, *FAST_FIT))
    assert "holds the checkpoint of an unfinished fit; pass --resume to continue it, --overwrite to start afresh" in line


def test_a_k_sweep_is_not_rerun_over_an_old_one_without_overwrite(tmp_path, table_csv):
    out = tmp_path / "sweep"
    make_table(n=40).to_csv(tmp_path / "small.csv", index=False)
    args = ("fit", tmp_path / "small.csv", "--out", out, "--k", "2-3", "--sweep-seeds", "1", "--epochs", "1", "--hidden", "8",
            "--no-progress")
    assert run_cli(*args).exit_code == 0
    line = only_error_line(run_cli(*args))
    assert line == f"error: {out}: already holds a k sweep; pass --overwrite to replace it, or give another --out"
    assert run_cli(*args, "--overwrite").exit_code == 0


# --- item 4: a full disk -------------------------------------------------------------------------------
def test_torch_write_failure_on_a_full_disk_is_one_line_naming_the_target(tmp_path, monkeypatch):
    import shutil

    from archetool.atomic import OutputError, atomic_path

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    target = tmp_path / "m" / "weights.pt"
    with pytest.raises(OutputError) as err:
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    assert str(err.value) == (f"{target}: No space left on device (the disk or quota is full); nothing was written "
                              "there: free some space or write elsewhere")
    assert os.listdir(tmp_path / "m") == []


def test_enospc_during_fit_and_embed_is_one_line_and_leaves_nothing_half_written(tmp_path, table_csv, monkeypatch):
    out = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", out, *FAST_FIT).exit_code == 0
    import torch

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "weights" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    line = only_error_line(run_cli("fit", table_csv, "--out", tmp_path / "m2", *FAST_FIT))
    assert line.startswith(f"error: {tmp_path / 'm2' / 'weights.pt'}: No space left on device")
    assert not (tmp_path / "m2" / "config.json").exists()
    assert not [p for p in (tmp_path / "m2").iterdir() if ".part" in p.name]

    import pyarrow.parquet as pq

    def full(self, table, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    line = only_error_line(run_cli("embed", out, table_csv, "--out", tmp_path / "e.parquet"))
    assert line == (f"error: {tmp_path / 'e.parquet'}: No space left on device (the disk or quota is full); nothing "
                    "was written there: free some space or write elsewhere")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".e", "e."))) == []


def _small_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_tmpfs_during_fit_and_embed(tmp_path, table_csv):
    """On a 64 KiB tmpfs (needs root and mount; skipped otherwise) neither the model nor the embedding fits."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk, "64k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        fit = run_cli("fit", table_csv, "--out", disk / "m", "--epochs", "2", "--hidden", "256,128", "--no-progress")
        line = only_error_line(fit)
        assert "No space left on device" in line and str(disk / "m") in line and ".part" not in line
        assert not [p for p in disk.rglob("*") if ".part" in p.name or p.name == "config.json"]
        model = tmp_path / "small"
        assert run_cli("fit", table_csv, "--out", model, *FAST_FIT).exit_code == 0
        big = tmp_path / "big.csv"
        pd.concat([make_table()] * 40, ignore_index=True).to_csv(big, index=False)
        line = only_error_line(run_cli("embed", model, big, "--out", disk / "e.csv"))
        assert line.startswith(f"error: {disk / 'e.csv'}: No space left on device") and ".part" not in line
        assert not [p.name for p in disk.iterdir() if p.name != "m"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --- item 5: the 1e30 outlier message ---------------------------------------------------------------
def test_the_outlier_message_keeps_only_the_useful_part(tmp_path):
    data = wine_with(tmp_path, row=3, column="alcohol", value=1e30)
    line = only_error_line(run_cli("fit", data, "--out", tmp_path / "m", *FAST_FIT))
    assert "out of bounds" not in line and "index" not in line
    assert "row 'wine_003' makes the model's output non-finite (feature 'alcohol' is 1e+30 at row 'wine_003'" in line


# --- item 6: labels whose ids match nothing --------------------------------------------------------
def test_labels_whose_ids_match_no_row_say_so_with_examples(tmp_path):
    labels = pd.DataFrame({"sample": [f"x{i}" for i in range(178)], "cls": pd.read_csv(WINE)["cultivar"]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    line = only_error_line(run_cli("fit", WINE, "--out", tmp_path / "m", "--model", "nvae",
                                   "--labels", tmp_path / "labels.csv", *FAST_FIT))
    assert "none of its ids (first column 'sample': 'x0', 'x1', 'x2', ... (178 in all)) matches a row id" in line
    assert "'wine_000', 'wine_001', 'wine_002'" in line and "missing labels" not in line


# --- item 7: standard input ----------------------------------------------------------------------
def test_standard_input_is_named_so_in_messages_and_config(tmp_path):
    text = "\n".join(["smiles id"] + [f"{s} m{i}" for i, (s, _) in enumerate(MOLECULES)] + ["not_a_smiles bad"]) + "\n"
    run = subprocess.run(archetool_cmd("fit", "-", "--format", "smi", "--epochs", "2", "--no-progress", "--hidden", "16"),
                         input=text, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "archetool-stdin" not in run.stderr and "standard input: 1 of 25 molecules could not be used" in run.stderr
    config = json.loads((tmp_path / "stdin.deepaa.archetool" / "config.json").read_text())
    assert config["data"] == "-" and config["options"]["data"] == "-"
    bad = subprocess.run(archetool_cmd("fit", "-", "--format", "csv", "--out", tmp_path / "x", "--side", "nope"),
                         input="a,b\n1,2\n3,4\n", capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert only_error_line(bad).startswith("error: standard input: side column 'nope' not found")


# --- item 8: rejects.csv rows are integers ----------------------------------------------------------
def test_rejects_rows_are_integers(tmp_path, smi_file):
    with open(smi_file, "a") as handle:
        handle.write("C1CC m_bad 1.0\n")
    out = tmp_path / "m"
    assert run_cli("fit", smi_file, "--out", out, "--decoder", "selfies", *FAST_FIT).exit_code == 0
    text = (out / "rejects.csv").read_text().splitlines()
    assert text[1].startswith("25,m_bad,C1CC,"), text
    emb = run_cli("embed", out, smi_file, "--out", tmp_path / "e.csv")
    assert emb.exit_code == 0, emb.stderr
    assert (tmp_path / "e.rejects.csv").read_text().splitlines()[1].startswith("25,m_bad,")


# --- item 9: stale staging files ------------------------------------------------------------------
def test_stale_parts_of_a_dead_writer_are_removed_and_live_ones_kept(tmp_path):
    from archetool.atomic import atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = [tmp_path / f".emb.{dead_pid}.abc123.part.parquet", tmp_path / f".emb.{dead_pid}.x_9.part.spool"]
    live = tmp_path / f".emb.{os.getppid()}.zzz.part.parquet"
    other = tmp_path / f".other.{dead_pid}.abc.part.parquet"
    for path in [*stale, live, other]:
        path.write_text("x")
    with atomic_path(tmp_path / "emb.parquet") as tmp:
        assert f".emb.{os.getpid()}." in tmp.name
        tmp.write_text("done")
    assert not any(p.exists() for p in stale) and live.exists() and other.exists()
    assert (tmp_path / "emb.parquet").read_text() == "done"


def test_a_signal_right_after_the_staging_file_is_made_leaves_no_part(tmp_path, monkeypatch):
    """SIGTERM/Ctrl-C raised between mkstemp's creating the part and atomic_path's knowing its name (the window
    test_interrupted_embed hit under load) must not leave the part behind."""
    import archetool.atomic as atomic

    real_close = os.close

    def interrupted_close(fd):
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(tmp_path / "emb.parquet"):
            pass
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _mkstemp_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(tmp_path / "emb.parquet"):
            pass
    assert os.listdir(tmp_path) == []


def _mkstemp_then_interrupt(suffix, prefix, dir):
    """tempfile.mkstemp that makes its file, then is interrupted before returning its name."""
    os.close(os.open(os.path.join(dir, f"{prefix}abc123{suffix}"), os.O_RDWR | os.O_CREAT | os.O_EXCL))
    raise KeyboardInterrupt


def test_archetypes_on_a_read_only_directory_never_names_the_staging_directory(tmp_path, table_csv):
    from archetool.atomic import staged_dir

    locked = tmp_path / "ro"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root: simulate the read-only file system instead
            import tempfile
            from unittest import mock

            with mock.patch.object(tempfile, "mkdtemp", side_effect=OSError(errno.EROFS, "Read-only file system",
                                                                           str(locked / ".arch.1.x.part"))):
                with pytest.raises(OSError) as err:
                    with staged_dir(locked / "arch"):
                        pass
        else:
            with pytest.raises(OSError) as err:
                with staged_dir(locked / "arch"):
                    pass
    finally:
        os.chmod(locked, 0o700)
    assert err.value.filename == str(locked / "arch") and ".part" not in str(err.value)


# --- item 10: failed in-memory fits leave no temporary directory -----------------------------------
def test_failed_in_memory_fits_leave_no_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    import archetool
    from archetool.errors import ArchetoolError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frame = make_table(n=40)
    for bad in ({"side": ["nope"]}, {"label": "nope"}, {"k": 100}, {"model": "nope"}):
        with pytest.raises(ArchetoolError):
            archetool.fit(frame, epochs=1, **bad)
    assert list(tmp_path.iterdir()) == []


# --- item 11: the Python examples of README.md and docs/ run as plain scripts -----------------------
def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, but for interactive transcripts (``>>>`` lines)."""
    blocks, lines, i = [], path.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        if lines[i].strip().startswith("```python"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            block = "\n".join(lines[i + 1 : j])
            if not any(line.lstrip().startswith(">>>") for line in block.splitlines()):
                blocks.append(block)
            i = j
        i += 1
    return blocks


def example_scripts() -> list[tuple[str, str]]:
    """(page, script): per page of README.md and docs/**/*.md, its Python blocks in order as one script (a
    page is one notebook: later blocks use earlier names), for pages whose first block imports archetool."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    scripts = []
    for page in pages:
        blocks = python_blocks(page) if page.is_file() else []
        if blocks and "import archetool" in blocks[0]:
            scripts.append((str(page.relative_to(REPO)), "\n".join(blocks)))
    return scripts


def quick(source: str, epochs: int = 2) -> str:
    """The example with every ``archetool.fit(...)`` call trained for ``epochs`` epochs (the rest as written)."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fit" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "archetool":
            node.keywords = [k for k in node.keywords if k.arg != "epochs"] + [ast.keyword("epochs", ast.Constant(epochs))]
    return ast.unparse(tree)


def test_the_docs_have_python_examples_that_fit():
    assert any("archetool.fit(" in script for _, script in example_scripts())


def test_quick_sets_the_epochs_of_every_fit_call():
    source = 'import archetool\nif __name__ == "__main__":\n    m = archetool.fit("x.smi", epochs=50, k=4)\n'
    assert "archetool.fit('x.smi', k=4, epochs=2)" in quick(source)


@pytest.mark.slow
@pytest.mark.parametrize("page, script", example_scripts(), ids=[page for page, _ in example_scripts()])
def test_docs_python_example_runs_as_a_plain_script(tmp_path, page, script):
    """Each page's Python blocks saved as x.py and run with ``python x.py`` as written (guarded or not), from a
    folder holding the example data (``sample_data/``, and ``data/`` as ``archetool example`` makes it);
    every fit trains 2 epochs, to keep the test short."""
    for name in ("sample_data", "data"):
        (tmp_path / name).symlink_to(REPO / "sample_data")
    (tmp_path / "x.py").write_text(quick(script))
    run = subprocess.run([sys.executable, "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**ENV, "MPLBACKEND": "Agg"})
    assert run.returncode == 0, f"{page}:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr


def test_the_unguarded_readme_example_of_issue_15_runs_as_a_script(tmp_path):
    """The README block of the report, saved as x.py without a main guard: fits and embeds (rc 0)."""
    script = ('import archetool\n'
              'model = archetool.fit("sample_data/molecules.smi", side=["heat_capacity"], k=4, epochs=1, out="mols.archetool")\n'
              'model = archetool.load("mols.archetool")\n'
              'table = model.embed("sample_data/molecules.smi")\n'
              'print(len(table))\n')
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")
    (tmp_path / "x.py").write_text(script)
    run = subprocess.run([sys.executable, "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["1000"] and "worker process died" not in run.stderr
    # the API reports (issue 15 item 12): featurising in this process, and where the model went
    assert "featurising in this process" in run.stderr and "saved deepaa model to mols.archetool" in run.stderr


def test_an_unguarded_script_featurises_in_process_and_a_guarded_one_uses_workers(tmp_path):
    mols = tmp_path / "m.smi"
    mols.write_text("\n".join(["smiles id"] + [f"{s} m{i}" for i in range(25) for j, (s, _) in enumerate(MOLECULES)]) + "\n")
    body = ("from archetool.data import featurizers as f\n"
            "import logging; logging.basicConfig(level=logging.INFO)\n"
            "x, valid = f.featurize_smiles([l.split()[0] for l in open('m.smi').read().splitlines()[1:]], (2, 64, False, ()), jobs=2)\n"
            "print(int(valid.sum()), f.main_script_reruns())\n")
    guarded = "if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in body.splitlines())
    results = {}
    for name, source in (("plain", body), ("guarded", guarded)):
        (tmp_path / f"{name}.py").write_text(source)
        run = subprocess.run([sys.executable, f"{name}.py"], cwd=tmp_path, capture_output=True, text=True,
                             env=ENV, timeout=300)
        assert run.returncode == 0, run.stderr
        results[name] = (run.stdout.split(), run.stderr)
    assert results["plain"][0] == ["600", str(tmp_path / "plain.py")]
    assert "outside an `if __name__ == \"__main__\":` block" in results["plain"][1]
    assert results["guarded"][0] == ["600", "None"] and "worker processes would run" not in results["guarded"][1]


# --- an interrupt while the read-ahead thread starts (seen under load in test_trust's SIGTERM test) ----------
def test_prefetch_closes_its_source_only_when_no_thread_runs_it():
    import threading

    from archetool.threads import close_when_idle

    closed = []

    def slow():
        try:
            time.sleep(0.3)
            yield 1
        finally:
            closed.append(True)

    items = slow()
    worker = threading.Thread(target=next, args=(items,))
    worker.start()
    time.sleep(0.05)  # the worker is inside next(items), as after a signal cut pool.submit short
    close_when_idle(items)
    worker.join(5)
    assert closed == [True] and not worker.is_alive()
