"""fit / evaluate / checkpoints on a tiny random CLIP and a small synthetic dataset."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mmprompt_lab.data.base import DatasetSource, ImageDataset, Item
from mmprompt_lab.engine import evaluate, fit, load_learner, lr_at, save_learner
from mmprompt_lab.engine.checkpoint import read_card
from mmprompt_lab.learners import create_learner

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def _render(item: Item) -> Image.Image:
    rng = np.random.default_rng(item.key)
    img = np.full((40, 40, 3), 128, np.uint8)
    x, y = rng.integers(0, 20, size=2)
    img[y : y + 20, x : x + 20] = COLOURS[item.classname]
    return Image.fromarray(img)


def blobs(n_per_class: int = 6, split: str = "train") -> ImageDataset:
    names = list(COLOURS)
    items = [Item(None, c, name, key=1000 * c + i) for i in range(n_per_class) for c, name in enumerate(names)]
    source = DatasetSource("test/blobs", names, {split: items}, _render, augment="toy")
    return ImageDataset(source, split, items, names)


def test_official_schedule_matches_reference():
    # docs/methods.md §0: MaPLe, E = 5, base 0.0035 → 1e-5, 0.0035, 0.003166, 0.002291, 0.001209
    got = [lr_at(e, 0.0035, 5) for e in range(5)]
    assert got[0] == 1e-5
    assert [round(x, 6) for x in got[1:]] == [0.0035, 0.003166, 0.002291, 0.001209]


def _run(tiny_clip, method="coop", epochs=3, **kw):
    torch.manual_seed(0)
    learner = create_learner(method, tiny_clip, list(COLOURS), **({"n_ctx": 4} if method == "coop" else {"depth": 2}))
    history = fit(learner, blobs(), epochs=epochs, batch_size=8, lr=0.05, seed=3, progress=False, **kw)
    return learner, history


def test_fit_is_deterministic_and_leaves_backbone_bit_identical(tiny_clip):
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    a, ha = _run(tiny_clip)
    b, hb = _run(tiny_clip)
    assert ha.step_loss == hb.step_loss and len(ha.step_loss) == 3 * 3  # 24 images / batch 8
    assert all(torch.equal(before[k], v) for k, v in tiny_clip.state_dict().items())
    assert not torch.equal(a.ctx, create_learner("coop", tiny_clip, list(COLOURS), n_ctx=4).ctx)
    assert ha.lr == [1e-5, 0.05, lr_at(2, 0.05, 3)]


def test_resume_equals_uninterrupted_run(tiny_clip, tmp_path):
    full, h_full = _run(tiny_clip, epochs=3)
    # first run: stopped in the middle of epoch 3 (as by a crash); only complete epochs are saved
    _run(tiny_clip, epochs=3, checkpoint_dir=tmp_path, on_step=lambda s: setattr(s, "stop", s.step == 8))
    assert json.loads((tmp_path / "train_state.json").read_text())["epochs_done"] == 2
    resumed, h_res = _run(tiny_clip, epochs=3, checkpoint_dir=tmp_path)
    torch.testing.assert_close(resumed.ctx, full.ctx, rtol=0, atol=0)
    assert h_res.step_loss == h_full.step_loss


def test_callbacks_can_stop_training(tiny_clip):
    seen = []
    _, history = _run(tiny_clip, on_step=lambda s: (seen.append(s.step), setattr(s, "stop", s.step == 4)))
    assert seen == [1, 2, 3, 4] and history.stopped_early and len(history.step_loss) == 4


def test_nan_loss_is_a_clear_error(tiny_clip):
    learner = create_learner("coop", tiny_clip, list(COLOURS), n_ctx=4)
    with torch.no_grad():
        learner.ctx.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(learner, blobs(), epochs=1, batch_size=8, progress=False)


def test_small_dataset_still_trains_and_class_mismatch_errors(tiny_clip):
    learner = create_learner("coop", tiny_clip, list(COLOURS), n_ctx=4)
    history = fit(learner, blobs(n_per_class=1), epochs=2, batch_size=32, progress=False)  # 4 images < batch
    assert len(history.step_loss) == 2
    with pytest.raises(ValueError, match="classes"):
        fit(create_learner("coop", tiny_clip, ["a", "b"]), blobs(), epochs=1, progress=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(create_learner("zeroshot", tiny_clip, list(COLOURS)), blobs(), progress=False)


@pytest.mark.parametrize("method", ["coop", "maple"])
def test_checkpoint_round_trip_reproduces_metrics(tiny_clip, tmp_path, method):
    learner, _ = _run(tiny_clip, method=method, epochs=2)
    test = blobs(4, split="test")
    metrics = evaluate(learner, test)
    save_learner(learner, tmp_path)
    card = read_card(tmp_path)
    assert card["method"] == method and card["backbone"] == "tiny-test" and card["classnames"] == list(COLOURS)
    assert set(p.name for p in tmp_path.iterdir()) == {"learner.safetensors", "learner.json"}
    again = load_learner(tmp_path, clip=tiny_clip)
    assert evaluate(again, test) == metrics
    assert len(metrics["confusion"]) == 4 and sum(map(sum, metrics["confusion"])) == metrics["n"] == 16
    assert math.isclose(metrics["accuracy"], 100 * sum(metrics["confusion"][i][i] for i in range(4)) / 16)


def test_checkpoint_refuses_mismatch_and_corruption(tiny_clip, tmp_path):
    learner, _ = _run(tiny_clip, epochs=1)
    save_learner(learner, tmp_path)
    with pytest.raises(ValueError, match="holds a 'coop' learner"):
        load_learner(tmp_path, clip=tiny_clip, method="maple")
    tiny_clip_id = tiny_clip.name
    try:
        tiny_clip.name = "other-model"
        with pytest.raises(ValueError, match="trained on backbone 'tiny-test'"):
            load_learner(tmp_path, clip=tiny_clip)
    finally:
        tiny_clip.name = tiny_clip_id
    weights = tmp_path / "learner.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ValueError, match="corrupt"):
        load_learner(tmp_path, clip=tiny_clip)
    with pytest.raises(FileNotFoundError, match="learner.json"):
        load_learner(tmp_path / "nowhere", clip=tiny_clip)
    (tmp_path / "learner.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_learner(tmp_path, clip=tiny_clip)


def test_evaluate_scores_other_class_names_and_leaves_the_learner_as_it_was(tiny_clip):
    learner = create_learner("coop", tiny_clip, ["a", "b", "c"], n_ctx=4, seed=1)
    before = {k: v.clone() for k, v in learner.prompts.state_dict(keep_vars=False).items()}
    tokens = learner.prompts.tokens.clone()
    metrics = evaluate(learner, blobs(2, split="test"))
    assert metrics["n"] == 8 and len(metrics["confusion"]) == len(COLOURS)
    assert learner.classnames == ["a", "b", "c"]  # pure: the learner keeps its own classes
    assert torch.equal(learner.prompts.tokens, tokens)
    assert before.keys() == learner.prompts.state_dict().keys()
