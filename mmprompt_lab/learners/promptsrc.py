"""PromptSRC — Prompting with Self-regulating Constraints (Khattak et al., "Self-regulating Prompts:
Foundational Model Adaptation without Forgetting", ICCV 2023, arXiv:2307.06948; released code
muzairkhattak/PromptSRC, trainer `PromptSRC`).

Prompts: independent deep prompts in both towers, as IVLP (docs/methods.md §5, §12):
    T_0 = [SOS, P_0, class_c, ".", EOT] + pos        P_0 = ctx (Mt, Dt), word init "a photo of a" (Mt = 4)
    before text block i, 1 ≤ i ≤ Jt-1:    T[:, 1:1+Mt] = P_i
    V_0 = ln_pre([cls; patches] + pos ++ V_0)        V_0 (Nv, Dv) ~ N(0, 0.02²)
    before vision block i, 1 ≤ i ≤ Jv-1:  V[:, -Nv:] = V_i
    f̂ = norm(f(x)) (B, E)    ŵ = norm(g(T)) (C, E)    z = s · f̂ ŵᵀ (B, C)
Frozen references (no gradient; unprompted towers):
    f̂⁰ = norm(f⁰(x))    ŵ⁰_c = norm((1/K) Σ_k g⁰(template_k(c)))  (mean of UNnormalised features)    z⁰ = s · f̂⁰ ŵ⁰ᵀ
Self-regulating constraints (the released code's forms):
    L_text   = λ_t · (1/(C·E)) Σ |ŵ − ŵ⁰|                                λ_t = 25 (TEXT_LOSS_WEIGHT)
    L_image  = λ_v · (1/(B·E)) Σ |f̂ − f̂⁰|                                λ_v = 10 (IMAGE_LOSS_WEIGHT)
    L_logits = (1/(B·C)) Σ_b Σ_c p⁰ (log p⁰ − log p)   p = softmax(z), p⁰ = softmax(z⁰): KL(p⁰ ‖ p),
               temperature 1, summed and divided by the number of logits
    loss     = CE(z, y) + L_text + L_image + L_logits
Gaussian prompt aggregation (GPA), after epoch e = 1..N (`on_epoch_end`):
    θ̄ ← θ̄ + w_e · θ_e     w_e = g(e) / Σ_k g(k),  g = normal pdf N(μ, σ²)
    after epoch N: θ ← θ̄ (what is saved and evaluated). θ̄ is the persistent buffer `gpa_sum`, flat
    in `trainable_parameters()` order, so an epoch checkpoint restores it and a resumed run ends equal.

Official (base-to-novel, vit_b16_c2_ep20_batch4_4+4ctx): Mt = Nv = 4, Jt = Jv = 9, ctx_init
"a photo of a", λ_t = 25, λ_v = 10, μ = 15, σ = 1, SGD lr 0.0025, batch 4, 20 epochs, cosine after 1
warm-up epoch at 1e-5; K = the 60 ImageNet templates (`templates.IMAGENET_TEMPLATES`).
Trainable (ViT-B/16): text 9·4·512 = 18,432 + vision 9·4·768 = 27,648 = 46,080; ToyCLIP (3/3): 1,920.
Official names (as IVLP): `prompt_learner.ctx` → `ctx`; `text_encoder.transformer.resblocks.{i}.VPT_shallow`
→ `deep_text.{i-1}`; `image_encoder.VPT` → `vision_ctx`; `image_encoder.transformer.resblocks.{i}.VPT_shallow`
→ `deep_vision.{i-1}`. The frozen copy in released checkpoints (`prompt_learner.ZS_image_encoder.*`) is ignored.
Deliberate deviations:
- Template ensemble `ensemble="auto"`: the 60 ImageNet templates, except on ToyCLIP, whose text tower
  only learned ToyWorld's captions: there ŵ⁰ averages the dataset's own template (`templates`, passed
  by the pipeline) and ToyWorld's caption templates (docs/methods.md §12). The resolved name is stored
  in the config. "imagenet", "toyworld" and "own" (only `templates`) choose explicitly.
- GPA for N ≠ 20 epochs: μ, σ left at None scale with N, μ = 15·N/20, σ = N/20 (exactly 15, 1 at
  N = 20). The released 50-epoch few-shot config instead uses (30, 30) or (45, 5) per dataset: pass
  gpa_mean/gpa_std. Only the prompts are averaged (the released code averages the whole state dict,
  whose frozen part does not change).
- Depths left at None are 9 of 12 blocks scaled to the model (9/9 on ViT-B/16, 3/3 on ToyCLIP).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import deep_prompts, deep_text_layout, normal_, replace_slots, replace_vision
from .registry import register_learner
from .templates import ENSEMBLES

ENSEMBLE_CHOICES = ("auto", *ENSEMBLES, "own")


@dataclass(frozen=True)
class PromptSRCConfig(LearnerConfig):
    n_ctx_text: int = 4  # Mt text prompt tokens per layer (official N_CTX_TEXT 4)
    n_ctx_vision: int = 4  # Nv vision prompt tokens per layer (official N_CTX_VISION 4)
    text_depth: int | None = None  # Jt: text prompts at blocks 0..Jt-1; None = official 9 of 12, scaled
    vision_depth: int | None = None  # Jv: vision prompts at blocks 0..Jv-1; None = official 9 of 12, scaled
    ctx_init: str = "a photo of a"  # word init of P_0 when n_ctx_text ≤ 4 (official); "" = random
    text_loss_weight: float = 25.0  # λ_t of L_text (official TEXT_LOSS_WEIGHT)
    image_loss_weight: float = 10.0  # λ_v of L_image (official IMAGE_LOSS_WEIGHT)
    templates: tuple[str, ...] = ("a photo of a {}.",)  # the dataset's own template (the pipeline passes it);
    # part of ŵ⁰ in the "toyworld" and "own" ensembles
    ensemble: str = "auto"  # templates of ŵ⁰: "auto" | "imagenet" (official 60) | "toyworld" | "own"
    gpa: bool = True  # Gaussian prompt aggregation over epochs
    gpa_mean: float | None = None  # μ of GPA in epochs (1-based); None = 15·N/20 (official 15 at N = 20)
    gpa_std: float | None = None  # σ of GPA; None = N/20 (official 1 at N = 20)

    def __post_init__(self):
        templates = (self.templates,) if isinstance(self.templates, str) else tuple(self.templates)
        object.__setattr__(self, "templates", templates)
        check(
            self.n_ctx_text >= 1 and self.n_ctx_vision >= 1,
            f"n_ctx_text and n_ctx_vision must be ≥ 1, got {self.n_ctx_text}, {self.n_ctx_vision}",
        )
        check(self.text_depth is None or self.text_depth >= 1, f"text_depth must be ≥ 1, got {self.text_depth}")
        check(self.vision_depth is None or self.vision_depth >= 1, f"vision_depth must be ≥ 1, got {self.vision_depth}")
        check(
            self.text_loss_weight >= 0 and self.image_loss_weight >= 0,
            "text_loss_weight and "
            f"image_loss_weight must be ≥ 0, got {self.text_loss_weight}, {self.image_loss_weight}",
        )
        check(
            len(templates) > 0 and all("{}" in t for t in templates),
            f"templates needs at least one template, each with '{{}}' for the class name: {templates}",
        )
        check(
            self.ensemble in ENSEMBLE_CHOICES,
            f"ensemble must be one of {list(ENSEMBLE_CHOICES)}, got {self.ensemble!r}",
        )
        check(self.gpa_std is None or self.gpa_std > 0, f"gpa_std must be > 0, got {self.gpa_std}")


def gpa_weights(epochs: int, mean: float, std: float) -> list[float]:
    """w_e = g(e) / Σ_k g(k) for e = 1..epochs, g the N(mean, std²) pdf (normalised in log space, so a
    narrow σ never divides by zero)."""
    logs = [-0.5 * ((e - mean) / std) ** 2 for e in range(1, epochs + 1)]
    g = [math.exp(v - max(logs)) for v in logs]
    return [v / sum(g) for v in g]


@register_learner
class PromptSRC(PromptLearner):
    """Independent deep V-L prompts, self-regulated toward the frozen CLIP and averaged over epochs.
    images (B, 3, H, W) → logits (B, C)."""

    name = "promptsrc"
    config_class = PromptSRCConfig
    preset = TrainPreset(lr=0.0025, batch_size=4, epochs=20)
    depth_fields = {"text_depth": (9, "text"), "vision_depth": (9, "vision")}
    has_vision_prompts = True
    extra_loss_terms = True

    def __init__(self, clip, classnames, config: PromptSRCConfig):
        super().__init__(clip, classnames, config)
        if self.config.ensemble == "auto":  # recorded resolved, like the depths
            ensemble = "toyworld" if clip.name == "toyclip" else "imagenet"
            self.config = dataclasses.replace(self.config, ensemble=ensemble)
        config = self.config
        m, dt, nv, dv = config.n_ctx_text, clip.text_width, config.n_ctx_vision, clip.vision_width
        layout = deep_text_layout(clip, m, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, m, dt)  # P_0 (Mt, Dt)
        self.deep_text = deep_prompts(config.text_depth - 1, m, dt)  # P_1..P_{Jt-1}
        self.vision_ctx = normal_(nv, dv)  # V_0 (Nv, Dv)
        self.deep_vision = deep_prompts(config.vision_depth - 1, nv, dv)  # V_1..V_{Jv-1}
        self.register_buffer("gpa_sum", torch.zeros(self.num_trainable()))  # θ̄ (K,), flat
        self.register_buffer("frozen_text", None, persistent=False)  # (C, E) cache of ŵ⁰

    # -- prompts (as IVLP) ----------------------------------------------------------------
    def text_prompts(self, state):
        return self.prompts.assemble(self.ctx), self.prompts.eot  # (C, L, Dt), (C,)

    def vision_prompts(self, state):
        return self.vision_ctx  # (Nv, Dv)

    def layer(self, i, text, vision, state):
        if text is not None and 1 <= i < self.config.text_depth:
            text = replace_slots(text, self.prompts.slots, self.deep_text[i - 1])  # (C, L', Dt)
        if vision is not None and 1 <= i < self.config.vision_depth:
            vision = replace_vision(vision, self.deep_vision[i - 1], self.vision_position)  # (B, T, Dv)
        return text, vision

    def set_classnames(self, classnames):
        super().set_classnames(classnames)
        self.frozen_text = None

    # -- frozen references and the self-regulating constraints ---------------------------
    def ensemble_templates(self) -> tuple[str, ...]:
        """The K templates of ŵ⁰ (config.ensemble, resolved at construction)."""
        own = self.config.templates
        extra = ENSEMBLES.get(self.config.ensemble, ())
        if self.config.ensemble == "imagenet":
            return extra
        return tuple(dict.fromkeys(own + extra))  # own first, no duplicates

    def frozen_text_features(self) -> Tensor:
        """ŵ⁰ (C, E): the normalised mean of the frozen text features over the ensemble; cached per class list."""
        if self.frozen_text is None:
            with torch.no_grad():
                names = [c.replace("_", " ") for c in self.classnames]
                feats = torch.stack(
                    [self.clip.encode_text([t.format(c) for c in names]) for t in self.ensemble_templates()]
                )  # (K, C, E)
                self.frozen_text = F.normalize(feats.mean(0), dim=-1)  # (C, E)
        return self.frozen_text

    def loss_terms(self, images: Tensor, labels: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The weighted terms {"ce", "text", "image", "logits"} (their sum is the loss) and z (B, C)."""
        state = self.begin_pass()
        image_features = self.encode_image(images, state)  # (B, E)
        text_features = self.encode_text(state)  # (C, E), once per step
        z = self.logits(image_features, text_features)  # (B, C)
        f, w = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)  # (B, E), (C, E)
        with torch.no_grad():
            f0 = F.normalize(self.clip.encode_image(images), dim=-1)  # (B, E) unprompted image tower
            w0 = self.frozen_text_features()  # (C, E)
            z0 = self.clip.logit_scale * f0 @ w0.t()  # (B, C)
        kl = F.kl_div(F.log_softmax(z, dim=-1), F.log_softmax(z0, dim=-1), reduction="sum", log_target=True)
        terms = {
            "ce": F.cross_entropy(z, labels),
            "text": self.config.text_loss_weight * F.l1_loss(w, w0),
            "image": self.config.image_loss_weight * F.l1_loss(f, f0),
            "logits": kl / z.numel(),
        }
        return terms, z

    def training_loss(self, images, labels):
        terms, logits = self.loss_terms(images, labels)
        return sum(terms.values()), logits

    # -- Gaussian prompt aggregation --------------------------------------------------------
    def gpa_moments(self, epochs: int) -> tuple[float, float]:
        """(μ, σ) of GPA for an N-epoch run; unset values scale the official (15, 1) of N = 20."""
        mean = self.config.gpa_mean if self.config.gpa_mean is not None else 15 * epochs / 20
        std = self.config.gpa_std if self.config.gpa_std is not None else epochs / 20
        return mean, std

    def on_epoch_end(self, epoch, epochs):
        if not self.config.gpa:
            return
        weight = gpa_weights(epochs, *self.gpa_moments(epochs))[epoch]  # w_e, e = epoch + 1
        params = self.trainable_parameters()
        with torch.no_grad():
            theta = torch.cat([p.reshape(-1) for p in params])  # (K,)
            if epoch == 0:  # a fresh run (a resumed one restores gpa_sum from its checkpoint)
                self.gpa_sum.zero_()
            self.gpa_sum.add_(theta * weight)  # θ̄ += w_e θ_e
            if epoch == epochs - 1:  # θ ← θ̄
                for p, chunk in zip(params, self.gpa_sum.split([p.numel() for p in params]), strict=True):
                    p.copy_(chunk.view_as(p))

    def official_names(self):
        names = {"prompt_learner.ctx": "ctx", "image_encoder.VPT": "vision_ctx"}
        for i in range(1, self.config.text_depth):
            names[f"text_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"deep_text.{i - 1}"
        for i in range(1, self.config.vision_depth):
            names[f"image_encoder.transformer.resblocks.{i}.VPT_shallow"] = f"deep_vision.{i - 1}"
        return names
