"""CoCoOp: parity with the official per-image loop (logits, gradients), conditional text, widths."""

import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES
from tests.learners import official_reference as ref


def official_shapes(clip, m=4):
    e, h, dt = clip.embed_dim, clip.embed_dim // 16, clip.text_width
    return {
        "ctx": (m, dt),
        "meta_net.linear1.weight": (h, e),
        "meta_net.linear1.bias": (h,),
        "meta_net.linear2.weight": (dt, h),
        "meta_net.linear2.bias": (dt,),
    }


def official_logits(clip, images, sd):
    """CustomCLIP.forward of the official CoCoOp: one text pass per image."""
    model = clip.model
    img = ref.image_features(model, images)
    img = img / img.norm(dim=-1, keepdim=True)
    h = F.linear(
        F.relu(F.linear(img, sd["meta_net.linear1.weight"], sd["meta_net.linear1.bias"])),
        sd["meta_net.linear2.weight"],
        sd["meta_net.linear2.bias"],
    )  # (B, Dt)
    rows = []
    for f_b, pi_b in zip(img, h, strict=True):
        prompts, tokens = ref.prompt_embeddings(
            model, clip.tokenizer, "a photo of a", CLASSNAMES, sd["ctx"] + pi_b, sd["ctx"].shape[0]
        )
        rows.append(ref.logits(model, f_b[None], ref.text_features(model, prompts, tokens))[0])
    return torch.stack(rows)  # (B, C)


def test_matches_official_loop_and_gradients(tiny_clip, images):
    learner = create_learner("cocoop", tiny_clip, CLASSNAMES)
    sd = ref.official_dict(official_shapes(tiny_clip))  # stored without prefix, as CoCoOp checkpoints are
    learner.load_official_state_dict(sd)
    sd = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
    labels = torch.tensor([2, 0, 1])
    expected = official_logits(tiny_clip, images, sd)
    F.cross_entropy(expected, labels).backward()
    ours = learner(images)
    F.cross_entropy(ours, labels).backward()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    params = dict(learner.named_parameters())
    for name in sd:
        torch.testing.assert_close(params[name].grad, sd[name].grad, rtol=1e-4, atol=1e-6)


def test_text_is_per_image_and_logits_ignore_batch_mates(tiny_clip, images):
    learner = create_learner("cocoop", tiny_clip, CLASSNAMES).eval()
    assert learner.conditional
    with torch.no_grad():
        img, txt = learner.encode(images)
        assert txt.shape == (3, len(CLASSNAMES), tiny_clip.embed_dim)
        assert not torch.allclose(txt[0], txt[1], atol=1e-4)
        full = learner(images)
        torch.testing.assert_close(learner(images[1:2])[0], full[1], rtol=1e-5, atol=1e-5)
        other = torch.cat([images[1:2], torch.randn(2, 3, 32, 32)])
        torch.testing.assert_close(learner(other)[0], full[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="depend on the images"):
        learner.encode_text()


def test_init_and_widths(tiny_clip):
    learner = create_learner("cocoop", tiny_clip, CLASSNAMES)
    words = torch.tensor(tiny_clip.tokenizer.encode("a photo of a"))
    torch.testing.assert_close(learner.ctx.detach(), tiny_clip.token_embedding(words), rtol=0, atol=0)
    assert learner.prompts.slots[0].tolist() == [1, 2, 3, 4]
    # E → E/16 → Dt (the tiny model's E = 48 and Dt = 64 differ on purpose)
    assert learner.meta_net.linear1.weight.shape == (3, 48) and learner.meta_net.linear2.weight.shape == (64, 3)
    rand = create_learner("cocoop", tiny_clip, CLASSNAMES, ctx_init="", n_ctx=6)
    assert rand.ctx.shape == (6, 64) and rand.prompts.slots[0].tolist() == [1, 2, 3, 4, 5, 6]
