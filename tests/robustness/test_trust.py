"""Results you can trust: the same seed gives the same bytes in another process, non-finite numbers
never become results, runs are never lost or half-written, resume is exact, options are typed."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mmprompt_lab.cli import main
from mmprompt_lab.io import write_json

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
TUNE = ["tune", "--epochs", "2", "--shots", "1", "--seed", "3", "--no-progress", "--threads", "1"]


def cli(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "mmprompt_lab.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# ----------------------------------------------------------------------------- determinism
def test_same_command_same_bytes_in_two_processes(tmp_path):
    for name in ("a", "b"):
        cli(*TUNE, "--method", "maple", "--base2new", "--out", str(tmp_path / name), "--json")
    for file in ("metrics.json", "learner.safetensors", "learner.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


PIPELINE = textwrap.dedent("""
    import hashlib, json, sys, torch
    torch.set_num_threads(1)
    import mmprompt_lab as mpl
    from mmprompt_lab.experiment import ExperimentSpec, run_experiment
    from mmprompt_lab.io import dumps
    clip = mpl.load_clip("toyclip")
    out = {}
    for method in mpl.list_learners():
        spec = ExperimentSpec(method, "toyworld/polygons", shots=1, seed=4, base2new=True, epochs=2,
                              batch_size=4, test_per_class=2)
        r = run_experiment(spec, clip)
        weights = b"".join(v.detach().contiguous().numpy().tobytes()
                           for _, v in sorted(r.learner.learner_state_dict().items()))
        out[method] = [dumps(r.metrics), hashlib.sha256(weights).hexdigest()]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_every_method_is_deterministic_across_processes():
    runs = [
        subprocess.run([sys.executable, "-c", PIPELINE], env=ENV, capture_output=True, text=True, timeout=600)
        for _ in range(2)
    ]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = (json.loads(p.stdout.strip().splitlines()[-1]) for p in runs)
    assert set(first) == set(__import__("mmprompt_lab").list_learners())
    for method in first:
        assert first[method] == second[method], method


def test_create_learner_seed_fixes_the_init_and_leaves_the_global_rng(tiny_clip):
    from mmprompt_lab import create_learner

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = create_learner("maple", tiny_clip, ["x", "y"], seed=7, ctx_init="")
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator was not consumed
    torch.rand(5)  # move the global generator: the seeded init must not care
    b = create_learner("maple", tiny_clip, ["x", "y"], seed=7, ctx_init="")
    c = create_learner("maple", tiny_clip, ["x", "y"], seed=8, ctx_init="")
    sa, sb, sc = (m.learner_state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


# ----------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "0"])
def test_bad_learning_rate_is_refused_before_anything_is_written(tmp_path, capsys, lr):
    assert main([*TUNE, "--method", "coop", "--lr", lr, "--out", str(tmp_path / "run")]) == 2
    assert "lr" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_divergence_stops_with_epoch_and_step_and_saves_nothing(tmp_path, capsys):
    rc = main([*TUNE, "--method", "coop", "--epochs", "4", "--lr", "1e30", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "NaN or infinite at epoch" in err and "step" in err and "lower the learning rate" in err
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_evaluate_refuses_non_finite_logits(tiny_clip):
    from mmprompt_lab import create_learner, evaluate, load_dataset

    learner = create_learner("coop", tiny_clip, ["a", "b"], seed=1)
    with torch.no_grad():
        learner.ctx.fill_(float("nan"))
    test = load_dataset("toyworld/polygons", split="test").first_per_class(1)
    with pytest.raises(FloatingPointError, match="NaN or infinite logits"):
        evaluate(learner, test)


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_json(tmp_path / "m.json", {"accuracy": float("nan")})
    assert not (tmp_path / "m.json").exists()


# ----------------------------------------------------------------------------- run folders
def test_runs_get_fresh_folders_and_explicit_out_needs_overwrite(tmp_path, capsys):
    for _ in range(2):  # the README's main command twice: two runs, nothing replaced
        assert cli(*TUNE, "--method", "coop", "--no-zeroshot", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "coop-toyworld_polygons-seed3",
        "coop-toyworld_polygons-seed3-2",
    ]
    out = tmp_path / "runs" / "coop-toyworld_polygons-seed3"
    before = (out / "metrics.json").read_bytes()
    assert main([*TUNE, "--method", "coop", "--seed", "4", "--out", str(out)]) == 2
    assert "already holds a run; pass --overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    assert main([*TUNE, "--method", "coop", "--seed", "4", "--no-zeroshot", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["seed"] == 4
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "coop-toyworld_polygons-seed3",
        "coop-toyworld_polygons-seed3-2",
    ]  # no leftovers


def test_files_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert main([*TUNE, "--method", "coop", "--no-zeroshot", "--out", str(tmp_path / "r")]) == 0
    finally:
        os.umask(old)
    for f in (tmp_path / "r").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


@pytest.mark.parametrize("case", ["file", "under_a_file"])
def test_unusable_out_is_refused_before_training(tmp_path, capsys, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if case == "file" else blocker / "run"
    assert main([*TUNE, "--method", "coop", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "blocker" in err and "Traceback" not in err and "epoch" not in err


def test_a_second_writer_gets_a_clear_error_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    lock.write_text(str(os.getpid()))  # a live writer: this very process
    assert main([*TUNE, "--method", "coop", "--no-zeroshot", "--out", str(out)]) == 2
    assert "being written by another run" in capsys.readouterr().err and not out.exists()
    lock.write_text("999999999")  # its writer is gone
    assert main([*TUNE, "--method", "coop", "--no-zeroshot", "--out", str(out)]) == 0
    assert (out / "metrics.json").exists() and not lock.exists()


# ----------------------------------------------------------------------------- resume
def test_ctrl_c_then_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    args = [
        "tune",
        "--method",
        "coop",
        "--epochs",
        "40",
        "--shots",
        "8",
        "--seed",
        "2",
        "--no-progress",
        "--no-zeroshot",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmprompt_lab.cli", *args, "--out", "r1"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        # a background job (nohup, some CI runners) starts with SIGINT ignored, and children inherit
        # that: give the child the default disposition, as a terminal's Ctrl-C would find it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in iter(proc.stdout.readline, ""):  # line by line, no read-ahead: interrupt early in the run
        if "epoch 2/40" in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "r1").exists() and (tmp_path / ".r1.partial" / "train_state.json").exists()
    changed = cli(*[a if a != "40" else "41" for a in args], "--out", "r1", "--resume", cwd=tmp_path, check=False)
    assert changed.returncode == 2 and "other settings (epochs: 40 → 41)" in changed.stderr
    cli(*args, "--out", "r1", "--resume", cwd=tmp_path)
    cli(*args, "--out", "r2", cwd=tmp_path)
    for file in ("metrics.json", "learner.safetensors"):
        assert (tmp_path / "r1" / file).read_bytes() == (tmp_path / "r2" / file).read_bytes(), file
    assert not (tmp_path / ".r1.partial").exists()


def test_resume_without_an_interrupted_run_and_fit_with_another_recipe_are_refused(tmp_path, tiny_clip, capsys):
    assert main([*TUNE, "--method", "coop", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    from mmprompt_lab import create_learner, fit, load_dataset

    train = load_dataset("toyworld/polygons", split="train", shots=1, seed=1)
    learner = create_learner("coop", tiny_clip, train.classnames, seed=1, n_ctx=2)
    fit(learner, train, epochs=2, batch_size=4, seed=1, checkpoint_dir=tmp_path / "ckpt", progress=False)
    with pytest.raises(ValueError, match="other settings"):
        fit(learner, train, epochs=2, batch_size=4, lr=0.01, seed=1, checkpoint_dir=tmp_path / "ckpt", progress=False)
    (tmp_path / "ckpt" / "train_state.json").write_text('{"epochs_done": 1}')
    with pytest.raises(ValueError, match="not a valid training state"):
        fit(learner, train, epochs=2, batch_size=4, seed=1, checkpoint_dir=tmp_path / "ckpt", progress=False)


# ----------------------------------------------------------------------------- typed options, recipe notes
def test_typed_options(tmp_path, capsys):
    assert main([*TUNE, "--method", "coop", "--set", "n_ctx=four"]) == 2
    assert "CoOpConfig.n_ctx expects an integer, got 'four'" in capsys.readouterr().err
    assert main([*TUNE, "--method", "coop", "--set", "csc=maybe"]) == 2
    assert "expects true or false" in capsys.readouterr().err
    assert (
        main(
            [
                *TUNE,
                "--method",
                "coop",
                "--no-zeroshot",
                "--set",
                "csc=yes",
                "--set",
                "n_ctx=2",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "r" / "learner.json").read_text())["config"]
    assert config["csc"] is True and config["n_ctx"] == 2


def test_single_epoch_with_an_lr_says_it_is_warm_up(tmp_path, capsys):
    assert (
        main(
            [*TUNE, "--method", "coop", "--epochs", "1", "--lr", "0.01", "--no-zeroshot", "--out", str(tmp_path / "r")]
        )
        == 0
    )
    assert "only epoch is the warm-up" in capsys.readouterr().out
    assert "warm-up" in json.loads((tmp_path / "r" / "metrics.json").read_text())["notes"][0]


def test_eval_refuses_a_dataset_whose_classes_changed(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TUNE, "--method", "coop", "--no-zeroshot", "--out", str(out)]) == 0
    card = json.loads((out / "learner.json").read_text())
    card["classnames"] = list(reversed(card["classnames"]))
    (out / "learner.json").write_text(json.dumps(card))
    assert main(["eval", "--checkpoint", str(out)]) == 2
    assert "the checkpoint was tuned on" in capsys.readouterr().err


# ----------------------------------------------------------------------------- protocol results
def test_protocol_results_merge_by_record_and_refuse_another_recipe(tmp_path, tiny_clip):
    from mmprompt_lab.protocols import few_shot

    kw = dict(shots=(1,), model=tiny_clip, out=tmp_path, epochs=2, batch_size=4, test_per_class=1)
    few_shot("coop", ["toyworld/polygons"], seeds=(1,), **kw)
    res = few_shot("coop", ["toyworld/polygons"], seeds=(2,), **kw)
    assert sorted(r["seed"] for r in res["results"]) == [1, 2]
    saved = json.loads((tmp_path / "few_shot-coop.json").read_text())
    assert sorted(r["seed"] for r in saved["results"]) == [1, 2]
    with pytest.raises(ValueError, match="other settings"):
        few_shot("coop", ["toyworld/polygons"], seeds=(3,), **{**kw, "epochs": 3})
    with pytest.raises(ValueError, match="zero-shot CLIP is the method 'zeroshot'"):
        few_shot("coop", ["toyworld/polygons"], shots=(0,), seeds=(1,), model=tiny_clip, out=None)
    assert Path(tmp_path / "few_shot-coop.json").read_text() == json.dumps(saved, indent=2) + "\n"
