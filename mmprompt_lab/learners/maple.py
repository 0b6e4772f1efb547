"""MaPLe — Multi-modal Prompt Learning (Khattak et al., CVPR 2023, arXiv:2210.03117).

    T_0 = [SOS, P_0, "of a", class_c, ".", EOT] + pos                 P_0 = ctx (M, Dt), word init "a photo"
    V_0 = ln_pre([cls; patches] + pos ++ F_0(P_0))                    F_0: Linear Dt → Dv
    before block i, 1 ≤ i ≤ J-1:  T[:, 1:1+M] = P_i ;  V[:, -M:] = F_i(P_i)
    f_txt = ln_final(T)[EOT] W_t ;  f_img = ln_post(V[:, 0]) W_v

Vision prompts are functions of the text prompts (no free vision parameters); the deep projections
F_1..F_{J-1} start as copies of one default-initialised Linear. Official base-to-novel: M = 2,
J = 9, ctx_init "a photo of a", batch 4, lr 0.0035, 5 epochs. Trainable (ViT-B/16): 3,555,072.
Preset "transfer", the official cross-dataset / domain-generalisation recipe
(`vit_b16_c2_ep2_batch4_2ctx_cross_datasets`): J = 3 of 12 blocks (1 of ToyCLIP's 4), batch 4,
lr 0.0026, 2 epochs — `create_learner(..., **MaPLe.preset_options("transfer", clip))` for the learner,
`ExperimentSpec(..., preset="transfer")` or `--preset transfer` for the whole recipe.
Official names: `prompt_learner.ctx`, `.proj`, `.compound_prompts_text.{k}`,
`.compound_prompt_projections.{k}` → `ctx`, `proj`, `deep_text.{k}`, `deep_proj.{k}`.
Deviation: none in fp32 (the official code's `.half()` casts and hard-coded 512/768 are not copied).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from .base import LearnerConfig, PromptLearner, RecipePreset, TrainPreset, check
from .prompts import deep_prompts, deep_text_layout, replace_slots, replace_vision
from .registry import register_learner


@dataclass(frozen=True)
class MaPLeConfig(LearnerConfig):
    n_ctx: int = 2  # M prompt tokens per layer and tower (official 2)
    ctx_init: str = "a photo of a"  # word init of P_0 when n_ctx ≤ 4 (official); "" = random
    depth: int | None = None  # J: prompts at blocks 0..J-1; None = official 9 of 12 blocks, scaled to the model
    # (preset "transfer", cross-dataset / domain generalisation: 3)

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.depth is None or self.depth >= 1, f"depth must be ≥ 1, got {self.depth}")


@register_learner
class MaPLe(PromptLearner):
    """Coupled deep prompts: vision prompts are per-layer projections of text prompts.
    images (B, 3, H, W) → logits (B, C)."""

    name = "maple"
    config_class = MaPLeConfig
    preset = TrainPreset(lr=0.0035, batch_size=4, epochs=5)
    presets = {
        "transfer": RecipePreset(
            "cross-dataset / domain generalisation: depth 3 of 12, 2 epochs, lr 0.0026",
            TrainPreset(lr=0.0026, batch_size=4, epochs=2),
            {"depth": 3},
        )
    }
    depth_fields = {"depth": (9, "both")}
    has_vision_prompts = True
    couples_towers = True  # vision prompts are projections of the text prompts

    def __init__(self, clip, classnames, config: MaPLeConfig):
        super().__init__(clip, classnames, config)
        m, dt, dv, j = config.n_ctx, clip.text_width, clip.vision_width, self.config.depth
        layout = deep_text_layout(clip, m, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, m, dt)  # P_0 (M, Dt)
        self.proj = nn.Linear(dt, dv)  # F_0
        self.deep_text = deep_prompts(j - 1, m, dt)  # P_1..P_{J-1}
        one = nn.Linear(dt, dv)
        self.deep_proj = nn.ModuleList([copy.deepcopy(one) for _ in range(j - 1)])  # F_1..F_{J-1}

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return self.proj(self.ctx)  # (M, Dv)

    def layer(self, i, text, vision, state):
        if 1 <= i < self.config.depth:
            p = self.deep_text[i - 1]  # (M, Dt)
            if text is not None:
                text = replace_slots(text, self.prompts.slots, p)  # (C, L', Dt)
            if vision is not None:
                vision = replace_vision(vision, self.deep_proj[i - 1](p), self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        names = {
            "prompt_learner.ctx": "ctx",
            "prompt_learner.proj.weight": "proj.weight",
            "prompt_learner.proj.bias": "proj.bias",
        }
        for k in range(self.config.depth - 1):
            names[f"prompt_learner.compound_prompts_text.{k}"] = f"deep_text.{k}"
            for t in ("weight", "bias"):
                names[f"prompt_learner.compound_prompt_projections.{k}.{t}"] = f"deep_proj.{k}.{t}"
        return names
