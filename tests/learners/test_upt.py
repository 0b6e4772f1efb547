"""UPT: token layout, the mixer's paper/code semantics, vision insertion after CLS and ln_pre, and a
from-scratch re-implementation of the released MVLPT forward."""

import math

import pytest
import torch

import torch.nn.functional as F

from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES
from tests.learners.official_reference import assert_logits_and_grads_match


def make(clip, **overrides):
    torch.manual_seed(0)
    return create_learner("upt", clip, CLASSNAMES, **overrides).eval()


def test_class_words_sit_between_the_context_halves(tiny_clip):
    learner = make(tiny_clip, n_ctx=4)
    tok = tiny_clip.tokenizer
    ids = learner.prompts.tokens[2]  # "sea_lion"
    words = [tok.decoder[int(i)].replace("</w>", "") for i in ids[1 : int(learner.prompts.eot[2])]]
    assert words == ["x", "x", "sea", "lion", "x", "x", "."]
    assert learner.prompts.slots[2].tolist() == [1, 2, 5, 6]


def test_shapes_and_init(tiny_clip):
    learner = make(tiny_clip, n_ctx=4)
    j, dv, dt = tiny_clip.vision_depth, tiny_clip.vision_width, tiny_clip.text_width
    ctx, vis = learner.mix()
    assert ctx.shape == (4, dt) and vis.shape == (j, 4, dv)
    assert learner.vision_ctx.shape == (1, 4, dv) and learner.deep_vision.shape == (j - 1, 4, dv)
    patch = tiny_clip.image_size // math.isqrt(tiny_clip.num_patches)  # 8 for the tiny model
    bound = math.sqrt(6 / (3 * patch * patch + dv))
    v = torch.cat([learner.vision_ctx, learner.deep_vision])
    assert v.abs().max() <= bound and v.abs().max() > 0.9 * bound


@pytest.mark.parametrize("across", [False, True])
def test_mixer_per_token_in_code_mode_and_cross_token_in_paper_mode(tiny_clip, across):
    learner = make(tiny_clip, attend_across_tokens=across)
    with torch.no_grad():
        ctx0, vis0 = learner.mix()
        learner.ctx[0] += 1.0  # perturb one text prompt
        ctx1, vis1 = learner.mix()
    assert not torch.equal(ctx0[0], ctx1[0])
    others_same = torch.allclose(ctx0[1:], ctx1[1:], rtol=0, atol=1e-7) and torch.allclose(vis0, vis1, atol=1e-7)
    assert others_same != across


def test_vision_prompts_follow_cls_after_ln_pre_and_replace_each_layer(tiny_clip, images):
    learner = make(tiny_clip, n_ctx=2)
    with torch.no_grad():
        state = learner.begin_pass()
        x = learner.vision_input(images, state)  # (B, 1+M+P, Dv)
        plain = tiny_clip.ln_pre(tiny_clip.embed_image(images))
        vis = state["vision"]
        assert x.shape[1] == plain.shape[1] + 2
        torch.testing.assert_close(x[:, 1:3], vis[0].expand(3, -1, -1), rtol=0, atol=0)  # not normalised by ln_pre
        torch.testing.assert_close(x[:, [0, *range(3, x.shape[1])]], plain, rtol=0, atol=0)
        _, y = learner.layer(2, None, x, state)
        torch.testing.assert_close(y[:, 1:3], vis[2].expand(3, -1, -1), rtol=0, atol=0)


def test_mixer_runs_once_per_forward(tiny_clip, images):
    learner = make(tiny_clip)
    calls = []
    handle = learner.mixer.register_forward_hook(lambda *a: calls.append(1))
    learner(images)
    handle.remove()
    assert len(calls) == 1


def reference_released_forward(learner, images):
    """MVLPT (UPT setting) written directly from the released code: per-token mixer (sequence length 1),
    prompts built by concatenation, vision prompts after CLS and after ln_pre, replaced before blocks ≥ 1."""
    clip, model, m = learner.clip, learner.clip.model, learner.config.n_ctx
    mix = learner.mixer
    v = torch.cat([learner.vision_ctx, learner.deep_vision]).reshape(1, -1, clip.vision_width)
    z = torch.cat([learner.text_pre(learner.ctx[None]), learner.vision_pre(v)], dim=1)[0]  # (N, d)
    h = mix.ln_1(z)  # attention over one token: softmax = 1, output = out_proj(value)
    w_v, b_v = mix.attn.in_proj_weight[2 * z.shape[1] :], mix.attn.in_proj_bias[2 * z.shape[1] :]
    z = z + mix.attn.out_proj(F.linear(h, w_v, b_v))
    z = z + mix.mlp(mix.ln_2(z))
    ctx = learner.text_post(z[:m])
    vis = learner.vision_post(z[m:]).reshape(-1, m, clip.vision_width)
    # text: [SOS, ctx[:M/2], class, ctx[M/2:], suffix]
    names = [c.replace("_", " ") for c in learner.classnames]
    tokens = clip.tokenize([" ".join(["X"] * m) + " " + c + "." for c in names])
    emb = clip.token_embedding(tokens)
    rows = []
    for k, c in enumerate(names):
        n = len(clip.tokenizer.encode(c))
        suffix = emb[k, 1 + m :]
        rows.append(torch.cat([emb[k, :1], ctx[: m // 2], suffix[:n], ctx[m // 2 :], suffix[n:]]))
    x = torch.stack(rows) + model.positional_embedding
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    text = x[torch.arange(len(names)), tokens.argmax(-1)] @ model.text_projection
    # vision
    vis_model = model.visual
    y = vis_model.conv1(images).flatten(2).transpose(1, 2)
    y = torch.cat([vis_model.class_embedding.expand(y.shape[0], 1, -1), y], 1) + vis_model.positional_embedding
    y = vis_model.ln_pre(y)
    y = torch.cat([y[:, :1], vis[0].expand(y.shape[0], -1, -1), y[:, 1:]], 1)
    for i, block in enumerate(vis_model.transformer.resblocks):
        if i > 0:
            y = torch.cat([y[:, :1], vis[i].expand(y.shape[0], -1, -1), y[:, 1 + m :]], 1)
        y = block(y)
    image = vis_model.ln_post(y[:, 0]) @ vis_model.proj
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return model.logit_scale.exp() * image @ text.t()


def test_matches_released_code_logits_and_gradients(tiny_clip, images):
    learner = make(tiny_clip, n_ctx=4, attend_across_tokens=False)
    params, labels = learner.trainable_parameters(), torch.tensor([0, 1, 2])
    ours, ref = learner(images), reference_released_forward(learner, images)
    assert_logits_and_grads_match(ours, ref, params, labels)


def test_bottleneck_is_the_released_ratio_of_the_text_width(tiny_clip):
    from mmprompt_lab.learners.upt import bottleneck_width

    assert bottleneck_width(512) == 128  # ViT-B/16: the released PROJECT_DIM (count pinned in test_parameter_counts)
    learner = make(tiny_clip)  # text width 64 → d = 16, recorded in the config (checkpoints say which d ran)
    assert learner.config.bottleneck == 16 == learner.mixer.ln_1.normalized_shape[0]
    assert learner.text_pre.out_features == 16 and learner.vision_post.in_features == 16
    assert make(tiny_clip, bottleneck=32).mixer.ln_1.normalized_shape[0] == 32  # explicit d wins


def test_toyclip_count_narrows_instead_of_widening():
    from mmprompt_lab.backbone import load_clip

    clip = load_clip("toyclip", device="cpu")
    upt = create_learner("upt", clip, ["cat", "dog", "sea lion"])
    # ctx 4·64 + vision 4·4·96 + pre/post linears (64↔16, 96↔16) + mixer (d = 16, MLP 64): 10,384,
    # fewer than MaPLe's 19,104 (a fixed d = 128 gave 241,440)
    assert upt.num_trainable() == 10_384
    assert upt.num_trainable() < create_learner("maple", clip, ["cat", "dog", "sea lion"]).num_trainable()
