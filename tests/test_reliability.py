"""Scale-out and reliability: DDP with gloo, kill -9 and resume, atomic outputs, safe loading, reader fuzzing."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FAST_FIT, REPO, make_table, run_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def archetool_cmd(*args):
    return [sys.executable, "-m", "archetool", *map(str, args)]


def test_torchrun_two_cpu_processes_match_single_process_quality(tmp_path):
    data = tmp_path / "t.csv"
    make_table(n=1000).to_csv(data, index=False)
    common = ["--side", "y", "--k", "3", "--epochs", "25", "--batch-size", "64", "--hidden", "32,16", "--seed", "3", "--patience", "0"]
    def torchrun(out):
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
             "-m", "archetool", "fit", str(data), "--out", str(out), *common],
            capture_output=True, text=True, env=ENV, timeout=300,
        )

    out = tmp_path / "ddp"
    run = torchrun(out)
    if run.returncode != 0 and "(SIGABRT)" in run.stderr:
        # once in ~10 CI runs on a loaded 2-core machine a rank aborted inside gloo (SIGABRT, no Python
        # traceback) and the run passed when repeated; a second failure fails the test with both logs
        first = run.stderr
        out = tmp_path / "ddp-again"
        run = torchrun(out)
        assert run.returncode == 0, first[-3000:] + "\n--- and again ---\n" + run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-4000:]
    single = subprocess.run(archetool_cmd("fit", data, "--out", tmp_path / "one", *common), capture_output=True, text=True, env=ENV, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    import json

    ddp_cfg = json.loads((out / "config.json").read_text())
    one_cfg = json.loads((tmp_path / "one" / "config.json").read_text())
    assert ddp_cfg["world_size"] == 2 and one_cfg["world_size"] == 1
    print(ddp_cfg["summary"], one_cfg["summary"])
    assert ddp_cfg["summary"]["val_r2_y"] > 0.6
    assert abs(ddp_cfg["summary"]["val_r2_y"] - one_cfg["summary"]["val_r2_y"]) < 0.15
    assert run.stderr.count("saved deepaa model") == 1  # rank 0 alone writes and reports
    assert len(pd.read_csv(out / "history.csv")) == 25


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = tmp_path / "t.csv"
    make_table(n=3000, p=40).to_csv(data, index=False)
    common = ["--side", "y", "--epochs", "30", "--hidden", "256,256", "--patience", "0", "--seed", "5", "--batch-size", "64"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(archetool_cmd("fit", data, "--out", out, *common), env=ENV, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "config.json").exists()  # no complete-looking model after the kill
    assert (out / ".archetool.lock").exists()  # the killed run's lock file stays, but its OS lock died with it
    resumed = subprocess.run(archetool_cmd("fit", data, "--out", out, "--resume", *common), capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr
    start = int(resumed.stderr.split("at epoch ")[1].split()[0])
    assert 1 < start <= 30
    full = subprocess.run(archetool_cmd("fit", data, "--out", tmp_path / "full", *common), capture_output=True, text=True, env=ENV, timeout=300)
    assert full.returncode == 0
    h_resumed = pd.read_csv(out / "history.csv")
    h_full = pd.read_csv(tmp_path / "full" / "history.csv")
    assert list(h_resumed["epoch"]) == list(range(1, 31))
    pd.testing.assert_frame_equal(h_resumed.drop(columns="seconds"), h_full.drop(columns="seconds"), rtol=1e-4)


def test_killed_embed_leaves_no_complete_looking_output(tmp_path):
    data = tmp_path / "big.csv"
    make_table(n=200).to_csv(data, index=False)
    model = tmp_path / "m"
    assert run_cli("fit", data, "--out", model, *FAST_FIT).exit_code == 0
    big = tmp_path / "big.parquet"
    pd.concat([make_table(n=200)] * 1000, ignore_index=True).to_parquet(big)  # 200k rows
    target = tmp_path / "emb.parquet"
    proc = subprocess.Popen(archetool_cmd("embed", model, big, "--out", target, "--chunk-rows", "2000"), env=ENV)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".emb.*")):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    assert list(tmp_path.glob(f".emb.{proc.pid}.*.part.parquet"))  # the partial file is hidden, clearly marked
    # issue 15 item 9: the next write to the target removes the part of the killed process
    assert run_cli("embed", model, data, "--out", target).exit_code == 0
    assert not list(tmp_path.glob(".emb.*")) and len(pd.read_parquet(target)) == 200


def test_failed_archetypes_write_leaves_target_untouched(tmp_path, table_csv, monkeypatch):
    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, "--side", "y", *FAST_FIT).exit_code == 0
    from archetool.analysis import plots

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "simplex_plot", crash)  # dies after archetypes.csv and exemplars.csv
    result = run_cli("archetypes", model, "--out", tmp_path / "arch")
    assert result.exit_code != 0 and "No space left on device" in result.stderr
    assert not (tmp_path / "arch").exists()
    assert not list(tmp_path.glob(".arch*"))


def test_pickle_payload_in_weights_is_refused_without_running(tmp_path, table_csv):
    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, *FAST_FIT).exit_code == 0
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    torch.save({"evil": Payload()}, model / "weights.pt")
    result = run_cli("embed", model, table_csv)
    assert result.exit_code != 0
    assert "refused to load" in result.stderr and "weights.pt" in result.stderr
    assert not marker.exists()


def test_unknown_kind_and_mismatched_shapes_are_refused(tmp_path, table_csv):
    import json

    model = tmp_path / "m"
    assert run_cli("fit", table_csv, "--out", model, *FAST_FIT).exit_code == 0
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model": "gan"}))
    result = run_cli("info", model)
    assert result.exit_code != 0 and "unknown model kind 'gan'" in result.stderr
    config["hparams"]["hidden"] = [64, 8]
    (model / "config.json").write_text(json.dumps(config))
    result = run_cli("sample", model)  # info reads the JSON files only; commands that run the model load the weights
    assert result.exit_code != 0 and "do not match the config's shapes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


READER_EXTENSIONS = [".csv", ".tsv", ".parquet", ".smi", ".sdf", ".h5ad", ".gctx", ".gct"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ext=st.sampled_from(READER_EXTENSIONS), payload=st.binary(min_size=1, max_size=400))
def test_random_bytes_give_a_clear_error_never_a_traceback(tmp_path, ext, payload):
    from archetool.data.prepare import load_training_data
    from archetool.errors import InputError

    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(payload)
    try:
        load_training_data(path)
    except InputError as err:
        assert "\n" not in str(err) and str(err)
    # reading junk as a valid table is acceptable; anything else (a traceback) fails the test


def _valid_bytes(tmp_path, ext) -> bytes:
    from conftest import MOLECULES, make_adata

    path = tmp_path / f"valid{ext}"
    frame = make_table(n=20)
    if ext == ".csv":
        frame.to_csv(path, index=False)
    elif ext == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif ext == ".parquet":
        frame.to_parquet(path)
    elif ext == ".smi":
        path.write_text("smiles id cv\n" + "\n".join(f"{s} m{i} {c}" for i, (s, c) in enumerate(MOLECULES)))
    elif ext == ".h5ad":
        make_adata(n=20, genes=5).write_h5ad(path)
    return path.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ext=st.sampled_from([".csv", ".tsv", ".parquet", ".smi", ".h5ad"]), cut=st.floats(0.05, 0.95))
def test_truncated_files_give_a_clear_error(tmp_path, ext, cut):
    from archetool.data.prepare import load_training_data
    from archetool.errors import InputError

    blob = _valid_bytes(tmp_path, ext)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(blob[: max(1, int(len(blob) * cut))])
    try:
        load_training_data(path)
    except InputError as err:
        assert "\n" not in str(err)


def test_wrong_encoding_and_mixed_types(tmp_path):
    from archetool.data.prepare import load_training_data
    from archetool.errors import InputError

    latin = tmp_path / "latin.smi"
    latin.write_bytes("smiles name\nCCO \xe9thanol\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_training_data(latin)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("id,a,b,y\nx,1,2,3\ny,2,oops,4\nz,3,4,5\n")
    # 'b' is numbers but for one token: refused naming it (issue 15; it was silently left out of the features)
    with pytest.raises(InputError, match="feature column 'b' is not numeric \\(row 2 holds 'oops'\\)"):
        load_training_data(mixed, side=["y"])
    with pytest.raises(InputError, match="side column 'b' is not numeric .*data row 2 holds 'oops'"):
        load_training_data(mixed, side=["b"])


def test_outputs_get_normal_permissions(tmp_path):
    from archetool.atomic import FILE_MODE, atomic_path

    target = tmp_path / "x.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("a\n")
    assert target.stat().st_mode & 0o777 == FILE_MODE
