"""IVLP — Independent Vision-Language Prompting, the deep V-L baseline of MaPLe (Khattak et al.,
CVPR 2023, arXiv:2210.03117, official code muzairkhattak/multimodal-prompt-learning, trainer `IVLP`).

    T_0 = [SOS, P_0, "of a", class_c, ".", EOT] + pos               P_0 = ctx (Mt, Dt), word init "a photo"
    before text block i, 1 ≤ i ≤ Jt-1:    T[:, 1:1+Mt] = P_i        P_i (Mt, Dt)
    V_0 = ln_pre([cls; patches] + pos ++ V_0)                       V_0 (Nv, Dv), as VPT-deep
    before vision block i, 1 ≤ i ≤ Jv-1:  V[:, -Nv:] = V_i          V_i (Nv, Dv)
    f_txt = ln_final(T)[EOT] W_t ;  f_img = ln_post(V[:, 0]) W_v    no coupling between the towers

Word init as MaPLe: with ctx_init and Mt ≤ 4, P_0 = the embeddings of the first Mt tokens of the
phrase and the rest of the phrase stays as fixed tokens; otherwise P_0 ~ N(0, 0.02²) with "X" fill.
All deep prompts ~ N(0, 0.02²). In the official code P_i / V_i are `VPT_shallow` of text / vision
resblocks i = 1..J-1 (the blocks with `prompts_needed > i`); deep text prompts replace positions
1..Mt, deep vision prompts the last Nv tokens. Jv = 0 or Nv = 0 leaves the image tower untouched.
Official: Mt = Nv = 2, Jt = Jv = 9 (docs/methods.md; the released config vit_b16_c2_ep5_batch4_2+2ctx
sets 12/12), lr 0.0035, batch 4, 5 epochs. Trainable (ViT-B/16, 9/9): 23,040.
"Deep language prompting" (config ..._4ctx_language_only): n_ctx_text=4, text_depth=12,
vision_depth=0, n_ctx_vision=0, lr 0.0025 → 24,576 trainable.
Official names: `prompt_learner.ctx` → `ctx`; `text_encoder.transformer.resblocks.{i}.VPT_shallow` →
`deep_text.{i-1}`; `image_encoder.VPT` → `vision_ctx`;
`image_encoder.transformer.resblocks.{i}.VPT_shallow` → `deep_vision.{i-1}`.
Deviation: none in fp32; depths beyond the towers raise instead of being silently capped; depths
left at None are 9 of 12 blocks scaled to the model (9/9 on ViT-B/16, 3/3 on ToyCLIP).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import deep_prompts, deep_text_layout, normal_, replace_slots, replace_vision
from .registry import register_learner


@dataclass(frozen=True)
class IVLPConfig(LearnerConfig):
    n_ctx_text: int = 2  # Mt text prompt tokens per layer (official N_CTX_TEXT 2)
    n_ctx_vision: int = 2  # Nv vision prompt tokens per layer (official N_CTX_VISION 2); 0 = no vision prompts
    text_depth: int | None = None  # Jt: text prompts at blocks 0..Jt-1; None = official 9 of 12, scaled
    vision_depth: int | None = None  # Jv: vision prompts at blocks 0..Jv-1; None = 9 of 12, scaled; 0 = none
    ctx_init: str = "a photo of a"  # word init of P_0 when n_ctx_text ≤ 4 (official); "" = random

    def __post_init__(self):
        check(self.n_ctx_text >= 1, f"n_ctx_text must be ≥ 1, got {self.n_ctx_text}")
        check(
            self.text_depth is None or self.text_depth >= 1,
            f"text_depth must be ≥ 1 (official assert; use 'vpt' for vision-only prompting), got {self.text_depth}",
        )
        check(self.n_ctx_vision >= 0, f"n_ctx_vision must be ≥ 0, got {self.n_ctx_vision}")
        check(self.vision_depth is None or self.vision_depth >= 0, f"vision_depth must be ≥ 0, got {self.vision_depth}")


@register_learner
class IVLP(PromptLearner):
    """Independent deep prompts in both towers. images (B, 3, H, W) → logits (B, C)."""

    name = "ivlp"
    config_class = IVLPConfig
    preset = TrainPreset(lr=0.0035, batch_size=4, epochs=5)
    depth_fields = {"text_depth": (9, "text"), "vision_depth": (9, "vision")}

    def __init__(self, clip, classnames, config: IVLPConfig):
        super().__init__(clip, classnames, config)
        config = self.config  # depths resolved and checked against the model by the base
        m, dt, nv, dv = config.n_ctx_text, clip.text_width, config.n_ctx_vision, clip.vision_width
        layout = deep_text_layout(clip, m, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, m, dt)  # P_0 (Mt, Dt)
        self.deep_text = deep_prompts(config.text_depth - 1, m, dt)  # P_1..P_{Jt-1}
        jv = config.vision_depth if nv > 0 else 0  # no tokens: no vision prompts at any depth
        self.has_vision_prompts = jv > 0  # language-only IVLP leaves the image tower untouched
        self.vision_ctx = normal_(nv, dv) if jv else None  # V_0 (Nv, Dv)
        self.deep_vision = deep_prompts(max(jv - 1, 0), nv, dv)  # V_1..V_{Jv-1}

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return self.vision_ctx  # (Nv, Dv) or None

    def layer(self, i, text, vision, state):
        if text is not None and 1 <= i < self.config.text_depth:
            text = replace_slots(text, self.prompts.slots, self.deep_text[i - 1])  # (C, L', Dt)
        if vision is not None and 1 <= i <= len(self.deep_vision):
            vision = replace_vision(vision, self.deep_vision[i - 1], self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        names = {"prompt_learner.ctx": "ctx"}
        for i in range(1, self.config.text_depth):
            names[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"deep_text.{i - 1}"
        if self.has_vision_prompts:
            names["image_encoder.VPT"] = "vision_ctx"
        for i in range(1, len(self.deep_vision) + 1):
            names[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"deep_vision.{i - 1}"
        return names
