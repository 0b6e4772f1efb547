"""ToyCLIP is an open_clip CLIP: structure, widths, and loading the shipped weights safely."""

import os

import open_clip
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmprompt_lab.toyclip import DEFAULT_WEIGHTS, ConvStem, create_toyclip

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def random_toyclip():
    return create_toyclip(pretrained=False)


def test_is_an_open_clip_clip_in_eval_fp32(random_toyclip):
    model, tokenizer, preprocess = random_toyclip
    assert isinstance(model, open_clip.model.CLIP) and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.transformer.width != model.visual.transformer.width  # learners must read widths
    assert model.text_pool_type == "argmax" and model.vocab_size == 49408
    assert tokenizer.context_length == model.positional_embedding.shape[0]
    assert set(preprocess) == {"image_size", "mean", "std"}


def test_encoders_run_unchanged(random_toyclip):
    model, tokenizer, preprocess = random_toyclip
    s = preprocess["image_size"]
    with torch.no_grad():
        img = model.encode_image(torch.randn(2, 3, s, s))  # (2, E)
        txt = model.encode_text(tokenizer(["a photo of a star.", "two red fish on the grass"]))  # (2, E)
    assert img.shape == txt.shape == (2, model.text_projection.shape[1])
    assert torch.isfinite(img).all() and torch.isfinite(txt).all()


def test_stem_matches_patch_grid(random_toyclip):
    model, _, preprocess = random_toyclip
    stem = model.visual.conv1
    assert isinstance(stem, ConvStem)
    out = stem(torch.randn(3, 3, preprocess["image_size"], preprocess["image_size"]))
    g = model.visual.grid_size[0]
    assert out.shape == (3, model.visual.transformer.width, g, g)
    assert model.visual.positional_embedding.shape[0] == g * g + 1


def test_shipped_weights_load_by_name_and_path(random_toyclip):
    assert DEFAULT_WEIGHTS.is_file(), f"shipped weights missing: {DEFAULT_WEIGHTS}"
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    with safe_open(str(DEFAULT_WEIGHTS), "pt") as f:
        assert f.get_tensor("logit_scale").dtype == torch.float16
    model, _, _ = create_toyclip()
    by_path, _, _ = create_toyclip(str(DEFAULT_WEIGHTS))
    for (name, a), b in zip(model.state_dict().items(), by_path.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    rand = random_toyclip[0].state_dict()
    assert not torch.equal(model.state_dict()["text_projection"], rand["text_projection"])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_toyclip(tmp_path / "nope.safetensors")


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00not a safetensors file" * 10)
    with pytest.raises(ValueError, match="bad.safetensors"):
        create_toyclip(bad)


def test_wrong_keys_are_a_clear_error(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(ValueError, match="does not hold ToyCLIP weights"):
        create_toyclip(other)
