"""ToyWorld: a seeded procedural world of captioned images, and the downstream suites drawn from it.

Importing this package registers every suite as a dataset `toyworld/<suite>` (see `SUITES`).

    >>> from mmprompt_lab.data.base import load_dataset
    >>> ds = load_dataset("toyworld/shapes", split="train", shots=16, seed=1)
"""

from __future__ import annotations

from .captions import caption
from .factors import BACKGROUNDS, COLOUR_NAMES, PATTERNS, STYLES
from .render import Obj, Scene, render
from .shapes import SHAPES
from .source import make_source
from .suites import GENERATOR_VERSION, SUITES, Suite
from .world import WorldSpec, sample_scene

__all__ = [
    "BACKGROUNDS",
    "COLOUR_NAMES",
    "GENERATOR_VERSION",
    "Obj",
    "PATTERNS",
    "SHAPES",
    "STYLES",
    "SUITES",
    "Scene",
    "Suite",
    "WorldSpec",
    "caption",
    "make_source",
    "render",
    "sample_scene",
]
