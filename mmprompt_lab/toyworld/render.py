"""Render a ToyWorld scene to an RGB image with numpy + PIL.

Everything is drawn at 2× the output size and box-downsampled (cheap anti-aliasing). A scene is
fully described by `Scene`; rendering is a pure function of the scene and an RNG (texture crops,
noise), so a seeded RNG gives byte-identical images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .backgrounds import background
from .factors import COLOURS, PATTERNS, STYLES
from .shapes import shape_layers

SUPERSAMPLE = 2


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (y, x), each (n, n) float32 (cached; read-only)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    return y, x


@dataclass(frozen=True)
class Obj:
    """One object: centre (cx, cy) and radius in units of the half image size (image = [-1, 1]²)."""

    shape: str
    colour: str
    pattern: str = "plain"
    colour2: str = "white"  # the pattern's second colour
    cx: float = 0.0
    cy: float = 0.0
    radius: float = 0.5
    angle: float = 0.0  # radians, counter-clockwise
    flip: bool = False  # mirror left/right (no class depends on orientation)
    pattern_scale: float = 1.0  # multiplies the pattern's period (> 1: a coarser close-up)


@dataclass(frozen=True)
class Scene:
    """A captionable scene: the main objects (same shape, colour, pattern), a background, a style,
    and optional distractor objects that the caption does not name."""

    objects: tuple[Obj, ...]
    background: str
    style: str = "photo"
    distractors: tuple[Obj, ...] = field(default_factory=tuple)
    tint: float = 0.0  # strength of a random colour-channel mix (0 = none)
    bg_hue: float = 0.0  # rotation of the background's colours about the grey axis, radians
    bg_jitter: float = 0.1  # background brightness jitter (±)


def _mask(obj: Obj, n: int) -> np.ndarray:
    """(n, n) float32 coverage of `obj` on an n-pixel canvas."""
    img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(img)
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    rot = np.array([[c, -s], [s, c]])
    half = n / 2
    for pts, add in shape_layers(obj.shape):
        p = pts * [-1 if obj.flip else 1, 1] @ rot.T  # (N, 2), maths orientation
        px = half * (1 + obj.cx + obj.radius * p[:, 0])
        py = half * (1 - obj.cy - obj.radius * p[:, 1])  # image y points down
        draw.polygon(list(zip(px.tolist(), py.tolist(), strict=True)), fill=255 if add else 0)
    return np.asarray(img, np.float32) / 255.0


def _pattern(obj: Obj, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n) bool: True where the pattern's second colour shows (object-local coordinates)."""
    if obj.pattern == "plain":
        return np.zeros((n, n), bool)
    y, x = _grid(n)
    cx, cy = n / 2 * (1 + obj.cx), n / 2 * (1 - obj.cy)
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    u, v = c * (x - cx) - s * (y - cy), s * (x - cx) + c * (y - cy)  # (n, n) each
    # Period in pixels grows with the object so a pattern keeps ~4 repeats across it (÷ pattern_scale),
    # but never below 4 output pixels (finer stripes would vanish when downsampled).
    p = max(4.0 * SUPERSAMPLE, obj.pattern_scale * obj.radius * n / 2 * rng.uniform(0.45, 0.6))
    u, v = u + rng.uniform(0, p), v + rng.uniform(0, p)
    if obj.pattern == "striped":
        return (v / p) % 1 < 0.5
    if obj.pattern == "checkered":
        return (np.floor(u / p) + np.floor(v / p)) % 2 == 0
    if obj.pattern == "dotted":
        return ((u % p - p / 2) ** 2 + (v % p - p / 2) ** 2) < (0.3 * p) ** 2
    if obj.pattern == "plaid":
        return ((u / p) % 1 < 0.28) | ((v / p) % 1 < 0.28)
    if obj.pattern == "zigzag":
        tri = np.abs((u / p) % 1 - 0.5) * 2  # triangle wave in [0, 1]
        return ((v / p + 0.6 * tri) % 1) < 0.5
    if obj.pattern == "wavy":
        return ((v / p + 0.3 * np.sin(2 * np.pi * u / (1.6 * p))) % 1) < 0.5
    raise ValueError(f"unknown pattern {obj.pattern!r}; known: {', '.join(PATTERNS)}")


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    """(n, n) float32 outline of a coverage mask, about `width` pixels thick."""
    m = Image.fromarray((mask * 255).astype(np.uint8))
    k = 2 * width + 1
    outer = np.asarray(m.filter(ImageFilter.MaxFilter(k)), np.float32)
    inner = np.asarray(m.filter(ImageFilter.MinFilter(3)), np.float32)
    return np.clip(outer - inner, 0, 255) / 255.0


def _fill(obj: Obj, mask: np.ndarray, n: int, rng: np.random.Generator, shaded: bool) -> np.ndarray:
    """(n, n, 3) colour of the object surface: pattern, small colour jitter, optional shading."""
    c1 = np.clip(np.array(COLOURS[obj.colour]) + rng.normal(0, 0.03, 3), 0, 1)
    c2 = np.clip(np.array(COLOURS[obj.colour2]) + rng.normal(0, 0.03, 3), 0, 1)
    fill = np.where(_pattern(obj, n, rng)[..., None], c2, c1).astype(np.float32)  # (n, n, 3)
    if shaded:  # light from a random direction: photo-like shading
        y, x = _grid(n)
        a = rng.uniform(0, 2 * np.pi)
        r = max(obj.radius * n / 2, 1.0)
        d = ((x - n / 2 * (1 + obj.cx)) * np.cos(a) + (y - n / 2 * (1 - obj.cy)) * np.sin(a)) / r
        fill = fill * np.clip(1.0 - 0.25 * d, 0.65, 1.3)[..., None]
    return fill


def _hue_matrix(angle: float) -> np.ndarray:
    """(3, 3) rotation of RGB space by `angle` about the grey axis (1, 1, 1)/√3 (Rodrigues)."""
    k = np.ones(3) / np.sqrt(3)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return (np.eye(3) * np.cos(angle) + np.sin(angle) * kx + (1 - np.cos(angle)) * np.outer(k, k)).astype(np.float32)


def _odd_palette(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rendition: permute colour channels, maybe invert, posterise to 3 levels."""
    perm = [(1, 2, 0), (2, 0, 1), (2, 1, 0), (0, 2, 1), (1, 0, 2)][rng.integers(5)]
    img = img[..., list(perm)]
    if rng.uniform() < 0.5:
        img = 1.0 - img
    return np.round(img * 2) / 2


def render(scene: Scene, size: int = 32, rng: np.random.Generator | None = None) -> Image.Image:
    """Render `scene` as a `size`×`size` RGB PIL image (drawn at 2× and box-downsampled).

    Example:
        >>> img = render(Scene((Obj("star", "red"),), "grass"), 32, np.random.default_rng(0))
    """
    if scene.style not in STYLES:
        raise ValueError(f"unknown style {scene.style!r}; known: {', '.join(STYLES)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = size * SUPERSAMPLE
    style = scene.style
    if style == "sketch":  # pencil outlines on paper; colour, pattern and background are gone
        img = np.full((n, n, 3), 0.94, np.float32) + rng.normal(0, 0.02, (n, n, 1)).astype(np.float32)
        for obj in scene.distractors + scene.objects:
            edge = _edge(_mask(obj, n), width=SUPERSAMPLE)
            img = img * (1 - 0.85 * edge[..., None])
        return _finish(img, size)
    img = background(scene.background, n, rng, scene.bg_jitter)  # (n, n, 3)
    if scene.bg_hue:  # keeps brightness and saturation, so the texture must name the background
        img = np.clip(img @ _hue_matrix(scene.bg_hue).T, 0, 1)
    if style in ("cartoon", "rendition"):  # flat, posterised background
        img = np.round(img * 4) / 4
    for obj in scene.distractors + scene.objects:
        mask = _mask(obj, n)[..., None]  # (n, n, 1)
        if style in ("photo", "noise"):  # soft drop shadow, offset down-right
            sh = max(1, int(obj.radius * n * 0.06))
            shadow = np.roll(np.roll(mask, sh, 0), sh, 1)
            img = img * (1 - 0.45 * shadow)
        fill = _fill(obj, mask[..., 0], n, rng, shaded=style in ("photo", "noise"))
        img = img * (1 - mask) + fill * mask
        if style in ("cartoon", "rendition"):  # thick dark outline
            img = img * (1 - 0.9 * _edge(mask[..., 0], width=SUPERSAMPLE)[..., None])
    if scene.tint > 0:  # random channel mix: colour stops being a reliable cue
        mix = np.eye(3) * (1 - scene.tint) + scene.tint * rng.dirichlet(np.ones(3), size=3)
        img = img @ mix.T.astype(np.float32)
    if style == "rendition":
        img = _odd_palette(np.clip(img, 0, 1), rng)
    if style == "noise":  # heavy sensor noise, then blur
        img = img + rng.normal(0, rng.uniform(0.12, 0.22), img.shape).astype(np.float32)
        pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(SUPERSAMPLE * 0.6)), np.float32) / 255
    return _finish(img, size)


def _finish(img: np.ndarray, size: int) -> Image.Image:
    """Box-downsample (n, n, 3) floats by SUPERSAMPLE and quantise to uint8."""
    img = np.clip(img, 0, 1).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean((1, 3))
    return Image.fromarray(np.round(img * 255).astype(np.uint8), "RGB")
