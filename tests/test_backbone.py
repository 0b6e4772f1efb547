"""The step-wise prompted forward equals open_clip's own encoders when no prompts are inserted."""

import pytest
import torch

from mmprompt_lab.backbone import load_clip

TEXTS = ["a photo of a dog.", "two small blue stars on the grass", "x"]


@pytest.mark.parametrize("fixture", ["tiny_clip", "vit_b16"])
def test_no_prompt_forward_equals_open_clip(fixture, request):
    clip = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    images = torch.randn(2, 3, clip.image_size, clip.image_size)
    tokens = clip.tokenize(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(images), clip.model.encode_image(images), rtol=0, atol=1e-5)
        torch.testing.assert_close(clip.encode_text(tokens), clip.model.encode_text(tokens), rtol=0, atol=1e-5)


def test_truncated_text_equals_full_length(tiny_clip):
    tokens = tiny_clip.tokenize(TEXTS)
    eot = tokens.argmax(-1)
    emb = tiny_clip.token_embedding(tokens)
    with torch.no_grad():
        x, mask = tiny_clip.start_text(emb, eot)
        assert x.shape[1] == int(eot.max()) + 1 < tiny_clip.context_length
        cut, _ = tiny_clip.run(x, None, text_mask=mask)
        full_x = emb + tiny_clip.text.positional_embedding
        full, _ = tiny_clip.run(full_x, None, text_mask=tiny_clip.text.attn_mask)
    torch.testing.assert_close(tiny_clip.pool_text(cut, eot), tiny_clip.pool_text(full, eot), rtol=0, atol=1e-5)


def test_attention_capture_shapes_and_does_not_change_outputs(tiny_clip):
    images = torch.randn(2, 3, 32, 32)
    tokens = tiny_clip.tokenize(TEXTS)
    eot = tokens.argmax(-1)
    with torch.no_grad():
        x, mask = tiny_clip.start_text(tiny_clip.token_embedding(tokens), eot)
        v = tiny_clip.ln_pre(tiny_clip.embed_image(images))
        plain = tiny_clip.run(x, v, text_mask=mask)
        attn = {}
        seen = tiny_clip.run(x, v, text_mask=mask, attention=attn)
    for a, b in zip(plain, seen, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    t, p = x.shape[1], 1 + tiny_clip.num_patches
    assert len(attn["text"]) == tiny_clip.text_depth and len(attn["vision"]) == tiny_clip.vision_depth
    assert attn["text"][0].shape == (3, tiny_clip.text_heads, t, t)
    assert attn["vision"][0].shape == (2, tiny_clip.vision_heads, p, p)
    torch.testing.assert_close(attn["vision"][1].sum(-1), torch.ones(2, tiny_clip.vision_heads, p))
    assert torch.all(attn["text"][0][..., 0, 1:] == 0)  # causal: the first token sees only itself


def test_widths_and_depths_read_from_the_model(tiny_clip, vit_b16):
    shape = (tiny_clip.text_width, tiny_clip.vision_width, tiny_clip.text_depth, tiny_clip.vision_depth)
    assert shape == (64, 96, 3, 4)
    assert (vit_b16.text_width, vit_b16.vision_width, vit_b16.embed_dim, vit_b16.num_patches) == (512, 768, 512, 196)


def test_backbone_is_frozen_and_stays_in_eval(tiny_clip):
    assert not any(p.requires_grad for p in tiny_clip.parameters())
    tiny_clip.train()
    assert not tiny_clip.model.training


def test_bad_inputs_get_clear_errors(tiny_clip):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\)"):
        tiny_clip.encode_image(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="context length is 32"):
        tiny_clip.tokenize(["word " * 40])
    with pytest.raises(ValueError, match="unknown CLIP model 'ViT-B-61'"):
        load_clip("ViT-B-61", device="cpu")
    with pytest.raises(ValueError, match="no pretrained tag 'nonsense'"):
        load_clip("ViT-B-16", pretrained="nonsense", device="cpu")


def test_open_clip_name_with_local_weights_file_and_missing_cache(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    clip = load_clip("ViT-B-16-quickgelu", pretrained=str(path), device="cpu")
    assert clip.id == f"ViT-B-16-quickgelu:{path.resolve()}"
    assert torch.equal(clip.model.visual.proj, model.visual.proj)
    with pytest.raises(RuntimeError, match="cache"):
        load_clip("ViT-B-16", pretrained="openai", device="cpu")  # nothing cached, HF_HUB_OFFLINE=1


# ----------------------------------------------------------------------------- transforms, hashes, threads
def test_preprocess_transforms_are_the_engines():
    from PIL import Image

    from mmprompt_lab.transforms import test_transform, train_transform

    clip = load_clip("toyclip", device="cpu")
    assert clip.augment == "toy"
    assert repr(clip.preprocess_val) == repr(test_transform(clip))
    assert repr(clip.preprocess_train) == repr(train_transform(clip, "toy"))
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    assert clip.preprocess_val(image).shape == clip.preprocess_train(image).shape == (3, 32, 32)


def test_weights_sha256_names_the_weights(tiny_clip):
    shipped, again = load_clip("toyclip", device="cpu"), load_clip("toyclip", device="cpu")
    random = load_clip("toyclip", pretrained=False, device="cpu")
    assert shipped.weights_sha256 == again.weights_sha256 != random.weights_sha256
    assert len(shipped.weights_sha256) == 64 and shipped.weights_sha256 is shipped.weights_sha256  # cached
    assert random.weights_sha256 == load_clip("toyclip", pretrained="random", device="cpu").weights_sha256
    assert tiny_clip.weights_sha256 not in (shipped.weights_sha256, random.weights_sha256)


@pytest.fixture
def thread_state(monkeypatch):
    """A fresh thread-policy state with torch's default pretended to be 2; restores torch's count."""
    from mmprompt_lab import threads

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_DEFAULT", 2)
    monkeypatch.setattr(threads, "_state", {"ours": None, "explicit": False})
    torch.set_num_threads(2)
    yield threads
    torch.set_num_threads(before)


def test_load_clip_applies_the_cli_thread_policy(thread_state, monkeypatch):
    load_clip("toyclip", device="cpu")
    assert torch.get_num_threads() == 1  # ToyCLIP on the CPU: one thread, as `mmprompt-lab tune`
    load_clip("toyclip", device="cpu")
    assert torch.get_num_threads() == 1  # our own setting is not mistaken for the user's
    torch.set_num_threads(3)  # the user chose: left alone
    load_clip("toyclip", device="cpu")
    assert torch.get_num_threads() == 3
    load_clip("toyclip", device="cpu", threads=2)  # an explicit count wins, and is remembered
    assert torch.get_num_threads() == 2 and thread_state.configure_threads(None, "toyclip", "cpu") == 2


def test_thread_policy_leaves_other_cases_alone(thread_state, monkeypatch):
    assert thread_state.configure_threads(None, "ViT-B-16", "cpu") == 2  # torch's default for real models
    assert thread_state.configure_threads(None, "toyclip", "cuda") == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert thread_state.configure_threads(None, "toyclip", "cpu") == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert thread_state.configure_threads(None, "toyclip", "cpu") == 1
    with pytest.raises(ValueError, match="threads must be an integer"):
        thread_state.configure_threads(0, "toyclip", "cpu")


def test_the_cli_still_imports_configure_threads_from_the_engine():
    from mmprompt_lab.engine.train import configure_threads
    from mmprompt_lab.threads import configure_threads as policy

    assert configure_threads is policy
