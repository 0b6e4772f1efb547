"""KgCoOp — Knowledge-guided Context Optimization (Yao et al., "Visual-Language Prompt Tuning with
Knowledge-guided Context Optimization", CVPR 2023, arXiv:2303.13283; released code htyao89/KgCoOp).

    t_c      = [SOS, ctx_1..ctx_M, class_c, ".", EOT]            ctx (M, Dt) shared, as CoOp
    ŵ_c      = norm(g(t_c))                                     (C, E) prompted text features
    ŵ_c^clip = norm(g(template(c)))                             (C, E) frozen, the dataset's own template
    logits   = s · norm(f(x)) · ŵᵀ                              (B, C)
    loss     = CE(logits, y) + λ · L_kg
    released code (default, kg_loss="cosine"):  L_kg = 1 − (1/C) Σ_c ŵ_c · ŵ_c^clip
    paper (kg_loss="l2"):                       L_kg = (1/C) Σ_c ‖ŵ_c − ŵ_c^clip‖²   (= 2× the cosine form)

ŵ^clip is computed once per class-name set (no gradient); ŵ comes from the same text pass as the
logits. With several `templates`, ŵ^clip is their zero-shot ensemble (normalised mean of normalised
features). The pipeline passes the dataset's own zero-shot template (docs/methods.md §1; the released
code's table differs only for DTD, "a photo of a {}, a type of texture.").
Official (base-to-novel, ViT-B/16, vit_b16_ep100_ctxv1 + W=8.0): ctx_init "a photo of a" (M = 4),
class token at the end, λ = 8.0, SGD lr 0.002, batch 128, 100 epochs, cosine after 1 warm-up epoch
at 1e-5. Trainable (ViT-B/16): 4 · 512 = 2,048; ToyCLIP: 256.
Official names: `prompt_learner.ctx` → `ctx`.
Deviations: the released code's meta-net, bias vectors and adapter are never optimised and are left
out (their checkpoint keys are ignored on import).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import coop_layout
from .registry import register_learner

KG_LOSSES = ("cosine", "l2")


@dataclass(frozen=True)
class KgCoOpConfig(LearnerConfig):
    n_ctx: int = 4  # M context tokens when ctx_init is "" (official N_CTX 4)
    ctx_init: str = "a photo of a"  # word-init phrase, M = its token count (official); "" = random N(0, 0.02²)
    templates: tuple[str, ...] = ("a photo of a {}.",)  # hand-crafted prompt(s) of ŵ^clip; the pipeline
    # passes the dataset's own template
    kg_weight: float = 8.0  # λ (official TRAINER.COOP.W = 8.0 in the base-to-novel scripts)
    kg_loss: str = "cosine"  # "cosine" = released code, "l2" = the paper's squared distance

    def __post_init__(self):
        templates = (self.templates,) if isinstance(self.templates, str) else tuple(self.templates)
        object.__setattr__(self, "templates", templates)
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(
            len(templates) > 0 and all("{}" in t for t in templates),
            f"templates needs at least one template, each with '{{}}' for the class name: {templates}",
        )
        check(self.kg_weight >= 0, f"kg_weight must be ≥ 0, got {self.kg_weight}")
        check(self.kg_loss in KG_LOSSES, f"kg_loss must be one of {list(KG_LOSSES)}, got {self.kg_loss!r}")


@register_learner
class KgCoOp(PromptLearner):
    """CoOp context pulled toward the hand-crafted class embeddings. images (B, 3, H, W) → logits (B, C)."""

    name = "kgcoop"
    config_class = KgCoOpConfig
    preset = TrainPreset(lr=0.002, batch_size=128, epochs=100)
    extra_loss_terms = True

    def __init__(self, clip, classnames, config: KgCoOpConfig):
        super().__init__(clip, classnames, config)
        layout = coop_layout(clip, "end", config.n_ctx, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, sum(layout.runs), clip.text_width)  # (M, Dt)

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def kg_term(self, text_features: Tensor) -> Tensor:
        """L_kg (unweighted) of the prompted text features (C, E) against the frozen ŵ^clip."""
        w = F.normalize(text_features, dim=-1)  # (C, E)
        w_clip = self.fixed_text_features(self.config.templates)  # (C, E), cached, no grad
        if self.config.kg_loss == "cosine":
            return 1 - (w * w_clip).sum(-1).mean()
        return (w - w_clip).pow(2).sum(-1).mean()

    def loss_terms(self, images: Tensor, labels: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The weighted terms {"ce", "kg"} (their sum is the loss) and the (B, C) logits, from one pass."""
        state = self.begin_pass()
        text_features = self.encode_text(state)  # (C, E), once per step: logits and L_kg share it
        logits = self.logits(self.encode_image(images, state), text_features)  # (B, C)
        terms = {"ce": F.cross_entropy(logits, labels), "kg": self.config.kg_weight * self.kg_term(text_features)}
        return terms, logits

    def training_loss(self, images, labels):
        terms, logits = self.loss_terms(images, labels)
        return sum(terms.values()), logits

    def official_names(self):
        return {"prompt_learner.ctx": "ctx"}
