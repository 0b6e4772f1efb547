"""VPT-deep — Visual Prompt Tuning (Jia et al., ECCV 2022, arXiv:2203.12119), as the vision-only
baseline of the MaPLe paper (Khattak et al., CVPR 2023, arXiv:2210.03117, official code
muzairkhattak/multimodal-prompt-learning, trainer `VPT`).

    t_c = norm(g("a photo of a {c}."))                              fixed, computed once (C, E)
    V   = ln_pre([cls; patches] + pos ++ V_0)                       V_0 (N, Dv), no positional embedding
    before block i, 1 ≤ i ≤ J-1:  V[:, -N:] = V_i                   the last N tokens are replaced
    f_img = ln_post(V[:, 0]) W_v ;  logits = exp(logit_scale) · norm(f_img) · t_cᵀ

Blocks ≥ J carry the previous block's prompt outputs. All V_i ~ N(0, 0.02²). In the official code
V_0 is `visual.VPT` and V_i (N, Dv) is `VPT_shallow` of resblocks i = 1..J-1 (blocks with
`prompts_needed > i`, replacing the last N tokens). Official (configs/trainers/VPT/
vit_b16_c2_ep5_batch4_4.yaml): N = 8, J = 12, lr 0.0025, batch 4, 5 epochs. Trainable (ViT-B/16):
8·768·12 = 73,728. Official names: `image_encoder.VPT` → `vision_ctx`,
`image_encoder.transformer.resblocks.{i}.VPT_shallow` → `deep_vision.{i-1}`.
Deviation: none in fp32 (the official `.half()` cast of the prompts is not copied); J larger than
the vision depth raises instead of being silently capped; J left at None means all vision blocks
(12 on ViT-B/16, 4 on ToyCLIP).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import deep_prompts, normal_, replace_vision
from .registry import register_learner


@dataclass(frozen=True)
class VPTConfig(LearnerConfig):
    n_ctx: int = 8  # N visual prompt tokens per layer (official N_CTX_VISION 8)
    depth: int | None = None  # J: prompts at vision blocks 0..J-1; None = all (official 12 of 12), scaled
    template: str = "a photo of a {}."  # fixed text prompt (official FixedEmbeddings)

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(
            self.depth is None or self.depth >= 1,
            f"depth must be ≥ 1 (official assert PROMPT_DEPTH_VISION >= 1), got {self.depth}",
        )
        check("{}" in self.template, f"template needs a '{{}}' for the class name, got {self.template!r}")


@register_learner
class VPT(PromptLearner):
    """Deep visual prompts, fixed hand-template text. images (B, 3, H, W) → logits (B, C)."""

    name = "vpt"
    config_class = VPTConfig
    preset = TrainPreset(lr=0.0025, batch_size=4, epochs=5)
    depth_fields = {"depth": (12, "vision")}
    has_text_prompts = False
    has_vision_prompts = True

    def __init__(self, clip, classnames, config: VPTConfig):
        super().__init__(clip, classnames, config)
        n, dv, j = config.n_ctx, clip.vision_width, self.config.depth  # depth resolved by the base
        self.vision_ctx = normal_(n, dv)  # V_0 (N, Dv)
        self.deep_vision = deep_prompts(j - 1, n, dv)  # V_1..V_{J-1}

    def encode_text(self, state=None) -> Tensor:
        return self.fixed_text_features([self.config.template])  # (C, E), no grad

    def vision_prompts(self, state):
        return self.vision_ctx  # (N, Dv)

    def layer(self, i, text, vision, state):
        if vision is not None and 1 <= i < self.config.depth:
            vision = replace_vision(vision, self.deep_vision[i - 1], self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        names = {"image_encoder.VPT": "vision_ctx"}
        for i in range(1, self.config.depth):
            names[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"deep_vision.{i - 1}"
        return names
