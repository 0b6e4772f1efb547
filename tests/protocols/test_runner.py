"""Protocol runners end to end on a tiny random CLIP (accuracy values are not checked: random weights)."""

import json

import pytest

from mmprompt_lab.engine import harmonic_mean
from mmprompt_lab.protocols import Session, base2new, default_datasets, domain_generalisation, few_shot

TINY = dict(epochs=1, test_per_class=1, progress=False)


def test_base2new_writes_results_and_reuses_checkpoints(tiny_clip, tmp_path):
    res = base2new("coop", ["toyworld/patterns"], seeds=(2,), shots=1, model=tiny_clip, out=tmp_path, **TINY)
    path = tmp_path / "base2new-coop.json"
    saved = json.loads(path.read_text())
    assert res["path"] == str(path) and saved["format"] == "mmprompt_lab.results/1"
    assert saved["protocol"] == "base2new" and saved["method"] == "coop"
    assert saved["config"]["datasets"] == ["toyworld/patterns"] and saved["config"]["seeds"] == [2]
    assert saved["config"]["epochs"] == 1 and saved["config"]["backbone"] == tiny_clip.id
    assert {"torch", "open_clip", "python", "device", "mmprompt_lab"} <= set(saved["environment"])
    assert saved["started"] and saved["finished"] and saved["seconds"] >= 0
    records = saved["results"]
    assert [(r["dataset"], r["seed"]) for r in records] == [("toyworld/patterns", 2)]
    for r in records:
        assert r["hm"] == pytest.approx(harmonic_mean(r["base"], r["novel"]))
        assert (r["n_base"], r["n_novel"]) == (4, 3)  # 7 classes: base 4, novel 3; 1 test image each
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1  # one per (dataset, seed)

    again = base2new("coop", ["toyworld/patterns"], seeds=(2,), shots=1, model=tiny_clip, out=tmp_path, **TINY)
    assert all(r["train_seconds"] == 0.0 for r in again["results"])  # reloaded, not retrained
    assert [r["base"] for r in again["results"]] == [r["base"] for r in records]


def test_zeroshot_few_shot_and_domain_generalisation(tiny_clip, tmp_path):
    fs = few_shot("zeroshot", ["toyworld/scenes"], shots=(1, 2), seeds=(1, 2), model=tiny_clip, out=None, **TINY)
    assert [(r["shots"], r["seed"]) for r in fs["results"]] == [(0, 1), (0, 2)]  # evaluated once per seed
    assert fs["results"][0]["accuracy"] == fs["results"][1]["accuracy"] and "path" not in fs

    dg = domain_generalisation(
        "zeroshot", targets=["toyworld/shapes-sketch"], seeds=(1,), model=tiny_clip, out=tmp_path, **TINY
    )
    assert [(r["dataset"], r["role"]) for r in dg["results"]] == [
        ("toyworld/shapes", "source"),
        ("toyworld/shapes-sketch", "target"),
    ]
    assert all(r["n"] == 24 for r in dg["results"])  # 24 classes, 1 image each
    assert (tmp_path / "domain_generalisation-zeroshot.json").exists()


def test_session_test_cap_and_target_classes(tiny_clip):
    session = Session("coop", tiny_clip, test_per_class=2, epochs=1)
    test = session.dataset("toyworld/polygons", "test")
    assert len(test) == 2 * len(test.classnames)
    learner = session.learner("toyworld/polygons", shots=1, seed=1, subsample="base")
    novel = session.test(learner, "toyworld/polygons", subsample="novel")
    novel_set = session.dataset("toyworld/polygons", "test", subsample="novel")
    assert novel["n"] == len(novel_set) == 2 * len(novel_set.classnames)  # scored on the novel classes
    base = session.dataset("toyworld/polygons", "train", shots=1, seed=1, subsample="base").classnames
    assert learner.classnames == base  # … and the learner keeps its own (evaluation is pure)
    assert session.learner("toyworld/polygons", shots=1, seed=1, subsample="base") is learner  # trained once


def test_defaults_and_errors(tiny_clip):
    assert default_datasets("base2new", real=False)["datasets"][0] == "toyworld/shapes"
    assert "toyworld/shapes-sketch" not in default_datasets("base2new", real=False)["datasets"]
    assert default_datasets("domain_generalisation", real=True) == {
        "source": "imagenet",
        "targets": ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"],
    }
    assert len(default_datasets("cross_dataset", real=True)["targets"]) == 10
    with pytest.raises(ValueError, match="unknown method"):
        Session("mapel", tiny_clip)
    with pytest.raises(ValueError, match="test_per_class"):
        Session("coop", tiny_clip, test_per_class=0)
    with pytest.raises(ValueError, match="unknown protocol"):
        default_datasets("base-2-new", real=False)
