"""MuDPT: the cut prefix ("of a" dropped), bi-directional fusion per layer in both variants, gradients,
and a from-scratch re-implementation of the released (linear) forward."""

import pytest
import torch

import torch.nn.functional as F

from mmprompt_lab.learners import create_learner
from mmprompt_lab.learners.prompts import gather_slots
from tests.conftest import CLASSNAMES
from tests.learners.official_reference import assert_logits_and_grads_match

FUSIONS = ["linear", "transformer"]


def make(clip, **overrides):
    torch.manual_seed(0)
    return create_learner("mudpt", clip, CLASSNAMES, **{"depth": 3, **overrides}).eval()


def test_only_the_first_n_words_of_the_phrase_are_the_prefix(tiny_clip):
    learner = make(tiny_clip, n_ctx=2)
    tok = tiny_clip.tokenizer
    ids = learner.prompts.tokens[0]  # "circle"
    words = [tok.decoder[int(i)].replace("</w>", "") for i in ids[1 : int(learner.prompts.eot[0])]]
    assert words == ["a", "photo", "circle", "."]  # "of a" is dropped, unlike MaPLe
    assert learner.prompts.slots[0].tolist() == [1, 2]
    expected = tiny_clip.token_embedding(torch.tensor(tok.encode("a photo")))
    torch.testing.assert_close(learner.ctx.detach(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shapes(fusion, tiny_clip, images):
    learner = make(tiny_clip, n_ctx=2, fusion=fusion)
    state = learner.begin_pass()
    emb, _ = learner.text_prompts(state)
    first = learner.vision_prompts(state)
    assert emb.shape == (len(CLASSNAMES), tiny_clip.context_length, tiny_clip.text_width)
    assert first.shape == (2, tiny_clip.vision_width)
    assert state["deep_text"].shape == (2, 2, tiny_clip.text_width)  # P_t^1..P_t^{D-1}
    assert state["vision"].shape == (3, 2, tiny_clip.vision_width)  # P_v^0..P_v^{D-1}
    assert learner(images).shape == (3, len(CLASSNAMES))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_text_prompt_at_layer_j_is_fused_with_vision_prompt_j(fusion, tiny_clip):
    learner = make(tiny_clip, fusion=fusion)
    with torch.no_grad():
        state = learner.begin_pass()
        emb, eot = learner.text_prompts(state)
        x, _ = tiny_clip.start_text(emb, eot)
        t, _ = learner.layer(1, x, None, state)
        expected = learner.deep_text[0] + learner.v2t(learner.deep_vision)[0]
        torch.testing.assert_close(
            gather_slots(t, learner.prompts.slots), expected.expand(len(CLASSNAMES), -1, -1), rtol=0, atol=0
        )
        before = learner.encode_text()
        learner.vision_ctx += 1.0  # V_0 never reaches the text tower (no vision term at layer 0)
        torch.testing.assert_close(learner.encode_text(), before, rtol=0, atol=0)
        learner.deep_vision[1] += 1.0  # V_2 changes the text prompt at layer 2
        assert not torch.allclose(learner.encode_text(), before)
        t3, _ = learner.layer(3, x, None, learner.begin_pass())  # beyond the depth: untouched
        assert torch.equal(t3, x)


def test_transformer_fusion_attends_within_each_layer_only(tiny_clip):
    learner = make(tiny_clip, fusion="transformer")
    with torch.no_grad():
        text = torch.cat([learner.ctx[None], learner.deep_text])  # (D, n, Dt)
        out = learner.t2v(text)  # (D, n, Dv)
        text[1, 0] += 1.0  # one token of layer 1
        new = learner.t2v(text)
    assert not torch.allclose(new[1, 1], out[1, 1])  # its layer-mate sees it
    torch.testing.assert_close(new[[0, 2]], out[[0, 2]], rtol=0, atol=1e-6)  # other layers do not


@pytest.mark.parametrize("fusion", FUSIONS)
def test_text_prompts_reach_the_image_tower(fusion, tiny_clip, images):
    learner = make(tiny_clip, fusion=fusion)
    with torch.no_grad():
        before = learner.encode_image(images)
        learner.deep_text[0] += 1.0
        assert not torch.allclose(learner.encode_image(images), before)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_gradients_reach_every_tensor(fusion, tiny_clip, images):
    learner = make(tiny_clip, fusion=fusion).train()
    F.cross_entropy(learner(images), torch.tensor([0, 1, 2])).backward()
    dead = [n for n, p in learner.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not dead
    assert ("embed_proj.weight" in dict(learner.named_parameters())) == (fusion == "linear")


def test_bad_settings_are_rejected(tiny_clip):
    with pytest.raises(ValueError, match="exceeds the model's"):
        make(tiny_clip, depth=9)
    with pytest.raises(ValueError, match="fusion must be one of"):
        make(tiny_clip, fusion="mlp")


def reference_released_forward(learner, images):
    """MuDPT (linear) written directly from the released code: prompts by concatenation of SOS, ctx and
    the suffix of "a photo {class}.", visual prompts appended before ln_pre, deep replacement in blocks."""
    clip, model, n, depth = learner.clip, learner.clip.model, learner.config.n_ctx, learner.config.depth
    names = [c.replace("_", " ") for c in learner.classnames]
    tokens = clip.tokenize(["a photo " + c + "." for c in names])
    emb = clip.token_embedding(tokens)
    ctx = learner.ctx[None].expand(len(names), -1, -1)
    x = torch.cat([emb[:, :1], ctx, emb[:, 1 + n :]], 1) + model.positional_embedding
    text_deep = learner.deep_text + learner.v2t(learner.deep_vision)  # T_j + v2t(V_j)
    vision_deep = learner.t2v(learner.deep_text) + learner.deep_vision  # t2v(T_j) + V_j
    for i, block in enumerate(model.transformer.resblocks):
        if 1 <= i < depth:
            x = torch.cat([x[:, :1], text_deep[i - 1].expand(x.shape[0], -1, -1), x[:, 1 + n :]], 1)
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    text = x[torch.arange(len(names)), tokens.argmax(-1)] @ model.text_projection
    vis = model.visual
    y = vis.conv1(images).flatten(2).transpose(1, 2)
    y = torch.cat([vis.class_embedding.expand(y.shape[0], 1, -1), y], 1) + vis.positional_embedding
    first = learner.vision_ctx[None] + learner.embed_proj(learner.ctx)
    y = vis.ln_pre(torch.cat([y, first.expand(y.shape[0], -1, -1)], 1))
    for i, block in enumerate(vis.transformer.resblocks):
        if 1 <= i < depth:
            y = torch.cat([y[:, :-n], vision_deep[i - 1].expand(y.shape[0], -1, -1)], 1)
        y = block(y)
    image = vis.ln_post(y[:, 0]) @ vis.proj
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return model.logit_scale.exp() * image @ text.t()


def test_matches_released_code_logits_and_gradients(tiny_clip, images):
    learner = make(tiny_clip, n_ctx=2, depth=3)
    learner.shared_prefix = False  # parity of the plain pass at 1e-6; shared == plain is tests/test_text_prefix.py
    params, labels = learner.trainable_parameters(), torch.tensor([0, 1, 2])
    ours, ref = learner(images), reference_released_forward(learner, images)
    assert_logits_and_grads_match(ours, ref, params, labels)
