"""Expose each ToyWorld suite as a data source `toyworld/<suite>` (mmprompt_lab.data.base)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..data.base import DatasetSource, Item, register_dataset
from .suites import GENERATOR_VERSION, SUITES, Suite


def make_source(suite: Suite, image_size: int = 32) -> DatasetSource:
    """A `DatasetSource` whose images are rendered on demand (and memo-cached) from item keys."""
    domain = suite.style or "photo"
    splits = {
        split: [
            Item(path=None, label=label, classname=suite.classes[label], key=key, domain=domain)
            for key, label in suite.keys(split)
        ]
        for split in suite.sizes
    }
    cache: dict[int, Image.Image] = {}

    def load_image(item: Item) -> Image.Image:
        # the class comes from the name: base/novel subsets renumber `item.label`
        if item.key not in cache:
            cache[item.key] = suite.image(item.key, suite.classes.index(item.classname), image_size)
        return cache[item.key]

    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": suite.seed,
        "factor": suite.factor,
        "image_size": image_size,
        "description": suite.description,
    }
    return DatasetSource(
        f"toyworld/{suite.name}",
        list(suite.classes),
        splits,
        load_image,
        augment="toy",
        template=suite.template,
        meta=meta,
    )


def _register(suite: Suite) -> None:
    @register_dataset(f"toyworld/{suite.name}")
    def _source(root: Path | None = None, image_size: int = 32) -> DatasetSource:
        return make_source(suite, image_size)


for _suite in SUITES.values():
    _register(_suite)
