"""Image loading: any mode → RGB, corrupt files named, skips counted, missing files caught early."""

import json
import logging

import pytest
from PIL import Image

from mmprompt_lab.data import load_dataset
from mmprompt_lab.data.images import BadImageError, MissingImageError, load_rgb

SPLIT = "split_zhou_DescribableTextures.json"


@pytest.mark.parametrize(
    "mode, fmt",
    [
        ("L", "JPEG"),
        ("CMYK", "JPEG"),
        ("RGBA", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("1", "PNG"),
        ("I;16", "PNG"),
        ("RGB", "PNG"),
    ],
)
def test_every_mode_becomes_rgb(tmp_path, mk, mode, fmt):
    path = mk.jpeg(tmp_path / f"x.{fmt.lower()}", seed=3, mode=mode, fmt=fmt)
    with Image.open(path) as raw:
        assert raw.mode == mode  # the fixture really is in that mode
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (8, 8)


def test_palette_with_transparency_and_alpha_dropped_like_official(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (10, 200, 30, 0))
    rgba.save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.png").getpixel((0, 0)) == (10, 200, 30)  # = .convert("RGB")
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 250, 5, 5] + [0] * 762)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png", transparency=1)
    assert load_rgb(tmp_path / "p.png").getpixel((1, 1)) == (250, 5, 5)


def test_corrupt_and_truncated_images_name_the_file(tmp_path, mk):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    with pytest.raises(BadImageError, match="not_an_image.jpg"):
        load_rgb(bad)
    good = mk.jpeg(tmp_path / "good.jpg", size=64)
    cut = tmp_path / "truncated.jpg"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(BadImageError, match="truncated.jpg"):
        load_rgb(cut)
    with pytest.raises(MissingImageError, match="nowhere.jpg"):
        load_rgb(tmp_path / "nowhere.jpg")


@pytest.fixture
def dtd(tmp_path, mk):
    data = mk.zhou_split(
        tmp_path / "dtd", "images", SPLIT, ["a", "b", "c"], {"train": [4, 4, 4], "val": [2, 2, 2], "test": [3, 3, 3]}
    )
    return tmp_path, data


def test_corrupt_image_in_a_dataset(dtd, caplog):
    root, data = dtd
    broken = root / "dtd" / "images" / data["test"][1][0]
    broken.write_bytes(b"\x00" * 10)
    ds = load_dataset("dtd", root=root, split="test")
    ds[0]
    with pytest.raises(BadImageError, match=str(broken)):
        ds[1]
    skipping = load_dataset("dtd", root=root, split="test", skip_bad_images=True)
    with caplog.at_level(logging.WARNING):
        image, label = skipping[1]  # replaced by the next readable item
    assert label == skipping.items[2].label and image.mode == "RGB"
    skipping[1]
    assert skipping.skipped == [str(broken)]  # counted once
    assert str(broken) in caplog.text
    assert skipping.with_transform(None).skip_bad_images


def test_missing_images_fail_before_training(dtd):
    root, data = dtd
    gone = [root / "dtd" / "images" / row[0] for row in data["train"][:2]]
    for path in gone:
        path.unlink()
    with pytest.raises(MissingImageError) as err:
        load_dataset("dtd", root=root, split="train")
    assert "2 image(s)" in str(err.value) and all(str(p) in str(err.value) for p in gone)
    assert "data verify" in str(err.value)
    # a few-shot selection that avoids the missing files loads; one that needs them fails
    outcomes = set()
    for seed in range(1, 8):
        try:
            load_dataset("dtd", root=root, split="train", shots=1, seed=seed)
            outcomes.add("ok")
        except MissingImageError:
            outcomes.add("missing")
    assert outcomes == {"ok", "missing"}
    assert len(load_dataset("dtd", root=root, split="train", check_files=False)) == 12


def test_missing_image_in_split_file_is_named(dtd):
    root, data = dtd
    data["test"].append(["a/never_there.jpg", 0, "a"])
    (root / "dtd" / SPLIT).write_text(json.dumps(data))
    with pytest.raises(MissingImageError, match="never_there.jpg"):
        load_dataset("dtd", root=root, split="test")
