"""Small on-disk datasets in the real layouts (real JPEG files, split files in the official formats)."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from mmprompt_lab.data import base


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Generated splits and listings go to a temp cache; sources are not shared between tests."""
    monkeypatch.setenv("MMPROMPT_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base, "_CACHE", {})


def jpeg(path: Path, seed: int = 0, size: int = 8, mode: str = "RGB", fmt: str = "JPEG") -> Path:
    """Write a small real image with pseudo-random pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size))
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(size * size)])
    image.convert(mode).save(path, fmt)
    return path


def class_folders(image_dir: Path, counts: dict[str, int], ext: str = ".jpg") -> None:
    """image_dir/<class>/<class>_<i>.jpg for each class."""
    for c, n in counts.items():
        for i in range(n):
            jpeg(image_dir / c / f"{c}_{i:04d}{ext}", seed=zlib.crc32(f"{c}/{i}".encode()))


def zhou_split(
    ddir: Path,
    image_rel: str,
    split_name: str,
    classes: list[str],
    sizes: dict[str, list[int]],
    prefix: str | None = None,
) -> dict:
    """Images + a split_zhou JSON. `sizes[split][c]` images of class c; the file interleaves the labels
    in the order 2, 0, 1, 3, … (so first-appearance order differs from label order)."""
    data = {}
    order = ([2, 0, 1] + list(range(3, len(classes)))) if len(classes) >= 3 else list(range(len(classes)))
    for split, per_class in sizes.items():
        entries = []
        for i in range(max(per_class)):
            for label in order:
                if i < per_class[label]:
                    name = classes[label]
                    rel = f"{prefix or name}/{split}_{name.replace(' ', '_')}_{i:03d}.jpg"
                    jpeg(ddir / image_rel / rel, seed=zlib.crc32(f"{split}/{label}/{i}".encode()))
                    entries.append([rel, label, name])
        data[split] = entries
    (ddir / split_name).write_text(json.dumps(data))
    return data


def imagenet_classnames(path: Path, wnids: list[str]) -> dict[str, str]:
    names = {w: f"thing {w[-3:]}" for w in wnids}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {n}\n" for w, n in names.items()))
    return names


@pytest.fixture(scope="session")
def mk():
    """Builders: mk.jpeg, mk.class_folders, mk.zhou_split, mk.imagenet_classnames."""
    return SimpleNamespace(
        jpeg=jpeg, class_folders=class_folders, zhou_split=zhou_split, imagenet_classnames=imagenet_classnames
    )
