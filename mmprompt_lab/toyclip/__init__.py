"""ToyCLIP: a tiny open_clip CLIP pretrained on ToyWorld, shipped with the package.

>>> from mmprompt_lab.toyclip import create_toyclip, zero_shot_report
>>> model, tokenizer, preprocess = create_toyclip()          # the shipped fp16 weights, as fp32
"""

from __future__ import annotations

from .evaluate import feature_variance, image_features, zero_shot_report
from .export import export_weights, write_train_log
from .model import DEFAULT_WEIGHTS, PREPROCESS, ConvStem, build_model, create_toyclip
from .pretrain import PretrainConfig, pretrain

__all__ = [
    "DEFAULT_WEIGHTS",
    "PREPROCESS",
    "ConvStem",
    "PretrainConfig",
    "build_model",
    "create_toyclip",
    "export_weights",
    "write_train_log",
    "feature_variance",
    "image_features",
    "pretrain",
    "zero_shot_report",
]
