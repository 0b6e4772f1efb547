"""Published numbers (docs/protocols.md §3, ViT-B/16) shipped as data: `published.json` next to this file.

pub = load_published()
pub["base2new"]["average"]["maple"]          # {"base": 82.28, "novel": 75.14, "hm": 78.55}
published_value("domain_generalisation", "maple", "imagenet_r")   # 76.98
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PUBLISHED_PATH = Path(__file__).with_name("published.json")

DATASET_NAMES = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft",
    "sun397": "SUN397",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
    "imagenetv2": "ImageNetV2",
    "imagenet_sketch": "ImageNet-Sketch",
    "imagenet_a": "ImageNet-A",
    "imagenet_r": "ImageNet-R",
}


@lru_cache(maxsize=1)
def load_published() -> dict:
    """The published numbers as a dict (see `published.json`); keys are our method/dataset names.

    Example:
        >>> load_published()["cross_dataset"]["average"]["maple"]
        66.3
    """
    return json.loads(PUBLISHED_PATH.read_text())


def method_name(method: str) -> str:
    """Paper name of a method ("maple" → "MaPLe"); unknown names are returned unchanged."""
    names = load_published()["method_names"]
    return names.get(method, {"upt": "UPT", "dcp": "DCP", "mudpt": "MuDPT", "map_dafe": "MAP-DAFE"}.get(method, method))


def dataset_name(dataset: str) -> str:
    """Paper name of a dataset ("oxford_flowers" → "Flowers102"); ToyWorld names stay as they are."""
    return DATASET_NAMES.get(dataset, dataset)


def published_value(protocol: str, method: str, dataset: str | None = None):
    """A published number or None: per dataset when `dataset` is given, else the protocol's average.

    For base2new the value is a dict {"base", "novel"[, "hm"]}; otherwise a float (top-1 %).
    """
    section = load_published().get(protocol, {})
    if dataset is None:
        return section.get("average", {}).get(method)
    return section.get("per_dataset", {}).get(method, {}).get(dataset)


def is_published_setting(protocol: str, datasets: list[str], source: str | None = None) -> bool:
    """True when averaged `datasets` (and `source`) are exactly those the published average is over."""
    section = load_published().get(protocol, {})
    if protocol == "base2new":
        return sorted(datasets) == sorted(section.get("datasets", []))
    if "targets" in section:
        return source == section["source"] and sorted(datasets) == sorted(section["targets"])
    return False
