"""The reader contract: every input format is opened as a :class:`Source` that yields :class:`RawBatch` chunks.

Readers know nothing about models; featurisers turn a ``RawBatch`` into a numeric matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import pandas as pd

#: What a source holds, which decides how it is featurised.
KINDS = ("table", "molecules", "expression")


@dataclass
class RawBatch:
    """A chunk of consecutive rows of one input file, before featurisation.

    ids:           (n,) str   -- the row ids (id/name column, obs_names, LINCS cid, else row numbers)
    obs:           DataFrame (n rows, RangeIndex) -- per-row columns: table columns, SMILES, h5ad obs,
                   LINCS column metadata. Side/label columns are looked up here.
    matrix:        (n, p) float32 ndarray or scipy.sparse CSR, or None -- expression values
                   (h5ad X / layer, gctx profiles); None for tables and molecules.
    feature_names: (p,) str or None -- gene names of ``matrix`` columns, in file order.
    row_offset:    0-based index of the chunk's first row in the file (for messages).
    """

    ids: np.ndarray
    obs: pd.DataFrame
    matrix: object | None = None
    feature_names: list[str] | None = None
    row_offset: int = 0

    def __len__(self) -> int:
        return len(self.ids)


class Source(Protocol):
    """An opened input file.

    path:    the file (in-memory data: a name such as 'AnnData (700 cells x 765 genes)', used in messages)
    kind:    one of :data:`KINDS`
    columns: names usable as ``--side`` / ``--label`` (obs / table columns)
    n_rows:  number of rows (samples) if known without a full read, else None
    """

    path: Path | str
    kind: str
    columns: list[str]
    n_rows: int | None

    def iter_batches(self, batch_rows: int) -> Iterator[RawBatch]:
        """Yield consecutive chunks of at most ``batch_rows`` rows; memory must not grow with the file."""
        ...

    def read(self) -> RawBatch:
        """Read every row at once (training data)."""
        ...


@dataclass
class ReadOptions:
    """Options that some readers use.

    layer:         h5ad layer to use instead of X
    id_column:     table column holding row ids (default: first of id/name/ID/Name... if present)
    smiles_column: table column holding SMILES (default: autodetected 'smiles'/'SMILES'/'canonical_smiles')
    obs_columns:   the ``RawBatch.obs`` columns the caller needs (None: all); readers of large files
                   (.gctx, .h5ad) leave the others out, e.g. ``embed`` needs none of the LINCS metadata
    sep:           delimiter of a text table (None: tab for .tsv/.txt, else sniffed from the head of the
                   file: comma, semicolon, tab or pipe)
    na_values:     extra tokens that mark a missing value in a text table (``--na-values``), on top of
                   pandas' usual set (empty, NA, N/A, NaN, nan, NULL, null, None, #N/A, -NaN, ...)
    """

    layer: str | None = None
    sep: str | None = None
    id_column: str | None = None
    smiles_column: str | None = None
    obs_columns: tuple[str, ...] | None = None
    na_values: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def concat_batches(batches: list[RawBatch]) -> RawBatch:
    """Concatenate chunks read from one source (same columns, same features)."""
    import scipy.sparse as sp

    if not batches:
        raise ValueError("no batches")
    if len(batches) == 1:
        return batches[0]
    mats = [b.matrix for b in batches]
    if mats[0] is None:
        matrix = None
    elif sp.issparse(mats[0]):
        matrix = sp.vstack(mats).tocsr()
    else:
        matrix = np.concatenate(mats, axis=0)
    return RawBatch(
        ids=np.concatenate([b.ids for b in batches]),
        obs=pd.concat([b.obs for b in batches], ignore_index=True),
        matrix=matrix,
        feature_names=batches[0].feature_names,
        row_offset=batches[0].row_offset,
    )
