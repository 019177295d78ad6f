"""Make sample_data/pbmc_small.h5ad: a seeded subsample of scanpy's pbmc68k_reduced.

Source: ``scanpy.datasets.pbmc68k_reduced()``, a file bundled inside the
scanpy package (BSD-3-Clause; no download).  It is a 700-cell x 765-gene
subsample of the 10x Genomics "Fresh 68k PBMCs (Donor A)" data set,
preprocessed by the scanpy authors (per-cell normalisation, log1p, selection
of variable genes, per-gene scaling).

What this script keeps:
  * N_CELLS cells drawn at random with a fixed seed (kept in original order);
  * the N_GENES genes with the highest normalised dispersion
    (``var['dispersions_norm']``, computed by scanpy's authors), kept in the
    original var order;
  * X: the bundled X (already log-normalised AND scaled per gene over the
    original 700 cells: values can be negative), dense float32;
  * layers['log1p']: the bundled ``raw.X`` (log1p of normalised counts, not
    scaled; non-negative), same cells/genes, dense float32;
  * obs: ``bulk_labels`` (cell-type label, categorical), ``n_counts`` and
    ``percent_mito`` (numeric QC values from the original data);
  * nothing else (no uns/obsm/varm/obsp).

Run from the repository root:

    .venv/bin/python sample_data/make_expression.py
"""

from __future__ import annotations

import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

SEED = 20240601
N_CELLS = 400
N_GENES = 200
# the file lives in the package (archetool/examples/, shipped in the wheel); sample_data/pbmc_small.h5ad links to it
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "archetool", "examples", "pbmc_small.h5ad")


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scanpy as sc

        full = sc.datasets.pbmc68k_reduced()

    rng = np.random.default_rng(SEED)
    cells = np.sort(rng.choice(full.n_obs, size=N_CELLS, replace=False))
    top = np.argsort(-full.var["dispersions_norm"].to_numpy(), kind="stable")[:N_GENES]
    genes = np.sort(top)

    X = np.asarray(full.X[cells][:, genes], dtype=np.float32)
    raw = full.raw.X[cells][:, genes]
    raw = np.asarray(raw.toarray() if sp.issparse(raw) else raw, dtype=np.float32)

    obs = pd.DataFrame(
        {
            "bulk_labels": pd.Categorical(full.obs["bulk_labels"].astype(str).to_numpy()[cells]),
            "n_counts": full.obs["n_counts"].to_numpy(dtype=np.float32)[cells],
            "percent_mito": full.obs["percent_mito"].to_numpy(dtype=np.float32)[cells],
        },
        index=pd.Index(full.obs_names[cells].astype(str), name=None),
    )
    var = pd.DataFrame(index=pd.Index(full.var_names[genes].astype(str), name=None))

    out = ad.AnnData(X=X, obs=obs, var=var, layers={"log1p": raw})
    out.write_h5ad(OUT)

    print(f"written: {OUT} ({out.n_obs} cells x {out.n_vars} genes, "
          f"{os.path.getsize(OUT)} bytes)")
    print(f"X range: {X.min():.4g} .. {X.max():.4g}; "
          f"log1p range: {raw.min():.4g} .. {raw.max():.4g}")
    print(out.obs["bulk_labels"].value_counts().to_string())


if __name__ == "__main__":
    main()
