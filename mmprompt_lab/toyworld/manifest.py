"""Manifests of the ToyWorld suites: what a suite is, and a content hash that detects generator changes.

build_manifest(SUITES["shapes"])            # dict, as stored in data_manifests/toyworld/shapes.json
check_manifest(path)                         # raises if the generator no longer matches the file
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from .captions import caption
from .factors import COLOURS, HELD_OUT_COLOUR
from .render import render
from .suites import GENERATOR_VERSION, SUITES, Suite
from .world import PRETRAIN_WORLD, WorldSpec, sample_scene

HASH_ITEMS = 16  # items per split hashed (pixels + one caption each)
MANIFEST_DIR = Path(__file__).parents[1] / "data_manifests" / "toyworld"  # via the package symlink


def build_manifest(suite: Suite, image_size: int = 32) -> dict:
    """The manifest of a suite (measured numbers, if any, are added by the caller under "measured")."""
    return {
        "name": f"toyworld/{suite.name}",
        "generator_version": GENERATOR_VERSION,
        "seed": suite.seed,
        "factor": suite.factor,
        "description": suite.description,
        "classes": list(suite.classes),
        "split_sizes_per_class": dict(suite.sizes),
        "split_counts": {s: n * len(suite.classes) for s, n in suite.sizes.items()},
        "template": suite.template,
        "style": suite.style or "as in factors",
        "image_size": image_size,
        "factors": dataclasses.asdict(suite.spec),
        "content_hash": {
            "sha256": suite.content_hash(HASH_ITEMS, image_size),
            "method": f"pixels + a caption of the first {HASH_ITEMS} items of each split",
        },
    }


def pretrain_world_hash(spec: WorldSpec = PRETRAIN_WORLD, n: int = 64, seed: int = 0, size: int = 32) -> str:
    """sha256 of the first `n` pretraining scenes (pixels + captions) drawn from `spec`."""
    rng, h = np.random.default_rng([seed, 0]), hashlib.sha256()
    for _ in range(n):
        scene = sample_scene(rng, spec)
        h.update(np.asarray(render(scene, size, rng)).tobytes())
        h.update(caption(scene, rng).encode())
    return h.hexdigest()


def build_pretrain_manifest() -> dict:
    """Manifest of the pretraining world (photo only, held-out shape–colour pairs, 30 % hue-rotated backgrounds)."""
    spec = PRETRAIN_WORLD
    return {
        "name": "toyworld/pretrain",
        "generator_version": GENERATOR_VERSION,
        "factors": dataclasses.asdict(spec),
        "colours": {k: list(v) for k, v in COLOURS.items()},
        "held_out_shape_colour": HELD_OUT_COLOUR,
        "never_seen_styles": ["cartoon", "sketch", "noise", "rendition"],
        "content_hash": {
            "sha256": pretrain_world_hash(spec),
            "method": "pixels + captions of the first 64 scenes, rng seed [0, 0]",
        },
    }


def check_manifest(path: str | Path) -> None:
    """Recompute a stored manifest's generator fields; raise ValueError naming what changed."""
    stored = json.loads(Path(path).read_text())
    name = stored["name"].split("/", 1)[1]
    size = stored.get("image_size", 32)
    fresh = build_pretrain_manifest() if name == "pretrain" else build_manifest(SUITES[name], size)
    fresh = json.loads(json.dumps(fresh))  # tuples → lists, as stored
    changed = [k for k in fresh if stored.get(k) != fresh[k]]
    if changed:
        raise ValueError(
            f"{path}: the generator no longer matches the manifest (fields {changed}). If the "
            "change is intended, bump GENERATOR_VERSION and rewrite the manifests "
            "(python -m mmprompt_lab.toyworld.manifest)."
        )


def write_manifests(out_dir: str | Path = MANIFEST_DIR, measured: dict | None = None) -> list[Path]:
    """(Re)write every manifest; `measured` = {suite: {...}} numbers to store under "measured"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, suite in SUITES.items():
        m = build_manifest(suite)
        path = out_dir / f"{name}.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        if measured and name in measured:
            m["measured"] = measured[name]
        elif "measured" in old:
            m["measured"] = old["measured"]
        path.write_text(json.dumps(m, indent=2) + "\n")
        paths.append(path)
    path = out_dir / "pretrain.json"
    path.write_text(json.dumps(build_pretrain_manifest(), indent=2) + "\n")
    return paths + [path]


if __name__ == "__main__":
    for p in write_manifests():
        print(p)
