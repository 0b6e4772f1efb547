"""Training and evaluation: `fit`, `evaluate`, checkpoints, the official transforms."""

from .checkpoint import load_learner, read_card, save_learner
from .evaluate import base_novel, evaluate, harmonic_mean, predict_logits
from .train import History, TrainState, fit, lr_at
from ..transforms import test_transform, train_transform

__all__ = [
    "History",
    "TrainState",
    "base_novel",
    "evaluate",
    "fit",
    "harmonic_mean",
    "load_learner",
    "lr_at",
    "predict_logits",
    "read_card",
    "save_learner",
    "test_transform",
    "train_transform",
]
