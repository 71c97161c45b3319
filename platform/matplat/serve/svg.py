"""Small inline SVG charts (parity plots, learning curves): no JavaScript, no image files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

W, H, PAD = 320, 300, 40


@dataclass(frozen=True)
class Chart:
    """An SVG chart ready for a template: points and lines in pixel coordinates."""

    title: str
    xlabel: str
    ylabel: str
    points: list[tuple[float, float]]
    lines: list[tuple[str, str, str]]  # (polyline points, css class, legend)
    ticks_x: list[tuple[float, str]]
    ticks_y: list[tuple[float, str]]
    width: int = W
    height: int = H


def _scale(lo: float, hi: float, a: float, b: float):  # type: ignore[no-untyped-def]
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, to_px, n: int = 4, label=None) -> list[tuple[float, str]]:  # type: ignore[no-untyped-def]
    label = label or (lambda v: f"{v:.3g}")
    return [(to_px(lo + (hi - lo) * i / n), label(lo + (hi - lo) * i / n)) for i in range(n + 1)]


def parity(title: str, dft: Sequence[float], predicted: Sequence[float], limit: int = 2000) -> Chart:
    """Predicted against DFT with the y = x line (at most ``limit`` points drawn)."""
    pairs = [(float(a), float(b)) for a, b in zip(dft, predicted, strict=True)
             if math.isfinite(a) and math.isfinite(b)][:limit]
    values = [v for p in pairs for v in p] or [0.0, 1.0]
    lo, hi = min(values), max(values)
    sx = _scale(lo, hi, PAD, W - 10)
    sy = _scale(lo, hi, H - PAD, 10)
    pts = [(sx(a), sy(b)) for a, b in pairs]
    diag = f"{sx(lo):.1f},{sy(lo):.1f} {sx(hi):.1f},{sy(hi):.1f}"
    return Chart(title, "DFT", "predicted", pts, [(diag, "diag", "y = x")],
                 _ticks(lo, hi, sx), _ticks(lo, hi, sy))


def curves(title: str, series: list[tuple[str, Sequence[float]]]) -> Chart:
    """Loss per epoch, one polyline per series (log scale when all values are positive)."""
    values = [v for _, s in series for v in s if v is not None and math.isfinite(v)]
    log = bool(values) and min(values) > 0
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    tv = [f(v) for v in values] or [0.0, 1.0]
    n = max((len(s) for _, s in series), default=1)
    sx = _scale(1, max(n, 2), PAD, W - 10)
    sy = _scale(min(tv), max(tv), H - PAD, 10)
    lines = []
    for k, (label, s) in enumerate(series):
        pts = " ".join(f"{sx(i + 1):.1f},{sy(f(v)):.1f}" for i, v in enumerate(s)
                       if v is not None and math.isfinite(v) and (v > 0 or not log))
        lines.append((pts, f"s{k % 4}", label))
    ty = _ticks(min(tv), max(tv), sy, label=(lambda v: f"{10 ** v:.3g}") if log else None)
    return Chart(title, "epoch", "loss" + (" (log)" if log else ""), [], lines,
                 _ticks(1, max(n, 2), sx), ty)
