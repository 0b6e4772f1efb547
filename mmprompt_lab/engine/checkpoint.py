"""Checkpoints of the learner only (never the frozen CLIP): safetensors + a JSON card.

    out/learner.safetensors   trainable state, by our parameter names
    out/learner.json          {"method", "config", "backbone", "classnames", "weights_sha256", ...}
    out/train_state.*         optimiser momentum + history, for resuming `fit` (optional)

Every file is written to a temporary name in the same folder and renamed into place, and the JSON
records the weights' hash, so an interrupted save never leaves a half-written or mismatched pair.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_write, read_json, sha256_file, write_json
from ..learners.base import PromptLearner
from ..learners.registry import get_learner_class

FORMAT = "mmprompt_lab.learner/1"




def _tensors(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_learner(learner: PromptLearner, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write `learner.safetensors` + `learner.json` into `out_dir`; returns the folder."""
    out = Path(out_dir)
    weights = out / "learner.safetensors"
    atomic_write(weights, lambda tmp: save_file(_tensors(learner.learner_state_dict()), tmp))
    card = {"format": FORMAT, "method": learner.name, "config": learner.config.to_dict(),
            "backbone": learner.clip.id, "classnames": learner.classnames,
            "weights_sha256": sha256_file(weights), **(extra or {})}
    write_json(out / "learner.json", card)
    return out


def read_card(path: str | Path) -> dict:
    """The JSON card of a checkpoint folder (or of its learner.json), validated."""
    folder = Path(path).expanduser()
    folder = folder.parent if folder.suffix in (".json", ".safetensors") else folder
    card_path = folder / "learner.json"
    if not card_path.exists():
        raise FileNotFoundError(f"no checkpoint at {folder}: {card_path.name} is missing "
                                "(expected the output folder of `mmprompt-lab tune` or `save_learner`)")
    card = read_json(card_path, "checkpoint card")
    if not isinstance(card, dict):
        raise ValueError(f"{card_path} is not an mmprompt_lab learner card (a JSON object was expected)")
    missing = [k for k in ("format", "method", "config", "backbone", "classnames", "weights_sha256") if k not in card]
    if missing or card.get("format") != FORMAT:
        raise ValueError(f"{card_path} is not an mmprompt_lab learner card (missing {missing}, "
                         f"format {card.get('format')!r}, expected {FORMAT!r})")
    card["_folder"] = str(folder)
    return card


def load_learner(path: str | Path, clip=None, *, method: str | None = None, device: str | None = None) -> PromptLearner:
    """Rebuild a learner from a checkpoint folder.

    Args:
        clip: the FrozenCLIP to attach; None loads the backbone named in the card. A clip whose id
            differs from the card's backbone is refused.
        method: if given, the checkpoint must be of this method.
    """
    from ..backbone import load_clip

    card = read_card(path)
    folder = Path(card["_folder"])
    if method is not None and get_learner_class(method).name != card["method"]:
        raise ValueError(f"{folder} holds a {card['method']!r} learner, not {method!r}")
    if clip is None:
        name, _, tag = card["backbone"].partition(":")
        clip = load_clip(name, pretrained=tag or None, device=device)
    elif clip.id != card["backbone"]:
        raise ValueError(f"{folder} was trained on backbone {card['backbone']!r}, but the given CLIP is "
                         f"{clip.id!r}; load the matching backbone (or pass clip=None)")
    weights = folder / "learner.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing; the checkpoint is incomplete")
    if sha256_file(weights) != card["weights_sha256"]:
        raise ValueError(f"{weights} does not match the hash in learner.json: the checkpoint is corrupt or "
                         "was modified; re-run training or restore both files together")
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"cannot read {weights}: {err}") from err
    cls = get_learner_class(card["method"])
    fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
    config = {k: tuple(v) if isinstance(v, list) and isinstance(fields[k].default, tuple) else v
              for k, v in card["config"].items() if k in fields}
    learner = cls(clip, card["classnames"], cls.config_class(**config))
    learner.load_learner_state_dict({k: v.to(clip.device) for k, v in state.items()})
    return learner.eval()


# ----------------------------------------------------------------------------- resumable fit
def save_train_state(folder: str | Path, learner: PromptLearner, optimizer: torch.optim.Optimizer,
                     history, epochs_done: int, recipe: dict) -> None:
    """Learner + SGD momentum + history after `epochs_done` epochs, and the `recipe` (learner config,
    class names, epochs, lr, batch size, seed, …) they were made with (used by `fit(checkpoint_dir=)`)."""
    folder = Path(folder)
    names = {id(p): n for n, p in learner.named_parameters()}
    momentum = {f"momentum.{names[id(p)]}": s["momentum_buffer"] for p, s in optimizer.state.items()
                if s.get("momentum_buffer") is not None}
    tensors = {**{f"learner.{k}": v for k, v in learner.learner_state_dict().items()}, **momentum}
    path = folder / "train_state.safetensors"
    atomic_write(path, lambda tmp: save_file(_tensors(tensors), tmp))
    write_json(folder / "train_state.json", {"epochs_done": epochs_done, "history": history.to_dict(),
                                             "method": learner.name, "recipe": recipe, "sha256": sha256_file(path)})


def load_train_state(folder: str | Path, learner: PromptLearner, optimizer: torch.optim.Optimizer, history,
                     recipe: dict) -> int:
    """Restore what `save_train_state` wrote; returns the number of epochs already done (0 if none).
    A state made with another recipe is refused (resuming it would silently return other weights)."""
    folder = Path(folder)
    meta_path, path = folder / "train_state.json", folder / "train_state.safetensors"
    if not meta_path.exists():
        return 0
    meta = read_json(meta_path, "training state")
    fix = f"delete {meta_path.name} and {path.name} in {folder} to start afresh"
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or \
            not isinstance(meta.get("epochs_done"), int) or not isinstance(meta.get("history"), dict):
        raise ValueError(f"{meta_path} is not a valid training state (needs epochs_done, history and the "
                         f"weights' sha256); {fix}")
    if meta.get("method") != learner.name:
        raise ValueError(f"{folder} holds the training state of {meta.get('method')!r}, not {learner.name!r}; "
                         "use another folder")
    saved = meta.get("recipe")
    if saved != recipe:
        diff = sorted(k for k in set(saved or {}) | set(recipe) if (saved or {}).get(k) != recipe.get(k))
        raise ValueError(f"{folder} holds a training state made with other settings ({', '.join(diff)} differ); "
                         f"resume with the same settings, or {fix}")
    if not path.exists() or sha256_file(path) != meta["sha256"]:
        raise ValueError(f"{path} is missing or does not match train_state.json; {fix}")
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"cannot read {path} ({err}); {fix}") from err
    device = learner.clip.device
    learner.load_learner_state_dict({k[8:]: v.to(device) for k, v in tensors.items() if k.startswith("learner.")})
    params = dict(learner.named_parameters())
    for key, value in tensors.items():
        if key.startswith("momentum."):
            optimizer.state[params[key[9:]]]["momentum_buffer"] = value.to(device)
    for key, value in meta["history"].items():
        setattr(history, key, value)
    return meta["epochs_done"]
