"""embed's distribution-shift warning: one line with figures for data unlike the training data, silence
for data like them."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, SHARED_DATA, make_table, run_cli
from archetool.shift import ShiftMonitor, shift_reference

WARNING = "the data look unlike the training data"


def shift_lines(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if WARNING in line]


def test_reference_and_monitor_figures():
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 10)).astype(np.float32)
    ref = shift_reference(x, "gaussian")
    assert ref["features_from"] == 0 and ref["rows"] == 2000
    ms = (x ** 2).mean(1)
    assert ref["row_ms_q99"] == pytest.approx(np.quantile(ms, 0.99), rel=1e-5)
    assert np.mean(ms > ref["row_ms_q99"]) == pytest.approx(0.01, abs=1e-3)
    # fingerprints + descriptors: only the continuous descriptors count
    assert shift_reference(x, "mixed:4")["features_from"] == 4 and shift_reference(x[:, :4], "mixed:4") == {}
    monitor = ShiftMonitor(ref)
    for block in (x[:700], x[700:]):  # batches add up
        monitor.add([monitor.batch_figures(torch.from_numpy(block))])
    figures = monitor.figures()
    assert figures["rows"] == 2000 and figures["far_rows"] == int((ms > ref["row_ms_q99"]).sum())
    np.testing.assert_allclose(figures["median_abs_mean_z"], np.median(np.abs(x.mean(0))), rtol=1e-5)
    assert monitor.warning("d") is None
    shifted = ShiftMonitor(ref)
    shifted.add([shifted.batch_figures(torch.from_numpy(x[:50] + 3.0))])
    line = shifted.warning("new.csv")
    assert line.startswith("new.csv: the data look unlike the training data: 50 of 50 rows (100.0 %, 1 % expected)")
    assert "median per-feature mean z 3" in line


@pytest.fixture
def table_model(tmp_path):
    table = make_table(n=300, seed=3)
    train = tmp_path / "train.csv"
    table.iloc[:240].to_csv(train, index=False)
    out = tmp_path / "m"
    assert run_cli("fit", train, "--side", "y", "--out", out, *FAST_FIT).exit_code == 0
    return table, train, out


def test_no_warning_for_the_training_data_held_out_rows_or_one_cluster(tmp_path, table_model):
    table, train, out = table_model
    assert shift_lines(run_cli("embed", out, train, "--out", tmp_path / "a.parquet")) == []
    held_out = tmp_path / "held_out.csv"
    table.iloc[240:].to_csv(held_out, index=False)
    assert shift_lines(run_cli("embed", out, held_out, "--out", tmp_path / "b.parquet")) == []
    cluster = tmp_path / "cluster.csv"  # a subset of the training rows, far from the mean but not unlike them
    table.iloc[:240][table.iloc[:240]["cls"] == "A"].to_csv(cluster, index=False)
    assert shift_lines(run_cli("embed", out, cluster, "--out", tmp_path / "c.parquet")) == []


def test_warning_for_data_shifted_by_ten_sd(tmp_path, table_model):
    table, train, out = table_model
    features = [f"f{i}" for i in range(8)]
    shifted = table.iloc[240:].copy()
    shifted[features] += 10 * table.iloc[:240][features].std(ddof=0)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    target = tmp_path / "e.parquet"
    lines = shift_lines(run_cli("embed", out, path, "--out", target, "--chunk-rows", "16", "--batch-size", "8"))
    assert len(lines) == 1
    assert f"archetool: {path}: the data look unlike the training data: 60 of 60 rows (100.0 %, 1 % expected)" in lines[0]
    # every feature moved by 10 training sd: the median per-feature mean z is 10 (held-out rows: about)
    median_z = float(re.search(r"median per-feature mean z ([0-9.]+) \(training 0\)", lines[0])[1])
    assert 9 < median_z < 11, lines[0]
    assert len(pd.read_parquet(target)) == 60  # a warning, not a refusal


def test_models_without_a_reference_are_not_checked(tmp_path, table_model):
    table, train, out = table_model
    prep = json.loads((out / "preprocessing.json").read_text())
    assert prep["reference"]["rows"] == 240
    del prep["reference"]  # as written by earlier versions
    (out / "preprocessing.json").write_text(json.dumps(prep))
    shifted = table.iloc[240:].copy()
    shifted["f0"] += 1e3
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    assert shift_lines(run_cli("embed", out, path)) == []


LINCS = SHARED_DATA / "lincs_l1000_a375_plate"


@pytest.mark.skipif(not LINCS.with_suffix(".gctx").exists(), reason="shared LINCS plate not present")
def test_lincs_level3_gct_embedded_with_a_level4_gctx_model_warns(tmp_path):
    out = tmp_path / "lincs"
    assert run_cli("fit", LINCS.with_suffix(".gctx"), "--out", out, "--epochs", "2", "--no-progress").exit_code == 0
    assert shift_lines(run_cli("embed", out, LINCS.with_suffix(".gctx"), "--out", tmp_path / "l4.parquet")) == []
    lines = shift_lines(run_cli("embed", out, LINCS.with_suffix(".gct"), "--out", tmp_path / "l3.parquet"))
    assert len(lines) == 1 and "377 of 377 rows (100.0 %, 1 % expected)" in lines[0]
