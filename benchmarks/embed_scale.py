"""Benchmark: ``archetool embed`` on LINCS-sized files (1,000,000 profiles x 978 genes by default).

Makes a .gctx and a backed-readable .h5ad of the same synthetic float32 profiles (written in row
blocks, so making them needs little memory), fits a small deepaa model (default sizes) on a 5,000-row
file with the same genes, then runs ``archetool embed`` into .parquet and .npy under ``/usr/bin/time -v``
and reports wall time, throughput and peak RSS -- at two sizes, to show memory does not grow with rows.

    .venv/bin/python benchmarks/embed_scale.py                 # 250k and 1M rows (~2 x 3.9 GB under /tmp)
    .venv/bin/python benchmarks/embed_scale.py --quick         # smoke run (20k and 40k rows)
    .venv/bin/python benchmarks/embed_scale.py --rows 500000 --scaling-rows 100000

Files live under --dir (default /tmp/archetool-bench) and are deleted at the end (--keep keeps them).
Prints a markdown table and writes benchmarks/results/embed_scale.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import archetool_cmd, free_gib, load_average, machine, markdown, run_timed, write_result  # noqa: E402

N_GENES = 978
K_TRUE = 4
BLOCK_ROWS = 1 << 15  # rows generated and written at a time (~128 MB of float32)
PERTS = np.array([f"BRD-K{i:05d}" for i in range(500)], dtype=object)
CELLS = np.array(["A375", "A549", "HA1E", "HCC515", "HEPG2", "HT29", "MCF7", "PC3", "VCAP", "NPC"], dtype=object)


def gene_ids() -> list[str]:
    return [f"GENE{i:04d}" for i in range(N_GENES)]


def _programs(seed: int = 7) -> np.ndarray:
    """K_TRUE gene programmes (archetypes in gene space), fixed across files."""
    return (np.random.default_rng(seed).normal(size=(K_TRUE, N_GENES)) * 2.0).astype(np.float32)


def profile_blocks(n: int, seed: int, block_rows: int = BLOCK_ROWS):
    """Row blocks of n synthetic profiles: convex mixtures of K_TRUE programmes plus noise (float32)."""
    programs = _programs()
    for start in range(0, n, block_rows):
        m = min(block_rows, n - start)
        rng = np.random.default_rng([seed, start])
        w = rng.gamma(0.7, size=(m, K_TRUE)).astype(np.float32)
        w /= w.sum(1, keepdims=True)
        x = rng.standard_normal((m, N_GENES), dtype=np.float32)
        x *= 0.5
        x += w @ programs
        yield x


def column_meta(n: int, seed: int) -> dict[str, np.ndarray]:
    """LINCS-like signature metadata: perturbagen, cell line, dose (text, -666 = missing), time."""
    rng = np.random.default_rng([seed, 99])
    dose = np.round(rng.choice([0.04, 0.12, 0.37, 1.11, 3.33, 10.0], size=n), 2).astype(str).astype(object)
    dose[rng.random(n) < 0.05] = "-666"
    return {"pert_iname": PERTS[rng.integers(0, len(PERTS), n)], "cell_id": CELLS[rng.integers(0, len(CELLS), n)],
            "pert_dose": dose, "pert_time": rng.choice([6, 24, 48], size=n).astype(np.int64)}


def sig_ids(n: int) -> list[str]:
    return [f"SIG{i:07d}" for i in range(n)]


def make_gctx(path: Path, n: int, seed: int) -> Path:
    from archetool.data.readers.gctx import write_gctx

    return write_gctx(path, profile_blocks(n, seed), gene_ids(), sig_ids(n), col_meta=column_meta(n, seed))


def make_h5ad(path: Path, n: int, seed: int) -> Path:
    """An AnnData skeleton (obs, var) written by anndata, then X added as a row-chunked float32 HDF5
    dataset filled block by block -- the layout anndata writes for a dense X, readable with backed='r'."""
    import anndata as ad
    import h5py
    import pandas as pd

    meta = column_meta(n, seed)
    obs = pd.DataFrame({k: (pd.Categorical(v) if v.dtype == object else v) for k, v in meta.items()},
                       index=pd.Index(sig_ids(n), name="cid"))
    var = pd.DataFrame(index=pd.Index(gene_ids(), name="gene_id"))
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    del obs, meta
    chunk_rows = max(1, (1 << 20) // (4 * N_GENES))
    with h5py.File(path, "r+") as f:
        if "X" in f:
            del f["X"]
        ds = f.create_dataset("X", shape=(n, N_GENES), dtype=np.float32, chunks=(chunk_rows, N_GENES))
        ds.attrs["encoding-type"] = "array"
        ds.attrs["encoding-version"] = "0.2.0"
        pos = 0
        for block in profile_blocks(n, seed):
            ds[pos:pos + len(block)] = block
            pos += len(block)
    backed = ad.read_h5ad(path, backed="r")  # verify anndata opens it backed with the right shape
    assert backed.shape == (n, N_GENES), backed.shape
    backed.file.close()
    return path


CEILING = """
import sys, time, numpy as np, torch
from archetool.model import ArchetoolModel
from archetool.threads import forward_pool
model, threads = ArchetoolModel.load(sys.argv[1], device="cpu"), int(sys.argv[2])
x = np.random.default_rng(0).standard_normal((65536, model.module.n_features), dtype=np.float32)
with forward_pool("cpu", threads) as pool:
    model.transform(x[:8192], 1024, pool)
    tic = time.perf_counter()
    for start in range(0, len(x), 8192):
        model.transform(x[start:start + 8192], 1024, pool)
print(len(x) / (time.perf_counter() - tic))
"""


def forward_ceiling(model: Path, threads: int) -> float:
    """Rows/s of the bare forward passes over tensors already in memory (no reading, scaling or writing),
    the way embed runs them (``threads`` workers, batches of 1024), measured just before each embed run:
    what the model alone allows on the machine at that moment."""
    res = run_timed([sys.executable, "-c", CEILING, str(model), str(threads)], env={"OMP_NUM_THREADS": str(threads)})
    return float(res["stdout"].strip().splitlines()[-1])


def embed_run(model: Path, data: Path, out: Path, rows: int, threads: int, extra: list[str]) -> dict:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    ceiling = forward_ceiling(model, threads)
    res = run_timed([*archetool_cmd(), "embed", str(model), str(data), "--out", str(out), *extra], env=env)
    m = re.search(r"embedded (\d+) rows in ([\d.]+)s \((\d+) rows/s\)", res["stderr"])
    if not m or int(m.group(1)) != rows:
        raise RuntimeError(f"unexpected embed log:\n{res['stderr'][-2000:]}")
    stream_s = rows / max(float(m.group(3)), 1e-9)  # embed's own timing: first chunk read to last row written
    return {"rows": rows, "input": data.suffix, "output": out.suffix, "threads": threads, "wall s": res["wall_s"],
            "profiles/s (end-to-end)": rows / res["wall_s"], "profiles/s (streaming)": rows / max(stream_s, 1e-9),
            "bare forward profiles/s": ceiling, "streaming / bare forward": rows / max(stream_s, 1e-9) / ceiling,
            "profiles per CPU-s": rows / res["cpu_s"], "peak RSS MiB": res["peak_rss_mib"], "CPU %": res["cpu_pct"],
            "load (1/5/15 min)": res["load_before"]}


def check_outputs(outputs: dict[str, Path], rows: int) -> None:
    """Row counts match, and the .gctx and .h5ad copies of the same profiles give the same embedding."""
    import h5py
    import pyarrow.parquet as pq

    heads = {}
    for name, path in outputs.items():
        if path.suffix == ".h5ad":
            with h5py.File(path, "r") as f:
                assert f["obsm/X_deepaa"].shape[0] == rows, (path, rows)
                heads[name] = np.concatenate([f["obsm/X_deepaa"][:2000], f["obsm/deepaa_weights"][:2000]], axis=1)
        elif path.suffix == ".parquet":
            assert pq.ParquetFile(path).metadata.num_rows == rows, (path, rows)
            heads[name] = pq.ParquetFile(path).read_row_group(0).to_pandas().head(2000)
        else:
            arr = np.load(path, mmap_mode="r")
            assert arr.shape[0] == rows, (path, arr.shape)
            heads[name] = np.asarray(arr[:2000])
    g, h = heads["gctx.parquet"], heads["h5ad.parquet"]
    assert (g.iloc[:, 0].astype(str).to_numpy() == h.iloc[:, 0].astype(str).to_numpy()).all(), "ids differ"
    zcols = [c for c in g.columns if c[0] in "za" and c[1:].isdigit()]
    np.testing.assert_allclose(g[zcols].to_numpy(), h[zcols].to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(heads["gctx.npy"], g[zcols].to_numpy(np.float32), rtol=1e-5, atol=1e-6)
    if "h5ad.h5ad" in heads:
        np.testing.assert_allclose(heads["h5ad.h5ad"], g[zcols].to_numpy(np.float32), rtol=1e-5, atol=1e-6)


def median_of_runs(runs: list[dict]) -> dict:
    """One table row for repeated runs of the same command: medians, except peak RSS (the largest)."""
    import statistics

    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and key not in ("rows", "threads"):
            values = [r[key] for r in runs]
            row[key] = max(values) if key == "peak RSS MiB" else statistics.median(values)
    row["runs"] = len(runs)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="profiles in the big files")
    ap.add_argument("--scaling-rows", type=int, default=250_000, help="a smaller size, to show RSS does not grow (0 = skip)")
    ap.add_argument("--train-rows", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", default="2", help="torch/OpenMP threads for embed; a list (2,1) runs the largest size "
                    "at each (the smaller size at the first only)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/archetool-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--quick", action="store_true", help="smoke run: 40k and 20k rows, 2 epochs")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each command, interleaved; the table shows medians")
    ap.add_argument("--embed-args", default="", help="extra arguments for 'archetool embed' (e.g. '--chunk-rows 16384')")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.scaling_rows, args.train_rows, args.epochs = min(args.rows, 40_000), 20_000, 2000, 2
        args.repeats = 1
    sizes = sorted({s for s in (args.scaling_rows, args.rows) if s > 0})
    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    work = args.dir
    work.mkdir(parents=True, exist_ok=True)
    need = 3 * max(sizes) * N_GENES * 4 * 1.05 / 2**30 + 1  # .gctx, .h5ad and the .h5ad output (a copy)
    if free_gib(work) < need:
        sys.exit(f"{work}: {free_gib(work):.1f} GiB free, need {need:.1f} GiB")
    extra = args.embed_args.split()
    rows_out: list[dict] = []
    notes: list[str] = []
    try:
        tic = time.perf_counter()
        train = make_gctx(work / "train.gctx", args.train_rows, seed=1)
        model = work / "train.deepaa.archetool"
        shutil.rmtree(model, ignore_errors=True)
        fit = run_timed([*archetool_cmd(), "-q", "fit", str(train), "--out", str(model), "--epochs", str(args.epochs),
                         "--patience", "0", "--no-progress"],
                        env={"OMP_NUM_THREADS": str(thread_counts[0])})
        notes.append(f"model: deepaa, default sizes (k=4, hidden 256,128), fitted on {args.train_rows:,} x {N_GENES} "
                     f"({args.epochs} epochs, {fit['wall_s']:.1f}s)")
        print(f"fitted {model} in {fit['wall_s']:.1f}s", file=sys.stderr)
        for n in sizes:
            t0 = time.perf_counter()
            gctx = make_gctx(work / f"big{n}.gctx", n, seed=2)
            h5ad = make_h5ad(work / f"big{n}.h5ad", n, seed=2)
            size_gb = gctx.stat().st_size / 1e9
            notes.append(f"{n:,} rows: .gctx {size_gb:.2f} GB, .h5ad {h5ad.stat().st_size / 1e9:.2f} GB, "
                         f"made in {time.perf_counter() - t0:.0f}s")
            print(notes[-1], file=sys.stderr)
            outputs = {}
            pairs = [(gctx, ".parquet"), (gctx, ".npy"), (h5ad, ".parquet"), (h5ad, ".npy"), (h5ad, ".h5ad")]
            for threads in (thread_counts if n == max(sizes) else thread_counts[:1]):
                runs: dict[str, list[dict]] = {}
                for _ in range(args.repeats):  # round robin: a slow moment of the machine hits every pair alike
                    for data, ext in pairs:
                        name = f"{data.suffix[1:]}{ext}"
                        out = work / f"emb{n}.{name}"
                        runs.setdefault(name, []).append(embed_run(model, data, out, n, threads, extra))
                        outputs[name] = out
                        print(markdown([runs[name][-1]]).splitlines()[-1], file=sys.stderr)
                rows_out.extend(median_of_runs(r) for r in runs.values())
                check_outputs(outputs, n)
            if not args.keep:
                for p in (gctx, h5ad, *outputs.values()):
                    p.unlink(missing_ok=True)
        total = time.perf_counter() - tic
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(rows_out)
    big = [r for r in rows_out if r["rows"] == max(sizes) and r["threads"] == thread_counts[0]]
    small = [r for r in rows_out if r["rows"] == min(sizes) and r["threads"] == thread_counts[0]]
    summary = [
        f"* machine: {machine()}",
        f"* command: `{' '.join(['archetool embed MODEL big.gctx --out emb.parquet', *extra])}` (and big.h5ad, emb.npy, "
        "emb.h5ad), each under `/usr/bin/time -v` with OMP_NUM_THREADS=threads; "
        f"{args.repeats} interleaved run(s) of each, the table shows medians (peak RSS: the largest)",
        "* streaming: embed's own timing, first chunk read to last row written (end-to-end adds the start-up: "
        "Python, torch and pandas imports, model load; about 4 s on this machine)",
        "* bare forward: the model alone on 65,536 rows already in memory, as embed runs it (same workers, "
        "batches of 1,024), measured just before each embed run: the ceiling the machine allowed at that moment",
        *[f"* {n}" for n in notes],
        f"* peak RSS at {max(sizes):,} rows: max {max(r['peak RSS MiB'] for r in big):.0f} MiB (target < 1024)",
    ]
    for t in thread_counts:
        at = [r for r in rows_out if r["rows"] == max(sizes) and r["threads"] == t]
        summary.append(f"* streaming throughput at {max(sizes):,} rows, {t} thread(s): "
                       f"{min(r['profiles/s (streaming)'] for r in at):,.0f} to {max(r['profiles/s (streaming)'] for r in at):,.0f} "
                       f"profiles/s (target >= 100,000); bare forward passes in the same moments "
                       f"{min(r['bare forward profiles/s'] for r in at):,.0f} to {max(r['bare forward profiles/s'] for r in at):,.0f}, "
                       f"streaming / bare forward {min(r['streaming / bare forward'] for r in at):.2f} to "
                       f"{max(r['streaming / bare forward'] for r in at):.2f}")
    if len(sizes) > 1:
        growth = max(b["peak RSS MiB"] - s["peak RSS MiB"] for b, s in zip(big, small))
        summary.append(f"* peak RSS growth from {min(sizes):,} to {max(sizes):,} rows ({thread_counts[0]} thread(s), same "
                       f"input/output pairs): at most {growth:+.0f} MiB")
    summary.append(f"* load average after: {load_average()}; total benchmark time {total:.0f}s")
    text = "## Embedding at scale\n\n" + table + "\n\n" + "\n".join(summary) + "\n"
    print(text)
    print(f"wrote {write_result('embed_scale' if not args.quick else 'embed_scale_quick', text)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
