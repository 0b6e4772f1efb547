"""`predict` on image files written with PIL: sorted top-k, probabilities, k, folders, bad files."""

import pytest
import torch
from PIL import Image

import mmprompt_lab as mpl
from mmprompt_lab.data.images import BadImageError
from mmprompt_lab.protocols import predict

NAMES = ["circle", "star", "heart", "arrow", "house"]


@pytest.fixture(scope="module")
def learner(tiny_clip):
    torch.manual_seed(0)
    return mpl.create_learner("coop", tiny_clip, NAMES)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("L", (32, 32), 128).save(tmp_path / "b.jpg")
    Image.new("RGBA", (20, 50), (0, 0, 255, 100)).save(tmp_path / "sub" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_topk_sorted_probabilities(learner, folder):
    preds = predict(learner, folder, topk=3)
    assert [p["image"] for p in preds] == [str(folder / "a.png"), str(folder / "b.jpg"), str(folder / "sub" / "c.png")]
    for p in preds:
        probs = [t["probability"] for t in p["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert all(NAMES[t["index"]] == t["classname"] for t in p["top"])
    full = predict(learner, [folder / "a.png"], topk=99)[0]["top"]  # k capped at the class count
    assert len(full) == len(NAMES) and sum(t["probability"] for t in full) == pytest.approx(1, abs=1e-5)
    assert [t["classname"] for t in full[:3]] == [t["classname"] for t in preds[0]["top"]]
    # the same image alone vs in a batch of three: equal up to float rounding of the batched matmul
    assert [t["probability"] for t in full[:3]] == pytest.approx([t["probability"] for t in preds[0]["top"]], abs=1e-6)


def test_checkpoint_pil_and_package_export(learner, folder, tiny_clip, tmp_path):
    mpl.save_learner(learner, tmp_path / "ckpt")
    image = Image.open(folder / "a.png")
    from_ckpt = mpl.predict(tmp_path / "ckpt", [image], topk=2, clip=tiny_clip)
    assert from_ckpt[0]["image"] == "<image 0>"
    assert from_ckpt[0]["top"] == pytest.approx(predict(learner, folder / "a.png", topk=2)[0]["top"])
    assert mpl.predict is predict


def test_errors_name_the_file(learner, folder):
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BadImageError, match="broken.jpg"):
        predict(learner, [folder / "a.png", bad])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predict(learner, folder / "missing.png")
    with pytest.raises(ValueError, match="topk must be"):
        predict(learner, folder / "a.png", topk=0)
    (folder / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        predict(learner, folder / "empty")
