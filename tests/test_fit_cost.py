"""Cost of molecule fits (issue 18): --max-tokens and the decoder's loss mask, threads, length buckets,
model selection that sees the token loss, the feature cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.data.selfies_tokens import PAD, SelfiesVocabulary, encode_molecules
from conftest import FAST_FIT, MOLECULES, run_cli

SMILES = [s for s, _ in MOLECULES]
FIT = ("--k", "3", "--n-bits", "64", "--no-descriptors", *FAST_FIT)


# --- long molecules ---------------------------------------------------------------------------------
def test_max_length_is_a_high_percentile_of_the_lengths_and_longer_molecules_are_padding_only():
    selfies = ["[C]"] * 300 + ["[C][C][C][C][C][C][C][C][C][C]"]  # one long molecule in 301
    vocabulary = SelfiesVocabulary.build(selfies)
    assert vocabulary.max_length == 1  # the 99.5th percentile, not the longest
    tokens = vocabulary.encode(selfies)
    assert (tokens[-1] == PAD).all() and (tokens[:-1, 0] != PAD).all()
    assert SelfiesVocabulary.build(selfies, max_length=10).encode(selfies)[-1, 9] != PAD  # an override keeps it
    assert SelfiesVocabulary.build(selfies[-3:]).max_length == 10  # tiny data: the longest


def test_long_molecules_are_left_out_of_the_decoder_loss_only():
    from archetool.models import build_model

    selfies, _ = encode_molecules(SMILES)
    vocabulary = SelfiesVocabulary.build(selfies, max_length=3)
    tokens = torch.from_numpy(vocabulary.encode(selfies))
    long = tokens[:, 0] == PAD
    assert 0 < int(long.sum()) < len(SMILES)
    torch.manual_seed(0)
    module = build_model("deepaa", n_features=5, n_archetypes=3, n_side=0, hidden=[8],
                         sequence_decoder={"vocab_size": vocabulary.size, "max_length": vocabulary.max_length})
    cond = torch.randn(len(SMILES), 2)
    zero = lambda: {"loss": torch.zeros(())}  # noqa: E731
    everything = module.add_token_loss(zero(), {"tokens": tokens}, cond)
    short = module.add_token_loss(zero(), {"tokens": tokens[~long]}, cond[~long])
    assert everything["tokens"].item() == pytest.approx(short["tokens"].item(), rel=1e-6)
    assert everything["loss"].item() == pytest.approx(short["loss"].item(), rel=1e-6)
    only_long = module.add_token_loss(zero(), {"tokens": tokens[long]}, cond[long])  # long ones only: no NaN
    assert only_long["tokens"].item() == 0.0 and only_long["loss"].item() == 0.0
    terms = module.loss_terms({"x": torch.randn(len(SMILES), 5), "tokens": tokens})  # the encoder still trains
    terms["loss"].backward()
    assert all(p.grad is not None for p in module.encoder.parameters())


def test_max_tokens_sends_long_molecules_to_the_loss_mask_and_the_count_to_the_log(smi_file, tmp_path):
    out = tmp_path / "m"
    result = run_cli("fit", smi_file, "--side", "heat_capacity", "--max-tokens", "3", "--out", out, *FIT)
    assert result.exit_code == 0, result.output
    import selfies as sf

    n_long = sum(len(list(sf.split_selfies(s))) > 3 for s in encode_molecules(SMILES)[0])
    assert n_long > 0
    assert (f"{n_long} of {len(SMILES)} molecules have more than 3 SELFIES symbols (--max-tokens 3)" in result.stderr
            and "left out of the sequence decoder's loss" in result.stderr)
    prep = json.loads((out / "preprocessing.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert prep["sequence"]["max_length"] == 3 and config["hparams"]["sequence_decoder"]["max_length"] == 3
    history = pd.read_csv(out / "decoder_history.csv")
    assert np.isfinite(history["val_tokens"]).all()
    assert len(pd.read_parquet(out / "training_rows.parquet")) == len(SMILES)  # long ones still train the encoder
    plain = run_cli("fit", smi_file, "--side", "heat_capacity", "--out", tmp_path / "p", *FIT)
    assert plain.exit_code == 0 and "SELFIES symbols" not in plain.stderr  # tiny data: nothing left out


# --- threads ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("threads")
    path = tmp / "mols.smi"
    path.write_text("\n".join(["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)]) + "\n")
    assert run_cli("fit", path, "--side", "heat_capacity", "--out", tmp / "m", *FIT).exit_code == 0
    return path, tmp / "m"


@pytest.mark.parametrize("command", ["fit", "sample", "interpolate", "archetypes", "embed"])
def test_threads_is_honoured(small_model, tmp_path, command, monkeypatch):
    import archetool.threads as threads

    data, model = small_model
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "default_threads", lambda: (2, "test"))
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n))[1])
    before = torch.get_num_threads()
    real(2)
    try:
        args = {"fit": ("fit", data, "--side", "heat_capacity", "--out", tmp_path / "m", *FIT),
                "sample": ("sample", model, "--n", "3"), "interpolate": ("interpolate", model, "--start", "a0", "--end", "a1"),
                "archetypes": ("archetypes", model, "--out", tmp_path / "a"),
                "embed": ("embed", model, data, "--out", tmp_path / "e.csv")}[command]
        result = run_cli(*args, "--threads", "1")
        assert result.exit_code == 0, result.output
        assert seen and seen[0] == 1 and set(seen) <= {1}  # never the default's 2
        seen.clear()
        if command in ("fit", "sample"):  # without --threads: the default
            again = ("fit", data, "--side", "heat_capacity", "--out", tmp_path / "m2", *FIT) if command == "fit" else args
            assert run_cli(*again).exit_code == 0
            assert seen and seen[0] == 2
    finally:
        real(before)


def test_default_threads_respect_the_environment_and_other_jobs(monkeypatch, tmp_path):
    import archetool.threads as threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads()[0] == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads.os if hasattr(threads, "os") else __import__("os"), "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "busy_cpus", lambda *a, **k: 0)
    assert threads.default_threads()[0] == 4  # a quiet machine: every CPU
    monkeypatch.setattr(threads, "busy_cpus", lambda *a, **k: 3)
    assert threads.default_threads()[0] == 1  # three other jobs running: one thread
    monkeypatch.setattr(threads, "busy_cpus", lambda *a, **k: 9)
    assert threads.default_threads()[0] == 1


def test_available_cpus_reads_slurm_and_cgroup_quotas(monkeypatch, tmp_path):
    import os

    import archetool.threads as threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: threads.__dict__["_cgroup_quota_at"](tmp_path))
    assert threads.available_cpus() == 2  # 1.5 CPUs of quota: rounded up
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.available_cpus() == 8
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert threads.available_cpus() == 3
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_quota_at(v1) == 4.0


# --- batches and model selection --------------------------------------------------------------------
@given(st.lists(st.integers(0, 40), min_size=1, max_size=300), st.integers(2, 17), st.integers(1, 4))
@settings(max_examples=40, deadline=None)
def test_length_buckets_partition_the_epoch(lengths, batch_size, pool):
    from archetool.training.loop import bucketed_batches

    lengths = np.array(lengths)
    perm = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    batches = bucketed_batches(perm, lengths, batch_size, torch.Generator().manual_seed(1), pool=pool)
    flat = torch.cat(batches).numpy()
    assert sorted(flat.tolist()) == sorted(perm.tolist())  # every row once
    assert all(len(b) == batch_size for b in batches[:-1]) and len(batches[-1]) <= batch_size
    spread = np.mean([np.ptp(lengths[b.numpy()]) for b in batches])
    assert spread <= np.ptp(lengths)


class _Scripted(torch.nn.Module):
    """A model whose validation terms follow a script: main loss best at epoch 3, tokens still falling."""

    MAIN = [200.0, 180.0, 170.0, 170.5, 171.0, 171.5, 172.0, 172.5, 173.0, 173.5]
    TOKENS = [2.0, 1.6, 1.4, 1.2, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9]

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.sequence_decoder = type("D", (), {"token_weight": 1.0})()
        self.epoch = 0

    def loss_terms(self, batch):
        tokens = torch.tensor(self.TOKENS[self.epoch]) + 0 * self.w.sum()
        loss = self.MAIN[self.epoch] + tokens + 0 * self.w.sum()
        return {"loss": loss, "tokens": tokens}

    def metrics(self, batch):
        return {}

    def on_epoch_start(self, epoch, n_epochs):
        self.epoch = epoch

    def annealing_epochs(self, n_epochs):
        return 0


def test_model_selection_keeps_training_while_the_decoder_improves():
    from archetool.training.loop import TrainConfig, train

    module = _Scripted()
    arrays = {"x": np.zeros((40, 2), np.float32)}
    result = train(module, arrays, TrainConfig(epochs=10, batch_size=8, patience=3), torch.device("cpu"))
    totals = [m + t for m, t in zip(_Scripted.MAIN, _Scripted.TOKENS)]
    assert int(np.argmin(totals)) + 1 == 3  # the total alone would keep epoch 3 and stop at epoch 6
    assert result.best_epoch == 6  # main / main_0 + tokens / tokens_0 is lowest at epoch 6 (1.3075)
    assert len(result.history) == 9 and result.stopped_early
    assert result.best_val == pytest.approx(totals[5])  # the total loss of the kept epoch
    assert [round(h["val_score"], 4) for h in result.history][:2] == [2.0, 1.7]


# --- feature cache ----------------------------------------------------------------------------------
def test_a_refit_reads_the_features_from_the_cache(smi_file, tmp_path, monkeypatch):
    import archetool.data.prepare as prepare

    monkeypatch.setenv("ARCHETOOL_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = prepare.default_featurizer

    def counting(*args, **kwargs):
        featurizer = real(*args, **kwargs)
        transform = featurizer.transform
        featurizer.transform = lambda *a, **k: (calls.append(1), transform(*a, **k))[1]
        return featurizer

    monkeypatch.setattr(prepare, "default_featurizer", counting)
    first, _ = prepare.load_training_data(smi_file, side=["heat_capacity"], featurizer_options={"n_bits": 64})
    second, _ = prepare.load_training_data(smi_file, side=["heat_capacity"], featurizer_options={"n_bits": 64})
    assert len(calls) == 1
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.tokens, second.tokens)
    prepare.load_training_data(smi_file, side=["heat_capacity"], featurizer_options={"n_bits": 32})
    assert len(calls) == 2  # other settings: another entry
    entries = sorted((tmp_path / "cache").glob("features-*.npz"))
    assert len(entries) == 2
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:100])  # corrupt (e.g. a killed writer on a non-atomic disk)
    third, _ = prepare.load_training_data(smi_file, side=["heat_capacity"], featurizer_options={"n_bits": 64})
    assert len(calls) == 3
    np.testing.assert_array_equal(first.x, third.x)


def test_the_cache_stores_bits_packed_and_mixed_columns_exactly(tmp_path, monkeypatch):
    from archetool.data import feature_cache

    monkeypatch.setenv("ARCHETOOL_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 2, (50, 70)), rng.normal(size=(50, 3))], axis=1).astype(np.float32)
    value = {"x": x, "valid": np.ones(50, bool), "names": np.array(["a", "", "ccc"])}
    stored = feature_cache.cached("t", ["C"] * 50, {"s": 1}, lambda: value)
    again = feature_cache.cached("t", ["C"] * 50, {"s": 1}, lambda: pytest.fail("recomputed"))
    for key in value:
        np.testing.assert_array_equal(stored[key], again[key])
    assert again["x"].dtype == np.float32
    assert next(tmp_path.glob("t-*.npz")).stat().st_size < x.nbytes / 4


def test_the_default_thread_count_follows_other_jobs_between_epochs(monkeypatch):
    import os

    import archetool.threads as threads

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    readings = iter([0, 0, 2, 2, 2, 0])
    monkeypatch.setattr(threads, "busy_cpus", lambda *a, **k: next(readings))
    try:
        retune = threads.EpochThreads()
        assert [retune() for _ in range(6)] == [2, 2, 2, 1, 1, 1]  # the median of the last three readings
        assert threads.EpochThreads(threads=2)() is None  # --threads: left alone
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.EpochThreads()() is None
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_waiting_openmp_threads_sleep_unless_the_user_chose(given, expected):
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = "import os, archetool, sys; assert 'torch' not in sys.modules; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
