"""Statistics of features used by the analysis lessons and the ToyCLIP report (one formula each)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def class_variance(x: Tensor, labels: Tensor, normalize: bool = True) -> dict:
    """Intra-/inter-class variance of features x (N, E) with labels (N,).

    Returns {"intra", "inter", "ratio", "per_class": (C,) intra variance of each class present}.
    Classes are the distinct labels, in sorted order.

    Example:
        >>> class_variance(torch.tensor([[0., 1], [0, -1], [4, 1], [4, -1]]), torch.tensor([0, 0, 1, 1]),
        ...                normalize=False)   # intra 1, inter 4, ratio 0.25
    """
    x = F.normalize(x.float(), dim=-1) if normalize else x.float()
    classes = labels.unique()
    means = torch.stack([x[labels == c].mean(0) for c in classes])  # (C, E)
    per_class = torch.stack([((x[labels == c] - means[i]) ** 2).sum(-1).mean() for i, c in enumerate(classes)])  # (C,)
    intra = per_class.mean()
    inter = ((means - means.mean(0)) ** 2).sum(-1).mean()
    return {
        "intra": float(intra),
        "inter": float(inter),
        "ratio": float(intra / inter.clamp_min(1e-12)),
        "per_class": per_class,
    }
