"""Attention capture through the prompted forward, maps, rollout, text and cross-modal attention."""

import numpy as np
import pytest
import torch

from mmprompt_lab.analysis import attention as A
from mmprompt_lab.learners import create_learner, list_learners

NAMES = ["circle", "star", "house"]


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("method,prompts", [("vpt", 8), ("maple", 2), ("upt", 4)])
def test_capture_layout_and_maps(tiny_clip, batch, method, prompts):
    learner = create_learner(method, tiny_clip, NAMES, n_ctx=prompts)
    rec = A.capture(learner, batch)
    assert len(rec.vision) == tiny_clip.vision_depth
    t = 1 + tiny_clip.num_patches + prompts
    assert rec.vision[0].shape == (2, tiny_clip.vision_heads, t, t)
    assert len(rec.prompt_index) == prompts and len(rec.patch_index) == tiny_clip.num_patches
    maps = A.prompt_patch_maps(rec)
    assert maps.shape == (2, prompts, 4, 4)  # 32 px / patch 8 → 16 patches = 4 × 4
    assert torch.allclose(maps.sum(dim=(-1, -2)), torch.ones(2, prompts), atol=1e-5)
    mean_maps = A.prompt_patch_maps(rec, layer="mean")
    assert torch.allclose(mean_maps.sum(dim=(-1, -2)), torch.ones(2, prompts), atol=1e-5)
    roll = A.cls_rollout(rec)
    assert roll.shape == (2, 4, 4) and torch.allclose(roll.sum(dim=(-1, -2)), torch.ones(2), atol=1e-5)


def test_attention_rows_are_distributions(tiny_clip, batch):
    rec = A.capture(create_learner("maple", tiny_clip, NAMES), batch)
    for a in rec.vision + rec.text:
        assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5)
    # the text tower is causal: no attention to later tokens
    assert torch.all(torch.triu(rec.text[0][0, 0], diagonal=1) == 0)


def test_capture_does_not_change_the_forward(tiny_clip, batch):
    learner = create_learner("maple", tiny_clip, NAMES)
    with torch.no_grad():
        before = learner(batch)
    A.capture(learner, batch)
    with torch.no_grad():
        assert torch.allclose(learner(batch), before, atol=1e-6)


def test_rollout_of_identity_attention_is_uniform():
    t, g = 5, 2  # CLS + 4 patches, no prompts
    eye = torch.eye(t).expand(1, 2, t, t)
    rec = A.AttentionRecord([eye, eye], [], torch.arange(1, 5), torch.arange(0), g)
    # uniform attention in every layer → every patch gets the same share of CLS's rollout
    uniform = torch.full((1, t, t), 1.0 / t).unsqueeze(1).expand(1, 2, t, t)
    rec2 = A.AttentionRecord([uniform], [], torch.arange(1, 5), torch.arange(0), g)
    roll = A.cls_rollout(rec2)
    assert torch.allclose(roll, torch.full((1, 2, 2), 0.25))
    with pytest.raises(ValueError):
        A.prompt_patch_maps(rec)


def test_text_attention_labels_and_shapes(tiny_clip, batch):
    learner = create_learner("coop", tiny_clip, NAMES, n_ctx=3)
    rec = A.capture(learner, batch)
    labels, eot = A.text_attention(rec, row=1)
    assert labels == ["SOS", "ctx1", "ctx2", "ctx3", "star", ".", "EOT"]
    assert eot.shape == (tiny_clip.text_depth, 7)
    assert torch.allclose(eot.sum(-1), torch.ones(tiny_clip.text_depth), atol=1e-5)
    _, slots = A.text_attention(rec, row=1, query="slots")
    assert slots.shape == (tiny_clip.text_depth, 3, 7)
    fig = A.text_attention_figure(labels, eot)
    assert fig.data[0].z.shape == (tiny_clip.text_depth, 7)


def test_zeroshot_records_the_image_tower(tiny_clip, batch):
    rec = A.capture(create_learner("zeroshot", tiny_clip, NAMES), batch)
    assert len(rec.vision) == tiny_clip.vision_depth and rec.text == []
    with pytest.raises(ValueError):
        A.text_attention(rec)


@pytest.mark.parametrize("method", list_learners())
def test_capture_follows_the_declared_capabilities(tiny_clip, batch, method):
    depth = {
        "dcp": dict(depth=2),
        "ivlp": dict(text_depth=3),
        "maple": dict(depth=3),
        "mudpt": dict(depth=3),
        "map_dafe": dict(depth=3),
    }.get(method, {})
    learner = create_learner(method, tiny_clip, NAMES, **depth)
    rec = A.capture(learner, batch)
    assert len(rec.vision) == tiny_clip.vision_depth
    assert (len(rec.prompt_index) > 0) == learner.has_vision_prompts
    assert bool(rec.text) == learner.has_text_prompts and (rec.tokens is not None) == learner.has_text_prompts
    if not learner.records_cross_attention:
        with pytest.raises(ValueError, match="no cross-modal attention module"):
            A.cross_modal_attention(learner, batch)


def test_dcp_cross_modal_attention(tiny_clip, batch):
    learner = create_learner("dcp", tiny_clip, NAMES, n_ctx=4, depth=2)
    with torch.no_grad():
        before = learner(batch)
    weights = A.cross_modal_attention(learner, batch)
    assert set(weights) == {"vision", "text"}
    assert len(weights["vision"]) == 2 and weights["vision"][0].shape == (4, 4)
    assert torch.allclose(weights["text"][1].sum(-1), torch.ones(4), atol=1e-5)
    assert all(m.record is None for m in learner.modules() if hasattr(m, "record"))  # recording switched off
    with torch.no_grad():
        assert torch.equal(learner(batch), before)  # recording changes nothing
    fig = A.cross_modal_figure(weights)
    assert len(fig.data) == 4
    with pytest.raises(ValueError):
        A.cross_modal_attention(create_learner("maple", tiny_clip, NAMES), batch)


def test_overlay_figure_grid():
    pixels = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    fig = A.overlay_figure(pixels, {"a": torch.rand(2, 4, 4), "b": torch.rand(2, 4, 4)})
    assert len(fig.data) == 2 * (1 + 2 * 2)  # per row: the image, then image + heatmap per map
    heat = [d for d in fig.data if d.type == "heatmap"][0]
    assert np.asarray(heat.z).shape == (32, 32) and np.asarray(heat.z).max() == pytest.approx(1.0)
