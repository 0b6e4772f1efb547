"""MAP-DAFE — Modal-Aware Prompt with Deep Adaptive Feature Enhancement (abstract only: no paper text and
no released code exist). This is the first public implementation, our design from the abstract's claims
(docs/methods.md §10); every choice below is ours and stays visible as an option.

    T_0 = [SOS, "a photo of a", class_c, ".", p_1..p_nt, EOT] + pos     text prompts P^t_0 (n_t, Dt) after the template
    V_0 = ln_pre([cls; patches] + pos ++ P^v_0)                          vision prompts P^v_0 (n_v, Dv) at the end
    per tower, before block l, 1 ≤ l ≤ J-1 (O = block l-1 output at the tower's prompt slots):
        X_l = P_l + g_l ⊙ φ_l(O)          φ_l = LN → Linear(d → d/r) → GELU → Linear(d/r → d)     (DAFE)
        prompt slots ← X_l                 (N, n, d): per class (text) / per image (vision)
    blocks J.. carry the prompts.

Modality-aware: separate text and vision prompt sets, no shared projection. Text prompts follow the
template, so under the causal mask they read the whole template (class information) while the template
never reads them (its hidden states stay zero-shot CLIP's): unidirectional; EOT reads both. Vision
prompts sit with the patches under full attention: bidirectional, they adjust the image features. DAFE
mixes task-level (P_l, shared) and instance-level (O, per class / image) information; it needs only the
same tower's previous output (no lockstep), so text features are cached per evaluation.
Gates (`gate`): "channel" g_l ∈ R^d (default); "input" g = σ(W_l · mean_n(O) + b_l), W_l = 0 and
σ(b_l) = gate_init at start; "convex" X = (1 − α) P + α φ(O), α = σ(a_l), σ(a_l) = gate_init at start.
gate_init = 0.01, not 0: with g = 0 exactly the start is plain deep prompting but φ receives no
gradient until g has moved (φ is dead for the first step); at 0.01 every tensor learns from step 0 and
the start stays close to deep prompting. gate="channel", gate_init=0 gives the exact zero-gate start.
All prompts ~ N(0, 0.02²) (no word init: the template already carries the words).
Defaults: n_t = n_v = 4, J = 9, r = 16, batch 4, lr 0.0035, 5 epochs (MaPLe's recipe).
Trainable (ViT-B/16, defaults): 939,648 = prompts 9·4·(512 + 768) + 8 DAFE·(34,848 text + 76,848 vision);
gate "input" 7,755,392 (a d × d gate Linear per layer and tower), "convex" 929,424.
Names: no official checkpoints exist; `official_names()` is the identity on our own names
(`ctx` = P^t_0, `deep_text.{l-1}` = P^t_l, `text_dafe.{l-1}.phi.{0,1,3}.*`, `text_dafe.{l-1}.gate[.*]`;
`vision_ctx`, `deep_vision.{l-1}`, `vision_dafe.{l-1}.*` for the image tower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import (
    CTX,
    deep_prompts,
    gather_slots,
    normal_,
    random_layout,
    replace_slots,
    replace_vision,
    vision_slots,
)
from .registry import register_learner

GATES = ("channel", "input", "convex")


@dataclass(frozen=True)
class MAPDAFEConfig(LearnerConfig):
    n_ctx_text: int = 4  # n_t text prompts after the template (our design)
    n_ctx_vision: int = 4  # n_v vision prompts appended to the patches (our design)
    depth: int | None = None  # J: fresh prompts P_0..P_{J-1}, DAFE before blocks 1..J-1 (MaPLe's depth);
    # None = official 9 of 12 blocks, scaled to the model
    reduction: int = 16  # r: φ's bottleneck d → d/r
    gate: str = "channel"  # "channel" | "input" | "convex" (see the module docstring)
    gate_init: float = 0.01  # starting gate value g (channel), σ(b) (input) or α (convex)
    template: str = "a photo of a {}."  # the general template the text prompts read (abstract)

    def __post_init__(self):
        check(
            self.n_ctx_text >= 1 and self.n_ctx_vision >= 1,
            f"n_ctx_text and n_ctx_vision must be ≥ 1, got {self.n_ctx_text}, {self.n_ctx_vision}",
        )
        check(self.depth is None or self.depth >= 1, f"depth must be ≥ 1, got {self.depth}")
        check(self.reduction >= 1, f"reduction must be ≥ 1, got {self.reduction}")
        check(self.gate in GATES, f"gate must be one of {GATES}, got {self.gate!r}")
        check(
            self.gate == "channel" or 0 < self.gate_init < 1,
            f"gate {self.gate!r} starts at a sigmoid, so gate_init must lie in (0, 1), got {self.gate_init}",
        )
        check(
            "{}" in self.template and CTX not in self.template,
            f"template needs a '{{}}' for the class name and no {CTX}, got {self.template!r}",
        )


class DAFE(nn.Module):
    """Deep adaptive feature enhancement of one layer. p (n, d), o (N, n, d) → X (N, n, d)."""

    def __init__(self, d: int, reduction: int, gate: str, gate_init: float):
        super().__init__()
        h = max(1, d // reduction)
        self.phi = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, h), nn.GELU(), nn.Linear(h, d))
        self.kind = gate
        if gate == "channel":
            self.gate = nn.Parameter(torch.full((d,), float(gate_init)))  # g (d,)
        elif gate == "input":
            self.gate = nn.Linear(d, d)  # g = σ(W mean(O) + b)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, math.log(gate_init / (1 - gate_init)))
        else:
            self.gate = nn.Parameter(torch.tensor(math.log(gate_init / (1 - gate_init))))  # a, α = σ(a)

    def forward(self, p: Tensor, o: Tensor) -> Tensor:
        f = self.phi(o)  # (N, n, d)
        if self.kind == "channel":
            return p + self.gate * f  # (N, n, d)
        if self.kind == "input":
            return p + torch.sigmoid(self.gate(o.mean(1, keepdim=True))) * f  # (N, n, d)
        alpha = torch.sigmoid(self.gate)
        return (1 - alpha) * p + alpha * f  # (N, n, d)


@register_learner
class MAPDAFE(PromptLearner):
    """Modality-specific prompts with DAFE in each tower. images (B, 3, H, W) → logits (B, C)."""

    name = "map_dafe"
    config_class = MAPDAFEConfig
    preset = TrainPreset(lr=0.0035, batch_size=4, epochs=5)
    depth_fields = {"depth": (9, "both")}
    has_vision_prompts = True

    def __init__(self, clip, classnames, config: MAPDAFEConfig):
        super().__init__(clip, classnames, config)
        config = self.config  # depth resolved (and checked against the model) by the base
        nt, nv, dt, dv, j = config.n_ctx_text, config.n_ctx_vision, clip.text_width, clip.vision_width, config.depth
        self.prompts = random_layout(config.template + " " + CTX, [nt]).tokens(clip, self.classnames)
        self.ctx = normal_(nt, dt)  # P^t_0 (n_t, Dt)
        self.deep_text = deep_prompts(j - 1, nt, dt)  # P^t_1..P^t_{J-1}
        self.text_dafe = nn.ModuleList([self._dafe(dt) for _ in range(j - 1)])  # DAFE^t_1..DAFE^t_{J-1}
        self.vision_ctx = normal_(nv, dv)  # P^v_0 (n_v, Dv)
        self.deep_vision = deep_prompts(j - 1, nv, dv)  # P^v_1..P^v_{J-1}
        self.vision_dafe = nn.ModuleList([self._dafe(dv) for _ in range(j - 1)])  # DAFE^v_1..DAFE^v_{J-1}

    def _dafe(self, d: int) -> DAFE:
        return DAFE(d, self.config.reduction, self.config.gate, self.config.gate_init)

    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return self.vision_ctx  # (n_v, Dv)

    def layer(self, i, text, vision, state):
        if 1 <= i < self.config.depth:
            if text is not None:
                slots = self.prompts.slots  # (C, n_t): after each class's template
                x = self.text_dafe[i - 1](self.deep_text[i - 1], gather_slots(text, slots))  # X^t_i (C, n_t, Dt)
                text = replace_slots(text, slots, x)  # (C, L', Dt)
            if vision is not None:
                o = vision_slots(vision, self.config.n_ctx_vision, self.vision_position)  # (B, n_v, Dv)
                x = self.vision_dafe[i - 1](self.deep_vision[i - 1], o)  # X^v_i (B, n_v, Dv)
                vision = replace_vision(vision, x, self.vision_position)  # (B, T, Dv)
        return text, vision

    def official_names(self):
        return {name: name for name, p in self.named_parameters() if p.requires_grad}
