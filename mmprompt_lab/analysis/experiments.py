"""Small experiments the notebooks run in one call: train one method on one ToyWorld suite
(base classes), evaluate base / novel / shifted test sets, and collect the results in rows.

    r = run_method(clip, "coop", "toyworld/shapes", settings=S)
    r.metrics      # {"base": 81.2, "novel": 64.0, "hm": 71.6}
"""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go

from ..engine import evaluate, fit
from ..learners import create_learner
from ..learners.base import PromptLearner
from ..widgets.settings import NotebookSettings, learner_overrides


@dataclass
class RunResult:
    """A finished run: the trained learner, its `fit` history and its metrics (%)."""

    method: str
    suite: str
    learner: PromptLearner
    history: object  # engine.History
    metrics: dict = field(default_factory=dict)  # "base", "novel", "hm" and/or "accuracy", per shifted suite

    def row(self) -> dict:
        return {"method": self.method, "suite": self.suite, **{k: round(v, 2) for k, v in self.metrics.items()}}


def run_method(clip, method: str, suite: str, settings: NotebookSettings, *, base_to_novel: bool = True,
               shifted: tuple[str, ...] = (), n_ctx: int | None = None, depth: int | None = None,
               lr: float | None = None, **overrides) -> RunResult:
    """Train `method` on `suite` and evaluate it.

    With `base_to_novel` the learner trains on the base half and is evaluated on base and novel test
    classes (PROTOCOL.md); otherwise it trains and tests on all classes ("accuracy"). `shifted`
    names domain-shifted test suites with the same classes (e.g. "toyworld/shapes-sketch"); their
    accuracies are added under their names. A method without trainable parameters ("zeroshot") is
    evaluated only.

    Example:
        >>> run_method(clip, "maple", "toyworld/shapes", S, n_ctx=2).metrics["hm"]
    """
    subsample = "base" if base_to_novel else "all"
    train = settings.dataset(suite, "train", subsample)
    kwargs = {**learner_overrides(method, clip, n_ctx, depth), **overrides}
    learner = create_learner(method, clip, train.classnames, **kwargs)
    history = None
    if learner.num_trainable():
        history = fit(learner, train, lr=lr, **settings.fit_kwargs())
    metrics = {}
    batch = learner.preset.eval_batch_size
    if base_to_novel:
        base = evaluate(learner, settings.dataset(suite, "test", "base"), batch_size=batch, device=settings.device)
        novel = evaluate(learner, settings.dataset(suite, "test", "novel"), batch_size=batch, device=settings.device)
        learner.set_classnames(train.classnames)
        b, n = base["accuracy"], novel["accuracy"]
        metrics.update(base=b, novel=n, hm=2 * b * n / (b + n) if b + n else 0.0)
    else:
        metrics["accuracy"] = evaluate(learner, settings.dataset(suite, "test"), batch_size=batch,
                                       device=settings.device)["accuracy"]
    for name in shifted:
        metrics[name.split("/")[-1]] = evaluate(learner, settings.dataset(name, "test", subsample),
                                                batch_size=batch, device=settings.device)["accuracy"]
    if list(learner.classnames) != list(train.classnames):
        learner.set_classnames(train.classnames)
    return RunResult(method, suite, learner, history, metrics)


def compare(clip, methods: list[str], suites: list[str], settings: NotebookSettings, **kwargs) -> list[RunResult]:
    """`run_method` for every (suite, method) pair, suites outer. Keyword arguments go to each run."""
    return [run_method(clip, m, s, settings, **kwargs) for s in suites for m in methods]


def results_figure(results: list[RunResult], metrics: tuple[str, ...] | None = None,
                   title: str = "") -> go.Figure:
    """Grouped bars: one group per metric (and suite), one bar colour per method."""
    metrics = metrics or tuple(k for k in results[0].metrics)
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
