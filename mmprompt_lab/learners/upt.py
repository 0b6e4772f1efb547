"""UPT — Unified Prompt Tuning ("Unified Vision and Language Prompt Learning", Zang et al.,
arXiv:2210.07225, 2022). Released as the "UPT" setting of the MVLPT prompt learner.

    Z  = [text_pre(ctx) ; vision_pre(V_0..V_{J-1})]              (M + J·M, d)   d = 128·Dt/512, J = vision depth
    Z' = mixer(Z)                                                 one pre-LN block: z + MHA(LN1 z), z + MLP(LN2 z)
    ctx' = text_post(Z'[:M]) ;  V'_l = vision_post(Z'[M:])[l]     (M, Dt), (J, M, Dv)
    t_c = [SOS, ctx'_1..ctx'_{M/2}, class_c, ctx'_{M/2+1}..ctx'_M, ".", EOT]     shallow text
    V   = [cls, V'_0, patches] inserted AFTER ln_pre ;  before block l ≥ 1: slots 1..M ← V'_l

Init: ctx ~ N(0, 0.02²); V ~ U(−v, v), v = sqrt(6 / (3·p² + Dv)) with p the patch size
(image_size // grid; 0.0625 for ViT-B/16); pre/post Linears and the mixer (1 head, MLP d→4d→d,
QuickGELU) keep PyTorch's default init. A pre/post Linear is the identity when the width already
equals d (as in the released code).
Bottleneck: the released d = 128 (PROJECT_DIM) is a quarter of ViT-B/16's 512-wide text tower; here it
is that ratio of the model's text width (d = 128 on ViT-B/16, 16 on ToyCLIP's 64), so the unifying
transformer narrows the prompts on every backbone instead of widening a small one (a fixed 128 made
ToyCLIP's UPT 241,440 parameters, 12× MaPLe's). `bottleneck=` sets d explicitly.
Paper vs code: the released code feeds the mixer (1, 13M, d) to a sequence-first block, so attention
runs over sequences of length 1 — each token attends only to itself (a per-token map, no cross-modal
interaction). Default `attend_across_tokens=True` = the paper (attention over the 13M tokens);
`False` reproduces the released code exactly. The mixer input is always [text; vision], layer-major;
text and vision share M (the script sets COOP.N_CTX = VPT.N_CTX). The mixer runs once per pass
(`begin_pass`) and its output serves both towers.
Official (MVLPT scripts, few-shot): M = 4, batch 32, lr 0.002, 200 epochs; CUT_CONTEXTLEN (exact
here too). Trainable (ViT-B/16): M = 4 → 566,400; M = 16 → 683,136. ToyCLIP (d = 16): 10,384.
Official names (MVLPT `prompt_learner.` prefix optional): `ctx` → ctx; `vpt_embeddings` (1, M, Dv)
→ vision_ctx; `vpt_embeddings_deep` (J−1, M, Dv) → deep_vision; `mvlpt_proj_ctx_coop_{pre,post}` →
text_{pre,post}; `mvlpt_proj_ctx_vpt_{pre,post}` → vision_{pre,post}; `mvlpt_proj.resblocks.0.*`
→ mixer.*.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from .base import LearnerConfig, PassState, PromptLearner, TrainPreset, check
from .prompts import normal_, random_layout, replace_vision, uniform_, xavier_bound
from .registry import register_learner


@dataclass(frozen=True)
class UPTConfig(LearnerConfig):
    n_ctx: int = 4  # M shared prompts per modality / vision layer (official 4)
    # d: width of the unifying transformer; None = 128·Dt/512, the released PROJECT_DIM 128 at ViT-B/16's
    # 512-wide text as a ratio of the model's text width (resolved at build and stored in the config)
    bottleneck: int | None = None
    attend_across_tokens: bool = True  # True = paper (attention over all M + J·M tokens); False = released code
    init_std: float = 0.02  # std of the text context init

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.bottleneck is None or self.bottleneck >= 1, f"bottleneck must be ≥ 1, got {self.bottleneck}")


OFFICIAL_BOTTLENECK, OFFICIAL_TEXT_WIDTH = 128, 512  # MVLPT PROJECT_DIM on ViT-B/16's text width


def bottleneck_width(text_width: int) -> int:
    """d = 128 · Dt / 512, at least 1: the released width as a ratio of the model's text width."""
    return max(1, round(OFFICIAL_BOTTLENECK * text_width / OFFICIAL_TEXT_WIDTH))


def _linear(d_in: int, d_out: int) -> nn.Module:
    return nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out)


@register_learner
class UPT(PromptLearner):
    """Shared prompts → one small transformer → text context + deep visual prompts.
    images (B, 3, H, W) → logits (B, C)."""

    name = "upt"
    config_class = UPTConfig
    preset = TrainPreset(lr=0.002, batch_size=32, epochs=200)
    vision_position = "after_cls"
    vision_before_ln_pre = False
    has_vision_prompts = True
    couples_towers = True  # one mixer over both towers' prompts

    def __init__(self, clip, classnames, config: UPTConfig):
        super().__init__(clip, classnames, config)
        if config.bottleneck is None:  # recorded in the config, so a checkpoint says which d ran
            self.config = dataclasses.replace(self.config, bottleneck=bottleneck_width(clip.text_width))
        m, d, dt, dv, j = config.n_ctx, self.config.bottleneck, clip.text_width, clip.vision_width, clip.vision_depth
        self.prompts = random_layout("{ctx} {} {ctx}.", [m // 2, m - m // 2]).tokens(clip, self.classnames)
        patch = clip.image_size // math.isqrt(clip.num_patches)  # robust to conv stems
        bound = xavier_bound(3 * patch * patch, dv)
        self.vision_ctx = uniform_(1, m, dv, bound=bound)  # V_0 (1, M, Dv)
        self.deep_vision = uniform_(j - 1, m, dv, bound=bound)  # V_1..V_{J-1} (J-1, M, Dv)
        self.ctx = normal_(m, dt, std=config.init_std)  # (M, Dt)
        self.text_pre, self.text_post = _linear(dt, d), _linear(d, dt)
        self.vision_pre, self.vision_post = _linear(dv, d), _linear(d, dv)
        self.mixer = ResidualAttentionBlock(d, 1, mlp_ratio=4.0, act_layer=QuickGELU)

    def mix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass of the unifying transformer → ctx' (M, Dt), V' (J, M, Dv)."""
        m = self.config.n_ctx
        v = torch.cat([self.vision_ctx, self.deep_vision])  # (J, M, Dv)
        z = torch.cat([self.text_pre(self.ctx), self.vision_pre(v.flatten(0, 1))])  # (M + J·M, d)
        # batch-first block: (1, N, d) attends across the N tokens; (N, 1, d) = N sequences of length 1
        z = self.mixer(z.unsqueeze(0) if self.config.attend_across_tokens else z.unsqueeze(1)).flatten(0, 1)  # (N, d)
        return self.text_post(z[:m]), self.vision_post(z[m:]).reshape(v.shape)  # (M, Dt), (J, M, Dv)

    def begin_pass(self) -> PassState:
        ctx, vision = self.mix()  # once per pass, for both towers
        return {"ctx": ctx, "vision": vision}  # (M, Dt), (J, M, Dv)

    def text_prompts(self, state):
        return self.prompts.assemble(state["ctx"]), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return state["vision"][0]  # V'_0 (M, Dv)

    def layer(self, i, text, vision, state):
        if vision is not None and 1 <= i < self.clip.vision_depth:
            vision = replace_vision(vision, state["vision"][i], self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        names = {
            "prompt_learner.ctx": "ctx",
            "prompt_learner.vpt_embeddings": "vision_ctx",
            "prompt_learner.vpt_embeddings_deep": "deep_vision",
        }
        modules = {
            "mvlpt_proj_ctx_coop_pre": "text_pre",
            "mvlpt_proj_ctx_coop_post": "text_post",
            "mvlpt_proj_ctx_vpt_pre": "vision_pre",
            "mvlpt_proj_ctx_vpt_post": "vision_post",
            "mvlpt_proj.resblocks.0": "mixer",
        }
        for official, ours in modules.items():
            for key, _ in getattr(self, ours).named_parameters():
                names[f"prompt_learner.{official}.{key}"] = f"{ours}.{key}"
        return names
