"""The ToyCLIP pretraining recipe: CLIP contrastive loss + auxiliary label loss on ToyWorld photos.

Each step renders a fresh batch from `PRETRAIN_WORLD` (photo style only; each shape's held-out colour
never shown; sketch, cartoon, noise and rendition styles never shown) with captions, and minimises

    L = CLIP(image, caption) + w_obj·CE(shape) + w_col·CE(colour) + w_bg·CE(background)
        + w_pat·CE(pattern)

where the auxiliary heads are linear maps of the image embedding, discarded after pretraining
(docs/toyclip.md: the auxiliary loss roughly doubled shape accuracy in a 7-minute run). The
prototype's 5·BCE(object multi-hot) averages over classes, so with 31 shapes its signal per image
is ~3× weaker than with 10; a first run with it stayed at chance on shapes after 42k samples
(first ToyCLIP session), hence cross-entropy on the (single) object shape.
AdamW with a warm-up / stable / decay schedule: linear warm-up, constant lr, then a cosine to 0
over the last `decay_steps`. Because the lr before the decay does not depend on the total, a run
may be resumed with a different `steps` as long as its decay has not started. The batch of step t is
drawn from an RNG seeded with (seed, t), so a resumed run sees exactly the data an uninterrupted run
would.

    history = pretrain("runs/toyclip", steps=1200, batch_size=128, lr=1e-3, seed=0)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..config import build_config
from ..io import atomic_write
from ..toyworld.captions import caption
from ..toyworld.factors import BACKGROUNDS, COLOUR_NAMES, PATTERNS
from ..toyworld.render import render
from ..toyworld.shapes import SHAPES
from ..toyworld.world import PRETRAIN_WORLD, WorldSpec, sample_scene
from .model import PREPROCESS, build_model, get_tokenizer

log = logging.getLogger(__name__)
CKPT_NAME = "checkpoint.safetensors"


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe. Defaults are what produced the shipped weights (assets/toyclip_train_log.json)."""

    steps: int = 3600  # optimiser steps
    batch_size: int = 128  # image–caption pairs per step
    lr: float = 1e-3  # peak AdamW learning rate (docs/toyclip.md)
    seed: int = 0  # data stream and initialisation
    warmup: int = 100  # linear warm-up steps, then constant lr
    decay_steps: int = 800  # final steps over which lr follows a cosine to 0
    weight_decay: float = 0.1  # on matrices only (not norms, biases, logit scale)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    aux_object: float = 1.0  # weight of CE on the object's shape
    aux_colour: float = 0.5  # weight of CE on the object's colour (docs/toyclip.md)
    aux_background: float = 0.5  # weight of CE on the background (docs/toyclip.md)
    aux_pattern: float = 1.0  # weight of CE on the object's pattern
    caption_name_p: float = 1.0  # probability that a caption names the object's shape (else "thing")
    image_size: int = 32  # render size = ToyCLIP input size
    world: WorldSpec = PRETRAIN_WORLD  # photo only, held-out pairs, 30 % hue-rotated backgrounds

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(f"need steps ≥ 1, batch_size ≥ 2, lr > 0; got {self.steps}, {self.batch_size}, {self.lr}")
        if not 0 < self.caption_name_p <= 1:
            raise ValueError(f"caption_name_p must be in (0, 1]; got {self.caption_name_p}")
        if self.image_size != PREPROCESS["image_size"]:
            raise ValueError(f"image_size {self.image_size} must equal ToyCLIP's input size {PREPROCESS['image_size']}")

    @classmethod
    def from_kwargs(cls, **kwargs) -> PretrainConfig:
        """Build from overrides; an unknown key raises with the allowed keys and a close match."""
        return build_config(cls, kwargs)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


class AuxHeads(nn.Module):
    """Linear heads on the image embedding (B, E) → logits per factor."""

    def __init__(self, dim: int):
        super().__init__()
        self.object = nn.Linear(dim, len(SHAPES))
        self.colour = nn.Linear(dim, len(COLOUR_NAMES))
        self.background = nn.Linear(dim, len(BACKGROUNDS))
        self.pattern = nn.Linear(dim, len(PATTERNS))


def make_batch(cfg: PretrainConfig, step: int, tokenizer) -> dict[str, torch.Tensor]:
    """Render batch `step` of the data stream: images (B, 3, H, W) normalised, tokens (B, L), labels."""
    rng = np.random.default_rng([cfg.seed, step])
    scenes = [sample_scene(rng, cfg.world) for _ in range(cfg.batch_size)]
    images = np.stack([np.asarray(render(s, cfg.image_size, rng)) for s in scenes])  # (B, H, W, 3)
    texts = [caption(s, rng, cfg.caption_name_p) for s in scenes]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
    mean = torch.tensor(PREPROCESS["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(PREPROCESS["std"]).view(1, 3, 1, 1)
    o = [s.objects[0] for s in scenes]  # the pretraining world has one kind of object per image
    return {
        "images": (x - mean) / std,
        "tokens": tokenizer(texts),
        "object": torch.tensor([SHAPES.index(a.shape) for a in o]),
        "colour": torch.tensor([COLOUR_NAMES.index(a.colour) for a in o]),
        "background": torch.tensor([BACKGROUNDS.index(s.background) for s in scenes]),
        "pattern": torch.tensor([PATTERNS.index(a.pattern) for a in o]),
    }


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to cfg.lr, constant, then a cosine to 0 over the last cfg.decay_steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = cfg.steps - cfg.decay_steps
    if step < start:
        return cfg.lr
    t = (step - start) / max(1, cfg.decay_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, t)))


def _compatible(saved: dict, cfg: PretrainConfig, step: int) -> list[str]:
    """Recipe keys that differ from a checkpoint's, ignoring `steps` while its decay has not begun."""
    new = json.loads(cfg.to_json())
    diff = sorted(k for k in set(saved) | set(new) if saved.get(k) != new.get(k))
    if diff == ["steps"] and step <= min(saved["steps"], new["steps"]) - cfg.decay_steps:
        return []
    return diff


def losses(model, heads: AuxHeads, batch: dict, cfg: PretrainConfig) -> dict[str, torch.Tensor]:
    """Contrastive + auxiliary losses for one batch (scalars)."""
    img = model.encode_image(batch["images"])  # (B, E)
    txt = model.encode_text(batch["tokens"])  # (B, E)
    logits = model.logit_scale.exp() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T  # (B, B)
    target = torch.arange(len(logits))
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    aux = (
        cfg.aux_object * F.cross_entropy(heads.object(img), batch["object"])
        + cfg.aux_colour * F.cross_entropy(heads.colour(img), batch["colour"])
        + cfg.aux_background * F.cross_entropy(heads.background(img), batch["background"])
        + cfg.aux_pattern * F.cross_entropy(heads.pattern(img), batch["pattern"])
    )
    return {"loss": clip + aux, "clip": clip, "aux": aux}


def _optimizer(params: dict[str, nn.Parameter], cfg: PretrainConfig) -> torch.optim.AdamW:
    decay = [p for p in params.values() if p.ndim >= 2]
    other = [p for p in params.values() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
    )


def save_checkpoint(
    path: Path, params: dict[str, nn.Parameter], model, heads, opt, step: int, cfg: PretrainConfig, history: list[dict]
) -> None:
    """One safetensors file: model.*, heads.*, optim.<param>.<state>; step/config/history in metadata.
    Written to a temp file and renamed, so a crash never leaves a half-written checkpoint."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"heads.{k}": v.detach().contiguous() for k, v in heads.state_dict().items()}
    for name, p in params.items():
        for key, val in opt.state.get(p, {}).items():
            tensors[f"optim.{name}.{key}"] = torch.as_tensor(val).detach().contiguous()
    meta = {
        "step": str(step),
        "config": cfg.to_json(),
        "history": json.dumps(history),
        "format": "toyclip-pretrain-checkpoint/1",
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _load_checkpoint(path: Path, params, model, heads, opt) -> tuple[int, dict, list[dict]]:
    """Restore model, heads and optimiser from `path`; returns (step, recipe, history).

    Raises ValueError naming the file when it is not a regular file, truncated, garbage, or holds
    other tensors or unreadable metadata: one line, not a safetensors or torch traceback.
    """
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ValueError(
            f"pretraining checkpoint {path} is not a regular file (a FIFO, folder, device or "
            "broken link); remove it, or use another out_dir (--out)"
        )
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        step, saved_cfg, history = int(meta["step"]), json.loads(meta["config"]), json.loads(meta["history"])
        if (
            step < 0
            or not isinstance(saved_cfg, dict)
            or not isinstance(saved_cfg.get("steps"), int)
            or not isinstance(history, list)
            or not all(isinstance(h, dict) and "elapsed_s" in h for h in history)
        ):
            raise ValueError("unexpected step, config or history in its metadata")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        heads.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("heads.")})
        for name, p in params.items():
            state = {
                key: tensors[f"optim.{name}.{key}"]
                for key in ("step", "exp_avg", "exp_avg_sq")
                if f"optim.{name}.{key}" in tensors
            }
            if any(state[key].shape != p.shape for key in ("exp_avg", "exp_avg_sq") if key in state):
                raise ValueError(f"optimiser state of {name} does not match its shape {tuple(p.shape)}")
            if state:
                opt.state[p] = state
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise ValueError(
            f"pretraining checkpoint {path} is corrupt or not a ToyCLIP pretraining checkpoint "
            f"({reason}); delete it to start over, or use another out_dir (--out)"
        ) from None
    return step, saved_cfg, history


def pretrain(
    out_dir: str | Path,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    resume: bool = True,
    threads: int | None = None,
    log_every: int = 10,
    ckpt_every: int = 100,
    eval_fn=None,
    **recipe,
) -> list[dict]:
    """Pretrain ToyCLIP from scratch (or resume) into `out_dir`/checkpoint.safetensors.

    Args:
        out_dir: run folder; holds the checkpoint (and is where `export_weights` reads from).
        steps, batch_size, lr, seed: recipe overrides (None = `PretrainConfig` default).
        resume: continue from the checkpoint in `out_dir` if there is one (same recipe required).
        threads: torch intra-op threads (None = leave torch's setting).
        log_every: steps between history entries; ckpt_every: steps between checkpoints.
        eval_fn: optional `fn(model, step) -> dict | None` called at each checkpoint (e.g.
            zero-shot accuracy); a result that is not None is stored in the history.
        **recipe: other `PretrainConfig` fields (unknown keys raise).

    Returns:
        history: list of dicts {step, loss, clip, aux, lr, img_per_s, elapsed_s[, eval]}.

    Example:
        >>> history = pretrain("runs/toyclip", steps=20, batch_size=32)
    """
    cfg = PretrainConfig.from_kwargs(steps=steps, batch_size=batch_size, lr=lr, seed=seed, **recipe)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # without it steps slow down 2× after ~50 steps (docs/toyclip.md)
    torch.manual_seed(cfg.seed)
    model = build_model()
    heads = AuxHeads(model.text_projection.shape[1])
    params = {f"model.{k}": p for k, p in model.named_parameters()}
    params |= {f"heads.{k}": p for k, p in heads.named_parameters()}
    opt = _optimizer(params, cfg)
    tokenizer = get_tokenizer()
    start, history, elapsed0 = 0, [], 0.0
    ckpt = out / CKPT_NAME
    if resume and (ckpt.exists() or ckpt.is_symlink()):
        start, saved_cfg, history = _load_checkpoint(ckpt, params, model, heads, opt)
        diff = _compatible(saved_cfg, cfg, start)
        if diff:
            raise ValueError(
                f"{ckpt} was written with a different recipe (keys {diff}); use another out_dir or resume=False"
            )
        elapsed0 = history[-1]["elapsed_s"] if history else 0.0
        log.info("resuming %s at step %d", ckpt, start)
    model.train()
    t0, seen, last = time.time(), 0, time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="pretrain ToyCLIP")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = make_batch(cfg, step, tokenizer)
        out_l = losses(model, heads, batch, cfg)
        opt.zero_grad(set_to_none=True)
        out_l["loss"].backward()
        opt.step()
        with torch.no_grad():  # CLIP caps the temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        seen += cfg.batch_size
        done = step + 1
        if done % log_every == 0 or done == cfg.steps:
            now = time.time()
            rec = {
                "step": done,
                **{k: round(v.item(), 4) for k, v in out_l.items()},
                "lr": lr_at(step, cfg),
                "img_per_s": round(seen / (now - last), 1),
                "elapsed_s": round(elapsed0 + now - t0, 1),
            }
            seen, last = 0, now
            history.append(rec)
            bar.set_postfix(loss=rec["loss"], clip=rec["clip"])
        if done % ckpt_every == 0 or done == cfg.steps:
            if eval_fn is not None:
                model.eval()
                result = eval_fn(model, done)
                model.train()
                if result is not None:
                    history[-1]["eval"] = result
                    log.info("step %d eval %s", done, result)
            save_checkpoint(ckpt, params, model, heads, opt, done, cfg, history)
    model.eval()
    return history
