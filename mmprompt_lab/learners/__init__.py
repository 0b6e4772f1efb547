"""Prompt learners, one file per method. Importing this package registers each of them (the only
import-time side effect); the list below is the registry's single source."""

from .base import LearnerConfig, PromptLearner, TrainPreset
from .registry import create_learner, get_learner_class, list_learners, register_learner

from . import zeroshot, coop, cocoop, vpt, ivlp, maple  # noqa: E402,F401  (registration)
from . import upt, dcp, mudpt, map_dafe  # noqa: E402,F401
from . import kgcoop, promptsrc  # noqa: E402,F401

__all__ = [
    "LearnerConfig",
    "PromptLearner",
    "TrainPreset",
    "create_learner",
    "get_learner_class",
    "list_learners",
    "register_learner",
]
