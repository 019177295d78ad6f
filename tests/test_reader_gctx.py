"""LINCS .gctx / .gct readers and the .gctx writer (archetool.data.readers.gctx)."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archetool.data.readers.gctx import (
    COL_IDS,
    MATRIX_PATH,
    ROW_IDS,
    GctSource,
    GctxSource,
    open_gct,
    open_gctx,
    write_gctx,
)
from archetool.data.source import concat_batches
from archetool.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_GCTX = SHARED_DATA / "lincs_l1000_a375_plate.gctx"
REAL_GCT = SHARED_DATA / "lincs_l1000_a375_plate.gct"
needs_real = pytest.mark.skipif(not (REAL_GCTX.exists() and REAL_GCT.exists()), reason="shared LINCS plate absent")


@pytest.fixture(scope="module")
def real():
    if not (REAL_GCTX.exists() and REAL_GCT.exists()):
        pytest.skip("shared LINCS plate absent")
    gctx, gct = GctxSource(REAL_GCTX), GctSource(REAL_GCT)
    return gctx, gctx.read(), gct, gct.read()


def assert_same_batch(a, b):
    assert list(a.ids) == list(b.ids)
    assert a.feature_names == b.feature_names
    np.testing.assert_array_equal(a.matrix, b.matrix)
    pd.testing.assert_frame_equal(a.obs.reset_index(drop=True), b.obs.reset_index(drop=True))


def check_chunks(source, batch_rows):
    full = source.read()
    chunks = list(source.iter_batches(batch_rows))
    assert all(0 < len(c) <= batch_rows for c in chunks)
    assert [c.row_offset for c in chunks] == list(range(0, source.n_rows, batch_rows))
    assert all(c.matrix.dtype == np.float32 and c.matrix.flags.c_contiguous for c in chunks)
    assert all(isinstance(c.obs.index, pd.RangeIndex) and c.obs.index.start == 0 for c in chunks)
    assert_same_batch(concat_batches(chunks), full)


# ------------------------------------------------------------------------------------ real plate


@needs_real
def test_real_gctx_orientation_and_shape(real):
    gctx, batch, _, _ = real
    with h5py.File(REAL_GCTX, "r") as f:  # stored signatures x genes
        assert f[MATRIX_PATH].shape == (377, 978)
        assert f[ROW_IDS].shape == (978,) and f[COL_IDS].shape == (377,)
    assert gctx.kind == "expression" and gctx.n_rows == 377 and gctx.genes_first is False
    assert batch.matrix.shape == (377, 978) and batch.matrix.dtype == np.float32
    assert len(batch.ids) == 377 and len(set(batch.ids)) == 377
    assert batch.ids[0] == "LJP005_A375_24H_X1_B19:A03" and isinstance(batch.ids[0], str)
    assert batch.feature_names[:3] == ["200814_at", "218597_s_at", "217140_s_at"]
    assert len(batch.feature_names) == 978 and all(isinstance(g, str) for g in batch.feature_names)
    assert list(gctx.ids) == list(batch.ids)
    assert np.isfinite(batch.matrix).all()


@needs_real
def test_real_gctx_metadata(real):
    gctx, batch, _, _ = real
    obs = batch.obs
    assert "pert_iname" in gctx.columns and "id" not in gctx.columns
    assert list(obs.columns) == gctx.columns and len(obs) == 377
    # 60 distinct pert_iname values, DMSO (the 26 vehicle controls) among them
    assert obs["pert_iname"].nunique() == 60
    assert (obs["pert_iname"] == "DMSO").sum() == 26
    assert (obs["pert_type"] == "ctl_vehicle").sum() == 26
    assert set(obs.loc[obs["pert_type"] == "ctl_vehicle", "pert_iname"]) == {"DMSO"}
    # '-666' in a numeric-looking text field -> NaN; real numbers kept
    assert obs["pert_dose"].dtype == np.float64
    assert obs.loc[obs["pert_iname"] == "DMSO", "pert_dose"].isna().all()
    assert set(obs["pert_dose"].dropna().round(2)) <= {10.0, 3.33, 1.11, 0.37, 0.12, 0.04}
    assert obs["pert_time"].dtype == np.int64 and (obs["pert_time"] == 24).all()
    assert obs["qc_iqr"].dtype == np.float64
    # text fields that are entirely '-666' stay text
    assert obs["pert_vehicle"].dtype == object
    assert gctx.row_meta.loc["200814_at", "pr_gene_symbol"] == "PSME1"


@needs_real
def test_real_gct_matches_gctx(real):
    _, x, gct, t = real
    assert gct.n_rows == 377 and gct.version == "#1.3" and gct.kind == "expression"
    assert t.matrix.shape == (377, 978) and t.matrix.dtype == np.float32
    assert list(t.ids) == list(x.ids)
    assert t.feature_names == x.feature_names
    assert set(gct.columns) <= set(x.obs.columns) and "pert_iname" in gct.columns
    for col in ("pert_iname", "pert_type", "det_well", "pert_id"):
        assert list(t.obs[col]) == list(x.obs[col])
    np.testing.assert_allclose(t.obs["pert_dose"], x.obs["pert_dose"], equal_nan=True)
    # the .gctx's qc_* fields are the .gct's shifted by a constant (and at full precision)
    assert np.ptp(x.obs["qc_iqr"] - t.obs["qc_iqr"]) < 0.011
    # The shared .gct holds the plate's expression levels and the .gctx its per-gene robust z-scores
    # (plus a constant): the two agree up to one affine map per gene, at the .gct's 4-5 digits.
    xc = x.matrix.astype(np.float64)
    tc = t.matrix.astype(np.float64)
    for j in range(tc.shape[1]):
        slope, icpt = np.polyfit(tc[:, j], xc[:, j], 1)
        resid = np.abs(slope * tc[:, j] + icpt - xc[:, j]).max()
        assert resid <= 1e-3 * max(1.0, np.abs(xc[:, j]).max()), j
    assert 3 < t.matrix.min() and t.matrix.max() < 16  # log2 expression levels
    assert gct.row_meta.loc["200814_at", "pr_gene_symbol"] == "PSME1"


@needs_real
@pytest.mark.parametrize("batch_rows", [1, 50, 376, 377, 1000])
def test_real_chunked_equals_full(real, batch_rows):
    gctx, _, gct, _ = real
    check_chunks(gctx, batch_rows)
    if batch_rows >= 50:
        check_chunks(gct, batch_rows)


@needs_real
def test_factories(real):
    assert isinstance(open_gctx(REAL_GCTX, None), GctxSource)
    assert isinstance(open_gct(str(REAL_GCT), None), GctSource)


# ---------------------------------------------------------------------------------- writer / round trip


meta_text = st.lists(st.sampled_from(["a", "bb", "DMSO", "é", "x y", "-666"]), min_size=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 25),
    p=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    as_blocks=st.booleans(),
    named=st.booleans(),
    batch_rows=st.integers(1, 30),
)
def test_write_gctx_round_trip(tmp_path, n, p, seed, as_blocks, named, batch_rows):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, p)).astype(np.float32)
    matrix[rng.random((n, p)) < 0.05] = np.nan
    genes = [f"g{j}_at" for j in range(p)]
    sig_ids = [f"S:{i}" for i in range(n)] if named else None
    dose = np.where(rng.random(n) < 0.3, "-666", np.round(rng.random(n) * 10, 2).astype(str))
    col_meta = {
        "pert_iname": rng.choice(["DMSO", "drug é", "x"], size=n),
        "pert_dose": dose,
        "count": rng.integers(0, 100, size=n),
        "qc": rng.normal(size=n),
    }
    path = tmp_path / f"rt_{seed}_{n}_{p}.gctx"
    if as_blocks:
        cuts = np.sort(rng.integers(0, n + 1, size=3))
        blocks = (matrix[a:b] for a, b in zip([0, *cuts], [*cuts, n]))
        write_gctx(path, blocks, genes, sig_ids, col_meta, n_sig=n, chunk_rows=int(rng.integers(1, 8)))
    else:
        write_gctx(path, matrix, genes, sig_ids, col_meta)
    src = GctxSource(path)
    assert src.n_rows == n and src.feature_names == genes
    full = src.read()
    np.testing.assert_array_equal(full.matrix, matrix)
    expected_ids = sig_ids if named else [f"SIG{i:0{len(str(n - 1))}d}" for i in range(n)]
    assert list(full.ids) == expected_ids
    assert list(full.obs["pert_iname"]) == list(col_meta["pert_iname"])
    np.testing.assert_array_equal(full.obs["count"], col_meta["count"])
    np.testing.assert_array_equal(full.obs["qc"], col_meta["qc"])
    want_dose = pd.to_numeric(pd.Series(dose).replace("-666", np.nan))
    if (dose == "-666").all():
        assert list(full.obs["pert_dose"]) == list(dose)  # nothing numeric: left as text
    else:
        np.testing.assert_allclose(full.obs["pert_dose"].astype(float), want_dose, equal_nan=True)
    check_chunks(src, batch_rows)


def test_write_gctx_layout(tmp_path):
    path = write_gctx(tmp_path / "l.gctx", (np.ones((k, 4), np.float32) for k in (3, 0, 5)), list("ABCD"),
                      n_sig=8, col_meta={"cell_id": ["A375"] * 8}, row_meta={"pr_gene_symbol": list("wxyz")},
                      chunk_rows=4)
    with h5py.File(path, "r") as f:
        ds = f[MATRIX_PATH]
        assert ds.shape == (8, 4) and ds.dtype == np.float32 and ds.chunks == (4, 4)
        assert f[ROW_IDS][()].tolist() == [b"A", b"B", b"C", b"D"]
        assert f["0/META/COL/cell_id"].dtype.kind == "S"
    src = GctxSource(path)
    assert src.row_meta["pr_gene_symbol"].tolist() == list("wxyz")
    with pytest.raises(ValueError):
        write_gctx(tmp_path / "bad.gctx", (np.ones((3, 4)) for _ in range(2)), list("ABCD"), n_sig=5)
    with pytest.raises(ValueError):
        write_gctx(tmp_path / "bad2.gctx", np.ones((3, 5)), list("ABCD"))


def test_genes_first_orientation(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(7, 5)).astype(np.float32)  # 7 signatures x 5 genes
    std = write_gctx(tmp_path / "std.gctx", m, list("abcde"), [f"s{i}" for i in range(7)], {"k": np.arange(7)})
    alt = tmp_path / "alt.gctx"
    with h5py.File(std, "r") as f, h5py.File(alt, "w") as g:
        for name in (ROW_IDS, COL_IDS, "0/META/COL/k"):
            g.create_dataset(name, data=f[name][()])
        g.create_dataset(MATRIX_PATH, data=f[MATRIX_PATH][()].T)  # genes x signatures
    src = GctxSource(alt)
    assert src.genes_first is True
    assert_same_batch(src.read(), GctxSource(std).read())
    check_chunks(src, 3)


def test_metadata_missing_markers(tmp_path):
    n = 4
    path = write_gctx(tmp_path / "m.gctx", np.zeros((n, 2), np.float32), ["g1", "g2"], None, {
        "dose": ["-666", "1.5", "10", "na"],
        "all_missing": ["-666"] * n,
        "mixed": ["-666", "A03", "1", "2"],
        "ints": ["1", "2", "3", "4"],
    })
    obs = GctxSource(path).read().obs
    assert obs["dose"].dtype == np.float64 and obs["dose"].isna().tolist() == [True, False, False, True]
    assert obs["all_missing"].tolist() == ["-666"] * n
    assert obs["mixed"].tolist() == ["-666", "A03", "1", "2"]
    assert obs["ints"].dtype == np.int64


# ------------------------------------------------------------------------------------------ .gct text


def gct_text(version="#1.3", genes=("g1", "g2", "g3"), samples=("s1", "s2")):
    rng = np.random.default_rng(1)
    vals = rng.normal(size=(len(genes), len(samples))).round(4)
    if version == "#1.2":
        lines = ["#1.2", f"{len(genes)}\t{len(samples)}", "\t".join(["Name", "Description", *samples])]
        lines += ["\t".join([g, f"desc {g}", *map(str, v)]) for g, v in zip(genes, vals)]
        return "\n".join(lines) + "\n", vals
    lines = ["#1.3", f"{len(genes)}\t{len(samples)}\t1\t2", "\t".join(["id", "pr_gene_symbol", *samples]),
             "\t".join(["pert_iname", "na", *[f"drug{i}" for i in range(len(samples))]]),
             "\t".join(["pert_dose", "na", "-666", *["1.5"] * (len(samples) - 1)])]
    lines += ["\t".join([g, g.upper(), *map(str, v)]) for g, v in zip(genes, vals)]
    return "\r\n".join(lines) + "\r\n", vals


def test_gct_13_small(tmp_path):
    text, vals = gct_text()
    path = tmp_path / "s.gct"
    path.write_text(text, newline="")
    src = GctSource(path)
    assert src.columns == ["pert_iname", "pert_dose"] and src.n_rows == 2
    b = src.read()
    assert list(b.ids) == ["s1", "s2"] and b.feature_names == ["g1", "g2", "g3"]
    np.testing.assert_allclose(b.matrix, vals.T.astype(np.float32))
    assert b.obs["pert_iname"].tolist() == ["drug0", "drug1"]
    assert np.isnan(b.obs["pert_dose"][0]) and b.obs["pert_dose"][1] == 1.5
    check_chunks(src, 1)


def test_gct_12_and_gzip(tmp_path):
    text, vals = gct_text("#1.2")
    path = tmp_path / "s.gct.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    src = open_gct(path, None)
    b = src.read()
    assert src.columns == [] and list(b.obs.columns) == [] and len(b.obs) == 2
    assert list(b.ids) == ["s1", "s2"] and b.feature_names == ["g1", "g2", "g3"]
    np.testing.assert_allclose(b.matrix, vals.T.astype(np.float32))


def test_gct_nan_values(tmp_path):
    text, _ = gct_text()
    text = text.replace(text.split("\r\n")[5].split("\t")[2], "NaN", 1)
    path = tmp_path / "nan.gct"
    path.write_text(text, newline="")
    assert np.isnan(GctSource(path).read().matrix).sum() == 1


# ------------------------------------------------------------------------------------------ bad files


def raises_input_error(path, cls):
    with pytest.raises(InputError) as info:
        cls(path).read()
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and "Traceback" not in msg
    return msg


def hdf5_without(tmp_path, name, drop):
    path = write_gctx(tmp_path / name, np.ones((3, 2), np.float32), ["a", "b"], ["x", "y", "z"], {"k": [1, 2, 3]})
    with h5py.File(path, "a") as f:
        del f[drop]
    return path


def test_bad_gctx_random_bytes(tmp_path):
    path = tmp_path / "junk.gctx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a valid .gctx (HDF5) file" in raises_input_error(path, GctxSource)


def test_bad_gctx_text_file(tmp_path):
    path = tmp_path / "text.gctx"
    path.write_text(gct_text()[0])
    assert "not a valid .gctx" in raises_input_error(path, GctxSource)


def test_bad_gctx_truncated(tmp_path):
    full = write_gctx(tmp_path / "full.gctx", np.ones((200, 50), np.float32), [f"g{i}" for i in range(50)],
                      None, {"k": np.arange(200)})
    data = full.read_bytes()
    for frac in (0.1, 0.5, 0.9):
        path = tmp_path / f"trunc{frac}.gctx"
        path.write_bytes(data[: int(len(data) * frac)])
        raises_input_error(path, GctxSource)


def test_bad_gctx_empty(tmp_path):
    path = tmp_path / "empty.gctx"
    path.write_bytes(b"")
    assert "empty" in raises_input_error(path, GctxSource)


@pytest.mark.parametrize("drop", [MATRIX_PATH, ROW_IDS, COL_IDS, "0/META"])
def test_bad_gctx_missing_dataset(tmp_path, drop):
    path = hdf5_without(tmp_path, "missing.gctx", drop)
    msg = raises_input_error(path, GctxSource)
    assert "is missing" in msg and ("0/" in msg)
    if drop != "0/META":
        assert drop in msg


def test_bad_gctx_shape_mismatch(tmp_path):
    path = hdf5_without(tmp_path, "mismatch.gctx", COL_IDS)
    with h5py.File(path, "a") as f:
        f.create_dataset(COL_IDS, data=np.array([b"x", b"y"]))
    msg = raises_input_error(path, GctxSource)
    assert "shape" in msg and COL_IDS in msg


def test_bad_gctx_metadata_length(tmp_path):
    path = hdf5_without(tmp_path, "meta.gctx", "0/META/COL/k")
    with h5py.File(path, "a") as f:
        f.create_dataset("0/META/COL/k", data=np.arange(5))
    assert "0/META/COL/k" in raises_input_error(path, GctxSource)


def test_bad_gctx_no_such_file(tmp_path):
    raises_input_error(tmp_path / "nope.gctx", GctxSource)


@pytest.mark.parametrize("case", ["empty", "first_line", "second_line", "short_row", "long_row", "missing_rows",
                                  "bad_value", "binary", "header_width", "few_meta_lines"])
def test_bad_gct(tmp_path, case):
    text, _ = gct_text()
    lines = text.split("\r\n")
    if case == "empty":
        text = ""
    elif case == "first_line":
        text = text.replace("#1.3", "#2.0", 1)
    elif case == "second_line":
        text = text.replace("3\t2\t1\t2", "3\ttwo\t1\t2", 1)
    elif case == "short_row":
        lines[6] = lines[6].rsplit("\t", 1)[0]
        text = "\n".join(lines)
    elif case == "long_row":
        lines[6] += "\t1.0"
        text = "\n".join(lines)
    elif case == "missing_rows":
        text = "\n".join(lines[:-2])
    elif case == "bad_value":
        lines[6] = lines[6].rsplit("\t", 1)[0] + "\tabc"
        text = "\n".join(lines)
    elif case == "header_width":
        lines[2] += "\ts3"
        text = "\n".join(lines)
    elif case == "few_meta_lines":
        text = "#1.3\n3\t2\t1\t5\nid\tsym\ts1\ts2\npert_iname\tna\ta\tb\n"
    path = tmp_path / f"{case}.gct"
    if case == "binary":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(2000))
    else:
        path.write_text(text, newline="")
    msg = raises_input_error(path, GctSource)
    if case in ("first_line", "second_line"):
        assert "malformed .gct header" in msg
    if case in ("short_row", "long_row", "header_width"):
        assert "fields, expected" in msg


# ------------------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("batch_rows", [1, 3, 5, 7, 40])
def test_metadata_windows(tmp_path, monkeypatch, batch_rows):
    import archetool.data.readers.gctx as mod

    monkeypatch.setattr(mod, "_META_WINDOW", 5)
    n = 23
    rng = np.random.default_rng(batch_rows)
    path = write_gctx(tmp_path / "w.gctx", rng.normal(size=(n, 3)).astype(np.float32), ["a", "b", "c"], None,
                      {"i": np.arange(n), "s": [f"v{i}" for i in range(n)], "d": ["-666"] + ["2.5"] * (n - 1)})
    src = GctxSource(path)
    check_chunks(src, batch_rows)
    chunks = list(src.iter_batches(batch_rows))
    assert all(list(c.obs["i"]) == list(range(c.row_offset, c.row_offset + len(c))) for c in chunks)
    assert all(list(c.ids) == [f"SIG{i:02d}" for i in c.obs["i"]] for c in chunks)


def test_iter_batches_memory_does_not_grow(tmp_path):
    import tracemalloc

    n, p, rows = 16_000, 250, 500  # 16 MB of float32 on disk
    blocks = (np.full((1000, p), i, np.float32) for i in range(n // 1000))
    path = write_gctx(tmp_path / "big.gctx", blocks, [f"g{j}" for j in range(p)], None,
                      {"cell_id": np.array(["A375"] * n)}, n_sig=n)
    src = GctxSource(path)
    tracemalloc.start()
    try:
        total = 0
        for batch in src.iter_batches(rows):
            assert batch.matrix.shape[0] <= rows
            total += len(batch)
            del batch
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == n
    assert peak < 4 * 1024 * 1024, peak  # a batch is 0.5 MB; the whole matrix 16 MB
