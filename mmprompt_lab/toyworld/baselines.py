"""A colour-only baseline: how far a suite can be solved from colour statistics alone.

Features are a 4×4×4 RGB histogram of the whole image (so background colour counts too) plus the
mean colour; a ridge-regression linear classifier is fit on the train split and scored on test.
A suite that is "about" shape or pattern should leave this baseline far below zero-shot CLIP.
"""

from __future__ import annotations

import numpy as np

from .suites import SUITES


def colour_features(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 67): normalised 64-bin colour histogram + mean RGB."""
    q = (images // 64).astype(np.int64)  # (N, H, W, 3), 4 levels per channel
    bins = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]  # (N, H, W)
    hist = np.stack([np.bincount(b.ravel(), minlength=64) for b in bins]).astype(np.float64)
    hist /= hist.sum(1, keepdims=True)
    return np.concatenate([hist, images.reshape(len(images), -1, 3).mean(1) / 255], 1)


def colour_baseline(suite: str, train_split: str = "train", test_split: str = "test", ridge: float = 1e-2) -> float:
    """Test accuracy of a linear classifier on colour histograms (chance = 1 / classes).
    Domain-shifted sets (test only) are scored with a classifier fit on the shapes suite."""
    s = SUITES[suite]
    fit_on = s if train_split in s.sizes else SUITES["shapes"]

    def data(src, split):
        keys = src.keys(split)
        x = np.stack([np.asarray(src.image(k, label)) for k, label in keys])
        return colour_features(x), np.array([label for _, label in keys])

    x, y = data(fit_on, train_split)
    xt, yt = data(s, test_split)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mu) / sd, (xt - mu) / sd
    x, xt = np.c_[x, np.ones(len(x))], np.c_[xt, np.ones(len(xt))]
    w = np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(x.shape[1]), x.T @ np.eye(len(s.classes))[y])
    return float(((xt @ w).argmax(1) == yt).mean())
