"""notebook_settings: CI sizes from the environment, ToyCLIP fallback, specs; knob_options."""

import pytest

from mmprompt_lab.experiment import knob_options
from mmprompt_lab.learners import create_learner, list_learners
from mmprompt_lab.settings import CI_LIMITS, notebook_settings


def test_ci_env_shrinks(monkeypatch):
    monkeypatch.setenv("MMPROMPT_CI", "1")
    s = notebook_settings(shots=16, epochs=10, eval_per_class=30, pretrained=False)
    assert s.ci and s.shots == CI_LIMITS["shots"] and s.epochs == CI_LIMITS["epochs"]
    assert s.eval_per_class == CI_LIMITS["eval_per_class"]
    monkeypatch.setenv("MMPROMPT_CI", "0")
    s = notebook_settings(shots=16, epochs=10, pretrained=False)
    assert not s.ci and (s.shots, s.epochs) == (16, 10)


def test_missing_toyclip_weights_fall_back(monkeypatch):
    import mmprompt_lab.settings as settings

    monkeypatch.setattr(settings, "toyclip_weights_available", lambda: False)
    with pytest.warns(UserWarning, match="randomly initialised"):
        assert notebook_settings(ci=True).pretrained is False
    monkeypatch.setattr(settings, "toyclip_weights_available", lambda: True)
    assert notebook_settings(ci=True).pretrained is None  # the shipped file, picked up automatically
    assert notebook_settings("ViT-B-16", "openai", ci=True).pretrained == "openai"


def test_test_split_is_capped_per_class():
    s = notebook_settings(ci=True, pretrained=False, eval_per_class=3)
    test = s.dataset("toyworld/polygons", "test")
    assert len(test) == 3 * 9
    train = s.dataset("toyworld/polygons", "train", "base")
    assert len(train) == s.shots * 5


def test_spec_carries_the_lesson_sizes(tiny_clip):
    s = notebook_settings(ci=True, pretrained=False, eval_per_class=3, seed=5)
    spec = s.spec("maple", "toyworld/polygons", tiny_clip, n_ctx=3, lr=0.01, ctx_init="")
    assert (spec.shots, spec.epochs, spec.seed, spec.test_per_class, spec.lr) == (s.shots, s.epochs, 5, 3, 0.01)
    assert spec.base2new and spec.options == {"n_ctx": 3, "ctx_init": ""}


@pytest.mark.parametrize("method", [m for m in list_learners() if m != "zeroshot"])
def test_knobs_build_every_method_and_cap_depth(tiny_clip, method):
    for depth in (2, 12):  # 12 exceeds the tiny model: capped at what the method allows
        kwargs = knob_options(method, tiny_clip, n_ctx=2, depth=depth)
        learner = create_learner(method, tiny_clip, ["a", "b"], seed=0, **kwargs)
        assert learner.num_trainable() > 0
        assert all(getattr(learner.config, k) == v for k, v in kwargs.items())
