"""simplex.png: rows on a vertex are counted, drawn above the vertex markers, and labelled outside the polygon."""

import numpy as np

from archetool.analysis import plots


def _weights() -> np.ndarray:
    rng = np.random.default_rng(0)
    inside = rng.dirichlet(np.ones(3), size=20)
    on_a0, on_a2 = np.tile([1.0, 0.0, 0.0], (5, 1)), np.tile([0.0, 0.0, 1.0], (2, 1))
    nearly = np.array([[0.998, 0.001, 0.001]])  # max weight <= 0.999: not on a vertex
    return np.vstack([inside, on_a0, on_a2, nearly])


def test_rows_on_vertex_counts_rows_whose_largest_weight_exceeds_0999_per_archetype():
    w = _weights()
    counts = plots.rows_on_vertex(w)
    inside_counts = plots.rows_on_vertex(w[:20])
    assert counts.tolist() == [5 + inside_counts[0], inside_counts[1], 2 + inside_counts[2]]
    assert plots.rows_on_vertex(np.array([[0.9995, 0.0005], [0.5, 0.5]])).tolist() == [1, 0]


def test_simplex_figure_labels_vertex_counts_outside_the_polygon_and_draws_rows_above_the_markers(tmp_path):
    w = _weights()
    fig = plots.simplex_figure(w, np.linspace(0, 1, len(w)), "pred_y", ["a0", "a1", "a2"], "title")
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert "a0\n5 rows on vertex" in texts and "a2\n2 rows on vertex" in texts and "a1" in texts
    assert "7 of 28 rows (25.0%) on a vertex" in ax.get_title()
    corners = plots.polygon_vertices(3)
    for text in ax.texts:  # every label sits outside the polygon, beyond its corner
        x, y = text.xyann
        assert np.hypot(x, y) > 1.15
    markers, points = ax.collections[-2], ax.collections[-1]  # hollow rings first, then the rows on top
    assert np.allclose(markers.get_offsets(), corners)
    assert markers.get_zorder() < points.get_zorder()
    assert (markers.get_facecolor().size == 0) or np.allclose(markers.get_facecolor()[:, 3], 0)  # hollow
    assert len(fig.axes) == 2  # the colour bar has an axes of its own
    path = plots.save_figure(fig, tmp_path / "simplex.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
