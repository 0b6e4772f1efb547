"""`mmprompt-lab run | table | predict` through `mmprompt_lab.cli.main` on tiny settings."""

import json

import pytest
from PIL import Image

import mmprompt_lab as mpl
from mmprompt_lab.cli import main


@pytest.fixture(scope="module")
def toyclip():
    return mpl.load_clip("toyclip", pretrained=False, device="cpu")


def test_run_and_table(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(
        [
            "run",
            "base2new",
            "--methods",
            "zeroshot",
            "--datasets",
            "toyworld/patterns",
            "--seeds",
            "1",
            "2",
            "--test-per-class",
            "1",
            "--pretrained",
            "random",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "Base-to-novel — toyclip:random, seeds 1, 2" in text and "| CLIP (zero-shot) |" in text
    assert "No published numbers exist for toyworld/patterns" in text
    saved = json.loads((out / "base2new-zeroshot.json").read_text())
    assert saved["config"]["seeds"] == [1, 2] and saved["config"]["test_per_class"] == 1
    assert (out / "report" / "results.md").exists() and (out / "report" / "base2new.html").exists()

    assert main(["table", str(out), "--no-figure", "--out", str(tmp_path / "rep")]) == 0
    assert "| CLIP (zero-shot) |" in capsys.readouterr().out
    assert (tmp_path / "rep" / "results.md").read_text().startswith("### Base-to-novel")


def test_run_argument_errors(tmp_path, capsys):
    assert (
        main(["run", "cross-dataset", "--method", "coop", "--datasets", "toyworld/shapes", "--out", str(tmp_path)]) == 2
    )
    assert "uses --source and --targets" in capsys.readouterr().err
    assert main(["run", "base2new", "--method", "coop", "--methods", "maple", "--out", str(tmp_path)]) == 2
    assert main(["table", str(tmp_path / "nothing")]) == 2
    assert "no results file or folder" in capsys.readouterr().err


def test_predict(tmp_path, capsys, toyclip):
    ckpt = mpl.save_learner(mpl.create_learner("coop", toyclip, ["circle", "star", "heart"]), tmp_path / "ckpt")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(tmp_path / "green.png")
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(ckpt),
                str(tmp_path / "green.png"),
                "--topk",
                "2",
                "--json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 1 and len(preds[0]["top"]) == 2
    assert preds[0]["top"][0]["probability"] >= preds[0]["top"][1]["probability"]

    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "green.png"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert " %" in out and "closed set" in out and "circle, star, heart" in out  # names the class set
    (tmp_path / "corrupt.jpg").write_bytes(b"garbage")
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "corrupt.jpg"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "corrupt.jpg" in err
