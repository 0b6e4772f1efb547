"""KgCoOp: the knowledge-guided term against hand computations (docs/methods.md §11)."""

import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.data import load_dataset
from mmprompt_lab.experiment import ExperimentSpec, hand_template_options, scorer_for
from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES

LABELS = torch.tensor([0, 1, 3])


def hand_features(clip, template):
    """ŵ^clip by hand, through the unmodified open_clip model: (C, E)."""
    texts = [template.format(c.replace("_", " ")) for c in CLASSNAMES]
    with torch.no_grad():
        return F.normalize(clip.model.encode_text(clip.tokenize(texts)), dim=-1)


def test_regulariser_vanishes_when_the_context_is_the_hand_template(tiny_clip):
    # ctx = embeddings of "a photo of a", class at the end: the learned prompt IS the hand prompt
    for kg_loss in ("cosine", "l2"):
        learner = create_learner("kgcoop", tiny_clip, CLASSNAMES, templates=("a photo of a {}.",), kg_loss=kg_loss)
        with torch.no_grad():
            assert learner.kg_term(learner.encode_text()).abs() < 1e-6
    other = create_learner("kgcoop", tiny_clip, CLASSNAMES, templates=("a photo of the {}.",))
    with torch.no_grad():
        assert other.kg_term(other.encode_text()) > 1e-4  # another template: the pull is not zero


@pytest.mark.parametrize("kg_loss", ["cosine", "l2"])
def test_terms_equal_a_hand_computation(kg_loss, tiny_clip, images):
    template = "a photo of the {} shape."
    learner = create_learner(
        "kgcoop", tiny_clip, CLASSNAMES, seed=1, ctx_init="", templates=(template,), kg_loss=kg_loss
    ).eval()
    with torch.no_grad():
        terms, logits = learner.loss_terms(images, LABELS)
        w = F.normalize(learner.encode_text(), dim=-1)  # (C, E)
        w_clip = hand_features(tiny_clip, template)
        kg = 1 - (w * w_clip).sum(-1).mean() if kg_loss == "cosine" else ((w - w_clip) ** 2).sum(-1).mean()
        torch.testing.assert_close(logits, learner(images), rtol=0, atol=0)
        torch.testing.assert_close(terms["ce"], F.cross_entropy(logits, LABELS))
        torch.testing.assert_close(terms["kg"], 8.0 * kg, rtol=1e-5, atol=1e-7)
        loss, _ = learner(images, labels=LABELS)
        torch.testing.assert_close(loss, terms["ce"] + terms["kg"])
        # the paper's squared distance is twice the released cosine form for unit vectors
        torch.testing.assert_close(((w - w_clip) ** 2).sum(-1).mean(), 2 * (1 - (w * w_clip).sum(-1).mean()))


def test_regulariser_gradient_reaches_only_ctx(tiny_clip, images):
    learner = create_learner("kgcoop", tiny_clip, CLASSNAMES, seed=1, ctx_init="").train()
    terms, _ = learner.loss_terms(images, LABELS)
    terms["kg"].backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert [n for n, p in learner.named_parameters() if p.requires_grad] == ["ctx"]
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert not learner.fixed_text.requires_grad  # the hand-crafted reference is a constant


def test_one_text_pass_per_step_and_the_reference_is_cached(tiny_clip, images, monkeypatch):
    learner = create_learner("kgcoop", tiny_clip, CLASSNAMES, seed=1, ctx_init="")
    learner(images, labels=LABELS)  # the first step computes and caches ŵ^clip
    cached = learner.fixed_text
    calls = []  # every text pass starts from the layer-0 prompts
    text_prompts = learner.text_prompts
    monkeypatch.setattr(learner, "text_prompts", lambda state: calls.append(1) or text_prompts(state))
    learner(images, labels=LABELS)
    assert len(calls) == 1, "logits and L_kg must share one text pass"
    assert learner.fixed_text is cached
    learner.set_classnames(["triangle", "blue heart"])  # another class set: rebuilt for it
    assert learner.fixed_text is None
    assert learner(images, labels=torch.tensor([0, 1, 1]))[1].shape == (3, 2) and learner.fixed_text.shape[0] == 2


def test_the_pipeline_passes_the_datasets_template():
    train = load_dataset("toyworld/patterns", split="train", shots=1, seed=1)
    assert hand_template_options("kgcoop", train) == {"templates": ("a photo of a {} shape.",)}


@pytest.mark.parametrize("method", ["kgcoop", "promptsrc"])
def test_scoring_keeps_the_trained_prompts(method, tiny_clip):
    """The pipeline rebuilds learners with a `templates` field for each test set's template; the
    rebuilt scorer must carry the trained state and config, not a fresh initialisation."""
    test = load_dataset("toyworld/patterns", split="test", seed=1)
    learner = (
        create_learner(method, tiny_clip, test.classnames, seed=1, n_ctx_text=2)
        if method == "promptsrc"
        else create_learner(method, tiny_clip, test.classnames, seed=1, ctx_init="", n_ctx=3)
    )
    with torch.no_grad():
        for p in learner.trainable_parameters():
            p.add_(1.0)  # "trained"
    scorer = scorer_for(learner, test, ExperimentSpec(method, "toyworld/patterns"))
    assert scorer.config.templates == (test.template,)
    for (k, a), (k2, b) in zip(learner.learner_state_dict().items(), scorer.learner_state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
