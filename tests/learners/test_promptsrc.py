"""PromptSRC: the self-regulating terms against hand computations, gradients, Gaussian prompt
aggregation after `fit`, and bit-identical resume (docs/methods.md §12)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.backbone import load_clip
from mmprompt_lab.engine import fit
from mmprompt_lab.learners import create_learner
from mmprompt_lab.learners.promptsrc import gpa_weights
from mmprompt_lab.learners.templates import IMAGENET_TEMPLATES, TOYWORLD_TEMPLATES
from tests.conftest import CLASSNAMES
from tests.engine.test_engine import COLOURS, blobs  # four coloured squares, one class each

LABELS = torch.tensor([0, 1, 3])
TEXT = ("ctx", "deep_text")  # prompt tensors of the text tower (name prefixes)


def make(tiny_clip, seed=1, **overrides):
    return create_learner("promptsrc", tiny_clip, CLASSNAMES, seed=seed, **overrides)


def hand_reference(clip, templates):
    """ŵ⁰ by hand through the unmodified open_clip model: normalise(mean_k g⁰(template_k(c))), (C, E)."""
    with torch.no_grad():
        feats = [
            clip.model.encode_text(clip.tokenize([t.format(c.replace("_", " ")) for c in CLASSNAMES]))
            for t in templates
        ]  # K × (C, E)
    return F.normalize(torch.stack(feats).mean(0), dim=-1), torch.stack(feats)


def test_terms_equal_a_hand_computation(tiny_clip, images):
    learner = make(tiny_clip).eval()
    assert learner.config.ensemble == "imagenet" and learner.ensemble_templates() == IMAGENET_TEMPLATES
    with torch.no_grad():
        terms, z = learner.loss_terms(images, LABELS)
        f = F.normalize(learner.encode_image(images), dim=-1)  # (B, E)
        w = F.normalize(learner.encode_text(), dim=-1)  # (C, E)
        f0 = F.normalize(tiny_clip.model.encode_image(images), dim=-1)  # the plain open_clip image tower
        w0, per_template = hand_reference(tiny_clip, IMAGENET_TEMPLATES)
        s = tiny_clip.model.logit_scale.exp()
        z0 = s * f0 @ w0.t()  # (B, C)
        p0, log_p0, log_p = z0.softmax(-1), z0.log_softmax(-1), z.log_softmax(-1)
        expected = {
            "ce": F.cross_entropy(s * f @ w.t(), LABELS),
            "text": 25 * (w - w0).abs().mean(),
            "image": 10 * (f - f0).abs().mean(),
            "logits": (p0 * (log_p0 - log_p)).sum() / (3 * len(CLASSNAMES)),
        }
        torch.testing.assert_close(z, learner(images), rtol=0, atol=0)
        for key, value in expected.items():
            torch.testing.assert_close(terms[key], value, rtol=1e-4, atol=1e-6, msg=key)
        loss, _ = learner(images, labels=LABELS)
        torch.testing.assert_close(loss, sum(terms.values()))
        # the checks can tell the official forms from their near neighbours
        w0_normalised_first = F.normalize(F.normalize(per_template, dim=-1).mean(0), dim=-1)
        assert (learner.frozen_text_features() - w0_normalised_first).abs().max() > 1e-5
        reverse_kl = (log_p.exp() * (log_p - log_p0)).sum() / z.numel()
        assert (reverse_kl - terms["logits"]).abs() > 1e-4
        assert terms["text"] > 0 and terms["image"] > 0 and terms["logits"] > 0


def test_each_term_reaches_only_its_own_prompts(tiny_clip, images):
    learner = make(tiny_clip).train()
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    assert names and all(n.startswith(TEXT + ("vision_ctx", "deep_vision")) for n in names)
    params = [p for n, p in learner.named_parameters() if p.requires_grad]
    terms, _ = learner.loss_terms(images, LABELS)
    text_side = [n.startswith(TEXT) for n in names]
    for key, reaches_text, reaches_vision in (
        ("text", True, False),
        ("image", False, True),
        ("logits", True, True),
        ("ce", True, True),
    ):
        grads = torch.autograd.grad(terms[key], params, retain_graph=True, allow_unused=True)
        moved = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        text_moved = [m for m, t in zip(moved, text_side, strict=True) if t]
        vision_moved = [m for m, t in zip(moved, text_side, strict=True) if not t]
        assert text_moved == [reaches_text] * len(text_moved), key
        assert vision_moved == [reaches_vision] * len(vision_moved), key


def test_a_step_moves_only_prompts_and_leaves_the_backbone_bit_identical(tiny_clip, images):
    learner = make(tiny_clip).train()
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    prompts = {k: v.clone() for k, v in learner.learner_state_dict().items()}
    opt = torch.optim.SGD(learner.trainable_parameters(), lr=0.1, momentum=0.9)
    loss, _ = learner(images, labels=LABELS)
    loss.backward()
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.trainable_parameters())
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in tiny_clip.state_dict().items())
    after = learner.learner_state_dict()
    assert all(not torch.equal(prompts[n], after[n]) for n, p in learner.named_parameters() if p.requires_grad)
    assert torch.equal(after["gpa_sum"], prompts["gpa_sum"])  # GPA moves only at epoch ends


def test_ensembles_and_the_cache(tiny_clip, images):
    own = ("a photo of the {} shape.",)
    toy = make(tiny_clip, templates=own, ensemble="toyworld")
    assert toy.ensemble_templates() == own + TOYWORLD_TEMPLATES
    assert make(tiny_clip, ensemble="toyworld").ensemble_templates() == TOYWORLD_TEMPLATES  # no duplicate
    only = make(tiny_clip, templates=own, ensemble="own")
    torch.testing.assert_close(only.frozen_text_features(), hand_reference(tiny_clip, own)[0])
    cached = only.frozen_text_features()
    assert only.frozen_text_features() is cached and not cached.requires_grad
    only.set_classnames(["triangle", "blue heart"])  # base → novel: rebuilt for the new classes
    assert only.frozen_text is None and only.frozen_text_features().shape[0] == 2
    with pytest.raises(ValueError, match="ensemble must be one of"):
        make(tiny_clip, ensemble="imagenet80")


def test_auto_ensemble_on_toyclip_is_the_toyworld_family():
    toyclip = load_clip("toyclip", device="cpu")
    learner = create_learner("promptsrc", toyclip, ["circle", "star"], templates=("a photo of a {} shape.",))
    assert learner.config.ensemble == "toyworld"  # recorded resolved, as checkpoints store it
    assert learner.ensemble_templates()[0] == "a photo of a {} shape."
    assert (learner.config.text_depth, learner.config.vision_depth) == (3, 3)


def test_gpa_weights_official_and_scaled(tiny_clip):
    e = np.arange(1, 21)
    pdf = np.exp(-0.5 * (e - 15.0) ** 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(gpa_weights(20, 15, 1), pdf / pdf.sum(), rtol=1e-12)
    learner = make(tiny_clip)
    assert learner.gpa_moments(20) == (15.0, 1.0)  # the official base-to-novel setting
    assert learner.gpa_moments(2) == (1.5, 0.1)
    assert gpa_weights(2, 1.5, 0.1) == [0.5, 0.5]
    assert make(tiny_clip, gpa_mean=45, gpa_std=5).gpa_moments(50) == (45, 5)
    assert abs(sum(gpa_weights(3, 40.0, 0.01)) - 1) < 1e-12  # far-off mean, narrow σ: no 0/0


# ---------------------------------------------------------------------------- GPA through fit
def _fit(tiny_clip, epochs=3, **kw):
    learner = create_learner("promptsrc", tiny_clip, list(COLOURS), seed=0, ensemble="own", gpa_mean=2.0, gpa_std=1.0)
    history = fit(learner, blobs(4), epochs=epochs, batch_size=8, lr=0.05, seed=3, progress=False, **kw)
    return learner, history


def _flat(learner):
    return torch.cat([p.detach().reshape(-1) for p in learner.trainable_parameters()]).clone()


def test_the_learner_after_fit_is_the_gaussian_weighted_mean_of_the_epochs(tiny_clip):
    learner = create_learner("promptsrc", tiny_clip, list(COLOURS), seed=0, ensemble="own", gpa_mean=2.0, gpa_std=1.0)
    per_epoch = []  # θ_e after the last step of each epoch, before any aggregation
    fit(
        learner,
        blobs(),
        epochs=3,
        batch_size=8,
        lr=0.05,
        seed=3,
        progress=False,
        on_step=lambda s: per_epoch.append(_flat(learner)) if s.step % s.steps_per_epoch == 0 else None,
    )
    assert len(per_epoch) == 3 and not torch.equal(per_epoch[1], per_epoch[2])
    e = np.arange(1, 4)
    g = np.exp(-0.5 * (e - 2.0) ** 2)
    weights = g / g.sum()  # hand-computed g(e) / Σ g(k)
    expected = sum(float(w) * theta for w, theta in zip(weights, per_epoch, strict=True))
    torch.testing.assert_close(_flat(learner), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(learner.gpa_sum, expected, rtol=1e-6, atol=1e-7)
    assert (_flat(learner) - per_epoch[-1]).abs().max() > 1e-4  # not simply the last epoch's prompts


def test_without_gpa_the_last_epoch_is_kept(tiny_clip):
    last = []
    learner = create_learner("promptsrc", tiny_clip, list(COLOURS), seed=0, ensemble="own", gpa=False)
    fit(
        learner,
        blobs(),
        epochs=2,
        batch_size=8,
        lr=0.05,
        seed=3,
        progress=False,
        on_step=lambda s: last.append(_flat(learner)),
    )
    assert torch.equal(_flat(learner), last[-1]) and not learner.gpa_sum.any()


def test_resume_is_bit_identical(tiny_clip, tmp_path):
    full, h_full = _fit(tiny_clip)
    # stopped in the middle of epoch 2 (2 steps per epoch): only epoch 1, with its GPA sum, is saved
    _fit(tiny_clip, checkpoint_dir=tmp_path, on_step=lambda s: setattr(s, "stop", s.step == 3))
    assert json.loads((tmp_path / "train_state.json").read_text())["epochs_done"] == 1
    resumed, h_res = _fit(tiny_clip, checkpoint_dir=tmp_path)
    assert h_res.step_loss == h_full.step_loss
    a, b = full.learner_state_dict(), resumed.learner_state_dict()
    assert list(a) == list(b) and "gpa_sum" in a
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
