"""The live tuner: pick a method and its knobs, press Start, watch loss and accuracy stream in while
`fit` runs, press Stop to end the run early; finished runs collect in a comparison view.

    tuner = LiveTuner(clip, settings)      # settings from notebook_settings()
    tuner                                  # displays the controls and both figures
    tuner.start(wait=True)                 # what the Start button does, run here synchronously
    tuner.start(wait=True, epochs=5)       # the same with other values for this one run

What a run shows: the training loss per step; the running training accuracy; the accuracy on a small
held-out set (the first `val_per_class` test images of each class) after every epoch — the validation
curve; zero-shot CLIP's accuracy on the run's test set as a dashed reference line; and, when it ends,
the test accuracy. The comparison view puts every finished run's test accuracy next to zero-shot's.
Each run gets a unique label (a counter, then its knobs). Training runs without progress bars.

Design: every handler is a plain method (`on_start`, `on_stop`, `on_step`, `on_epoch_end`, `run`) that works
without a front end, so tests drive them directly. Start and Stop are separate buttons: Start is
disabled while a run trains (a second click is ignored, not read as Stop), Stop while none does. In
a kernel the Start button trains in a background thread: the kernel's main thread must stay free to
receive the Stop click (a handler that trains synchronously blocks the comm channel until it returns,
so Stop would arrive only after the run). Figure updates from the thread are plain widget state
changes, which ipykernel sends from any thread. `background=False` (what tests and nbval use via
`start(wait=True)`) runs in the caller.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..engine import evaluate
from ..experiment import build_learner, load_train, run_experiment, test_sets, zero_shot_metrics
from ..settings import NotebookSettings, notebook_settings

METHODS = ("coop", "cocoop", "vpt", "ivlp", "maple", "upt", "dcp", "mudpt", "map_dafe", "kgcoop", "promptsrc")
SUITES = ("toyworld/shapes", "toyworld/polygons", "toyworld/patterns", "toyworld/scenes", "toyworld/clutter")
# A click-run at the classroom sizes (8 shots, batch 8) lasts 10–20 s on a laptop CPU with these epochs, long
# enough to watch the curves stream (measured for CoOp on polygons: see notebook 01); CI size keeps its own.
LIVE_EPOCHS, LIVE_BATCH = 20, 8


@dataclass
class TunerRun:
    """One finished (or stopped) run: its settings, curves and accuracies (%)."""

    label: str
    params: dict
    step_loss: list[float] = field(default_factory=list)
    epoch_accuracy: list[float] = field(default_factory=list)  # training accuracy per epoch
    val_accuracy: list[float] = field(default_factory=list)  # held-out accuracy after each epoch
    test_accuracy: float | None = None
    zeroshot_accuracy: float | None = None  # zero-shot CLIP on the same test set
    stopped: bool = False
    seconds: float = 0.0
    learner: object = None  # the trained learner (for attention maps, nearest words, …)


class LiveTuner:
    """Controls + a live FigureWidget (loss per step; train, held-out and zero-shot accuracy) + a comparison view.

    Attributes: `method`, `suite`, `shots`, `n_ctx`, `depth`, `lr`, `epochs`, `batch_size` (ipywidgets),
    `start_button` (also `button`), `stop_button`, `status`, `figure` (live), `comparison` (finished runs), `runs`.

    Args:
        clip, settings: the frozen CLIP (loaded on the first run when None) and the lesson's settings.
        method, suite, n_ctx, depth, lr: the controls' initial values.
        epochs, batch_size: the controls' initial values; None = a run of 10–20 s at classroom size
            (`LIVE_EPOCHS`, `LIVE_BATCH`), or the settings' own values at CI size.
        val_per_class: test images per class in the held-out set scored after each epoch.
    """

    def __init__(
        self,
        clip=None,
        settings: NotebookSettings | None = None,
        method: str = "coop",
        suite: str = "toyworld/shapes",
        n_ctx: int = 4,
        depth: int = 1,
        lr: float = 0.02,
        epochs: int | None = None,
        batch_size: int | None = None,
        val_per_class: int = 5,
    ):
        self.settings = s = settings or notebook_settings()
        self.clip = clip
        self.background = True
        self.val_per_class = val_per_class
        self.runs: list[TunerRun] = []
        self._stop = False
        self._busy = False  # from Start until the run has ended
        self._count = 0  # runs started: numbers every label, so labels never repeat
        self._thread: threading.Thread | None = None
        self._current: TunerRun | None = None
        self._learner = None  # the learner of the current run (scored after each epoch)
        self._val = None  # the current run's held-out set
        self._zeroshot: dict[tuple, float] = {}  # zero-shot accuracy per (suite, seed, test cap)
        epochs = epochs or (s.epochs if s.ci else LIVE_EPOCHS)
        batch_size = batch_size or (s.batch_size if s.ci else LIVE_BATCH)
        style = {"description_width": "110px"}
        self.method = W.Dropdown(options=METHODS, value=method, description="method", style=style)
        self.suite = W.Dropdown(options=SUITES, value=suite, description="suite", style=style)
        self.shots = W.IntSlider(value=s.shots, min=1, max=16, description="shots", style=style)
        self.n_ctx = W.IntSlider(value=n_ctx, min=1, max=16, description="context length", style=style)
        self.depth = W.IntSlider(value=depth, min=1, max=12, description="depth", style=style)
        self.lr = W.FloatLogSlider(
            value=lr, base=10, min=-4, max=0, step=0.1, description="lr", style=style, readout_format=".4f"
        )
        self.epochs = W.IntSlider(value=epochs, min=1, max=50, description="epochs", style=style)
        self.batch_size = W.IntSlider(value=batch_size, min=1, max=32, description="batch size", style=style)
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.button = self.start_button  # the name older lessons use
        self.start_button.on_click(self.on_start)
        self.stop_button.on_click(self.on_stop)
        self.status = W.HTML("ready")
        self.figure = self._live_figure()
        self.comparison = self._comparison_figure()

    # ------------------------------------------------------------------ display
    def _live_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (per step)", "accuracy (%)"))
        fig.add_scatter(x=[], y=[], mode="lines+markers", name="loss", row=1, col=1)
        fig.add_scatter(x=[], y=[], mode="lines", name="train accuracy (running)", row=1, col=2)
        fig.add_scatter(
            x=[], y=[], mode="markers", name="test accuracy", marker=dict(size=12, symbol="star"), row=1, col=2
        )
        fig.add_scatter(x=[], y=[], mode="lines+markers", name="held-out accuracy (per epoch)", row=1, col=2)
        fig.add_scatter(x=[], y=[], mode="lines", name="zero-shot", line=dict(dash="dash", color="grey"), row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(range=[0, 100], row=1, col=2)
        fig.update_layout(height=340, margin=dict(t=40, b=40, l=50, r=20), legend=dict(orientation="h", y=-0.25))
        return go.FigureWidget(fig)

    def _comparison_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("loss of each run", "test accuracy (%)"))
        fig.add_bar(x=[], y=[], name="run", row=1, col=2)
        fig.add_bar(x=[], y=[], name="zero-shot", marker_color="lightgrey", row=1, col=2)
        fig.update_yaxes(range=[0, 100], row=1, col=2)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_layout(height=360, barmode="group", margin=dict(t=40, b=100, l=50, r=20))
        return go.FigureWidget(fig)

    def widget(self) -> W.Widget:
        """The whole tuner as one widget."""
        controls = W.VBox(
            [
                self.method,
                self.suite,
                self.shots,
                self.n_ctx,
                self.depth,
                self.lr,
                self.epochs,
                self.batch_size,
                W.HBox([self.start_button, self.stop_button, self.status]),
            ]
        )
        return W.VBox([controls, self.figure, W.HTML("<b>finished runs</b>"), self.comparison])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())

    # ------------------------------------------------------------------ handlers
    def params(self) -> dict:
        return {
            "method": self.method.value,
            "suite": self.suite.value,
            "shots": self.shots.value,
            "n_ctx": self.n_ctx.value,
            "depth": self.depth.value,
            "lr": self.lr.value,
            "epochs": self.epochs.value,
            "batch_size": self.batch_size.value,
        }

    def on_start(self, _button=None, overrides: dict | None = None) -> None:
        """The Start button: start a run with the controls' values (and `overrides` for this run only).
        Ignored while a run trains (press Stop first)."""
        if self.running:
            self.status.value = "a run is training: press Stop first"
            return
        params = self._params(overrides)
        self._set_running(True)  # at once, so a double click cannot start a second run
        if self.background:
            self._thread = threading.Thread(target=self.run, args=(params,), daemon=True, name="mmprompt-tuner")
            self._thread.start()
        else:
            self.run(params)

    def on_stop(self, _button=None) -> None:
        """The Stop button: end the running run after its current step."""
        if self.running:
            self._stop = True
            self.status.value = "stopping after this step…"

    def start(self, wait: bool = False, **overrides) -> None:
        """Press Start from code; `wait=True` trains in the caller and returns when done. Keyword arguments
        override control values for this run only, e.g. `start(wait=True, epochs=5)`."""
        background, self.background = self.background, not wait
        try:
            self.on_start(overrides=overrides)
        finally:
            self.background = background

    def stop(self) -> None:
        """Press Stop from code."""
        self.on_stop()

    @property
    def running(self) -> bool:
        return self._busy

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background run to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _params(self, overrides: dict | None) -> dict:
        params = self.params()
        unknown = sorted(set(overrides or {}) - set(params))
        if unknown:
            raise ValueError(f"unknown tuner control(s) {unknown}; controls: {', '.join(params)}")
        return {**params, **(overrides or {})}

    def _set_running(self, running: bool) -> None:
        self._busy = running
        self.start_button.disabled, self.stop_button.disabled = running, not running

    def on_step(self, state) -> None:
        """`fit` callback: append the step's loss and running accuracy; honour Stop."""
        run = self._current
        run.step_loss.append(state.loss)
        with self.figure.batch_update():
            loss, acc, zs = self.figure.data[0], self.figure.data[1], self.figure.data[4]
            loss.x = tuple(loss.x or ()) + (state.step,)
            loss.y = tuple(loss.y or ()) + (state.loss,)
            acc.x = tuple(acc.x or ()) + (state.step,)
            acc.y = tuple(acc.y or ()) + (state.accuracy,)
            if run.zeroshot_accuracy is not None and not zs.x:  # across the whole run, once its length is known
                zs.x, zs.y = (0, state.steps_per_epoch * state.epochs), (run.zeroshot_accuracy,) * 2
        self.status.value = (
            f"epoch {state.epoch + 1}/{state.epochs} · step {state.step} · loss {state.loss:.3f} · lr {state.lr:.2g}"
        )
        if self._stop:
            state.stop = True

    def on_epoch_end(self, state) -> None:
        """`fit` callback: keep the epoch's training accuracy, score the held-out set (the validation curve)."""
        run = self._current
        run.epoch_accuracy.append(state.history.epoch_accuracy[-1])
        if self._learner is None or self._val is None:
            return
        acc = evaluate(self._learner, self._val, device=self.settings.device, progress=False)["accuracy"]
        run.val_accuracy.append(acc)
        with self.figure.batch_update():
            val = self.figure.data[3]
            val.x = tuple(val.x or ()) + (state.step,)
            val.y = tuple(val.y or ()) + (acc,)

    def run(self, params: dict | None = None) -> TunerRun:
        """Train with `params` (default: the current control values), streaming into `figure`; returns the run."""
        p = params or self.params()
        self._count += 1
        label = (
            f"{self._count}: {p['method']} {p['suite'].split('/')[-1]} {p['shots']}-shot, M={p['n_ctx']} "
            f"depth={p['depth']} lr={p['lr']:.2g} {p['epochs']} ep bs={p['batch_size']}"
        )
        run = self._current = TunerRun(label, p)
        self._stop = False
        self._set_running(True)
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = (), ()
        start = time.perf_counter()
        try:
            if self.clip is None:
                self.status.value = "loading CLIP…"
                self.clip = self.settings.load_clip()
            s = replace(self.settings, shots=p["shots"], epochs=p["epochs"], batch_size=p["batch_size"])
            spec = s.spec(
                p["method"], p["suite"], self.clip, base_to_novel=False, n_ctx=p["n_ctx"], depth=p["depth"], lr=p["lr"]
            )
            self.status.value = "zero-shot reference…"
            run.zeroshot_accuracy = self._zero_shot(spec)
            self._val = test_sets(spec.replace(test_per_class=self.val_per_class))["all"]
            self._learner = build_learner(spec, self.clip, load_train(spec))
            self.status.value = f"training {spec.method}…"
            result = run_experiment(
                spec,
                self.clip,
                device=s.device,
                on_step=self.on_step,
                on_epoch_end=self.on_epoch_end,
                learner=self._learner,
                progress=False,
            )
            run.learner = result.learner
            run.stopped = result.history.stopped_early
            run.test_accuracy = result.metrics["accuracy"]
            last = self.figure.data[1].x[-1] if self.figure.data[1].x else 0
            self.figure.data[2].x, self.figure.data[2].y = (last,), (run.test_accuracy,)
            run.seconds = time.perf_counter() - start
            self.runs.append(run)
            self._update_comparison()
            gain = run.test_accuracy - run.zeroshot_accuracy
            self.status.value = (
                f"{'stopped' if run.stopped else 'done'}: test accuracy {run.test_accuracy:.1f} % "
                f"({gain:+.1f} vs zero-shot{', below it' if gain < 0 else ''}) in {run.seconds:.0f} s"
            )
        except Exception as err:  # shown in the widget; a background thread has nowhere else to report
            self.status.value = f"<span style='color:red'>error: {err}</span>"
            raise
        finally:
            self._current = self._learner = self._val = None
            self._set_running(False)
        return run

    def _zero_shot(self, spec) -> float:
        """Zero-shot CLIP's accuracy on the spec's test set (computed once per suite, seed and test cap)."""
        key = (spec.dataset, spec.seed, spec.test_per_class)
        if key not in self._zeroshot:
            self._zeroshot[key] = zero_shot_metrics(spec, self.clip, device=self.settings.device)["zeroshot_accuracy"]
        return self._zeroshot[key]

    def _update_comparison(self) -> None:
        with self.comparison.batch_update():
            bars, zs = self.comparison.data[0], self.comparison.data[1]
            labels = tuple(r.label.replace(", ", "<br>") for r in self.runs)
            bars.x, bars.y = labels, tuple(r.test_accuracy for r in self.runs)
            zs.x, zs.y = labels, tuple(r.zeroshot_accuracy for r in self.runs)
            run = self.runs[-1]
            steps = tuple(range(1, len(run.step_loss) + 1))
            self.comparison.add_scatter(
                x=steps, y=run.step_loss, mode="lines", name=run.label.split(", ")[0], row=1, col=1
            )
