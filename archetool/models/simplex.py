"""Geometry of the fixed archetypes: vertices of a regular simplex centred at the origin."""

from __future__ import annotations

import torch


def simplex_vertices(k: int, dtype=torch.float32) -> torch.Tensor:
    """Vertices Z of a regular (k-1)-simplex centred at 0: shape (k, k-1).

    Every row has unit norm and distinct rows have dot product -1/(k-1).
    Built by centring the standard basis of R^k and expressing it in an orthonormal basis
    of the hyperplane orthogonal to (1, ..., 1).
    """
    if k < 2:
        raise ValueError(f"a simplex needs k >= 2 vertices, got {k}")
    eye = torch.eye(k, dtype=torch.float64)
    centred = eye - 1.0 / k
    # orthonormal basis of the (k-1)-dim subspace spanned by the centred basis vectors
    u, _, _ = torch.linalg.svd(centred)
    basis = u[:, : k - 1]  # (k, k-1)
    z = centred @ basis
    z = z / z.norm(dim=1, keepdim=True)
    return z.to(dtype)


def barycentric_grid(k: int, steps: int) -> torch.Tensor:
    """All weight vectors with entries in {0, 1/steps, ..., 1} summing to 1: shape (m, k)."""
    rows: list[list[int]] = []

    def rec(prefix: list[int], left: int, slots: int) -> None:
        if slots == 1:
            rows.append(prefix + [left])
            return
        for i in range(left, -1, -1):
            rec(prefix + [i], left - i, slots - 1)

    rec([], steps, k)
    return torch.tensor(rows, dtype=torch.float32) / steps
