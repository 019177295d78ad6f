"""Row reads of HDF5 matrices (archetool.data.readers.hdf5_rows) and the h5py-based .h5ad reader."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_adata

from archetool.data.readers.hdf5_rows import RowReader

N_ROWS, N_COLS = 300, 17
#: name -> (dtype, create_dataset options, layout RowReader must choose)
LAYOUTS = {
    "contiguous": ("<f4", {}, "contiguous"),
    "chunked_rows": ("<f4", {"chunks": (32, N_COLS)}, "chunked"),
    "chunked_narrow": ("<f4", {"chunks": (32, 4)}, "h5py"),
    "gzip": ("<f4", {"chunks": (32, N_COLS), "compression": "gzip"}, "h5py"),
    "float64": ("<f8", {}, "contiguous"),
    "big_endian": (">f4", {}, "h5py"),
    "int16_chunked": ("<i2", {"chunks": (50, N_COLS)}, "chunked"),
}


@pytest.fixture(scope="module", params=[0, 512], ids=["plain", "userblock"])
def matrices(request, tmp_path_factory):
    """One file holding the same values in every layout (with and without an HDF5 user block)."""
    path = tmp_path_factory.mktemp("h5") / "m.h5"
    values = np.random.default_rng(0).normal(size=(N_ROWS, N_COLS)) * 100
    with h5py.File(path, "w", userblock_size=request.param) as f:
        for name, (dtype, options, _) in LAYOUTS.items():
            f.create_dataset(name, data=values.astype(dtype), **options)
        f.create_dataset("partly_written", shape=(N_ROWS, N_COLS), dtype="<f4", chunks=(32, N_COLS), fillvalue=-1)
        f["partly_written"][40:70] = 5.0  # chunks 1 and 2 exist, the others were never written
    return path


@pytest.mark.parametrize("name", list(LAYOUTS) + ["partly_written"])
def test_layout_is_the_expected_one(matrices, name):
    with h5py.File(matrices, "r") as f:
        expected = LAYOUTS.get(name, (None, None, "chunked"))[2]
        assert RowReader(f[name], matrices).layout == expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(list(LAYOUTS) + ["partly_written"]), start=st.integers(0, N_ROWS),
       length=st.integers(0, N_ROWS))
def test_rows_equal_h5py_slices_in_every_layout(matrices, name, start, length):
    with h5py.File(matrices, "r") as f:
        reader = RowReader(f[name], matrices)
        got = reader.read(start, start + length)
        want = f[name][start : start + length]
        reader.close()
    assert got.dtype == want.dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_truncated_file_raises_oserror_instead_of_short_data(tmp_path):
    path = tmp_path / "cut.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=np.ones((1000, 50), np.float32))
    with h5py.File(path, "r") as f:  # HDF5 refuses to open a truncated file: cut it while it is open
        reader = RowReader(f["m"], path)
        with open(path, "r+b") as fh:
            fh.truncate(f["m"].id.get_offset() + 100 * 50 * 4 + 10)  # the data now stops inside row 100
        np.testing.assert_array_equal(reader.read(0, 100), 1.0)
        with pytest.raises(OSError, match="bytes before the data"):
            reader.read(90, 200)


# ------------------------------------------------------------------------------------------ .h5ad


@pytest.mark.parametrize("sparse", [False, True])
def test_h5ad_reader_matches_anndata(tmp_path, sparse):
    import anndata as ad
    import scipy.sparse as sp

    from archetool.data.readers.h5ad import H5adSource
    from archetool.data.source import ReadOptions

    adata = make_adata(n=50, genes=9, sparse=sparse)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype("category")
    adata.obs["flag"] = pd.array([True, False, None, True, False] * 10, dtype="boolean")
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    ref = ad.read_h5ad(path)
    for layer in (None, "counts"):
        source = H5adSource(path, ReadOptions(layer=layer))
        assert source.n_rows == 50 and source.feature_names == list(ref.var_names)
        assert source.columns == list(ref.obs.columns)
        batches = list(source.iter_batches(16))
        assert [len(b) for b in batches] == [16, 16, 16, 2]
        matrix = np.concatenate([b.matrix.toarray() if sp.issparse(b.matrix) else b.matrix for b in batches])
        want = ref.X if layer is None else ref.layers[layer]
        np.testing.assert_array_equal(matrix, want.toarray() if sp.issparse(want) else want)
        assert [i for b in batches for i in b.ids] == list(ref.obs_names)
        obs = pd.concat([b.obs for b in batches], ignore_index=True)
        pd.testing.assert_frame_equal(obs, ref.obs.reset_index(drop=True))


def test_embedding_a_dense_h5ad_does_not_import_anndata(tmp_path):
    """anndata's import costs ~1.3 s of start-up; a dense X is read with h5py alone."""
    path = tmp_path / "a.h5ad"
    make_adata(n=10, genes=4).write_h5ad(path)
    code = ("import sys; from pathlib import Path; from archetool.data.readers.h5ad import H5adSource; "
            "from archetool.data.source import ReadOptions; "
            f"s = H5adSource(Path({str(path)!r}), ReadOptions(obs_columns=())); b = next(s.iter_batches(4)); "
            "print(len(b), b.ids[0], 'anndata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["4", "cell0", "False"]


def test_h5ad_without_encoding_attributes_is_read_through_anndata(tmp_path):
    """Files older than the tagged on-disk format go through anndata's backed mode (same rows)."""
    from archetool.data.readers.h5ad import H5adSource
    from archetool.data.source import ReadOptions
    from archetool.errors import InputError

    path = tmp_path / "old.h5ad"
    make_adata(n=12, genes=4).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        del f["var"].attrs["encoding-type"]
    try:
        source = H5adSource(path, ReadOptions())
    except InputError as err:  # anndata itself may refuse it: then one clear line
        assert "not a readable .h5ad file" in str(err)
        return
    assert source._backed is not None and source.n_rows == 12


def test_h5ad_truncated_matrix_is_one_clear_error(tmp_path):
    from archetool.data.readers.h5ad import H5adSource
    from archetool.data.source import ReadOptions
    from archetool.errors import InputError

    path = tmp_path / "cut.h5ad"
    make_adata(n=400, genes=50).write_h5ad(path)
    with h5py.File(path, "r") as f:
        offset = f["X"].id.get_offset()
    assert offset is not None  # anndata writes a dense X contiguously
    source = H5adSource(path, ReadOptions(obs_columns=()))  # opened (metadata read) before the cut
    with open(path, "r+b") as fh:
        fh.truncate(offset + 200 * 50 * 4)
    with pytest.raises(InputError, match=r"cut.h5ad: cannot read cells 0-399: .*truncated or corrupt"):
        source.read()


def test_h5ad_whose_matrix_does_not_match_obs_and_var_is_refused(tmp_path):
    from archetool.data.readers.h5ad import H5adSource
    from archetool.data.source import ReadOptions
    from archetool.errors import InputError

    path = tmp_path / "bad.h5ad"
    make_adata(n=20, genes=5).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        attrs = dict(f["X"].attrs)
        del f["X"]
        f.create_dataset("X", data=np.zeros((20, 4), np.float32)).attrs.update(attrs)
    with pytest.raises(InputError, match=r"bad.h5ad: /X is 20 x 4 but the file has 20 cells and 5 genes"):
        H5adSource(path, ReadOptions())
