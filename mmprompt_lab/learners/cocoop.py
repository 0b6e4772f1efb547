"""CoCoOp — Conditional Context Optimization (Zhou et al., "Conditional Prompt Learning for
Vision-Language Models", CVPR 2022, arXiv:2203.05557; official code KaiyangZhou/CoOp, trainer
`CoCoOp`, identical in muzairkhattak/multimodal-prompt-learning).

    f_b   = norm(f(x_b))                                             (B, E) frozen image tower
    π_b   = h(f_b),  h = Linear(E → E/16) → ReLU → Linear(E/16 → Dt)  (B, Dt) meta-net
    ctx_b = ctx + π_b                                                (B, M, Dt) broadcast over M tokens
    t_bc  = [SOS, ctx_b, class_c, ".", EOT]                          one text pass over B·C prompts
    logits_bc = exp(logit_scale) · f_b · norm(g(t_bc))               (B, C)

Official base-to-novel (configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml): ctx_init
"a photo of a" (M = 4, word init), batch 1, lr 0.002, 10 epochs; random init N(0, 0.02²) when
ctx_init is empty. The meta-net output width is the text width Dt (`ctx_dim` in the official code;
= E on ViT-B/16) and it keeps PyTorch's default Linear init. Trainable (ViT-B/16): 4·512 +
(512·32 + 32) + (32·512 + 512) = 35,360.
Official names: `prompt_learner.ctx` → `ctx`; `prompt_learner.meta_net.linear{1,2}.{weight,bias}`
→ `meta_net.linear{1,2}.{weight,bias}`.
Deviations: M counts the phrase's tokens, not its space-separated words (equal for one-token
words such as "a photo of a"); the official loop runs the text tower once per image; here the B·C prompts are one
batched pass (same maths). Memory grows with B·C: evaluate with smaller batches for many classes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from .base import LearnerConfig, PromptLearner, TrainPreset, check
from .prompts import coop_layout
from .registry import register_learner


@dataclass(frozen=True)
class CoCoOpConfig(LearnerConfig):
    n_ctx: int = 4  # M context tokens when ctx_init is empty (with ctx_init: M = its token count)
    ctx_init: str = "a photo of a"  # word-init phrase (official CTX_INIT); "" = random init
    init_std: float = 0.02  # std of the random init

    def __post_init__(self):
        check(self.n_ctx >= 1, f"n_ctx must be ≥ 1, got {self.n_ctx}")
        check(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")


@register_learner
class CoCoOp(PromptLearner):
    """Image-conditional text context. images (B, 3, H, W) → logits (B, C); text features (B, C, E)."""

    name = "cocoop"
    config_class = CoCoOpConfig
    preset = TrainPreset(lr=0.002, batch_size=1, epochs=10)
    conditional = True
    image_conditioned_text = True
    couples_towers = True  # image → text, per image

    def __init__(self, clip, classnames, config: CoCoOpConfig):
        super().__init__(clip, classnames, config)
        e, dt = clip.embed_dim, clip.text_width
        check(e >= 16, f"the meta-net's hidden width is E/16; this model's E = {e} is below 16")
        layout = coop_layout(clip, "end", config.n_ctx, config.ctx_init)
        self.prompts = layout.tokens(clip, self.classnames)
        self.ctx = layout.context(self.prompts, layout.runs[0], dt, std=config.init_std)  # (M, Dt)
        self.meta_net = nn.Sequential(
            OrderedDict([("linear1", nn.Linear(e, e // 16)), ("relu", nn.ReLU()), ("linear2", nn.Linear(e // 16, dt))])
        )

    def text_prompts(self, state):
        raise RuntimeError("cocoop's text prompts depend on the images; call the learner or encode(images)")

    def encode(self, images, attention=None):
        """→ image features (B, E), per-image text features (B, C, E)."""
        image_features = self.encode_image(images, attention=attention)  # (B, E), frozen image tower
        pi = self.meta_net(F.normalize(image_features, dim=-1))  # (B, Dt)
        ctx = self.ctx + pi[:, None]  # (B, M, Dt)
        b, c = ctx.shape[0], len(self.classnames)
        emb = self.prompts.assemble(ctx.repeat_interleave(c, dim=0))  # (B·C, L, Dt), image-major
        eot = self.prompts.eot.repeat(b)  # (B·C,)
        t, mask = self.clip.start_text(emb, eot)  # (B·C, L', Dt)
        t, _ = self.clip.run(t, None, text_mask=mask, attention=attention)
        return image_features, self.clip.pool_text(t, eot).view(b, c, -1)  # (B, E), (B, C, E)

    def official_names(self):
        names = {"prompt_learner.ctx": "ctx"}
        for k in ("linear1", "linear2"):
            for t in ("weight", "bias"):
                names[f"prompt_learner.meta_net.{k}.{t}"] = f"meta_net.{k}.{t}"
        return names
