"""DCP — Deeply coupled Cross-modal Prompt learning with CMPA (Liu et al., ACL Findings 2023,
arXiv:2305.17903; released code GingL/CMPA).

    T_0 = [SOS, P_t, class_c, ".", EOT] + pos                          P_t (M, Dt) after SOS
    V_0 = ln_pre([cls; patches] + pos ++ P_v)                          P_v (M, Dv) at the end
    before block i, 1 ≤ i ≤ J (both towers in lockstep; V, T = block i-1 outputs at the slots):
        V̄ = mean_B V, T̄ = mean_C T                                     (fusing "mean")
        V' = V̄ + MHA_v(LN1_v(proj_t2v(T̄)), LN1_v(V̄), LN1_v(V̄));   V' += MLP_v(LN2_v(V'))
        T' = T̄ + MHA_t(LN1_t(proj_v2t(V̄)), LN1_t(T̄), LN1_t(T̄));   T' += MLP_t(LN2_t(T'))
        vision slots ← V' (every image);  text slots ← T' (every class; only if text_writeback)
    blocks J+1.. carry the prompts; MLP = Linear(d → 4d), QuickGELU, Linear(4d → d).

Attention runs over the M prompt tokens; both updates read the old V̄, T̄. Note the depth convention:
replacement before blocks 1..J (the code's counter), not 1..J-1 as in MaPLe.

Behaviour: default = paper (`text_writeback=True`, a mutual exchange). The released code never writes
T' back (it builds the new text sequence into a local variable and drops it), so there the text side
stays shallow CoOp and the 14 text-half tensors get no gradient: `text_writeback=False` reproduces it
exactly. Fusing "mean" pools the vision prompts over the images of the batch, so a prediction depends
on its batch-mates (`conditional = True`; evaluation uses the official test batch 16); "per_sample"
couples each image with its own text prompts (text features (B, C, E), as in CoCoOp — slower).
Official: M = 16 (random init; "a photo of a" only when M ≤ 4), J = 9, fusing mean, one CMPA shared by
all layers, batch 4, lr 0.0035, 20 epochs. Trainable (ViT-B/16, shared, M = 16): 11,048,448.
Heads: the backbone's (12 vision, 8 text for ViT-B/16, as the code's width // 64).
Official names (`CustomCLIP`): `prompt_learner.prompts_text` → `ctx`, `prompt_learner.prompts_visual`
→ `vision_ctx`; `encoder.resblocks.{i}.prompt_attn.<sub>` → `cmpa.0.<ours>` for every i (the shared
module sits under every block; all names are accepted and must agree), or `cmpa.{i-1}` for i = 1..J
with `shared_cmpa=False` (the code also builds unused modules at blocks 0 and J+1..; they are ignored).
<sub> → ours: promt_attention_visual → attn_v, ln_pa_{1,2}_visual → ln{1,2}_v, mlp_pa_visual → mlp_v,
proj_t2v, promt_attention_text → attn_t, ln_pa_{1,2}_text → ln{1,2}_t, mlp_pa_text → mlp_t, proj_v2t.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from open_clip.transformer import QuickGELU
from torch import Tensor, nn

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import deep_text_layout, gather_slots, normal_, replace_slots, replace_vision, vision_slots
from .registry import register_learner


@dataclass(frozen=True)
class DCPConfig(LearnerConfig):
    n_ctx: int = 16  # M prompt tokens per tower (official 16)
    ctx_init: str = "a photo of a"  # word init of the text prompts, used only when n_ctx ≤ 4 (official)
    depth: int | None = None  # J: CMPA before blocks 1..J; None = official 9 of 12 blocks, scaled to the model
    fusing: str = "mean"  # "mean" (official: pool over the batch) | "per_sample" (per image)
    shared_cmpa: bool = True  # one CMPA for all layers (official PS=True) or one per layer
    text_writeback: bool = True  # paper: T' replaces the text slots; False = released code (text shallow)

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.depth is None or self.depth >= 1, f"depth must be ≥ 1, got {self.depth}")
        check(self.fusing in ("mean", "per_sample"), f"fusing must be 'mean' or 'per_sample', got {self.fusing!r}")


def mlp(d: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(c_fc=nn.Linear(d, 4 * d), gelu=QuickGELU(), c_proj=nn.Linear(4 * d, d)))


class CMPA(nn.Module):
    """Cross-modal prompt attention. v (G, M, Dv), t (G, M, Dt) → v' (G, M, Dv), t' (G, M, Dt) or None.

    Set `record` to a dict to collect the attention weights of each call (G, heads, M, M) under
    "vision" / "text" (mmprompt_lab.analysis.attention.recording); None (default) records nothing.
    Both are recorded with or without text write-back: the released code computes the text update and
    drops it, so with `text=False` its attention is computed for the record only (no gradient, no output).
    """

    record: dict | None = None

    def __init__(self, dv: int, heads_v: int, dt: int, heads_t: int):
        super().__init__()  # creation order as in the released PromptAttention
        self.attn_v, self.ln1_v = nn.MultiheadAttention(dv, heads_v, batch_first=True), nn.LayerNorm(dv)
        self.mlp_v, self.ln2_v = mlp(dv), nn.LayerNorm(dv)
        self.proj_v2t, self.proj_t2v = nn.Linear(dv, dt), nn.Linear(dt, dv)
        self.attn_t, self.ln1_t = nn.MultiheadAttention(dt, heads_t, batch_first=True), nn.LayerNorm(dt)
        self.mlp_t, self.ln2_t = mlp(dt), nn.LayerNorm(dt)

    def forward(self, v: Tensor, t: Tensor, text: bool = True) -> tuple[Tensor, Tensor | None]:
        q, kv = self.ln1_v(self.proj_t2v(t)), self.ln1_v(v)  # (G, M, Dv)
        v2 = v + self._attend(self.attn_v, q, kv, "vision")  # (G, M, Dv)
        v2 = v2 + self.mlp_v(self.ln2_v(v2))  # (G, M, Dv)
        if not text:
            if self.record is not None:  # what the released code computes and drops: recorded, not returned
                with torch.no_grad():
                    self._attend(self.attn_t, self.ln1_t(self.proj_v2t(v)), self.ln1_t(t), "text")
            return v2, None
        q, kv = self.ln1_t(self.proj_v2t(v)), self.ln1_t(t)  # (G, M, Dt)
        t2 = t + self._attend(self.attn_t, q, kv, "text")  # (G, M, Dt)
        return v2, t2 + self.mlp_t(self.ln2_t(t2))  # (G, M, Dv), (G, M, Dt)

    def _attend(self, attn: nn.MultiheadAttention, q: Tensor, kv: Tensor, key: str) -> Tensor:
        if self.record is None:
            return attn(q, kv, kv, need_weights=False)[0]
        out, weights = attn(q, kv, kv, need_weights=True, average_attn_weights=False)
        self.record.setdefault(key, []).append(weights.detach())  # (G, heads, M, M)
        return out


@register_learner
class DCP(PromptLearner):
    """Layer-0 prompts in both towers, re-made before blocks 1..J by CMPA from both towers' outputs.
    images (B, 3, H, W) → logits (B, C); needs whole batches (`encode`), never text alone."""

    name = "dcp"
    config_class = DCPConfig
    preset = TrainPreset(lr=0.0035, batch_size=4, epochs=20, eval_batch_size=16)
    conditional = True  # "mean" fusing couples a batch; "per_sample" makes text per image
    has_vision_prompts = True
    couples_towers = True  # CMPA, both ways, per layer
    records_cross_attention = True  # CMPA.record
    depth_fields = {"depth": (9, "both")}

    @classmethod
    def depth_limit(cls, field: str, clip) -> int:
        return min(clip.text_depth, clip.vision_depth) - 1  # CMPA runs before blocks 1..J

    def __init__(self, clip, classnames, config: DCPConfig):
        super().__init__(clip, classnames, config)
        config = self.config  # depth resolved and checked against depth_limit by the base
        m, dt, dv = config.n_ctx, clip.text_width, clip.vision_width
        layout = deep_text_layout(clip, m, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, m, dt)  # P_t (M, Dt)
        self.vision_ctx = normal_(m, dv)  # P_v (M, Dv)
        n = 1 if config.shared_cmpa else config.depth
        self.cmpa = nn.ModuleList([CMPA(dv, clip.vision_heads, dt, clip.text_heads) for _ in range(n)])

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return self.vision_ctx  # (M, Dv)

    def encode_image(self, images, state=None, attention=None):
        raise RuntimeError(
            "dcp couples both towers at every prompted layer (CMPA), so its image features "
            "depend on the text prompts' states; call encode(images) or the learner itself"
        )

    def encode(self, images, attention=None):
        """→ image features (B, E), text features (C, E), or (B, C, E) with per_sample + text_writeback."""
        state = self.begin_pass()
        emb, eot = self.text_prompts(state)
        t, mask = self.clip.start_text(emb, eot)  # (C, L', Dt)
        v = self.vision_input(images, state)  # (B, T, Dv)
        per_image = self.config.fusing == "per_sample" and self.config.text_writeback
        reps = v.shape[0] if per_image else 1
        t, v = self.clip.run(t.repeat(reps, 1, 1), v, self.hook(state), text_mask=mask, attention=attention)
        text = self.clip.pool_text(t, eot.repeat(reps))  # (R·C, E)
        return self.clip.pool_image(v), (text.view(reps, -1, text.shape[-1]) if per_image else text)

    def layer(self, i, text, vision, state):
        if not 1 <= i <= self.config.depth:
            return text, vision
        assert text is not None and vision is not None, "dcp steps both towers in lockstep (encode)"
        c, slots, m = len(self.classnames), self.prompts.slots[:1], self.config.n_ctx
        t = gather_slots(text, slots)  # (R·C, M, Dt), R = 1 or B
        t = t.view(-1, c, m, t.shape[-1]).mean(1)  # (R, M, Dt)
        v = vision_slots(vision, m, self.vision_position)  # (B, M, Dv)
        v = v.mean(0, keepdim=True) if self.config.fusing == "mean" else v  # (G, M, Dv), G = 1 or B
        cmpa = self.cmpa[0 if self.config.shared_cmpa else i - 1]
        v2, t2 = cmpa(v, t.expand(v.shape[0], -1, -1), text=self.config.text_writeback)  # (G, M, ·)
        vision = replace_vision(vision, v2.expand(vision.shape[0], -1, -1), self.vision_position)  # (B, T, Dv)
        if t2 is not None:  # G = R here
            text = replace_slots(text, slots, t2.repeat_interleave(c, dim=0))  # (R·C, L', Dt)
        return text, vision

    def official_names(self):
        official = {
            "attn_v": "promt_attention_visual",
            "ln1_v": "ln_pa_1_visual",
            "ln2_v": "ln_pa_2_visual",
            "mlp_v": "mlp_pa_visual",
            "proj_t2v": "proj_t2v",
            "attn_t": "promt_attention_text",
            "ln1_t": "ln_pa_1_text",
            "ln2_t": "ln_pa_2_text",
            "mlp_t": "mlp_pa_text",
            "proj_v2t": "proj_v2t",
        }
        names = {"prompt_learner.prompts_text": "ctx", "prompt_learner.prompts_visual": "vision_ctx"}
        blocks = (
            range(max(self.clip.text_depth, self.clip.vision_depth))
            if self.config.shared_cmpa
            else range(1, self.config.depth + 1)
        )
        for i in blocks:
            k = 0 if self.config.shared_cmpa else i - 1
            for name, _ in self.cmpa[k].named_parameters():
                sub, rest = name.split(".", 1)
                names[f"encoder.resblocks.{i}.prompt_attn.{official[sub]}.{rest}"] = f"cmpa.{k}.{name}"
        return names
