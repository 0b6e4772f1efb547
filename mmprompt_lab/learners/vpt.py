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
8·768·12 = 73,728. Official names: `image_encoder.VPT` → `vision.prompts.0`,
`image_encoder.transformer.resblocks.{i}.VPT_shallow` → `vision.prompts.{i}`.
Deviation: none in fp32 (the official `.half()` cast of the prompts is not copied); J larger than
the vision depth raises instead of being silently capped; J left at None means all vision blocks
(12 on ViT-B/16, 4 on ToyCLIP).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .base import LearnerConfig, PromptLearner, TrainPreset, check, normal_, replace_vision
from .registry import register_learner


class DeepVisionPrompts(nn.Module):
    """VPT-deep tokens V_0..V_{J-1}, each (N, Dv) ~ N(0, 0.02²); shared by VPT and IVLP.

    `first()` → V_0 (N, Dv) appended before `ln_pre` (or None when N = 0 or J = 0: tower untouched);
    `forward(i, x)` replaces the last N tokens of x (B, T, Dv) by V_i before block i, 1 ≤ i ≤ J-1.
    """

    def __init__(self, clip, n_ctx: int, depth: int):
        super().__init__()
        count = depth if n_ctx > 0 else 0  # no tokens: no prompts at any depth
        check(count <= clip.vision_depth, f"vision prompt depth {depth} exceeds the model's "
              f"{clip.vision_depth} vision blocks ({clip.id}); use a depth ≤ {clip.vision_depth}")
        self.prompts = nn.ParameterList([normal_(n_ctx, clip.vision_width) for _ in range(count)])  # J × (N, Dv)

    def first(self) -> Tensor | None:
        return self.prompts[0] if len(self.prompts) else None  # (N, Dv)

    def forward(self, i: int, x: Tensor | None) -> Tensor | None:
        if x is None or not 1 <= i < len(self.prompts):
            return x
        return replace_vision(x, self.prompts[i], "end")  # (B, T, Dv)

    def official_names(self, prefix: str) -> dict[str, str]:
        """`image_encoder.VPT` and `image_encoder.transformer.resblocks.{i}.VPT_shallow` → ours."""
        names = {"image_encoder.VPT": f"{prefix}.prompts.0"} if len(self.prompts) else {}
        for i in range(1, len(self.prompts)):
            names[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"{prefix}.prompts.{i}"
        return names


@dataclass(frozen=True)
class VPTConfig(LearnerConfig):
    n_ctx: int = 8  # N visual prompt tokens per layer (official N_CTX_VISION 8)
    depth: int | None = None  # J: prompts at vision blocks 0..J-1; None = all (official 12 of 12), scaled
    template: str = "a photo of a {}."  # fixed text prompt (official FixedEmbeddings)

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.depth is None or self.depth >= 1,
              f"depth must be ≥ 1 (official assert PROMPT_DEPTH_VISION >= 1), got {self.depth}")
        check("{}" in self.template, f"template needs a '{{}}' for the class name, got {self.template!r}")


@register_learner
class VPT(PromptLearner):
    """Deep visual prompts, fixed hand-template text. images (B, 3, H, W) → logits (B, C)."""

    name = "vpt"
    config_class = VPTConfig
    preset = TrainPreset(lr=0.0025, batch_size=4, epochs=5)
    depth_fields = {"depth": (12, "vision")}

    def __init__(self, clip, classnames, config: VPTConfig):
        super().__init__(clip, classnames, config)
        self.vision = DeepVisionPrompts(clip, config.n_ctx, self.config.depth)  # depth resolved by the base

    def text_prompts(self):
        raise RuntimeError("vpt has no learnable text prompts; its text features come from encode_text()")

    def encode_text(self) -> Tensor:
        return self.fixed_text_features([self.config.template])  # (C, E), no grad

    def vision_prompts(self):
        return self.vision.first()  # (N, Dv)

    def layer(self, i, text, vision):
        return text, self.vision(i, vision)

    def encode(self, images, attention=None):
        """Image tower only (text is fixed): → image features (B, E), text features (C, E)."""
        _, v = self.clip.run(None, self.vision_input(images), self.layer, attention=attention)
        return self.clip.pool_image(v), self.encode_text()  # (B, E), (C, E)

    def official_names(self):
        return self.vision.official_names("vision")
