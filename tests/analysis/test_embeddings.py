"""Alignment numbers on constructed features; UMAP shape and determinism."""

import numpy as np
import pytest
import torch

from mmprompt_lab.analysis import embeddings as E


def _features(noise: float, seed: int = 0) -> E.Features:
    g = torch.Generator().manual_seed(seed)
    text = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=-1)
    labels = torch.arange(4).repeat(10)
    image = torch.nn.functional.normalize(text[labels] + noise * torch.randn(40, 16, generator=g), dim=-1)
    return E.Features(image, text, labels, ["a", "b", "c", "d"], f"noise {noise}")


def test_perfect_alignment():
    f = _features(0.0)
    assert E.modality_gap(f) == pytest.approx(0.0, abs=1e-6)
    assert E.class_cosine(f).tolist() == pytest.approx([1.0] * 4)
    assert E.nearest_class_accuracy(f) == 100.0


def test_noise_lowers_cosine_and_accuracy():
    clean, noisy = E.summary(_features(0.1)), E.summary(_features(3.0))
    assert noisy["cosine"] < clean["cosine"]
    assert noisy["accuracy"] < clean["accuracy"] == 100.0


def test_gap_of_shifted_modalities():
    f = _features(0.0)
    shift = torch.zeros(16)
    shift[0] = 1.0
    f.image = f.image + shift  # not renormalised on purpose: the gap is the mean difference
    assert E.modality_gap(f) == pytest.approx(1.0, abs=1e-5)


def test_umap_shape_and_determinism():
    a, b = np.random.default_rng(0).normal(size=(30, 8)), np.random.default_rng(1).normal(size=(5, 8))
    first = E.umap_2d([a, b], seed=3, n_neighbors=5)
    second = E.umap_2d([a, b], seed=3, n_neighbors=5)
    assert [x.shape for x in first] == [(30, 2), (5, 2)]
    assert all(np.allclose(x, y) for x, y in zip(first, second, strict=True))


def test_features_of_a_learner(tiny_clip):
    from mmprompt_lab import create_learner, notebook_settings

    S = notebook_settings(ci=True, pretrained=False)
    test = S.dataset("toyworld/polygons", "test")
    learner = create_learner("coop", tiny_clip, test.classnames, n_ctx=2)
    f = E.features(learner, test)
    assert f.image.shape == (len(test), tiny_clip.embed_dim) and f.text.shape == (9, tiny_clip.embed_dim)
    assert torch.allclose(f.image.norm(dim=-1), torch.ones(len(test)), atol=1e-5)
    dcp = E.features(create_learner("dcp", tiny_clip, test.classnames, n_ctx=2, depth=1), test, batch_size=8)
    assert dcp.text.shape == (9, tiny_clip.embed_dim)
    fig = E.alignment_figure([f, dcp])
    assert len(fig.data) == 2


def test_centred_umap_puts_each_text_among_its_images():
    # a big modality gap: every text point is the class centre plus one shared offset, far from all images
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=-1)
    offset = torch.zeros(16)
    offset[0] = 3.0
    labels = torch.arange(4).repeat(15)
    image = torch.nn.functional.normalize(centres[labels] + 0.15 * torch.randn(60, 16, generator=g), dim=-1)
    f = E.Features(image, torch.nn.functional.normalize(centres + offset, dim=-1), labels, list("abcd"), "gap")
    assert E.modality_gap(E.centred(f)) < 0.2 < E.modality_gap(f)

    def own_class_neighbours(fig):  # share of each star's 5 nearest dots (2-D) that belong to its class
        dots = [(t.x, t.y, t.legendgroup) for t in fig.data if t.hovertemplate.startswith("image")]
        stars = [(t.x[0], t.y[0], t.legendgroup) for t in fig.data if t.hovertemplate.startswith("text")]
        xy = np.concatenate([np.stack([x, y], 1) for x, y, _ in dots])
        names = np.concatenate([[n] * len(x) for x, _, n in dots])
        near = [names[np.argsort(np.linalg.norm(xy - [x, y], axis=1))[:5]] == n for x, y, n in stars]
        return float(np.mean(near))

    assert own_class_neighbours(E.umap_figure([f], seed=0, n_neighbors=10)) >= 0.75
    assert "centred" in E.umap_figure([f], seed=0, n_neighbors=10).layout.title.text
