"""Gradient-weighted attention relevancy: the traced block equals the block, every learner is explained
through its own forward without being changed, and the maps pass a deletion test on ToyCLIP."""

import importlib

import pytest
import torch

import mmprompt_lab as mpl
from mmprompt_lab.experiment import ExperimentSpec, run_experiment
from mmprompt_lab.learners import create_learner, list_learners
from tests.conftest import CLASSNAMES

R = importlib.import_module("mmprompt_lab.analysis.relevancy")  # `mmprompt_lab.analysis.relevancy` is the function


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.randn(3, 3, 32, 32)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the traced block
@pytest.mark.parametrize("tower", ["vision", "text"])
def test_traced_block_equals_the_block(tiny_clip, tower):
    torch.manual_seed(1)
    blocks = tiny_clip.vision_blocks if tower == "vision" else tiny_clip.text_blocks
    width = tiny_clip.vision_width if tower == "vision" else tiny_clip.text_width
    x = torch.randn(2, 11, width)  # (N, T, D)
    mask = tiny_clip.text.attn_mask[:11, :11] if tower == "text" else None
    for block in blocks:
        with torch.no_grad():
            plain = block(x, attn_mask=mask)
        with R.tracing([block]) as trace:
            traced = block(x, attn_mask=mask)
        torch.testing.assert_close(traced, plain, rtol=0, atol=1e-6)
        probs = trace.probs[0]  # (N, H, T, T)
        h = block.ln_1(x)
        _, reference = block.attn(
            h, h, h, need_weights=True, average_attn_weights=False, attn_mask=None if mask is None else mask.to(h.dtype)
        )
        torch.testing.assert_close(probs, reference, rtol=0, atol=1e-6)
        assert torch.equal(trace.inputs[0], x) and torch.equal(trace.outputs[0], traced.detach())
        if tower == "text":  # causal: nothing attends to later tokens
            assert torch.all(torch.triu(probs, diagonal=1) == 0)
        assert not block.attn._forward_hooks and not block._forward_hooks  # hooks removed


def test_propagate_restarts_written_tokens():
    t = 3
    eye = torch.eye(t).expand(1, 1, t, t)  # (N, H, T, T): every token attends to itself
    x0, x1 = torch.zeros(1, t, 2), torch.zeros(1, t, 2)
    x1_in = x1.clone()
    x1_in[0, 2] = 5.0  # token 2 is written between blocks 0 and 1 (a deep prompt)
    trace = R._Trace([eye, eye], [x0, x1_in], [x1, x1])
    r = R.propagate(trace, [torch.ones(1, 1, t, t)] * 2)
    # Ā = I in both blocks: R doubles per block, except the written token's row, which restarts at e_2
    assert torch.allclose(r[0], torch.diag(torch.tensor([4.0, 4.0, 2.0])))


# ----------------------------------------------------------------------------- every learner
@pytest.mark.parametrize("name", list_learners())
def test_every_learner_is_explained_through_its_own_forward(name, tiny_clip, batch):
    learner = create_learner(name, tiny_clip, CLASSNAMES, seed=0)
    learner.train()
    with torch.no_grad():
        learner.eval()
        expected = learner(batch)  # (B, C)
        learner.train()
    backbone, own = _state(tiny_clip), _state(learner)
    with torch.no_grad():  # relevancy turns gradients on for itself
        out = R.explain(learner, batch)
    g = int(tiny_clip.num_patches**0.5)
    assert out.maps.shape == (3, g, g) and torch.isfinite(out.maps).all() and (out.maps >= 0).all()
    assert out.maps.sum() > 0
    n = out.matrix.shape[-1] - 1 - tiny_clip.num_patches  # visual prompt tokens
    assert out.prompt_relevancy.shape == (3, n) and (n > 0) == learner.has_vision_prompts
    assert (out.prompt_relevancy >= 0).all()
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-4)  # the learner's own logits
    assert torch.equal(out.target, expected.argmax(-1))
    # nothing changed: frozen backbone bit-identical, learner state and mode kept, no grads, no hooks
    assert _same(backbone, _state(tiny_clip)) and _same(own, _state(learner))
    assert learner.training and not tiny_clip.model.training
    assert all(p.grad is None for p in learner.parameters())
    assert not any(b.attn._forward_hooks or b._forward_hooks for b in tiny_clip.vision_blocks + tiny_clip.text_blocks)

    template = None if learner.has_text_prompts else "a photo of a {}."
    text = R.text_relevancy(learner, 2, batch[:2], template=template)  # class "sea_lion": two words
    assert len(text.labels) == len(text.kinds) == len(text.relevancy)
    assert text.kinds[0] == "sos" and text.kinds[-1] == "eot" and text.kinds.count("class") == 2
    assert ("context" in text.kinds) == learner.has_text_prompts
    assert torch.isfinite(text.relevancy).all() and (text.relevancy >= -1e-6).all()
    assert all(p.grad is None for p in learner.parameters()) and _same(backbone, _state(tiny_clip))
    assert getattr(learner, "shared_prefix", True)  # the shared-prefix switch is restored after the plain pass


@pytest.mark.parametrize("name", ["maple", "cocoop"])
def test_batch_equals_one_image_at_a_time(name, tiny_clip, batch):
    """Images do not influence each other's relevancy, for shared and for image-conditioned text."""
    learner = create_learner(name, tiny_clip, CLASSNAMES, seed=0)
    together = R.relevancy(learner, batch, target=1)
    alone = torch.cat([R.relevancy(learner, batch[i : i + 1], target=1) for i in range(len(batch))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-6)


def test_target_choice_and_errors(tiny_clip, batch):
    learner = create_learner("vpt", tiny_clip, CLASSNAMES, seed=0)
    a, b = R.relevancy(learner, batch, target=0), R.relevancy(learner, batch, target=torch.tensor([0, 0, 0]))
    assert torch.equal(a, b) and not torch.equal(a, R.relevancy(learner, batch, target=3))
    with pytest.raises(ValueError, match="outside the learner's 4 classes"):
        R.relevancy(learner, batch, target=4)
    assert not any(b.attn._forward_hooks for b in tiny_clip.vision_blocks)  # removed after the error
    with pytest.raises(ValueError, match="no learnable text prompts"):
        R.text_relevancy(learner, 0, batch)


def test_text_kinds_of_a_coop_prompt(tiny_clip, batch):
    learner = create_learner("coop", tiny_clip, CLASSNAMES, seed=0, n_ctx=4)
    text = R.text_relevancy(learner, 1, batch)  # "red star"
    assert text.labels == ["SOS", "ctx1", "ctx2", "ctx3", "ctx4", "red", "star", ".", "EOT"]
    assert text.kinds == ["sos"] + ["context"] * 4 + ["class", "class", "template", "eot"]
    assert 0 <= text.share("context") <= 1


# ----------------------------------------------------------------------------- deletion test, ToyCLIP
@pytest.fixture(scope="module")
def toy():
    clip = mpl.load_clip("toyclip")
    return clip, mpl.load_dataset("toyworld/shapes", split="test")


def _check_deletion(d):
    auc = d["auc"]
    assert auc["relevancy"] < 0.75 * auc["random"], auc  # measured ≈ 0.5–0.6 × random
    # at a quarter of the patches deleted, the most relevant ones hurt more than random ones
    q = d["fractions"].index(0.25)
    assert d["curves"]["relevancy"][q] < d["curves"]["random"][q]
    assert d["curves"]["random"][0] == d["curves"]["relevancy"][0] == d["start"]


def test_deletion_zero_shot(toy):
    clip, test = toy
    learner = create_learner("zeroshot", clip, test.classnames, templates=(test.template,))
    d = R.deletion_curve(learner, test, n=8, steps=8, draws=5, seed=0, maps=("relevancy", "attention"))
    _check_deletion(d)
    assert d["n"] == 8 and len(d["fractions"]) == 9 and d["prompt_share"] == 0.0


def test_deletion_tuned_vpt(toy):
    clip, test = toy
    spec = ExperimentSpec(
        "vpt", "toyworld/shapes", shots=2, epochs=2, test_per_class=2, base2new=False, zeroshot_reference=False
    )
    learner = run_experiment(spec, clip).learner
    before = _state(learner)
    d = R.deletion_curve(learner, test, n=8, steps=8, draws=5, seed=0)
    _check_deletion(d)
    assert 0 < d["prompt_share"] < 1  # the visual prompts carry part of CLS's relevancy
    assert _same(before, _state(learner))
    again = R.deletion_curve(learner, test, n=8, steps=8, draws=5, seed=0)
    assert again["curves"] == d["curves"]  # seeded


# ----------------------------------------------------------------------------- figures
def test_figures(toy):
    clip, test = toy
    zs = create_learner("zeroshot", clip, test.classnames, templates=(test.template,))
    coop = create_learner("coop", clip, test.classnames, seed=0)
    fig = R.relevancy_figure({"zero-shot": zs, "CoOp": coop}, test, n=2, maps=("relevancy", "rollout"))
    assert len(fig.data) == 2 * (1 + 2 * 4)  # per image: the image, then image + heatmap per column
    d = R.deletion_curve(zs, test, n=2, steps=4, draws=1)
    assert len(R.deletion_figure({"zero-shot": d, "again": d}).data) == 4
    texts = R.text_relevancies({"zero-shot": zs, "CoOp": coop}, test, class_index=0, n=2)
    assert [t.method for t in texts] == ["zero-shot", "CoOp"] and texts[0].classname == test.classnames[0]
    fig = R.text_relevancy_figure(texts)
    assert {t.name for t in fig.data} == {"sos", "context", "class", "template", "eot"}
    shift = R.compare_relevancy({"zero-shot": zs, "CoOp": coop}, test, n=2)
    assert shift["zero-shot"] == {"overlap": 1.0, "cosine": 1.0, "prompt_share": 0.0}
    assert 0 <= shift["CoOp"]["overlap"] <= 1 and shift["CoOp"]["prompt_share"] == 0.0
