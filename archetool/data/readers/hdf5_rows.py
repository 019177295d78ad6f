"""Row blocks of a dense 2-D HDF5 dataset (h5ad X, gctx matrix), read as plain file reads where possible.

An uncompressed little-endian dataset stored contiguously, or in chunks that each span whole rows,
holds a row range as one or a few runs of bytes at known offsets. Reading those with ``os.preadv``
costs a quarter of the CPU that ``h5py`` spends on the same rows (8,192 x 978 float32: ~1.1 against
2.5-4.7 µs per row) and releases the GIL for the whole read, so the forward-pass threads keep running.
Every other layout (compressed or filtered chunks, chunks narrower than a row, big-endian, chunks never
written) is read through h5py; the values are the same either way.
"""

from __future__ import annotations

import os

import numpy as np


class RowReader:
    """``read(start, stop)`` -> a fresh C-ordered (stop - start, n_cols) array of ``dataset``'s rows.

    dataset: an open ``h5py.Dataset`` of 2 dimensions; path: the file it lives in (opened once more,
    read-only, for the plain reads). Close with :meth:`close` or a ``with`` block (also closed when
    garbage collected).
    """

    def __init__(self, dataset, path):
        self.dataset = dataset
        self.n_rows, self.n_cols = (int(n) for n in dataset.shape)
        self.shape = (self.n_rows, self.n_cols)
        self.row_bytes = self.n_cols * dataset.dtype.itemsize
        self.layout = _plain_layout(dataset)
        self._offset = dataset.id.get_offset() if self.layout == "contiguous" else None
        self._chunk_rows = int(dataset.chunks[0]) if self.layout == "chunked" else 0
        self._fd = os.open(path, os.O_RDONLY) if self.layout != "h5py" else None

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, int(start)), min(self.n_rows, int(stop))
        if self.layout == "h5py" or stop <= start:
            return np.ascontiguousarray(self.dataset[start:stop])
        out = np.empty((stop - start, self.n_cols), self.dataset.dtype)
        if self.layout == "contiguous":
            self._pread(out, self._offset + start * self.row_bytes)
            return out
        row = start
        while row < stop:  # one plain read per chunk touched
            first = row - row % self._chunk_rows
            end = min(stop, first + self._chunk_rows)
            info = self.dataset.id.get_chunk_info_by_coord((first, 0))
            if info.byte_offset is None or info.filter_mask:  # never written (fill value) or filtered
                out[row - start : end - start] = self.dataset[row:end]
            else:
                self._pread(out[row - start : end - start], info.byte_offset + (row - first) * self.row_bytes)
            row = end
        return out

    def _pread(self, block: np.ndarray, offset: int) -> None:
        view = memoryview(block).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n == 0:
                raise OSError(f"the file ends {len(view) - done} bytes before the data it declares")
            done += n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RowReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def _plain_layout(dataset) -> str:
    """'contiguous', 'chunked' (whole-row chunks) or 'h5py' (anything a plain read cannot handle)."""
    dtype = dataset.dtype
    if dataset.ndim != 2 or dtype.kind not in "fiu" or not dtype.isnative or not hasattr(os, "preadv"):
        return "h5py"
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters() or dataset.external:
        return "h5py"
    if dataset.chunks is None:
        return "contiguous" if dataset.id.get_offset() is not None else "h5py"  # None: never written
    if dataset.chunks[1] == dataset.shape[1] and hasattr(dataset.id, "get_chunk_info_by_coord"):
        return "chunked"
    return "h5py"
