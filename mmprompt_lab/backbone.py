"""The frozen CLIP and the one prompted forward every learner shares (docs/design.md §1).

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

import hashlib
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import OPENAI_MEAN, OPENAI_STD, allow_download, get_model_source
from .threads import configure_threads

log = logging.getLogger(__name__)

LayerHook = Callable[[int, Tensor | None, Tensor | None], tuple]


class FrozenCLIP(nn.Module):
    """A frozen open_clip CLIP with step-wise access to both towers.

    Attributes read from the model: `text_width` (Dt), `vision_width` (Dv), `embed_dim` (E),
    `text_depth`, `vision_depth`, `text_heads`, `vision_heads`, `context_length` (L),
    `num_patches` (P), `image_size`. Parameters never require grad and the model stays in eval mode.
    `preprocess_train` / `preprocess_val` are the engine's image transforms for this model (PIL image
    → (3, H, W) tensor), as open_clip's `create_model_and_transforms` returns them.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        name: str,
        pretrained: str | None = None,
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        *,
        augment: str = "official",
        precision: str = "fp32",
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name, self.pretrained = name, pretrained
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment = augment  # the train augmentation suited to this model's images ("toy" for 32 px)
        self.precision = precision  # as given to load_clip; checkpoint cards record it
        self._weights_sha256: dict[torch.dtype, str] = {}
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

    @property
    def weights_sha256(self) -> str:
        """sha256 of the backbone's weights (every state_dict tensor: name, dtype, shape, bytes, in
        sorted name order), so a checkpoint can check it is loaded onto the weights it was trained on.
        Computed once per instance (about 1 s for ViT-B/16) and independent of the device."""
        if self.dtype not in self._weights_sha256:
            h = hashlib.sha256()
            for key, value in sorted(self.model.state_dict().items()):
                t = value.detach().to("cpu").contiguous()
                h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._weights_sha256[self.dtype] = h.hexdigest()
        return self._weights_sha256[self.dtype]

    @property
    def preprocess_train(self):
        """The engine's train transform for this model (`transforms.train_transform` with
        `self.augment`): PIL image → (3, H, W). `fit` uses the dataset's own augmentation instead."""
        from .transforms import train_transform  # the engine owns the transforms; no copy here

        return train_transform(self, self.augment)

    @property
    def preprocess_val(self):
        """The engine's test transform (resize, centre crop, normalise): PIL image → (3, H, W)."""
        from .transforms import test_transform

        return test_transform(self)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # BatchNorm stems and dropout stay frozen during prompt learning
        return self

    def _check_supported(self) -> None:
        vis = self.visual
        needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
        missing = [a for a in needed if not hasattr(vis, a)]
        if missing:
            raise ValueError(
                f"vision tower {type(vis).__name__} is not an open_clip VisionTransformer "
                f"(missing {missing}); prompt learning needs a ViT image tower"
            )
        if getattr(vis, "attn_pool", None) is not None or getattr(vis, "pool_type", "tok") != "tok":
            raise ValueError("only class-token pooled ViTs are supported (pool_type='tok', no attn_pool)")
        size = vis.image_size
        if isinstance(size, (tuple, list)) and len(set(size)) != 1:
            raise ValueError(f"only square images are supported, this model takes {tuple(size)}")
        text = self.text
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
        missing = [a for a in needed if not hasattr(text, a)]
        if missing:
            raise ValueError(
                f"text tower {type(text).__name__} is not an open_clip TextTransformer (missing "
                f"{missing}); prompt learning needs CLIP's own text transformer"
            )
        pool = getattr(text, "text_pool_type", getattr(text, "pool_type", "argmax"))
        if pool != "argmax":
            raise ValueError(f"text pooling {pool!r} is not supported; CLIP text towers pool at EOT (argmax)")
        if getattr(text, "cls_emb", None) is not None:
            raise ValueError(
                "the text tower pools a class token appended after the text (CoCa), not EOT; "
                "prompt learning needs CLIP's EOT-pooled text tower"
            )
        if getattr(text, "attn_mask", None) is None:
            raise ValueError(
                "the text tower is not causal (no attention mask); prompt learning needs CLIP's causal text transformer"
            )
        if not isinstance(text.text_projection, (nn.Parameter, nn.Linear)):
            raise ValueError(
                f"text projection {type(text.text_projection).__name__} is not supported (a "
                "projection matrix or nn.Linear is)"
            )
        from open_clip.transformer import ResidualAttentionBlock

        for tower, blocks in (("text", text.transformer.resblocks), ("vision", vis.transformer.resblocks)):
            if not all(type(b) is ResidualAttentionBlock for b in blocks):
                raise ValueError(
                    f"the {tower} tower uses {type(blocks[0]).__name__} blocks; the prompted "
                    "forward needs open_clip's standard ResidualAttentionBlock"
                )
        tok = self.tokenizer
        if tok is not None and not all(hasattr(tok, a) for a in ("encode", "sot_token_id", "eot_token_id")):
            raise ValueError(
                f"tokenizer {type(tok).__name__} is not supported; learned context slots need "
                "open_clip's SimpleTokenizer (CLIP's BPE)"
            )

    # ------------------------------------------------------------------ text tower
    def tokenize(self, texts: list[str]) -> Tensor:
        """(N,) strings → (N, L) token ids; a text longer than L raises instead of being cut."""
        ids = [self.tokenizer.encode(t) for t in texts]
        for text, tok in zip(texts, ids, strict=True):
            if len(tok) + 2 > self.context_length:
                raise ValueError(
                    f"prompt {text!r} has {len(tok) + 2} tokens; this model's context length is {self.context_length}"
                )
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
            raise ValueError(
                f"expected images of shape (B, 3, {self.image_size}, {self.image_size}) for "
                f"{self.id}, got {tuple(images.shape)}; use the model's preprocessing "
                "(mmprompt_lab.transforms)"
            )
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
    def run(
        self,
        text_x: Tensor | None,
        vision_x: Tensor | None,
        hook: LayerHook | None = None,
        text_mask: Tensor | None = None,
        attention: dict | None = None,
    ):
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


def _step(
    block: nn.Module, x: Tensor, mask: Tensor | None, tower: nn.Module, attention: dict | None, key: str
) -> Tensor:
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
def load_clip(
    name: str = "toyclip",
    pretrained: str | bool | None = None,
    device: str | None = None,
    precision: str = "fp32",
    *,
    download: bool | None = None,
    threads: int | None = None,
) -> FrozenCLIP:
    """Load a frozen CLIP from a registered model source ("toyclip") or open_clip.

    Args:
        name: "toyclip" (the embedded default), a path to a ToyCLIP safetensors file, an open_clip model
            name ("ViT-B-16", "ViT-B-16-quickgelu", … — see `mmprompt_lab.list_models()`), or
            "hf-hub:org/repo" (open_clip's config and weights from that Hugging Face repo).
        pretrained: for open_clip names a tag ("openai") or a local weights file; None = random weights
            drawn from a fixed seed (checkpoints on them reload exactly). For "toyclip": None/True = the
            shipped weights, False or "random" = random, or a file path.
        device: "cpu", "cuda", … (default: cuda if available).
        precision: "fp32" (exact; mixed precision is autocast in the engine), "bf16" or "fp16" weights.
        download: real weights are read from the local cache only, and a missing file fails at once with
            a message naming the cache; True allows open_clip to download them. None = the
            MMPROMPT_ALLOW_DOWNLOAD environment variable (1 = allow), off by default.
        threads: CPU threads for torch; None = the package's policy (`mmprompt_lab.threads`): 1 for
            ToyCLIP on the CPU, whose ops are too small to gain from more, unless you already chose a
            count (OMP_NUM_THREADS, or `torch.set_num_threads` before this call); torch's default for
            other models. The same policy as the CLI's `--threads`.

    Example:
        >>> clip = load_clip("toyclip")
        >>> clip.model  # the unmodified open_clip CLIP
        >>> clip = load_clip("ViT-B-16", pretrained="openai")            # from the local cache
        >>> clip = load_clip("ViT-B-16", pretrained="openai", download=True)   # fetch once
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    configure_threads(threads, name, device)
    loaded = get_model_source(name).load(name, pretrained, precision, allow_download(download))
    clip = FrozenCLIP(
        loaded.model,
        loaded.tokenizer,
        loaded.name,
        loaded.pretrained,
        loaded.mean,
        loaded.std,
        augment=loaded.augment,
        precision=precision,
    )
    return clip.to(device)


def normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)
