"""Object silhouettes of ToyWorld as polygons in unit coordinates.

Each shape is a list of `(points, add)` layers drawn in order: `points` is an (N, 2) array in
maths orientation (x right, y up) inside roughly [-1, 1]²; `add=False` cuts a hole. The renderer
rotates, scales and places the layers. Look-alike groups (circle/oval/octagon, square/rectangle,
pentagon/hexagon, …) are deliberate: they make the fine-grained suite fine-grained.
"""

from __future__ import annotations

from functools import cache

import numpy as np

Layer = tuple[np.ndarray, bool]


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, n: int = 36, t0: float = 0.0, t1: float = 2 * np.pi
) -> np.ndarray:
    t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * np.pi)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)  # (n, 2)


def _regular(n: int, r: float, rot_deg: float) -> np.ndarray:
    t = np.deg2rad(rot_deg) + 2 * np.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)  # (n, 2)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _poly(*pts: tuple[float, float]) -> np.ndarray:
    return np.array(pts, float)


def _star(points: int, outer: float, inner: float) -> np.ndarray:
    t = np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y + 2.5], 1) / 16.5


def _leaf() -> np.ndarray:
    t = np.linspace(-1, 1, 20)
    top = np.stack([t, 0.42 * (1 - t**2)], 1)
    return np.concatenate([top, top[::-1] * [1, -1]])


def _sun_rays() -> list[Layer]:
    rays = []
    for k in range(8):
        a = k * np.pi / 4
        d, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        rays.append((np.stack([0.6 * d + 0.14 * n, 1.0 * d, 0.6 * d - 0.14 * n]), True))
    return rays


def _flower() -> list[Layer]:
    petals = [
        (_ellipse(0.56 * np.cos(a), 0.56 * np.sin(a), 0.4, 0.4), True) for a in np.pi / 2 + 2 * np.pi * np.arange(5) / 5
    ]
    return petals + [(_ellipse(0, 0, 0.3, 0.3), False), (_ellipse(0, 0, 0.21, 0.21), True)]


SHAPE_LAYERS = {
    "circle": lambda: [(_ellipse(0, 0, 1, 1), True)],
    "oval": lambda: [(_ellipse(0, 0, 1, 0.62), True)],
    "square": lambda: [(_rect(-0.78, -0.78, 0.78, 0.78), True)],
    "rectangle": lambda: [(_rect(-1, -0.52, 1, 0.52), True)],
    "triangle": lambda: [(_regular(3, 1.0, 90) + [0, -0.15], True)],
    "diamond": lambda: [(_poly((0, 1), (0.62, 0), (0, -1), (-0.62, 0)), True)],
    "pentagon": lambda: [(_regular(5, 0.95, 90), True)],
    "hexagon": lambda: [(_regular(6, 0.95, 0), True)],
    "octagon": lambda: [(_regular(8, 0.95, 22.5), True)],
    "star": lambda: [(_star(5, 1.0, 0.42), True)],
    "heart": lambda: [(_heart(), True)],
    "cross": lambda: [(_rect(-0.3, -1, 0.3, 1), True), (_rect(-1, -0.3, 1, 0.3), True)],
    "ring": lambda: [(_ellipse(0, 0, 1, 1), True), (_ellipse(0, 0, 0.55, 0.55), False)],
    "moon": lambda: [(_ellipse(0, 0, 1, 1), True), (_ellipse(0.5, 0.25, 0.85, 0.85), False)],
    "arrow": lambda: [
        (_poly((-1, -0.22), (0.15, -0.22), (0.15, -0.62), (1, 0), (0.15, 0.62), (0.15, 0.22), (-1, 0.22)), True)
    ],
    "bolt": lambda: [
        (_poly((0.25, 1), (-0.55, -0.1), (-0.02, -0.1), (-0.3, -1), (0.55, 0.18), (0.05, 0.18), (0.4, 1)), True)
    ],
    "drop": lambda: [(_ellipse(0, -0.35, 0.62, 0.62), True), (_poly((-0.57, -0.12), (0, 1), (0.57, -0.12)), True)],
    "cloud": lambda: [
        (_ellipse(-0.5, -0.15, 0.45, 0.45), True),
        (_ellipse(0.05, 0.18, 0.55, 0.55), True),
        (_ellipse(0.55, -0.12, 0.42, 0.42), True),
        (_rect(-0.5, -0.6, 0.55, -0.15), True),
    ],
    "sun": lambda: [(_ellipse(0, 0, 0.5, 0.5), True)] + _sun_rays(),
    "flower": _flower,
    "leaf": lambda: [(_leaf(), True), (_rect(-1.0, -0.04, -0.6, 0.04), True), (_rect(-0.7, -0.03, 0.7, 0.03), False)],
    "tree": lambda: [
        (_poly((-0.85, -0.35), (0, 0.45), (0.85, -0.35)), True),
        (_poly((-0.65, 0.15), (0, 1), (0.65, 0.15)), True),
        (_rect(-0.15, -1, 0.15, -0.35), True),
    ],
    "house": lambda: [
        (_rect(-0.65, -1, 0.65, 0.15), True),
        (_poly((-0.92, 0.15), (0, 1), (0.92, 0.15)), True),
        (_rect(-0.16, -1, 0.16, -0.45), False),
    ],
    "fish": lambda: [
        (_ellipse(-0.12, 0, 0.68, 0.42), True),
        (_poly((0.42, 0), (1, 0.5), (1, -0.5)), True),
        (_ellipse(-0.48, 0.1, 0.09, 0.09), False),
    ],
    "bird": lambda: [
        (_ellipse(0.05, -0.15, 0.6, 0.36), True),
        (_ellipse(-0.55, 0.22, 0.28, 0.28), True),
        (_poly((-0.78, 0.3), (-1.05, 0.18), (-0.78, 0.1)), True),
        (_poly((0.5, -0.05), (1, 0.3), (1, -0.15)), True),
        (_poly((-0.15, 0.05), (0.35, 0.85), (0.4, 0.0)), True),
    ],
    "car": lambda: [
        (_rect(-1, -0.35, 1, 0.15), True),
        (_poly((-0.55, 0.15), (-0.35, 0.62), (0.35, 0.62), (0.55, 0.15)), True),
        (_ellipse(-0.55, -0.4, 0.32, 0.32), False),
        (_ellipse(0.55, -0.4, 0.32, 0.32), False),
        (_ellipse(-0.55, -0.4, 0.23, 0.23), True),
        (_ellipse(0.55, -0.4, 0.23, 0.23), True),
    ],
    "boat": lambda: [
        (_poly((-1, -0.35), (1, -0.35), (0.7, -0.78), (-0.7, -0.78)), True),
        (_rect(-0.05, -0.35, 0.05, 1), True),
        (_poly((0.1, 0.95), (0.1, -0.22), (0.75, -0.22)), True),
        (_poly((-0.1, 0.75), (-0.1, -0.22), (-0.6, -0.22)), True),
    ],
    "umbrella": lambda: [
        (_ellipse(0, 0.05, 1, 0.8, n=24, t0=0, t1=np.pi), True),
        (_rect(-0.06, -0.85, 0.06, 0.05), True),
        (_rect(-0.32, -0.97, 0.06, -0.85), True),
        (_rect(-0.32, -0.97, -0.2, -0.7), True),
    ],
    "key": lambda: [
        (_ellipse(-0.6, 0, 0.4, 0.4), True),
        (_ellipse(-0.6, 0, 0.18, 0.18), False),
        (_rect(-0.25, -0.09, 1, 0.09), True),
        (_rect(0.62, -0.38, 0.75, -0.09), True),
        (_rect(0.85, -0.32, 0.98, -0.09), True),
    ],
    "mushroom": lambda: [
        (_ellipse(0, -0.05, 1, 0.8, n=24, t0=0, t1=np.pi), True),
        (_rect(-0.28, -0.95, 0.28, -0.05), True),
    ],
    "cup": lambda: [
        (_ellipse(0.45, 0.05, 0.4, 0.4), True),
        (_ellipse(0.45, 0.05, 0.2, 0.2), False),
        (_rect(-0.7, -0.8, 0.5, 0.75), True),
    ],
}
SHAPES: tuple[str, ...] = tuple(SHAPE_LAYERS)


@cache
def shape_layers(name: str) -> tuple[Layer, ...]:
    """The drawing layers of `name` (cached; do not modify the arrays)."""
    if name not in SHAPE_LAYERS:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return tuple(SHAPE_LAYERS[name]())
