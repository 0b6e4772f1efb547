"""Notebook 13's helpers: the text-feature distance against hand computations, the per-epoch tracker
through the pipeline (one entry per finished epoch, training unchanged), the seed summaries and figures."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmprompt_lab import notebook_settings
from mmprompt_lab.analysis import regularisation as R
from mmprompt_lab.data import load_dataset
from mmprompt_lab.engine import fit
from mmprompt_lab.engine.evaluate import harmonic_mean
from mmprompt_lab.experiment import ExperimentSpec, run_experiment
from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES

SUITE = "toyworld/polygons"
TEMPLATE = "a photo of a {}."


def hand_features(clip, template, classnames=CLASSNAMES):
    """ŵ^clip by hand, through the unmodified open_clip model: (C, E)."""
    texts = [template.format(c.replace("_", " ")) for c in classnames]
    with torch.no_grad():
        return F.normalize(clip.model.encode_text(clip.tokenize(texts)), dim=-1)


def spec(method, **kw):
    return ExperimentSpec(
        method,
        SUITE,
        shots=2,
        seed=1,
        base2new=True,
        epochs=3,
        batch_size=4,
        test_per_class=2,
        zeroshot_reference=False,
        **kw,
    )


# ----------------------------------------------------------------------------- the distance
def test_distance_is_zero_for_the_hand_crafted_features(tiny_clip):
    zeroshot = create_learner("zeroshot", tiny_clip, CLASSNAMES, templates=(TEMPLATE,))
    assert abs(R.text_distance(zeroshot, TEMPLATE)) < 1e-6
    # KgCoOp starts from the words "a photo of a": its prompt IS the hand-crafted one
    kgcoop = create_learner("kgcoop", tiny_clip, CLASSNAMES, seed=1)
    assert abs(R.text_distance(kgcoop, TEMPLATE)) < 1e-5
    assert R.text_distance(kgcoop, "a photo of the {}.") > 1e-4  # another template: not zero
    torch.testing.assert_close(
        R.hand_crafted_features(tiny_clip, CLASSNAMES, TEMPLATE), hand_features(tiny_clip, TEMPLATE)
    )


def test_distance_matches_a_hand_computation(tiny_clip):
    coop = create_learner("coop", tiny_clip, CLASSNAMES, seed=1, n_ctx=4)
    with torch.no_grad():
        w = coop.encode_text()  # (C, E), unnormalised
        want = (1 - F.cosine_similarity(w, hand_features(tiny_clip, TEMPLATE), dim=-1)).mean()
    got = R.text_distance(coop, TEMPLATE)
    assert got > 0.01
    assert got == pytest.approx(float(want), abs=1e-6)
    # the same quantity as KgCoOp's released L_kg (cosine form), on a learner that has moved away
    kgcoop = create_learner("kgcoop", tiny_clip, CLASSNAMES, seed=1, ctx_init="", templates=(TEMPLATE,))
    with torch.no_grad():
        assert R.text_distance(kgcoop, TEMPLATE) == pytest.approx(float(kgcoop.kg_term(kgcoop.encode_text())), abs=1e-6)
    ref = hand_features(tiny_clip, TEMPLATE)
    assert R.text_distance(coop, TEMPLATE, reference=ref) == pytest.approx(got, abs=1e-6)
    with pytest.raises(ValueError, match="reference"):
        R.text_distance(coop, TEMPLATE, reference=ref[:2])


def test_distance_refuses_image_conditioned_text(tiny_clip):
    cocoop = create_learner("cocoop", tiny_clip, CLASSNAMES, seed=1)
    with pytest.raises(ValueError, match="conditional"):
        R.text_distance(cocoop, TEMPLATE)


# ----------------------------------------------------------------------------- the tracker
def test_tracker_records_one_entry_per_finished_epoch_through_the_pipeline(tiny_clip):
    run = R.tracked_run(spec("coop", options={"n_ctx": 2}), tiny_clip)
    assert [r["epoch"] for r in run.curve] == [0, 1, 2, 3]
    assert run.curve[0]["distance"] > 0 and all(0 <= r["novel"] <= 100 for r in run.curve)
    assert [r["train"] for r in run.curve[1:]] == run.result.history.epoch_accuracy
    # the tracker scored the pipeline's own novel set (no extra cap): its last entry is the table's number
    assert run.curve[-1]["novel"] == run.result.metrics["novel"]
    with torch.no_grad():
        assert run.curve[-1]["distance"] == pytest.approx(R.text_distance(run.result.learner, TEMPLATE), abs=1e-6)
    capped = R.tracked_run(spec("coop", options={"n_ctx": 2}), tiny_clip, novel_per_class=1)
    assert [r["epoch"] for r in capped.curve] == [0, 1, 2, 3]
    assert all(r["novel"] in (0, 25, 50, 75, 100) for r in capped.curve)  # 4 novel classes × 1 image


def test_tracking_leaves_training_unchanged_and_sees_the_aggregated_prompts(tiny_clip):
    s = spec("promptsrc")  # GPA: the prompts are replaced after the last epoch, before the callback
    plain = run_experiment(s, tiny_clip)
    hooks = dict(nn.modules.module._global_forward_pre_hooks)
    tracked = R.tracked_run(s, tiny_clip)
    assert dict(nn.modules.module._global_forward_pre_hooks) == hooks  # the binding hook is gone
    assert tracked.result.metrics == plain.metrics
    for key, value in plain.learner.learner_state_dict().items():
        torch.testing.assert_close(tracked.result.learner.learner_state_dict()[key], value, rtol=0, atol=0)
    assert tracked.curve[-1]["novel"] == plain.metrics["novel"]
    with torch.no_grad():
        assert tracked.curve[-1]["distance"] == pytest.approx(R.text_distance(plain.learner, TEMPLATE), abs=1e-6)


def test_a_stopped_epoch_is_not_recorded(tiny_clip):
    train = load_dataset(SUITE, split="train", shots=2, seed=1, subsample="base")  # 10 images: 2 steps/epoch
    novel = load_dataset(SUITE, split="test", seed=1, subsample="novel").first_per_class(1)
    learner = create_learner("coop", tiny_clip, train.classnames, seed=1, n_ctx=2)
    tracker = R.DriftTracker(novel).bind(learner)
    fit(
        learner,
        train,
        epochs=3,
        batch_size=4,
        seed=1,
        progress=False,
        on_epoch_end=tracker,
        on_step=lambda s: setattr(s, "stop", s.step == 3),
    )  # stops inside the second epoch
    assert [r["epoch"] for r in tracker.records] == [0, 1]


def test_zero_shot_is_one_reference_point_and_an_unbound_tracker_refuses(tiny_clip):
    run = R.tracked_run(spec("zeroshot"), tiny_clip)
    assert len(run.curve) == 1 and run.curve[0]["epoch"] == 0
    assert abs(run.curve[0]["distance"]) < 1e-6 and run.curve[0]["novel"] == run.result.metrics["novel"]
    novel = load_dataset(SUITE, split="test", seed=1, subsample="novel").first_per_class(1)
    with pytest.raises(RuntimeError, match="watch"):
        R.DriftTracker(novel)(SimpleNamespace(epoch=0, step=1, steps_per_epoch=1))
    with pytest.raises(ValueError, match="base2new"):
        R.tracked_run(spec("coop").replace(base2new=False), tiny_clip)


def test_seed_runs_and_sweep_label_and_configure_each_run(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=2, shots=1, eval_per_class=1)
    runs = R.seed_runs(tiny_clip, ["zeroshot", "coop"], SUITE, S, (1, 2), per_method={"coop": {"n_ctx": 2}})
    assert [(r.label, r.seed) for r in runs] == [("zeroshot", 1), ("zeroshot", 2), ("coop", 1), ("coop", 2)]
    assert runs[2].result.learner.config.n_ctx == 2 and len(runs[2].curve) == 3
    with pytest.raises(ValueError, match="maple"):
        R.seed_runs(tiny_clip, ["coop"], SUITE, S, per_method={"maple": {}})
    lam = R.sweep(tiny_clip, "kgcoop", SUITE, S, "kg_weight", [0, 8])
    assert [r.label for r in lam] == ["kgcoop kg_weight=0", "kgcoop kg_weight=8"]
    assert [r.result.learner.config.kg_weight for r in lam] == [0, 8] and {r.seed for r in lam} == {S.seed}


# ----------------------------------------------------------------------------- summaries and figures
def fake(label, seed, base, novel, curve=(), method=None):
    result = SimpleNamespace(
        method=label,
        spec=SimpleNamespace(seed=seed, method=method or label),
        metrics={"base": base, "novel": novel, "hm": harmonic_mean(base, novel)},
    )
    return R.TrackedRun(result, list(curve))


def test_spread_is_mean_and_population_std_over_seeds():
    runs = [fake("a", 1, 60.0, 50.0), fake("b", 1, 80.0, 80.0), fake("a", 2, 70.0, 30.0)]
    rows = R.spread(runs)
    assert list(rows) == ["a", "b"] and rows["a"]["seeds"] == [1, 2]
    assert rows["a"]["base"] == (65.0, 5.0) and rows["a"]["novel"] == (40.0, 10.0)
    hm, std = rows["a"]["hm"]
    assert hm == pytest.approx(2 * 65 * 40 / 105)
    assert std == pytest.approx(abs(harmonic_mean(60, 50) - harmonic_mean(70, 30)) / 2)
    assert rows["b"]["base"] == (80.0, 0.0)


def test_mean_curve_and_figures():
    curve = lambda d, n: [{"epoch": e, "distance": d * e, "novel": n, "train": 50.0} for e in range(3)]  # noqa: E731
    runs = [
        fake("coop", 1, 60, 40, curve(0.1, 40)),
        fake("coop", 2, 70, 50, curve(0.3, 60)),
        fake("zeroshot", 1, 50, 70, [{"epoch": 0, "distance": 0.0, "novel": 70.0, "train": float("nan")}]),
    ]
    epochs, mean, std = R.mean_curve(runs, "coop", "distance")
    assert epochs == [0, 1, 2] and mean == pytest.approx([0, 0.2, 0.4]) and std == pytest.approx([0, 0.1, 0.2])
    with pytest.raises(ValueError, match="labels"):
        R.mean_curve(runs, "maple", "novel")
    fig = R.drift_figure(runs)
    assert len(fig.data) == 4  # 2 labels × 2 panels
    zs = [t for t in fig.data if t.name == "zeroshot"]
    assert all(t.line.dash == "dash" and list(t.x) == [0, 2] for t in zs)
    assert list(R.spread_table(runs).data[0].cells.values[0]) == ["coop", "zeroshot"]
    assert [t.name for t in R.spread_figure(runs).data] == ["coop", "zeroshot"]
    sweep = [
        fake("kgcoop kg_weight=0", 1, 70, 40, curve(0.3, 40)),
        fake("kgcoop kg_weight=8", 1, 65, 60, curve(0.01, 60)),
    ]
    fig = R.sweep_figure(sweep, "kg_weight", reference=runs)
    assert list(fig.data[0].x) == ["0", "8"] and list(fig.data[1].y) == [40, 60]
    assert list(fig.data[-1].y) == pytest.approx([0.6, 0.02])  # final distance per value
    assert len(fig.layout.shapes) == 2  # zero-shot base and novel
