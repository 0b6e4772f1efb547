"""MuDPT — Multi-modal Deep-symphysis Prompt Tuning (Miao et al., ICME 2023, arXiv:2306.11400).

    T_0 (n, Dt) word init "a photo"; T_1..T_{D-1}, V_0..V_{D-1} ~ N(0, 0.02²)
    t_c = [SOS, P_t^0, class_c, ".", EOT]                  only the first n words of the phrase ("of a" dropped)
    V   = ln_pre([cls; patches] + pos ++ P_v^0)            n tokens appended at the end, before ln_pre
    before block j, 1 ≤ j ≤ D-1:  T[:, 1:1+n] = P_t^j ;  V[:, -n:] = P_v^j
  fusion="linear" (released MuDPT code, default):
    P_t^0 = T_0                              P_v^0 = V_0 + embed_proj(T_0)
    P_t^j = T_j + v2t(V_j)                   P_v^j = V_j + t2v(T_j)         t2v, v2t: ONE Linear each, shared by layers
  fusion="transformer" (released UUMuDPT code, closest to the paper's transformative network):
    G(x) = Linear(LN(block(LN(x))))          block: one pre-LN transformer layer over the n tokens of each layer
    P_t^0 = T_0 ;  P_t^j = T_j + G_v→t(V_j)  P_v^j = V_j + G_t→v(T_j), j = 0..D-1
    G_t→v: width Dt, text heads → Dv;  G_v→t: width Dv, vision heads → Dt; one per direction, shared by layers.

The prompts are functions of parameters only: `begin_pass` computes both towers' fused prompts once per
pass, and the towers need no lockstep. The released code maps Dv → E (its `output_dim`) for v2t; here → Dt (equal for
every OpenAI ViT CLIP; required when they differ) and the heads are read from the model (released:
width // 64, the same for OpenAI CLIPs). Deviations: none in fp32 for ViT-B/16.
Official (scripts; the released YAML keys are not the ones the code reads): n ∈ {2, 4}, D = 9, ctx_init
"a photo of a", batch 4, lr 0.0025, 10 epochs; depth=None → 9 of 12 blocks scaled to the model (3 on
ToyCLIP). Trainable (ViT-B/16): linear n=2 1,204,736; n=4 1,227,776; transformer n=2 11,056,128.
Official names (linear): `mudpt_prompt_learner.{ctx, deep_prompts, embed_projection.*, deep_projections.*}`
→ ctx, deep_text, embed_proj.*, t2v.*; `image_encoder.{visual_ctx, visual_ctx_deep_prompts,
visual_ctx_deep_projections.*}` → vision_ctx, deep_vision, v2t.*. (transformer): `uumudpt_prompt_learner.
{ctx, deep_prompts, ln_pre, self_attn, ln_post, visual_proj}` → ctx, deep_text, t2v.{ln_pre, block,
ln_post, proj}; `image_encoder.visual_ctx_{ln_intra_pre, self_attn, ln_intra_post, text_proj}` →
v2t.{ln_pre, block, ln_post, proj}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import Tensor, nn

from .base import LearnerConfig, PassState, PromptLearner, TrainPreset, check
from .prompts import ContextLayout, init_phrase_words, normal_, random_layout, replace_slots, replace_vision
from .registry import register_learner

FUSIONS = ("linear", "transformer")


@dataclass(frozen=True)
class MuDPTConfig(LearnerConfig):
    n_ctx: int = 2  # n prompt tokens per layer and tower (official 2 or 4)
    ctx_init: str = "a photo of a"  # its first n words init T_0 and are the whole prefix; "" = random
    depth: int | None = None  # D: prompts at blocks 0..D-1; None = official 9 of 12 blocks, scaled to the model
    fusion: str = "linear"  # "linear" (released MuDPT) | "transformer" (released UUMuDPT)

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.depth is None or self.depth >= 1, f"depth must be ≥ 1, got {self.depth}")
        check(self.fusion in FUSIONS, f"fusion must be one of {FUSIONS}, got {self.fusion!r}")


class PromptTransform(nn.Module):
    """LN → one pre-LN transformer block over the n tokens of each layer → LN → Linear.
    (D, n, width) → (D, n, out); layers are the batch, attention runs across a layer's n tokens."""

    def __init__(self, width: int, heads: int, out: int):
        super().__init__()
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.block = ResidualAttentionBlock(width, heads, mlp_ratio=4.0, act_layer=QuickGELU)
        self.proj = nn.Linear(width, out)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.ln_post(self.block(self.ln_pre(x))))  # (D, n, out)


@register_learner
class MuDPT(PromptLearner):
    """Independent deep prompts in both towers, fused bi-directionally at every prompted layer.
    images (B, 3, H, W) → logits (B, C)."""

    name = "mudpt"
    config_class = MuDPTConfig
    preset = TrainPreset(lr=0.0025, batch_size=4, epochs=10)
    depth_fields = {"depth": (9, "both")}
    has_vision_prompts = True
    couples_towers = True  # bi-directional fusion of the prompts at every prompted layer

    def __init__(self, clip, classnames, config: MuDPTConfig):
        super().__init__(clip, classnames, config)  # resolves depth=None against the model
        config = self.config
        n, d, dt, dv = config.n_ctx, config.depth, clip.text_width, clip.vision_width
        if config.ctx_init:  # the first n words are the whole prefix; the rest of the phrase is dropped
            words, _ = init_phrase_words(clip, config.ctx_init, n)
            layout = ContextLayout("{ctx} {}.", (n,), tuple(words), True)
        else:
            layout = random_layout("{ctx} {}.", [n])
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, n, dt)  # T_0 (n, Dt)
        self.deep_text = normal_(d - 1, n, dt)  # T_1..T_{D-1} (D-1, n, Dt)
        self.vision_ctx = normal_(n, dv)  # V_0 (n, Dv)
        self.deep_vision = normal_(d - 1, n, dv)  # V_1..V_{D-1} (D-1, n, Dv)
        if config.fusion == "linear":
            self.embed_proj = nn.Linear(dt, dv)  # layer 0, text → vision
            self.t2v, self.v2t = nn.Linear(dt, dv), nn.Linear(dv, dt)  # shared by layers 1..D-1
        else:
            self.t2v = PromptTransform(dt, clip.text_heads, dv)
            self.v2t = PromptTransform(dv, clip.vision_heads, dt)

    def begin_pass(self) -> PassState:
        """Both towers' fused prompts: P_t^1..P_t^{D-1} (D-1, n, Dt) and P_v^0..P_v^{D-1} (D, n, Dv)."""
        text = self.deep_text + self.v2t(self.deep_vision)  # (D-1, n, Dt)
        if self.config.fusion == "linear":
            first = self.vision_ctx + self.embed_proj(self.ctx)  # (n, Dv)
            vision = torch.cat([first[None], self.deep_vision + self.t2v(self.deep_text)])  # (D, n, Dv)
        else:
            both = torch.cat([self.ctx[None], self.deep_text])  # (D, n, Dt)
            vision = torch.cat([self.vision_ctx[None], self.deep_vision]) + self.t2v(both)  # (D, n, Dv)
        return {"deep_text": text, "vision": vision}

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return state["vision"][0]  # P_v^0 (n, Dv)

    def layer(self, i, text, vision, state):
        if 1 <= i < self.config.depth:
            if text is not None:
                text = replace_slots(text, self.prompts.slots, state["deep_text"][i - 1])  # (C, L', Dt)
            if vision is not None:
                vision = replace_vision(vision, state["vision"][i], self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        linear = self.config.fusion == "linear"
        text = "mudpt_prompt_learner." if linear else "uumudpt_prompt_learner."
        names = {
            text + "ctx": "ctx",
            text + "deep_prompts": "deep_text",
            "image_encoder.visual_ctx": "vision_ctx",
            "image_encoder.visual_ctx_deep_prompts": "deep_vision",
        }
        if linear:
            modules = {
                text + "embed_projection": "embed_proj",
                text + "deep_projections": "t2v",
                "image_encoder.visual_ctx_deep_projections": "v2t",
            }
        else:
            modules = {
                text + "ln_pre": "t2v.ln_pre",
                text + "self_attn": "t2v.block",
                text + "ln_post": "t2v.ln_post",
                text + "visual_proj": "t2v.proj",
                "image_encoder.visual_ctx_ln_intra_pre": "v2t.ln_pre",
                "image_encoder.visual_ctx_self_attn": "v2t.block",
                "image_encoder.visual_ctx_ln_intra_post": "v2t.ln_post",
                "image_encoder.visual_ctx_text_proj": "v2t.proj",
            }
        for official, ours in modules.items():
            for key, _ in self.get_submodule(ours).named_parameters():
                names[f"{official}.{key}"] = f"{ours}.{key}"
        return names
