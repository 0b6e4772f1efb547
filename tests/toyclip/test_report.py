"""The per-suite report: zero-shot, linear probe, colour baseline and variance, consistently."""

import pytest
import torch

from mmprompt_lab.toyclip import build_model
from mmprompt_lab.toyclip.model import get_tokenizer
from mmprompt_lab.toyclip.report import format_table, linear_probe, suite_report


@pytest.fixture(scope="module")
def random_toyclip():
    torch.manual_seed(0)
    return build_model().eval()


def test_report_rows_are_consistent(random_toyclip):
    report = suite_report(random_toyclip, get_tokenizer(), suites=["polygons", "shapes-sketch"])
    poly, sketch = report["polygons"], report["shapes-sketch"]
    assert poly["chance"] == round(1 / 9, 4)
    assert poly["zero_shot_x_chance"] == pytest.approx(poly["toyclip_zero_shot_test"] * 9, abs=0.01)
    assert 0 <= poly["linear_probe_base_test"] <= 1 and 0 <= poly["colour_only_baseline_test"] <= 1
    assert "linear_probe_test" not in sketch  # a test-only set has nothing to fit a probe on
    table = format_table(report)
    assert table.count("\n") == 3 and "`toyworld/shapes-sketch`" in table


def test_linear_probe_reads_features_that_name_the_class(monkeypatch, random_toyclip):
    """With features that encode the label, the probe is perfect; with constant ones, at chance."""
    import mmprompt_lab.toyclip.report as report

    def fake(model, suite, preprocess, split):
        y = torch.arange(90 if split == "train" else 45) % 9
        return torch.nn.functional.one_hot(y, 16).float() * model, y

    monkeypatch.setattr(report, "image_features", fake)
    assert linear_probe(1.0, "polygons") == 1.0
    assert linear_probe(0.0, "polygons") == pytest.approx(1 / 9)
