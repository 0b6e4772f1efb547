"""Image and text features before/after prompt tuning, and how well the two modalities align.

- `features(learner, dataset)`: L2-normalised image features (N, E), class text features (C, E).
- `modality_gap`, `class_cosine`, `nearest_class_accuracy`: alignment numbers.
- `umap_2d`: one seeded UMAP fit of any number of feature sets, so they share one 2-D space.
- `umap_figure`: image and text points of several stages (e.g. zero-shot and tuned), side by side; each
  modality centred on its own mean first (`centred`), so the modality gap does not push all text points
  into one corner and each star lands among the images it is closest to.
- `alignment_figure`: per-class image–text cosine of several stages, with gap and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

from ..engine.train import make_loader
from ..transforms import test_transform
from ..learners.base import PromptLearner


@dataclass
class Features:
    """Normalised features of one learner on one dataset. image (N, E), text (C, E), labels (N,)."""

    image: Tensor
    text: Tensor
    labels: Tensor
    classnames: list[str]
    name: str = ""


@torch.no_grad()
def features(learner: PromptLearner, dataset, name: str = "", batch_size: int | None = None) -> Features:
    """Image features of every image of `dataset` and the class text features, L2-normalised.

    Coupled learners (text depends on the images, e.g. DCP, CoCoOp) get their text features
    averaged over the evaluation batches (and images) and renormalised.
    """
    learner.eval()
    loader = make_loader(
        dataset.with_transform(test_transform(learner.clip)),
        batch_size or learner.preset.eval_batch_size,
        shuffle=False,
    )
    device = learner.clip.device
    images, texts, labels = [], [], []
    with learner.use_classnames(dataset.classnames):  # the learner is left as it was
        fixed = None if learner.conditional else learner.encode_text()  # (C, E)
        for x, y in loader:
            if fixed is None:
                img, txt = learner.encode(x.to(device))  # (B, E), (C, E) or (B, C, E)
                txt = F.normalize(txt, dim=-1)
                texts.append(txt.mean(0) * len(x) if txt.ndim == 3 else txt * len(x))
            else:
                img = learner.encode_image(x.to(device))
            images.append(F.normalize(img, dim=-1).cpu())
            labels.append(y)
    text = fixed if fixed is not None else torch.stack(texts).sum(0)  # (C, E)
    return Features(
        torch.cat(images),
        F.normalize(text.float(), dim=-1).cpu(),
        torch.cat(labels),
        list(dataset.classnames),
        name or learner.name,
    )


def modality_gap(f: Features) -> float:
    """‖mean image feature − mean text feature‖ (Liang et al., NeurIPS 2022), on the unit sphere."""
    return float((f.image.mean(0) - f.text.mean(0)).norm())


def class_cosine(f: Features) -> Tensor:
    """(C,) mean cosine between the images of class c and the text feature of class c."""
    cos = (f.image * f.text[f.labels]).sum(-1)  # (N,)
    return torch.stack(
        [
            cos[f.labels == c].mean() if (f.labels == c).any() else torch.tensor(float("nan"))
            for c in range(len(f.classnames))
        ]
    )


def nearest_class_accuracy(f: Features) -> float:
    """Top-1 accuracy (%) of assigning each image to its most similar class text feature."""
    return float((f.image @ f.text.T).argmax(-1).eq(f.labels).float().mean() * 100)


def summary(f: Features) -> dict:
    """{"gap", "cosine" (mean over classes), "accuracy"} of one feature set."""
    return {
        "gap": round(modality_gap(f), 4),
        "cosine": round(float(class_cosine(f).nanmean()), 4),
        "accuracy": round(nearest_class_accuracy(f), 2),
    }


def umap_2d(
    arrays: list[np.ndarray | Tensor],
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    metric: str = "cosine",
) -> list[np.ndarray]:
    """One UMAP fit over the stacked arrays (each (n_i, E)); returns their (n_i, 2) embeddings.

    Seeded (`random_state`, which also makes umap-learn single-threaded): same inputs and seed →
    same output. The first fit in a process pays numba's JIT (~15 s); fit once per notebook.
    """
    import umap

    mats = [np.asarray(a, dtype=np.float32) for a in arrays]
    x = np.concatenate(mats)
    k = max(2, min(n_neighbors, len(x) - 1))
    emb = umap.UMAP(
        n_neighbors=k,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1,
        init="spectral" if len(x) > k + 1 else "random",
    ).fit_transform(x)
    out, start = [], 0
    for m in mats:
        out.append(emb[start : start + len(m)])
        start += len(m)
    return out


def centred(f: Features) -> Features:
    """The features with each modality centred on its own mean and renormalised: the modality gap removed,
    the directions that tell classes apart kept (cosines between an image and the class texts are all
    shifted alike by the gap; what ranks them is what remains)."""

    def centre(x: Tensor) -> Tensor:
        return F.normalize(x - x.mean(0), dim=-1)

    return Features(centre(f.image), centre(f.text), f.labels, f.classnames, f.name)


def umap_figure(stages: list[Features], seed: int = 0, n_neighbors: int = 15, centre: bool = True) -> go.Figure:
    """Image (dots) and text (stars) features of every stage in one shared UMAP space, one panel each.

    Colours are classes; hover names the class and modality. One fit covers all stages. With `centre`
    (default) each stage's image and text features are first centred on their own modality's mean
    (`centred`): without it the modality gap dominates the cosine distances, and every text point
    lands in one corner, far from all images. The gap itself is in each panel's title.
    """
    shown = [centred(f) if centre else f for f in stages]
    arrays = [a for f in shown for a in (f.image, f.text)]
    emb = umap_2d(arrays, seed=seed, n_neighbors=n_neighbors)
    titles = [f"{f.name}: gap {modality_gap(f):.2f}, acc {nearest_class_accuracy(f):.0f} %" for f in stages]
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=titles, horizontal_spacing=0.04)
    palette = qualitative.Dark24
    for s, f in enumerate(stages):
        img, txt = emb[2 * s], emb[2 * s + 1]
        for c, name in enumerate(f.classnames):
            colour = palette[c % len(palette)]
            m = (f.labels == c).numpy()
            fig.add_scatter(
                x=img[m, 0],
                y=img[m, 1],
                mode="markers",
                name=name,
                legendgroup=name,
                showlegend=s == 0,
                marker=dict(size=6, color=colour, opacity=0.7),
                hovertemplate=f"image · {name}<extra></extra>",
                row=1,
                col=s + 1,
            )
            fig.add_scatter(
                x=[txt[c, 0]],
                y=[txt[c, 1]],
                mode="markers",
                name=f"text · {name}",
                legendgroup=name,
                showlegend=False,
                marker=dict(size=16, color=colour, symbol="star", line=dict(width=1, color="black")),
                hovertemplate=f"text · {name}<extra></extra>",
                row=1,
                col=s + 1,
            )
    how = " (each modality centred: gap removed for the layout)" if centre else ""
    fig.update_layout(
        title=f"UMAP of image (dots) and text (stars) features{how}",
        height=460,
        width=max(520, 460 * len(stages)),
        margin=dict(t=80, b=20, l=20, r=20),
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def alignment_figure(stages: list[Features]) -> go.Figure:
    """Per-class image–text cosine of each stage (bars), with modality gap and accuracy in the legend."""
    fig = go.Figure()
    for f in stages:
        s = summary(f)
        fig.add_bar(
            x=f.classnames, y=class_cosine(f).numpy(), name=f"{f.name} (gap {s['gap']:.2f}, acc {s['accuracy']:.0f} %)"
        )
    fig.update_layout(
        barmode="group",
        title="image–text cosine of each class (higher = better aligned)",
        yaxis_title="mean cosine",
        height=380,
        margin=dict(t=50, b=60, l=50, r=20),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig
