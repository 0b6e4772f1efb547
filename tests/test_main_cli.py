"""The CLI: tune writes a checkpoint and metrics.json; eval reloads it and reproduces the metrics."""

import json

import pytest

from mmprompt_lab.cli import main

SMALL = ["--shots", "2", "--epochs", "2", "--no-progress"]


def test_tune_then_eval_reproduces_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "tune",
                "--method",
                "coop",
                "--set",
                "n_ctx=4",
                "--pretrained",
                "random",
                "--out",
                str(out),
                "--json",
                *SMALL,
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out) == metrics
    assert {"accuracy", "zeroshot_accuracy", "per_class_accuracy"} <= set(metrics)
    assert {p.name for p in out.iterdir()} >= {"learner.safetensors", "learner.json", "metrics.json"}
    assert main(["eval", "--checkpoint", str(out), "--json"]) == 0
    again = json.loads((out / "eval" / "metrics.json").read_text())
    assert again["accuracy"] == metrics["accuracy"]
    assert again["per_class_accuracy"] == metrics["per_class_accuracy"]


def test_tune_says_what_happened(tmp_path, capsys):
    out = tmp_path / "said"
    assert main(["tune", "--method", "coop", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    assert text.count("  epoch ") == 2  # one line per epoch stays on screen
    m = json.loads((out / "metrics.json").read_text())
    delta = m["accuracy"] - m["zeroshot_accuracy"]
    assert f"{m['accuracy']:6.2f} % on {m['n_test']['all']} test images" in text
    assert f"(zero-shot {m['zeroshot_accuracy']:.2f} %, {delta:+.2f})" in text
    assert f"mmprompt-lab eval --checkpoint {out}" in text and "learner.safetensors" in text
    assert main(["eval", "--checkpoint", str(out)]) == 0
    assert f"accuracy {m['accuracy']:.2f} % on {m['n_test']['all']} images" in capsys.readouterr().out


def test_tune_base2new_reports_hm(tmp_path):
    out = tmp_path / "b2n"
    assert (
        main(
            [
                "tune",
                "--method",
                "maple",
                "--base2new",
                "--pretrained",
                "random",
                "--out",
                str(out),
                "--no-zeroshot",
                *SMALL,
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    b, n = m["base"], m["novel"]
    assert m["hm"] == pytest.approx(2 * b * n / (b + n) if b + n else 0)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["tune", "--method", "mapel"], "unknown method 'mapel'"),
        (["tune", "--dataset", "toyworld/shapez"], "unknown dataset 'toyworld/shapez'"),
        (["tune", "--set", "n_cxt=3"], "has no option 'n_cxt'"),
        (["eval", "--checkpoint", "/nonexistent/run"], "no checkpoint at"),
    ],
)
def test_bad_input_is_one_clear_error(argv, message, capsys):
    assert main(argv + ["--pretrained", "random"] * (argv[0] == "tune")) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_list_prints_whole_tables(capsys):
    import open_clip

    from mmprompt_lab import list_learners, list_models

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(m in out for m in list_learners()) and "toyworld/shapes" in out
    assert "3,555,072" in out  # MaPLe's ViT-B/16 count, from the methods table
    names = [m for m in list_models() if m in open_clip.list_models()]
    assert names and all(n in out.split() for n in names)  # every supported model, never cut off


def test_version(capsys):
    import torch

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("mmprompt_lab ") and torch.__version__ in out


def test_pretrain_exports_loadable_weights(tmp_path):
    from mmprompt_lab.backbone import load_clip

    weights = tmp_path / "toy.safetensors"
    assert (
        main(
            [
                "pretrain",
                "--out",
                str(tmp_path / "run"),
                "--steps",
                "2",
                "--batch-size",
                "8",
                "--threads",
                "1",
                "--export",
                str(weights),
            ]
        )
        == 0
    )
    assert (tmp_path / "toy_train_log.json").exists()
    clip = load_clip(str(weights), device="cpu")
    assert clip.name == "toyclip" and clip.pretrained == str(weights)


def test_notebooks_render_writes_executed_html(tmp_path, capsys):
    import nbformat

    cell = nbformat.v4.new_code_cell("import os; print('ci=' + os.environ['MMPROMPT_CI'])")
    nb = nbformat.v4.new_notebook(cells=[cell])
    path = tmp_path / "00_tiny.ipynb"
    nbformat.write(nb, path)
    assert main(["notebooks", "render", str(path), "--ci", "--out", str(tmp_path / "html")]) == 0
    html = (tmp_path / "html" / "00_tiny.html").read_text()
    assert "ci=1" in html  # executed, at CI size
    bad = tmp_path / "01_bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), bad)
    assert main(["notebooks", "render", str(bad), "--out", str(tmp_path / "html")]) == 2
    assert "01_bad.ipynb: a cell failed" in capsys.readouterr().err
