"""Streaming embed: read-ahead (archetool.threads.prefetch), forward workers, readers that skip metadata."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_FIT, make_adata, run_cli
from test_bad_input import assert_clean_error

from archetool.threads import forward_pool, prefetch


# ------------------------------------------------------------------------------------------ prefetch


def test_prefetch_keeps_order_and_content():
    items = [np.full(3, i) for i in range(50)]
    out = list(prefetch(iter(items)))
    assert len(out) == 50 and all(a is b for a, b in zip(out, items))
    assert list(prefetch([])) == []


def test_prefetch_reads_the_next_item_while_the_caller_works():
    second_started = threading.Event()

    def produce():
        yield 0
        second_started.set()
        yield 1

    it = prefetch(produce())
    assert next(it) == 0
    assert second_started.wait(5), "the next item was not produced in the background"
    assert list(it) == [1]


def test_prefetch_keeps_at_most_two_items_alive():
    alive, most = [0], [0]
    lock = threading.Lock()

    class Item:
        def __init__(self):
            with lock:
                alive[0] += 1
                most[0] = max(most[0], alive[0])

        def __del__(self):
            with lock:
                alive[0] -= 1

    for item in prefetch(Item() for _ in range(30)):
        del item
    assert most[0] <= 2, most[0]
    assert alive[0] == 0


def test_prefetch_error_surfaces_unchanged_after_the_good_items():
    from archetool.errors import InputError

    def produce():
        yield 1
        yield 2
        raise InputError("big.gctx: cannot read signatures 16-23: truncated")

    got = []
    with pytest.raises(InputError) as err:
        for item in prefetch(produce()):
            got.append(item)
    assert got == [1, 2]
    assert str(err.value) == "big.gctx: cannot read signatures 16-23: truncated"


def test_prefetch_closed_early_closes_the_source():
    closed = threading.Event()

    def produce():
        try:
            for i in range(100):
                yield i
        finally:
            closed.set()

    it = prefetch(produce())
    assert next(it) == 0
    it.close()
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("archetool-prefetch")]


# ------------------------------------------------------------------------------------ forward pool


def test_forward_pool_runs_single_threaded_workers_and_restores_the_thread_count():
    import torch

    before = torch.get_num_threads()
    with forward_pool("cpu", 2) as pool:
        counts = list(pool.map(lambda _: torch.get_num_threads(), range(4)))
        assert torch.get_num_threads() == 1
    assert counts == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
    with forward_pool("cpu", 1) as pool:
        assert pool is None and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def h5ad_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    path = tmp / "cells.h5ad"
    make_adata(n=90, genes=12).write_h5ad(path)
    model_dir = tmp / "m.deepaa.archetool"
    assert run_cli("fit", path, "--k", "3", "--out", model_dir, *FAST_FIT).exit_code == 0
    return path, model_dir


@pytest.mark.parametrize("threads,batch_rows,batch_size", [(1, 90, 90), (2, 20, 7), (3, 16, 1024), (2, 1, 4)])
def test_iter_embeddings_same_rows_whatever_the_threads_and_sizes(h5ad_model, threads, batch_rows, batch_size):
    import torch

    from archetool.data.prepare import iter_inference_chunks
    from archetool.model import ArchetoolModel

    path, model_dir = h5ad_model
    model = ArchetoolModel.load(model_dir)
    (whole,) = iter_inference_chunks(path, model.prep, 1000)
    with torch.inference_mode():
        ref = {k: v.numpy() for k, v in model.module.embed(torch.from_numpy(whole.x)).items()}
    before = torch.get_num_threads()
    frames = [f for _, f in model.iter_embeddings(path, batch_rows, batch_size, threads=threads, obs_columns=())]
    assert torch.get_num_threads() == before
    table = pd.concat(frames, ignore_index=True)
    assert table["id"].tolist() == list(whole.ids)
    np.testing.assert_allclose(table[["z0", "z1"]].to_numpy(), ref["z"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table[["a0", "a1", "a2"]].to_numpy(), ref["weights"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("out_name", ["emb.parquet", "emb.h5ad"])
def test_embed_error_in_the_reader_thread_is_one_clear_line_and_leaves_nothing(h5ad_model, tmp_path, monkeypatch,
                                                                               out_name):
    from archetool.data.readers.h5ad import H5adSource
    from archetool.errors import InputError

    path, model_dir = h5ad_model
    original = H5adSource.iter_batches

    def failing(self, batch_rows):
        batches = original(self, batch_rows)
        yield next(batches)
        raise InputError(f"{self.path}: cannot read rows {batch_rows}-{2 * batch_rows - 1}: the file is truncated")

    monkeypatch.setattr(H5adSource, "iter_batches", failing)
    out = tmp_path / out_name
    assert_clean_error(run_cli("embed", model_dir, path, "--out", out, "--chunk-rows", "32"),
                       "cells.h5ad", "cannot read rows 32-63", "truncated")
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


# ----------------------------------------------------------------------------- readers: obs_columns


def test_gctx_reader_reads_only_the_wanted_metadata(tmp_path):
    from archetool.data.readers.gctx import GctxSource, write_gctx
    from archetool.data.source import ReadOptions

    n = 11
    path = write_gctx(tmp_path / "m.gctx", np.arange(n * 3, dtype=np.float32).reshape(n, 3), ["a", "b", "c"], None,
                      {"pert_iname": [f"p{i}" for i in range(n)], "pert_dose": ["-666"] + ["1.5"] * (n - 1)})
    full = list(GctxSource(path).iter_batches(4))
    none = list(GctxSource(path, ReadOptions(obs_columns=())).iter_batches(4))
    dose = list(GctxSource(path, ReadOptions(obs_columns=("pert_dose",))).iter_batches(4))
    for f, a, b in zip(full, none, dose):
        assert list(a.ids) == list(f.ids) == list(b.ids)
        np.testing.assert_array_equal(a.matrix, f.matrix)
        assert list(a.obs.columns) == [] and len(a.obs) == len(f)
        pd.testing.assert_frame_equal(b.obs, f.obs[["pert_dose"]])


def test_h5ad_reader_reads_only_the_wanted_obs(h5ad_model):
    from archetool.data.readers.h5ad import H5adSource
    from archetool.data.source import ReadOptions

    path, _ = h5ad_model
    full = list(H5adSource(path, ReadOptions()).iter_batches(40))
    some = list(H5adSource(path, ReadOptions(obs_columns=("n_counts",))).iter_batches(40))
    for f, s in zip(full, some):
        assert list(s.ids) == list(f.ids)
        pd.testing.assert_frame_equal(s.obs, f.obs[["n_counts"]])


def test_gctx_text_decoding_fast_path_and_utf8_fallback():
    from archetool.data.readers.gctx import _to_str

    assert _to_str(np.array([b"SIG1", b"CPC006_A375"])).tolist() == ["SIG1", "CPC006_A375"]
    assert _to_str(np.array(["é-1".encode(), b"x"])).tolist() == ["é-1", "x"]
    assert _to_str(np.array([b"bad\xff"]))[0] == "bad\ufffd"


def test_streaming_embed_scales_in_the_forward_pass_with_the_same_values(h5ad_model, tmp_path):
    """Chunks left in input units and standardised batch by batch give the same bits as scale_x (NaN too)."""
    import anndata as ad

    from archetool.data.prepare import iter_inference_chunks
    from archetool.model import ArchetoolModel

    path, model_dir = h5ad_model
    adata = ad.read_h5ad(path)
    adata.X[3, 4] = np.nan
    holed = tmp_path / "holed.h5ad"
    adata.write_h5ad(holed)
    model = ArchetoolModel.load(model_dir)
    (scaled,) = iter_inference_chunks(holed, model.prep, 1000)
    (raw,) = iter_inference_chunks(holed, model.prep, 1000, scale=False)
    assert scaled.scaled and not raw.scaled and np.isnan(raw.x[3, 4]) and scaled.x[3, 4] == 0
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the forward workers: a GEMM split over threads may round differently
    try:
        want = model.transform(scaled.x, 16)
    finally:
        torch.set_num_threads(before)
    frames = [f for _, f in model.iter_embeddings(holed, 1000, 16, threads=2, obs_columns=())]
    got = pd.concat(frames, ignore_index=True)
    # same batches, but another thread and buffer: BLAS kernels may round differently (alignment), so a
    # tolerance; a NaN that were not filled with the training mean would fail it all the same
    np.testing.assert_allclose(got[["z0", "z1"]].to_numpy(), want["z"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[["a0", "a1", "a2"]].to_numpy(), want["weights"], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- .h5ad output


@pytest.mark.parametrize("model_args", [("--k", "3", "--side", "n_counts"), ("--model", "nvae", "--label", "cell_type")],
                         ids=["deepaa", "nvae"])
def test_h5ad_output_is_written_chunk_by_chunk_with_the_same_values_as_parquet(tmp_path, model_args):
    import anndata as ad

    path = tmp_path / "cells.h5ad"
    adata = make_adata(n=90, genes=12)
    adata.uns["note"] = "kept"
    adata.write_h5ad(path)
    model = tmp_path / "m"
    assert run_cli("fit", path, *model_args, "--out", model, *FAST_FIT).exit_code == 0
    kind = "nvae" if "nvae" in model_args else "deepaa"
    table = tmp_path / "emb.parquet"
    assert run_cli("embed", model, path, "--out", table).exit_code == 0
    target = tmp_path / "emb.h5ad"
    result = run_cli("embed", model, path, "--out", target, "--chunk-rows", "32", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    want = pd.read_parquet(table)
    got = ad.read_h5ad(target)
    z = [c for c in want.columns if c.startswith("z")]
    # other chunk and batch sizes: other BLAS paths (1.19e-7 apart on an Intel Xeon), so the tolerance rule
    np.testing.assert_allclose(got.obsm[f"X_{kind}"], want[z].to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.X, adata.X)  # the input is kept as it was
    np.testing.assert_array_equal(got.layers["counts"], adata.layers["counts"])
    assert got.uns["note"] == "kept" and list(got.obs_names) == list(adata.obs_names)
    pd.testing.assert_frame_equal(got.obs[list(adata.obs.columns)], adata.obs)
    if kind == "deepaa":
        np.testing.assert_allclose(got.obsm["deepaa_weights"], want[["a0", "a1", "a2"]].to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.obs["deepaa_pred_n_counts"], want["pred_n_counts"], rtol=1e-5, atol=1e-6)
    else:
        assert isinstance(got.obs["nvae_pred_label"].dtype, pd.CategoricalDtype)
        assert got.obs["nvae_pred_label"].astype(str).tolist() == want["pred_label"].tolist()
        np.testing.assert_allclose(got.obs["nvae_pred_prob"], want["pred_prob"], rtol=1e-5, atol=1e-6)

    again = tmp_path / "again.h5ad"  # embedding an output again replaces the elements, nothing doubles
    assert run_cli("embed", model, target, "--out", again).exit_code == 0
    twice = ad.read_h5ad(again)
    assert list(twice.obs.columns) == list(got.obs.columns) and set(twice.obsm) == set(got.obsm)
    np.testing.assert_allclose(twice.obsm[f"X_{kind}"], got.obsm[f"X_{kind}"], rtol=1e-5, atol=1e-6)


def test_embedding_the_training_table_gives_the_stored_training_embeddings(tmp_path):
    """float64 table features are scaled as at fit time, so embed reproduces training_rows exactly."""
    from conftest import make_table

    path = tmp_path / "t.csv"
    make_table(n=150).to_csv(path, index=False)
    model = tmp_path / "m"
    assert run_cli("fit", path, "--side", "y", "--out", model, *FAST_FIT).exit_code == 0
    out = tmp_path / "emb.parquet"
    assert run_cli("embed", model, path, "--out", out).exit_code == 0
    stored = pd.read_parquet(model / "training_rows.parquet").set_index("id")
    got = pd.read_parquet(out).set_index("id").loc[stored.index]
    cols = [c for c in got.columns if c[0] in "za" and c[1:].isdigit()]
    # fit and embed batch the rows differently (other BLAS paths): the tolerance rule; the features are bitwise below
    np.testing.assert_allclose(got[cols].to_numpy(), stored[cols].to_numpy(), rtol=1e-5, atol=1e-6)

    from archetool.data.prepare import iter_inference_chunks, load_training_data
    from archetool.model import ArchetoolModel

    prep = ArchetoolModel.load(model).prep
    data, _ = load_training_data(path, side=["y"])
    (chunk,) = iter_inference_chunks(path, prep, 1000, scale=False)
    x = chunk.x
    if not chunk.scaled:  # float32 features: the workers' scaling, done the same way here
        mean, std = (np.asarray(v, np.float32) for v in (prep.x_mean, prep.x_std))
        x = (x - mean) / std
    np.testing.assert_array_equal(x, data.x)  # the same bits as at fit time
