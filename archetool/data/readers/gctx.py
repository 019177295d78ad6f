"""LINCS L1000 ``.gctx`` (HDF5, streamed with h5py) and ``.gct`` (text) readers, and a ``.gctx`` writer.

A GCT matrix is genes (rows) x signatures (columns); archetool's samples are the *signatures*, so every
batch is ``(n_signatures, n_genes)``: ``ids`` are the column ids (``cid``), ``feature_names`` the row ids
(genes), and ``obs`` holds the column metadata (``pert_iname``, ``pert_dose``, ``cell_id`` ...).

``.gctx`` layout (as written by cmapPy / the CMap tools)::

    0/DATA/0/matrix   float32, stored signatures x genes (the transpose of the GCT view)
    0/META/ROW/id     gene ids           0/META/ROW/<field>   row (gene) metadata
    0/META/COL/id     signature ids      0/META/COL/<field>   column (signature) metadata -> obs

A matrix stored genes x signatures is accepted too; the orientation is decided by comparing the shape
with the lengths of the two id datasets (a square matrix is taken in the standard orientation).

Missing values: LINCS writes ``-666`` (and ``na``) as missing markers. A *text* metadata field whose every
other value is a number is converted to numbers with the markers as NaN (e.g. ``pert_dose``); fields that
are numeric in the file stay as they are; all other text fields are left unchanged.
"""

from __future__ import annotations

import gzip
import io
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from archetool.data.source import RawBatch, ReadOptions, concat_batches
from archetool.errors import InputError, first_line

MATRIX_PATH = "0/DATA/0/matrix"
ROW_META = "0/META/ROW"
COL_META = "0/META/COL"
ROW_IDS = f"{ROW_META}/id"
COL_IDS = f"{COL_META}/id"

#: text values LINCS uses for "missing" in metadata
MISSING_MARKERS = frozenset({"-666", "-666.0", "-666.00", "-666.000", "-666.0000", "-666.000000",
                             "na", "NA", "nan", "NaN", "NAN", "", "-666.00000"})

#: missing expression values in .gct data rows
_NA_VALUES = ["NaN", "nan", "NAN", "NA", "na", "", "-nan", "NULL", "null"]
_SCAN_BLOCK = 1 << 16  # values per block when scanning a metadata field
_META_WINDOW = 4096  # signatures of metadata read at once by iter_batches
_FIX_GCTX = "check that it is a LINCS .gctx written by cmapPy or archetool (matrix at 0/DATA/0/matrix)"


# ----------------------------------------------------------------------------------------- helpers



def _to_str(values: np.ndarray) -> np.ndarray:
    """Decode a 1-D array of bytes / str / numbers to an object array of str."""
    values = np.asarray(values)
    if values.dtype.kind == "S":
        try:
            return values.astype(str).astype(object)  # ASCII (LINCS ids): ~10x faster than np.char.decode
        except UnicodeDecodeError:
            return np.char.decode(values, "utf-8", errors="replace").astype(object)
    if values.dtype.kind == "U":
        return values.astype(object)
    if values.dtype.kind == "O":
        return np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
                         for v in values], dtype=object)
    return values.astype(str).astype(object)


def _is_text(values: np.ndarray) -> bool:
    return np.asarray(values).dtype.kind in "SUO"


class _FieldKind:
    """How one text metadata field is converted: left as str, or numbers (int64 / float64) with markers as NaN."""

    def __init__(self):
        self.n_values = 0  # non-marker values
        self.n_markers = 0
        self.numeric = True
        self.integral = True

    def update(self, strings: np.ndarray) -> None:
        if not self.numeric or len(strings) == 0:
            return
        s = pd.Series(strings, dtype=object)
        marker = s.isin(MISSING_MARKERS).to_numpy()
        rest = s[~marker]
        self.n_markers += int(marker.sum())
        if len(rest) == 0:
            return
        nums = pd.to_numeric(rest, errors="coerce")
        if nums.isna().any():
            self.numeric = False
            return
        self.n_values += len(rest)
        if self.integral and not np.all(np.mod(nums.to_numpy(dtype=float), 1) == 0):
            self.integral = False
        if self.integral and rest.str.contains(r"[.eE]", regex=True).any():
            self.integral = False  # "10.0" stays a float

    @property
    def target(self) -> str:
        """'str', 'int64' or 'float64'."""
        if not self.numeric or self.n_values == 0:
            return "str"
        return "int64" if (self.integral and self.n_markers == 0) else "float64"


def _convert(strings: np.ndarray, target: str):
    if target == "str":
        return strings
    s = pd.Series(strings, dtype=object)
    s = s.where(~s.isin(MISSING_MARKERS), None)
    nums = pd.to_numeric(s, errors="coerce")
    return nums.to_numpy(dtype=np.int64 if target == "int64" else np.float64)


# ------------------------------------------------------------------------------------------- .gctx


class GctxSource:
    """A LINCS ``.gctx`` file, read lazily with h5py: only ids and metadata names on open; matrix
    slices of at most ``batch_rows`` signatures per chunk in :meth:`iter_batches`."""

    kind = "expression"

    def __init__(self, path: Path, options: ReadOptions | None = None):
        import h5py

        self.path = Path(path)
        self.options = options or ReadOptions()
        self._kinds: dict[str, str] = {}  # field -> 'keep', 'str', 'int64' or 'float64'
        self._ids: np.ndarray | None = None
        if self.path.suffix.lower() in (".gz", ".bz2", ".xz", ".zst"):
            raise InputError(f"{self.path}: a compressed .gctx cannot be read; decompress it first "
                             "(HDF5 files are read in place)")
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file; check the path")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: the file is empty; expected a LINCS .gctx (HDF5) file")
        try:
            with h5py.File(self.path, "r") as f:
                self._check_layout(f)
        except InputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            raise InputError(f"{self.path}: not a valid .gctx (HDF5) file: {first_line(err)}; {_FIX_GCTX}") from None

    def _dataset(self, f, name: str):
        import h5py

        obj = f.get(name)
        if obj is None or not isinstance(obj, h5py.Dataset):
            raise InputError(f"{self.path}: not a valid .gctx: dataset {name} is missing; {_FIX_GCTX}")
        return obj

    def _check_layout(self, f) -> None:
        import h5py

        mat = self._dataset(f, MATRIX_PATH)
        row_ids = self._dataset(f, ROW_IDS)
        col_ids = self._dataset(f, COL_IDS)
        if mat.ndim != 2:
            raise InputError(f"{self.path}: {MATRIX_PATH} has {mat.ndim} dimensions, expected a 2-D matrix")
        if mat.dtype.kind not in "fiub":
            raise InputError(f"{self.path}: {MATRIX_PATH} holds {mat.dtype} values, expected numbers")
        if row_ids.ndim != 1 or col_ids.ndim != 1:
            raise InputError(f"{self.path}: {ROW_IDS} and {COL_IDS} must be 1-D id lists")
        n_genes, n_sig = row_ids.shape[0], col_ids.shape[0]
        if mat.shape == (n_sig, n_genes):
            self.genes_first = False  # standard: signatures x genes
        elif mat.shape == (n_genes, n_sig):
            self.genes_first = True
        else:
            raise InputError(
                f"{self.path}: {MATRIX_PATH} has shape {mat.shape} but there are {n_sig} signature ids "
                f"({COL_IDS}) and {n_genes} gene ids ({ROW_IDS}); the file is inconsistent or truncated")
        if n_sig == 0 or n_genes == 0:
            raise InputError(f"{self.path}: the .gctx is empty ({n_genes} genes x {n_sig} signatures)")
        self.shape = (n_sig, n_genes)
        self.n_rows = int(n_sig)
        self.feature_names = [str(g) for g in _to_str(row_ids[()])]
        self.columns = []
        group = f.get(COL_META)
        for name, obj in group.items():
            if name == "id" or not isinstance(obj, h5py.Dataset):
                continue
            if obj.ndim != 1 or obj.shape[0] != n_sig:
                raise InputError(f"{self.path}: {COL_META}/{name} has shape {obj.shape} but there are "
                                 f"{n_sig} signatures; the column metadata is inconsistent")
            self.columns.append(str(name))
        self.dtype = mat.dtype

    # -------------------------------------------------------------------------------- metadata

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(f"{self.path}: not a valid .gctx (HDF5) file: {first_line(err)}; {_FIX_GCTX}") from None

    def _field_kinds(self, f, columns: list[str]) -> dict[str, str]:
        """Decide once per text field whether it is numeric-looking (scanned block by block)."""
        for name in columns:
            if name in self._kinds:
                continue
            ds = f[f"{COL_META}/{name}"]
            if ds.dtype.kind not in "SUO":
                self._kinds[name] = "keep"
                continue
            kind = _FieldKind()
            for start in range(0, self.n_rows, _SCAN_BLOCK):
                kind.update(_to_str(ds[start:start + _SCAN_BLOCK]))
                if not kind.numeric:
                    break
            self._kinds[name] = kind.target
        return self._kinds

    @property
    def ids(self) -> np.ndarray:
        """Signature ids (``0/META/COL/id``) as str."""
        if self._ids is None:
            with self._open() as f:
                self._ids = _to_str(f[COL_IDS][()])
        return self._ids

    @property
    def row_meta(self) -> pd.DataFrame:
        """Gene metadata (``0/META/ROW/*``, e.g. ``pr_gene_symbol``), indexed by gene id."""
        import h5py

        with self._open() as f:
            data = {}
            for name, ds in f[ROW_META].items():
                if name == "id" or not isinstance(ds, h5py.Dataset) or ds.shape != (len(self.feature_names),):
                    continue
                values = ds[()]
                data[name] = _to_str(values) if _is_text(values) else values
        return pd.DataFrame(data, index=pd.Index(self.feature_names, name="id"))

    # ----------------------------------------------------------------------------------- reading

    def _meta_block(self, f, start: int, stop: int) -> tuple[np.ndarray, pd.DataFrame]:
        """Signature ids and converted column metadata of rows ``start:stop`` (only the fields in
        ``options.obs_columns`` when it is set: decoding them costs more than reading the profiles)."""
        wanted = self.options.obs_columns
        columns = self.columns if wanted is None else [c for c in self.columns if c in wanted]
        kinds = self._field_kinds(f, columns)
        ids = _to_str(f[COL_IDS][start:stop])
        obs = {}
        for name in columns:
            values = f[f"{COL_META}/{name}"][start:stop]
            kind = kinds[name]
            obs[name] = values if kind == "keep" else _convert(_to_str(values), kind)
        return ids, pd.DataFrame(obs, columns=columns, index=pd.RangeIndex(stop - start))

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        """Chunks of at most ``batch_rows`` signatures, read as HDF5 slices (one open handle per iteration).

        Metadata is read in windows of at least ``_META_WINDOW`` rows (small batches would otherwise cost
        one HDF5 read per field per batch); memory stays bounded by the window and the batch.
        """
        batch_rows = max(1, int(batch_rows))
        window = max(batch_rows, _META_WINDOW)
        from archetool.data.readers.hdf5_rows import RowReader

        with self._open() as f, (nullcontext() if self.genes_first else RowReader(f[MATRIX_PATH], self.path)) as rows:
            w_start, w_ids, w_obs = 0, None, None
            for start in range(0, self.n_rows, batch_rows):
                stop = min(start + batch_rows, self.n_rows)
                try:
                    if w_ids is None or stop > w_start + len(w_ids):
                        w_start = start
                        w_ids, w_obs = self._meta_block(f, start, min(start + window, self.n_rows))
                    block = f[MATRIX_PATH][:, start:stop].T if rows is None else rows.read(start, stop)
                    matrix = np.ascontiguousarray(block, dtype=np.float32)
                except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
                    raise InputError(f"{self.path}: cannot read signatures {start}-{stop - 1}: "
                                     f"{first_line(err)}; the file may be truncated or corrupt") from None
                a, b = start - w_start, stop - w_start
                obs = w_obs if (a == 0 and b == len(w_ids)) else w_obs.iloc[a:b].reset_index(drop=True)
                yield RawBatch(ids=w_ids[a:b], obs=obs, matrix=matrix, feature_names=self.feature_names,
                               row_offset=start)
                del block, matrix, obs  # not kept alive by this frame while the next block is read

    def read(self) -> RawBatch:
        """Every signature at once."""
        return concat_batches(list(self.iter_batches(max(self.n_rows, 1))))


def open_gctx(path, options: ReadOptions | None = None) -> GctxSource:
    return GctxSource(Path(path), options)


# -------------------------------------------------------------------------------------------- .gct


class GctSource:
    """A LINCS ``.gct`` text file (``#1.3`` with row/column metadata, or ``#1.2``).

    The header (sizes, column metadata names) is read on open; the data rows are text and are parsed
    whole, on first use, so :meth:`iter_batches` slices an in-memory matrix (use ``.gctx`` for big data).
    """

    kind = "expression"

    def __init__(self, path: Path, options: ReadOptions | None = None):
        self.path = Path(path)
        self.options = options or ReadOptions()
        self._parsed: RawBatch | None = None
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file; check the path")
        try:
            with self._open_text() as fh:
                head = [fh.readline() for _ in range(2)]
        except UnicodeDecodeError:
            raise InputError(f"{self.path}: not a text .gct file (not UTF-8 text); a binary HDF5 file should be named .gctx") from None
        except (OSError, EOFError) as err:
            raise InputError(f"{self.path}: cannot read the .gct: {first_line(err)}") from None
        self._parse_header(head)
        self.n_rows = self.n_cols
        self.columns = []  # filled from the column-metadata lines (cheap: nchd lines)
        if self.nchd:
            try:
                names = self._read_column_meta_names()
            except UnicodeDecodeError:
                raise InputError(f"{self.path}: not a text .gct file (not UTF-8 text)") from None
            except (OSError, EOFError) as err:
                raise InputError(f"{self.path}: cannot read the .gct: {first_line(err)}") from None
            self.columns = names

    def _read_column_meta_names(self) -> list[str]:
        names = []
        with self._open_text() as fh:
            for _ in range(3):
                fh.readline()
            for i in range(self.nchd):
                line = fh.readline()
                if not line:
                    raise InputError(f"{self.path}: the .gct ends inside the column metadata "
                                     f"(line {4 + i}); the header says {self.nchd} metadata lines")
                names.append(line.split("\t", 1)[0].strip())
        return names

    def _open_text(self):
        try:
            if self.path.suffix.lower() == ".gz":
                return io.TextIOWrapper(gzip.open(self.path, "rb"), encoding="utf-8", errors="strict", newline=None)
            return open(self.path, "r", encoding="utf-8", errors="strict", newline=None)
        except OSError as err:
            raise InputError(f"{self.path}: cannot open: {first_line(err)}") from None

    def _bad_header(self, what: str) -> InputError:
        return InputError(f"{self.path}: malformed .gct header: {what}; a .gct starts with '#1.3' (or '#1.2') "
                          "then 'nrow ncol nrhd nchd' (1.2: 'nrow ncol')")

    def _parse_header(self, head: list[str]) -> None:
        first, second = head[0].strip(), head[1].strip()
        if first == "" and second == "":
            raise InputError(f"{self.path}: the file is empty; expected a LINCS .gct file")
        first = first.split("\t")[0].strip()
        if first not in ("#1.3", "#1.2"):
            raise self._bad_header(f"first line is {first[:30]!r}")
        self.version = first
        try:
            dims = [int(x) for x in second.split()]
        except ValueError:
            raise self._bad_header(f"second line {second[:60]!r} is not whole numbers") from None
        want = 4 if first == "#1.3" else 2
        if len(dims) != want or min(dims) < 0:
            raise self._bad_header(f"second line {second[:60]!r} should hold {want} non-negative numbers")
        if first == "#1.2":
            dims += [1, 0]  # Name, Description, samples...
        self.n_genes, self.n_cols, self.nrhd, self.nchd = dims
        if self.n_genes == 0 or self.n_cols == 0:
            raise InputError(f"{self.path}: the .gct is empty ({self.n_genes} genes x {self.n_cols} samples)")

    def _parse(self) -> RawBatch:
        try:
            with self._open_text() as fh:
                text = fh.read()
        except UnicodeDecodeError:
            raise InputError(f"{self.path}: not a text .gct file (not UTF-8 text)") from None
        except (OSError, EOFError) as err:
            raise InputError(f"{self.path}: cannot read: {first_line(err)}") from None
        lines = text.split("\n")
        while lines and lines[-1].strip() == "":
            lines.pop()
        width = 1 + self.nrhd + self.n_cols
        expected_lines = 3 + self.nchd + self.n_genes
        if len(lines) != expected_lines:
            raise InputError(f"{self.path}: the .gct has {len(lines)} lines but its header "
                             f"({self.n_genes} genes, {self.nchd} column-metadata lines) implies {expected_lines}; "
                             "the file is truncated or the header sizes are wrong")
        for i in range(2, expected_lines):
            line = lines[i]
            if line.count("\t") != width - 1:
                parts = line.split("\t")
                if len(parts) > width and all(p.strip() == "" for p in parts[width:]):
                    lines[i] = "\t".join(parts[:width])  # tolerate trailing tabs
                    continue
                raise InputError(f"{self.path}: line {i + 1} has {len(parts)} tab-separated fields, expected "
                                 f"{width} (1 id + {self.nrhd} row-metadata + {self.n_cols} samples)")
        header = lines[2].split("\t")
        col_ids = np.array([c.strip() for c in header[1 + self.nrhd:]], dtype=object)
        obs = {}
        for i in range(self.nchd):
            parts = lines[3 + i].split("\t")
            strings = np.array(parts[1 + self.nrhd:], dtype=object)
            kind = _FieldKind()
            kind.update(strings)
            obs[parts[0].strip()] = _convert(strings, kind.target)
        data_text = "\n".join(lines[3 + self.nchd:])
        lead = 1 + self.nrhd
        try:
            frame = pd.read_csv(
                io.StringIO(data_text), sep="\t", header=None, names=range(width), quoting=3,
                dtype={**{j: str for j in range(lead)}, **{j: np.float64 for j in range(lead, width)}},
                keep_default_na=False, na_values={j: _NA_VALUES for j in range(lead, width)},
                engine="c",
            )
        except (ValueError, pd.errors.ParserError) as err:
            raise InputError(f"{self.path}: non-numeric or malformed expression values in the data rows "
                             f"({first_line(err)}); every value after the row metadata must be a number") from None
        genes = [str(g) for g in frame[0].to_numpy()]
        matrix = np.ascontiguousarray(frame.iloc[:, lead:].to_numpy(dtype=np.float32).T)
        self.row_meta = pd.DataFrame({header[j].strip(): frame[j].to_numpy() for j in range(1, lead)},
                                     index=pd.Index(genes, name=header[0].strip() or "id"))
        obs_frame = pd.DataFrame(obs, columns=self.columns, index=pd.RangeIndex(self.n_cols))
        return RawBatch(ids=col_ids, obs=obs_frame, matrix=matrix, feature_names=genes, row_offset=0)

    def _full(self) -> RawBatch:
        if self._parsed is None:
            self._parsed = self._parse()
        return self._parsed

    @property
    def ids(self) -> np.ndarray:
        return self._full().ids

    @property
    def feature_names(self) -> list[str]:
        return self._full().feature_names

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        """Slices of the whole parsed file (a .gct is text and is read whole)."""
        full = self._full()
        batch_rows = max(1, int(batch_rows))
        for start in range(0, self.n_rows, batch_rows):
            stop = min(start + batch_rows, self.n_rows)
            yield RawBatch(ids=full.ids[start:stop], obs=full.obs.iloc[start:stop].reset_index(drop=True),
                           matrix=full.matrix[start:stop], feature_names=full.feature_names, row_offset=start)

    def read(self) -> RawBatch:
        return self._full()


def open_gct(path, options: ReadOptions | None = None) -> GctSource:
    return GctSource(Path(path), options)


# ------------------------------------------------------------------------------------------ writer


def _fixed_bytes(values) -> np.ndarray:
    encoded = [str(v).encode("utf-8") for v in values]
    width = max([len(e) for e in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


def _meta_array(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr
    return _fixed_bytes(arr.tolist())


def write_gctx(
    path,
    matrix: np.ndarray | Iterable[np.ndarray],
    gene_ids,
    sig_ids=None,
    col_meta: Mapping[str, object] | None = None,
    *,
    n_sig: int | None = None,
    row_meta: Mapping[str, object] | None = None,
    chunk_rows: int | None = None,
    compression: str | None = None,
) -> Path:
    """Write a ``.gctx`` in the standard layout (matrix stored signatures x genes, chunked by rows).

    matrix:   ``(n_sig, n_genes)`` array, or an iterable of row blocks ``(k_i, n_genes)`` whose sizes add up
              to ``n_sig`` -- only one block is in memory at a time (for large synthetic files).
    gene_ids: row ids (genes), length ``n_genes``.
    sig_ids:  column ids (signatures), length ``n_sig``; None writes ``SIG000..`` (then ``n_sig`` or an
              array ``matrix`` gives the count).
    col_meta: column metadata, name -> array of length ``n_sig`` (text stored as bytes, numbers as is).
    """
    import h5py

    path = Path(path)
    gene_ids = list(gene_ids)
    n_genes = len(gene_ids)
    if sig_ids is not None:
        sig_ids = list(sig_ids)
        n = len(sig_ids)
        if n_sig is not None and n_sig != n:
            raise ValueError(f"n_sig={n_sig} but {n} sig_ids")
    elif n_sig is not None:
        n = int(n_sig)
    elif isinstance(matrix, np.ndarray):
        n = matrix.shape[0]
    else:
        raise ValueError("give sig_ids or n_sig when matrix is an iterator of blocks")
    if chunk_rows is None:
        chunk_rows = max(1, (1 << 20) // (4 * max(n_genes, 1)))  # ~1 MiB chunks
    chunk_rows = max(1, min(chunk_rows, max(n, 1)))
    blocks = [matrix] if isinstance(matrix, np.ndarray) else matrix
    with h5py.File(path, "w") as f:
        f.attrs["version"] = np.bytes_(b"GCTX1.0")
        kwargs = {"chunks": (chunk_rows, max(n_genes, 1))} if n and n_genes else {}
        if compression:
            kwargs["compression"] = compression
        ds = f.create_dataset(MATRIX_PATH, shape=(n, n_genes), dtype=np.float32, **kwargs)
        pos = 0
        for block in blocks:
            block = np.asarray(block, dtype=np.float32)
            if block.ndim != 2 or block.shape[1] != n_genes:
                raise ValueError(f"block of shape {block.shape}, expected (k, {n_genes})")
            if pos + block.shape[0] > n:
                raise ValueError(f"blocks hold more than n_sig={n} rows")
            ds[pos:pos + block.shape[0]] = block
            pos += block.shape[0]
        if pos != n:
            raise ValueError(f"blocks hold {pos} rows, expected {n}")
        f.create_dataset(ROW_IDS, data=_fixed_bytes(gene_ids))
        if sig_ids is not None:
            f.create_dataset(COL_IDS, data=_fixed_bytes(sig_ids))
        else:
            width = len(str(max(n - 1, 0)))
            ids_ds = f.create_dataset(COL_IDS, shape=(n,), dtype=f"S{3 + width}")
            step = 1 << 16
            for start in range(0, n, step):
                stop = min(n, start + step)
                ids_ds[start:stop] = np.array([f"SIG{i:0{width}d}".encode() for i in range(start, stop)])
        f.require_group(COL_META)
        for name, values in (col_meta or {}).items():
            arr = _meta_array(values)
            if arr.shape != (n,):
                raise ValueError(f"col_meta[{name!r}] has shape {arr.shape}, expected ({n},)")
            f.create_dataset(f"{COL_META}/{name}", data=arr)
        for name, values in (row_meta or {}).items():
            arr = _meta_array(values)
            if arr.shape != (n_genes,):
                raise ValueError(f"row_meta[{name!r}] has shape {arr.shape}, expected ({n_genes},)")
            f.create_dataset(f"{ROW_META}/{name}", data=arr)
    return path
