"""The resumable state of `fit`: the learner's prompts + SGD momentum + history after each finished
epoch, and the recipe they were made with (`out/train_state.safetensors` + `out/train_state.json`).

Learner checkpoints themselves (safetensors + card) are `mmprompt_lab.learners.saving`, re-exported here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_write, read_json, sha256_file, write_json
from ..learners.base import PromptLearner
from ..learners.saving import FORMAT, card_config, load_learner, read_card, save_learner, tensors_of

__all__ = ["FORMAT", "card_config", "load_learner", "load_train_state", "read_card", "save_learner", "save_train_state"]


# ----------------------------------------------------------------------------- resumable fit
def save_train_state(
    folder: str | Path,
    learner: PromptLearner,
    optimizer: torch.optim.Optimizer,
    history,
    epochs_done: int,
    recipe: dict,
) -> None:
    """Learner + SGD momentum + history after `epochs_done` epochs, and the `recipe` (learner config,
    class names, epochs, lr, batch size, seed, …) they were made with (used by `fit(checkpoint_dir=)`)."""
    folder = Path(folder)
    names = {id(p): n for n, p in learner.named_parameters()}
    momentum = {
        f"momentum.{names[id(p)]}": s["momentum_buffer"]
        for p, s in optimizer.state.items()
        if s.get("momentum_buffer") is not None
    }
    tensors = {**{f"learner.{k}": v for k, v in learner.learner_state_dict().items()}, **momentum}
    path = folder / "train_state.safetensors"
    atomic_write(path, lambda tmp: save_file(tensors_of(tensors), tmp))
    write_json(
        folder / "train_state.json",
        {
            "epochs_done": epochs_done,
            "history": history.to_dict(),
            "method": learner.name,
            "recipe": recipe,
            "sha256": sha256_file(path),
        },
    )


def load_train_state(
    folder: str | Path, learner: PromptLearner, optimizer: torch.optim.Optimizer, history, recipe: dict
) -> int:
    """Restore what `save_train_state` wrote; returns the number of epochs already done (0 if none).
    A state made with another recipe is refused (resuming it would silently return other weights)."""
    folder = Path(folder)
    meta_path, path = folder / "train_state.json", folder / "train_state.safetensors"
    if not meta_path.exists():
        return 0
    meta = read_json(meta_path, "training state")
    fix = f"delete {meta_path.name} and {path.name} in {folder} to start afresh"
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("sha256"), str)
        or not isinstance(meta.get("epochs_done"), int)
        or not isinstance(meta.get("history"), dict)
    ):
        raise ValueError(
            f"{meta_path} is not a valid training state (needs epochs_done, history and the weights' sha256); {fix}"
        )
    if meta.get("method") != learner.name:
        raise ValueError(
            f"{folder} holds the training state of {meta.get('method')!r}, not {learner.name!r}; use another folder"
        )
    saved = meta.get("recipe")
    if saved != recipe:
        diff = sorted(k for k in set(saved or {}) | set(recipe) if (saved or {}).get(k) != recipe.get(k))
        raise ValueError(
            f"{folder} holds a training state made with other settings ({', '.join(diff)} differ); "
            f"resume with the same settings, or {fix}"
        )
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
