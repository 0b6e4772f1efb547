"""The live tuner driven without a front end: set controls, press Start synchronously, check figures."""

import threading

import pytest

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (pip install anywidget)")

from mmprompt_lab import notebook_settings  # noqa: E402
from mmprompt_lab.widgets import LiveTuner  # noqa: E402
from mmprompt_lab.widgets.tuner import LIVE_BATCH, LIVE_EPOCHS  # noqa: E402


@pytest.fixture
def tuner(tiny_clip):
    t = LiveTuner(tiny_clip, notebook_settings(ci=True, pretrained=False))
    t.suite.value, t.shots.value, t.epochs.value, t.n_ctx.value = "toyworld/polygons", 1, 2, 2
    t.background = False
    return t


def test_start_streams_into_the_figure(tuner):
    tuner.on_start(tuner.start_button)  # the button's own handler, synchronously
    loss, acc, test, val, zeroshot = tuner.figure.data
    assert len(loss.y) == len(loss.x) >= 2 and all(y > 0 for y in loss.y)
    assert len(acc.y) == len(loss.y) and len(test.y) == 1
    run = tuner.runs[0]
    assert len(val.y) == 2 == len(run.val_accuracy) and val.x[-1] == loss.x[-1]  # held-out accuracy per epoch
    assert zeroshot.y == (run.zeroshot_accuracy,) * 2 and zeroshot.x[-1] >= loss.x[-1]  # reference across the run
    assert tuner.start_button.description == "Start" and "done" in tuner.status.value
    assert not tuner.start_button.disabled and tuner.stop_button.disabled  # idle again
    assert run.step_loss == list(loss.y) and len(run.epoch_accuracy) == 2
    bars, zs_bars = tuner.comparison.data[:2]
    assert bars.y == (run.test_accuracy,) and zs_bars.y == (run.zeroshot_accuracy,) and zs_bars.x == bars.x
    tuner.method.value = "vpt"
    tuner.start(wait=True)
    assert len(tuner.runs) == 2 and len(tuner.comparison.data) == 4  # two bar traces + one loss line per run
    assert tuner.comparison.data[0].x[1].startswith("2: vpt")


def test_labels_are_unique_and_overrides_apply_to_one_run(tuner):
    tuner.start(wait=True)
    tuner.start(wait=True, epochs=1)  # same controls, one value changed for this run only
    tuner.start(wait=True)
    labels = [r.label for r in tuner.runs]
    assert len(set(labels)) == 3 and [lab.split(":")[0] for lab in labels] == ["1", "2", "3"]
    assert tuner.runs[1].params["epochs"] == 1 and tuner.epochs.value == 2 and "1 ep" in labels[1]
    assert len(set(tuner.comparison.data[0].x)) == 3  # plotly would merge bars with equal labels
    with pytest.raises(ValueError, match="unknown tuner control"):
        tuner.start(wait=True, epoch=3)


def test_stop_ends_the_run_early_and_start_while_running_is_ignored(tuner):
    tuner.epochs.value = 5
    calls = []

    def stop_after_first(state, original=tuner.on_step):
        tuner.on_start()  # a second Start click while running: ignored (debounced), not a Stop
        assert tuner.start_button.disabled and not tuner.stop_button.disabled
        tuner.on_stop(tuner.stop_button)
        calls.append(state.step)
        original(state)

    tuner.on_step = stop_after_first
    tuner.run()
    assert calls == [1] and tuner.runs[0].stopped and len(tuner.runs[0].epoch_accuracy) == 1
    assert len(tuner.runs) == 1 and "stopped" in tuner.status.value


def test_background_start_and_join(tuner):
    tuner.background = True
    tuner.on_start()
    assert isinstance(tuner._thread, threading.Thread)
    tuner.on_start()  # a double click starts nothing more
    tuner.join(timeout=120)
    assert not tuner.running and len(tuner.runs) == 1


def test_live_defaults_at_classroom_size(tiny_clip):
    t = LiveTuner(tiny_clip, notebook_settings(ci=False, pretrained=False))
    assert (t.epochs.value, t.batch_size.value) == (LIVE_EPOCHS, LIVE_BATCH)  # a run of 10–20 s on a laptop
    ci = LiveTuner(tiny_clip, notebook_settings(ci=True, pretrained=False))
    assert ci.epochs.value == 2  # CI keeps its own sizes


def test_widget_tree(tuner):
    box = tuner.widget()
    assert tuner.figure in box.children and tuner.comparison in box.children
    buttons = box.children[0].children[-1].children
    assert tuner.start_button in buttons and tuner.stop_button in buttons
