"""Manifests describe the suites, and their content hashes catch any generator change."""

import json
from dataclasses import replace

import pytest

from mmprompt_lab.toyworld import SUITES
from mmprompt_lab.toyworld.manifest import MANIFEST_DIR, build_manifest, check_manifest


@pytest.mark.parametrize("name", list(SUITES) + ["pretrain"])
def test_manifest_matches_generator(name):
    path = MANIFEST_DIR / f"{name}.json"
    assert path.exists(), f"missing manifest {path}; run python -m mmprompt_lab.toyworld.manifest"
    check_manifest(path)


def test_manifest_fields():
    m = json.loads((MANIFEST_DIR / "shapes.json").read_text())
    for key in ("generator_version", "seed", "factors", "classes", "split_sizes_per_class", "content_hash"):
        assert key in m
    assert m["classes"] == list(SUITES["shapes"].classes)


def test_hash_detects_a_generator_change(tmp_path):
    suite = SUITES["polygons"]
    stored = build_manifest(suite)
    changed = build_manifest(replace(suite, spec=replace(suite.spec, radius=(0.45, 0.74))))
    assert stored["content_hash"] != changed["content_hash"]
    bad = json.loads((MANIFEST_DIR / "polygons.json").read_text())
    bad["content_hash"]["sha256"] = "0" * 64
    path = tmp_path / "polygons.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="content_hash"):
        check_manifest(path)
