"""The named factors of ToyWorld: colours, patterns, backgrounds, styles and their caption words."""

from __future__ import annotations

from .shapes import SHAPES

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "orange": (0.95, 0.55, 0.1),
    "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "purple": (0.55, 0.2, 0.7),
    "pink": (0.98, 0.55, 0.72),
    "brown": (0.5, 0.3, 0.12),
    "white": (0.96, 0.96, 0.96),
    "black": (0.08, 0.08, 0.08),
    "gray": (0.5, 0.5, 0.5),
    "cyan": (0.2, 0.85, 0.9),
}
# Caption words (first = the canonical one, used as class names).
COLOUR_WORDS = {c: [c] for c in COLOURS} | {"gray": ["gray", "grey"]}
PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered", "plaid", "zigzag", "wavy")
BACKGROUNDS: tuple[str, ...] = ("grass", "sky", "sand", "water", "bricks", "snow", "night", "wood")
BACKGROUND_PHRASES = {
    "grass": ["on the grass", "on a lawn", "on the grass"],
    "sky": ["in the sky", "against the sky", "in the blue sky"],
    "sand": ["on the sand", "on a beach", "on the sand"],
    "water": ["on the water", "in the water", "on the sea"],
    "bricks": ["in front of bricks", "against a wall of bricks", "on the bricks"],
    "snow": ["in the snow", "on the snow", "on snowy ground"],
    "night": ["at night", "in the night", "in the dark night"],
    "wood": ["on wood", "on a wooden table", "on the wood"],
}
STYLES: tuple[str, ...] = ("photo", "cartoon", "sketch", "noise", "rendition")
SHAPE_SYNONYMS = {
    "circle": ["circle", "disc"],
    "car": ["car", "automobile"],
    "boat": ["boat", "ship"],
    "bolt": ["bolt", "lightning bolt"],
    "cup": ["cup", "mug"],
    "drop": ["drop", "raindrop"],
}
PLURALS = {"cross": "crosses", "leaf": "leaves", "lightning bolt": "lightning bolts"}
COUNT_WORDS = {1: ["a", "one"], 2: ["two", "a pair of"], 3: ["three", "three"]}

# Compositions held out of pretraining: each shape is never shown in one colour (shape i, colour
# (5 i + 3) mod 12) — the suites still contain them, so zero-shot meets unseen combinations.
COLOUR_NAMES = tuple(COLOURS)
HELD_OUT_COLOUR = {s: COLOUR_NAMES[(5 * i + 3) % len(COLOUR_NAMES)] for i, s in enumerate(SHAPES)}


def plural(word: str) -> str:
    """English plural of a shape word."""
    return PLURALS.get(word, word + "s")
