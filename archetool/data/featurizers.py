"""Featurisers: RawBatch -> (n, p) float32 matrix with fixed, named features.

Chosen by name from :data:`FEATURIZERS`. ``fit`` fixes the feature list on training data;
``state()`` is JSON-able and ``from_state`` rebuilds the featuriser so ``embed`` reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from archetool.data.source import RawBatch
from archetool.errors import InputError, preview


@dataclass
class Features:
    """Featurised rows: x (n_valid, p) float32; ``valid`` (n,) bool marks rows kept;
    ``rejects`` lists (row index within the batch, reason/value) of dropped rows."""

    x: np.ndarray
    valid: np.ndarray
    rejects: list[tuple[int, str]] = field(default_factory=list)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_features(x: np.ndarray, path, batch: RawBatch, feature_names: list[str]) -> np.ndarray:
    """x (n, p) as float32; an InputError naming the row and feature of a finite value beyond float32's
    range (|v| > 3.4e38), which would silently become infinite."""
    if x.dtype == np.float32:
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float32)
        if out.size and not np.isfinite(out.sum()):
            too_big = np.isinf(out) & np.isfinite(x)
            if too_big.any():
                row, col = (int(i[0]) for i in np.nonzero(too_big))
                raise InputError(f"{path}: the row with id {str(batch.ids[row])!r} holds {x[row, col]:.4g} in feature "
                                 f"{feature_names[col]!r}, too large for 32-bit floats (at most {FLOAT32_MAX:.3g} in size); "
                                 "rescale the column (e.g. log or other units) or correct the value")
    return out


class NamedColumns:
    """Gathers a model's features from a batch **by name**, whatever the file type: the columns of the
    expression matrix (genes of an .h5ad / .gctx / .gct) first, then numeric per-row columns (table
    columns, h5ad obs). So a model fitted on a table of gene columns embeds an .h5ad with those genes,
    and the reverse.

    Features found nowhere are missing: an InputError listing them, unless ``allow_missing`` (set by
    ``embed --allow-missing-features``); then they come back as NaN, which scaling turns into the
    training mean, and :attr:`missing` names them.
    """

    feature_names: list[str]
    allow_missing = False
    #: what the features are called in messages
    noun = "features"

    def _init_lookup(self) -> None:
        self.missing: list[str] = []
        self._plan_cache: tuple[tuple, tuple] | None = None

    def _plan(self, batch: RawBatch, path):
        """(matrix positions, positions in the model, obs columns, positions in the model, missing) for the
        batch's columns; cached while the batch layout stays the same (every chunk of one file)."""
        genes = tuple(str(g) for g in batch.feature_names) if batch.matrix is not None and batch.feature_names is not None else ()
        key = (genes, tuple(str(c) for c in batch.obs.columns))
        if getattr(self, "_plan_cache", None) is not None and self._plan_cache[0] == key:
            return self._plan_cache[1]
        in_matrix = {g: i for i, g in enumerate(genes)}
        in_obs = {str(c): c for c in batch.obs.columns}
        from_matrix, matrix_to, from_obs, obs_to, missing = [], [], [], [], []
        for j, name in enumerate(self.feature_names):
            if name in in_matrix:
                from_matrix.append(in_matrix[name])
                matrix_to.append(j)
            elif name in in_obs:
                from_obs.append(in_obs[name])
                obs_to.append(j)
            else:
                missing.append(name)
        if missing and len(missing) == len(self.feature_names):
            raise InputError(f"{path}: has none of the model's {len(self.feature_names)} {self.noun} "
                             f"({preview(missing, 5)}); features are matched by name (table columns, gene ids of "
                             ".h5ad/.gctx/.gct): use data with the model's features")
        if missing and not self.allow_missing:
            raise InputError(f"{path}: lacks {len(missing)} of the model's {len(self.feature_names)} {self.noun} "
                             f"(missing: {preview(missing, 5)}); features are matched by name; pass "
                             "--allow-missing-features to fill them with the training mean")
        plan = (np.array(from_matrix, np.int64), np.array(matrix_to, np.int64), from_obs, np.array(obs_to, np.int64), missing)
        self._plan_cache = (key, plan)
        self.missing = missing
        return plan

    def gather(self, batch: RawBatch, path) -> np.ndarray:
        """The (n, p) float32 feature matrix of ``batch`` in the model's feature order (NaN where missing)."""
        import scipy.sparse as sp

        from_matrix, matrix_to, from_obs, obs_to, missing = self._plan(batch, path)
        n, p = len(batch), len(self.feature_names)
        names = self.feature_names
        if len(from_matrix) == p and np.array_equal(matrix_to, np.arange(p)):  # every feature a matrix column
            block = batch.matrix[:, from_matrix]
            return float32_features(block.toarray() if sp.issparse(block) else np.asarray(block), path, batch, names)
        x = np.full((n, p), np.nan, np.float32)
        if len(from_matrix):
            block = batch.matrix[:, from_matrix]
            x[:, matrix_to] = float32_features(block.toarray() if sp.issparse(block) else np.asarray(block), path, batch,
                                               [names[j] for j in matrix_to])
        if from_obs:
            x[:, obs_to] = float32_features(self._numeric_obs(batch, from_obs, path), path, batch, [names[j] for j in obs_to])
        return x

    @staticmethod
    def _numeric_obs(batch: RawBatch, columns: list, path) -> np.ndarray:
        block = batch.obs[columns]
        bad = [c for c in columns if not pd.api.types.is_numeric_dtype(block[c]) and not pd.api.types.is_bool_dtype(block[c])]
        if bad:
            col = bad[0]
            values = pd.to_numeric(block[col], errors="coerce")
            wrong = np.flatnonzero(values.isna().to_numpy() & block[col].notna().to_numpy())
            if len(wrong):
                import shlex

                row, value = int(wrong[0]), block[col].iloc[wrong[0]]
                raise InputError(f"{path}: feature column {col!r} is not numeric (row {row + batch.row_offset + 1} "
                                 f"holds {value!r}); correct it, or if {value!r} marks a missing value, read it "
                                 f"as one with --na-values {shlex.quote(str(value))}")
            block = block.assign(**{str(col): values for col in bad})
        return block.to_numpy(dtype=np.float64, na_value=np.nan)


class NumericFeaturizer(NamedColumns):
    """Numeric table columns (minus id / side / label columns) as features; NaN -> training mean."""

    name = "numeric"
    likelihood = "gaussian"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])
        self._init_lookup()

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        """Features: the numeric columns not in ``exclude``. A column of numbers with a few other tokens
        (``?``, ``n.a.``) is refused, naming the first (see ``_numeric_obs``); the other text columns are
        left out, listed in :attr:`left_out`."""
        candidates = [c for c in batch.obs.columns if c not in exclude]
        numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(batch.obs[c])]
        text = [c for c in candidates if c not in numeric]
        for col in text:
            values = batch.obs[col][batch.obs[col].notna()]
            if len(values) and pd.to_numeric(values, errors="coerce").notna().mean() >= 0.5:
                self._numeric_obs(batch, [col], path)  # mostly numbers: raises naming the first token that is not
        self.left_out = [str(c) for c in text]  # the caller names them once the data are known to be good
        if not numeric:
            raise InputError(
                f"{path}: no numeric feature columns left after removing id/side/label columns; "
                f"columns are: {preview(batch.obs.columns)}"
            )
        self.feature_names = [str(c) for c in numeric]

    def transform(self, batch: RawBatch, path) -> Features:
        """Columns by name (see :class:`NamedColumns`): table columns, or the genes of an expression file."""
        if batch.matrix is None and not self.allow_missing and all(c in batch.obs.columns for c in self.feature_names):
            x = float32_features(self._numeric_obs(batch, self.feature_names, path), path, batch, self.feature_names)  # the usual case: a table like the training one
        else:
            x = self.gather(batch, path)
        return Features(x=x, valid=np.ones(len(batch), bool))

    def state(self) -> dict:
        return {"name": self.name, "feature_names": self.feature_names}


class MorganFeaturizer:
    """Morgan fingerprints (RDKit ``rdFingerprintGenerator``), bits or counts, optionally + RDKit 2D descriptors.

    Invalid SMILES are not silently dropped: they come back in ``Features.rejects``.

    descriptor_set: "fast" (default: RDKit's 2D descriptors without the few slow ones of
    :data:`SLOW_DESCRIPTORS`, see benchmarks/featurize_speed.py) or "full" (all but Ipc, BCUT2D and fr_*,
    the set of archetool 0.1). A model's descriptors are its ``feature_names`` (``rdkit_<name>``), so a
    model saved with either set embeds with that set.
    jobs: worker processes for large inputs (None: :func:`default_jobs`); not part of the saved state.
    progress: report featurisation progress (:class:`archetool.progress.RowProgress`) for large inputs.
    """

    name = "morgan"

    def __init__(self, radius: int = 2, n_bits: int = 2048, counts: bool = False, descriptors: bool = True,
                 feature_names: list[str] | None = None, descriptor_set: str = "fast", jobs: int | None = None,
                 progress: bool = False):
        self.radius, self.n_bits, self.counts, self.descriptors = int(radius), int(n_bits), bool(counts), bool(descriptors)
        if descriptor_set not in DESCRIPTOR_SETS:
            raise InputError(f"--descriptor-set {descriptor_set!r}: choose one of {', '.join(DESCRIPTOR_SETS)}")
        self.descriptor_set, self.jobs, self.progress = descriptor_set, jobs, progress
        self.feature_names = list(feature_names or self._names())

    @property
    def likelihood(self) -> str:
        """Bits: Bernoulli; counts: Gaussian; bits + descriptors: Bernoulli bits and Gaussian descriptors."""
        if self.counts:
            return "gaussian"
        return f"mixed:{self.n_bits}" if self.descriptors else "bernoulli"

    def descriptor_names(self) -> list[str]:
        """The RDKit descriptor names computed, in feature order (from ``feature_names`` once fixed)."""
        if not self.descriptors:
            return []
        if getattr(self, "feature_names", None):
            return [n[len("rdkit_"):] for n in self.feature_names if n.startswith("rdkit_")]
        return descriptor_names(self.descriptor_set)

    def _names(self) -> list[str]:
        return [f"morgan_{i}" for i in range(self.n_bits)] + [f"rdkit_{n}" for n in self.descriptor_names()]

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        self.feature_names = self._names()

    def transform(self, batch: RawBatch, path, smiles_column: str = "smiles") -> Features:
        smiles = batch.obs[smiles_column].astype(str).tolist()
        settings = (self.radius, self.n_bits, self.counts, tuple(self.descriptor_names()))
        x, valid = featurize_smiles(smiles, settings, jobs=self.jobs, progress=self.progress)
        rejects = [(i, smiles[i]) for i in np.flatnonzero(~valid)]
        if len(x) == 0:
            x = np.zeros((0, len(self.feature_names)), np.float32)
        return Features(x=x, valid=valid, rejects=rejects)

    def state(self) -> dict:
        return {"name": self.name, "radius": self.radius, "n_bits": self.n_bits, "counts": self.counts,
                "descriptors": self.descriptors, "descriptor_set": self.descriptor_set,
                "feature_names": self.feature_names}


#: RDKit descriptors left out of the "fast" set: together about half of the descriptor time per molecule
#: for information the other descriptors already carry (benchmarks/featurize_speed.py measures both)
SLOW_DESCRIPTORS = ("qed", "SPS", "AvgIpc", "BertzCT")
DESCRIPTOR_SETS = ("fast", "full")
#: molecules below which featurisation stays in this process (starting workers costs more)
PARALLEL_MIN_MOLECULES = 500


def descriptor_names(descriptor_set: str = "fast") -> list[str]:
    """RDKit 2D descriptor names of a set: "full" = all but Ipc, BCUT2D and fr_* (unstable / sparse);
    "fast" = "full" minus :data:`SLOW_DESCRIPTORS`."""
    from rdkit.Chem import Descriptors

    names = [n for n, _ in Descriptors.descList if not n.startswith(("Ipc", "BCUT", "fr_"))]
    return names if descriptor_set == "full" else [n for n in names if n not in SLOW_DESCRIPTORS]


_DEFAULT_JOBS: int | None = None


def set_default_jobs(jobs: int | None) -> None:
    """Worker processes for molecule featurisation when a featuriser does not say (``--jobs``; None: the cores)."""
    global _DEFAULT_JOBS
    _DEFAULT_JOBS = jobs


def default_jobs() -> int:
    """``--jobs`` if set, else the CPUs this process may use (:func:`archetool.threads.available_cpus`:
    affinity, cgroup quota, ``SLURM_CPUS_PER_TASK``)."""
    if _DEFAULT_JOBS:
        return int(_DEFAULT_JOBS)
    from archetool.threads import available_cpus

    return available_cpus()


_WORKER_CACHE: dict = {}
_ESTATE_EXTREMES = {"MaxEStateIndex", "MinEStateIndex", "MaxAbsEStateIndex", "MinAbsEStateIndex"}


def _estate_indices(mol) -> None:
    """Compute the molecule's E-state indices once; RDKit caches them on ``mol`` for the E-state descriptors."""
    from rdkit.Chem.EState import EStateIndices

    try:
        EStateIndices(mol)
    except Exception:  # the descriptors themselves then fail and give NaN, as without the cache
        pass


def _descriptor_values(functions, mol) -> np.ndarray:
    """(d,) float32 descriptor values; NaN where RDKit fails or gives a non-finite or huge (>= 1e8) value."""
    values = []
    for fn in functions:
        try:
            values.append(float(fn(mol)))
        except Exception:
            values.append(np.nan)
    out = np.array(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (np.abs(out) < 1e8))] = np.nan
    return out.astype(np.float32)


def featurize_chunk(smiles: list[str], settings: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Featurise SMILES in this process: (x (n_valid, p) float32, valid (n,) bool).

    settings = (radius, n_bits, counts, descriptor names). Top-level so worker processes can run it.
    """
    from rdkit import Chem, RDLogger

    radius, n_bits, counts, names = settings
    if settings not in _WORKER_CACHE:
        from rdkit.Chem import Descriptors, rdFingerprintGenerator

        RDLogger.DisableLog("rdApp.*")
        functions = dict(Descriptors.descList)
        missing = [n for n in names if n not in functions]
        if missing:
            raise InputError(f"this RDKit lacks the model's descriptors {preview(missing, 5)}; "
                             "embed with the RDKit version the model was fitted with")
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
        # the four E-state index extremes recompute all E-state indices each (RDKit's default force=True);
        # reading the indices cached on the molecule gives the same values once instead of six times
        chosen = [partial(functions[n], force=False) if n in _ESTATE_EXTREMES else functions[n] for n in names]
        _WORKER_CACHE[settings] = (generator, chosen, any("EState" in n for n in names))
    generator, functions, estate = _WORKER_CACHE[settings]
    rows, valid = [], np.zeros(len(smiles), bool)
    for i, smi in enumerate(smiles):
        mol = Chem.MolFromSmiles(smi) if smi and smi != "nan" else None
        if mol is None:
            continue
        fp = generator.GetCountFingerprintAsNumPy(mol) if counts else generator.GetFingerprintAsNumPy(mol)
        vec = np.log1p(fp.astype(np.float32)) if counts else fp.astype(np.float32)
        if functions:
            if estate:
                _estate_indices(mol)
            vec = np.concatenate([vec, _descriptor_values(functions, mol)])
        rows.append(vec)
        valid[i] = True
    x = np.stack(rows) if rows else np.zeros((0, n_bits + len(names)), np.float32)
    return x, valid


def _quiet_worker() -> None:
    """Worker initializer: Ctrl-C (SIGINT to the whole process group) ends a worker silently, no traceback;
    the parent sees a broken pool and handles the interrupt itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pool_context():
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():  # no fork of a threaded process (torch, read-ahead)
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["archetool.data.featurizers", "rdkit.Chem.Descriptors"])
        _stop_forkserver_at_exit()
        return ctx
    return mp.get_context("spawn")


_STOP_REGISTERED = False


def _stop_forkserver_at_exit() -> None:
    """At exit, stop and reap the fork server (and so its workers): no process outlives archetool, and
    the CPU time the workers used is counted as this process's children's (``time``, ``/usr/bin/time``)."""
    global _STOP_REGISTERED
    if _STOP_REGISTERED:
        return
    import atexit
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and hasattr(server, "_stop"):  # private in CPython 3.8-3.13; skipped if it goes
        atexit.register(server._stop)
    _STOP_REGISTERED = True


def start_workers_early() -> None:
    """Start the process that forks featurisation workers now, so that its imports (RDKit, numpy) overlap
    the caller's own start-up (torch, the model) instead of delaying the first chunk. Idempotent."""
    if default_jobs() <= 1:
        return
    ctx = _pool_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def featurize_smiles(smiles: list[str], settings: tuple, jobs: int | None = None, progress: bool = False,
                     chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Featurise SMILES over ``jobs`` worker processes, order kept: (x (n_valid, p) float32, valid (n,) bool).

    Inputs under :data:`PARALLEL_MIN_MOLECULES` (or jobs=1) run in this process. Work goes out in chunks
    (``chunk`` molecules; default about 8 per worker, 64..1000); progress is reported per chunk. The pool is
    shut down on every path; on an error or Ctrl-C its workers are terminated, so none is left behind.
    """
    from archetool.progress import RowProgress

    jobs = int(jobs or default_jobs())
    n = len(smiles)
    if jobs > 1 and n >= PARALLEL_MIN_MOLECULES and main_script_reruns() is not None:
        jobs = 1  # worker processes would run the caller's script again (see main_script_reruns)
    if jobs <= 1 or n < PARALLEL_MIN_MOLECULES:
        if not progress or n < PARALLEL_MIN_MOLECULES:
            return featurize_chunk(smiles, settings)
        chunk = chunk or 256
        parts = []
        with RowProgress("featurise", total=n) as reporter:
            for start in range(0, n, chunk):
                parts.append(featurize_chunk(smiles[start : start + chunk], settings))
                reporter.update(len(parts[-1][1]))
        return _join(parts)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunk = chunk or int(min(1000, max(64, -(-n // (jobs * 8)))))
    pool = ProcessPoolExecutor(min(jobs, -(-n // chunk)), mp_context=_pool_context(), initializer=_quiet_worker)
    clean = False
    try:
        futures = [pool.submit(featurize_chunk, smiles[start : start + chunk], settings) for start in range(0, n, chunk)]
        workers = list((getattr(pool, "_processes", None) or {}).values())
        parts = []
        with RowProgress("featurise", total=n, enabled=progress) as reporter:
            for future in futures:
                try:
                    parts.append(future.result())
                except BrokenProcessPool:
                    raise _worker_death(workers) from None
                reporter.update(len(parts[-1][1]))
        clean = True
        return _join(parts)
    finally:
        if not clean:  # error or interrupt: stop the workers now rather than after the queued chunks
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


_WARNED_SCRIPTS: set = set()


def main_script_reruns() -> str | None:
    """The main script when worker processes would run it again, else None.

    Worker processes started with spawn or forkserver import the main module first (as ``__mp_main__``),
    running its top level again. A script that calls archetool at its top level, outside an
    ``if __name__ == "__main__":`` block (the README's examples saved as ``x.py``), would fit again in
    every worker. So when the main module is a file (``python x.py`` or ``python -m pkg.x``) and the
    line of it running now is not inside such a block, molecules are featurised in this process (a log
    line says how to get the workers back). Notebooks, ``python -c``, the ``archetool`` command and
    guarded scripts keep their workers.
    """
    import ast
    import logging
    import sys
    import threading

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and str(getattr(spec, "name", "")).endswith("__main__"):
        return None  # python -m pkg (pkg/__main__.py): multiprocessing does not re-run it
    path = getattr(spec, "origin", None) if spec is not None else getattr(main, "__file__", None)
    if not path:
        return None  # interactive, notebook, python -c: nothing to re-run
    # the main thread's stack: featurisation may run in a read-ahead thread (embed) while it waits
    main_thread = threading.main_thread()
    frame = sys._getframe() if threading.current_thread() is main_thread else sys._current_frames().get(main_thread.ident)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None  # not called from the main module's top level (its top level has finished)
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        guarded = False  # unreadable (python - < x.py): the workers could not run it either
    else:
        guarded = any(isinstance(node, ast.If) and _is_main_guard(node.test) and node.lineno <= line <= node.end_lineno
                      for node in tree.body)
    if guarded:
        return None
    if path not in _WARNED_SCRIPTS:
        _WARNED_SCRIPTS.add(path)
        logging.getLogger("archetool").info(
            "%s calls archetool outside an `if __name__ == \"__main__\":` block, which worker processes would run "
            "again: featurising in this process; put the script's code under that block to use %d worker processes",
            path, default_jobs())
    return str(path)


def _is_main_guard(test) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def _worker_death(workers) -> BaseException:
    """What a broken pool means: Ctrl-C (workers end on SIGINT) -> KeyboardInterrupt; else an ArchetoolError."""
    import signal

    for process in workers:
        process.join(timeout=1)
    codes = [process.exitcode for process in workers]
    if -signal.SIGINT in codes:
        return KeyboardInterrupt()
    from archetool.errors import ArchetoolError

    died = ", ".join(str(c) for c in codes if c not in (None, 0)) or "unknown"
    return ArchetoolError(f"a featurisation worker process died (exit status {died}; out of memory?); "
                          "retry with fewer workers, e.g. --jobs 1")


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([x for x, _ in parts]), np.concatenate([v for _, v in parts])


class GeneFeaturizer(NamedColumns):
    """Expression matrix columns, matched to the model's genes **by name** (any order, extra genes ignored);
    a table with gene-named columns works too (see :class:`NamedColumns`)."""

    name = "genes"
    likelihood = "gaussian"
    noun = "genes"

    def __init__(self, feature_names: list[str] | None = None):
        self.feature_names = list(feature_names or [])
        self._init_lookup()

    def fit(self, batch: RawBatch, exclude: set[str], path) -> None:
        names = [str(g) for g in batch.feature_names]
        dupes = pd.Index(names)[pd.Index(names).duplicated()].unique()
        if len(dupes):
            raise InputError(f"{path}: gene names must be unique; duplicated: {preview(dupes, 5)}")
        self.feature_names = names

    def transform(self, batch: RawBatch, path) -> Features:
        return Features(x=self.gather(batch, path), valid=np.ones(len(batch), bool))

    def state(self) -> dict:
        return {"name": self.name, "feature_names": self.feature_names}


FEATURIZERS = {"numeric": NumericFeaturizer, "morgan": MorganFeaturizer, "genes": GeneFeaturizer}


def featurizer_from_state(state: dict):
    state = dict(state)
    name = state.pop("name")
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featuriser {name!r}")
    return FEATURIZERS[name](**state)


def default_featurizer(kind: str, **morgan_options):
    """The featuriser for a source kind: molecules -> morgan, expression -> genes, table -> numeric."""
    if kind == "molecules":
        return MorganFeaturizer(**morgan_options)
    if kind == "expression":
        return GeneFeaturizer()
    return NumericFeaturizer()
