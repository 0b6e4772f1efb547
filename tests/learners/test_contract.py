"""One contract for every registered learner (STYLE.md rule 14), on a tiny random CLIP whose
text and vision widths and depths differ."""
import pytest
import torch

from mmprompt_lab.learners import create_learner, list_learners
from tests.conftest import CLASSNAMES

# Small depths so every deep method fits the tiny model (3 text / 4 vision blocks).
TINY = {"maple": dict(depth=3), "ivlp": dict(text_depth=3, vision_depth=3), "vpt": dict(depth=3),
        "dcp": dict(depth=2), "mudpt": dict(depth=3), "map_dafe": dict(depth=3)}
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
    for (ka, va), (kb, vb) in zip(a.learner_state_dict().items(), b.learner_state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(images), b(images))


@pytest.mark.parametrize("name", TRAINABLE)
def test_state_round_trip(name, tiny_clip, images):
    a, b = make(name, tiny_clip, seed=1), make(name, tiny_clip, seed=2)
    a.eval(), b.eval()
    with torch.no_grad():
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
