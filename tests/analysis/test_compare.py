"""Side-by-side runs over seeds, where variants differ, and MaPLe as IVLP (mmprompt_lab/analysis/compare.py).

The module shares its name with the function `mmprompt_lab.analysis.compare`, so it is imported by path.
"""

import importlib
import math
from types import SimpleNamespace

import pytest
import torch

from mmprompt_lab import load_dataset, notebook_settings
from mmprompt_lab.learners import create_learner

C = importlib.import_module("mmprompt_lab.analysis.compare")
NAMES = ["circle", "star", "house"]


# ----------------------------------------------------------------------------- numbers by hand
def test_mean_std_is_the_sample_std():
    assert C.mean_std([50, 60, 70]) == (60.0, 10.0)  # deviations ±10: sqrt(200 / 2)
    mean, std = C.mean_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))  # (2.25 + 0.25 + 0.25 + 2.25) / 3
    assert C.mean_std([7.5]) == (7.5, 0.0)
    with pytest.raises(ValueError):
        C.mean_std([])


def _fake(method, hm, base, seconds, trainable):
    learner = SimpleNamespace(num_trainable=lambda: trainable)
    return SimpleNamespace(
        method=method, learner=learner, train_seconds=seconds, metrics={"base": base, "novel": hm, "hm": hm}
    )


def test_summarize_fake_results_against_a_hand_computation():
    results = [
        _fake("zeroshot", 66.0, 60.0, 0.0, 0),
        _fake("zeroshot", 66.0, 60.0, 0.0, 0),
        _fake("maple", 40.0, 70.0, 1.0, 19104),
        _fake("maple", 50.0, 64.0, 3.0, 19104),
    ]
    rows = C.summarize(results)
    assert [r["method"] for r in rows] == ["zeroshot", "maple"]
    zs, maple = rows
    assert zs["seeds"] == 2 and zs["hm"] == 66.0 and zs["hm_std"] == 0.0 and zs["below_reference"] == []
    assert maple["trainable"] == 19104 and maple["train_s"] == 2.0
    assert maple["hm"] == 45.0 and maple["hm_std"] == pytest.approx(math.sqrt(50))  # 40, 50: ±5 → sqrt(50 / 1)
    assert maple["base"] == 67.0 and maple["base_std"] == pytest.approx(math.sqrt(18))  # 70, 64: ±3
    assert maple["below_reference"] == ["novel", "hm"]  # base 67 > 60: not below
    assert C.summarize(results, reference=None)[1]["below_reference"] == []
    cells = C.summary_table(rows).data[0].cells.values
    assert cells[0] == ["zeroshot", "maple"] and cells[2] == ["0", "19,104"]
    assert cells[6] == ["66.0 ± 0.0", "45.0 ± 7.1 ▼"]  # the hm column
    assert cells[4][1] == "67.0 ± 4.2"  # base, not flagged
    fig = C.summary_figure(rows)
    assert list(fig.data[1].error_y.array) == pytest.approx([maple["base_std"], maple["novel_std"], maple["hm_std"]])


@pytest.mark.parametrize(
    "name,group",
    [
        ("ctx", "ctx"),
        ("deep_text.1", "deep_text"),
        ("proj.weight", "proj"),
        ("cmpa.0.attn_t.in_proj_weight", "cmpa.attn_t"),
        ("text_dafe.0.gate", "text_dafe.gate"),
        ("text_dafe.1.phi.3.bias", "text_dafe.phi"),
        ("mixer.ln_1.weight", "mixer.ln_1"),
    ],
)
def test_parameter_group(name, group):
    assert C.parameter_group(name) == group


def test_parameter_groups_sum_to_the_trainable_count(tiny_clip):
    for method in ("dcp", "mudpt", "map_dafe"):
        learner = create_learner(method, tiny_clip, NAMES, seed=0)
        assert sum(C.parameter_groups(learner).values()) == learner.num_trainable()
    shared = C.parameter_groups(create_learner("dcp", tiny_clip, NAMES, seed=0))
    per_layer = C.parameter_groups(create_learner("dcp", tiny_clip, NAMES, seed=0, shared_cmpa=False))
    depth = create_learner("dcp", tiny_clip, NAMES, seed=0).config.depth
    assert per_layer["cmpa.attn_v"] == depth * shared["cmpa.attn_v"] and per_layer["ctx"] == shared["ctx"]


# ----------------------------------------------------------------------------- where variants differ
@pytest.fixture(scope="module")
def tiny_test():
    return load_dataset("toyworld/polygons", split="test", subsample="base").first_per_class(2)


def test_gradient_norms_show_dcps_dropped_text_half(tiny_clip, tiny_test):
    text_half = ("cmpa.attn_t", "cmpa.ln1_t", "cmpa.ln2_t", "cmpa.mlp_t", "cmpa.proj_v2t")
    paper = C.gradient_norms(create_learner("dcp", tiny_clip, tiny_test.classnames, seed=0, n_ctx=4), tiny_test)
    code = C.gradient_norms(
        create_learner("dcp", tiny_clip, tiny_test.classnames, seed=0, n_ctx=4, text_writeback=False), tiny_test
    )
    assert all(paper[g] > 0 for g in text_half)
    assert all(code[g] == 0.0 for g in text_half)
    assert code["cmpa.attn_v"] > 0 and code["ctx"] > 0
    learner = create_learner("dcp", tiny_clip, tiny_test.classnames, seed=0, n_ctx=4)
    C.gradient_norms(learner, tiny_test)
    assert all(p.grad is None for p in learner.parameters())  # left cleared


def test_pass_dependence_of_upts_text_on_its_vision_prompts(tiny_clip):
    wrt = ["vision_ctx", "deep_vision"]
    paper = C.pass_dependence(create_learner("upt", tiny_clip, NAMES, seed=0), "ctx", wrt)
    code = C.pass_dependence(create_learner("upt", tiny_clip, NAMES, seed=0, attend_across_tokens=False), "ctx", wrt)
    assert all(v > 0 for v in paper.values())
    assert code == {"vision_ctx": 0.0, "deep_vision": 0.0}
    with pytest.raises(ValueError, match="no parameters"):
        C.pass_dependence(create_learner("upt", tiny_clip, NAMES, seed=0), "ctx", ["nope"])


# ----------------------------------------------------------------------------- MaPLe as IVLP
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_maple_as_ivlp_gives_identical_logits(tiny_clip, images, depth):
    maple = create_learner("maple", tiny_clip, NAMES, seed=0, depth=depth)
    with torch.no_grad():  # move every tensor away from its init, as training would
        for p in maple.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    twin = C.maple_as_ivlp(maple)
    assert twin.name == "ivlp" and twin.config.text_depth == depth == twin.config.vision_depth
    assert twin.num_trainable() < maple.num_trainable()
    assert C.logit_gap(maple, twin, images) == 0.0
    with torch.no_grad():
        twin.vision_ctx.add_(0.5)  # a different vision prompt is a different classifier: the check can fail
    assert C.logit_gap(maple, twin, images) > 0


def test_effective_prompts_and_travel(tiny_clip):
    maple = create_learner("maple", tiny_clip, NAMES, seed=0, depth=2)
    start = C.effective_prompts(maple)
    assert set(start) == {"text 0", "text 1", "vision 0", "vision 1"}
    assert torch.allclose(start["vision 1"], maple.deep_proj[0](maple.deep_text[0]))
    assert C.prompt_travel(start, maple) == {k: 0.0 for k in start}
    with torch.no_grad():
        maple.deep_text[0].add_(1.0)  # moves P_1 and, through F_1, V_1 — not V_0
    travel = C.prompt_travel(start, maple)
    assert travel["text 1"] == pytest.approx(start["text 1"].numel() ** 0.5) and travel["vision 1"] > 0
    assert travel["vision 0"] == 0.0
    with pytest.raises(ValueError):
        C.effective_prompts(create_learner("coop", tiny_clip, NAMES, seed=0))


# ----------------------------------------------------------------------------- through the pipeline
def test_run_seeds_summarize_and_run_learner_reproduce_the_pipeline(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=2, shots=1)
    runs = C.run_seeds(
        tiny_clip, ["zeroshot", C.variant("coop", "coop (2 ctx)", n_ctx=2)], "toyworld/shapes", S, seeds=(1, 2)
    )
    assert [(r.method, r.spec.seed) for r in runs] == [
        ("zeroshot", 1),
        ("zeroshot", 2),
        ("coop (2 ctx)", 1),
        ("coop (2 ctx)", 2),
    ]
    assert runs[2].learner.config.n_ctx == 2
    assert not torch.equal(runs[2].learner.ctx, runs[3].learner.ctx)  # seeds differ
    rows = C.summarize(runs)
    assert [(r["method"], r["seeds"]) for r in rows] == [("zeroshot", 2), ("coop (2 ctx)", 2)]
    assert rows[1]["hm"] == pytest.approx(sum(r.metrics["hm"] for r in runs[2:]) / 2)
    learners = C.learners_of(runs)
    assert learners["coop (2 ctx)"] is runs[2].learner and C.learners_of(runs, seed=2)["zeroshot"] is runs[1].learner
    # a run rebuilt from its start and trained by run_learner is the same run, to the bit
    again = C.run_learner(C.initial_learner(runs[2]), runs[2].spec)
    assert again.metrics == runs[2].metrics
    assert again.history.step_loss == runs[2].history.step_loss


def test_maple_vs_ivlp_starts_from_identical_logits(tiny_clip):
    S = notebook_settings(ci=True, pretrained=False, epochs=2, shots=1)
    runs = C.maple_vs_ivlp(tiny_clip, "toyworld/shapes", S, seeds=(1,), depth=2)
    assert [r.method for r in runs] == ["maple", "ivlp (maple start)", "ivlp (own start)"]
    maple, twin, own = runs
    assert twin.learner.config.text_depth == 2 == maple.learner.config.depth
    # the same start, data order and recipe: the very first loss agrees (float rounding only)
    assert twin.history.step_loss[0] == pytest.approx(maple.history.step_loss[0], abs=1e-5)
    assert own.history.step_loss[0] != pytest.approx(maple.history.step_loss[0], abs=1e-5)
