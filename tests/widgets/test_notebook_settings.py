"""notebook_settings: CI sizes from the environment, ToyCLIP fallback; learner_overrides."""
import pytest

from mmprompt_lab.learners import create_learner
from mmprompt_lab.widgets.settings import CI_LIMITS, learner_overrides, notebook_settings


def test_ci_env_shrinks(monkeypatch):
    monkeypatch.setenv("MMPROMPT_CI", "1")
    s = notebook_settings(shots=16, epochs=10, eval_per_class=30, pretrained=False)
    assert s.ci and s.shots == CI_LIMITS["shots"] and s.epochs == CI_LIMITS["epochs"]
    assert s.eval_per_class == CI_LIMITS["eval_per_class"] and s.fit_kwargs()["progress"] is False
    monkeypatch.setenv("MMPROMPT_CI", "0")
    s = notebook_settings(shots=16, epochs=10, pretrained=False)
    assert not s.ci and (s.shots, s.epochs) == (16, 10)


def test_missing_toyclip_weights_fall_back(monkeypatch):
    import mmprompt_lab.widgets.settings as settings

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


@pytest.mark.parametrize("method", ["coop", "vpt", "ivlp", "maple", "upt", "dcp", "mudpt", "map_dafe", "cocoop"])
def test_overrides_build_every_method(tiny_clip, method):
    kwargs = learner_overrides(method, tiny_clip, n_ctx=2, depth=2)
    learner = create_learner(method, tiny_clip, ["a", "b"], **kwargs)
    assert learner.num_trainable() > 0
    assert all(getattr(learner.config, k) == v for k, v in kwargs.items())
