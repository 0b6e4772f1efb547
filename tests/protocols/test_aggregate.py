"""Aggregator arithmetic on constructed results files with known answers, and the published numbers."""

import json

import pytest

from mmprompt_lab.engine import harmonic_mean
from mmprompt_lab.protocols import average, load_published, load_results, markdown_report, mean_std, write_report
from mmprompt_lab.protocols.published import published_value


def results(protocol, method, records, backbone="toyclip", **config):
    return {
        "format": "mmprompt_lab.results/1",
        "protocol": protocol,
        "method": method,
        "config": {"backbone": backbone, **config},
        "results": records,
        "environment": {},
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "seconds": 60,
    }


def b2n(dataset, seed, base, novel):
    return {"dataset": dataset, "seed": seed, "base": base, "novel": novel, "hm": harmonic_mean(base, novel)}


# A: base 80/82, novel 60/64; B: base 90/94, novel 70/70 (seeds 1/2)
TOY = results(
    "base2new",
    "coop",
    [
        b2n("toyworld/a", 1, 80, 60),
        b2n("toyworld/a", 2, 82, 64),
        b2n("toyworld/b", 1, 90, 70),
        b2n("toyworld/b", 2, 94, 70),
    ],
)


def test_mean_std_is_population_std():
    assert mean_std([80, 82]) == (81, 1)
    assert mean_std([1, 2, 3, 4]) == pytest.approx((2.5, 1.118034), abs=1e-6)
    with pytest.raises(ValueError):
        mean_std([])


def test_average_row_hm_is_hm_of_averages():
    per = {
        "a": {1: {"base": 80, "novel": 60}, 2: {"base": 82, "novel": 64}},
        "b": {1: {"base": 90, "novel": 70}, 2: {"base": 94, "novel": 70}},
    }
    row = average(per, ["base", "novel"])
    assert row["base"] == pytest.approx((86.5, 1.5))  # per-seed averages 85, 88
    assert row["novel"] == pytest.approx((66.0, 1.0))  # per-seed averages 65, 67
    assert row["hm"][0] == pytest.approx(2 * 86.5 * 66 / 152.5)  # not the mean of per-dataset HMs
    assert row["hm"][0] != pytest.approx((harmonic_mean(81, 62) + harmonic_mean(92, 70)) / 2)
    assert round(harmonic_mean(82.28, 75.14), 2) == 78.55  # docs/protocols.md §1's example


def test_base2new_markdown_on_constructed_results(tmp_path):
    (tmp_path / "base2new-coop.json").write_text(json.dumps(TOY))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "results"}))  # skipped in a folder
    text = markdown_report(load_results(tmp_path))
    avg = text.split("#### toyworld/a")[0]
    assert "86.50 ± 1.50" in avg and "66.00 ± 1.00" in avg and f"{2 * 86.5 * 66 / 152.5:.2f}" in avg
    dataset_a = text.split("#### toyworld/a")[1].split("####")[0]
    assert "81.00 ± 1.00" in dataset_a and "62.00 ± 2.00" in dataset_a and f"{harmonic_mean(81, 62):.2f}" in dataset_a
    assert "No published numbers exist for toyworld/a, toyworld/b" in text and "n/a" in text
    assert "| MaPLe | 82.28 | 75.14 | 78.55 |" in text  # the published reference table beside ours


def test_later_file_replaces_same_seed_and_transfer_average(tmp_path):
    old = results(
        "cross_dataset",
        "coop",
        [{"dataset": "toyworld/s", "role": "source", "source": "toyworld/s", "seed": 1, "accuracy": 10.0}],
        source="toyworld/s",
    )
    rec = lambda d, s, a: {"dataset": d, "role": "target", "source": "toyworld/s", "seed": s, "accuracy": a}  # noqa
    new = results(
        "cross_dataset",
        "coop",
        [
            {**old["results"][0], "accuracy": 50.0},
            rec("toyworld/t", 1, 20.0),
            rec("toyworld/t", 2, 30.0),
            rec("toyworld/u", 1, 40.0),
            rec("toyworld/u", 2, 60.0),
        ],
        source="toyworld/s",
    )
    new["finished"] = "2026-01-02T00:00:00+00:00"
    (tmp_path / "a.json").write_text(json.dumps(new))
    (tmp_path / "b.json").write_text(json.dumps(old))
    text = markdown_report(load_results(tmp_path))
    row = [line for line in text.splitlines() if line.startswith("| CoOp")][0]
    # source 50 (newer file wins), t 25 ± 5, u 50 ± 10, average of targets 37.5 ± 7.5 (seeds: 30, 45)
    assert row == "| CoOp | 50.00 ± 0.00 | 25.00 ± 5.00 | 50.00 ± 10.00 | 37.50 ± 7.50 |"


def test_published_numbers_match_protocol_md():
    pub = load_published()
    assert pub["base2new"]["average"]["maple"] == {"base": 82.28, "novel": 75.14, "hm": 78.55}
    assert pub["base2new"]["average"]["zeroshot"] == {"base": 69.34, "novel": 74.22, "hm": 71.70}
    assert published_value("base2new", "maple", "fgvc_aircraft") == {"base": 37.44, "novel": 35.61, "hm": 36.50}
    assert published_value("base2new", "zeroshot", "eurosat") == {"base": 56.48, "novel": 64.05}
    assert pub["cross_dataset"]["average"] == {"coop": 63.88, "cocoop": 65.74, "maple": 66.30}
    assert published_value("domain_generalisation", "zeroshot", "imagenet") == 66.73
    assert set(pub["base2new"]["average"]) == {
        "zeroshot",
        "coop",
        "cocoop",
        "vpt",
        "deep_language",
        "ivlp",
        "maple",
        "kgcoop",
        "promptsrc",
    }
    assert pub["base2new"]["average"]["promptsrc"] == {"base": 84.26, "novel": 76.10, "hm": 79.97}  # its paper
    # internal consistency of the copied numbers (catches typos): HM of B and N, DG average of the targets
    for method, v in pub["base2new"]["average"].items():
        assert harmonic_mean(v["base"], v["novel"]) == pytest.approx(v["hm"], abs=0.01), method
    for dataset, v in pub["base2new"]["per_dataset"]["maple"].items():
        assert harmonic_mean(v["base"], v["novel"]) == pytest.approx(v["hm"], abs=0.01), dataset
    for method, per in pub["domain_generalisation"]["per_dataset"].items():
        targets = [per[t] for t in pub["domain_generalisation"]["targets"]]
        assert sum(targets) / 4 == pytest.approx(pub["domain_generalisation"]["average"][method], abs=0.01)
    assert len(pub["base2new"]["per_dataset"]["maple"]) == len(pub["base2new"]["per_dataset"]["zeroshot"]) == 11


def test_published_columns_for_real_datasets(tmp_path):
    datasets = load_published()["base2new"]["datasets"]
    recs = [b2n(d, s, 80.0 + s, 70.0) for d in datasets for s in (1, 2, 3)]
    text = markdown_report([results("base2new", "maple", recs, backbone="ViT-B-16:openai")])
    assert "| MaPLe (11 datasets) | 82.00 ± 0.82 | 70.00 ± 0.00 |" in text
    assert "| 3 | 82.28 | 75.14 | 78.55 |" in text  # the published average beside ours
    assert "| 3 | 76.66 | 70.54 | 73.47 |" in text  # ImageNet
    assert "No published numbers" not in text
    dg = [
        {"dataset": d, "role": "target", "source": "imagenet", "seed": 1, "accuracy": 50.0}
        for d in ("imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
    ]
    text = markdown_report([results("domain_generalisation", "maple", dg, source="imagenet")])
    assert "| MaPLe (published) | 70.72 | 64.07 | 49.15 | 50.90 | 76.98 | 60.27 |" in text
    assert "| CoOp (published) | – | – | – | – | – | 59.28 |" in text


def test_write_report_and_load_errors(tmp_path):
    (tmp_path / "base2new-coop.json").write_text(json.dumps(TOY))
    report = write_report(tmp_path)
    files = {p.rsplit("/", 1)[1] for p in report["files"]}
    assert files == {"results.md", "base2new.html", "base2new.json"}
    figure = json.loads((tmp_path / "report" / "base2new.json").read_text())
    bars = [t for t in figure["data"] if t["type"] == "bar"]
    assert len(bars) == 3 and bars[0]["x"] == ["toyworld/a", "toyworld/b", "Average"]
    assert bars[0]["y"] == pytest.approx([81, 92, 86.5]) and bars[0]["error_y"]["array"] == pytest.approx([1, 2, 1.5])

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_results(tmp_path)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="other.json is not a results file"):
        load_results(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError, match="no results file or folder"):
        load_results(tmp_path / "missing")
