"""Parameter groups of a learner and the gradient each group gets — where methods and their variants differ
(e.g. DCP's released code never trains the text half of CMPA). Used by lessons 05 and 10."""

from __future__ import annotations

import math

import torch

from ..learners.base import PromptLearner
from ..transforms import test_transform


def parameter_group(name: str) -> str:
    """A parameter's group: its name without layer indices, cut to module level, e.g.
    "cmpa.0.attn_t.in_proj_weight" → "cmpa.attn_t", "deep_text.1" → "deep_text", "proj.weight" → "proj",
    "text_dafe.0.gate" → "text_dafe.gate"."""
    parts = [p for p in name.split(".") if not p.isdigit()]
    if len(parts) >= 3:
        return ".".join(parts[:2])
    if len(parts) == 2 and parts[1] in ("weight", "bias"):
        return parts[0]
    return ".".join(parts)


def parameter_groups(learner: PromptLearner) -> dict[str, int]:
    """Trainable parameters per group (`parameter_group`), in the learner's order."""
    out: dict[str, int] = {}
    for name, p in learner.named_parameters():
        if p.requires_grad:
            key = parameter_group(name)
            out[key] = out.get(key, 0) + p.numel()
    return out


def gradient_norms(learner: PromptLearner, dataset, n: int = 8) -> dict[str, float]:
    """‖∂loss/∂θ‖ per parameter group for one batch of the first `n` images of `dataset` (test transform,
    the learner's own training loss). A group at exactly 0 never learns (e.g. DCP's text half of CMPA in
    the released code). The learner is left as it was (its gradients and train/eval mode)."""
    transform = test_transform(learner.clip)
    n = min(n, len(dataset))
    images = torch.stack([transform(dataset.source.load_image(dataset.items[i]).convert("RGB")) for i in range(n)])
    labels = torch.tensor([dataset.items[i].label for i in range(n)])
    params = {name: p for name, p in learner.named_parameters() if p.requires_grad}
    saved, training = {name: p.grad for name, p in params.items()}, learner.training
    for p in params.values():
        p.grad = None
    learner.train()
    with learner.use_classnames(dataset.classnames):
        loss, _ = learner.training_loss(images.to(learner.clip.device), labels.to(learner.clip.device))
        loss.backward()
    squares: dict[str, float] = {}
    for name, p in params.items():
        key = parameter_group(name)
        g = 0.0 if p.grad is None else float(p.grad.double().pow(2).sum())
        squares[key] = squares.get(key, 0.0) + g
        p.grad = saved[name]
    learner.train(training)
    return {k: math.sqrt(v) for k, v in squares.items()}
