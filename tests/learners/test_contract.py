"""One contract for every registered learner (docs/design.md), on a tiny random CLIP whose
text and vision widths and depths differ."""

import pytest
import torch

from mmprompt_lab.learners import PromptLearner, create_learner, list_learners
from mmprompt_lab.learners.prompts import PromptTokens
from tests.conftest import CLASSNAMES

# Small depths so every deep method fits the tiny model (3 text / 4 vision blocks).
TINY = {
    "maple": dict(depth=3),
    "ivlp": dict(text_depth=3, vision_depth=3),
    "vpt": dict(depth=3),
    "dcp": dict(depth=2),
    "mudpt": dict(depth=3),
    "map_dafe": dict(depth=3),
}
TRAINABLE = [n for n in list_learners() if n != "zeroshot"]


def make(name, clip, classnames=CLASSNAMES, seed=0):
    torch.manual_seed(seed)
    return create_learner(name, clip, classnames, **TINY.get(name, {}))


@pytest.mark.parametrize("name", list_learners())
def test_forward_shape_and_finite(name, tiny_clip, images):
    logits = make(name, tiny_clip)(images)
    assert logits.shape == (3, len(CLASSNAMES))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TRAINABLE)
def test_step_touches_only_prompts_and_backbone_is_bit_identical(name, tiny_clip, images):
    learner = make(name, tiny_clip)
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    params = learner.trainable_parameters()
    assert params and all(not p.requires_grad for p in tiny_clip.parameters())
    learner.train()
    assert not tiny_clip.model.training  # the backbone stays in eval mode
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(learner(images), torch.tensor([0, 1, 2]))
    loss.backward()
    dead = [n for n, p in learner.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not dead, f"trainable tensors without gradient: {dead}"
    assert all(p.grad is None for p in tiny_clip.parameters())
    opt.step()
    after = tiny_clip.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", list_learners())
def test_deterministic_construction(name, tiny_clip, images):
    a, b = make(name, tiny_clip, seed=3), make(name, tiny_clip, seed=3)
    for (ka, va), (kb, vb) in zip(a.learner_state_dict().items(), b.learner_state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(images), b(images))


@pytest.mark.parametrize("name", TRAINABLE)
def test_state_round_trip(name, tiny_clip, images):
    a, b = make(name, tiny_clip, seed=1), make(name, tiny_clip, seed=2)
    a.eval(), b.eval()
    with torch.no_grad():
        for p in b.trainable_parameters():  # word-initialised learners start equal whatever the seed
            p.add_(torch.randn_like(p) * 0.1)
        assert not torch.allclose(a(images), b(images))
        b.load_learner_state_dict(a.learner_state_dict())
        torch.testing.assert_close(a(images), b(images), rtol=0, atol=0)
    assert not any(k.startswith("clip.") for k in a.learner_state_dict())


@pytest.mark.parametrize("name", TRAINABLE)
def test_official_state_dict_import(name, tiny_clip, images):
    a, b = make(name, tiny_clip, seed=1), make(name, tiny_clip, seed=2)
    ours = dict(a.named_parameters())
    official = {off: ours[mine].detach().clone() for off, mine in a.official_names().items()}
    assert official, f"{name} documents no official parameter names"
    # released checkpoints may store the prompt learner alone (no prefix) and carry class buffers
    official = {k.removeprefix("prompt_learner."): v for k, v in official.items()}  # only a leading prefix
    official["prompt_learner.token_prefix"] = torch.zeros(1)
    ignored = b.load_official_state_dict(official)
    assert ignored == ["prompt_learner.token_prefix"]
    a.eval(), b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(images), b(images), rtol=0, atol=0)
    with pytest.raises(ValueError, match="lacks official tensors"):
        b.load_official_state_dict({})


@pytest.mark.parametrize("name", list_learners())
def test_base_to_novel_rebuild(name, tiny_clip, images):
    learner = make(name, tiny_clip)
    state = {k: v.clone() for k, v in learner.learner_state_dict().items()}
    learner.set_classnames(["triangle", "blue heart"])
    learner.eval()
    assert learner(images).shape == (3, 2)
    assert all(torch.equal(state[k], v) for k, v in learner.learner_state_dict().items())
    with pytest.raises(ValueError, match="empty"):
        learner.set_classnames([])


@pytest.mark.parametrize("name", list_learners())
def test_cached_text_features_match(name, tiny_clip, images):
    learner = make(name, tiny_clip).eval()
    if learner.conditional:
        pytest.skip(f"{name} text depends on the images")
    with torch.no_grad():
        torch.testing.assert_close(learner(images, text_features=learner.encode_text()), learner(images))


def test_unknown_method_and_option(tiny_clip):
    with pytest.raises(ValueError, match="Did you mean maple"):
        create_learner("mapel", tiny_clip, CLASSNAMES)
    with pytest.raises(ValueError, match="Did you mean 'n_ctx'"):
        create_learner("coop", tiny_clip, CLASSNAMES, n_cxt=4)
    with pytest.raises(ValueError, match="empty"):
        create_learner("coop", tiny_clip, [])


def test_wrong_image_size(tiny_clip):
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        make("coop", tiny_clip)(torch.randn(2, 3, 224, 224))


# ---------------------------------------------------------------------------- declared capabilities
CAPABILITY_CASES = [(n, {}) for n in list_learners()] + [("ivlp", dict(vision_depth=0)), ("ivlp", dict(n_ctx_vision=0))]


def _grads(output, params):
    """Gradients of output.sum() w.r.t. params; None where it does not depend on them."""
    if not output.requires_grad:
        return [None] * len(params)
    return torch.autograd.grad(output.sum(), params, allow_unused=True)


def _depends(grads) -> list[bool]:
    return [g is not None and bool(g.abs().sum() > 0) for g in grads]


@pytest.mark.parametrize("name,overrides", CAPABILITY_CASES)
def test_declared_capabilities_are_true(name, overrides, tiny_clip, images):
    learner = (
        make(name, tiny_clip)
        if not overrides
        else create_learner(name, tiny_clip, CLASSNAMES, **{**TINY.get(name, {}), **overrides})
    )
    assert learner.has_text_prompts == isinstance(getattr(learner, "prompts", None), PromptTokens)
    assert learner.records_cross_attention == any(hasattr(m, "record") for m in learner.modules())
    assert learner.extra_loss_terms == (type(learner).training_loss is not PromptLearner.training_loss)
    state = learner.begin_pass()
    tokens = learner.vision_input(images, state).shape[1]
    assert learner.has_vision_prompts == (tokens > 1 + tiny_clip.num_patches)
    if learner.has_text_prompts and not learner.image_conditioned_text:
        emb, eot = learner.text_prompts(state)
        assert emb.shape == (len(CLASSNAMES), tiny_clip.context_length, tiny_clip.text_width)
    if learner.image_conditioned_text:
        assert learner.conditional and learner.couples_towers
    params = learner.trainable_parameters()
    if learner.conditional:  # text features depend on the images: the towers are coupled by definition
        assert learner.couples_towers
    elif params:
        both = [
            a and b
            for a, b in zip(
                _depends(_grads(learner.encode_image(images), params)),
                _depends(_grads(learner.encode_text(), params)),
                strict=True,
            )
        ]
        assert any(both) == learner.couples_towers, "couples_towers disagrees with the gradients"
    else:
        assert not learner.couples_towers


@pytest.mark.parametrize("name", list_learners())
def test_no_tensors_kept_between_calls(name, tiny_clip, images):
    """Per-pass values are passed through the pass state, never stashed on the learner: after a
    training forward, no module of the learner holds a tensor outside its parameters and buffers."""
    learner = make(name, tiny_clip).train()
    loss, _ = learner(images, labels=torch.tensor([0, 1, 2]))
    if loss.requires_grad:  # zeroshot has nothing to train
        loss.backward()

    def tensors(value):
        if isinstance(value, torch.Tensor):
            return True
        if isinstance(value, (list, tuple)):
            return any(tensors(v) for v in value)
        if isinstance(value, dict):
            return any(tensors(v) for v in value.values())
        return False

    stashed = [
        (mod_name, key)
        for mod_name, module in learner.named_modules()
        if not mod_name.startswith("clip")
        for key, value in vars(module).items()
        if key not in ("_parameters", "_buffers", "_modules") and tensors(value)
    ]
    assert not stashed, f"tensors kept on the learner between calls: {stashed}"


@pytest.mark.parametrize("name", TRAINABLE)
def test_forward_with_labels_is_the_training_loss(name, tiny_clip, images):
    """The engine's entry point `learner(images, labels=...)` works for every learner (one DDP entry)."""
    learner = make(name, tiny_clip).eval()
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        loss, logits = learner(images, labels=labels)
        torch.testing.assert_close(logits, learner(images), rtol=0, atol=0)
    assert loss.ndim == 0 and torch.isfinite(loss)
