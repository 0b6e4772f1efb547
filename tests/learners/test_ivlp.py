"""IVLP: parity with the official forward (logits and gradients), token layout, text-only mode."""

import pytest
import torch
import torch.nn.functional as F

from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES
from tests.learners import official_reference as ref


def official_shapes(mt, dt, jt, nv, dv, jv):
    shapes = {"prompt_learner.ctx": (mt, dt)}
    shapes.update({f"text_encoder.transformer.resblocks.{i}.VPT_shallow": (mt, dt) for i in range(1, jt)})
    if nv and jv:
        shapes["image_encoder.VPT"] = (nv, dv)
        shapes.update({f"image_encoder.transformer.resblocks.{i}.VPT_shallow": (nv, dv) for i in range(1, jv)})
    return shapes


def official_logits(clip, images, sd, mt, prefix="a photo of a"):
    model = clip.model
    prompts, tokens = ref.prompt_embeddings(model, clip.tokenizer, prefix, CLASSNAMES, sd["prompt_learner.ctx"], mt)
    deep = {i: sd[k] for i in range(1, 12) if (k := f"text_encoder.transformer.resblocks.{i}.VPT_shallow") in sd}
    return ref.logits(model, ref.image_features(model, images, sd), ref.text_features(model, prompts, tokens, deep))


@pytest.mark.parametrize("jt,jv,nv", [(3, 2, 2), (2, 4, 3), (1, 1, 1)])
def test_matches_official_forward_and_gradients(tiny_clip, images, jt, jv, nv):
    learner = create_learner("ivlp", tiny_clip, CLASSNAMES, text_depth=jt, vision_depth=jv, n_ctx_vision=nv)
    sd = ref.official_dict(official_shapes(2, tiny_clip.text_width, jt, nv, tiny_clip.vision_width, jv))
    learner.load_official_state_dict(sd)
    sd = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
    labels = torch.tensor([0, 3, 1])
    expected = official_logits(tiny_clip, images, sd, 2)
    F.cross_entropy(expected, labels).backward()
    ours = learner(images)
    F.cross_entropy(ours, labels).backward()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    names = dict(learner.named_parameters())
    for official, mine in learner.official_names().items():
        torch.testing.assert_close(names[mine].grad, sd[official].grad, rtol=1e-4, atol=1e-6)


def test_layout_word_init_and_fixed_rest(tiny_clip):
    learner = create_learner("ivlp", tiny_clip, CLASSNAMES, text_depth=2, vision_depth=2)
    tok = tiny_clip.tokenizer
    assert learner.prompts.slots.tolist() == [[1, 2]] * len(CLASSNAMES)
    expected = tok(["a photo of a circle."])[0]
    assert torch.equal(learner.prompts.tokens[0], expected)  # "of a" stays as fixed tokens
    words = torch.tensor(tok.encode("a photo"))
    torch.testing.assert_close(learner.ctx.detach(), tiny_clip.token_embedding(words), rtol=0, atol=0)
    long = create_learner("ivlp", tiny_clip, CLASSNAMES, n_ctx_text=6, text_depth=2, vision_depth=2)
    assert long.prompts.slots[0].tolist() == [1, 2, 3, 4, 5, 6]  # Mt > 4: random init, "X" fill
    assert long.ctx.detach().std() < 0.05


@pytest.mark.parametrize("off", [dict(vision_depth=0), dict(n_ctx_vision=0)])
def test_language_only_leaves_image_tower_untouched(tiny_clip, images, off):
    learner = create_learner("ivlp", tiny_clip, CLASSNAMES, n_ctx_text=4, text_depth=3, **off)
    assert not any(k.startswith("image_encoder") for k in learner.official_names())
    assert learner.num_trainable() == 4 * tiny_clip.text_width * 3
    with torch.no_grad():
        torch.testing.assert_close(
            learner.encode_image(images), tiny_clip.model.encode_image(images), rtol=1e-5, atol=1e-5
        )


def test_depth_errors(tiny_clip):
    with pytest.raises(ValueError, match="text_depth=4 exceeds the model's 3 text blocks"):
        create_learner("ivlp", tiny_clip, CLASSNAMES, text_depth=4, vision_depth=2)
    with pytest.raises(ValueError, match="vision_depth=5 exceeds the model's 4 vision"):
        create_learner("ivlp", tiny_clip, CLASSNAMES, text_depth=2, vision_depth=5)
    with pytest.raises(ValueError, match="use 'vpt'"):
        create_learner("ivlp", tiny_clip, CLASSNAMES, text_depth=0)
    default = create_learner("ivlp", tiny_clip, CLASSNAMES)  # None → official 9 of 12 blocks, scaled
    assert (default.config.text_depth, default.config.vision_depth) == (2, 3)
