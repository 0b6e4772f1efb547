"""DCP (CMPA): parity with an independent transcription of the released forward, the text_writeback
and fusing flags, batch coupling, shapes."""

import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES

TEXT_HALF = ("attn_t.", "ln1_t.", "ln2_t.", "mlp_t.", "proj_v2t.")


def make(clip, seed=0, **overrides):
    torch.manual_seed(seed)
    return create_learner("dcp", clip, CLASSNAMES, **{"depth": 2, **overrides})


def mha(module, q, kv):
    """The released code's call: nn.MultiheadAttention in its (L, N, D) layout, written out."""
    q, kv = q.transpose(0, 1), kv.transpose(0, 1)  # (M, G, D)
    out, _ = F.multi_head_attention_forward(
        q,
        kv,
        kv,
        q.shape[-1],
        module.num_heads,
        module.in_proj_weight,
        module.in_proj_bias,
        None,
        None,
        False,
        0.0,
        module.out_proj.weight,
        module.out_proj.bias,
        need_weights=False,
    )
    return out.transpose(0, 1)  # (G, M, D)


def official_logits(learner, images):
    """ResidualAttentionBlock_CMPA + PromptAttention (GingL/CMPA) with 'mean' fusing, full-length text."""
    clip, cfg, m = learner.clip, learner.config, learner.config.n_ctx
    pa = learner.cmpa[0]
    t = learner.prompts.assemble(learner.ctx) + clip.text.positional_embedding  # (C, L, Dt), no cut
    v = clip.ln_pre(torch.cat([clip.embed_image(images), learner.vision_ctx.expand(len(images), -1, -1)], 1))
    counter = 0
    for i in range(max(clip.text_depth, clip.vision_depth)):
        if i > 0 and counter <= cfg.depth - 1:
            vc, tc = v[:, -m:].mean(0, keepdim=True), t[:, 1 : 1 + m].mean(0, keepdim=True)  # (1, M, ·)
            nv = vc + mha(pa.attn_v, pa.ln1_v(pa.proj_t2v(tc)), pa.ln1_v(vc))
            nv = nv + pa.mlp_v(pa.ln2_v(nv))
            v = torch.cat([v[:, :-m], nv.expand(len(images), -1, -1)], 1)
            if cfg.text_writeback:  # the paper; the released code drops this result
                nt = tc + mha(pa.attn_t, pa.ln1_t(pa.proj_v2t(vc)), pa.ln1_t(tc))
                nt = nt + pa.mlp_t(pa.ln2_t(nt))
                t = torch.cat([t[:, :1], nt.expand(len(t), -1, -1), t[:, 1 + m :]], 1)
            counter += 1
        if i < clip.text_depth:
            t = clip.text_blocks[i](t, attn_mask=clip.text.attn_mask)
        if i < clip.vision_depth:
            v = clip.vision_blocks[i](v)
    img = F.normalize(clip.pool_image(v), dim=-1)
    txt = F.normalize(clip.pool_text(t, learner.prompts.eot), dim=-1)
    return clip.logit_scale * img @ txt.t()


@pytest.mark.parametrize("writeback", [True, False])
def test_matches_released_forward(tiny_clip, images, writeback):
    learner = make(tiny_clip, text_writeback=writeback).eval()
    with torch.no_grad():
        torch.testing.assert_close(learner(images), official_logits(learner, images), rtol=1e-5, atol=1e-5)


def test_text_writeback_controls_text_half_gradients(tiny_clip, images):
    for writeback in (True, False):
        learner = make(tiny_clip, text_writeback=writeback).train()
        F.cross_entropy(learner(images), torch.tensor([0, 1, 2])).backward()
        grads = {n: p.grad for n, p in learner.named_parameters() if p.requires_grad}
        text_half = [n for n in grads if n.startswith("cmpa.") and n.split(".", 2)[2].startswith(TEXT_HALF)]
        assert len(text_half) == 14
        alive = [n for n in text_half if grads[n] is not None and grads[n].abs().sum() > 0]
        assert alive == (text_half if writeback else [])
        rest = [n for n in grads if n not in text_half]
        assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in rest), rest


def test_writeback_changes_text_features(tiny_clip, images):
    a, b = make(tiny_clip, seed=4).eval(), make(tiny_clip, seed=4, text_writeback=False).eval()
    with torch.no_grad():
        assert not torch.allclose(a.encode(images)[1], b.encode(images)[1])


def test_mean_fusing_couples_batch_mates_per_sample_does_not(tiny_clip, images):
    torch.manual_seed(7)
    others = torch.randn(2, 3, 32, 32)
    for fusing in ("mean", "per_sample"):
        learner = make(tiny_clip, fusing=fusing).eval()
        with torch.no_grad():
            alone, mixed = learner(images[:1]), learner(torch.cat([images[:1], others]))[:1]
        if fusing == "mean":
            assert not torch.allclose(alone, mixed, atol=1e-4)
        else:
            torch.testing.assert_close(alone, mixed, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "fusing,writeback,text_shape",
    [("mean", True, (4, 48)), ("per_sample", True, (3, 4, 48)), ("per_sample", False, (4, 48))],
)
def test_shapes(tiny_clip, images, fusing, writeback, text_shape):
    learner = make(tiny_clip, fusing=fusing, text_writeback=writeback).eval()
    with torch.no_grad():
        img, txt = learner.encode(images)
        logits = learner.logits(img, txt)
    assert img.shape == (3, 48) and txt.shape == text_shape and logits.shape == (3, 4)
    assert learner.conditional and learner.preset.eval_batch_size == 16


def test_per_sample_is_deterministic_and_matches_mean_for_one_image(tiny_clip, images):
    a, b = make(tiny_clip, fusing="per_sample").eval(), make(tiny_clip, fusing="mean").eval()
    with torch.no_grad():
        one = a(images[:1])
        assert torch.equal(one, a(images[:1]))
        torch.testing.assert_close(one, b(images[:1]), rtol=1e-5, atol=1e-5)  # B = 1: same maths


def test_text_or_image_alone_raises(tiny_clip, images):
    learner = make(tiny_clip)
    with pytest.raises(RuntimeError, match="text features depend on the images"):
        learner.encode_text()
    with pytest.raises(RuntimeError, match=r"call encode\(images\)"):
        learner.encode_image(images)


def test_per_layer_cmpa_and_official_import(tiny_clip, images):
    shared, per_layer = make(tiny_clip), make(tiny_clip, shared_cmpa=False, seed=1)
    assert len(per_layer.cmpa) == 2 and per_layer.num_trainable() - shared.num_trainable() == sum(
        p.numel() for p in shared.cmpa.parameters()
    )
    source = make(tiny_clip, shared_cmpa=False, seed=2)
    ours = dict(source.named_parameters())
    state = {k: ours[v].detach().clone() for k, v in source.official_names().items()}
    state["encoder.resblocks.0.prompt_attn.proj_t2v.bias"] = torch.zeros(1)  # built but unused by the code
    assert per_layer.load_official_state_dict(state) == ["encoder.resblocks.0.prompt_attn.proj_t2v.bias"]
    with torch.no_grad():
        torch.testing.assert_close(per_layer.eval()(images), source.eval()(images), rtol=0, atol=0)
    names = shared.official_names()
    assert "encoder.resblocks.3.prompt_attn.promt_attention_visual.in_proj_weight" in names
    assert len({v for v in names.values()}) == len(shared.trainable_parameters())


def test_depth_bound(tiny_clip):
    with pytest.raises(ValueError, match="at most 2 for dcp"):
        make(tiny_clip, depth=3)


@pytest.mark.parametrize("writeback", [True, False])
def test_text_attention_is_recorded_in_both_variants(tiny_clip, images, writeback):
    from mmprompt_lab.analysis.attention import cross_modal_attention

    learner = make(tiny_clip, n_ctx=4, depth=2, text_writeback=writeback).eval()
    with torch.no_grad():
        before = learner(images)
    weights = cross_modal_attention(learner, images)  # the released code computes the text update and drops it
    assert set(weights) == {"vision", "text"} and len(weights["text"]) == len(weights["vision"]) == 2
    assert all(torch.allclose(w.sum(-1), torch.ones(4), atol=1e-5) for w in weights["text"])
    with torch.no_grad():
        torch.testing.assert_close(learner(images), before, rtol=0, atol=0)  # recording changes no output
