"""`evaluate`: top-1, per-class accuracy and the confusion matrix; base/novel harmonic mean."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..data.base import ImageDataset
from ..learners.base import PromptLearner
from .train import autocast, make_loader, pick_device
from ..transforms import test_transform


def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2·B·N / (B + N), the base-to-novel summary; 0 when both are 0."""
    return 2 * base * novel / (base + novel) if base + novel > 0 else 0.0


def base_novel(base: dict, novel: dict) -> dict:
    """Combine the metrics of a base and a novel evaluation into {"base", "novel", "hm"} (%)."""
    b, n = base["accuracy"], novel["accuracy"]
    return {"base": b, "novel": n, "hm": harmonic_mean(b, n)}


@torch.no_grad()
def predict_logits(
    learner: PromptLearner,
    dataset: ImageDataset,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = False,
):
    """(N, C) logits and (N,) labels of a dataset under the test transform, in dataset order.

    Text features of learners that do not condition on the image are computed once.
    """
    device = pick_device(device)
    training = learner.training
    learner.to(device).eval()
    loader = make_loader(
        dataset.with_transform(test_transform(learner.clip)),
        batch_size or learner.preset.eval_batch_size,
        shuffle=False,
    )
    logits, labels = [], []
    # the dataset's class names for this call only (e.g. base → novel); the learner is left as it was
    with learner.use_classnames(dataset.classnames), autocast(device, precision):
        text = None if learner.conditional else learner.encode_text()
        for images, y in tqdm(loader, desc=f"eval {dataset.name}", disable=not progress, leave=False):
            logits.append(learner(images.to(device), text_features=text).float().cpu())
            labels.append(y)
    learner.train(training)
    logits = torch.cat(logits)  # (N, C)
    if not torch.isfinite(logits).all():
        raise FloatingPointError(
            f"{learner.name} gave NaN or infinite logits on {dataset.name} "
            f"({dataset.split}); its prompts are not usable (retrain with a lower lr)"
        )
    return logits, torch.cat(labels)


def evaluate(
    learner: PromptLearner,
    dataset: ImageDataset,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = False,
) -> dict:
    """Evaluate on a dataset, scored against the dataset's class names (the learner is not changed).

    Returns {"accuracy": top-1 %, "macro_accuracy": mean per-class %, "per_class_accuracy": {name: %},
    "confusion": C×C counts (rows = true), "n": images, "dataset", "split"}.

    Example:
        >>> metrics = evaluate(learner, load_dataset("toyworld/shapes", split="test", subsample="base"))
    """
    logits, labels = predict_logits(
        learner, dataset, batch_size=batch_size, device=device, precision=precision, progress=progress
    )
    c = len(dataset.classnames)
    pred = logits.argmax(-1)
    confusion = torch.zeros(c, c, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    support = confusion.sum(1)
    per_class = confusion.diag().double() / support.clamp(min=1) * 100
    present = support > 0
    return {
        "accuracy": float((pred == labels).double().mean() * 100),
        "macro_accuracy": float(per_class[present].mean()),
        "per_class_accuracy": {
            n: float(a) for n, a, s in zip(dataset.classnames, per_class, present, strict=True) if s
        },
        "confusion": confusion.tolist(),
        "n": int(len(labels)),
        "dataset": dataset.name,
        "split": dataset.split,
    }
