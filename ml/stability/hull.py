"""The lower convex hull of formation energy against composition for one chemical system.

A system of ``k`` elements; an entry is a point ``(x, E)``: ``x`` its atom fractions (``k``
numbers summing to 1), ``E`` its formation energy in eV/atom. Every element is a point at
0 eV/atom (the reference of formation energies), present in the data or not. The hull energy
at ``x`` is the lowest energy any mixture of entries with overall composition ``x`` reaches::

    h(x) = min Σ λ_i E_i   subject to   Σ λ_i x_i = x,  λ ≥ 0      (Σ λ_i = 1 follows)

``h`` is convex and piecewise linear: on each lower facet ``f`` of the hull it is linear,
``h(x) = μ_f · x`` with ``μ_f`` the facet's element chemical potentials (eV/atom), and over the
simplex ``h(x) = max_f μ_f · x``. So one matrix product evaluates any number of points: the
distance is ``E − h(x)`` and the decomposition is the barycentric coordinates of ``x`` in the
vertices of the facet that attains the max (``λ = V_f^{-T} x``, one small solve per facet
done once when the hull is built).

The facets come from qhull (``scipy.spatial.ConvexHull``) on ``(x_2..x_k, E)`` with one extra
point far above the simplex's centre, so that the point set is always full-dimensional and
every facet that avoids the extra point is a lower facet (pymatgen's ``PhaseDiagram`` does the
same). When qhull fails, or its hull is not below every input point (precision trouble in
degenerate geometry), the hull falls back to the linear programme above, solved exactly per
point by HiGHS (``scipy.optimize.linprog``): slower, never a wrong number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Hull", "HullDistances", "build_hull", "evaluate", "lp_hull_energy"]

#: Amounts at or below this are not part of a decomposition (pymatgen: ``numerical_tol``).
AMOUNT_TOL = 1e-8
#: A hull from qhull must lie at most this far above any of its input points (eV/atom).
CHECK_TOL = 1e-9
#: Lower facets whose vertex matrix has |det| below this have no volume (pymatgen: 1e-14).
DET_TOL = 1e-14
#: Points per block of the (points × facets) product, to bound memory.
BLOCK = 4096
#: When the candidates have at most this many k-subsets, facets are found by testing every
#: k-subset at once (batched small solves) instead of calling qhull, whose fixed cost
#: dominates tiny hulls (measured on the synthetic data: 2x faster over all hulls).
SMALL_SUBSETS = 256


@dataclass(frozen=True)
class Hull:
    """The hull of one chemical system.

    ``vertices`` (m, k): atom fractions of the candidate points, one per composition (its
    lowest energy), elements included; ``energies`` (m,) eV/atom; ``labels`` (m,) int64: the
    caller's label of each candidate (``-Z`` for an element reference at 0 eV/atom that is not
    an entry). ``facets`` (f, k): vertex indices of the lower facets; ``potentials`` (f, k):
    ``μ_f``; ``inverse`` (f, k, k): ``V_f^{-T}`` for barycentric coordinates. ``method`` is
    ``"qhull"``, ``"small"`` (a few points: every k-subset tested), ``"chain"`` (two
    elements: monotone chain), ``"plane"`` (no compound below 0 eV/atom), ``"point"`` (one element) or ``"lp"`` (the fallback: no facets).
    """

    elements: NDArray[np.int64]
    vertices: NDArray[np.float64]
    energies: NDArray[np.float64]
    labels: NDArray[np.int64]
    facets: NDArray[np.int64]
    potentials: NDArray[np.float64]
    inverse: NDArray[np.float64]
    method: str

    @property
    def stable_labels(self) -> NDArray[np.int64]:
        """Labels of the hull's vertices (the stable compositions), ascending."""
        if self.method == "lp":
            raise ValueError("an LP hull has no facets; evaluate its candidates instead")
        return np.unique(self.labels[np.unique(self.facets)])


@dataclass(frozen=True)
class HullDistances:
    """Points evaluated against a hull: ``e_above_hull`` (n,) = E − h(x) (negative below the
    hull), ``hull_energy`` (n,) = h(x), and the decomposition: ``products`` (n, k) indices into
    ``hull.vertices`` (−1 pads) with their ``amounts`` (n, k) (atom fractions, summing to 1)."""

    e_above_hull: NDArray[np.float64]
    hull_energy: NDArray[np.float64]
    products: NDArray[np.int64]
    amounts: NDArray[np.float64]


def _candidates(elements: NDArray[np.int64], fractions: NDArray[np.float64],
                energies: NDArray[np.float64], labels: NDArray[np.int64]
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """One point per composition (lowest energy, then lowest label), the element references
    added at 0 eV/atom, and nothing at or above 0 eV/atom that cannot touch the hull."""
    k = len(elements)
    is_el = fractions.max(axis=1, initial=0.0) > 1.0 - 1e-12 if len(fractions) else np.zeros(
        0, bool)
    # Compounds at or above 0 eV/atom lie on or above the plane of the element references.
    keep = is_el | (energies < -1e-11)
    pts = np.concatenate([fractions[keep], np.eye(k)])
    ens = np.concatenate([energies[keep], np.zeros(k)])
    labs = np.concatenate([labels[keep], -elements])
    if len(pts) == k:
        return pts, ens, labs
    # Element references go last with label -Z: an entry of equal energy wins the tie below.
    key = np.round(pts, 12)
    order = np.lexsort((np.arange(len(ens)), ens, *key.T[::-1]))
    key = key[order]
    first = np.ones(len(ens), dtype=bool)
    first[1:] = (key[1:] != key[:-1]).any(axis=1)
    sel = order[first]
    return pts[sel], ens[sel], labs[sel]


def build_hull(elements: ArrayLike, fractions: ArrayLike, energies: ArrayLike,
               labels: ArrayLike, *, method: str = "auto") -> Hull:
    """The lower hull of entries of one chemical system.

    Args:
        elements: (k,) atomic numbers of the system, in the column order of ``fractions``.
        fractions: (n, k) atom fractions of the entries (rows sum to 1; entries of subsystems
            have zeros in the other columns).
        energies: (n,) formation energies, eV/atom (finite).
        labels: (n,) int64 labels returned in decompositions (must not be negative).
        method: ``"auto"`` (qhull, LP when it fails) or ``"lp"`` (force the exact fallback).

    Returns:
        The :class:`Hull`.
    """
    el = np.asarray(elements, dtype=np.int64).reshape(-1)
    fr = np.asarray(fractions, dtype=np.float64).reshape(-1, len(el))
    en = np.asarray(energies, dtype=np.float64).reshape(-1)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not np.all(np.isfinite(en)):
        raise ValueError("energies must be finite (leave out entries without one)")
    if len(lab) and lab.min() < 0:
        raise ValueError("labels must not be negative (negative labels are element references)")
    pts, ens, labs = _candidates(el, fr, en, lab)
    k = len(el)
    empty = np.zeros((0, k), dtype=np.int64)
    if k == 1:
        i = int(np.argmin(ens))
        return Hull(el, pts, ens, labs, np.array([[i]]), ens[[i]].reshape(1, 1),
                    np.ones((1, 1, 1)), "point")
    if method == "auto" and len(pts) == k:  # no compound below 0 eV/atom: the plane E = 0
        return Hull(el, pts, ens, labs, np.arange(k)[None, :], ens[None, :],
                    np.linalg.inv(pts.T)[None, :, :], "plane")
    if method == "auto" and k == 2:
        return _chain(el, pts, ens, labs)
    if method == "auto" and math.comb(len(pts), k) <= SMALL_SUBSETS:
        hull = _small(el, pts, ens, labs)
        if hull is not None:
            return hull
    if method == "auto":
        hull = _qhull(el, pts, ens, labs)
        if hull is not None:
            return hull
    elif method != "lp":
        raise ValueError(f"unknown hull method {method!r}: 'auto' or 'lp'")
    return Hull(el, pts, ens, labs, empty, np.zeros((0, k)), np.zeros((0, k, k)), "lp")


def _small(el: NDArray[np.int64], pts: NDArray[np.float64], ens: NDArray[np.float64],
           labs: NDArray[np.int64]) -> Hull | None:
    """Lower facets of a few points: every k-subset whose plane lies on or below all points.

    Coplanar points give several facets of one plane; evaluation handles overlapping facets
    (any facet attaining the max whose barycentric coordinates are valid)."""
    import itertools

    k = len(el)
    subsets = np.array(list(itertools.combinations(range(len(pts)), k)), dtype=np.int64)
    mats = pts[subsets]
    ok = np.abs(np.linalg.det(mats)) > DET_TOL
    subsets, mats = subsets[ok], mats[ok]
    if not len(subsets):
        return None
    potentials = np.linalg.solve(mats, ens[subsets][..., None])[..., 0]
    below = (ens[:, None] - pts @ potentials.T >= -CHECK_TOL).all(axis=0)
    if not below.any():
        return None
    inverse = np.linalg.inv(np.swapaxes(mats[below], 1, 2))
    return Hull(el, pts, ens, labs, subsets[below], potentials[below], inverse, "small")


def _chain(el: NDArray[np.int64], pts: NDArray[np.float64], ens: NDArray[np.float64],
           labs: NDArray[np.int64]) -> Hull:
    """A binary system's lower hull by the monotone chain (points sorted by composition)."""
    order = np.argsort(pts[:, 1], kind="stable")
    x, y = pts[order, 1].tolist(), ens[order].tolist()
    chain: list[int] = []
    for i in range(len(x)):
        # Pop the last point while it lies on or above the segment from its predecessor to i.
        while len(chain) >= 2:
            a, b = chain[-2], chain[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) <= 0:
                chain.pop()
            else:
                break
        chain.append(i)
    v = order[np.array(chain)]
    facets = np.stack([v[:-1], v[1:]], axis=1).astype(np.int64)
    mats = pts[facets]
    potentials = np.linalg.solve(mats, ens[facets][..., None])[..., 0]
    inverse = np.linalg.inv(np.swapaxes(mats, 1, 2))
    return Hull(el, pts, ens, labs, facets, potentials, inverse, "chain")


def _qhull(el: NDArray[np.int64], pts: NDArray[np.float64], ens: NDArray[np.float64],
           labs: NDArray[np.int64]) -> Hull | None:
    """Facets by qhull, or ``None`` when qhull fails or its hull is not below every point."""
    from scipy.spatial import ConvexHull, QhullError

    k = len(el)
    top = np.full(k, 1.0 / k)
    data = np.concatenate([np.column_stack([pts[:, 1:], ens]),
                           np.append(top[1:], ens.max() + 1.0)[None, :]])
    try:
        simplices = ConvexHull(data).simplices
    except (QhullError, ValueError):
        return None
    lower = simplices[~np.any(simplices == len(pts), axis=1)]
    if not len(lower):
        return None
    mats = pts[lower]  # (f, k, k): rows are the vertices' fractions
    det = np.linalg.det(mats)
    lower, mats = lower[np.abs(det) > DET_TOL], mats[np.abs(det) > DET_TOL]
    if not len(lower):
        return None
    potentials = np.linalg.solve(mats, ens[lower][..., None])[..., 0]
    inverse = np.linalg.inv(np.swapaxes(mats, 1, 2))
    hull = Hull(el, pts, ens, labs, lower.astype(np.int64), potentials, inverse, "qhull")
    if np.any(ens - _max_plane(hull, pts)[0] < -CHECK_TOL):
        return None
    return hull


def _max_plane(hull: Hull, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(h(x), index of the facet attaining it) by blocks of points."""
    h = np.empty(len(x))
    arg = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), BLOCK):
        vals = x[s:s + BLOCK] @ hull.potentials.T
        a = vals.argmax(axis=1)
        arg[s:s + BLOCK] = a
        h[s:s + BLOCK] = vals[np.arange(len(a)), a]
    return h, arg


def lp_hull_energy(vertices: ArrayLike, energies: ArrayLike, x: ArrayLike
                   ) -> tuple[float, NDArray[np.float64]]:
    """The hull energy at one composition by the exact linear programme; returns (h, λ)."""
    from scipy.optimize import linprog

    v = np.asarray(vertices, dtype=np.float64)
    res = linprog(np.asarray(energies, dtype=np.float64), A_eq=v.T,
                  b_eq=np.asarray(x, dtype=np.float64), bounds=(0, None), method="highs")
    if res.status != 0:
        raise ValueError(f"composition {np.asarray(x).tolist()} is outside the hull's system: "
                         f"{res.message}")
    lam = np.clip(res.x, 0.0, None)
    return float(res.fun), lam


def evaluate(hull: Hull, fractions: ArrayLike, energies: ArrayLike) -> HullDistances:
    """Distances to the hull and decompositions of any points of the system (vectorised).

    Args:
        hull: from :func:`build_hull`.
        fractions: (n, k) atom fractions in the hull's element order.
        energies: (n,) formation energies, eV/atom.

    Returns:
        :class:`HullDistances`; a point below the hull gets a negative distance.
    """
    x = np.asarray(fractions, dtype=np.float64).reshape(-1, len(hull.elements))
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    n, k = x.shape
    products = np.full((n, k), -1, dtype=np.int64)
    amounts = np.zeros((n, k))
    h = np.empty(n)
    redo = np.ones(n, dtype=bool)
    if hull.method != "lp" and n:
        h, arg = _max_plane(hull, x)
        lam = np.einsum("nij,nj->ni", hull.inverse[arg], x)
        # A barycentric coordinate well below 0 means the facet found does not hold x (only
        # in degenerate geometry: coplanar facets of one plane); another facet of equal value
        # that holds it is used, else the point is solved exactly.
        redo = lam.min(axis=1) < -1e-7
        for i in np.flatnonzero(redo):
            ties = np.flatnonzero(hull.potentials @ x[i] >= h[i] - 1e-12)
            lt = np.einsum("fij,j->fi", hull.inverse[ties], x[i])
            good = np.flatnonzero(lt.min(axis=1) >= -1e-9)
            if len(good):
                arg[i], lam[i], redo[i] = ties[good[0]], lt[good[0]], False
        lam = np.where(lam > AMOUNT_TOL, lam, 0.0)
        lam /= np.maximum(lam.sum(axis=1, keepdims=True), 1e-300)
        products = np.where(lam > 0, hull.facets[arg], -1)
        amounts = lam
    for i in np.flatnonzero(redo):
        h[i], lam_i = lp_hull_energy(hull.vertices, hull.energies, x[i])
        keep = np.flatnonzero(lam_i > AMOUNT_TOL)
        products[i] = -1
        amounts[i] = 0.0
        products[i, :len(keep)] = keep
        amounts[i, :len(keep)] = lam_i[keep] / lam_i[keep].sum()
    # Pack each row's products to the left, largest amount first.
    order = np.argsort(-amounts, axis=1, kind="stable")
    rows = np.arange(n)[:, None]
    products, amounts = products[rows, order], amounts[rows, order]
    return HullDistances(e - h, h, products, amounts)
