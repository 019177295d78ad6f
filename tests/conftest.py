"""Shared fixtures: tiny synthetic data in every input format, made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
# tests featurise afresh (a cached hit skips featurisation's own messages); test_fit_cost.py turns it on
os.environ["ARCHETOOL_CACHE_DIR"] = "off"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

MOLECULES = [
    ("CCO", 15.0), ("CCC", 17.5), ("CCCC", 22.0), ("CC(C)C", 21.5), ("c1ccccc1", 19.7), ("Cc1ccccc1", 24.8),
    ("CC(=O)O", 15.9), ("CCN", 16.4), ("CCCl", 17.9), ("OCCO", 19.6), ("CC=O", 13.2), ("C1CCCCC1", 25.4),
    ("CCOC", 20.1), ("CC#N", 12.5), ("NCCN", 20.0), ("CCCO", 20.6), ("C=CC=C", 18.1), ("c1ccncc1", 18.0),
    ("CC(C)O", 20.4), ("COC", 15.8), ("CCCCC", 26.3), ("CCCCO", 25.4), ("C1CCOC1", 19.2), ("CC(N)=O", 16.9),
]


def make_table(n: int = 120, p: int = 8, k: int = 3, seed: int = 0) -> pd.DataFrame:
    """Convex mixtures of k random vertices in p dims, plus a side column linear in the weights and a class."""
    rng = np.random.default_rng(seed)
    vertices = rng.normal(size=(k, p)) * 3
    weights = rng.dirichlet(np.full(k, 0.6), size=n)
    x = weights @ vertices + 0.05 * rng.normal(size=(n, p))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(p)])
    frame.insert(0, "id", [f"s{i:03d}" for i in range(n)])
    frame["y"] = weights @ np.arange(k, dtype=float) * 2.0
    frame["cls"] = np.array(["A", "B", "C"])[weights.argmax(1) % 3]
    return frame


@pytest.fixture
def table_csv(tmp_path) -> Path:
    path = tmp_path / "table.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture
def smi_file(tmp_path) -> Path:
    path = tmp_path / "mols.smi"
    lines = ["smiles id heat_capacity"] + [f"{s} m{i} {cv}" for i, (s, cv) in enumerate(MOLECULES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_adata(n: int = 90, genes: int = 30, seed: int = 0, sparse: bool = False):
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    labels = np.array(["T", "B", "NK"])[np.arange(n) % 3]
    centres = rng.normal(size=(3, genes)) * 2
    x = centres[np.arange(n) % 3] + rng.normal(size=(n, genes))
    x = np.abs(x).astype(np.float32)
    obs = pd.DataFrame({"cell_type": labels, "n_counts": x.sum(1)}, index=[f"cell{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"GENE{i}" for i in range(genes)])
    adata = ad.AnnData(X=sp.csr_matrix(x) if sparse else x, obs=obs, var=var)
    adata.layers["counts"] = np.round(x * 3).astype(np.float32)
    return adata


@pytest.fixture
def h5ad_file(tmp_path) -> Path:
    path = tmp_path / "cells.h5ad"
    make_adata().write_h5ad(path)
    return path


def run_cli(*args: str):
    """Invoke the CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from archetool.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


FAST_FIT = ("--epochs", "4", "--batch-size", "32", "--hidden", "32,16", "--no-progress")


# ------------------------------------------------------------------ tests must not write into the tree

_CACHES = {"__pycache__", ".pytest_cache", ".hypothesis", ".git"}


def _tree_files() -> set[str] | None:
    """Untracked and ignored files of the repository (caches and virtual environments left out), or None
    without git. Ignored files count too: a test writing e.g. sample_data/x.deepaa.archetool/ must show."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain=v1", "-z", "--untracked-files=all",
                              "--ignored"], capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = set()
    for entry in out.decode("utf-8", "replace").split("\0"):
        if entry[:3] not in ("?? ", "!! "):
            continue
        path = entry[3:]
        parts = Path(path).parts
        if _CACHES & set(parts) or parts[0].startswith((".venv", "venv")) or parts[0] in ("site", "build", "dist") \
                or parts[0].endswith(".egg-info"):
            continue
        files.add(path)
    return files


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist) only
        session.config._tree_before = _tree_files()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_tree_before", None)
    if before is None:
        return
    new = sorted((_tree_files() or set()) - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"the test run wrote {len(new)} new file(s) into the repository (tests must write into tmp_path): "
                   + ", ".join(new[:10]) + (" ..." if len(new) > 10 else ""))
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
