"""The shared text prefix: the text pass computed once for what every class has in common
(docs/design.md §7).

The text tower is causal, so every position before the first class-specific token (SOS, learned
context, fixed template words) has the same hidden state in every class's sequence at every block.
The shared-prefix pass keeps those positions once, as a (1, Lp, Dt) prefix, and runs each class's
own positions (class name, ".", EOT, anything after) as a (C, Ls, Dt) suffix whose attention reads
the prefix's keys and values plus the suffix itself (causal within the suffix). Every block is the
frozen open_clip `ResidualAttentionBlock` with its own modules (`ln_1`, `attn`'s in/out
projections, `ls_1`, `ln_2`, `mlp`, `ls_2`); nothing is forked.

    text = split_text(clip, emb, eot)                       # SharedText: (1, Lp, Dt) + (C, Ls, Dt), or None
    text, v = run_shared(clip, text, v, hook)               # lockstep with the image tower, like FrozenCLIP.run
    features = pool_shared(clip, text, eot)                 # (C, E)

The learner's hook keeps its contract: before block i it sees the whole text state (C, L', Dt) —
the prefix expanded over the classes, joined to the suffix — and returns it. What it writes at a
prefix position must be the same for every class (deep prompts that replace shared slots are);
the pass checks this at every block and raises otherwise. A hook that returns the text it was
given costs nothing more than the join.

The suffix is stepped in chunks of classes (`chunk`: "auto" sizes them so that one activation of a
chunk holds at most `CHUNK_ELEMENTS` numbers); when it takes more than one chunk and gradients are
recorded, each chunk runs under activation checkpointing (`checkpoint`), so a 500-class ViT-B/16 text
pass keeps only the blocks' inputs for the backward pass, and small models pay nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as checkpoint_fn

from .backbone import FrozenCLIP, LayerHook, _step  # _step: the backbone's own step of one image block

MIN_PREFIX = 2  # share only when more than SOS is common: SOS alone saves 1 of L' positions
CHUNK_ELEMENTS = 2**18  # "auto" chunks: one suffix activation of a chunk holds at most this many numbers
# (128 classes × 4 positions × 512 on ViT-B/16; ToyCLIP's 64-wide tower needs no chunking at 500 classes)
Chunk = int | Literal["auto"] | None  # classes per suffix chunk; "auto" sizes them; None = one piece

KV = tuple[Tensor, Tensor]  # keys and values of the prefix at one block, each (1, H, Lp, Dh)


@dataclass
class SharedText:
    """A text batch split at its shared prefix.

    prefix (1, Lp, Dt): the positions every row has in common; suffix (C, Ls, Dt): each row's own.
    """

    prefix: Tensor
    suffix: Tensor

    @property
    def length(self) -> int:
        return self.prefix.shape[1]

    def full(self) -> Tensor:
        """The plain-path view (C, Lp + Ls, Dt): the prefix expanded over the rows, joined to the suffix."""
        c = self.suffix.shape[0]
        return torch.cat([self.prefix.expand(c, -1, -1), self.suffix], dim=1)  # (C, L', Dt)


# ---------------------------------------------------------------------------- the split
def shared_length(emb: Tensor, eot: Tensor) -> int:
    """Leading positions identical in every row of emb (C, L', Dt), capped at the first EOT (EOT is
    pooled, so it stays in the suffix)."""
    same = (emb == emb[:1]).all(dim=2).all(dim=0)  # (L',)
    return min(int(same.long().cumprod(0).sum()), int(eot.min()))


def split_text(clip: FrozenCLIP, emb: Tensor, eot: Tensor, min_prefix: int = MIN_PREFIX) -> SharedText | None:
    """Add positional embeddings, cut after the longest EOT and split at the shared prefix.

    emb (C, L, Dt) layer-0 prompt embeddings, eot (C,) → SharedText, or None when fewer than
    `min_prefix` leading positions are shared (class first, class-specific context), C = 1, or the text
    blocks are not ones `block_forward` reproduces. The same arithmetic as `FrozenCLIP.start_text`, so
    the prefix equals each row of the plain path.
    """
    if not reproducible(clip):
        return None
    length = int(eot.max()) + 1
    lp = shared_length(emb[:, :length].detach(), eot)
    if emb.shape[0] < 2 or lp < min_prefix:
        return None
    pos = clip.text.positional_embedding
    return SharedText(emb[:1, :lp] + pos[:lp], emb[:, lp:length] + pos[lp:length])  # (1, Lp, Dt), (C, Ls, Dt)


def reproducible(clip: FrozenCLIP) -> bool:
    """True when `block_forward` reproduces every text block: one packed q/k/v projection, no bias_k/v, no
    zero attention, no cross-attention (open_clip's CLIP text blocks); other blocks keep the plain pass."""
    return all(
        b.attn._qkv_same_embed_dim and b.attn.bias_k is None and not b.attn.add_zero_attn and not hasattr(b, "ln_1_kv")
        for b in clip.text_blocks
    )


# ---------------------------------------------------------------------------- one block
def _heads(x: Tensor, heads: int) -> Tensor:
    n, length, d = x.shape
    return x.view(n, length, heads, d // heads).transpose(1, 2)  # (N, H, L, Dh)


def _causal(queries: int, past: int, device: torch.device) -> Tensor:
    """(Lq, Lp + Lq) boolean mask: query j (at position Lp + j) reads keys 0..Lp + j."""
    return torch.ones(queries, past + queries, dtype=torch.bool, device=device).tril(past)


def block_forward(block: nn.Module, x: Tensor, past: KV | None = None) -> tuple[Tensor, KV]:
    """One open_clip `ResidualAttentionBlock` on x (N, Lq, Dt) whose positions follow the cached
    prefix keys/values `past` (each (1, H, Lp, Dh), or None for no prefix), causal within x.

    Returns the block output (N, Lq, Dt) and x's own keys and values (N, H, Lq, Dh) — what later
    positions read. Reproduces `x + ls_1(attn(ln_1(x))); x + ls_2(mlp(ln_2(x)))` with the block's modules.
    """
    attn, n, lq = block.attn, x.shape[0], x.shape[1]
    h = block.ln_1(x)  # (N, Lq, Dt)
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # 3 × (N, Lq, Dt)
    q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))  # (N, H, Lq, Dh)
    own, lp = (k, v), 0
    if past is not None:
        lp = past[0].shape[2]
        k = torch.cat([past[0].expand(n, -1, -1, -1), k], dim=2)  # (N, H, Lp + Lq, Dh)
        v = torch.cat([past[1].expand(n, -1, -1, -1), v], dim=2)  # (N, H, Lp + Lq, Dh)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=_causal(lq, lp, x.device))  # (N, H, Lq, Dh)
    a = F.linear(a.transpose(1, 2).reshape(n, lq, -1), attn.out_proj.weight, attn.out_proj.bias)  # (N, Lq, Dt)
    x = x + block.ls_1(a)  # (N, Lq, Dt)
    return x + block.ls_2(block.mlp(block.ln_2(x))), own  # (N, Lq, Dt)


def _suffix_forward(block: nn.Module, x: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return block_forward(block, x, (k, v))[0]  # (N, Ls, Dt)


def chunk_size(chunk: Chunk, suffix: Tensor) -> int | None:
    """Classes per suffix chunk for suffix (C, Ls, Dt): "auto" → CHUNK_ELEMENTS // (Ls · Dt)."""
    if chunk != "auto":
        return chunk
    return max(1, CHUNK_ELEMENTS // (suffix.shape[1] * suffix.shape[2]))


def step_shared(block: nn.Module, text: SharedText, chunk: Chunk = "auto", checkpoint: bool = True) -> SharedText:
    """One block on a shared text: the prefix once (batch 1), then the suffix in chunks of `chunk`
    classes attending over the prefix's keys/values. With `checkpoint`, gradients recorded and more than
    one chunk, each chunk keeps only its input for the backward pass and is recomputed there."""
    prefix, (k, v) = block_forward(block, text.prefix)  # (1, Lp, Dt), 2 × (1, H, Lp, Dh)
    size = chunk_size(chunk, text.suffix)
    pieces = text.suffix.split(size) if size else (text.suffix,)
    recompute = (
        checkpoint and len(pieces) > 1 and torch.is_grad_enabled() and (text.suffix.requires_grad or k.requires_grad)
    )  # memory matters only at many classes
    outs = [
        checkpoint_fn(_suffix_forward, block, x, k, v, use_reentrant=False)
        if recompute
        else _suffix_forward(block, x, k, v)
        for x in pieces
    ]  # each (c, Ls, Dt)
    return SharedText(prefix, outs[0] if len(outs) == 1 else torch.cat(outs))  # (1, Lp, Dt), (C, Ls, Dt)


# ---------------------------------------------------------------------------- the runner
def call_hook(hook: LayerHook, i: int, text: SharedText, vision: Tensor | None) -> tuple[SharedText, Tensor | None]:
    """The learner's hook before block i on the plain-path view (C, L', Dt); its prefix writes must be
    the same for every class."""
    view = text.full()  # (C, L', Dt)
    version = view._version  # bumped by in-place writes
    out, vision = hook(i, view, vision)
    if out is view and view._version == version:  # untouched: keep the split as it was
        return text, vision
    if out.shape != view.shape:
        raise RuntimeError(
            f"the hook changed the text shape before block {i}: {tuple(view.shape)} → "
            f"{tuple(out.shape)}; the shared-prefix pass needs it unchanged"
        )
    lp = text.length
    head = out[:, :lp]  # (C, Lp, Dt)
    if not torch.equal(head, head[:1].expand_as(head)):
        raise RuntimeError(
            f"the hook wrote class-dependent values into shared text positions < {lp} before "
            f"block {i}; declare shares_text_prefix = False on the learner class"
        )
    return SharedText(out[:1, :lp], out[:, lp:]), vision  # (1, Lp, Dt), (C, Ls, Dt)


def run_shared(
    clip: FrozenCLIP,
    text: SharedText | None,
    vision: Tensor | None,
    hook: LayerHook | None = None,
    chunk: Chunk = "auto",
    checkpoint: bool = True,
) -> tuple[SharedText | None, Tensor | None]:
    """`FrozenCLIP.run` for a shared text: both towers block by block in lockstep, `hook(i, text, vision)`
    before block i with text as the plain path's (C, L', Dt). Returns the final (text, vision)."""
    for i in range(max(clip.text_depth, clip.vision_depth)):
        if hook is not None:
            text, vision = call_hook(hook, i, text, vision) if text is not None else hook(i, None, vision)
        if text is not None and i < clip.text_depth:
            text = step_shared(clip.text_blocks[i], text, chunk, checkpoint)
        if vision is not None and i < clip.vision_depth:
            vision = _step(clip.vision_blocks[i], vision, None, clip.visual.transformer, None, "vision")
    return text, vision


def pool_shared(clip: FrozenCLIP, text: SharedText, eot: Tensor) -> Tensor:
    """(C, E) text features at each row's EOT, which always lies in the suffix."""
    return clip.pool_text(text.suffix, eot - text.length)  # (C, E)


def encode_shared(
    clip: FrozenCLIP,
    emb: Tensor,
    eot: Tensor,
    hook: LayerHook | None = None,
    chunk: Chunk = "auto",
    checkpoint: bool = True,
) -> Tensor | None:
    """Text features (C, E) of layer-0 embeddings emb (C, L, Dt) through the shared-prefix pass, or
    None when the rows share too little (the caller runs the plain pass).

    Example:
        >>> tokens = clip.tokenize([f"a photo of a {c}." for c in names])
        >>> features = encode_shared(clip, clip.token_embedding(tokens), tokens.argmax(-1))  # (C, E)
    """
    text = split_text(clip, emb, eot)
    if text is None:
        return None
    text, _ = run_shared(clip, text, None, hook, chunk, checkpoint)
    return pool_shared(clip, text, eot)
