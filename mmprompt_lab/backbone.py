"""The frozen CLIP and the one prompted forward every learner shares (DESIGN.md §1).

`FrozenCLIP` wraps an *unmodified* open_clip CLIP and exposes its forward as named steps that reuse
open_clip's own submodules (token/positional embeddings, `ln_pre`, each residual block, `ln_final`,
`ln_post`, projections). `run` steps both towers block by block in lockstep and calls a learner's
hook before each block, so a learner can insert or replace prompt tokens — in one tower or coupled
across both — without forking the model.

    clip = load_clip("toyclip")
    x, mask = clip.start_text(clip.token_embedding(tokens), eot)      # (N, L', Dt), cut after EOT
    v = clip.ln_pre(clip.embed_image(images))                         # (B, 1+P, Dv)
    x, v = clip.run(x, v, hook, text_mask=mask)                        # hook(i, x, v) -> (x, v)
    logits = clip.logit_scale * norm(clip.pool_image(v)) @ norm(clip.pool_text(x, eot)).T
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .seeding import rng_scope

log = logging.getLogger(__name__)

LayerHook = Callable[[int, Optional[Tensor], Optional[Tensor]], tuple]
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class FrozenCLIP(nn.Module):
    """A frozen open_clip CLIP with step-wise access to both towers.

    Attributes read from the model: `text_width` (Dt), `vision_width` (Dv), `embed_dim` (E),
    `text_depth`, `vision_depth`, `text_heads`, `vision_heads`, `context_length` (L),
    `num_patches` (P), `image_size`. Parameters never require grad and the model stays in eval mode.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str, pretrained: str | None = None,
                 mean=OPENAI_MEAN, std=OPENAI_STD):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name, self.pretrained = name, pretrained
        self.mean, self.std = tuple(mean), tuple(std)
        self.text = model.text if hasattr(model, "text") else model  # CLIP or CustomTextCLIP
        self.visual = model.visual
        self._check_supported()
        model.requires_grad_(False)  # frozen once, here, for every learner
        model.eval()

        t, v = self.text.transformer, self.visual.transformer
        self.text_blocks, self.vision_blocks = list(t.resblocks), list(v.resblocks)
        self.text_width, self.vision_width = t.width, v.width
        self.text_depth, self.vision_depth = len(self.text_blocks), len(self.vision_blocks)
        self.text_heads = self.text_blocks[0].attn.num_heads
        self.vision_heads = self.vision_blocks[0].attn.num_heads
        self.context_length = self.text.positional_embedding.shape[0]
        self.num_patches = self.visual.positional_embedding.shape[0] - 1
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        proj = self.text.text_projection
        self.embed_dim = proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]

    @property
    def id(self) -> str:
        """Backbone identity stored in checkpoints, e.g. "toyclip" or "ViT-B-16:openai"."""
        return f"{self.name}:{self.pretrained}" if self.pretrained else self.name

    @property
    def dtype(self) -> torch.dtype:
        return self.text.token_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.text.token_embedding.weight.device

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # BatchNorm stems and dropout stay frozen during prompt learning
        return self

    def _check_supported(self) -> None:
        vis = self.visual
        needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
        missing = [a for a in needed if not hasattr(vis, a)]
        if missing:
            raise ValueError(f"vision tower {type(vis).__name__} is not an open_clip VisionTransformer "
                             f"(missing {missing}); prompt learning needs a ViT image tower")
        if getattr(vis, "attn_pool", None) is not None or getattr(vis, "pool_type", "tok") != "tok":
            raise ValueError("only class-token pooled ViTs are supported (pool_type='tok', no attn_pool)")
        pool = getattr(self.text, "text_pool_type", getattr(self.text, "pool_type", "argmax"))
        if pool != "argmax":
            raise ValueError(f"text pooling {pool!r} is not supported; CLIP text towers pool at EOT (argmax)")

    # ------------------------------------------------------------------ text tower
    def tokenize(self, texts: list[str]) -> Tensor:
        """(N,) strings → (N, L) token ids; a text longer than L raises instead of being cut."""
        ids = [self.tokenizer.encode(t) for t in texts]
        for text, tok in zip(texts, ids):
            if len(tok) + 2 > self.context_length:
                raise ValueError(f"prompt {text!r} has {len(tok) + 2} tokens; this model's context "
                                 f"length is {self.context_length}")
        return self.tokenizer(texts, context_length=self.context_length)

    def token_embedding(self, tokens: Tensor) -> Tensor:
        """(N, L) ids → (N, L, Dt) word embeddings."""
        return self.text.token_embedding(tokens.to(self.device))

    def start_text(self, embeddings: Tensor, eot: Tensor) -> tuple[Tensor, Tensor]:
        """Add positional embeddings and cut after the longest EOT (exact: the mask is causal).

        embeddings (N, L, Dt), eot (N,) → x (N, L', Dt) with L' = max(eot) + 1, mask (L', L').
        """
        length = int(eot.max()) + 1
        x = embeddings[:, :length] + self.text.positional_embedding[:length]  # (N, L', Dt)
        return x, self.text.attn_mask[:length, :length]

    def pool_text(self, x: Tensor, eot: Tensor) -> Tensor:
        """(N, L', Dt) block outputs, (N,) EOT positions → (N, E) text features."""
        x = self.text.ln_final(x[torch.arange(x.shape[0], device=x.device), eot.to(x.device)])  # (N, Dt)
        proj = self.text.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj  # (N, E)

    def encode_text(self, texts: list[str] | Tensor) -> Tensor:
        """Plain CLIP text features (N, E) through the step-wise path (no prompts)."""
        tokens = self.tokenize(texts) if isinstance(texts, list) else texts
        tokens = tokens.to(self.device)
        eot = tokens.argmax(dim=-1)  # EOT has the highest id
        x, mask = self.start_text(self.token_embedding(tokens), eot)
        x, _ = self.run(x, None, text_mask=mask)
        return self.pool_text(x, eot)

    # ------------------------------------------------------------------ vision tower
    def embed_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) preprocessed images → (B, 1+P, Dv) tokens with positions, *before* `ln_pre`."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (self.image_size,) * 2:
            raise ValueError(f"expected images of shape (B, 3, {self.image_size}, {self.image_size}) for "
                             f"{self.id}, got {tuple(images.shape)}; use the model's preprocessing "
                             "(mmprompt_lab.engine.transforms)")
        vis = self.visual
        x = vis.conv1(images.to(device=self.device))  # (B, Dv, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, P, Dv)
        cls = vis.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, Dv)
        return torch.cat([cls, x], dim=1) + vis.positional_embedding.to(x.dtype)  # (B, 1+P, Dv)

    def ln_pre(self, x: Tensor) -> Tensor:
        return self.visual.ln_pre(x)

    def pool_image(self, x: Tensor) -> Tensor:
        """(B, T, Dv) block outputs → (B, E) image features from the class token."""
        x = self.visual.ln_post(x[:, 0])  # (B, Dv)
        return x @ self.visual.proj if self.visual.proj is not None else x  # (B, E)

    def encode_image(self, images: Tensor) -> Tensor:
        """Plain CLIP image features (B, E) through the step-wise path (no prompts)."""
        _, v = self.run(None, self.ln_pre(self.embed_image(images)))
        return self.pool_image(v)

    # ------------------------------------------------------------------ the lockstep runner
    def run(self, text_x: Tensor | None, vision_x: Tensor | None, hook: LayerHook | None = None,
            text_mask: Tensor | None = None, attention: dict | None = None):
        """Step both towers block by block; `hook(i, text_x, vision_x)` runs before block i.

        text_x (N, L', Dt) from `start_text` (or None), vision_x (B, T, Dv) after `ln_pre` (or None).
        If `attention` is a dict, per-layer attention weights (N, heads, L', L') / (B, heads, T, T)
        are appended to `attention["text"]` / `attention["vision"]`.
        Returns the final (text_x, vision_x).
        """
        for i in range(max(self.text_depth, self.vision_depth)):
            if hook is not None:
                text_x, vision_x = hook(i, text_x, vision_x)
            if text_x is not None and i < self.text_depth:
                text_x = _step(self.text_blocks[i], text_x, text_mask, self.text.transformer, attention, "text")
            if vision_x is not None and i < self.vision_depth:
                vision_x = _step(self.vision_blocks[i], vision_x, None, self.visual.transformer, attention, "vision")
        return text_x, vision_x


def _step(block: nn.Module, x: Tensor, mask: Tensor | None, tower: nn.Module, attention: dict | None,
          key: str) -> Tensor:
    """One open_clip residual block on batch-first x, optionally recording its attention weights."""
    batch_first = getattr(tower, "batch_first", True)
    x = x if batch_first else x.transpose(0, 1)
    if attention is not None:
        # open_clip calls MHA with need_weights=False; recompute the weights with the block's own modules
        h = block.ln_1(x)
        m = mask.to(h.dtype) if mask is not None else None
        _, weights = block.attn(h, h, h, need_weights=True, average_attn_weights=False, attn_mask=m)
        attention.setdefault(key, []).append(weights)  # (N, heads, L, L)
    x = block(x, attn_mask=mask)
    return x if batch_first else x.transpose(0, 1)


# ---------------------------------------------------------------------- loading
def load_clip(name: str = "toyclip", pretrained: str | bool | None = None, device: str | None = None,
              precision: str = "fp32") -> FrozenCLIP:
    """Load a frozen CLIP.

    Args:
        name: "toyclip" (the embedded default), any open_clip model name ("ViT-B-16",
            "ViT-B-16-quickgelu", …), or a path to a ToyCLIP safetensors file.
        pretrained: for open_clip names a tag ("openai", read from the local cache — nothing is
            downloaded when HF_HUB_OFFLINE=1) or a local weights file; None = random weights. For
            "toyclip": None/True = the shipped weights, False or "random" = random, or a file path.
        device: "cpu", "cuda", … (default: cuda if available).
        precision: "fp32" (exact; mixed precision is autocast in the engine), "bf16" or "fp16" weights.

    Example:
        >>> clip = load_clip("toyclip")
        >>> clip.model  # the unmodified open_clip CLIP
    """
    import open_clip

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "toyclip" or (name.endswith(".safetensors") and Path(name).expanduser().exists()):
        from .toyclip import create_toyclip

        weights = {None: True, "random": False, "none": False}.get(pretrained, pretrained)
        if name != "toyclip":
            weights = Path(name).expanduser()
        # random-weight backbones come from a fixed seed, so checkpoints on them reload exactly
        with rng_scope(0 if weights is False else None):
            model, tokenizer, pre = create_toyclip(pretrained=weights)
        tag = None if weights is True else ("random" if weights is False else str(weights))
        clip = FrozenCLIP(model, tokenizer, "toyclip", tag, pre["mean"], pre["std"])
    else:
        if name not in open_clip.list_models():
            import difflib

            close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
            raise ValueError(f"unknown CLIP model {name!r}; did you mean {close}? Use 'toyclip' or a "
                             "name from open_clip.list_models()")
        if isinstance(pretrained, str) and not Path(pretrained).expanduser().exists():
            known = open_clip.list_pretrained_tags_by_model(name)
            if pretrained not in known:
                raise ValueError(f"{name!r} has no pretrained tag {pretrained!r} and no such file; tags: {known}")
        try:
            with rng_scope(None if pretrained else 0):
                model = open_clip.create_model(name, pretrained=pretrained or None, precision=precision,
                                               require_pretrained=bool(pretrained))
        except Exception as err:  # network/cache failures: say what to do
            if not pretrained:
                raise
            raise RuntimeError(
                f"could not load weights {pretrained!r} for {name!r}: {err}. This machine must already have "
                "them in the open_clip/Hugging Face cache (download once with network access, e.g. "
                f"open_clip.create_model('{name}', pretrained='{pretrained}')), or pass a local file path "
                "as pretrained=") from err
        pre = getattr(model.visual, "preprocess_cfg", {}) or {}
        if pretrained and os.path.exists(str(pretrained)):
            pretrained = str(Path(pretrained).expanduser().resolve())  # the id names the file
        clip = FrozenCLIP(model, open_clip.get_tokenizer(name), name, pretrained or None,
                          pre.get("mean", OPENAI_MEAN), pre.get("std", OPENAI_STD))
    return clip.to(device)


def normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)
