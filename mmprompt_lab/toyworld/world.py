"""Sampling scenes: the pretraining world and the knobs the suites turn.

`sample_scene(rng, spec)` draws one scene from a `WorldSpec` (which shapes, colours, patterns,
backgrounds, styles, counts, sizes, held-out compositions, distractors). The same function feeds
pretraining and every suite, so suites differ from pretraining only where their spec says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .factors import BACKGROUNDS, COLOUR_NAMES, HELD_OUT_COLOUR, PATTERNS
from .render import Obj, Scene
from .shapes import SHAPES


@dataclass(frozen=True)
class WorldSpec:
    """Distribution of scenes. Tuples list the allowed values (drawn uniformly)."""

    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOUR_NAMES
    patterns: tuple[str, ...] = PATTERNS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    styles: tuple[str, ...] = ("photo",)
    plain_p: float = 0.55  # probability of a plain object (else a uniform non-plain pattern)
    count_p: tuple[float, float, float] = (0.75, 0.15, 0.10)  # P(1, 2, 3 objects)
    radius: tuple[float, float] = (0.35, 0.65)  # single-object radius (fraction of half-size)
    multi_scale: float = 0.55  # radius factor when there are 2–3 objects
    max_angle: float = 0.5  # rotation range ± radians
    hold_out: bool = True  # skip the held-out (shape, colour) pairs (pretraining only)
    distractors: tuple[str, ...] = ()  # shapes that may appear as unnamed extra objects
    distractor_p: float = 0.0  # probability of one distractor
    tint: tuple[float, float] = (0.0, 0.0)  # range of the random colour-channel mix
    bg_jitter: float = 0.1  # background brightness jitter (±)
    bg_hue: float = 0.0  # probability of rotating the background's hue by a uniform angle in ±π
    pattern_scale: tuple[float, float] = (1.0, 1.0)  # range of the pattern-period multiplier


# The pretraining world: photo only, each shape's held-out colour never shown, and 30 % of the
# backgrounds in a random hue so that the image tower learns them by texture, not only by colour.
PRETRAIN_WORLD = WorldSpec(bg_hue=0.3)


def _place(rng: np.random.Generator, radii: list[float], taken: list[tuple[float, float, float]]):
    """Centres for circles of `radii` inside [-1, 1]² avoiding `taken` (best effort)."""
    out = []
    for r in radii:
        lim = max(0.0, 0.95 - r)
        best, best_gap = (0.0, 0.0), -np.inf
        for _ in range(30):
            c = rng.uniform(-lim, lim, size=2)
            gap = min([np.hypot(c[0] - x, c[1] - y) - r - q for x, y, q in taken + out] or [np.inf])
            if gap > best_gap:
                best, best_gap = (float(c[0]), float(c[1])), gap
            if gap > 0.02:
                break
        out.append((*best, r))
    return out


def sample_scene(rng: np.random.Generator, spec: WorldSpec = WorldSpec()) -> Scene:
    """Draw one scene from `spec` (deterministic given the RNG state)."""
    shape = spec.shapes[rng.integers(len(spec.shapes))]
    while True:
        colour = spec.colours[rng.integers(len(spec.colours))]
        if not (spec.hold_out and HELD_OUT_COLOUR.get(shape) == colour) or len(spec.colours) == 1:
            break
    non_plain = [p for p in spec.patterns if p != "plain"]
    if "plain" in spec.patterns and (not non_plain or rng.uniform() < spec.plain_p):
        pattern = "plain"
    else:
        pattern = non_plain[rng.integers(len(non_plain))]
    colour2 = colour
    while colour2 == colour:  # a pattern needs a second, different colour
        colour2 = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    count = int(rng.choice([1, 2, 3], p=np.array(spec.count_p) / sum(spec.count_p)))
    scale = 1.0 if count == 1 else spec.multi_scale
    radii = [scale * rng.uniform(*spec.radius) for _ in range(count)]
    if count > 1:  # same size within a scene, so "two small stars" stays true
        radii = [radii[0]] * count
    centres = _place(rng, radii, [])
    flip = bool(rng.uniform() < 0.5)
    objects = tuple(
        Obj(shape, colour, pattern, colour2, cx, cy, r, float(rng.uniform(-spec.max_angle, spec.max_angle)), flip)
        for cx, cy, r in centres
    )
    distractors: tuple[Obj, ...] = ()
    if spec.distractors and rng.uniform() < spec.distractor_p:
        d_shape = spec.distractors[rng.integers(len(spec.distractors))]
        d_col = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        r = float(rng.uniform(0.15, 0.3))
        ((cx, cy, _),) = _place(rng, [r], centres)
        distractors = (Obj(d_shape, d_col, "plain", d_col, cx, cy, r, float(rng.uniform(-1, 1))),)
    background = spec.backgrounds[rng.integers(len(spec.backgrounds))]
    style = spec.styles[rng.integers(len(spec.styles))]
    tint = float(rng.uniform(*spec.tint)) if spec.tint[1] > 0 else 0.0
    # drawn last, so specs without it keep their scenes byte-identical
    bg_hue = float(rng.uniform(-np.pi, np.pi)) if spec.bg_hue and rng.uniform() < spec.bg_hue else 0.0
    if spec.pattern_scale != (1.0, 1.0):  # drawn last too, for the same reason
        pattern_scale = float(rng.uniform(*spec.pattern_scale))
        objects = tuple(replace(o, pattern_scale=pattern_scale) for o in objects)
    return Scene(objects, background, style, distractors, tint, bg_hue=bg_hue, bg_jitter=spec.bg_jitter)
