"""ToyWorld suites: named downstream datasets drawn from the world, mirroring the real benchmark.

A suite fixes which factor is the class (object shape, pattern or background), the class list,
the rest of the world's distribution (a `WorldSpec`), split sizes and a seed. Item `key` k of a
suite is rendered from `np.random.default_rng([seed, k])`, so every image is a pure function of
(suite, key) and needs no files. The domain-shifted sets (sketch, noise, rendition) re-render the
shapes suite's test scenes in a style never seen in pretraining.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from .captions import caption
from .render import Scene, render
from .world import WorldSpec, sample_scene

GENERATOR_VERSION = "1.2"  # 1.2: an unseen style or scale in clutter (sketch), scenes (rendition), patterns (close-ups)
LOOKALIKES = ("pentagon", "hexagon", "octagon", "oval", "rectangle", "diamond")


@dataclass(frozen=True)
class Suite:
    """A downstream dataset of the world. `factor` names what the class is: shape/pattern/background."""

    name: str
    classes: tuple[str, ...]  # base half = first ceil(n/2) (split_base_novel)
    factor: str
    spec: WorldSpec
    seed: int
    sizes: dict  # images per class per split, e.g. {"train": 40, "val": 10, "test": 30}
    template: str = "a photo of a {}."
    description: str = ""
    style: str | None = None  # force a style on every image (domain-shifted sets)

    def class_spec(self, label: int) -> WorldSpec:
        """The world restricted to class `label`."""
        key = {"shape": "shapes", "pattern": "patterns", "background": "backgrounds"}[self.factor]
        spec = replace(self.spec, **{key: (self.classes[label],)})
        return replace(spec, styles=(self.style,)) if self.style else spec

    def keys(self, split: str) -> list[tuple[int, int]]:
        """(key, label) pairs of a split in the official order (classes interleaved)."""
        offset = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split]
        n = self.sizes[split] * len(self.classes)
        return [(offset + i, i % len(self.classes)) for i in range(n)]

    def scene(self, key: int, label: int) -> tuple[Scene, np.random.Generator]:
        """The scene of item `key` and the RNG state to render it with."""
        rng = np.random.default_rng([self.seed, key])
        return sample_scene(rng, self.class_spec(label)), rng

    def image(self, key: int, label: int, size: int = 32) -> Image.Image:
        scene, rng = self.scene(key, label)
        return render(scene, size, rng)

    def content_hash(self, per_split: int = 16, size: int = 32) -> str:
        """sha256 over the pixels and a caption of the first `per_split` items of every split:
        any change to the generator (shapes, colours, sampler, renderer, captions) changes it."""
        h = hashlib.sha256()
        for split in self.sizes:
            for key, label in self.keys(split)[:per_split]:
                scene, rng = self.scene(key, label)
                h.update(np.asarray(render(scene, size, rng)).tobytes())
                h.update(caption(scene, rng).encode())
        return h.hexdigest()


# Shapes with a broad interior, so a pattern shows (thin shapes such as key or bolt hide it).
_BROAD_SHAPES = (
    "circle",
    "oval",
    "square",
    "rectangle",
    "triangle",
    "diamond",
    "pentagon",
    "hexagon",
    "octagon",
    "heart",
    "cloud",
    "drop",
    "fish",
    "house",
    "mushroom",
    "cup",
)
_TEST_ONLY = {"test": 30}
_SIZES = {"train": 40, "val": 10, "test": 30}
_SHAPES_CLASSES = (
    "circle",
    "star",
    "heart",
    "arrow",
    "house",
    "tree",
    "fish",
    "car",
    "moon",
    "drop",
    "umbrella",
    "key",
    "square",
    "triangle",
    "cross",
    "ring",
    "bolt",
    "cloud",
    "sun",
    "flower",
    "leaf",
    "bird",
    "boat",
    "mushroom",
)
# Generic objects: the pretraining world plus clutter (a look-alike distractor) and smaller objects.
_SHAPES_SPEC = WorldSpec(
    hold_out=False, count_p=(0.8, 0.15, 0.05), radius=(0.25, 0.6), distractors=LOOKALIKES, distractor_p=0.3
)

SUITES: dict[str, Suite] = {
    s.name: s
    for s in [
        Suite(
            "shapes",
            _SHAPES_CLASSES,
            "shape",
            _SHAPES_SPEC,
            101,
            _SIZES,
            description="generic objects (like Caltech101): 24 icons, any colour/pattern/background, "
            "1–3 objects, a look-alike distractor in 30 % of images",
        ),
        Suite(
            "polygons",
            ("triangle", "square", "pentagon", "circle", "diamond", "rectangle", "hexagon", "oval", "octagon"),
            "shape",
            WorldSpec(hold_out=False, styles=("photo", "sketch"), count_p=(1, 0, 0), radius=(0.45, 0.75), plain_p=0.7),
            102,
            _SIZES,
            description="fine-grained, low inter-class variance (like FGVC Aircraft): look-alike polygons, half "
            "of them line drawings, a style never seen in pretraining (room for prompts)",
        ),
        Suite(
            "patterns",
            ("striped", "dotted", "checkered", "plain", "plaid", "zigzag", "wavy"),
            "pattern",
            WorldSpec(
                hold_out=False, shapes=_BROAD_SHAPES, count_p=(1, 0, 0), radius=(0.55, 0.85), pattern_scale=(1.0, 1.8)
            ),
            103,
            _SIZES,
            template="a photo of a {} shape.",
            description="textures (like DTD): the pattern filling one large, broad object of any colour, "
            "often as a close-up up to 1.8× coarser than in pretraining (room for prompts)",
        ),
        Suite(
            "scenes",
            ("grass", "sky", "sand", "bricks", "water", "snow", "night", "wood"),
            "background",
            WorldSpec(
                hold_out=False,
                styles=("photo", "cartoon", "rendition"),
                count_p=(0.2, 0.4, 0.4),
                radius=(0.3, 0.5),
                bg_jitter=0.35,
                bg_hue=1.0,
            ),
            104,
            _SIZES,
            template="a photo of the {}.",
            description="scenes (like EuroSAT/SUN397): the background, its hue rotated at random (texture, "
            "not colour, names the class), partly covered by 1–3 objects, photo, cartoon or "
            "rendition (flat, odd palette; unseen in pretraining)",
        ),
        Suite(
            "clutter",
            ("house", "fish", "boat", "flower", "umbrella", "mushroom", "tree", "car", "bird", "sun", "key", "cup"),
            "shape",
            WorldSpec(
                hold_out=False,
                styles=("photo", "cartoon", "sketch"),
                count_p=(0.6, 0.25, 0.15),
                radius=(0.3, 0.7),
                max_angle=0.6,
                distractors=LOOKALIKES,
                distractor_p=0.3,
                tint=(0.0, 0.2),
            ),
            105,
            _SIZES,
            description="high intra-class variance: photo, cartoon or sketch (both unseen in pretraining), "
            "1–3 objects of any size, distractors, colour tints",
        ),
        Suite(
            "shapes-sketch",
            _SHAPES_CLASSES,
            "shape",
            _SHAPES_SPEC,
            101,
            _TEST_ONLY,
            style="sketch",
            description="the shapes test scenes as pencil sketches (like ImageNet-Sketch); unseen style",
        ),
        Suite(
            "shapes-noise",
            _SHAPES_CLASSES,
            "shape",
            _SHAPES_SPEC,
            101,
            _TEST_ONLY,
            style="noise",
            description="the shapes test scenes with heavy noise and blur (like ImageNet-A/-C)",
        ),
        Suite(
            "shapes-rendition",
            _SHAPES_CLASSES,
            "shape",
            _SHAPES_SPEC,
            101,
            _TEST_ONLY,
            style="rendition",
            description="the shapes test scenes as cartoons in odd palettes (like ImageNet-R); unseen style",
        ),
    ]
}
