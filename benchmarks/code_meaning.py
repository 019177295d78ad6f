"""Do svqvae's class codes mean something? (issue 17, item 3)

For pbmc68k_reduced (``bulk_labels``) and the LINCS A375 plate (``pert_iname``): fit svqvae with default
settings on all rows (a different seed per run), then Spearman rho between the K(K-1)/2 pairwise distances
of the class codes and those of the class centroids in expression space (the matrix as given: pbmc's
scaled log-expression, the plate's z-scores; and, as a second figure, the model's standardised features).
As a reference in the same run: the same rho for a random codebook (the expected figure without meaning,
0 up to noise) and for the centroids of the training rows' embeddings z_e (what the encoder learned).
Draws the code-distance heatmap with its dendrogram, next to the centroid-distance heatmap in the same
order, for the first seed: docs/pbmc_code_heatmap.png and docs/lincs_plate_code_heatmap.png.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/code_meaning.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, REPO, load_average, machine, markdown, mean_sd  # noqa: E402
from class_models_real import pbmc, plate  # noqa: E402

DATA = {"pbmc": (pbmc, "bulk_labels", "pbmc_code_heatmap.png"),
        "plate": (plate, "pert_iname", "lincs_plate_code_heatmap.png")}


def figure(code_dist: np.ndarray, cent_dist: np.ndarray, classes: list[str], title: str, path: Path) -> Path:
    """Code distances clustered, with the dendrogram, beside the centroid distances in the same order."""
    from scipy.cluster.hierarchy import dendrogram, leaves_list, linkage
    from scipy.spatial.distance import squareform

    from archetool.analysis.plots import _pyplot, save_figure

    plt = _pyplot()
    tree = linkage(squareform(code_dist, checks=False), "average")
    order = leaves_list(tree)
    k = len(classes)
    size = min(18, 4 + 0.16 * k)
    fig = plt.figure(figsize=(2 * size + 2, size))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.2, size, size], wspace=0.12)
    side, left, right = (fig.add_subplot(grid[i]) for i in range(3))
    dendrogram(tree, orientation="left", no_labels=True, ax=side, color_threshold=0, above_threshold_color="0.3")
    side.set_ylim(10 * k, 0)
    side.set_axis_off()
    names = [classes[i] for i in order]
    fs = max(4, min(9, int(300 / k)))
    for ax, m, what in ((left, code_dist, "class codes (svqvae)"), (right, cent_dist, "class centroids (expression)")):
        im = ax.imshow(m[np.ix_(order, order)], cmap="viridis_r", aspect="auto", vmin=0)
        ax.set_xticks(range(k), names, rotation=90, fontsize=fs)
        ax.set_yticks(range(k), names if ax is right else [], fontsize=fs)
        ax.set_title(f"distance between {what}", fontsize=10)
        # the right panel's class names are on its right, so its colour bar goes on its left
        fig.colorbar(im, ax=ax, shrink=0.5, pad=0.02, location="left" if ax is right else "right")
    right.yaxis.tick_right()
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="pbmc,plate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--name", default="code_meaning")
    args = parser.parse_args(argv)
    import logging

    import torch

    import archetool
    from archetool.analysis.svqvae import centroid_agreement, code_distances

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    records, tic = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            loader, label, png = DATA[name]
            x, y, genes = loader()
            for seed in [int(s) for s in args.seeds.split(",")]:
                frame = pd.DataFrame(x, columns=genes)
                frame[label] = y
                model = archetool.fit(frame, model="svqvae", label=label, epochs=args.epochs, seed=seed, device="cpu",
                                      progress_bar=False, out=f"{tmp}/{name}-{seed}")
                classes = list(model.prep.classes)
                codes = model.module.codes().numpy()
                labels = np.searchsorted(classes, y)
                rho, cent = centroid_agreement(codes, x, labels)
                rho_std, _ = centroid_agreement(codes, model.prep.scale_x(x), labels)
                z = model.transform(model.prep.scale_x(x))["z"]
                rho_z, _ = centroid_agreement(np.stack([z[labels == c].mean(0) for c in range(len(classes))]), x, labels)
                with torch.no_grad():  # the decoded class prototypes (model space), what prototype_correlations.csv shows
                    prototypes = model.module.decode(torch.from_numpy(codes).float()).numpy()
                rho_proto, _ = centroid_agreement(prototypes, model.prep.scale_x(x), labels)
                rng = np.random.default_rng(seed)
                rho_rand, _ = centroid_agreement(rng.uniform(-0.5, 0.5, codes.shape), x, labels)
                records.append({"data": name, "seed": seed, "classes": len(classes), "rho_codes": rho,
                                "rho_codes_standardised": rho_std, "rho_prototypes": rho_proto,
                                "rho_embedding_centroids": rho_z, "rho_random_codes": rho_rand})
                print(records[-1], file=sys.stderr, flush=True)
                if seed == int(args.seeds.split(",")[0]):
                    out = figure(code_distances(codes), cent, classes,
                                 f"svqvae on {name} ({label}, {len(classes)} classes): Spearman rho = {rho:.2f} between the "
                                 f"two distance matrices (seed {seed})", REPO / "docs" / png)
                    print(f"wrote {out}", file=sys.stderr)
    table = pd.DataFrame(records)
    rows = [{"data": d, "classes": int(g["classes"].iloc[0]),
             **{c: mean_sd(g[c]) for c in ("rho_codes", "rho_codes_standardised", "rho_prototypes", "rho_embedding_centroids",
                                           "rho_random_codes")}}
            for d, g in table.groupby("data", sort=False)]
    command = "OMP_NUM_THREADS=2 nice -n 10 python benchmarks/code_meaning.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "# svqvae class codes against class centroids in expression space", "",
        f"{machine()}; load {load_average()}; {time.strftime('%Y-%m-%d')}; {time.perf_counter() - tic:.0f} s. "
        "Machine shared with other jobs.", "", f"    {command}", "",
        "Spearman rho over the class pairs between code distances and centroid distances (mean ± SD over seeds "
        f"{args.seeds}); rho_codes_standardised: centroids of the model's standardised features; rho_prototypes: "
        "distances between the decoded class prototypes (the codes through the decoder, standardised features; "
        "what prototype_correlations.csv compares) against those centroids; "
        "rho_embedding_centroids: class means of the embeddings z_e instead of the codes; rho_random_codes: a "
        "random codebook (no meaning).", "", markdown(rows), "", "Per seed:", "", markdown(table.to_dict("records")), ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text)


if __name__ == "__main__":
    main()
