"""Embedding throughput and peak memory of ``archetool embed`` on large LINCS-shaped .gctx files.

1. Fit a small svqvae (default architecture, a few epochs: throughput does not depend on how well it
   is trained) on 2,000 synthetic signatures x 978 genes, 20 classes.
2. For each size N (default 50,000 and 200,000 signatures): write an N x 978 .gctx with
   ``write_gctx`` from row blocks (one 10,000-row block in memory at a time), then run
   ``archetool embed MODEL big.gctx --out emb.parquet`` in a subprocess under ``/usr/bin/time -v``
   and read its wall time, CPU time and peak resident memory. The output row count is checked.

Peak memory must stay flat as N grows: embed reads HDF5 row slices (``--chunk-rows``) and appends each
embedded chunk to the output, so neither the input nor the output is ever held whole.

    .venv/bin/python benchmarks/gctx_embed_scale.py --rows 50000,200000 --threads 2

Prints a Markdown table and writes benchmarks/results/svqvae_gctx_embed_scale.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import archetool_cmd, machine, markdown, run_timed, write_result  # noqa: E402

GENES = 978
BLOCK = 10_000


def signatures(n: int, centres: np.ndarray, seed: int, classes: list | None = None):
    """Row blocks of LINCS-shaped z-scores: class centre + unit noise, float32, BLOCK rows at a time.

    The class of every row is appended to ``classes`` when a list is given."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, BLOCK):
        k = min(BLOCK, n - start)
        cls = rng.integers(0, len(centres), size=k)
        if classes is not None:
            classes.extend(cls.tolist())
        yield (centres[cls] + rng.standard_normal((k, GENES), dtype=np.float32)).astype(np.float32)


def make_gctx(path: Path, n: int, centres: np.ndarray, seed: int, with_labels: bool = False) -> float:
    from archetool.data.readers.gctx import write_gctx

    tic = time.perf_counter()
    genes = [f"{200000 + g}_at" for g in range(GENES)]
    meta = None
    if with_labels:  # small training file: materialise the blocks to know the labels first
        classes: list[int] = []
        matrix = iter(list(signatures(n, centres, seed, classes)))
        meta = {"pert_iname": np.array([f"PERT{c:02d}" for c in classes])}
    else:
        matrix = signatures(n, centres, seed)
    write_gctx(path, matrix, genes, [f"SIG{i:07d}" for i in range(n)], meta, n_sig=n)
    return time.perf_counter() - tic


def run_embed(model: Path, data: Path, out: Path, chunk_rows: int, threads: int) -> dict:
    cmd = [*archetool_cmd(), "-q", "embed", str(model), str(data), "--out", str(out), "--device", "cpu",
           "--chunk-rows", str(chunk_rows)]
    return run_timed(cmd, env={"OMP_NUM_THREADS": str(threads)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="50000,200000")
    parser.add_argument("--chunk-rows", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the embed process")
    parser.add_argument("--workdir", default=None, help="where the .gctx files go (default: a temporary directory)")
    args = parser.parse_args(argv)
    from archetool.fitting import FitOptions, fit
    import pyarrow.parquet as pq

    work = Path(args.workdir or tempfile.mkdtemp(prefix="gctx_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = (rng.standard_normal((20, GENES)) * 0.7).astype(np.float32)
    small = work / "train.gctx"
    make_gctx(small, 2000, centres, seed=1, with_labels=True)
    model = work / "model"
    tic = time.perf_counter()
    fit(FitOptions(data=str(small), model="svqvae", label="pert_iname", out=str(model), epochs=3, device="cpu",
                   progress_bar=False))
    print(f"fitted the svqvae model in {time.perf_counter() - tic:.0f}s", file=sys.stderr)
    rows = []
    for n in [int(r) for r in args.rows.split(",")]:
        big = work / f"big_{n}.gctx"
        write_s = make_gctx(big, n, centres, seed=2)
        out = work / f"emb_{n}.parquet"
        res = run_embed(model, big, out, args.chunk_rows, args.threads)
        written = pq.ParquetFile(out).metadata.num_rows
        assert written == n, (written, n)
        rows.append({"signatures x genes": f"{n:,} x {GENES}", ".gctx MiB": big.stat().st_size / 2**20,
                     "write s": write_s, "threads": args.threads, "embed wall s": res["wall_s"],
                     "profiles/s": n / res["wall_s"], "profiles per CPU-s": n / res["cpu_s"],
                     "peak RSS MiB": res["peak_rss_mib"], "CPU %": res["cpu_pct"], "load (1/5/15 min)": res["load_before"]})
        print(rows[-1], file=sys.stderr, flush=True)
        big.unlink()
        out.unlink()
    table = markdown(rows)
    print(table)
    text = (f"# svqvae: embed throughput and peak memory on LINCS-shaped .gctx\n\n{machine()}\n\n"
            f"    .venv/bin/python benchmarks/gctx_embed_scale.py --rows {args.rows} --threads {args.threads}\n\n"
            f"Model: svqvae, default sizes (978 -> 256 -> 128 -> code 40, 20 classes), chunk rows {args.chunk_rows}.\n\n{table}\n")
    print(f"wrote {write_result('svqvae_gctx_embed_scale', text)}", file=sys.stderr)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
