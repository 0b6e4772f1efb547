"""`data verify`: good and broken folders, clear text, never a stack trace."""

import argparse
import os
import signal
import json

import pytest

from mmprompt_lab.data import cli
from mmprompt_lab.data.verify import format_report, verify

SPLIT = "split_zhou_DescribableTextures.json"


@pytest.fixture
def data_root(tmp_path, mk):
    """A data root with a complete (small) DTD and FGVC-Aircraft."""
    rows = mk.zhou_split(
        tmp_path / "dtd",
        "images",
        SPLIT,
        ["banded", "bubbly", "zigzag"],
        {"train": [2, 2, 2], "val": [1, 1, 1], "test": [1, 1, 1]},
    )
    fgvc = tmp_path / "fgvc_aircraft"
    (fgvc / "variants.txt").parent.mkdir()
    (fgvc / "variants.txt").write_text("707-320\nA300B4\n")
    for n, split in enumerate(["train", "val", "test"]):
        mk.jpeg(fgvc / "images" / f"000{n}.jpg")
        (fgvc / f"images_variant_{split}.txt").write_text(f"000{n} A300B4\n")
    return tmp_path, rows


def test_good_root(data_root):
    root, _ = data_root
    report = verify(root)
    assert report.ok
    found = {c.name: c for c in report.checks if c.found}
    assert set(found) == {"dtd", "fgvc_aircraft"}
    assert found["dtd"].counts == {"train": 6, "val": 3, "test": 3} and found["dtd"].num_classes == 3
    assert any("47" in w for w in found["dtd"].warnings)  # a partial dataset is flagged, not failed
    text = format_report(report)
    assert "dtd" in text and "result: OK" in text and "not found under this root: caltech101 (caltech-101/)" in text


def test_missing_images_and_folders_are_listed_with_sources(data_root):
    root, rows = data_root
    (root / "dtd" / "images" / rows["val"][0][0]).unlink()
    report = verify(root, "dtd")
    assert not report.ok
    text = format_report(report)
    assert "1 of 3 images listed in split 'val' are missing" in text and rows["val"][0][0] in text
    assert "https://www.robots.ox.ac.uk/~vgg/data/dtd/" in text
    report = verify(root, "caltech101")
    assert not report.ok and "caltech-101 not found" in format_report(report)
    (root / "fgvc_aircraft" / "images_variant_val.txt").unlink()
    text = format_report(verify(root, "fgvc_aircraft"))
    assert "missing file images_variant_val.txt" in text and "result: problems found" in text


def test_broken_split_file_and_corrupt_image(data_root):
    root, rows = data_root
    (root / "dtd" / "images" / rows["test"][0][0]).write_bytes(b"garbage")
    text = format_report(verify(root, "dtd", decode=100))
    assert "cannot read image" in text and rows["test"][0][0] in text
    (root / "dtd" / SPLIT).write_text("{broken")
    report = verify(root, "dtd")
    assert not report.ok and "cannot read split file" in format_report(report)


def test_missing_split_file_is_a_warning_when_generation_works(tmp_path, mk):
    mk.class_folders(tmp_path / "dtd" / "images", {"banded": 4, "bubbly": 5})
    report = verify(tmp_path, "dtd")
    assert report.ok
    assert any("no split file" in w for w in report.checks[0].warnings)


def test_empty_root_and_unknown_dataset(tmp_path):
    assert not verify(tmp_path).ok
    assert "no dataset folder found" in format_report(verify(tmp_path))
    report = verify(tmp_path, "dtdd")
    assert not report.ok and "unknown dataset 'dtdd'" in format_report(report)


def test_cli_verify_and_list(data_root, capsys):
    root, _ = data_root
    parser = argparse.ArgumentParser(prog="mmprompt-lab")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "verify", "--root", str(root), "--dataset", "dtd", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["datasets"][0]["counts"]["train"] == 6
    assert cli.main(["verify", "--root", str(root / "nowhere")]) == 1
    assert "result: problems found" in capsys.readouterr().out
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "imagenet-adversarial/" in listing and "{} texture." in listing


def test_fifo_and_folder_in_a_split_are_reported_not_opened(data_root):
    root, rows = data_root
    image_dir = root / "dtd" / "images"
    fifo, folder = image_dir / rows["train"][0][0], image_dir / rows["test"][0][0]
    fifo.unlink()
    os.mkfifo(fifo)
    folder.unlink()
    folder.mkdir()

    def hung(signum, frame):
        raise KeyboardInterrupt("verify opened the FIFO and hung")  # not an Exception: nothing swallows it

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        check = verify(root, "dtd", decode=100).checks[0]  # decoding every file would hang on the FIFO
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not check.ok
    assert any(f"are not regular files:\n      {fifo} (FIFO)" in e for e in check.errors)
    assert any(f"{folder} (folder)" in e for e in check.errors)
