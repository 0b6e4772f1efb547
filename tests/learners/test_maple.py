"""MaPLe's named recipe "transfer" (cross-dataset / domain generalisation): the preset mechanism of the
learner base, the experiment spec, `tune --preset` and `run --preset`."""

import json

import pytest

from mmprompt_lab.experiment import ExperimentSpec, fit_settings, preset_options, train_learner
from mmprompt_lab.learners import create_learner, get_learner_class
from mmprompt_lab.learners.base import scaled_depth

MAPLE = get_learner_class("maple")


def test_transfer_preset_is_the_official_cross_dataset_recipe():
    preset = MAPLE.named_preset("transfer")
    assert (preset.train.lr, preset.train.batch_size, preset.train.epochs) == (0.0026, 4, 2)
    assert preset.options == {"depth": 3}


def test_unknown_presets_are_named_with_what_exists():
    with pytest.raises(ValueError, match=r"maple has no preset 'trasnfer'\. Did you mean 'transfer'\?"):
        MAPLE.named_preset("trasnfer")
    with pytest.raises(ValueError, match="coop has no preset 'transfer'.*only the official default"):
        get_learner_class("coop").named_preset("transfer")
    with pytest.raises(ValueError, match="no preset 'transfer'"):
        ExperimentSpec("coop", preset="transfer")


def test_preset_depth_is_scaled_to_the_model(tiny_clip, vit_b16):
    assert MAPLE.preset_options("transfer", vit_b16) == {"depth": 3}  # 3 of 12 blocks
    assert MAPLE.preset_options("transfer", tiny_clip) == {"depth": 1}  # 3 of 12 → 1 of the tiny model's 3
    assert scaled_depth(MAPLE, "depth", 9, vit_b16) == 9 and scaled_depth(MAPLE, "depth", 9, tiny_clip) == 2
    learner = create_learner("maple", tiny_clip, ["a", "b"], **MAPLE.preset_options("transfer", tiny_clip))
    assert learner.config.depth == 1 and len(learner.deep_text) == 0


def test_spec_values_win_over_the_preset(tiny_clip):
    spec = ExperimentSpec("maple", "toyworld/polygons", preset="transfer")
    assert fit_settings(spec) == {"epochs": 2, "lr": 0.0026, "batch_size": 4}
    assert fit_settings(spec.replace(epochs=1, lr=0.01)) == {"epochs": 1, "lr": 0.01, "batch_size": 4}
    assert fit_settings(spec.replace(preset=None)) == {"epochs": None, "lr": None, "batch_size": None}
    assert preset_options(spec, tiny_clip) == {"depth": 1}
    small = spec.replace(shots=1, epochs=1)
    learner, history, _, _ = train_learner(small, tiny_clip)
    assert learner.config.depth == 1 and len(history.epoch_loss) == 1
    learner, _, _, _ = train_learner(small.replace(options={"depth": 2}), tiny_clip)
    assert learner.config.depth == 2  # an explicit option wins


def test_tune_and_run_select_the_preset_by_name(tmp_path, capsys):
    from mmprompt_lab.cli import main

    out = tmp_path / "tune"
    assert (
        main(
            [
                "tune",
                "--method",
                "maple",
                "--preset",
                "transfer",
                "--shots",
                "1",
                "--pretrained",
                "random",
                "--no-zeroshot",
                "--no-progress",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    card = json.loads((out / "learner.json").read_text())
    assert card["config"]["depth"] == 1  # ToyCLIP: 3 of 12 blocks → 1 of 4
    assert card["spec"]["preset"] == "transfer" and len(card["history"]["epoch_loss"]) == 2
    capsys.readouterr()
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "domain-generalisation",
                "--methods",
                "zeroshot",
                "maple",
                "--preset",
                "transfer",
                "--seeds",
                "1",
                "--shots",
                "1",
                "--test-per-class",
                "1",
                "--targets",
                "toyworld/shapes-sketch",
                "--pretrained",
                "random",
                "--no-figure",
                "--out",
                str(runs),
            ]
        )
        == 0
    )
    maple = json.loads((runs / "domain_generalisation-maple.json").read_text())
    assert maple["config"]["preset"] == "transfer"
    assert "preset" not in json.loads((runs / "domain_generalisation-zeroshot.json").read_text())["config"]
    assert main(["run", "base2new", "--method", "coop", "--preset", "transfer", "--out", str(runs)]) == 2
    assert "coop has no preset 'transfer'" in capsys.readouterr().err
