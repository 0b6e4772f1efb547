"""The live tuner: pick a method and its knobs, press Start, watch loss and accuracy stream in while
`fit` runs, press Stop to end the run early; finished runs collect in a comparison view.

    tuner = LiveTuner(clip, settings)      # settings from notebook_settings()
    tuner                                  # displays the controls and both figures
    tuner.start(wait=True)                 # what the Start button does, run here synchronously

Design: every handler is a plain method (`on_start`, `on_step`, `on_epoch_end`, `run`) that works
without a front end, so tests drive them directly. In a kernel the Start button trains in a
background thread: the kernel's main thread must stay free to receive the Stop click (a handler that
trains synchronously blocks the comm channel until it returns, so Stop would arrive only after the
run). Figure updates from the thread are plain widget state changes, which ipykernel sends from any
thread. `background=False` (what tests and nbval use via `start(wait=True)`) runs in the caller.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..experiment import run_experiment
from ..settings import NotebookSettings, notebook_settings

METHODS = ("coop", "cocoop", "vpt", "ivlp", "maple", "upt", "dcp", "mudpt", "map_dafe", "kgcoop", "promptsrc")
SUITES = ("toyworld/shapes", "toyworld/polygons", "toyworld/patterns", "toyworld/scenes", "toyworld/clutter")


@dataclass
class TunerRun:
    """One finished (or stopped) run: its settings, curves and test accuracy (%)."""

    label: str
    params: dict
    step_loss: list[float] = field(default_factory=list)
    epoch_accuracy: list[float] = field(default_factory=list)
    test_accuracy: float | None = None
    stopped: bool = False
    seconds: float = 0.0
    learner: object = None  # the trained learner (for attention maps, nearest words, …)


class LiveTuner:
    """Controls + a live FigureWidget (loss per step, train accuracy per epoch) + a comparison view.

    Attributes: `method`, `suite`, `shots`, `n_ctx`, `depth`, `lr`, `epochs` (ipywidgets),
    `button` (Start/Stop), `status`, `figure` (live), `comparison` (finished runs), `runs`.
    """

    def __init__(self, clip=None, settings: NotebookSettings | None = None, method: str = "coop",
                 suite: str = "toyworld/shapes", n_ctx: int = 4, depth: int = 1, lr: float = 0.02):
        self.settings = settings or notebook_settings()
        self.clip = clip
        self.background = True
        self.runs: list[TunerRun] = []
        self._stop = False
        self._thread: threading.Thread | None = None
        self._current: TunerRun | None = None
        s = self.settings
        style = {"description_width": "110px"}
        self.method = W.Dropdown(options=METHODS, value=method, description="method", style=style)
        self.suite = W.Dropdown(options=SUITES, value=suite, description="suite", style=style)
        self.shots = W.IntSlider(value=s.shots, min=1, max=16, description="shots", style=style)
        self.n_ctx = W.IntSlider(value=n_ctx, min=1, max=16, description="context length", style=style)
        self.depth = W.IntSlider(value=depth, min=1, max=12, description="depth", style=style)
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="lr", style=style,
                                   readout_format=".4f")
        self.epochs = W.IntSlider(value=s.epochs, min=1, max=50, description="epochs", style=style)
        self.button = W.Button(description="Start", button_style="success", icon="play")
        self.button.on_click(self.on_start)
        self.status = W.HTML("ready")
        self.figure = self._live_figure()
        self.comparison = self._comparison_figure()

    # ------------------------------------------------------------------ display
    def _live_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (per step)", "accuracy (%)"))
        fig.add_scatter(x=[], y=[], mode="lines+markers", name="loss", row=1, col=1)
        fig.add_scatter(x=[], y=[], mode="lines+markers", name="train accuracy (running)", row=1, col=2)
        fig.add_scatter(x=[], y=[], mode="markers", name="test accuracy", marker=dict(size=12, symbol="star"),
                        row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(range=[0, 100], row=1, col=2)
        fig.update_layout(height=330, margin=dict(t=40, b=40, l=50, r=20), legend=dict(orientation="h", y=-0.25))
        return go.FigureWidget(fig)

    def _comparison_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("loss of each run", "test accuracy (%)"))
        fig.add_bar(x=[], y=[], name="test accuracy", showlegend=False, row=1, col=2)
        fig.update_yaxes(range=[0, 100], row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_layout(height=340, margin=dict(t=40, b=80, l=50, r=20))
        return go.FigureWidget(fig)

    def widget(self) -> W.Widget:
        """The whole tuner as one widget."""
        controls = W.VBox([self.method, self.suite, self.shots, self.n_ctx, self.depth, self.lr, self.epochs,
                           W.HBox([self.button, self.status])])
        return W.VBox([controls, self.figure, W.HTML("<b>finished runs</b>"), self.comparison])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())

    # ------------------------------------------------------------------ handlers
    def params(self) -> dict:
        return {"method": self.method.value, "suite": self.suite.value, "shots": self.shots.value,
                "n_ctx": self.n_ctx.value, "depth": self.depth.value, "lr": self.lr.value,
                "epochs": self.epochs.value}

    def on_start(self, _button=None) -> None:
        """The Start/Stop button: start a run, or ask the running one to stop."""
        if self.running:
            self._stop = True
            self.status.value = "stopping after this step…"
            return
        if self.background:
            self._thread = threading.Thread(target=self.run, daemon=True, name="mmprompt-tuner")
            self._thread.start()
        else:
            self.run()

    def start(self, wait: bool = False) -> None:
        """Press Start from code; `wait=True` trains in the caller and returns when done."""
        background, self.background = self.background, not wait
        try:
            self.on_start()
        finally:
            self.background = background

    def stop(self) -> None:
        """Press Stop from code."""
        self._stop = True

    @property
    def running(self) -> bool:
        return self._current is not None

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background run to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def on_step(self, state) -> None:
        """`fit` callback: append the step's loss and running accuracy; honour Stop."""
        run = self._current
        run.step_loss.append(state.loss)
        with self.figure.batch_update():
            loss, acc = self.figure.data[0], self.figure.data[1]
            loss.x = tuple(loss.x or ()) + (state.step,)
            loss.y = tuple(loss.y or ()) + (state.loss,)
            acc.x = tuple(acc.x or ()) + (state.step,)
            acc.y = tuple(acc.y or ()) + (state.accuracy,)
        self.status.value = (f"epoch {state.epoch + 1}/{state.epochs} · step {state.step} · "
                             f"loss {state.loss:.3f} · lr {state.lr:.2g}")
        if self._stop:
            state.stop = True

    def on_epoch_end(self, state) -> None:
        """`fit` callback: keep the epoch's training accuracy."""
        self._current.epoch_accuracy.append(state.history.epoch_accuracy[-1])

    def run(self) -> TunerRun:
        """Train with the current control values, streaming into `figure`; returns the finished run."""
        p = self.params()
        label = f"{len(self.runs) + 1}: {p['method']} {p['suite'].split('/')[-1]} {p['shots']}-shot"
        run = self._current = TunerRun(label, p)
        self._stop = False
        self.button.description, self.button.button_style, self.button.icon = "Stop", "danger", "stop"
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = (), ()
        start = time.perf_counter()
        try:
            if self.clip is None:
                self.status.value = "loading CLIP…"
                self.clip = self.settings.load_clip()
            s = replace(self.settings, shots=p["shots"], epochs=p["epochs"])
            spec = s.spec(p["method"], p["suite"], self.clip, base_to_novel=False, n_ctx=p["n_ctx"],
                          depth=p["depth"], lr=p["lr"])
            self.status.value = f"training {spec.method}…"
            result = run_experiment(spec, self.clip, device=s.device, on_step=self.on_step,
                                    on_epoch_end=self.on_epoch_end)
            run.learner = result.learner
            run.stopped = result.history.stopped_early
            run.test_accuracy = result.metrics["accuracy"]
            last = self.figure.data[1].x[-1] if self.figure.data[1].x else 0
            self.figure.data[2].x, self.figure.data[2].y = (last,), (run.test_accuracy,)
            run.seconds = time.perf_counter() - start
            self.runs.append(run)
            self._update_comparison()
            self.status.value = (f"{'stopped' if run.stopped else 'done'}: test accuracy "
                                 f"{run.test_accuracy:.1f} % in {run.seconds:.0f} s")
        except Exception as err:  # shown in the widget; a background thread has nowhere else to report
            self.status.value = f"<span style='color:red'>error: {err}</span>"
            raise
        finally:
            self._current = None
            self.button.description, self.button.button_style, self.button.icon = "Start", "success", "play"
        return run

    def _update_comparison(self) -> None:
        with self.comparison.batch_update():
            bars = self.comparison.data[0]
            bars.x = tuple(r.label for r in self.runs)
            bars.y = tuple(r.test_accuracy for r in self.runs)
            run = self.runs[-1]
            steps = tuple(range(1, len(run.step_loss) + 1))
            self.comparison.add_scatter(x=steps, y=run.step_loss, mode="lines", name=run.label, row=1, col=1)
