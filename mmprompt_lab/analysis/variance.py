"""Intra- and inter-class variance of features — the quantities behind UPT's finding (Zang et al.,
2022): text prompt tuning struggles when images of one class vary a lot (high intra-class visual
variance), visual prompt tuning when classes look alike (low inter-class variance).

Definitions (the same as `mmprompt_lab.toyclip.feature_variance`, on L2-normalised features):
    intra = mean over classes c of mean_{x in c} ‖x − μ_c‖²
    inter = mean over classes of ‖μ_c − μ‖²,   μ = mean of the class means μ_c
    ratio = intra / inter   (high: classes overlap — the hard, fine-grained or cluttered case)
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..stats import class_variance


def text_variance(text: Tensor, normalize: bool = True) -> dict:
    """Variance of class text features. text (C, E): inter only (intra = 0, one prompt per class);
    text (K, C, E), K prompts per class (templates, or per-image prompts): intra over the K as well."""
    if text.ndim == 2:
        text = text[None]
    k, c, e = text.shape
    labels = torch.arange(c).repeat(k)  # row-major (K, C) → labels of the flattened rows
    return class_variance(text.reshape(k * c, e), labels, normalize)


def variance_row(name: str, image: Tensor, labels: Tensor, text: Tensor | None = None) -> dict:
    """One table row: image intra/inter/ratio, and the text inter-class variance when given."""
    v = class_variance(image, labels)
    row = {"suite": name, "image intra": v["intra"], "image inter": v["inter"], "image ratio": v["ratio"]}
    if text is not None:
        row["text inter"] = text_variance(text)["inter"]
    return row


def variance_figure(rows: list[dict], title: str = "") -> go.Figure:
    """Left: intra and inter variance per suite (bars). Right: their ratio (bars)."""
    names = [r["suite"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("image feature variance", "intra / inter"))
    fig.add_bar(x=names, y=[r["image intra"] for r in rows], name="intra-class", row=1, col=1)
    fig.add_bar(x=names, y=[r["image inter"] for r in rows], name="inter-class", row=1, col=1)
    if all("text inter" in r for r in rows):
        fig.add_bar(x=names, y=[r["text inter"] for r in rows], name="text inter-class", row=1, col=1)
    fig.add_bar(
        x=names, y=[r["image ratio"] for r in rows], name="ratio", showlegend=False, row=1, col=2, marker_color="grey"
    )
    fig.update_layout(
        barmode="group",
        title=title or "how much classes vary inside and between each other",
        height=380,
        margin=dict(t=70, b=40, l=50, r=20),
    )
    return fig


def gain_vs_variance_figure(rows: list[dict], gains: dict[str, dict[str, float]]) -> go.Figure:
    """Accuracy gain over zero-shot (points) of each method against a suite's intra/inter ratio.

    rows: from `variance_row`; gains: {method: {suite: gain in points}}.
    """

    def short(suite: str) -> str:  # rows say "polygons", gains "toyworld/polygons": match on the short name
        return suite.split("/")[-1]

    ratio = {short(r["suite"]): r["image ratio"] for r in rows}
    fig = go.Figure()
    for method, per_suite in gains.items():
        per_suite = {short(s): g for s, g in per_suite.items()}
        suites = [s for s in per_suite if s in ratio]
        fig.add_scatter(
            x=[ratio[s] for s in suites],
            y=[per_suite[s] for s in suites],
            mode="markers+lines+text",
            text=suites,
            textposition="top center",
            name=method,
            marker=dict(size=11),
        )
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="gain over zero-shot vs intra/inter-class variance ratio",
        xaxis_title="image intra / inter variance",
        yaxis_title="accuracy gain (points)",
        height=400,
        margin=dict(t=50, b=40, l=60, r=20),
    )
    return fig


def suite_variance(learners: dict[str, object], datasets: dict[str, object]) -> list[dict]:
    """Rows of `variance_row` for each (name, learner) on the dataset of the same name.

    learners and datasets are keyed alike, e.g. {"polygons · zero-shot": zs, "polygons · CoOp": coop}.
    Image features come from `embeddings.features`; text features are the learner's class features.
    """
    from .embeddings import features

    rows = []
    for name, learner in learners.items():
        f = features(learner, datasets[name])
        rows.append(variance_row(name, f.image, f.labels, f.text))
    return rows


def zero_shot_variance(clip, suites: list[str], settings) -> list[dict]:
    """Variance rows of zero-shot CLIP's features on each suite's test split (one row per suite)."""
    from ..learners import create_learner

    rows = []
    for suite in suites:
        test = settings.dataset(suite, "test")
        template = getattr(test, "template", "a photo of a {}.")
        zs = create_learner("zeroshot", clip, test.classnames, templates=(template,))
        rows += suite_variance({suite.split("/")[-1]: zs}, {suite.split("/")[-1]: test})
    return rows


def tuned_variance(results) -> list[dict]:
    """Variance rows ("suite · method") of the learners of `experiments.run_method` results, each on
    the test set it was evaluated on in-domain (`RunResult.test`)."""
    return suite_variance(
        {f"{r.suite.split('/')[-1]} · {r.method}": r.learner for r in results},
        {f"{r.suite.split('/')[-1]} · {r.method}": r.test for r in results},
    )
