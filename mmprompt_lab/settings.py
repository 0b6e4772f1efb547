"""Notebook settings: one place where the visible, classroom-sized parameters of a lesson meet the
CI-sized ones (`MMPROMPT_CI=1`); they turn into experiment specs for the one pipeline.

    S = notebook_settings(model="toyclip", shots=8, epochs=5)     # in a notebook's parameters cell
    clip = S.load_clip()
    train = S.dataset("toyworld/shapes", "train", subsample="base")
    spec = S.spec("maple", "toyworld/polygons", clip, n_ctx=2)    # → mmprompt_lab.experiment.run_experiment
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
        from .backbone import load_clip
        from .engine.train import configure_threads

        configure_threads(self.threads, self.model, self.device)
        return load_clip(self.model, pretrained=self.pretrained, device=self.device)

    def dataset(self, name: str, split: str = "train", subsample: str = "all", root: str | None = None):
        """`load_dataset` with these shots and seed; test splits capped at `eval_per_class` per class."""
        from .data.base import load_dataset

        shots = self.shots if split in ("train", "val") else None
        ds = load_dataset(name, split=split, shots=shots, seed=self.seed, subsample=subsample, root=root)
        return ds if shots is not None else ds.first_per_class(self.eval_per_class or None)

    def spec(
        self,
        method: str,
        dataset: str,
        clip,
        *,
        base_to_novel: bool = True,
        shifted: tuple[str, ...] = (),
        n_ctx: int | None = None,
        depth: int | None = None,
        lr: float | None = None,
        root: str | None = None,
        **options,
    ):
        """The `ExperimentSpec` of a lesson's run: these shots, epochs, batch size, seed and test cap,
        the generic knobs `n_ctx`/`depth` mapped onto the method's own options, other learner options."""
        from .experiment import ExperimentSpec, knob_options

        return ExperimentSpec(
            method,
            dataset,
            shots=self.shots,
            seed=self.seed,
            base2new=base_to_novel,
            epochs=self.epochs,
            lr=lr,
            batch_size=self.batch_size,
            options={**knob_options(method, clip, n_ctx, depth), **options},
            test_per_class=self.eval_per_class or None,
            root=root,
            shifted=tuple(shifted),
            zeroshot_reference=False,
        )


def toyclip_weights_available() -> bool:
    from .toyclip.model import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS.is_file()


def notebook_settings(
    model: str = "toyclip",
    pretrained: str | bool | None = None,
    *,
    shots: int = 8,
    epochs: int = 5,
    eval_per_class: int = 30,
    batch_size: int | None = None,
    seed: int = 1,
    device: str | None = None,
    ci: bool | None = None,
) -> NotebookSettings:
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
        settings = replace(
            settings,
            shots=min(shots, CI_LIMITS["shots"]),
            epochs=min(epochs, CI_LIMITS["epochs"]),
            eval_per_class=min(eval_per_class, CI_LIMITS["eval_per_class"]),
            batch_size=min(batch_size or CI_LIMITS["batch_size"], CI_LIMITS["batch_size"]),
        )
    if model == "toyclip" and pretrained is None and not toyclip_weights_available():
        warnings.warn(
            "the shipped ToyCLIP weights (mmprompt_lab/assets/toyclip.safetensors) are missing: "
            "using a randomly initialised ToyCLIP, so accuracies stay near chance",
            stacklevel=2,
        )
        settings = replace(settings, pretrained=False)
    return settings
