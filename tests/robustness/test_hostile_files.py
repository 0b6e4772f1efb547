"""Hostile inputs end in one actionable error line, never a traceback from PIL/csv/safetensors, a
hang or a silently wrong result: decompression bombs, FIFOs and folders named like images, odd CSV
files, corrupt pretraining checkpoints, degenerate selections and non-finite logits."""

from __future__ import annotations

import logging
import os
import signal
import struct
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

import mmprompt_lab as mpl
from mmprompt_lab import cli
from mmprompt_lab.data import get_source, load_dataset
from mmprompt_lab.data.images import PIXEL_LIMIT_ENV, BadImageError, ImageTooLargeError, list_image_files, load_rgb
from mmprompt_lab.io import dumps
from mmprompt_lab.protocols import predict
from mmprompt_lab.toyclip import pretrain


class Hung(BaseException):
    """Raised by `deadline`; a BaseException, so no `except OSError/ValueError` in the code can hide it."""


@contextmanager
def deadline(seconds: int = 5):
    """Fail (instead of hanging the test run) when the body blocks, e.g. on opening a FIFO."""

    def interrupt(signum, frame):
        raise Hung(f"still running after {seconds} s: something opened a FIFO or waits forever")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def image(path: Path, size: tuple[int, int] = (8, 8), colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width × height RGB pixels, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def pixel_limit(monkeypatch):
    """Restore PIL's global limit after the test (the environment variable sets it when used)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.delenv(PIXEL_LIMIT_ENV, raising=False)
    return monkeypatch


# ----------------------------------------------------------------------------- decompression bombs
def test_png_declaring_a_huge_size_is_refused_before_decoding(tmp_path, pixel_limit):
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageTooLargeError) as err:
        warnings.simplefilter("always")
        load_rgb(bomb)
    message = str(err.value)
    assert isinstance(err.value, BadImageError) and isinstance(err.value, ValueError)
    assert str(bomb) in message and "10,000,000,000 pixels" in message
    assert f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels" in message
    assert f"{PIXEL_LIMIT_ENV}=10000000000" in message and "\n" not in message
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_image_between_one_and_two_limits_is_refused_not_just_warned(tmp_path, pixel_limit):
    pixel_limit.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL itself only warns up to 200 pixels
    path = image(tmp_path / "a.png", (8, 16))  # 128 pixels
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageTooLargeError, match="128 pixels"):
        warnings.simplefilter("always")
        load_rgb(path)
    assert not caught
    assert load_rgb(image(tmp_path / "b.png", (10, 10))).size == (10, 10)  # at the limit: fine


def test_limit_from_the_environment_variable(tmp_path, pixel_limit):
    path = image(tmp_path / "a.png")  # 64 pixels
    pixel_limit.setenv(PIXEL_LIMIT_ENV, "50")
    with pytest.raises(ImageTooLargeError, match=r"is 64 pixels, more than the limit of 50 pixels"):
        load_rgb(path)
    pixel_limit.setenv(PIXEL_LIMIT_ENV, "64")
    assert load_rgb(path).size == (8, 8)
    pixel_limit.setenv(PIXEL_LIMIT_ENV, "none")
    assert load_rgb(path).size == (8, 8)
    pixel_limit.setenv(PIXEL_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match=f"{PIXEL_LIMIT_ENV}='lots': expected a positive number"):
        load_rgb(path)


def test_bomb_in_a_dataset_is_named_or_skipped(tmp_path, pixel_limit):
    for name in ("a", "b"):
        image(tmp_path / "cat" / f"{name}.png")
        image(tmp_path / "dog" / f"{name}.png")
    bomb = png_header_only(tmp_path / "cat" / "c.png", 50_000, 50_000)
    ds = load_dataset("folder", root=tmp_path, split="test")
    index = [it.path for it in ds.items].index(str(bomb))
    with pytest.raises(ImageTooLargeError, match="c.png is 2,500,000,000 pixels"):
        ds[index]
    skipping = load_dataset("folder", root=tmp_path, split="test", skip_bad_images=True)
    assert skipping[index][0].size == (8, 8) and skipping.skipped == [str(bomb)]


# ----------------------------------------------------------------------------- FIFOs, folders, devices
def test_load_rgb_never_opens_a_fifo_folder_or_device(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "folder.png").mkdir()
    with deadline():
        with pytest.raises(BadImageError, match=r"pipe.jpg: not a regular file \(FIFO\)\. Point to the image file"):
            load_rgb(tmp_path / "pipe.jpg")
        with pytest.raises(BadImageError, match=r"folder.png: not a regular file \(folder\)"):
            load_rgb(tmp_path / "folder.png")
        if os.path.exists("/dev/null"):
            with pytest.raises(BadImageError, match=r"/dev/null: not a regular file \(device\)"):
                load_rgb("/dev/null")


def test_folder_scan_skips_fifos_and_folders_named_like_images(tmp_path, caplog):
    for name in ("a", "b"):
        image(tmp_path / "cat" / f"{name}.jpg")
        image(tmp_path / "dog" / f"{name}.jpg")
    os.mkfifo(tmp_path / "cat" / "pipe.jpg")
    (tmp_path / "dog" / "album.jpg").mkdir()  # a folder named like an image: scanned, not opened
    image(tmp_path / "dog" / "album.jpg" / "inside.jpg")
    with deadline(), caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", root=tmp_path, split="train")
        [ds[i] for i in range(len(ds))]
    names = [Path(it.path).name for it in ds.items]
    assert names == ["a.jpg", "b.jpg", "a.jpg", "inside.jpg", "b.jpg"] and ds.classnames == ["cat", "dog"]
    assert f"{tmp_path / 'cat' / 'pipe.jpg'} (FIFO)" in caplog.text and "not regular files" in caplog.text
    with deadline(), caplog.at_level(logging.WARNING):
        flat = list_image_files(tmp_path / "dog", recursive=False)  # the readers' non-recursive scan
    assert [Path(p).name for p in flat] == ["a.jpg", "b.jpg"]
    assert f"{tmp_path / 'dog' / 'album.jpg'} (folder)" in caplog.text


def test_csv_row_naming_a_fifo_is_refused(tmp_path):
    image(tmp_path / "a.jpg")
    image(tmp_path / "b.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "list.csv").write_text("path,classname\na.jpg,cat\nb.jpg,dog\npipe.jpg,dog\n")
    with deadline():
        with pytest.raises(
            BadImageError,
            match=r"1 path\(s\) listed in dataset 'csv' split 'train' are not "
            r"regular files: .*pipe.jpg \(FIFO\)\. Images are never read",
        ):
            load_dataset("csv", root=tmp_path / "list.csv", split="train")
        unchecked = load_dataset("csv", root=tmp_path / "list.csv", split="train", check_files=False)
        with pytest.raises(BadImageError, match=r"not a regular file \(FIFO\)"):
            unchecked[2]
        os.mkfifo(tmp_path / "pipe.csv")
        with pytest.raises(ValueError, match=r"root must be a CSV file, got .*pipe.csv \(FIFO\)"):
            get_source("csv", root=tmp_path / "pipe.csv")


@pytest.fixture(scope="module")
def learner(tiny_clip):
    torch.manual_seed(0)
    return mpl.create_learner("coop", tiny_clip, ["circle", "star", "heart"])


def test_predict_refuses_a_fifo_argument_and_skips_one_in_a_folder(learner, tmp_path, caplog):
    image(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    with deadline():
        with pytest.raises(ValueError, match=r"cannot predict .*pipe.png: not an image file or a folder \(FIFO\)"):
            predict(learner, [tmp_path / "a.png", tmp_path / "pipe.png"])
        with caplog.at_level(logging.WARNING):
            preds = predict(learner, tmp_path, topk=2)
    assert [p["image"] for p in preds] == [str(tmp_path / "a.png")]
    assert "pipe.png (FIFO)" in caplog.text


def test_pretraining_checkpoint_that_is_a_fifo_is_not_opened(tmp_path):
    os.mkfifo(tmp_path / "checkpoint.safetensors")
    with deadline(), pytest.raises(ValueError, match="checkpoint.safetensors is not a regular file"):
        pretrain(tmp_path, steps=1, batch_size=4, threads=1)


# ----------------------------------------------------------------------------- CSV files
def two_images(folder: Path) -> None:
    image(folder / "x.jpg")
    image(folder / "y.jpg")


def test_csv_with_a_utf8_bom_is_read(tmp_path):
    two_images(tmp_path)
    (tmp_path / "excel.csv").write_text("\ufeffpath,classname\r\nx.jpg,xerus\r\ny.jpg,yak\r\n", encoding="utf-8")
    ds = load_dataset("csv", root=tmp_path / "excel.csv", split="train")
    assert ds.classnames == ["xerus", "yak"] and ds.labels == [0, 1]
    (tmp_path / "labels.csv").write_text("\ufeff\n path , label \n\ny.jpg,1\nx.jpg,0\n", encoding="utf-8")
    assert load_dataset("csv", root=tmp_path / "labels.csv", split="train").classnames == ["0", "1"]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"bad.csv: the file is empty; expected a header line"),
        (b"\n\n  \n", r"bad.csv: the file is empty"),
        (
            "path,classname\nx.jpg,caf\u00e9\n".encode("latin-1"),
            r"bad.csv line 2: not UTF-8 text \(byte 0xe9\); "
            "save the file as UTF-8",
        ),
        (b"\xef\xbb\xbfpath,classname\nx.jpg,xerus\ny.jpg,\xff\n", r"bad.csv line 3: not UTF-8 text \(byte 0xff\)"),
        (
            b"path,classname\nx.jpg,xerus\ny.jpg\n",
            r"bad.csv line 3: 1 value\(s\) but the header 'path,classname' "
            r"has 2; check for missing or extra commas",
        ),
        (b"path,classname\nx.jpg,xerus,extra\n", r"line 2: 3 value\(s\) but the header"),
        (b"path,classname\n\n,yak\n", r"bad.csv line 3: empty path"),
        (b"path,classname\nx.jpg,\n", r"line 2: empty classname"),
        (b"path,path,classname\nx.jpg,y.jpg,yak\n", r"header names column\(s\) \['path'\] more than once"),
        (b"path,classname\n", r"bad.csv: no rows"),
    ],
)
def test_broken_csv_gives_one_clear_line(tmp_path, content, match):
    two_images(tmp_path)
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(ValueError, match=match) as err:
        get_source("csv", root=tmp_path / "bad.csv")
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- pretraining checkpoints
TINY = dict(steps=1, batch_size=4, threads=1, ckpt_every=1, warmup=1, decay_steps=1)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("pretrain")
    pretrain(out, **TINY)
    return (out / "checkpoint.safetensors").read_bytes()


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "header only"])
def test_corrupt_checkpoint_names_the_file(tmp_path, good_checkpoint, kind):
    ckpt = tmp_path / "checkpoint.safetensors"
    header = 8 + struct.unpack("<Q", good_checkpoint[:8])[0]
    ckpt.write_bytes(
        {
            "garbage": b"this is not a safetensors file at all",
            "empty": b"",
            "truncated": good_checkpoint[: header + 100],
            "header only": good_checkpoint[:header],
        }[kind]
    )
    with pytest.raises(ValueError) as err:
        pretrain(tmp_path, **TINY)
    message = str(err.value)
    assert message.startswith(f"pretraining checkpoint {ckpt} is corrupt or not a ToyCLIP pretraining checkpoint")
    assert message.endswith("delete it to start over, or use another out_dir (--out)") and "\n" not in message


@pytest.mark.parametrize(
    "meta, reason",
    [
        (None, "KeyError: 'step'"),
        ({"step": "two", "config": "{}", "history": "[]"}, "ValueError: invalid literal for int()"),
        ({"step": "1", "config": "{not json", "history": "[]"}, "JSONDecodeError: Expecting property name"),
        ({"step": "1", "config": '{"steps": 1}', "history": "{}"}, "ValueError: unexpected step, config or history"),
        ({"step": "1", "config": '{"steps": 1}', "history": "[]"}, "RuntimeError: Error(s) in loading state_dict"),
    ],
)
def test_checkpoint_with_bad_metadata_or_tensors(tmp_path, meta, reason):
    from safetensors.torch import save_file

    ckpt = tmp_path / "checkpoint.safetensors"
    save_file({"model.unexpected": torch.zeros(2)}, str(ckpt), metadata=meta)
    with pytest.raises(ValueError, match=r"is corrupt or not a ToyCLIP pretraining checkpoint") as err:
        pretrain(tmp_path, **TINY)
    assert f"({reason}" in str(err.value) and "\n" not in str(err.value)


def test_cli_prints_one_line_for_a_corrupt_checkpoint(tmp_path, capsys):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x00" * 20)
    assert cli.main(["pretrain", "--out", str(tmp_path), "--steps", "1", "--batch-size", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmprompt-lab pretrain: error: pretraining checkpoint ") and err.count("\n") == 1
    assert "Traceback" not in err and "delete it" in err


# ----------------------------------------------------------------------------- silent wrong selections
def folder_dataset(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        for i in range(n):
            image(root / name / f"{i}.png", colour=(i * 20, 0, 0))
    return root


def test_a_single_class_dataset_is_refused(tmp_path):
    folder_dataset(tmp_path, {"only": 3})
    with pytest.raises(
        ValueError,
        match=r"dataset 'folder' \(all classes\) has 1 class\(es\) \['only'\]; "
        "prompt learning classifies among at least 2 classes",
    ):
        load_dataset("folder", root=tmp_path)


def test_shots_beyond_a_class_size_are_recorded_and_warned(tmp_path, caplog):
    folder_dataset(tmp_path, {"big": 6, "small": 2, "tiny": 1})
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", root=tmp_path, shots=4, seed=1)
    assert ds.info["shots"] == 4 and ds.info["shots_used"] == 1
    assert sorted(ds.labels) == [0, 0, 0, 0, 1, 1, 2]
    assert "'small' (2), 'tiny' (1)" in caplog.text and "4 shots per class asked" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        enough = load_dataset("folder", root=tmp_path, shots=1, seed=1)
    assert enough.info["shots_used"] == 1 and not caplog.text
    assert load_dataset("folder", root=tmp_path, split="test").info["shots_used"] is None


@pytest.mark.parametrize("shots", [0, -3, 1.5, True, "4"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_nonpositive_or_odd_shots_are_refused(tmp_path, shots, split):
    folder_dataset(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(
        ValueError,
        match=rf"shots must be a whole number ≥ 1 \(images per class\), or None "
        rf"for every image; got {shots!r}",
    ):
        load_dataset("folder", root=tmp_path, split=split, shots=shots)


# ----------------------------------------------------------------------------- predict
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_predict_refuses_non_finite_logits(learner, tmp_path, monkeypatch, bad):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")

    def broken(x, text_features=None):  # (B, C): the second image's logits are not finite
        logits = torch.zeros(len(x), 3)
        logits[1, 0] = bad
        return logits

    monkeypatch.setattr(learner, "forward", broken)
    with pytest.raises(
        FloatingPointError,
        match=rf"gave NaN or infinite logits for 1 image\(s\) "
        rf"\({tmp_path / 'b.png'}\); its prompts are not usable",
    ):
        predict(learner, tmp_path)


def test_predictions_are_strict_json(learner, tmp_path):
    image(tmp_path / "a.png")
    preds = predict(learner, tmp_path, topk=3)
    assert "NaN" not in dumps(preds) and "Infinity" not in dumps(preds)
