"""Example data shipped inside the package, for ``archetool example NAME DIR``.

The bundled files are the repository's ``sample_data/`` files (``sample_data/`` links to them); the
``lincs`` example is generated on the spot: a small LINCS-shaped ``.gctx`` (signatures x 978 genes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archetool.errors import ArchetoolError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Example:
    name: str
    files: tuple[str, ...]
    about: str
    next_step: str  # a command to try next; {dir} is the destination directory


EXAMPLES = {
    "molecules": Example("molecules", ("molecules.smi",),
                         "1,000 QM9 molecules with DFT heat capacity and band gap",
                         "archetool fit {dir}/molecules.smi --side heat_capacity"),
    "table": Example("table", ("wine.csv",),
                     "178 wines x 13 chemical measurements and the cultivar (scikit-learn's wine data)",
                     "archetool fit {dir}/wine.csv --side alcohol"),
    "expression": Example("expression", ("pbmc_small.h5ad",),
                          "400 blood cells x 200 genes with cell-type labels (from scanpy's pbmc68k_reduced)",
                          "archetool fit {dir}/pbmc_small.h5ad --model nvae --label bulk_labels"),
    "lincs": Example("lincs", ("lincs_example.gctx",),
                     "a generated LINCS-shaped .gctx: 12 perturbagens, 978 genes, column metadata like LINCS level 5",
                     "archetool fit {dir}/lincs_example.gctx --model svqvae --label pert_iname"),
}


def names() -> list[str]:
    return sorted(EXAMPLES)


def copy_example(name: str, dest, signatures: int = 240) -> list[Path]:
    """Copy (or, for ``lincs``, write) example ``name`` into directory ``dest``; returns the files written.

    Refuses, before writing anything, an unknown name or a destination file that already exists.
    ``signatures``: rows of the generated ``lincs`` file (ignored by the bundled examples).
    """
    import shutil

    example = EXAMPLES.get(name)
    if example is None:
        raise ArchetoolError(f"no example {name!r}; the examples are: {', '.join(names())}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ArchetoolError(f"{dest}: exists and is not a directory; give a directory to copy the example into")
    targets = [dest / f for f in example.files]
    taken = [str(t) for t in targets if t.exists()]
    if taken:
        raise ArchetoolError(f"{', '.join(taken)}: already exists; nothing was copied (remove it, or give another directory)")
    if name == "lincs" and signatures < len(LINCS_PERTURBAGENS):
        raise ArchetoolError(f"--signatures {signatures}: give at least {len(LINCS_PERTURBAGENS)} (one per perturbagen)")
    dest.mkdir(parents=True, exist_ok=True)
    if name == "lincs":
        write_lincs_example(targets[0], signatures=signatures)
        return targets
    for file, target in zip(example.files, targets):
        tmp = target.with_name(f".{target.name}.part")
        try:
            shutil.copyfile(HERE / file, tmp)
            tmp.replace(target)  # no half-copied file under the final name
        finally:
            tmp.unlink(missing_ok=True)
    return targets


LINCS_PERTURBAGENS = ("DMSO", "vemurafenib", "PLX-4720", "trametinib", "selumetinib", "torin-2",
                      "NVP-BEZ235", "neratinib", "pelitinib", "vorinostat", "bortezomib", "geldanamycin")
BLOCK = 10_000  # rows generated at a time, so a large --signatures file never sits in memory whole


def _programmes(genes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, genes)) * (rng.random((8, genes)) < 0.15) * 3.0


_USES = {"DMSO": [], "vemurafenib": [0], "PLX-4720": [0], "trametinib": [0, 1], "selumetinib": [0, 1],
         "torin-2": [2], "NVP-BEZ235": [2, 3], "neratinib": [4], "pelitinib": [4], "vorinostat": [5],
         "bortezomib": [6], "geldanamycin": [7, 6]}


def lincs_block(start: int, rows: int, genes: int = 978, seed: int = 0):
    """Rows ``start .. start+rows`` of the LINCS-shaped example: ``(x (rows, genes) float32, sig_ids, col_meta)``.

    Each perturbagen switches on 0-2 of 8 sparse gene programmes (inhibitors of one target share one),
    scaled by a log-normal potency, plus unit noise: z-score-like values as in LINCS level 5. DMSO is
    noise only; its ``pert_dose`` is LINCS's missing value -666.
    """
    programmes = _programmes(genes, seed)
    rng = np.random.default_rng([seed, start])
    index = np.arange(start, start + rows)
    labels = np.array(LINCS_PERTURBAGENS)[index % len(LINCS_PERTURBAGENS)]
    potency = rng.lognormal(0.0, 0.4, size=rows)
    dose = np.where(labels == "DMSO", -666.0, np.round(10.0 ** rng.uniform(-1, 1, rows), 2))
    x = rng.normal(size=(rows, genes))
    for i, label in enumerate(labels):
        for j in _USES[label]:
            x[i] += potency[i] * programmes[j]
    sig_ids = [f"EXM{i // 384 + 1:03d}_A375_24H:{chr(65 + (i % 384) // 24)}{i % 24 + 1:02d}" for i in index]
    meta = {"pert_iname": labels, "cell_id": np.full(rows, "A375"), "pert_dose": dose,
            "pert_time": np.full(rows, 24)}
    return x.astype(np.float32), sig_ids, meta


def lincs_gene_ids(genes: int = 978, seed: int = 0) -> list[str]:
    """Entrez-like gene ids (the row ids of a LINCS ``.gctx``)."""
    rng = np.random.default_rng([seed, 978])
    return [str(g) for g in np.sort(rng.choice(np.arange(10, 100_000), size=genes, replace=False))]


def write_lincs_example(path, signatures: int = 240, seed: int = 0) -> Path:
    """Write the LINCS-shaped example (``signatures`` x 978 genes) as a ``.gctx`` at ``path``, generated
    in blocks of 10,000 rows (memory stays flat), under a temporary name and then renamed."""
    from archetool.data.readers.gctx import write_gctx

    path = Path(path)
    starts = range(0, signatures, BLOCK)
    ids, metas = [], []
    for s in starts:  # metadata only (one gene): small
        _, block_ids, block_meta = lincs_block(s, min(BLOCK, signatures - s), genes=1, seed=seed)
        ids += block_ids
        metas.append(block_meta)
    meta = {k: np.concatenate([m[k] for m in metas]) for k in metas[0]}
    matrix = (lincs_block(s, min(BLOCK, signatures - s), seed=seed)[0] for s in starts)
    tmp = path.with_name(f".{path.stem}.part.gctx")
    try:
        write_gctx(tmp, matrix, lincs_gene_ids(seed=seed), ids, col_meta=meta, n_sig=signatures)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
