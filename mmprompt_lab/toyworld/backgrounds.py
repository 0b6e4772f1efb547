"""Background textures: a small seeded bank per kind, cropped, flipped and jittered per image."""

from __future__ import annotations

from functools import cache

import numpy as np

from .factors import BACKGROUNDS

_BANK_SIZE = 6  # textures per kind
_BANK_SEED = 20240611  # fixed: the bank is part of the generator


def _smooth(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Box blur of width k along `axis` (wrap-around)."""
    return sum(np.roll(a, s, axis) for s in range(-(k // 2), k - k // 2)) / k


def _texture(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One (n, n, 3) float texture in [0, 1]."""
    y, x = np.mgrid[0:n, 0:n] / n  # (n, n) each
    noise = rng.normal(size=(n, n))
    if kind == "grass":  # vertical blades: noise smoothed along y
        blades = _smooth(noise, max(3, n // 10), 0)
        img = np.array([0.22, 0.52, 0.16]) * (0.8 + 0.35 * blades[..., None])
    elif kind == "sky":  # vertical gradient + soft clouds
        img = np.array([0.3, 0.55, 0.95]) * (1 - y[..., None]) + np.array([0.65, 0.82, 1.0]) * y[..., None]
        cloud = np.zeros((n, n))
        for _ in range(rng.integers(1, 4)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.08, 0.18)
            cloud += np.exp(-(((x - cx) / (2 * r)) ** 2 + ((y - cy) / r) ** 2))
        img = img + np.clip(cloud, 0, 1)[..., None] * (0.97 - img)
    elif kind == "sand":  # fine grain + diagonal ripples
        ripples = np.sin(2 * np.pi * (x * 3 + y * 5 + 0.1 * _smooth(noise, 5, 1)))
        img = np.array([0.86, 0.74, 0.5]) * (0.93 + 0.05 * ripples + 0.06 * noise)[..., None]
    elif kind == "water":  # horizontal waves with highlights
        waves = np.sin(2 * np.pi * (y * rng.uniform(6, 9) + 0.15 * np.sin(2 * np.pi * x * 2 + rng.uniform(0, 6))))
        img = np.array([0.08, 0.33, 0.62]) * (0.9 + 0.12 * waves)[..., None]
        img = img + (waves > 0.85)[..., None] * 0.25
    elif kind == "bricks":  # brick rows with offset joints and mortar
        rows, cols = 6, 3
        r = np.floor(y * rows)
        c = np.floor(x * cols + 0.5 * (r % 2))
        mortar = ((y * rows) % 1 < 0.14) | ((x * cols + 0.5 * (r % 2)) % 1 < 0.07)
        shade = rng.uniform(0.8, 1.15, size=(rows + 1, cols + 2))[r.astype(int), c.astype(int)]
        brick = np.array([0.62, 0.26, 0.16]) * (shade + 0.05 * noise)[..., None]
        img = np.where(mortar[..., None], np.array([0.78, 0.76, 0.7]), brick)
    elif kind == "snow":  # bluish white, soft drifts and flakes
        drift = _smooth(_smooth(noise, n // 4, 0), n // 4, 1)
        img = np.array([0.9, 0.93, 0.98]) * (0.95 + 0.6 * drift)[..., None]
        img = np.where((rng.uniform(size=(n, n)) < 0.03)[..., None], 1.0, img)
    elif kind == "night":  # dark gradient with stars
        img = np.array([0.02, 0.03, 0.12]) + np.array([0.05, 0.07, 0.15]) * y[..., None]
        img = np.where((rng.uniform(size=(n, n)) < 0.025)[..., None], np.array([0.95, 0.95, 0.8]), img)
    elif kind == "wood":  # planks with grain
        grain = np.sin(2 * np.pi * (y * 14 + 0.6 * _smooth(noise, n // 3, 1)))
        seam = (x * 3) % 1 < 0.04
        img = np.array([0.58, 0.37, 0.19]) * (0.9 + 0.1 * grain)[..., None] * np.where(seam, 0.6, 1.0)[..., None]
    else:
        raise ValueError(f"unknown background {kind!r}; known: {', '.join(BACKGROUNDS)}")
    return np.clip(img, 0, 1).astype(np.float32)


@cache
def _bank(kind: str, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([_BANK_SEED, BACKGROUNDS.index(kind), n])
    return tuple(_texture(kind, 2 * n, rng) for _ in range(_BANK_SIZE))  # 2n: room to crop


def background(kind: str, n: int, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """A (n, n, 3) float32 background of `kind`: a random crop of a banked texture, maybe flipped,
    with brightness jitter of ±`jitter`."""
    tex = _bank(kind, n)[rng.integers(_BANK_SIZE)]
    y0, x0 = rng.integers(0, n + 1, size=2)
    img = tex[y0 : y0 + n, x0 : x0 + n]
    if rng.uniform() < 0.5:
        img = img[:, ::-1]
    return np.clip(img * rng.uniform(1 - jitter, 1 + jitter), 0, 1).astype(np.float32)
