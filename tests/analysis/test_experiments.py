"""One-call experiments on tiny settings."""

import pytest

from mmprompt_lab import notebook_settings
from mmprompt_lab.analysis import experiments as X


def test_run_method_base_to_novel_and_shift(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=1, shots=1)
    r = X.run_method(tiny_clip, "coop", "toyworld/shapes", S, n_ctx=2, shifted=("toyworld/shapes-sketch",))
    assert set(r.metrics) == {"accuracy", "base", "novel", "hm", "shapes-sketch"}
    assert r.metrics["accuracy"] == r.metrics["base"]  # the in-domain accuracy under base-to-novel
    assert r.learner.classnames == S.dataset("toyworld/shapes", "train", "base").classnames
    assert len(r.history.step_loss) >= 1
    z = X.run_method(tiny_clip, "zeroshot", "toyworld/scenes", S, base_to_novel=False)
    assert z.history is None and set(z.metrics) == {"accuracy"}
    fig = X.results_figure([r, z], metrics=("base", "accuracy"))
    assert {d.name for d in fig.data} == {"coop", "zeroshot"}
    assert len(X.table_figure([r, z]).data[0].cells.values[0]) == 2
    assert len(X.history_figure([r, z]).data) == 1


def test_verdict_flags_runs_below_zero_shot(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=1, shots=1)
    z = X.run_method(tiny_clip, "zeroshot", "toyworld/polygons", S, base_to_novel=False)
    r = X.run_method(tiny_clip, "coop", "toyworld/polygons", S, base_to_novel=False, n_ctx=2)
    r.metrics["accuracy"] = z.metrics["accuracy"] - 5.0  # a run 5 points below zero-shot
    text = X.verdict([z, r]).data
    assert "| coop | polygons | accuracy |" in text and "-5.0" in text and "below zero-shot" in text
    r.metrics["accuracy"] = z.metrics["accuracy"] + 1.0
    assert "below" not in X.verdict([z, r]).data
    assert X.zero_shot_reference([z, r]) == {"toyworld/polygons": {"accuracy": z.metrics["accuracy"]}}
    with pytest.raises(ValueError, match="no zero-shot reference"):
        X.verdict([r])


def test_learner_accuracy_shares_the_frozen_image_pass_exactly(tiny_clip):
    from mmprompt_lab import create_learner, evaluate

    S = notebook_settings(ci=True, pretrained=False)
    test = S.dataset("toyworld/polygons", "test")
    learners = {
        t: create_learner("zeroshot", tiny_clip, test.classnames, templates=(t,)) for t in ("a photo of a {}.", "{}")
    }
    learners["ensemble"] = create_learner("zeroshot", tiny_clip, test.classnames, ensemble=True)
    learners["coop"] = create_learner("coop", tiny_clip, test.classnames, n_ctx=2)  # evaluated on its own
    fast = X.learner_accuracy(learners, test)
    assert fast == {name: evaluate(learner, test)["accuracy"] for name, learner in learners.items()}
    fig = X.accuracy_figure(learners, test)
    assert list(fig.data[0].x) == [fast[n] for n in list(learners)[::-1]]


def test_few_shot_curve_is_ci_sized(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=1)
    runs = X.few_shot_curve(tiny_clip, ["zeroshot", "coop"], "toyworld/polygons", S, n_ctx=2)
    assert [(r.method, r.spec.shots) for r in runs] == [("zeroshot", 1), ("coop", 1), ("coop", 2)]
    fig = X.few_shot_figure(runs)
    assert [list(t.x) for t in fig.data] == [[1, 2]] and len(fig.layout.shapes) == 1  # zero-shot: a dashed line


def test_run_method_with_a_preset(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=2, shots=1)
    r = X.run_method(tiny_clip, "maple", "toyworld/polygons", S, base_to_novel=False, preset="transfer")
    assert r.spec.preset == "transfer" and r.learner.config.depth == 1 and len(r.history.epoch_loss) == 2
    assert r.spec.batch_size is None  # the preset's batch size (4), not the lesson's


def test_gradient_figure_shows_dcp_text_half_without_gradient(tiny_clip):
    from mmprompt_lab import create_learner

    S = notebook_settings(ci=True, pretrained=False)
    train = S.dataset("toyworld/polygons", "train")
    paper = create_learner("dcp", tiny_clip, train.classnames, n_ctx=2, depth=1)
    code = create_learner("dcp", tiny_clip, train.classnames, n_ctx=2, depth=1, text_writeback=False)
    norms = X.gradient_norms(code, train, n=4)
    assert norms["cmpa.attn_t"] == 0.0 and norms["cmpa.proj_v2t"] == 0.0 and norms["ctx"] > 0
    assert X.gradient_norms(paper, train, n=4)["cmpa.attn_t"] > 0
    assert all(p.grad is None for p in code.parameters())  # the learner is left as it was
    fig = X.gradient_figure({"paper": paper, "code": code}, train, n=4)
    assert len(fig.data) == 2 and "no gradient" in fig.data[1].text
