"""Variance on constructed features with known answers."""

import pytest
import torch

from mmprompt_lab.analysis.variance import (
    class_variance,
    gain_vs_variance_figure,
    text_variance,
    variance_figure,
    variance_row,
)


def test_known_intra_inter():
    # class 0 at x=0, class 1 at x=4, each spread ±1 along y: intra 1, inter (2² + 2²)/2 = 4
    x = torch.tensor([[0.0, 1], [0, -1], [4, 1], [4, -1]])
    v = class_variance(x, torch.tensor([0, 0, 1, 1]), normalize=False)
    assert v["intra"] == pytest.approx(1.0)
    assert v["inter"] == pytest.approx(4.0)
    assert v["ratio"] == pytest.approx(0.25)
    assert v["per_class"].tolist() == pytest.approx([1.0, 1.0])


def test_per_class_and_normalisation():
    x = torch.tensor([[1.0, 0], [1, 0], [0, 3], [0, -3]])  # class 0 tight, class 1 spread
    raw = class_variance(x, torch.tensor([0, 0, 1, 1]), normalize=False)
    assert raw["per_class"].tolist() == pytest.approx([0.0, 9.0])
    unit = class_variance(x, torch.tensor([0, 0, 1, 1]))  # on the unit circle: class 1 = (0, ±1)
    assert unit["per_class"].tolist() == pytest.approx([0.0, 1.0])


def test_more_spread_raises_ratio():
    torch.manual_seed(0)
    centres = torch.randn(5, 16) * 3
    labels = torch.arange(5).repeat_interleave(20)
    tight = centres[labels] + 0.1 * torch.randn(100, 16)
    loose = centres[labels] + 1.0 * torch.randn(100, 16)
    assert class_variance(loose, labels)["ratio"] > 10 * class_variance(tight, labels)["ratio"]


def test_text_variance_shapes():
    t = torch.eye(3)  # three orthogonal class features: inter = mean ‖e_c − 1/3‖² = 2/3
    assert text_variance(t)["intra"] == pytest.approx(0.0)
    assert text_variance(t)["inter"] == pytest.approx(2 / 3)
    two = torch.stack([torch.eye(3), torch.eye(3)])  # (K=2, C=3, E): identical prompts → intra 0
    assert text_variance(two)["intra"] == pytest.approx(0.0, abs=1e-7)


def test_figure_from_rows():
    x, y = torch.randn(30, 8), torch.arange(3).repeat(10)
    rows = [variance_row("a", x, y, torch.randn(3, 8)), variance_row("b", x * 2, y, torch.randn(3, 8))]
    fig = variance_figure(rows)
    assert len(fig.data) == 4 and list(fig.data[0].x) == ["a", "b"]


def test_gain_vs_variance_matches_short_and_long_suite_names():
    x, y = torch.randn(30, 8), torch.arange(3).repeat(10)
    rows = [variance_row("polygons", x, y), variance_row("clutter", x * 2, y)]  # rows name suites by short name
    gains = {"coop": {"toyworld/polygons": -3.0, "toyworld/clutter": 2.0}, "vpt": {"polygons": 1.0}}
    fig = gain_vs_variance_figure(rows, gains)
    assert [len(t.x) for t in fig.data] == [2, 1] and list(fig.data[0].y) == [-3.0, 2.0]
