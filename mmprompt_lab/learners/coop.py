"""CoOp — Context Optimization (Zhou et al., "Learning to Prompt for Vision-Language Models",
IJCV 2022, arXiv:2109.01134).

    t_c = [SOS, ctx_1..ctx_M, class_c, ".", EOT]          ctx: (M, Dt) shared, or (C, M, Dt) with csc
    middle: [SOS, ctx_1..ctx_{M/2}, class_c, ctx_{M/2+1}..ctx_M, ".", EOT];  front: [SOS, class_c, ctx, ".", EOT]
    logits = exp(logit_scale) · norm(f(x)) · norm(g(t_c))ᵀ

Official: M = 16, random init N(0, 0.02²) (variant: ctx_init "a photo of a" → M = 4 words),
class token at the end, batch 32, lr 0.002, 200 epochs at 16 shots. Trainable (ViT-B/16): 8,192.
Official names: `prompt_learner.ctx` → `ctx`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import COOP_TEMPLATES, coop_layout
from .registry import register_learner


@dataclass(frozen=True)
class CoOpConfig(LearnerConfig):
    n_ctx: int = 16  # M context tokens (CoOp paper: 16)
    ctx_init: str = ""  # word-init phrase, e.g. "a photo of a" (then M = its token count); "" = random
    class_token_position: str = "end"  # "end" | "middle" | "front"
    csc: bool = False  # class-specific context (C, M, Dt)
    init_std: float = 0.02  # std of the random init

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(
            self.class_token_position in COOP_TEMPLATES,
            f"class_token_position must be one of {list(COOP_TEMPLATES)}, got {self.class_token_position!r}",
        )
        check(not (self.csc and self.ctx_init), "csc uses random init; leave ctx_init empty")
        check(not (self.ctx_init and self.class_token_position != "end"), "word init needs class_token_position='end'")


@register_learner
class CoOp(PromptLearner):
    """Learnable text context. images (B, 3, H, W) → logits (B, C); ctx (M, Dt) or (C, M, Dt)."""

    name = "coop"
    config_class = CoOpConfig
    preset = TrainPreset(lr=0.002, batch_size=32, epochs=200)

    def __init__(self, clip, classnames, config: CoOpConfig):
        super().__init__(clip, classnames, config)
        layout = coop_layout(clip, config.class_token_position, config.n_ctx, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        shape = (sum(layout.runs), clip.text_width)  # (M, Dt)
        shape = (len(self.classnames), *shape) if config.csc else shape
        self.ctx = layout.context(self.prompts, *shape, std=config.init_std)  # (M, Dt) | (C, M, Dt)

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def set_classnames(self, classnames):
        if self.config.csc and len(classnames) != self.ctx.shape[0]:
            raise ValueError(
                f"class-specific context was learned for {self.ctx.shape[0]} classes and cannot "
                f"transfer to {len(classnames)} new ones; use csc=False for base-to-novel"
            )
        super().set_classnames(classnames)

    def official_names(self):
        return {"prompt_learner.ctx": "ctx"}
