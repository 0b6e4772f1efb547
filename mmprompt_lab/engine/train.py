"""`fit`: the official prompt-learning recipe (docs/methods.md §0) as one readable loop.

SGD (momentum 0.9, weight decay 5e-4) on the trainable parameters only; epoch 0 at a constant
warm-up lr of 1e-5, then a cosine schedule stepped once per epoch; cross-entropy on the scaled
cosine logits. Seeded per epoch (shuffling and augmentation), so a run resumed from its epoch
checkpoint ends bit-identical to an uninterrupted one on CPU.

Opt-in feature cache (`cache_views=K`, docs/design.md §7): for learners whose image tower is the frozen
one (`image_features_cacheable`), the image features of K augmented views of every training image are
computed once, and each epoch trains on one of them per image (drawn with the run's seed) instead of a
fresh augmentation; a step then costs only the text pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ..data.base import ImageDataset
from ..learners.base import ImageFeatures, PromptLearner
from ..io import dumps
from ..seeding import seed_everything
from ..threads import configure_threads  # noqa: F401  (re-exported: the CLI imports it from here)
from . import distributed
from ..transforms import train_transform

log = logging.getLogger(__name__)


@dataclass
class History:
    """What `fit` returns: per-step losses and per-epoch loss, accuracy (%) and lr."""

    step_loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """Passed to callbacks; set `stop = True` to end training after the current step."""

    epoch: int
    epochs: int
    step: int  # global step
    steps_per_epoch: int
    loss: float
    lr: float
    accuracy: float  # running accuracy (%) of the current epoch
    history: History
    stop: bool = False


def lr_at(epoch: int, base_lr: float, epochs: int, warmup_epochs: int = 1, warmup_lr: float = 1e-5) -> float:
    """Official schedule: constant `warmup_lr` for the warm-up epochs, then
    base·(1 + cos(π·(e − w)/E))/2 for e ≥ w, E = total epochs (the cosine never reaches its tail)."""
    if epoch < warmup_epochs:
        return warmup_lr
    return base_lr * (1 + math.cos(math.pi * (epoch - warmup_epochs) / epochs)) / 2


def pick_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, precision: str):
    """fp32 is exact; "auto" = bf16 autocast on CUDA, fp32 on CPU; "bf16"/"fp16" = autocast."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def check_recipe(epochs: int | None, batch_size: int | None, lr: float | None, accumulate: int = 1) -> None:
    """Refuse a recipe that cannot train: epochs, batch size and accumulation ≥ 1, a finite lr > 0
    (None = the method's preset, accepted)."""

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    bad = [
        f"{name}={value!r}"
        for name, value, ok in (
            ("epochs", epochs, epochs is None or integer(epochs)),
            ("batch_size", batch_size, batch_size is None or integer(batch_size)),
            ("accumulate", accumulate, integer(accumulate)),
            ("lr", lr, lr is None or isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0),
        )
        if not ok
    ]
    if bad:
        raise ValueError(
            f"cannot train with {', '.join(bad)}: epochs, batch_size and accumulate must be "
            "integers ≥ 1 and lr a finite number > 0"
        )


def check_cache(learner: PromptLearner, cache_views: int | None) -> None:
    """Refuse a feature cache that cannot be exact: a bad view count, a prompted or image-conditioned
    image tower, or several processes."""
    if cache_views is None:
        return
    if isinstance(cache_views, bool) or not isinstance(cache_views, int) or cache_views < 1:
        raise ValueError(f"cache_views must be an integer ≥ 1 (augmented views per image) or None, got {cache_views!r}")
    if not image_features_cacheable(learner):
        raise ValueError(
            f"{learner.name!r} prompts or conditions on the image tower (has_vision_prompts="
            f"{learner.has_vision_prompts}, conditional={learner.conditional}); cached image features "
            "need a frozen image tower (e.g. coop, kgcoop): leave cache_views=None"
        )
    if distributed.world_size() > 1:
        raise ValueError("cache_views runs in one process; leave it None under torchrun")


def check_finite(what: str, tensors, where: str) -> None:
    """Stop training at the first NaN/inf, naming where it appeared (nothing is saved as finished)."""
    for t in tensors:
        if not torch.isfinite(t).all():
            raise FloatingPointError(
                f"{what} became NaN or infinite at {where}: training stopped and nothing "
                "was saved as a finished run; lower the learning rate (or use fp32)"
            )


def make_loader(
    dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0, sampler=None
) -> DataLoader:
    """Never empty: the last incomplete batch is dropped only when at least one full batch exists."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    generator = torch.Generator().manual_seed(seed)
    drop_last = shuffle and (len(sampler) if sampler is not None else len(dataset)) >= batch_size
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=False,
    )


# ---------------------------------------------------------------------------- the feature cache
def image_features_cacheable(learner: PromptLearner) -> bool:
    """True when the learner's image features are the frozen tower's: no visual prompts and no text
    made from the images (declared capabilities), so they can be computed once per augmented view."""
    return not (learner.has_vision_prompts or learner.conditional or learner.image_conditioned_text)


def view_seed(seed: int, view: int) -> int:
    """The torch seed under which augmented view `view` of every training image is drawn."""
    return seed * 7_919 + 1_000_003 * (view + 1)


@torch.no_grad()
def cache_image_features(
    learner: PromptLearner,
    data: ImageDataset,
    views: int,
    seed: int,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "auto",
) -> Tensor:
    """(K, N, E) image features of `views` augmented views of every item of `data` (with its train
    transform), in dataset order: view k is drawn item by item after `torch.manual_seed(view_seed(seed, k))`."""
    feats = []
    for k in range(views):
        torch.manual_seed(view_seed(seed, k))
        loader = make_loader(data, batch_size, shuffle=False)  # in order, in this process: one RNG stream
        with autocast(device, precision):
            feats.append(torch.cat([learner.encode_image(x.to(device)) for x, _ in loader]))  # (N, E)
    return torch.stack(feats)  # (K, N, E)


def view_choice(views: int, n: int, seed: int, epoch: int) -> Tensor:
    """(N,) the cached view each item trains on in `epoch`, seeded (resume-exact)."""
    return torch.randint(views, (n,), generator=torch.Generator().manual_seed(seed * 10_007 + epoch + 1))


def fit(
    learner: PromptLearner,
    train: ImageDataset,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 1,
    device: str | None = None,
    precision: str = "auto",
    accumulate: int = 1,
    augment: str | None = None,
    warmup_epochs: int = 1,
    warmup_lr: float = 1e-5,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    num_workers: int = 0,
    on_step: Callable[[TrainState], None] | None = None,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    cache_views: int | None = None,
) -> History:
    """Train a learner's prompts with the official recipe.

    Args:
        learner: from `create_learner`; only its `requires_grad` parameters are optimised.
        train: an `ImageDataset` (its `augment` picks the train transform unless `augment` is given).
        epochs, batch_size, lr: None = the method's official preset (`learner.preset`).
        seed: seeds parameters' data order and augmentation; same seed → same run.
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", "bf16", "fp16".
        accumulate: gradient accumulation steps (effective batch = batch_size · accumulate).
        on_step, on_epoch_end: callbacks receiving a `TrainState`; set `state.stop = True` to stop.
        checkpoint_dir: if given, the training state is saved atomically after every epoch and a
            later call with the same directory resumes from it.
        cache_views: K ≥ 1 computes the frozen image features of K augmented views of every training image
            once (drawn with `seed`) and trains on them, each epoch picking one view per image (seeded);
            only for learners whose image tower is untouched (`image_features_cacheable`: CoOp, KgCoOp, …).
            None (default) = the official recipe, a fresh augmentation at every step.
    Returns:
        History with per-step loss and per-epoch loss/accuracy/lr.

    Example:
        >>> history = fit(learner, train, epochs=5, batch_size=4, lr=0.0035, seed=1)
    """
    preset = learner.preset
    epochs = epochs if epochs is not None else preset.epochs
    batch_size = batch_size if batch_size is not None else preset.batch_size
    lr = lr if lr is not None else preset.lr
    check_recipe(epochs, batch_size, lr, accumulate)
    check_cache(learner, cache_views)
    params = learner.trainable_parameters()
    if not params:
        raise ValueError(f"{learner.name!r} has no trainable parameters; use evaluate() directly")
    if len(train.classnames) != len(learner.classnames):
        raise ValueError(
            f"the dataset has {len(train.classnames)} classes, the learner {len(learner.classnames)}; "
            "build the learner with classnames=train.classnames"
        )

    device = distributed.setup(pick_device(device))
    progress = progress and distributed.is_main()
    seed_everything(seed)
    learner.to(device).train()
    model = distributed.wrap(learner, device)  # the learner itself unless under torchrun
    data = train.with_transform(train_transform(learner.clip, augment or train.augment))
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    history, start = History(), 0
    recipe = {
        "config": learner.config.to_dict(),
        "classnames": list(learner.classnames),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "accumulate": accumulate,
        "augment": augment,
        "precision": precision,
        "warmup_epochs": warmup_epochs,
        "warmup_lr": warmup_lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "train_items": len(train),
    }
    if cache_views:  # only when used, so states saved before the cache existed still resume
        recipe["cache_views"] = cache_views
    recipe = json.loads(dumps(recipe))  # as it reads back from disk (tuples → lists)
    if checkpoint_dir is not None:
        from .checkpoint import load_train_state

        start = load_train_state(checkpoint_dir, learner, optimizer, history, recipe)
    shard = math.ceil(len(data) / distributed.world_size())
    steps_per_epoch = 1 if shard < batch_size else shard // batch_size
    state = TrainState(start, epochs, start * steps_per_epoch, steps_per_epoch, float("nan"), lr, 0.0, history)
    cache = None
    if cache_views:
        cache = cache_image_features(
            learner,
            data,
            cache_views,
            seed,
            batch_size=learner.preset.eval_batch_size,
            device=device,
            precision=precision,
        )  # (K, N, E)
        items = TensorDataset(torch.arange(len(data)), torch.tensor(data.labels))  # (index, label) pairs

    for epoch in range(start, epochs):
        epoch_lr = lr_at(epoch, lr, epochs, warmup_epochs, warmup_lr)
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr
        torch.manual_seed(seed * 10_007 + epoch)  # augmentation draws; resume-exact
        if cache is None:
            loader = make_loader(
                data,
                batch_size,
                shuffle=True,
                seed=seed * 10_007 + epoch,
                num_workers=num_workers,
                sampler=distributed.sampler(data, seed, epoch),
            )
        else:  # the same order as the image loader; each item's view drawn for this epoch
            loader = make_loader(items, batch_size, shuffle=True, seed=seed * 10_007 + epoch)
            choice = view_choice(cache_views, len(data), seed, epoch)  # (N,)
        bar = tqdm(loader, desc=f"{learner.name} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        total, correct, loss_sum, finished = 0, 0, 0.0, True
        optimizer.zero_grad(set_to_none=True)
        for n, (images, labels) in enumerate(bar):
            if cache is not None:  # the loader gave item indices (B,)
                images = ImageFeatures(cache[choice[images].to(device), images.to(device)])  # (B, E)
            else:
                images = images.to(device)
            labels = labels.to(device)
            with autocast(device, precision):
                loss, logits = model(images, labels=labels)
            where = f"epoch {epoch + 1}, step {n + 1} (lr {epoch_lr:.3g})"
            check_finite("the loss", [loss], where)
            (loss / accumulate).backward()
            if (n + 1) % accumulate == 0 or n + 1 == len(loader):
                check_finite("a gradient", [p.grad for p in params if p.grad is not None], where)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                check_finite("a prompt parameter", params, where)
            total += len(labels)
            correct += (logits.argmax(-1) == labels).sum().item()
            loss_sum += loss.item() * len(labels)
            history.step_loss.append(loss.item())
            state.epoch, state.step, state.loss, state.lr = epoch, state.step + 1, loss.item(), epoch_lr
            state.accuracy = 100.0 * correct / total
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{state.accuracy:.1f}", lr=f"{epoch_lr:.2g}")
            if on_step:
                on_step(state)
            if state.stop:
                finished = n + 1 == len(loader)
                break
        history.epoch_loss.append(loss_sum / max(total, 1))
        history.epoch_accuracy.append(100.0 * correct / max(total, 1))
        history.lr.append(epoch_lr)
        log.info(
            "epoch %d/%d loss %.4f acc %.2f lr %.3g",
            epoch + 1,
            epochs,
            history.epoch_loss[-1],
            history.epoch_accuracy[-1],
            epoch_lr,
        )
        if finished:
            learner.on_epoch_end(epoch, epochs)
        if on_epoch_end:
            on_epoch_end(state)
        if checkpoint_dir is not None and finished and distributed.is_main():  # a partial epoch is never saved
            from .checkpoint import save_train_state

            save_train_state(checkpoint_dir, learner, optimizer, history, epoch + 1, recipe)
        if state.stop:
            history.stopped_early = epoch + 1 < epochs
            break
    learner.eval()
    return history
