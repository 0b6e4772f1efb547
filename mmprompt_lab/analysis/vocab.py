"""What did the learned context become? Nearest vocabulary words of each learned context vector,
through the CLIP token embedding (CoOp paper §4.6 uses Euclidean distance; cosine is offered too).
Learned vectors usually sit far from any word, so the words are a hint, not a translation.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from torch import Tensor

from ..learners.base import PromptLearner


def learned_context(learner: PromptLearner, row: int = 0) -> Tensor:
    """(M, Dt) the layer-0 vectors at the learnable text slots of class `row`'s prompt — the raw
    context for CoOp/IVLP/MaPLe/…, the mixer's output for UPT, the shared context (before the
    meta-net) for learners whose text prompts are made per image (CoCoOp)."""
    if not learner.has_text_prompts:
        raise ValueError(f"{learner.name!r} has no learnable text context")
    if learner.image_conditioned_text:
        return learner.ctx.detach().float().cpu()  # (M, Dt)
    with torch.no_grad():
        emb, _ = learner.text_prompts(learner.begin_pass())  # (C, L, Dt)
    return emb[row, learner.prompts.slots[row]].detach().float().cpu()  # (M, Dt)


def nearest_words(
    clip, vectors: Tensor, k: int = 5, metric: str = "euclidean", skip_unused: bool = True
) -> list[list[tuple[str, float]]]:
    """For each vector (M, Dt), the k nearest token-embedding rows as (word, distance or cosine).

    skip_unused: ignore all-zero rows (ToyCLIP ships only the rows its world uses).
    Returns M lists of k (word, score) pairs, nearest first ("euclidean": smaller is nearer).
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    table = clip.text.token_embedding.weight.detach().float().cpu()  # (V, Dt)
    ids = torch.arange(table.shape[0])
    if skip_unused:
        keep = table.abs().sum(-1) > 0
        table, ids = table[keep], ids[keep]
    vectors = vectors.float().cpu()
    if metric == "euclidean":
        score = torch.cdist(vectors, table)  # (M, V)
        best = score.topk(min(k, len(ids)), largest=False)
    else:
        score = F.normalize(vectors, dim=-1) @ F.normalize(table, dim=-1).T  # (M, V)
        best = score.topk(min(k, len(ids)))
    decoder = clip.tokenizer.decoder
    return [
        [(decoder[int(ids[j])].replace("</w>", ""), round(float(v), 4)) for v, j in zip(vals, idx, strict=True)]
        for vals, idx in zip(best.values, best.indices, strict=True)
    ]


def vocab_figure(words: list[list[tuple[str, float]]], title: str = "") -> go.Figure:
    """A table: one row per context vector, its nearest words with their scores."""
    k = max(len(w) for w in words)
    header = ["ctx"] + [f"#{i + 1}" for i in range(k)]
    cells = [[f"ctx{m + 1}" for m in range(len(words))]]
    cells += [[f"{w[i][0]} ({w[i][1]:.2f})" if i < len(w) else "" for w in words] for i in range(k)]
    fig = go.Figure(go.Table(header=dict(values=header), cells=dict(values=cells)))
    fig.update_layout(
        title=title or "nearest vocabulary words of each learned context vector",
        height=90 + 28 * len(words),
        margin=dict(t=40, b=10, l=10, r=10),
    )
    return fig
