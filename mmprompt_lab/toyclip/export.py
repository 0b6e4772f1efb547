"""Export a pretraining checkpoint as the shipped fp16 ToyCLIP weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..io import atomic_write
from .model import CONFIG_PATH


def export_weights(ckpt: str | Path, dest: str | Path) -> Path:
    """Write the model part of a pretraining checkpoint to `dest` as fp16 safetensors.

    Args:
        ckpt: a `checkpoint.safetensors` written by `pretrain` (or its run folder).
        dest: output file (e.g. mmprompt_lab/assets/toyclip.safetensors).

    Returns:
        The written path. Metadata holds the model config, the recipe and the step.
    """
    ckpt = Path(ckpt)
    if ckpt.is_dir():
        ckpt = ckpt / "checkpoint.safetensors"
    if not ckpt.is_file():
        raise FileNotFoundError(f"no pretraining checkpoint at {ckpt}; run mmprompt_lab.toyclip.pretrain first")
    try:
        with safe_open(str(ckpt), "pt") as f:
            meta = f.metadata() or {}
            state = {k[len("model.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(
            f"pretraining checkpoint {ckpt} is corrupt ({type(err).__name__}: {err}); "
            "re-run the pretraining or restore the file"
        ) from None
    if not state:
        raise ValueError(f"{ckpt} holds no model.* tensors: it is not a ToyCLIP pretraining checkpoint")
    # fp16 halves the file; floats only (no integer buffers exist in ToyCLIP, but stay safe)
    state = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "model_config": json.dumps(json.loads(CONFIG_PATH.read_text())),
        "recipe": meta.get("config", ""),
        "step": meta.get("step", ""),
        "format": "toyclip-weights/1",
    }
    atomic_write(dest, lambda tmp: save_file(state, tmp, metadata=info))
    return dest


def write_train_log(ckpt: str | Path, dest: str | Path, extra: dict | None = None) -> Path:
    """Write a checkpoint's recipe, step and training history (plus `extra`, e.g. measurements) as JSON."""
    ckpt = Path(ckpt)
    if ckpt.is_dir():
        ckpt = ckpt / "checkpoint.safetensors"
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    log = {
        "step": int(meta["step"]),
        "recipe": json.loads(meta["config"]),
        "model_config": json.loads(CONFIG_PATH.read_text()),
        "history": json.loads(meta["history"]),
        **(extra or {}),
    }
    dest = Path(dest)
    dest.write_text(json.dumps(log, indent=1) + "\n")
    return dest
