"""Small experiments the notebooks run in one call (through the one pipeline,
`mmprompt_lab.experiment`): train one method on one ToyWorld suite (base classes), evaluate base /
novel / shifted test sets, and collect the results in rows; read them against zero-shot CLIP; few-shot
curves; and the figures that show them. Training runs without progress bars (they would land in the
notebook as widgets that reopen as "Error displaying widget").

    r = run_method(clip, "coop", "toyworld/shapes", settings=S)
    r.metrics      # {"base": 81.2, "novel": 64.0, "hm": 71.6}
    verdict([zs, r])   # each run against zero-shot, runs below it flagged
"""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..engine import evaluate
from ..experiment import ExperimentResult, run_experiment
from ..learners import create_learner, get_learner_class
from ..settings import CI_LIMITS, NotebookSettings
from .parameters import gradient_norms

RunResult = ExperimentResult  # what the lessons call a finished run


def run_method(
    clip,
    method: str,
    suite: str,
    settings: NotebookSettings,
    *,
    base_to_novel: bool = True,
    shifted: tuple[str, ...] = (),
    n_ctx: int | None = None,
    depth: int | None = None,
    lr: float | None = None,
    name: str | None = None,
    root: str | None = None,
    preset: str | None = None,
    **options,
) -> ExperimentResult:
    """Train `method` on `suite` and evaluate it — one `run_experiment` with the lesson's settings.

    With `base_to_novel` the learner trains on the base half and is scored on base and novel test
    classes; otherwise it trains and tests on all classes ("accuracy"). `shifted` names domain-shifted
    test suites with the same classes (e.g. "toyworld/shapes-sketch"); their accuracies are added
    under their short names. A method without trainable parameters ("zeroshot") is evaluated only.
    `name` labels the run (default: the method); `root` is the folder of a real dataset; `preset` names a
    recipe of the method (e.g. MaPLe's "transfer"): its epochs, batch size, lr and options replace the
    lesson's (epochs still capped at CI size), while `n_ctx`, `depth`, `lr` and options given here win;
    other keyword arguments are learner options.

    Example:
        >>> run_method(clip, "maple", "toyworld/shapes", S, n_ctx=2).metrics["hm"]
        >>> run_method(clip, "maple", "toyworld/shapes", S, preset="transfer")   # depth 3 of 12, 2 epochs
    """
    spec = settings.spec(
        method,
        suite,
        clip,
        base_to_novel=base_to_novel,
        shifted=shifted,
        n_ctx=n_ctx,
        depth=depth,
        lr=lr,
        root=root,
        **options,
    )
    if preset is not None:
        train = get_learner_class(method).named_preset(preset).train
        spec = spec.replace(
            preset=preset, epochs=min(train.epochs, settings.epochs) if settings.ci else None, batch_size=None
        )
    return run_experiment(spec, clip, device=settings.device, label=name or "", progress=False)


def compare(clip, methods: list[str], suites: list[str], settings: NotebookSettings, **kwargs) -> list[RunResult]:
    """`run_method` for every (suite, method) pair, suites outer. Keyword arguments go to each run."""
    return [run_method(clip, m, s, settings, **kwargs) for s in suites for m in methods]


def results_figure(results: list[RunResult], metrics: tuple[str, ...] | None = None, title: str = "") -> go.Figure:
    """Grouped bars: one group per metric (and suite), one bar colour per method."""
    metrics = metrics or tuple(k for k in results[0].metrics if not (k == "accuracy" and "base" in results[0].metrics))
    suites = list(dict.fromkeys(r.suite for r in results))
    fig = go.Figure()
    for method in dict.fromkeys(r.method for r in results):
        xs, ys = [], []
        for r in results:
            if r.method != method:
                continue
            for k in metrics:
                if k in r.metrics:
                    xs.append(f"{k}<br>{r.suite.split('/')[-1]}" if len(suites) > 1 else k)
                    ys.append(r.metrics[k])
        fig.add_bar(name=method, x=xs, y=ys, text=[f"{y:.1f}" for y in ys], textposition="outside")
    fig.update_layout(
        barmode="group",
        title=title or "accuracy (%)",
        yaxis_title="%",
        yaxis_range=[0, 105],
        height=380,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    return fig


def table_figure(results: list[RunResult]) -> go.Figure:
    """The rows of `results` as a plotly table."""
    rows = [r.row() for r in results]
    cols = list(dict.fromkeys(k for row in rows for k in row))
    fig = go.Figure(
        go.Table(header=dict(values=cols), cells=dict(values=[[row.get(c, "") for row in rows] for c in cols]))
    )
    fig.update_layout(height=60 + 30 * len(rows), margin=dict(t=10, b=10, l=10, r=10))
    return fig


def history_figure(results: list[RunResult]) -> go.Figure:
    """Training loss per step of several runs, one line each."""
    fig = go.Figure()
    for r in results:
        if r.history is not None:
            fig.add_scatter(y=r.history.step_loss, mode="lines", name=f"{r.method} ({r.suite.split('/')[-1]})")
    fig.update_layout(
        title="training loss",
        xaxis_title="step",
        yaxis_title="cross-entropy",
        height=320,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    return fig


def gains(
    results: list[RunResult], metric: str = "accuracy", baseline: str = "zeroshot"
) -> dict[str, dict[str, float]]:
    """{method: {suite: metric − baseline's metric on that suite}} (points), baseline excluded."""
    base = {r.suite: r.metrics[metric] for r in results if r.method == baseline}
    out: dict[str, dict[str, float]] = {}
    for r in results:
        if r.method != baseline and r.suite in base:
            out.setdefault(r.method, {})[r.suite] = r.metrics[metric] - base[r.suite]
    return out


# ----------------------------------------------------------------------------- zero-shot lessons
def suite_figure(dataset, per_class: int = 2, max_classes: int = 12, cell: int = 64) -> go.Figure:
    """A grid of a dataset's images: one column per class (up to `max_classes`), `per_class` rows."""
    import numpy as np

    classes = list(range(min(len(dataset.classnames), max_classes)))
    picks: dict[int, list] = {c: [] for c in classes}
    for item in dataset.items:
        if item.label in picks and len(picks[item.label]) < per_class:
            picks[item.label].append(item)
    titles = [dataset.classnames[c] if r == 0 else "" for r in range(per_class) for c in classes]
    fig = make_subplots(
        rows=per_class, cols=len(classes), subplot_titles=titles, horizontal_spacing=0.005, vertical_spacing=0.02
    )
    for c in classes:
        for r, item in enumerate(picks[c]):
            fig.add_trace(go.Image(z=np.asarray(dataset.source.load_image(item).convert("RGB"))), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        height=cell * per_class + 60,
        width=max(400, cell * len(classes) + 40),
        margin=dict(t=40, b=5, l=5, r=5),
        title=f"{dataset.name} ({dataset.split})",
    )
    fig.update_annotations(font_size=10)
    return fig


def per_class_figure(metrics: dict, title: str = "") -> go.Figure:
    """Bars of per-class accuracy from `evaluate`, with the overall accuracy as a dashed line."""
    names, acc = list(metrics["per_class_accuracy"]), list(metrics["per_class_accuracy"].values())
    fig = go.Figure(go.Bar(x=names, y=acc))
    fig.add_hline(y=metrics["accuracy"], line_dash="dash", annotation_text=f"overall {metrics['accuracy']:.1f} %")
    fig.update_layout(
        title=title or f"per-class accuracy on {metrics['dataset']}",
        yaxis_title="%",
        yaxis_range=[0, 105],
        height=340,
        margin=dict(t=50, b=60, l=50, r=20),
    )
    return fig


def template_accuracy(clip, dataset, templates: list[str]) -> dict[str, float]:
    """Zero-shot top-1 accuracy (%) of each hand-written template ("{}" = class name) on `dataset`."""
    learners = {t: create_learner("zeroshot", clip, dataset.classnames, templates=(t,)) for t in templates}
    return learner_accuracy(learners, dataset)


def learner_accuracy(learners: dict[str, object], dataset) -> dict[str, float]:
    """Top-1 accuracy (%) of each learner on `dataset`, as `evaluate` gives it. Hand-template learners
    (zero-shot CLIP: no prompts in the image tower) share one pass of the frozen image tower — the same
    numbers as evaluating each, several times faster."""
    from .embeddings import features

    out, frozen = {}, None
    for name, learner in learners.items():
        if learner.has_text_prompts or learner.has_vision_prompts or learner.conditional:
            out[name] = evaluate(learner, dataset, progress=False)["accuracy"]
            continue
        if frozen is None:
            frozen = features(learner, dataset)  # image (N, E) of the frozen tower, labels (N,)
        with learner.use_classnames(dataset.classnames), torch.no_grad():
            text = torch.nn.functional.normalize(learner.encode_text().float(), dim=-1).cpu()  # (C, E)
        pred = (frozen.image @ text.T).argmax(-1)  # (N,): the same argmax as evaluate's scaled cosine logits
        out[name] = float((pred == frozen.labels).double().mean() * 100)
    return out


def accuracy_figure(learners: dict[str, object], dataset, title: str = "") -> go.Figure:
    """Horizontal bars of each named learner's accuracy (%) on `dataset` (e.g. one template vs an ensemble)."""
    acc = learner_accuracy(learners, dataset)
    names = list(acc)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[acc[n] for n in names],
            y=names,
            orientation="h",
            text=[f"{acc[n]:.1f}" for n in names],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=title or f"accuracy on {dataset.name} ({dataset.split})",
        xaxis_title="accuracy (%)",
        xaxis_range=[0, 105],
        height=80 + 40 * len(names),
        margin=dict(t=50, b=40, l=260, r=20),
    )
    return fig


def template_figure(clip, dataset, templates: list[str]) -> go.Figure:
    """Prompt sensitivity: zero-shot accuracy of each template, sorted (horizontal bars)."""
    acc = template_accuracy(clip, dataset, templates)
    order = sorted(acc, key=acc.get)
    fig = go.Figure(
        go.Bar(
            x=[acc[t] for t in order],
            y=order,
            orientation="h",
            text=[f"{acc[t]:.1f}" for t in order],
            textposition="outside",
        )
    )
    spread = max(acc.values()) - min(acc.values())
    fig.update_layout(
        title=f"same model, same images, different words: a {spread:.1f}-point spread",
        xaxis_title="zero-shot accuracy (%)",
        xaxis_range=[0, 105],
        height=70 + 34 * len(order),
        margin=dict(t=50, b=40, l=220, r=20),
    )
    return fig


# ----------------------------------------------------------------------------- against zero-shot
def zero_shot_reference(results: list[RunResult], baseline: str = "zeroshot") -> dict[str, dict[str, float]]:
    """{suite: {metric: zero-shot value}}: from the zero-shot runs among `results`, else from the runs'
    own "zeroshot_<metric>" entries (`ExperimentSpec.zeroshot_reference`)."""
    ref: dict[str, dict[str, float]] = {}
    for r in results:
        if r.method == baseline:
            ref.setdefault(r.suite, {}).update(r.metrics)
    for r in results:
        zs = {k.removeprefix("zeroshot_"): v for k, v in r.metrics.items() if k.startswith("zeroshot_")}
        for k, v in zs.items():
            ref.setdefault(r.suite, {}).setdefault(k, v)
    return ref


def _headline(metrics: dict) -> list[str]:
    """The metrics a run is judged by: hm (base-to-novel), accuracy, and any shifted suite."""
    keys = ["hm"] if "hm" in metrics else ["accuracy"]
    return keys + [k for k in metrics if k not in ("accuracy", "base", "novel", "hm") and not k.startswith("zeroshot_")]


def verdict(results: list[RunResult], baseline: str = "zeroshot"):
    """Each tuned run against zero-shot CLIP on the same suite (HM under base-to-novel, else accuracy, and
    every shifted test set), as a Markdown table; a run below zero-shot is flagged "⚠ below zero-shot".

    Needs a zero-shot run among `results` (or runs made with a zero-shot reference). Returns an
    `IPython.display.Markdown` (shown when it is the last line of a cell); its `.data` is the text.
    """
    from IPython.display import Markdown

    ref = zero_shot_reference(results, baseline)
    lines = ["| run | suite | metric | run (%) | zero-shot (%) | gain (points) | |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r.method == baseline:
            continue
        for key in _headline(r.metrics):
            zs = ref.get(r.suite, {}).get(key)
            if zs is None:
                continue
            gain = r.metrics[key] - zs
            flag = "⚠ below zero-shot" if gain < 0 else ""
            lines.append(
                f"| {r.method} | {r.suite.split('/')[-1]} | {key} | {r.metrics[key]:.1f} | {zs:.1f} | "
                f"{gain:+.1f} | {flag} |"
            )
    if len(lines) == 2:
        raise ValueError("no zero-shot reference: add a 'zeroshot' run for each suite to the results")
    return Markdown("\n".join(lines))


# ----------------------------------------------------------------------------- few-shot curves
def few_shot_curve(
    clip,
    methods: list[str],
    suite: str,
    settings: NotebookSettings,
    shots: tuple[int, ...] = (1, 2, 4, 8, 16),
    **kwargs,
) -> list[RunResult]:
    """Accuracy against the number of training images per class: `run_method` on all classes of `suite`
    for each method and each K in `shots` (at CI size only K ≤ 2). "zeroshot" is run once (it trains on
    nothing). Keyword arguments go to each run (e.g. `preset`, `n_ctx`, learner options).

    Example:
        >>> few_shot_figure(few_shot_curve(clip, ["zeroshot", "coop"], "toyworld/polygons", S))
    """
    if settings.ci:
        shots = tuple(k for k in shots if k <= CI_LIMITS["shots"]) or (1,)
    out = []
    for method in methods:
        for k in shots[:1] if method == "zeroshot" else shots:
            out.append(
                run_method(clip, method, suite, dataclasses.replace(settings, shots=k), base_to_novel=False, **kwargs)
            )
    return out


def few_shot_figure(results: list[RunResult], baseline: str = "zeroshot") -> go.Figure:
    """Accuracy (%) against shots per class (log scale), one line per method; zero-shot as a dashed line."""
    fig = go.Figure()
    for r in results:
        if r.method == baseline:
            fig.add_hline(
                y=r.metrics["accuracy"],
                line_dash="dash",
                line_color="grey",
                annotation_text=f"zero-shot {r.metrics['accuracy']:.1f} %",
            )
    for method in dict.fromkeys(r.method for r in results if r.method != baseline):
        runs = sorted((r for r in results if r.method == method), key=lambda r: r.spec.shots)
        fig.add_scatter(
            x=[r.spec.shots for r in runs], y=[r.metrics["accuracy"] for r in runs], mode="lines+markers", name=method
        )
    suite = results[0].suite.split("/")[-1] if results else ""
    fig.update_layout(
        title=f"few-shot accuracy on {suite}",
        xaxis=dict(title="shots per class", type="log", tickvals=sorted({r.spec.shots for r in results})),
        yaxis_title="accuracy (%)",
        yaxis_range=[0, 105],
        height=360,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    return fig


# ----------------------------------------------------------------------------- gradients
def gradient_figure(learners: dict[str, object], dataset, n: int = 16) -> go.Figure:
    """`gradient_norms` of several learners side by side (log scale); groups without gradient are drawn
    at the floor of the axis and labelled "no gradient"."""
    norms = {name: gradient_norms(learner, dataset, n) for name, learner in learners.items()}
    positive = [v for n in norms.values() for v in n.values() if v > 0]
    floor = min(positive) / 10 if positive else 1e-6
    fig = go.Figure()
    for name, n in norms.items():
        groups = list(n)
        fig.add_bar(
            name=name,
            x=groups,
            y=[n[g] if n[g] > 0 else floor for g in groups],
            text=[f"{n[g]:.1e}" if n[g] > 0 else "no gradient" for g in groups],
            textposition="outside",
            hovertext=[f"{g}: {n[g]:.3g}" for g in groups],
        )
    fig.update_layout(
        barmode="group",
        title="gradient norm of the training loss per parameter group (one batch)",
        yaxis=dict(type="log", title="‖∇‖"),
        height=400,
        margin=dict(t=50, b=80, l=60, r=20),
    )
    return fig
