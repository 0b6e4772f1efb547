"""Seeds, in one place: a seed fixes prompt initialisation, few-shot selection, shuffling and
augmentation (the same command in two processes gives byte-identical results on the CPU)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def rng_scope(seed: int | None) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with `seed`, leaving the global generator as it was.
    `seed=None` draws from the global generator unchanged (not reproducible unless seeded)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
