"""Small experiments the notebooks run in one call (through the one pipeline,
`mmprompt_lab.experiment`): train one method on one ToyWorld suite (base classes), evaluate base /
novel / shifted test sets, and collect the results in rows; and the figures that show them.

    r = run_method(clip, "coop", "toyworld/shapes", settings=S)
    r.metrics      # {"base": 81.2, "novel": 64.0, "hm": 71.6}
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..engine import evaluate
from ..experiment import ExperimentResult, run_experiment
from ..learners import create_learner
from ..settings import NotebookSettings

RunResult = ExperimentResult  # what the lessons call a finished run


def run_method(clip, method: str, suite: str, settings: NotebookSettings, *, base_to_novel: bool = True,
               shifted: tuple[str, ...] = (), n_ctx: int | None = None, depth: int | None = None,
               lr: float | None = None, name: str | None = None, root: str | None = None,
               **options) -> ExperimentResult:
    """Train `method` on `suite` and evaluate it — one `run_experiment` with the lesson's settings.

    With `base_to_novel` the learner trains on the base half and is scored on base and novel test
    classes; otherwise it trains and tests on all classes ("accuracy"). `shifted` names domain-shifted
    test suites with the same classes (e.g. "toyworld/shapes-sketch"); their accuracies are added
    under their short names. A method without trainable parameters ("zeroshot") is evaluated only.
    `name` labels the run (default: the method); `root` is the folder of a real dataset; other keyword
    arguments are learner options.

    Example:
        >>> run_method(clip, "maple", "toyworld/shapes", S, n_ctx=2).metrics["hm"]
    """
    spec = settings.spec(method, suite, clip, base_to_novel=base_to_novel, shifted=shifted, n_ctx=n_ctx,
                         depth=depth, lr=lr, root=root, **options)
    return run_experiment(spec, clip, device=settings.device, label=name or "")


def compare(clip, methods: list[str], suites: list[str], settings: NotebookSettings, **kwargs) -> list[RunResult]:
    """`run_method` for every (suite, method) pair, suites outer. Keyword arguments go to each run."""
    return [run_method(clip, m, s, settings, **kwargs) for s in suites for m in methods]


def results_figure(results: list[RunResult], metrics: tuple[str, ...] | None = None,
                   title: str = "") -> go.Figure:
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
    fig.update_layout(barmode="group", title=title or "accuracy (%)", yaxis_title="%", yaxis_range=[0, 105],
                      height=380, margin=dict(t=50, b=40, l=50, r=20))
    return fig


def table_figure(results: list[RunResult]) -> go.Figure:
    """The rows of `results` as a plotly table."""
    rows = [r.row() for r in results]
    cols = list(dict.fromkeys(k for row in rows for k in row))
    fig = go.Figure(go.Table(header=dict(values=cols),
                             cells=dict(values=[[row.get(c, "") for row in rows] for c in cols])))
    fig.update_layout(height=60 + 30 * len(rows), margin=dict(t=10, b=10, l=10, r=10))
    return fig


def history_figure(results: list[RunResult]) -> go.Figure:
    """Training loss per step of several runs, one line each."""
    fig = go.Figure()
    for r in results:
        if r.history is not None:
            fig.add_scatter(y=r.history.step_loss, mode="lines", name=f"{r.method} ({r.suite.split('/')[-1]})")
    fig.update_layout(title="training loss", xaxis_title="step", yaxis_title="cross-entropy", height=320,
                      margin=dict(t=50, b=40, l=50, r=20))
    return fig


def gains(results: list[RunResult], metric: str = "accuracy", baseline: str = "zeroshot") -> dict[str, dict[str, float]]:
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
    fig = make_subplots(rows=per_class, cols=len(classes), subplot_titles=titles, horizontal_spacing=0.005,
                        vertical_spacing=0.02)
    for c in classes:
        for r, item in enumerate(picks[c]):
            fig.add_trace(go.Image(z=np.asarray(dataset.source.load_image(item).convert("RGB"))), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=cell * per_class + 60, width=max(400, cell * len(classes) + 40),
                      margin=dict(t=40, b=5, l=5, r=5), title=f"{dataset.name} ({dataset.split})")
    fig.update_annotations(font_size=10)
    return fig


def per_class_figure(metrics: dict, title: str = "") -> go.Figure:
    """Bars of per-class accuracy from `evaluate`, with the overall accuracy as a dashed line."""
    names, acc = list(metrics["per_class_accuracy"]), list(metrics["per_class_accuracy"].values())
    fig = go.Figure(go.Bar(x=names, y=acc))
    fig.add_hline(y=metrics["accuracy"], line_dash="dash", annotation_text=f"overall {metrics['accuracy']:.1f} %")
    fig.update_layout(title=title or f"per-class accuracy on {metrics['dataset']}", yaxis_title="%",
                      yaxis_range=[0, 105], height=340, margin=dict(t=50, b=60, l=50, r=20))
    return fig


def template_accuracy(clip, dataset, templates: list[str]) -> dict[str, float]:
    """Zero-shot top-1 accuracy (%) of each hand-written template ("{}" = class name) on `dataset`."""
    out = {}
    for t in templates:
        learner = create_learner("zeroshot", clip, dataset.classnames, templates=(t,))
        out[t] = evaluate(learner, dataset)["accuracy"]
    return out


def template_figure(clip, dataset, templates: list[str]) -> go.Figure:
    """Prompt sensitivity: zero-shot accuracy of each template, sorted (horizontal bars)."""
    acc = template_accuracy(clip, dataset, templates)
    order = sorted(acc, key=acc.get)
    fig = go.Figure(go.Bar(x=[acc[t] for t in order], y=order, orientation="h",
                           text=[f"{acc[t]:.1f}" for t in order], textposition="outside"))
    spread = max(acc.values()) - min(acc.values())
    fig.update_layout(title=f"same model, same images, different words: a {spread:.1f}-point spread",
                      xaxis_title="zero-shot accuracy (%)", xaxis_range=[0, 105], height=70 + 34 * len(order),
                      margin=dict(t=50, b=40, l=220, r=20))
    return fig
