"""The live tuner driven without a front end: set controls, press Start synchronously, check figures."""
import threading

import pytest

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget (pip install anywidget)")

from mmprompt_lab.settings import notebook_settings  # noqa: E402
from mmprompt_lab.widgets import LiveTuner  # noqa: E402


@pytest.fixture
def tuner(tiny_clip):
    t = LiveTuner(tiny_clip, notebook_settings(ci=True, pretrained=False))
    t.suite.value, t.shots.value, t.epochs.value, t.n_ctx.value = "toyworld/polygons", 1, 2, 2
    t.background = False
    return t


def test_start_streams_into_the_figure(tuner):
    tuner.on_start(tuner.button)  # the button's own handler, synchronously
    loss, acc, test = tuner.figure.data
    assert len(loss.y) == len(loss.x) >= 2 and all(y > 0 for y in loss.y)
    assert len(acc.y) == len(loss.y) and len(test.y) == 1
    assert tuner.button.description == "Start" and "done" in tuner.status.value
    run = tuner.runs[0]
    assert run.step_loss == list(loss.y) and len(run.epoch_accuracy) == 2
    assert tuner.comparison.data[0].y == (run.test_accuracy,)
    tuner.method.value = "vpt"
    tuner.start(wait=True)
    assert len(tuner.runs) == 2 and len(tuner.comparison.data) == 3  # bars + one loss line per run
    assert tuner.comparison.data[0].x[1].startswith("2: vpt")


def test_stop_ends_the_run_early(tuner):
    tuner.epochs.value = 5
    calls = []

    def stop_after_first(state, original=tuner.on_step):
        tuner.on_start()  # pressing the button while running = Stop
        calls.append(state.step)
        original(state)

    tuner.on_step = stop_after_first
    tuner.run()
    assert calls == [1] and tuner.runs[0].stopped and len(tuner.runs[0].epoch_accuracy) == 1
    assert "stopped" in tuner.status.value


def test_background_start_and_join(tuner):
    tuner.background = True
    tuner.on_start()
    assert isinstance(tuner._thread, threading.Thread)
    tuner.join(timeout=120)
    assert not tuner.running and len(tuner.runs) == 1


def test_widget_tree(tuner):
    box = tuner.widget()
    assert tuner.figure in box.children and tuner.comparison in box.children
