"""ToyWorld suites as datasets: registration, balance, disjoint splits, deterministic images."""

import hashlib
from collections import Counter

import numpy as np
import pytest

from mmprompt_lab.data.base import get_source, list_datasets, load_dataset
from mmprompt_lab.toyworld import SUITES
from mmprompt_lab.toyworld.captions import caption

NAMES = list(SUITES)


def test_all_suites_registered():
    assert {f"toyworld/{n}" for n in NAMES} <= set(list_datasets())
    for kind in ("shapes", "shapes-sketch", "shapes-noise", "shapes-rendition"):
        assert kind in SUITES
    assert len(SUITES["shapes"].classes) >= 24


@pytest.mark.parametrize("name", NAMES)
def test_class_balance_and_sizes(name):
    src = get_source(f"toyworld/{name}")
    assert src.augment == "toy" and "{}" in src.template
    assert len(set(src.classnames)) == len(src.classnames)
    for split, items in src.splits.items():
        counts = Counter(it.label for it in items)
        assert set(counts) == set(range(len(src.classnames)))
        assert len(set(counts.values())) == 1, (split, counts)
        assert all(it.classname == src.classnames[it.label] and it.path is None for it in items)
    if "train" in src.splits:
        assert min(Counter(it.label for it in src.splits["train"]).values()) >= 16


@pytest.mark.parametrize("name", ["shapes", "polygons", "patterns", "scenes", "clutter"])
def test_splits_are_disjoint(name):
    src = get_source(f"toyworld/{name}")
    keys = {s: {it.key for it in items} for s, items in src.splits.items()}
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"])
    # no identical image across splits (a sample of 3 items per class per split)
    hashes = {}
    for split, items in src.splits.items():
        sample = items[: 3 * len(src.classnames)]
        hashes[split] = {hashlib.sha1(src.load_image(it).tobytes()).hexdigest() for it in sample}
    assert not (hashes["train"] & hashes["test"] or hashes["train"] & hashes["val"])


def test_images_are_deterministic_and_cached():
    src = get_source("toyworld/polygons")
    item = src.splits["test"][5]
    a = src.load_image(item)
    assert src.load_image(item) is a  # memo-cached
    fresh = SUITES["polygons"].image(item.key, item.label)
    assert fresh.tobytes() == a.tobytes() and a.size == (32, 32) and a.mode == "RGB"


def test_domain_sets_share_classes_and_scenes_with_shapes():
    base = SUITES["shapes"]
    for name in ("shapes-sketch", "shapes-noise", "shapes-rendition"):
        s = SUITES[name]
        assert s.classes == base.classes
        assert list(s.sizes) == ["test"]
        key, label = s.keys("test")[0]
        assert s.scene(key, label)[0].objects == base.scene(key, label)[0].objects  # same scene, new style


def test_class_names_are_pretraining_words():
    """Every class name occurs as a word in pretraining captions (so novel classes have a meaning)."""
    from mmprompt_lab.toyworld import WorldSpec, sample_scene

    rng = np.random.default_rng(0)
    words = set(
        " ".join(caption(sample_scene(rng, WorldSpec()), rng) for _ in range(3000))
        .replace(".", " ")
        .replace(",", " ")
        .split()
    )
    for name in NAMES:
        missing = [c for c in SUITES[name].classes if c not in words]
        assert not missing, (name, missing)


def test_label_matches_scene_factor():
    for name in ("shapes", "patterns", "scenes", "clutter"):
        s = SUITES[name]
        for key, label in s.keys("val")[:20]:
            scene, _ = s.scene(key, label)
            value = {
                "shape": scene.objects[0].shape,
                "pattern": scene.objects[0].pattern,
                "background": scene.background,
            }[s.factor]
            assert value == s.classes[label]


def test_base_novel_halves():
    base = load_dataset("toyworld/shapes", split="test", subsample="base")
    novel = load_dataset("toyworld/shapes", split="test", subsample="novel")
    assert len(base.classnames) == 12 and len(novel.classnames) == 12
    assert not set(base.classnames) & set(novel.classnames)
    few = load_dataset("toyworld/shapes", split="train", shots=16, seed=1)
    assert len(few) == 16 * 24


def test_novel_subset_renders_the_novel_classes():
    """Base/novel subsets renumber labels; the images must still show the item's own class."""
    suite = SUITES["polygons"]
    novel = load_dataset("toyworld/polygons", split="test", subsample="novel")
    assert novel.classnames == list(suite.classes[5:])
    for i in range(0, len(novel), 17):
        image, label = novel[i]
        item = novel.items[i]
        assert novel.classnames[label] == item.classname
        expected = suite.image(item.key, suite.classes.index(item.classname))  # pure, uncached
        assert np.array_equal(np.asarray(image), np.asarray(expected))
