"""VPT-deep: parity with the official forward, fixed text, depth rules, official names."""

import pytest
import torch

from mmprompt_lab.learners import create_learner
from tests.conftest import CLASSNAMES
from tests.learners import official_reference as ref


def official_shapes(n, dv, depth):
    shapes = {"image_encoder.VPT": (n, dv)}
    shapes.update({f"image_encoder.transformer.resblocks.{i}.VPT_shallow": (n, dv) for i in range(1, depth)})
    return shapes


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_matches_official_forward(tiny_clip, images, depth):
    learner = create_learner("vpt", tiny_clip, CLASSNAMES, n_ctx=3, depth=depth)
    sd = ref.official_dict(official_shapes(3, tiny_clip.vision_width, depth))
    assert learner.load_official_state_dict(sd) == []
    model = tiny_clip.model
    with torch.no_grad():
        prompts, tokens = ref.prompt_embeddings(
            model, tiny_clip.tokenizer, "a photo of a", CLASSNAMES, torch.zeros(0, tiny_clip.text_width), 0
        )
        expected = ref.logits(model, ref.image_features(model, images, sd), ref.text_features(model, prompts, tokens))
        torch.testing.assert_close(learner(images), expected, rtol=1e-5, atol=1e-5)
        # the prompts matter: without them the image features differ
        assert not torch.allclose(ref.image_features(model, images), learner.encode_image(images), atol=1e-4)


def test_text_is_fixed_template(tiny_clip, images):
    learner = create_learner("vpt", tiny_clip, CLASSNAMES, depth=2, template="itap of a {}.")
    text = learner.encode_text()
    assert not text.requires_grad
    texts = [f"itap of a {c.replace('_', ' ')}." for c in CLASSNAMES]
    expected = tiny_clip.model.encode_text(tiny_clip.tokenizer(texts))
    torch.testing.assert_close(text, torch.nn.functional.normalize(expected, dim=-1), rtol=1e-5, atol=1e-6)
    img, txt = learner.encode(images, attention=(att := {}))
    assert img.shape == (3, tiny_clip.embed_dim) and txt.shape == (len(CLASSNAMES), tiny_clip.embed_dim)
    assert len(att["vision"]) == tiny_clip.vision_depth and "text" not in att


def test_depth_and_names(tiny_clip):
    with pytest.raises(ValueError, match="exceeds the model's 4 vision blocks"):
        create_learner("vpt", tiny_clip, CLASSNAMES, depth=5)
    with pytest.raises(ValueError, match="depth must be ≥ 1"):
        create_learner("vpt", tiny_clip, CLASSNAMES, depth=0)
    assert create_learner("vpt", tiny_clip, CLASSNAMES).config.depth == 4  # None → every vision block
    learner = create_learner("vpt", tiny_clip, CLASSNAMES, n_ctx=2, depth=3)
    assert set(learner.official_names()) == set(official_shapes(2, 96, 3))
    assert learner.num_trainable() == 2 * tiny_clip.vision_width * 3
