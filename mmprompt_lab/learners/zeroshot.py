"""Zero-shot CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021, arXiv:2103.00020).

    t_c = norm(mean_k norm(g("template_k".format(class_c))))         (C, E)
    logits = exp(logit_scale) · norm(f(x)) · t_cᵀ                       (B, C)

One template ("a photo of a {}."), a dataset's own template (docs/methods.md §1), or an ensemble
(features averaged after normalising, then renormalised). No trainable parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .base import LearnerConfig, PromptLearner, check
from .registry import register_learner

# A small ensemble of the hand-written templates from the CLIP paper's prompt-engineering notebook.
ENSEMBLE = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


@dataclass(frozen=True)
class ZeroShotConfig(LearnerConfig):
    templates: tuple[str, ...] = ("a photo of a {}.",)  # "{}" = class name; several = ensemble
    ensemble: bool = False  # add the CLIP paper's 7-template ensemble to `templates`

    def __post_init__(self):
        templates = (self.templates,) if isinstance(self.templates, str) else tuple(self.templates)
        object.__setattr__(self, "templates", templates)
        check(len(templates) > 0, "zeroshot needs at least one template")
        check(all("{}" in t for t in templates), f"each template needs a '{{}}' for the class name: {templates}")


@register_learner
class ZeroShot(PromptLearner):
    """Hand-template CLIP classifier. images (B, 3, H, W) → logits (B, C)."""

    name = "zeroshot"
    config_class = ZeroShotConfig
    has_text_prompts = False

    def encode_text(self, state=None) -> Tensor:
        templates = self.config.templates + (ENSEMBLE if self.config.ensemble else ())
        return self.fixed_text_features(templates)  # (C, E)
