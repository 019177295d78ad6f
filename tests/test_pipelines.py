"""Issue 12 items 2, 3, 5, 6: stdin pipelines, --version, progress lines, scaffold split, parallel featurisation."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FAST_FIT, MOLECULES, REPO, run_cli
from test_bad_input import assert_clean_error

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
#: ring systems, so a scaffold split has several scaffolds to hold out
RING_MOLECULES = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccncc1C", "c1ccncc1O", "C1CCCCC1C", "C1CCCCC1O",
                  "c1ccc2ccccc2c1", "c1ccc2ccccc2c1C", "C1CCOC1C", "C1CCOC1N", "c1ccoc1C", "c1ccoc1O", "c1ccsc1C",
                  "c1ccsc1N", "C1CC1C", "C1CC1O", "C1CCC1N", "c1ccccc1-c1ccccc1", "c1ccccc1-c1ccccc1O"]


def _cli(*args: str, stdin: bytes | None = None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archetool", *map(str, args)], input=stdin, capture_output=True,
                          env=env or ENV, timeout=300)


def test_version_is_printed_without_importing_torch():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "archetool", "--version"], capture_output=True,
                            text=True, env=ENV, timeout=120)
    from archetool import __version__

    assert result.returncode == 0
    assert result.stdout.strip() == f"archetool {__version__}"
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "rdkit" not in imported


def test_stdin_without_format_is_one_clear_line(tmp_path):
    result = _cli("fit", "-", "--out", tmp_path / "m", stdin=b"CCO\n")
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        "error: -: reading data from standard input needs --format smi, csv or tsv "
        "(e.g. cat x.smi | archetool embed MODEL - --format smi)"]
    assert_clean_error(run_cli("embed", tmp_path / "m", "-"), "-: reading data from standard input needs --format")


def test_unknown_stdin_format(tmp_path):
    assert_clean_error(run_cli("embed", tmp_path / "m", "-", "--format", "xlsx"), "--format 'xlsx'", "smi, csv, tsv")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A deepaa model on 64-bit fingerprints without descriptors: featurising thousands of rows is quick."""
    root = tmp_path_factory.mktemp("pipe")
    smi = root / "train.smi"
    smi.write_text("".join(f"{s} m{i}\n" for i, (s, _) in enumerate(MOLECULES)))
    result = _cli("fit", smi, "--out", root / "model", "--n-bits", "64", "--no-descriptors", "--k", "3", *FAST_FIT)
    assert result.returncode == 0, result.stderr.decode()
    return root / "model"


def test_stdin_embed_matches_file_embed(small_model, tmp_path):
    text = "".join(f"{s} m{i}\n" for i, (s, _) in enumerate(MOLECULES))
    path = tmp_path / "x.smi"
    path.write_text(text)
    piped = _cli("-q", "embed", small_model, "-", "--format", "smi", stdin=text.encode())
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stderr == b""
    from io import StringIO

    got = pd.read_csv(StringIO(piped.stdout.decode()))
    want = pd.read_csv(StringIO(_cli("-q", "embed", small_model, path).stdout.decode()))
    assert list(got["name"]) == [f"m{i}" for i in range(len(MOLECULES))]
    pd.testing.assert_frame_equal(got, want, rtol=1e-5, atol=1e-5)


def test_pipe_closed_by_head_exits_quietly(small_model, tmp_path):
    """`cat x.smi | archetool embed MODEL - --format smi | head -n 3`: statuses 0 0 0 (or 141), nothing on stderr."""
    big = tmp_path / "big.smi"
    big.write_text("".join(f"{MOLECULES[i % len(MOLECULES)][0]} r{i}\n" for i in range(6000)))  # ~0.5 MB of CSV out
    script = (f"cat {big} | {sys.executable} -m archetool -q embed {small_model} - --format smi --jobs 2 2>{tmp_path}/err"
              f" | head -n 3 >{tmp_path}/out; echo ${{PIPESTATUS[@]}}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    statuses = result.stdout.split()
    assert len(statuses) == 3 and statuses[2] == "0", result.stdout
    assert statuses[1] in ("0", "141"), (statuses, (tmp_path / "err").read_text())
    assert (tmp_path / "err").read_text() == ""
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[0].startswith("name,z0") and lines[1].startswith("r0,") and lines[2].startswith("r1,")


def test_plain_progress_lines_in_a_pipeline(small_model, tmp_path):
    path = tmp_path / "x.smi"
    path.write_text("".join(f"{MOLECULES[i % len(MOLECULES)][0]} r{i}\n" for i in range(50)))
    result = _cli("embed", small_model, path, "--chunk-rows", "20", "--batch-size", "10",
                  env={**ENV, "ARCHETOOL_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr.decode()
    lines = [l for l in result.stderr.decode().splitlines() if l.startswith("archetool: embed: ")]
    assert [l.split(" rows")[0] for l in lines] == ["archetool: embed: 20", "archetool: embed: 40", "archetool: embed: 50"]
    assert all(l.endswith("rows/s)") for l in lines)


def test_row_progress_plain_mode(monkeypatch):
    from archetool.progress import RowProgress

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("archetool")
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "level", logging.INFO)
    with RowProgress("featurise", total=3000, bar=False, interval=0) as progress:
        progress.update(1000)
        progress.update(2000)
    with RowProgress("quiet", bar=False, interval=3600) as progress:
        progress.update(5)  # within the interval: no line
    assert [m.split(" (")[0] for m in messages] == ["featurise: 1,000 of 3,000 rows", "featurise: 3,000 of 3,000 rows"]
    assert all(m.endswith(" rows/s)") for m in messages)


# --- scaffold split -----------------------------------------------------------------------------------

@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=25), fraction=st.floats(0.05, 0.5), seed=st.integers(0, 99))
@settings(max_examples=60, deadline=None)
def test_group_split_keeps_groups_whole(sizes, fraction, seed):
    from archetool.training.loop import split_indices

    groups = np.repeat(np.arange(len(sizes)), sizes)[np.random.default_rng(seed).permutation(sum(sizes))]
    train, val = split_indices(len(groups), fraction, seed, labels=None, groups=groups)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(groups)))
    assert not set(groups[train]) & set(groups[val])
    if len(groups) >= 4:  # train gets at least n - round(fraction n) rows' room filled greedily: never too small
        assert len(train) <= len(groups) - max(1, round(fraction * len(groups)))


def test_group_split_puts_big_groups_in_train():
    from archetool.training.loop import split_indices

    groups = np.array([0] * 50 + list(range(1, 51)))  # one big scaffold, 50 singletons
    train, val = split_indices(100, 0.2, 0, groups=groups)
    assert set(range(50)) <= set(train.tolist()) and len(val) == 20


def test_fit_scaffold_split(tmp_path):
    from archetool.data.scaffolds import murcko_scaffold

    smi = tmp_path / "rings.smi"
    smi.write_text("".join(f"{s} r{i}\n" for i, s in enumerate(RING_MOLECULES)))
    result = run_cli("fit", smi, "--out", tmp_path / "m", "--split", "scaffold", "--val-fraction", "0.3", *FAST_FIT)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "m" / "training_rows.parquet")
    scaffolds = rows["smiles"].map(murcko_scaffold)
    train, val = set(scaffolds[rows["split"] == "train"]), set(scaffolds[rows["split"] == "val"])
    assert val and train and not train & val
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["train"]["split"] == "scaffold" and config["summary"]["split"] == "scaffold"
    assert config["summary"]["val_rows"] == int((rows["split"] == "val").sum())
    info = run_cli("info", tmp_path / "m")
    assert "split=scaffold" in info.stdout


def test_scaffold_split_on_a_table_is_one_clear_line(table_csv, tmp_path):
    assert_clean_error(run_cli("fit", table_csv, "--split", "scaffold", "--out", tmp_path / "m", *FAST_FIT),
                       "table.csv: --split scaffold needs molecules", "use --split random")
    assert not (tmp_path / "m").exists()


def test_unknown_split(table_csv, tmp_path):
    assert_clean_error(run_cli("fit", table_csv, "--split", "cluster", "--out", tmp_path / "m"), "--split 'cluster'", "random, scaffold")


# --- featurisation ------------------------------------------------------------------------------------

def test_parallel_featurisation_equals_serial_in_order():
    from archetool.data.featurizers import descriptor_names, featurize_chunk, featurize_smiles

    smiles = [MOLECULES[i % len(MOLECULES)][0] for i in range(700)]
    smiles[5], smiles[650] = "not-a-smiles", ""
    settings_ = (2, 128, False, tuple(descriptor_names("fast")[:20]))
    x1, v1 = featurize_chunk(smiles, settings_)
    x2, v2 = featurize_smiles(smiles, settings_, jobs=2, chunk=64)
    assert np.flatnonzero(~v2).tolist() == [5, 650]
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_fast_descriptor_set_and_old_models():
    from archetool.data.featurizers import SLOW_DESCRIPTORS, MorganFeaturizer, featurizer_from_state

    fast, full = MorganFeaturizer(n_bits=16), MorganFeaturizer(n_bits=16, descriptor_set="full")
    assert not set(SLOW_DESCRIPTORS) & set(fast.descriptor_names())
    assert set(full.descriptor_names()) - set(fast.descriptor_names()) == set(SLOW_DESCRIPTORS)
    old_state = {k: v for k, v in full.state().items() if k != "descriptor_set"}  # a model saved by archetool 0.1
    old = featurizer_from_state(old_state)
    assert old.feature_names == full.feature_names and "rdkit_qed" in old.feature_names
    from archetool.data.source import RawBatch

    batch = RawBatch(ids=np.array(["a", "b"]), obs=pd.DataFrame({"smiles": ["CCO", "c1ccccc1O"]}))
    feats = old.transform(batch, "x.smi")
    assert feats.x.shape == (2, len(full.feature_names))
    qed = feats.x[:, old.feature_names.index("rdkit_qed")]
    assert np.all((qed > 0) & (qed < 1))


def test_featuriser_values_equal_plain_rdkit_calls():
    """The cached E-state indices and vectorised NaN handling give RDKit's own descriptor values."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors, rdFingerprintGenerator

    from archetool.data.featurizers import descriptor_names, featurize_chunk

    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1", "CCN(CC)CC", "O=[N+]([O-])c1ccccc1", "[Na+].[Cl-]"]
    names = descriptor_names("full")
    x, valid = featurize_chunk(smiles, (2, 64, False, tuple(names)))
    functions = dict(Descriptors.descList)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=64)
    for row, smi in zip(x, smiles):
        mol = Chem.MolFromSmiles(smi)
        np.testing.assert_array_equal(row[:64], generator.GetFingerprintAsNumPy(mol).astype(np.float32))
        want = np.array([functions[n](Chem.MolFromSmiles(smi)) for n in names], dtype=np.float64)
        want[~(np.isfinite(want) & (np.abs(want) < 1e8))] = np.nan
        np.testing.assert_allclose(row[64:], want.astype(np.float32), rtol=1e-6, atol=0, equal_nan=True)
    assert valid.all()


def test_a_dead_worker_is_a_clear_error_and_ctrl_c_an_interrupt():
    import signal
    from types import SimpleNamespace

    from archetool.data.featurizers import _worker_death
    from archetool.errors import ArchetoolError

    done = lambda code: SimpleNamespace(exitcode=code, join=lambda timeout=None: None)  # noqa: E731
    assert isinstance(_worker_death([done(0), done(-signal.SIGINT)]), KeyboardInterrupt)
    err = _worker_death([done(0), done(-signal.SIGKILL)])
    assert isinstance(err, ArchetoolError) and "exit status -9" in str(err) and "--jobs 1" in str(err)


def test_fit_reads_a_csv_table_from_stdin(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from archetool.cli.app import app
    from conftest import make_table

    monkeypatch.chdir(tmp_path)
    text = make_table(n=60).to_csv(index=False)
    result = CliRunner().invoke(app, ["fit", "-", "--format", "csv", "--side", "y", *FAST_FIT], input=text)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "stdin.deepaa.archetool" / "training_rows.parquet")
    assert list(rows["id"]) == [f"s{i:03d}" for i in range(60)]
    prep = json.loads((tmp_path / "stdin.deepaa.archetool" / "preprocessing.json").read_text())
    assert prep["featurizer"]["feature_names"] == [f"f{i}" for i in range(8)]
