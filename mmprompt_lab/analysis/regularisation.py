"""Keeping what CLIP knew (notebook 13): how far learned class embeddings drift from the hand-crafted
ones while a learner trains, what that does to the novel classes, and base / novel / HM over seeds
and over the regularisers' own knobs (KgCoOp's λ, PromptSRC's prompt aggregation).

The drift of a learner with text features ŵ_c (its own classes, the base classes under base-to-novel)
from the frozen features of the dataset's hand-crafted template ŵ_c^clip (docs/methods.md §11):

    distance = (1/C) Σ_c (1 − cos(ŵ_c, ŵ_c^clip))       0 = the hand-crafted classifier itself

— exactly KgCoOp's released L_kg, measured the same way for every method. Everything trains through
the one pipeline (`run_experiment`); the per-epoch curve comes from an `on_epoch_end` callback:

    tracker = DriftTracker(novel_test)
    with tracker.watch():                                # binds the learner that trains
        result = run_experiment(spec, clip, on_epoch_end=tracker)
    tracker.records   # [{"epoch": 0, "distance": …, "novel": …, "train": nan}, {"epoch": 1, …}, …]

`TrainState` (what `fit` hands its callbacks) does not carry the learner, and `run_experiment` builds
the learner itself, so `watch()` finds it: a PyTorch global forward pre-hook that binds the first
`PromptLearner` called in training mode (the step's `learner(images, labels=…)`) and removes itself at
once. `bind(learner)` does the same by hand, for a learner trained with `fit` directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor, nn

from ..backbone import FrozenCLIP
from ..data.base import ImageDataset
from ..engine import evaluate
from ..engine.evaluate import harmonic_mean
from ..engine.train import TrainState
from ..experiment import ExperimentResult, ExperimentSpec, run_experiment, test_sets
from ..learners import create_learner
from ..learners.base import PromptLearner
from ..protocols.aggregate import mean_std
from ..settings import NotebookSettings

METRICS = ("base", "novel", "hm")


# ----------------------------------------------------------------------------- the distance
def hand_crafted_features(clip: FrozenCLIP, classnames: Sequence[str], template: str) -> Tensor:
    """ŵ^clip (C, E): the frozen, L2-normalised text features of `template` ("{}" = the class name) —
    the zero-shot classifier of those classes, built by the zero-shot learner itself."""
    zeroshot = create_learner("zeroshot", clip, list(classnames), templates=(template,))
    with torch.no_grad():
        return F.normalize(zeroshot.encode_text(), dim=-1)  # (C, E)


def text_distance(learner: PromptLearner, template: str, reference: Tensor | None = None) -> float:
    """Mean over the learner's classes of 1 − cos(ŵ_c, ŵ_c^clip) between its text features and the
    hand-crafted ones (`hand_crafted_features`; pass `reference` (C, E) to reuse them).

    0 for a learner whose text features are the hand-crafted ones (zero-shot CLIP with the same
    template, KgCoOp initialised with that template's words); up to 2 for opposite directions.
    The learner is not changed (no gradient, its mode and classes as they were).

    Example:
        >>> text_distance(create_learner("kgcoop", clip, names), "a photo of a {}.")   # 0.0
    """
    if learner.conditional:
        raise ValueError(
            f"{learner.name}'s text features depend on the image (conditional=True): there is "
            "no single text feature per class to compare with the hand-crafted one"
        )
    ref = hand_crafted_features(learner.clip, learner.classnames, template) if reference is None else reference
    with torch.no_grad():
        w = F.normalize(learner.encode_text(), dim=-1)  # (C, E)
    if w.shape != ref.shape:
        raise ValueError(
            f"the learner has text features {tuple(w.shape)} for {len(learner.classnames)} classes, "
            f"the reference {tuple(ref.shape)}"
        )
    return float((1 - (w * ref.to(w.device)).sum(-1)).mean())


# ----------------------------------------------------------------------------- the tracker
class DriftTracker:
    """An `on_epoch_end` callback recording, for the learner being trained, its text-feature distance from
    the hand-crafted features (`text_distance`, on its own classes) and its accuracy (%) on `novel`.

    Args:
        novel: the novel test set to score each epoch (keep it small: `first_per_class(k)`).
        template: the hand-crafted template; None = the novel set's own (the suite's zero-shot template).
        device: where to evaluate (None = cuda if available).

    `records` gets one entry per finished epoch (`epoch` 1-based; `train` = the epoch's running training
    accuracy), after the learner's own epoch-end hook (so PromptSRC's last entry is its aggregated prompts),
    plus `epoch` 0 for the initial prompts when the learner is bound. A partial epoch (a stopped run) is
    not recorded. Measuring leaves training unchanged: it runs without gradients, restores the learner's
    mode and classes, and forks the random number generators.
    """

    def __init__(self, novel: ImageDataset, template: str | None = None, *, device: str | None = None):
        self.novel = novel
        self.template = template if template is not None else novel.template
        self.device = device
        self.learner: PromptLearner | None = None
        self.records: list[dict] = []
        self._reference: Tensor | None = None  # ŵ^clip of the bound learner's classes

    def measure(self, learner: PromptLearner) -> dict:
        """{"distance", "novel"} of `learner` now (distance on its own classes, accuracy % on `novel`)."""
        with torch.random.fork_rng(devices=[]):  # evaluation draws (loader seeds) never reach training
            distance = text_distance(learner, self.template, self._reference)
            novel = evaluate(learner, self.novel, device=self.device)["accuracy"]
        return {"distance": distance, "novel": novel}

    def bind(self, learner: PromptLearner) -> DriftTracker:
        """Track `learner` from now on; records its initial state as epoch 0 (clearing older records)."""
        self.learner = learner
        self._reference = hand_crafted_features(learner.clip, learner.classnames, self.template)
        self.records = [{"epoch": 0, **self.measure(learner), "train": float("nan")}]
        return self

    @contextlib.contextmanager
    def watch(self) -> Iterator[DriftTracker]:
        """Bind the first `PromptLearner` called in training mode inside this block (the learner that
        `run_experiment` builds and `fit` trains). A learner that trains nothing (zero-shot) is never bound."""

        def hook(module: nn.Module, args) -> None:
            if isinstance(module, PromptLearner) and module.training and self.learner is None:
                handle.remove()
                self.bind(module)

        self.learner, self.records = None, []
        handle = nn.modules.module.register_module_forward_pre_hook(hook)
        try:
            yield self
        finally:
            handle.remove()

    def __call__(self, state: TrainState) -> None:
        if self.learner is None:
            raise RuntimeError(
                "DriftTracker has no learner: call it inside `with tracker.watch():` around "
                "run_experiment, or bind(learner) before fit"
            )
        if state.step != (state.epoch + 1) * state.steps_per_epoch:  # stopped inside the epoch
            return
        train = state.history.epoch_accuracy[-1] if state.history.epoch_accuracy else float("nan")
        self.records.append({"epoch": state.epoch + 1, **self.measure(self.learner), "train": train})


@dataclass
class TrackedRun:
    """A finished experiment and its per-epoch curve (`DriftTracker.records`). A learner without trainable
    parameters (zero-shot) gets one epoch-0 entry: its distance (0 for the hand template) and novel accuracy."""

    result: ExperimentResult
    curve: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.result.method

    @property
    def seed(self) -> int:
        return self.result.spec.seed


def tracked_run(
    spec: ExperimentSpec,
    clip: FrozenCLIP,
    *,
    novel_per_class: int | None = None,
    device: str | None = None,
    label: str = "",
) -> TrackedRun:
    """`run_experiment(spec, clip)` with a `DriftTracker` on its novel test set (`spec.base2new` required),
    capped at `novel_per_class` images per class (None = the spec's own test cap).

    Example:
        >>> run = tracked_run(S.spec("kgcoop", "toyworld/polygons", clip), clip, novel_per_class=10)
        >>> run.result.metrics["hm"], run.curve[-1]["distance"]
    """
    if not spec.base2new:
        raise ValueError("tracked_run scores novel classes: the spec needs base2new=True")
    novel = test_sets(spec)["novel"].first_per_class(novel_per_class)
    tracker = DriftTracker(novel, device=device)
    with tracker.watch():
        result = run_experiment(spec, clip, device=device, on_epoch_end=tracker, label=label)
    if tracker.learner is None:  # nothing trained: the learner as built is the whole curve
        tracker.records = [{"epoch": 0, **tracker.measure(result.learner), "train": float("nan")}]
    return TrackedRun(result, tracker.records)


def seed_runs(
    clip: FrozenCLIP,
    methods: Sequence[str],
    suite: str,
    settings: NotebookSettings,
    seeds: Sequence[int] = (1, 2, 3),
    *,
    per_method: Mapping[str, dict] | None = None,
    novel_per_class: int | None = None,
) -> list[TrackedRun]:
    """`tracked_run` base-to-novel for every (method, seed) with the lesson's settings (methods outer).
    `per_method` gives learner options of single methods, e.g. {"coop": {"ctx_init": "a photo of a"}}.

    Example:
        >>> runs = seed_runs(clip, ["zeroshot", "coop", "kgcoop"], "toyworld/polygons", S, (1, 2, 3))
    """
    per_method = dict(per_method or {})
    unknown = sorted(set(per_method) - set(methods))
    if unknown:
        raise ValueError(f"per_method names {unknown}, which are not among the methods {list(methods)}")
    return [
        tracked_run(
            settings.spec(m, suite, clip, **per_method.get(m, {})).replace(seed=s),
            clip,
            novel_per_class=novel_per_class,
            device=settings.device,
        )
        for m in methods
        for s in seeds
    ]


def sweep(
    clip: FrozenCLIP,
    method: str,
    suite: str,
    settings: NotebookSettings,
    option: str,
    values: Sequence,
    *,
    seeds: Sequence[int] | None = None,
    novel_per_class: int | None = None,
    **options,
) -> list[TrackedRun]:
    """`tracked_run` of one method for each value of one learner option (e.g. kgcoop's "kg_weight",
    promptsrc's "gpa"), labelled "method option=value"; `seeds` None = the settings' seed.

    Example:
        >>> runs = sweep(clip, "kgcoop", "toyworld/polygons", S, "kg_weight", [0, 2, 8, 32])
    """
    return [
        tracked_run(
            settings.spec(method, suite, clip, **{**options, option: v}).replace(seed=s),
            clip,
            novel_per_class=novel_per_class,
            device=settings.device,
            label=f"{method} {option}={v}",
        )
        for v in values
        for s in (seeds or (settings.seed,))
    ]


# ----------------------------------------------------------------------------- summaries
def spread(runs: Sequence[TrackedRun]) -> dict[str, dict]:
    """{label: {"base", "novel", "hm": (mean, std), "seeds": [...]}} over the seeds of each label, in order
    of appearance. Std is the population std (ddof = 0, as `mmprompt-lab table`); "hm" is the HM of the
    mean base and novel (the papers' convention) ± the std of the per-seed HMs."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append({**run.result.metrics, "seed": run.seed})
    out = {}
    for label, recs in groups.items():
        row = {m: mean_std([r[m] for r in recs]) for m in ("base", "novel")}
        row["hm"] = (harmonic_mean(row["base"][0], row["novel"][0]), mean_std([r["hm"] for r in recs])[1])
        out[label] = {**row, "seeds": [r["seed"] for r in recs]}
    return out


def mean_curve(runs: Sequence[TrackedRun], label: str, key: str) -> tuple[list[int], list[float], list[float]]:
    """(epochs, mean, std) of curve entry `key` ("distance", "novel", "train") over the runs with `label`,
    at the epochs every one of them recorded."""
    curves = [{r["epoch"]: r[key] for r in run.curve} for run in runs if run.label == label]
    if not curves:
        raise ValueError(f"no run is labelled {label!r}; labels: {sorted({run.label for run in runs})}")
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    stats = [mean_std([c[e] for c in curves]) for e in epochs]
    return epochs, [m for m, _ in stats], [s for _, s in stats]


# ----------------------------------------------------------------------------- figures
def spread_figure(runs: Sequence[TrackedRun], title: str = "") -> go.Figure:
    """Grouped bars of base / novel / HM per label, mean over seeds with ± std error bars."""
    rows = spread(runs)
    fig = go.Figure()
    for label, row in rows.items():
        means, stds = [row[m][0] for m in METRICS], [row[m][1] for m in METRICS]
        fig.add_bar(
            name=label,
            x=list(METRICS),
            y=means,
            error_y=dict(type="data", array=stds),
            text=[f"{m:.1f}±{s:.1f}" for m, s in zip(means, stds, strict=True)],
            textposition="outside",
        )
    seeds = sorted({s for row in rows.values() for s in row["seeds"]})
    fig.update_layout(
        barmode="group",
        title=title or f"base-to-novel, mean ± std over seeds {seeds} (%)",
        yaxis_title="%",
        yaxis_range=[0, 110],
        height=400,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    return fig


def spread_table(runs: Sequence[TrackedRun]) -> go.Figure:
    """`spread` as a plotly table: "mean ± std" per metric and label."""
    rows = spread(runs)
    cells = [
        list(rows),
        *[[f"{row[m][0]:.1f} ± {row[m][1]:.1f}" for row in rows.values()] for m in METRICS],
        [" ".join(map(str, row["seeds"])) for row in rows.values()],
    ]
    fig = go.Figure(go.Table(header=dict(values=["method", *METRICS, "seeds"]), cells=dict(values=cells)))
    fig.update_layout(height=60 + 30 * len(rows), margin=dict(t=10, b=10, l=10, r=10))
    return fig


def drift_figure(runs: Sequence[TrackedRun], title: str = "") -> go.Figure:
    """Left: distance from the hand-crafted text features per epoch; right: novel accuracy per epoch —
    mean over seeds (± std bars) per label. A run that trained nothing (zero-shot) is a dashed line."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("1 − cos(ŵ, ŵ_clip), base classes", "novel accuracy (%)"))
    labels = list(dict.fromkeys(run.label for run in runs))
    last = max((r["epoch"] for run in runs for r in run.curve), default=0)
    colors = [f"hsl({int(360 * i / max(len(labels), 1))}, 65%, 45%)" for i in range(len(labels))]
    for label, color in zip(labels, colors, strict=True):
        for col, key in ((1, "distance"), (2, "novel")):
            epochs, mean, std = mean_curve(runs, label, key)
            if epochs == [0]:  # trained nothing: a reference line across the epochs
                fig.add_scatter(
                    x=[0, last],
                    y=mean * 2,
                    mode="lines",
                    line=dict(dash="dash", color=color),
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    row=1,
                    col=col,
                )
                continue
            fig.add_scatter(
                x=epochs,
                y=mean,
                error_y=dict(type="data", array=std, thickness=1),
                mode="lines+markers",
                line=dict(color=color),
                name=label,
                legendgroup=label,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch (0 = initial prompts)")
    fig.update_layout(
        title=title or "how far the class embeddings move, and what the novel classes feel",
        height=400,
        margin=dict(t=70, b=40, l=50, r=20),
    )
    return fig


def sweep_figure(
    runs: Sequence[TrackedRun], option: str, reference: Sequence[TrackedRun] = (), title: str = ""
) -> go.Figure:
    """Base / novel / HM against the swept option's values (one x per label, mean over seeds), the final
    distance on a second axis; zero-shot rows of `reference` (e.g. the seed runs) as dashed lines."""
    rows = spread(runs)
    xs = [label.rsplit(f"{option}=", 1)[-1] for label in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for m in METRICS:
        fig.add_scatter(
            x=xs,
            y=[row[m][0] for row in rows.values()],
            mode="lines+markers",
            name=m,
            error_y=dict(type="data", array=[row[m][1] for row in rows.values()], thickness=1),
        )
    distance = [mean_curve(runs, label, "distance")[1][-1] for label in rows]
    fig.add_scatter(
        x=xs, y=distance, mode="lines+markers", name="distance (right)", line=dict(dash="dot"), secondary_y=True
    )
    zeroshot = spread([run for run in reference if run.result.spec.method == "zeroshot"])
    for label, row in zeroshot.items():
        for m in ("base", "novel"):
            fig.add_hline(
                y=row[m][0],
                line_dash="dash",
                line_color="grey",
                annotation_text=f"{label} {m} {row[m][0]:.1f}",
                annotation_position="bottom right",
            )
    fig.update_xaxes(title_text=option, type="category")
    fig.update_yaxes(title_text="%", range=[0, 105], secondary_y=False)
    fig.update_yaxes(title_text="1 − cos", rangemode="tozero", secondary_y=True)
    fig.update_layout(title=title or f"the effect of {option}", height=400, margin=dict(t=50, b=40, l=50, r=50))
    return fig


__all__ = [
    "DriftTracker",
    "TrackedRun",
    "drift_figure",
    "hand_crafted_features",
    "mean_curve",
    "seed_runs",
    "spread",
    "spread_figure",
    "spread_table",
    "sweep",
    "sweep_figure",
    "text_distance",
    "tracked_run",
]
