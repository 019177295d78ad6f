"""Figures (matplotlib; imported only by the code that draws).

Each ``*_figure`` function builds a matplotlib Figure (on ``ax`` when given, else a new figure) and returns
it: :mod:`archetool.pl` hands them to notebook users. The ``*_plot`` / writer functions call the same
builders and save a PNG, so the CLI and the Python API draw with one code path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from archetool.atomic import atomic_path


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:  # keep a notebook's own backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, figsize):
    """(figure, axes): ``ax`` and its figure, or a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax.figure, ax
    return _pyplot().subplots(figsize=figsize)


def save_figure(fig, path: Path) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def polygon_vertices(k: int) -> np.ndarray:
    """(k, 2) corners of a regular k-gon (k=2: a segment), first corner at the top."""
    if k == 2:
        return np.array([[-1.0, 0.0], [1.0, 0.0]])
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


VERTEX_WEIGHT = 0.999  # a row whose largest archetype weight exceeds this sits on that archetype's vertex


def rows_on_vertex(weights: np.ndarray, threshold: float = VERTEX_WEIGHT) -> np.ndarray:
    """Weights (n, k) -> per archetype, the number of rows whose largest weight (> threshold) is on it: (k,)."""
    weights = np.asarray(weights, float)
    pure = weights.max(1) > threshold
    return np.bincount(weights[pure].argmax(1), minlength=weights.shape[1])


def simplex_plot(weights: np.ndarray, colour: np.ndarray | None, colour_name: str | None, path: Path,
                 labels: list[str], title: str, categorical: bool = False) -> Path:
    """:func:`simplex_figure` saved as a PNG."""
    return save_figure(simplex_figure(weights, colour, colour_name, labels, title, categorical), path)


def simplex_figure(weights: np.ndarray, colour: np.ndarray | None, colour_name: str | None, labels: list[str],
                   title: str, categorical: bool = False, ax=None):
    """Samples placed by their archetype weights (n, k) inside the k-gon whose corners are the archetypes.

    Each corner is a hollow ring drawn *under* the samples, so rows that sit exactly on a vertex stay
    visible; the corner's label, outside the polygon, says how many they are. ``ax``: draw into it."""
    plt = _pyplot()
    k = weights.shape[1]
    corners = polygon_vertices(k)
    xy = weights @ corners
    on_vertex = rows_on_vertex(weights)
    fig, ax = _axes(ax, (8.2, 5.8))
    ax.fill(*np.vstack([corners, corners[:1]]).T, color="0.95", zorder=0)
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="0.6", lw=1, zorder=1)
    ax.scatter(corners[:, 0], corners[:, 1], marker="o", s=420, facecolor="none", edgecolor="crimson", lw=2, zorder=1.5)
    if colour is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.6, color="tab:blue", zorder=2)
    elif categorical:
        cats = list(dict.fromkeys(colour.tolist()))
        cmap = plt.get_cmap("tab20", max(len(cats), 1))
        for i, c in enumerate(cats):
            sel = colour == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.7, color=cmap(i), label=str(c), zorder=2)
        if len(cats) <= 20:
            ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.08, 0.5), title=colour_name)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.75, c=colour, cmap="viridis", zorder=2)
        fig.colorbar(sc, ax=ax, shrink=0.7, pad=0.04, label=colour_name)
    centre = corners.mean(0)
    for (x, y), name, count in zip(corners, labels, on_vertex):
        out = np.array([x, y]) - centre
        out = out / (np.linalg.norm(out) or 1.0)
        ha = "center" if abs(out[0]) < 0.3 else ("left" if out[0] > 0 else "right")
        va = "center" if abs(out[1]) < 0.3 else ("bottom" if out[1] > 0 else "top")
        text = f"{name}\n{count} row{'s' if count != 1 else ''} on vertex" if count else name
        ax.annotate(text, (x, y), xytext=(x + 0.22 * out[0], y + 0.22 * out[1]), ha=ha, va=va, fontsize=8.5,
                    fontweight="bold", color="0.1", zorder=4)
    ax.set_xlim(-2.5, 2.5)  # room for the labels beside the side corners, inside the axes (clear of the colour bar)
    ax.set_ylim(-1.6, 1.6) if k > 2 else ax.set_ylim(-0.6, 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    share = on_vertex.sum() / max(len(weights), 1)
    ax.set_title(f"{title}\n{on_vertex.sum()} of {len(weights)} rows ({share:.1%}) on a vertex (weight > {VERTEX_WEIGHT})",
                 fontsize=10, pad=12)
    return fig


def elbow_plot(table, path: Path, columns: list[str]) -> Path:
    """:func:`k_sweep_figure` saved as a PNG."""
    return save_figure(k_sweep_figure(table, columns), path)


def k_sweep_figure(table, columns: list[str], axes=None):
    """Held-out errors against k, one panel per column: the mean over the seeds with +-1 sd error bars and
    every seed's value as a faint dot (``table``: one row per (k, seed), as in k_sweep.csv; a table with
    a row per k draws plain points). ``axes``: one matplotlib axes per column."""
    plt = _pyplot()
    if axes is None:
        fig, grid = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False)
        axes = list(grid[0])
    else:
        axes = list(np.atleast_1d(axes))
        fig = axes[0].figure
    per_seed = table[table["seed"].notna()] if "seed" in table.columns else table
    for ax, col in zip(axes, columns):
        stats = per_seed.groupby("k")[col].agg(["mean", "std", "count"]).reset_index()
        n_seeds = int(stats["count"].max()) if len(stats) else 0
        ax.errorbar(stats["k"], stats["mean"], yerr=stats["std"].fillna(0.0) if n_seeds > 1 else None,
                    fmt="o-", capsize=4, lw=1.5, color="tab:blue",
                    label=f"mean ± sd of {n_seeds} seeds" if n_seeds > 1 else None)
        if n_seeds > 1:
            ax.scatter(per_seed["k"], per_seed[col], s=12, color="0.45", alpha=0.6, zorder=3, label="one seed")
            ax.legend(fontsize=7)
        ax.set_xticks(sorted(stats["k"].unique()))
        ax.set_xlabel("k (archetypes)")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    fig.suptitle("Choosing k: held-out errors", fontsize=10)
    fig.tight_layout()
    return fig


def heatmap(matrix: np.ndarray, labels: list[str], path: Path, title: str, cmap: str = "RdBu_r",
            cluster: bool = True, vmin=None, vmax=None) -> Path:
    """:func:`heatmap_figure` saved as a PNG."""
    return save_figure(heatmap_figure(matrix, labels, title, cmap, cluster, vmin, vmax), path)


def heatmap_figure(matrix: np.ndarray, labels: list[str], title: str, cmap: str = "RdBu_r",
                   cluster: bool = True, vmin=None, vmax=None, ax=None):
    """A (clustered) square heatmap; rows/columns reordered by average-linkage clustering when ``cluster``,
    with the clustering's dendrogram on the left (when the figure is new, i.e. ``ax`` is None).

    The clustering reads ``matrix`` as distances, or as similarities (1 - matrix) when ``vmin`` < 0."""
    order, tree = np.arange(len(labels)), None
    if cluster and len(labels) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        dist = matrix if vmin is None or vmin >= 0 else 1 - matrix
        dist = (dist + dist.T) / 2
        np.fill_diagonal(dist, 0)
        tree = linkage(squareform(np.clip(dist, 0, None), checks=False), "average")
        order = leaves_list(tree)
    m = matrix[np.ix_(order, order)]
    size = min(16, 3 + 0.18 * len(labels))
    side = None  # the dendrogram's axes
    if ax is None and tree is not None:
        from scipy.cluster.hierarchy import dendrogram

        fig = _pyplot().figure(figsize=(size + 2.5, size))
        grid = fig.add_gridspec(1, 2, width_ratios=[1.2, size], wspace=0.01)
        side, ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        # leaves top to bottom in heatmap row order (imshow puts row 0 at the top)
        dendrogram(tree, orientation="left", no_labels=True, ax=side, color_threshold=0, above_threshold_color="0.3")
        side.set_ylim(10 * len(labels), 0)
        side.set_axis_off()
    else:
        fig, ax = _axes(ax, (size + 1, size))
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto" if side is not None else "equal")
    ticks = np.arange(len(labels))
    names = [labels[i] for i in order]
    fs = max(4, min(9, int(300 / max(len(labels), 1))))
    ax.set_xticks(ticks, names, rotation=90, fontsize=fs)
    ax.set_yticks(ticks, names, fontsize=fs)
    if side is not None:  # labels right of the heatmap, the colour bar above the dendrogram
        ax.yaxis.tick_right()
        cax = side.inset_axes([0.1, 1.01, 0.8, 0.03])
        fig.colorbar(im, cax=cax, orientation="horizontal")
        cax.tick_params(labelsize=7)
    else:
        fig.colorbar(im, ax=ax, shrink=0.7)
    # with a dendrogram the colour bar sits above it: lift the title clear of the bar (it overlapped a long title)
    ax.set_title(title, fontsize=10, pad=22 if side is not None else 6)
    return fig


def bar_chart(values: dict[str, np.ndarray], path: Path, title: str, ylabel: str,
              tick_labels: dict[str, list[str]] | None = None) -> Path:
    """:func:`bar_figure` saved as a PNG."""
    return save_figure(bar_figure(values, title, ylabel, tick_labels), path)


def bar_figure(values: dict[str, np.ndarray], title: str, ylabel: str,
               tick_labels: dict[str, list[str]] | None = None, ax=None):
    """Grouped bars: one group per key (e.g. class latent, shared latent), one bar per dimension.

    ``tick_labels`` (optional): per key, one label per bar (e.g. the embedding's z-column names).
    """
    plt = _pyplot()
    fig, ax = _axes(ax, (1.2 + 0.35 * sum(len(v) for v in values.values()), 3.4))
    pos = 0
    colours = plt.get_cmap("tab10")
    ticks, labels = [], []
    for i, (name, vals) in enumerate(values.items()):
        xs = np.arange(pos, pos + len(vals))
        ax.bar(xs, vals, color=colours(i), label=name)
        if tick_labels and name in tick_labels:
            ticks += list(xs)
            labels += list(tick_labels[name])
        pos += len(vals) + 1
    ax.set_ylabel(ylabel)
    ax.set_xticks(ticks, labels, rotation=90 if len(ticks) > 24 else 0, fontsize=7)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def image_grid(images: np.ndarray, path: Path, row_labels: list[str], col_labels: list[str] | None, title: str) -> Path:
    """images (rows, cols, h, w) drawn as a grid of grey-scale pictures."""
    plt = _pyplot()
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(0.8 * cols + 0.8, 0.8 * rows + 0.5), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r, c], cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def depict(smiles: list[str]) -> list:
    """RDKit molecules with 2D coordinates from CoordGen (None for unparsable SMILES), straightened so
    rings and chains sit on the usual angles. The global CoordGen preference is restored afterwards."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDepictor

    RDLogger.DisableLog("rdApp.*")
    prefer = rdDepictor.GetPreferCoordGen()
    rdDepictor.SetPreferCoordGen(True)
    try:
        mols = []
        for smi in smiles:
            mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) and smi else None
            if mol is not None:
                rdDepictor.Compute2DCoords(mol)
                rdDepictor.StraightenDepiction(mol)
            mols.append(mol)
    finally:
        rdDepictor.SetPreferCoordGen(prefer)
    return mols


def molecule_png(smiles: list[str], legends: list[str], per_row: int, cell: tuple[int, int] = (260, 210)) -> bytes:
    """PNG bytes of molecules in a grid of ``per_row`` columns, ``cell`` pixels each.

    2D coordinates come from RDKit's CoordGen (``rdDepictor.SetPreferCoordGen``: templates for rings and
    macrocycles, fewer overlapping atoms than the default depictor), straightened; unparsable SMILES leave an
    empty cell with their legend.
    """
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mols = [mol if mol is not None else Chem.Mol() for mol in depict(smiles)]
    per_row = max(1, min(per_row, len(mols)))
    n_rows = -(-len(mols) // per_row)
    drawer = rdMolDraw2D.MolDraw2DCairo(per_row * cell[0], n_rows * cell[1], cell[0], cell[1])
    options = drawer.drawOptions()
    options.legendFontSize = 15
    options.legendFraction = 0.16
    options.padding = 0.08
    options.bondLineWidth = 1.6
    options.minFontSize = 11
    options.drawMolsSameScale = False  # each molecule fills its cell ...
    options.fixedBondLength = 28  # ... but small ones are not blown up
    drawer.DrawMolecules(mols, legends=[str(x) for x in legends])
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def molecule_grid(smiles: list[str], legends: list[str], path: Path, per_row: int) -> Path:
    """:func:`molecule_png` written to ``path`` (one row per archetype/class)."""
    data = molecule_png(smiles, legends, per_row)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def molecule_grid_figure(smiles: list[str], legends: list[str], per_row: int, ax=None):
    """:func:`molecule_png` shown in a matplotlib figure (on ``ax`` when given)."""
    import io

    plt = _pyplot()
    image = plt.imread(io.BytesIO(molecule_png(smiles, legends, per_row)), format="png")
    h, w = image.shape[:2]
    fig, ax = _axes(ax, (w / 100, h / 100))
    ax.imshow(image)
    ax.axis("off")
    return fig
