"""What prompts learned, what they depend on, and failures (mmprompt_lab/analysis/inspect.py)."""

import pytest
import torch

from mmprompt_lab import evaluate, load_dataset
from mmprompt_lab.analysis import inspect as I
from mmprompt_lab.learners import create_learner

NAMES = ["circle", "star", "house"]


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.randn(4, 3, 32, 32)


@pytest.fixture(scope="module")
def others():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)


@pytest.fixture(scope="module")
def tiny_test():
    return load_dataset("toyworld/polygons", split="test", subsample="base").first_per_class(3)


# ----------------------------------------------------------------------------- confusions by hand
CONFUSION = [
    [5, 3, 0],  # a: 8 images, 3 taken for b
    [1, 4, 2],  # b: 7 images
    [0, 6, 1],
]  # c: 7 images, 6 taken for b


def test_confused_pairs_directed_from_a_hand_made_matrix():
    pairs = I.confused_pairs(CONFUSION, ["a", "b", "c"], k=10)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("c", "b", 6),
        ("a", "b", 3),
        ("b", "c", 2),
        ("b", "a", 1),
    ]
    assert pairs[0]["rate"] == pytest.approx(100 * 6 / 7) and pairs[1]["rate"] == pytest.approx(100 * 3 / 8)
    assert isinstance(pairs[0]["rate"], float)
    assert len(I.confused_pairs(CONFUSION, ["a", "b", "c"], k=2)) == 2


def test_confused_pairs_symmetric_from_a_hand_made_matrix():
    pairs = I.confused_pairs(CONFUSION, ["a", "b", "c"], symmetric=True)
    assert [(p["pair"], p["count"]) for p in pairs] == [(("b", "c"), 8), (("a", "b"), 4)]  # a–c never confused
    assert pairs[0]["rate"] == pytest.approx(100 * 8 / 14) and pairs[1]["rate"] == pytest.approx(100 * 4 / 15)
    with pytest.raises(ValueError, match="C × C"):
        I.confused_pairs(CONFUSION, ["a", "b"])


# ----------------------------------------------------------------------------- recording the forward
def test_layer_inputs_flag_the_blocks_where_prompts_are_written(tiny_clip, batch):
    maple = create_learner("maple", tiny_clip, NAMES, seed=0, depth=2)
    rec = I.layer_inputs(maple, batch)
    assert [r.layer for r in rec] == list(range(tiny_clip.vision_depth))
    assert [r.vision_written for r in rec] == [True, True, False, False]
    assert [r.text_written for r in rec][: tiny_clip.text_depth] == [True, True, False]
    written = I.written_prompts(maple, rec)
    assert torch.allclose(written["text"][1][0], maple.deep_text[0])  # MaPLe writes P_1 before block 1
    assert torch.allclose(written["vision"][1][0], maple.deep_proj[0](maple.deep_text[0]), atol=1e-6)
    with torch.no_grad():
        before = maple(batch)
    I.layer_inputs(maple, batch)
    assert "hook" not in vars(maple)  # the recording hook is removed again
    with torch.no_grad():
        assert torch.equal(maple(batch), before)


def test_input_dependence_separates_parameter_and_data_coupling(tiny_clip, batch, others):
    maple = I.input_dependence(create_learner("maple", tiny_clip, NAMES, seed=0), batch, others)
    assert maple == {
        "vision_across_images": 0.0,
        "text_across_classes": 0.0,
        "text_with_images": 0.0,
        "logits_with_batchmates": 0.0,
    }
    dcp = I.input_dependence(create_learner("dcp", tiny_clip, NAMES, seed=0, n_ctx=4), batch, others)
    assert dcp["vision_across_images"] == 0.0  # one fused prompt set per batch ...
    assert dcp["text_with_images"] > 0 and dcp["logits_with_batchmates"] > 0  # ... that depends on the batch
    dafe = create_learner("map_dafe", tiny_clip, NAMES, seed=0, gate_init=0.5)
    found = I.input_dependence(dafe, batch, others)
    assert found["vision_across_images"] > 0 and found["text_across_classes"] > 0  # per image, per class
    assert found["text_with_images"] == 0.0 and found["logits_with_batchmates"] < 1e-5  # no batch coupling


def test_vision_prompt_stats(tiny_clip, batch):
    rows = I.vision_prompt_stats(create_learner("maple", tiny_clip, NAMES, seed=0, depth=2), batch)
    assert [r["written"] for r in rows] == [True, True, False, False]
    assert rows[0]["spread"] == 0.0 and rows[1]["spread"] == 0.0 and rows[3]["spread"] > 0
    assert all(-1 <= r["mean_cos_patch"] <= r["max_cos_patch"] <= 1 for r in rows)
    with pytest.raises(ValueError):
        I.vision_prompt_stats(create_learner("coop", tiny_clip, NAMES, seed=0), batch)


# ----------------------------------------------------------------------------- words
class _Tok:
    decoder = {0: "zero</w>", 1: "one</w>", 2: "two</w>", 3: "three</w>"}


def test_vocabulary_scale_by_hand():
    clip = type("Clip", (), {"tokenizer": _Tok(), "text": torch.nn.Module()})()
    clip.text.token_embedding = torch.nn.Embedding(4, 2)
    with torch.no_grad():  # row 0 unused; norms 3, 4, 5; nearest-other distances 4, 3, 3
        clip.text.token_embedding.weight.copy_(torch.tensor([[0.0, 0], [3, 0], [0, 4], [3, 4]]))
    assert I.vocabulary_scale(clip) == {"word_norm": 4.0, "nearest_word_distance": 3.0}


def test_context_words_of_word_vectors_and_deep_prompts(tiny_clip):
    coop = create_learner("coop", tiny_clip, NAMES, seed=0, n_ctx=2)
    ids = [tiny_clip.tokenizer.encode(w)[0] for w in ("photo", "star")]
    with torch.no_grad():
        coop.ctx.copy_(tiny_clip.text.token_embedding.weight[ids])
    rows = I.context_words(coop)
    assert [(r["layer"], r["words"][0], r["distance"]) for r in rows] == [(0, "photo", 0.0), (0, "star", 0.0)]
    maple = I.context_words(create_learner("maple", tiny_clip, NAMES, seed=0, depth=3))
    assert sorted({r["layer"] for r in maple}) == [0, 1, 2] and len(maple) == 3 * 2
    assert len(I.words_table(rows, {"nearest_word_distance": 1.0}).data[0].cells.values) == 6


# ----------------------------------------------------------------------------- DAFE, ablation, attention
def test_dafe_gates_and_dafe_off(tiny_clip, batch):
    dafe = create_learner("map_dafe", tiny_clip, NAMES, seed=0)
    with torch.no_grad():
        dafe.text_dafe[0].gate.copy_(torch.linspace(-1, 1, tiny_clip.text_width))
    rows = I.dafe_gates(dafe, batch)
    first = rows[0]
    assert (first["tower"], first["layer"], first["gate"]) == ("text", 1, "channel")
    assert first["value"] == pytest.approx(torch.linspace(-1, 1, tiny_clip.text_width).abs().mean().item())
    assert first["max"] == pytest.approx(1.0) and first["dafe_share"] > 0
    with torch.no_grad(), I.dafe_off(dafe):
        off = dafe(batch)
    with torch.no_grad():  # a zero channel gate is X = P exactly: the same classifier as DAFE switched off
        for mod in list(dafe.text_dafe) + list(dafe.vision_dafe):
            mod.gate.zero_()
        assert torch.allclose(dafe(batch), off, atol=1e-6)
    convex = I.dafe_gates(create_learner("map_dafe", tiny_clip, NAMES, seed=0, gate="convex", gate_init=0.3))
    assert convex[0]["value"] == pytest.approx(0.3) and "dafe_share" not in convex[0]
    with pytest.raises(ValueError):
        I.dafe_gates(create_learner("maple", tiny_clip, NAMES, seed=0))


def test_ablate_tokens_restores_the_learner(tiny_clip, tiny_test):
    learner = create_learner("ivlp", tiny_clip, tiny_test.classnames, seed=0)
    with torch.no_grad():
        learner.vision_ctx.mul_(200)  # large enough to matter
    keep = learner.vision_ctx.detach().clone()
    rows = I.ablate_tokens(learner, tiny_test, "vision_ctx")
    assert [r["token"] for r in rows] == [0, 1, 2]
    assert rows[0]["accuracy"] == evaluate(learner, tiny_test)["accuracy"] and rows[0]["delta_accuracy"] == 0.0
    assert any(r["delta_true_logit"] != 0 for r in rows[1:])
    assert torch.equal(learner.vision_ctx, keep)
    assert len(I.ablation_figure({"vision_ctx": rows}, {"vision_ctx": torch.tensor([0.7, 0.3])}).data) == 2
    with pytest.raises(ValueError, match="no parameter"):
        I.ablate_tokens(learner, tiny_test, "nope")


def test_attention_received_by_hand():
    w = {
        "vision": [torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.5, 0.5]])],
        "text": [torch.tensor([[0.2, 0.8], [0.2, 0.8]])],
    }
    got = I.attention_received(w)
    assert torch.allclose(got["vision_ctx"], torch.tensor([0.5, 0.5]))  # column means: (0.75, 0.25), (0.25, 0.75)
    assert torch.allclose(got["ctx"], torch.tensor([0.2, 0.8]))


def test_batch_sensitivity_only_for_batch_coupling(tiny_clip, tiny_test):
    maple = I.batch_sensitivity(create_learner("maple", tiny_clip, tiny_test.classnames, seed=0), tiny_test, (1, 5))
    assert maple[1] == maple[5]
    assert set(
        I.batch_sensitivity(create_learner("dcp", tiny_clip, tiny_test.classnames, seed=0, n_ctx=4), tiny_test, (1, 15))
    ) == {1, 15}


# ----------------------------------------------------------------------------- failures
def test_misclassified_are_the_mistakes_most_confident_first(tiny_clip, tiny_test):
    learner = create_learner("coop", tiny_clip, tiny_test.classnames, seed=0, n_ctx=2)
    rows = I.misclassified(learner, tiny_test, n=100)
    ev = evaluate(learner, tiny_test)
    assert len(rows) == ev["n"] - sum(ev["confusion"][i][i] for i in range(len(ev["confusion"])))
    assert all(r["true"] != r["predicted"] and r["confidence"] >= r["true_prob"] for r in rows)
    assert [r["confidence"] for r in rows] == sorted((r["confidence"] for r in rows), reverse=True)
    assert all(tiny_test.items[r["index"]].classname == r["true"] for r in rows)
    assert len(I.misclassified(learner, tiny_test, n=2)) == min(2, len(rows))
    fig = I.gallery_figure(tiny_test, rows[:4], cols=2)
    assert len(fig.data) == len(rows[:4])
    empty = I.gallery_figure(tiny_test, [])
    assert empty.layout.title.text == "no mistakes" and empty.data[0].cells.values[0][0].startswith("none on")


def test_failure_table_rows_per_test_set():
    ev = {"accuracy": 50.0, "per_class_accuracy": {"a": 62.5, "b": 57.1, "c": 14.3}, "confusion": CONFUSION}
    tests = {k: type("D", (), {"classnames": ["a", "b", "c"]})() for k in ("base", "shapes-sketch")}
    result = type("R", (), {"evaluations": {"base": ev, "shapes-sketch": ev}, "tests": tests})()
    cells = I.failure_table(result, k=1).data[0].cells.values
    assert cells[0] == ["base", "shapes-sketch"] and cells[2][0] == "c (14 %)" and cells[3][0] == "c → b ×6"
