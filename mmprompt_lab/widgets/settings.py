"""Notebook settings: one place where the visible, classroom-sized parameters of a lesson meet the
CI-sized ones (`MMPROMPT_CI=1`), and where ToyCLIP falls back to random weights while the shipped
file does not exist yet.

    S = notebook_settings(model="toyclip", shots=8, epochs=5)     # in a notebook's parameters cell
    clip = S.load_clip()
    train = S.dataset("toyworld/shapes", "train", subsample="base")
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)

CI_ENV = "MMPROMPT_CI"
# What MMPROMPT_CI=1 caps each setting to: enough to run every cell, small enough for 2 CPU cores.
CI_LIMITS = {"shots": 2, "epochs": 2, "eval_per_class": 4, "batch_size": 8}


def ci_mode() -> bool:
    """True when the environment asks for CI-sized runs (MMPROMPT_CI set to anything but 0/empty)."""
    return os.environ.get(CI_ENV, "").strip() not in ("", "0", "false", "False")


@dataclass(frozen=True)
class NotebookSettings:
    """The parameters a lesson runs with (already shrunk when `ci` is True)."""

    model: str = "toyclip"  # "toyclip" or an open_clip name such as "ViT-B-16"
    pretrained: str | bool | None = None  # None = the model's default weights (ToyCLIP: the shipped file)
    shots: int = 8  # training images per class
    epochs: int = 5
    eval_per_class: int = 30  # test images per class (ToyWorld suites have 30)
    batch_size: int | None = None  # None = the method's official preset
    seed: int = 1
    device: str | None = None  # None = cuda if available, else cpu
    ci: bool = False
    threads: int | None = None  # CPU threads; None = the engine's policy (1 for ToyCLIP on the CPU)

    def load_clip(self):
        """The frozen CLIP these settings name (`mmprompt_lab.load_clip`), after setting the CPU
        thread count by the engine's policy (`configure_threads`: one thread is several times faster
        for ToyCLIP's small ops, most of all on a shared CPU)."""
        from ..backbone import load_clip
        from ..engine.train import configure_threads

        configure_threads(self.threads, self.model, self.device)
        return load_clip(self.model, pretrained=self.pretrained, device=self.device)

    def dataset(self, name: str, split: str = "train", subsample: str = "all", root: str | None = None):
        """`load_dataset` with these shots and seed; test splits capped at `eval_per_class` per class."""
        from ..data.base import ImageDataset, load_dataset

        shots = self.shots if split in ("train", "val") else None
        ds = load_dataset(name, split=split, shots=shots, seed=self.seed, subsample=subsample, root=root)
        if shots is None and self.eval_per_class:
            counts: dict[int, int] = {}
            items = []
            for item in ds.items:  # keep the first k of each class, in the official order
                counts[item.label] = counts.get(item.label, 0) + 1
                if counts[item.label] <= self.eval_per_class:
                    items.append(item)
            ds = ImageDataset(ds.source, ds.split, items, ds.classnames, ds.transform,
                              {**ds.info, "per_class": self.eval_per_class}, ds.skip_bad_images)
        return ds

    def fit_kwargs(self) -> dict:
        """Keyword arguments for `fit` (epochs, batch size, seed, device; no progress bars in CI)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                "device": self.device, "progress": not self.ci}


def toyclip_weights_available() -> bool:
    from ..toyclip.model import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS.is_file()


def notebook_settings(model: str = "toyclip", pretrained: str | bool | None = None, *, shots: int = 8,
                      epochs: int = 5, eval_per_class: int = 30, batch_size: int | None = None, seed: int = 1,
                      device: str | None = None, ci: bool | None = None) -> NotebookSettings:
    """Settings for a notebook: the visible values, shrunk to CI size when `MMPROMPT_CI=1`.

    Args:
        model, pretrained: the CLIP to load (see `load_clip`). For "toyclip" with pretrained=None,
            the shipped weights are used when the file exists, else random weights (with a warning).
        shots, epochs, eval_per_class, batch_size, seed, device: the lesson's sizes.
        ci: force CI sizes on/off; None = read `MMPROMPT_CI`.

    Example:
        >>> S = notebook_settings(shots=8, epochs=5)      # MMPROMPT_CI=1 → shots 2, epochs 2
    """
    ci = ci_mode() if ci is None else ci
    settings = NotebookSettings(model, pretrained, shots, epochs, eval_per_class, batch_size, seed, device, ci)
    if ci:
        settings = replace(settings, shots=min(shots, CI_LIMITS["shots"]), epochs=min(epochs, CI_LIMITS["epochs"]),
                           eval_per_class=min(eval_per_class, CI_LIMITS["eval_per_class"]),
                           batch_size=min(batch_size or CI_LIMITS["batch_size"], CI_LIMITS["batch_size"]))
    if model == "toyclip" and pretrained is None and not toyclip_weights_available():
        warnings.warn("the shipped ToyCLIP weights (mmprompt_lab/assets/toyclip.safetensors) are missing: "
                      "using a randomly initialised ToyCLIP, so accuracies stay near chance", stacklevel=2)
        settings = replace(settings, pretrained=False)
    return settings


# ----------------------------------------------------------------------------- method knobs
def learner_overrides(method: str, clip, n_ctx: int | None = None, depth: int | None = None) -> dict:
    """Map the generic knobs "context length" and "depth" onto a method's own config fields.

    n_ctx → `n_ctx`, or `n_ctx_text` and `n_ctx_vision`; depth → `depth`, or `text_depth` and
    `vision_depth`. A depth left at None whose official default exceeds the model's towers is scaled
    like the learners' own depth fields (9 of 12 blocks → 3 of ToyCLIP's 4). Methods without such a
    field ignore the knob.

    Example:
        >>> create_learner("maple", clip, names, **learner_overrides("maple", clip, n_ctx=2))
    """
    import dataclasses

    from ..learners import get_learner_class

    fields = {f.name: f for f in dataclasses.fields(get_learner_class(method).config_class)}
    out: dict = {}
    if n_ctx is not None:
        for name in ("n_ctx", "n_ctx_text", "n_ctx_vision"):
            if name in fields:
                out[name] = n_ctx
    limit = min(clip.text_depth, clip.vision_depth) - (1 if method == "dcp" else 0)  # DCP: blocks 1..J
    if "depth" in fields:
        default = fields["depth"].default
        if depth is not None:
            out["depth"] = min(depth, limit)
        elif isinstance(default, int) and default > limit:
            out["depth"] = max(1, min(limit, round(default * min(clip.text_depth, clip.vision_depth) / 12)))
    elif depth is not None:
        for name in ("text_depth", "vision_depth"):
            if name in fields:
                out[name] = min(depth, clip.text_depth if name == "text_depth" else clip.vision_depth)
    return out
