"""Measurements of a ToyCLIP on the ToyWorld suites: zero-shot accuracy and feature variance."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..stats import class_variance
from ..toyworld.suites import SUITES


def _images(suite: str, split: str, preprocess: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a suite split, normalised: (N, 3, H, W) and labels (N,)."""
    key = (suite, split, preprocess["image_size"], tuple(preprocess["mean"]), tuple(preprocess["std"]))
    if key not in _CACHE:  # rendering costs more than a forward pass; keep the tensors
        _CACHE[key] = _render_split(suite, split, preprocess)
    return _CACHE[key]


_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _render_split(suite: str, split: str, preprocess: dict) -> tuple[torch.Tensor, torch.Tensor]:
    s = SUITES[suite]
    size = preprocess["image_size"]
    keys = s.keys(split)
    x = np.stack([np.asarray(s.image(k, label, size)) for k, label in keys])  # (N, H, W, 3)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    mean = torch.tensor(preprocess["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(preprocess["std"]).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor([label for _, label in keys])


@torch.no_grad()
def image_features(
    model, suite: str, preprocess: dict, split: str = "test", batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image features (N, E) of a suite split and their labels (N,)."""
    x, y = _images(suite, split, preprocess)
    feats = torch.cat([model.encode_image(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return F.normalize(feats, dim=-1), y  # (N, E), (N,)


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer, preprocess: dict, suite: str, split: str = "test") -> float:
    """Top-1 zero-shot accuracy on one suite with its single template."""
    s = SUITES[suite]
    text = F.normalize(model.encode_text(tokenizer([s.template.format(c) for c in s.classes])), dim=-1)  # (C, E)
    img, y = image_features(model, suite, preprocess, split)
    return (img @ text.T).argmax(-1).eq(y).float().mean().item()


def zero_shot_report(model, tokenizer, preprocess: dict, suites: list[str] | None = None, split: str = "test") -> dict:
    """Zero-shot accuracy per suite with the suite's template.

    Returns:
        {suite: {"accuracy": float, "chance": float, "classes": int}}.

    Example:
        >>> model, tokenizer, preprocess = create_toyclip()
        >>> zero_shot_report(model, tokenizer, preprocess)["shapes"]["accuracy"]
    """
    was_training = model.training
    model.eval()
    out = {}
    for name in suites or list(SUITES):
        n = len(SUITES[name].classes)
        out[name] = {
            "accuracy": round(zero_shot_accuracy(model, tokenizer, preprocess, name, split), 4),
            "chance": round(1 / n, 4),
            "classes": n,
        }
    model.train(was_training)
    return out


def feature_variance(model, suite: str, preprocess: dict | None = None, split: str = "test") -> dict:
    """Intra- and inter-class variance of normalised image features on a suite split.

    intra = mean over classes of the mean squared distance of a class's features to its mean;
    inter = mean squared distance of the class means to their overall mean; ratio = intra / inter
    (high ratio = classes overlap: fine-grained or highly variable suite).

    Returns:
        {"intra": float, "inter": float, "ratio": float}.
    """
    from .model import PREPROCESS

    was_training = model.training
    model.eval()
    f, y = image_features(model, suite, preprocess or PREPROCESS, split)  # (N, E), (N,)
    model.train(was_training)
    v = class_variance(f, y, normalize=False)  # the features are already normalised
    return {"intra": round(v["intra"], 4), "inter": round(v["inter"], 4), "ratio": round(v["ratio"], 3)}
