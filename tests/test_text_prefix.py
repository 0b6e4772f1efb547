"""The shared-prefix text pass equals the plain pass (docs/design.md §7): logits, loss and every
prompt gradient, on ToyCLIP and a random-weight ViT-B/16; it is taken where it applies, not where it
does not, and can be switched off."""

import open_clip
import pytest
import torch

import mmprompt_lab as mpl
from mmprompt_lab import text_prefix
from mmprompt_lab.backbone import FrozenCLIP
from mmprompt_lab.learners import base, create_learner
from mmprompt_lab.learners.coop import CoOp
from mmprompt_lab.learners.prompts import replace_slots

NAMES = ["triangle", "red square", "sea_lion", "hexagon", "red oval"]  # different lengths, a shared first word
RTOL = 1e-5

# learner → options; each takes the shared-prefix pass (class-specific positions come after a shared prefix)
SHARED = {
    "coop": {},
    "coop-middle": dict(class_token_position="middle"),
    "coop-init": dict(ctx_init="a photo of a"),
    "kgcoop": {},
    "maple": {},
    "ivlp": {},
    "promptsrc": {},
    "mudpt": {},
    "mudpt-transformer": dict(fusion="transformer"),
    "upt": {},
    "map_dafe": {},
}
PLAIN = {  # the plain pass: nothing beyond SOS is shared, or the text depends on the images
    "coop-front": dict(class_token_position="front"),
    "coop-csc": dict(csc=True),
    "cocoop": {},
    "dcp": {},
}


@pytest.fixture(scope="module")
def toyclip():
    return mpl.load_clip("toyclip", device="cpu")


@pytest.fixture
def calls(monkeypatch):
    """Counts the shared-prefix passes the learners run."""
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[1].length)
        return text_prefix.run_shared(*args, **kwargs)

    monkeypatch.setattr(base, "run_shared", spy)
    return seen


def build(key: str, clip: FrozenCLIP, options: dict, names=NAMES):
    learner = create_learner(key.split("-")[0], clip, names, seed=1, **options)
    with torch.no_grad():  # move off the initialisation (zero gates, equal word inits) so every path matters
        gen = torch.Generator().manual_seed(2)
        for p in learner.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return learner


def outputs(learner, images, labels):
    """(logits, loss, {name: grad}) from one training forward."""
    learner.train()
    loss, logits = learner(images, labels=labels)
    params = dict((n, p) for n, p in learner.named_parameters() if p.requires_grad)
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return logits.detach(), loss.detach(), dict(zip(params, grads, strict=True))


def relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def assert_same(fast, plain):
    (lf, sf, gf), (lp, sp, gp) = fast, plain
    assert relative(lf, lp) <= RTOL and relative(sf, sp) <= RTOL
    assert gf.keys() == gp.keys()
    for name in gp:
        assert (gf[name] is None) == (gp[name] is None), name
        if gp[name] is not None:
            assert relative(gf[name], gp[name]) <= RTOL, (name, relative(gf[name], gp[name]))


def compare(learner, images, labels, calls, chunk):
    learner.shared_prefix, learner.text_chunk = False, chunk
    plain = outputs(learner, images, labels)
    assert not calls
    learner.shared_prefix = True
    fast = outputs(learner, images, labels)
    assert calls, "the shared-prefix pass was not taken"
    assert_same(fast, plain)


@pytest.mark.parametrize("chunk", [None, 2])  # 2: three chunks of the five classes, checkpointed
@pytest.mark.parametrize("key", list(SHARED))
def test_shared_prefix_equals_plain_on_toyclip(key, chunk, toyclip, calls):
    torch.manual_seed(0)
    images, labels = torch.randn(3, 3, 32, 32), torch.tensor([0, 3, 4])
    compare(build(key, toyclip, SHARED[key]), images, labels, calls, chunk)


@pytest.mark.parametrize("key", ["coop", "maple"])
def test_shared_prefix_equals_plain_on_vit_b16(key, vit_b16, calls):
    torch.manual_seed(0)
    images, labels = torch.randn(2, 3, 224, 224), torch.tensor([1, 4])
    compare(build(key, vit_b16, {}), images, labels, calls, chunk=2)


@pytest.mark.parametrize("key", list(PLAIN))
def test_plain_pass_where_it_does_not_apply(key, toyclip, calls):
    torch.manual_seed(0)
    learner = build(key, toyclip, PLAIN[key])
    learner(torch.randn(2, 3, 32, 32))
    assert not calls


def test_prefix_lengths_follow_the_layout(toyclip, calls):
    images = torch.randn(1, 3, 32, 32)
    for options, expected in (
        (dict(n_ctx=4), 1 + 4),
        (dict(n_ctx=4, class_token_position="middle"), 1 + 2),
        (dict(ctx_init="a photo of a"), 1 + 4),
    ):
        calls.clear()
        create_learner("coop", toyclip, ["circle", "square"], **options)(images)
        assert calls == [expected], options
    calls.clear()  # a shared first word of the class names is shared too (the same tokens, the same states)
    create_learner("coop", toyclip, ["red circle", "red square"], n_ctx=4)(images)
    assert calls == [1 + 4 + 1]


def test_switch_off_and_attention_recording_take_the_plain_pass(toyclip, calls):
    learner = build("maple", toyclip, {})
    images = torch.randn(2, 3, 32, 32)
    learner.eval()
    with torch.no_grad():
        fast = learner(images)
        assert calls
        calls.clear()
        learner.shared_prefix = False
        plain = learner(images)
        assert not calls
        learner.shared_prefix = True
        recorded = learner.encode(images, attention={})  # records every block: the plain pass
        assert not calls
        locked = learner.encode(images)  # both towers in lockstep through the shared pass
        assert calls
    assert relative(fast, plain) <= RTOL
    for a, b in zip(locked, recorded, strict=True):
        assert relative(a, b) <= RTOL


def test_blocks_it_does_not_reproduce_keep_the_plain_pass(calls):
    clip = mpl.load_clip("toyclip", device="cpu")  # its own copy: the block is changed below
    learner = create_learner("coop", clip, NAMES, n_ctx=4)
    clip.text_blocks[1].attn.add_zero_attn = True
    learner(torch.randn(1, 3, 32, 32))
    assert not calls


def test_evaluation_text_features_equal(toyclip):
    learner = build("ivlp", toyclip, {})
    learner.eval()
    with torch.no_grad():
        fast = learner.encode_text()
        learner.shared_prefix = False
        plain = learner.encode_text()
    assert relative(fast, plain) <= RTOL


class _ClassDependentDeep(CoOp):
    """A learner that breaks the contract: before block 1 it writes a different value per class at the slots."""

    name = ""

    def layer(self, i, text, vision, state):
        if i == 1 and text is not None:
            values = torch.arange(text.shape[0], dtype=text.dtype)[:, None, None] * self.ctx  # (C, M, Dt)
            text = replace_slots(text, self.prompts.slots, values)  # (C, L', Dt)
        return text, vision


class _InPlaceDeep(CoOp):
    """Deep prompts written in place (the same for every class) before block 1."""

    name = ""

    def layer(self, i, text, vision, state):
        if i == 1 and text is not None:
            text[:, self.prompts.slots[0]] = 2 * self.ctx  # (C, M, Dt) ← (M, Dt)
        return text, vision


def test_in_place_hook_writes_are_seen(toyclip, calls):
    learner = _InPlaceDeep(toyclip, NAMES, CoOp.config_class.from_overrides(n_ctx=4))
    torch.manual_seed(0)
    compare(learner, torch.randn(2, 3, 32, 32), torch.tensor([0, 2]), calls, chunk="auto")


def test_class_dependent_prefix_writes_raise_and_can_opt_out(toyclip):
    config = CoOp.config_class.from_overrides(n_ctx=4)
    learner = _ClassDependentDeep(toyclip, ["circle", "square", "oval"], config)
    images = torch.randn(1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="class-dependent values into shared text positions"):
        learner(images)
    learner.shares_text_prefix = False  # the declared opt-out: the plain pass
    assert learner(images).shape == (1, 3)


def test_block_forward_reproduces_open_clip_blocks_with_layer_scale():
    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=32,
        quick_gelu=True,
        vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=64, head_width=32, patch_size=8, image_size=32),
        text_cfg=open_clip.CLIPTextCfg(context_length=16, width=64, heads=4, layers=2, ls_init_value=0.5),
    ).eval()
    block = model.transformer.resblocks[0]
    assert not isinstance(block.ls_1, torch.nn.Identity)
    with torch.no_grad():
        block.ls_1.gamma.uniform_(0.2, 1.5)
        x = torch.randn(3, 9, 64)
        x[:, :4] = x[:1, :4]  # the first 4 positions shared by the 3 rows
        want = block(x, attn_mask=model.attn_mask[:9, :9])  # (3, 9, 64)
        whole, _ = text_prefix.block_forward(block, x)  # (3, 9, 64)
        prefix, kv = text_prefix.block_forward(block, x[:1, :4])  # (1, 4, 64), once
        suffix, _ = text_prefix.block_forward(block, x[:, 4:], kv)  # (3, 5, 64) over the prefix's keys/values
    torch.testing.assert_close(whole, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([prefix.expand(3, -1, -1), suffix], 1), want, rtol=1e-5, atol=1e-6)
