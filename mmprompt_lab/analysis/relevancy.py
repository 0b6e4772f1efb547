"""Why a prompted CLIP predicts a class: gradient-weighted attention relevancy, through the prompted forward.

Chefer, Gur & Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers", ICCV 2021 (arXiv:2103.15679), rule for self-attention:

    y      = the learner's scaled cosine logit of the target class (default: the predicted class)
    Ā_b    = mean over heads of clamp(∂y/∂A_b ⊙ A_b, min=0)        A_b (T, T): block b's attention probabilities
    R_0    = I ;  R_b = R_{b-1} + Ā_b · R_{b-1}                     (T, T), block by block
    map    = R[CLS, patches] on the g × g patch grid ;  text: R[EOT, tokens]

- `explain(learner, images, target)` / `relevancy(...)`: the image tower. Works for every learner:
  the forward is the learner's own `encode` (both towers in lockstep, deep prompts, coupling modules,
  image-conditioned text of CoCoOp and DCP), so y is exactly the logit the learner computes.
- `text_relevancy(learner, class_index, images)`: the text tower (causal mask), per token of that
  class's prompt, labelled SOS / context / class / template / EOT.
- `deletion_curve` (faithfulness: delete the most relevant patches first; the faster the target
  probability falls, the more faithful the map) against random deletion, for relevancy, raw CLS
  attention and attention rollout.
- `compare_relevancy` (how far tuned learners' maps moved from a reference's), `text_relevancies`;
  figures: `relevancy_figure`, `deletion_figure`, `text_relevancy_figure`.

**Prompt tokens** are part of the sequence: their rows and columns take part in the propagation like
any token, so relevancy that reaches CLS through a prompt is counted. A deep prompt that the learner
writes before block b (VPT, MaPLe, IVLP, DCP, …; text slots likewise) is a new input: its row restarts
at R[k] = e_k there, so column k sums the relevancy of every prompt the learner put in slot k, at all
depths. Detected from the forward itself (the token entering block b differs from block b-1's output),
not from the method. The path through a coupling module (DCP's CMPA, MAP-DAFE) is not followed, as
the rule follows no MLP either. The CLS row over the prompt columns is reported as `prompt_relevancy`
(B, N); the maps show the patches only.

How A_b gets its gradient: for the duration of one call, a forward hook on each block's
`nn.MultiheadAttention` returns the same output computed with explicit probabilities A_b (a tensor of
the graph), and a hook on the block records its input and output. The frozen modules are not changed
(the hooks are removed on exit; a test checks the block output equals `block(x)` to 1e-6), no parameter
gets a `.grad` (`torch.autograd.grad` on the A_b only). A seam in the backbone (the attention of
`FrozenCLIP.run` computed once, in the graph, and handed to a probe) would make the hooks unnecessary.

Letters: B images, C classes, H heads, T vision tokens (1 + P + N), P = g·g patches, N visual prompts,
L' text tokens.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor, nn

from ..transforms import test_transform
from ..learners.base import PromptLearner
from .attention import capture, cls_rollout, image_batch, overlay_figure, token_labels

MAPS = ("relevancy", "attention", "rollout")  # the maps `deletion_curve` and `relevancy_figure` know


# ----------------------------------------------------------------------------- the traced forward
def attention_probs(
    mha: nn.MultiheadAttention, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """`mha(q, k, v, attn_mask=...)` written out, batch-first: → output (N, Lq, D), probabilities
    (N, H, Lq, Lk) — both in the autograd graph. Float masks are added to the scores, boolean masks
    block the positions that are True (as `nn.MultiheadAttention`)."""
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError(
            "relevancy supports nn.MultiheadAttention with one in_proj (open_clip's blocks); "
            "this one has separate q/k/v projections, bias_k or add_zero_attn"
        )
    n, lq, d = q.shape
    h = mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else b.chunk(3)
    wq, wk, wv = w.chunk(3)
    q = F.linear(q, wq, bq).view(n, lq, h, d // h).transpose(1, 2)  # (N, H, Lq, d/H)
    k = F.linear(k, wk, bk).view(n, k.shape[1], h, d // h).transpose(1, 2)  # (N, H, Lk, d/H)
    v = F.linear(v, wv, bv).view(n, v.shape[1], h, d // h).transpose(1, 2)  # (N, H, Lk, d/H)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)  # (N, H, Lq, Lk)
    if attn_mask is not None:
        scores = (
            scores.masked_fill(attn_mask, float("-inf"))
            if attn_mask.dtype == torch.bool
            else scores + attn_mask.to(scores.dtype)
        )
    probs = scores.softmax(-1)  # (N, H, Lq, Lk)
    out = (probs @ v).transpose(1, 2).reshape(n, lq, d)  # (N, Lq, D)
    return mha.out_proj(out), probs


@dataclass
class _Trace:
    """What one tower's blocks saw during one forward: per block call, the attention probabilities
    (graph tensors, (N, H, T, T)), and the block's input and output tokens (detached, batch-first)."""

    probs: list[Tensor] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)


@contextlib.contextmanager
def tracing(blocks: list[nn.Module]):
    """Inside the `with` block, each of `blocks` (open_clip ResidualAttentionBlocks) computes its
    attention with explicit probabilities (`attention_probs`, same output), recorded in call order into
    the yielded `_Trace` with each block's input and output. The hooks are removed on exit."""
    trace, handles = _Trace(), []

    def on_attn(mha, args, kwargs, output):
        q, k, v = (tuple(args) + tuple(kwargs.get(n) for n in ("query", "key", "value")[len(args) :]))[:3]
        if kwargs.get("key_padding_mask") is not None:
            raise ValueError("relevancy does not support key_padding_mask (open_clip's blocks pass none)")
        first = (lambda t: t) if mha.batch_first else (lambda t: t.transpose(0, 1))
        out, probs = attention_probs(mha, first(q), first(k), first(v), kwargs.get("attn_mask"))
        trace.probs.append(probs)
        return first(out), None

    def on_block(block, args, kwargs, output):
        first = (lambda t: t) if block.attn.batch_first else (lambda t: t.transpose(0, 1))
        x = args[0] if args else kwargs["q_x"]
        trace.inputs.append(first(x).detach())
        trace.outputs.append(first(output).detach())

    try:
        for block in blocks:
            handles.append(block.attn.register_forward_hook(on_attn, with_kwargs=True))
            handles.append(block.register_forward_hook(on_block, with_kwargs=True))
        yield trace
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _explaining(learner: PromptLearner):
    """Eval mode and gradients on for one explanation; the learner's mode is restored afterwards."""
    was_training = learner.training
    learner.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        learner.train(was_training)


@contextlib.contextmanager
def _plain_text(learner: PromptLearner):
    """The plain text pass for one explanation: the shared-prefix pass (`learner.shared_prefix`, exact
    and tested equal) computes the prefix outside the blocks' `attn` call, so the trace would miss it."""
    own = getattr(learner, "shared_prefix", None)  # None: a learner base without the switch
    if own is not None:
        learner.shared_prefix = False
    try:
        yield
    finally:
        if own is not None:
            learner.shared_prefix = own


def propagate(trace: _Trace, grads: list[Tensor]) -> Tensor:
    """Chefer's rule over the blocks of one trace: → R (N, T, T).

    grads[b] = ∂y/∂A_b (N, H, T, T). A token that differs on entering block b from block b-1's output
    (a deep prompt written by the learner) restarts its row: R[k] = e_k.
    """
    n, _, t, _ = trace.probs[0].shape
    eye = torch.eye(t, dtype=trace.probs[0].dtype, device=trace.probs[0].device)
    r = eye.expand(n, t, t).clone()  # (N, T, T)
    for b, (a, g) in enumerate(zip(trace.probs, grads, strict=True)):
        if a.shape[-1] != t:
            raise ValueError(
                f"the token count changes from {t} to {a.shape[-1]} at block {b}; relevancy "
                "needs a learner that keeps the sequence length fixed after block 0"
            )
        if b > 0:
            written = (trace.inputs[b] != trace.outputs[b - 1]).any(-1)  # (N, T)
            r = torch.where(written[..., None], eye.expand(n, t, t), r)  # (N, T, T)
        abar = (g * a.detach()).clamp(min=0).mean(1)  # (N, T, T)
        r = r + abar @ r  # (N, T, T)
    return r


def _targets(logits: Tensor, target: int | Tensor | None) -> Tensor:
    """(B,) class indices: the predicted class, one class for all images, or one per image."""
    b, c = logits.shape
    if target is None:
        return logits.detach().argmax(-1)
    t = torch.as_tensor(target, device=logits.device).long().reshape(-1).expand(b)  # (B,)
    if not ((t >= 0) & (t < c)).all():
        raise ValueError(f"target {target} is outside the learner's {c} classes (0..{c - 1})")
    return t


def _grads(learner: PromptLearner, logits: Tensor, target: Tensor, probs: list[Tensor]) -> list[Tensor]:
    """∂y_b/∂A_b of every image b's own attention, per block (B, H, T, T). One backward for the batch
    when images cannot influence each other; one per image for conditional learners (DCP's "mean"
    fusing lets an image's attention reach its batch-mates' logits)."""
    picked = logits.gather(1, target[:, None])[:, 0]  # (B,)
    if not learner.conditional:
        return list(torch.autograd.grad(picked.sum(), probs))
    per_image = [
        torch.autograd.grad(picked[b], probs, retain_graph=b + 1 < len(picked)) for b in range(len(picked))
    ]  # B × blocks × (B, H, T, T)
    return [torch.stack([g[k][b] for b, g in enumerate(per_image)]) for k in range(len(probs))]


# ----------------------------------------------------------------------------- image tower
@dataclass
class ImageRelevancy:
    """Relevancy of the image tower for one batch.

    maps (B, g, g): R[CLS, patches] on the patch grid (≥ 0). prompt_relevancy (B, N): R[CLS, prompts]
    (N = 0 without visual prompts). cls_self (B,): R[CLS, CLS]. target (B,) the explained classes;
    logits (B, C) of the explained forward; matrix (B, T, T) the full R; patch_index (P,),
    prompt_index (N,) the token layout.
    """

    maps: Tensor
    prompt_relevancy: Tensor
    cls_self: Tensor
    target: Tensor
    logits: Tensor
    matrix: Tensor
    patch_index: Tensor
    prompt_index: Tensor

    @property
    def prompt_share(self) -> Tensor:
        """(B,) the share of CLS's relevancy (beyond itself) that comes from the prompt tokens."""
        total = self.maps.flatten(1).sum(1) + self.prompt_relevancy.sum(1)
        return self.prompt_relevancy.sum(1) / total.clamp_min(1e-12)


def vision_layout(learner: PromptLearner, tokens: int) -> tuple[Tensor, Tensor]:
    """(patch_index (P,), prompt_index (N,)) of a learner's vision sequence of `tokens` tokens."""
    p = learner.clip.num_patches
    n = tokens - 1 - p
    if learner.vision_position == "after_cls":
        return torch.arange(1 + n, tokens), torch.arange(1, 1 + n)
    return torch.arange(1, 1 + p), torch.arange(1 + p, tokens)


def explain(learner: PromptLearner, images: Tensor, target: int | Tensor | None = None) -> ImageRelevancy:
    """Gradient-weighted attention relevancy of the image tower (module docstring), every learner.

    Args:
        learner: any registered learner (its own prompted forward is explained; it is not changed).
        images: (B, 3, H, W) preprocessed.
        target: the class whose logit is explained: None = each image's predicted class, an int for
            all images, or (B,) indices.
    Returns:
        `ImageRelevancy` (maps (B, g, g), prompt_relevancy (B, N), …).

    Example:
        >>> r = explain(learner, images)
        >>> r.maps.shape, r.prompt_share      # (B, 8, 8) for ToyCLIP, (B,)
    """
    clip = learner.clip
    images = images.to(clip.device).detach().clone().requires_grad_(True)  # a graph even without prompts
    with _explaining(learner), tracing(clip.vision_blocks) as trace:
        logits = learner.logits(*learner.encode(images))  # (B, C)
        if len(trace.probs) != clip.vision_depth:
            raise RuntimeError(
                f"{learner.name}'s forward ran {len(trace.probs)} vision blocks, expected "
                f"{clip.vision_depth} (one image pass)"
            )
        target = _targets(logits, target)  # (B,)
        grads = _grads(learner, logits, target, trace.probs)
    r = propagate(trace, grads).detach()  # (B, T, T)
    patch_index, prompt_index = vision_layout(learner, r.shape[-1])
    g = int(round(clip.num_patches**0.5))
    maps = r[:, 0, patch_index].reshape(-1, g, g)  # (B, g, g)
    return ImageRelevancy(
        maps.cpu(),
        r[:, 0, prompt_index].cpu(),
        r[:, 0, 0].cpu(),
        target.cpu(),
        logits.detach().cpu(),
        r.cpu(),
        patch_index,
        prompt_index,
    )


def relevancy(learner: PromptLearner, images: Tensor, target: int | Tensor | None = None) -> Tensor:
    """(B, 3, H, W) → (B, g, g) relevancy of the patches for the target logit (`explain(...).maps`).

    Prompt tokens take part in the propagation; their share is in `explain(...).prompt_relevancy`.

    Example:
        >>> maps = relevancy(learner, images)            # predicted classes
        >>> maps = relevancy(learner, images, target=3)  # class 3 for every image
    """
    return explain(learner, images, target).maps


# ----------------------------------------------------------------------------- text tower
@dataclass
class TextRelevancy:
    """Relevancy of one class's prompt tokens for its logit: R[EOT, token] − I (EOT's own identity
    removed), positions 0..EOT. kinds: "sos", "context" (learned), "class", "template", "eot"."""

    labels: list[str]
    kinds: list[str]
    relevancy: Tensor
    classname: str
    method: str

    def share(self, kind: str) -> float:
        """The share of the prompt's relevancy that falls on tokens of one kind."""
        mask = torch.tensor([k == kind for k in self.kinds])
        return float(self.relevancy[mask].sum() / self.relevancy.sum().clamp_min(1e-12))


def token_kinds(clip, tokens: Tensor, slots: Tensor, eot: int, classname: str) -> list[str]:
    """Kind of each position 0..eot of one prompt: the class name is found as the last run of its
    tokens outside the learnable slots."""
    ids = tokens[: eot + 1].tolist()
    slot_set = {int(s) for s in slots}
    kinds = ["context" if i in slot_set else "template" for i in range(eot + 1)]
    kinds[0], kinds[eot] = "sos", "eot"
    name = clip.tokenizer.encode(classname.replace("_", " "))
    for start in range(eot - len(name), 0, -1):
        span = range(start, start + len(name))
        if ids[start : start + len(name)] == name and not slot_set & set(span):
            for i in span:
                kinds[i] = "class"
            break
    return kinds


def text_relevancy(
    learner: PromptLearner, class_index: int, images: Tensor, *, template: str | None = None
) -> TextRelevancy:
    """Relevancy of each token of class `class_index`'s prompt for that class's logit on `images`.

    The logit is an image–text similarity, so the images say what the text is compared with: the
    relevancy is computed for the logit summed over the images (text shared by all images), or per
    image and averaged (image-conditioned text: CoCoOp, DCP). Same rule as the image tower, on the
    causal text tower; deep text prompts restart their rows where the learner writes them.

    Args:
        learner: a learner with learnable text prompts; a hand-template learner (zero-shot, VPT)
            needs `template`, which is explained through the frozen text tower instead.
        class_index: the class of the learner whose prompt is explained.
        images: (B, 3, H, W) preprocessed, e.g. images of that class.
        template: a hand template ("a photo of a {}.") for learners without learnable text.
    Returns:
        `TextRelevancy` (labels, kinds, relevancy (L,) for positions 0..EOT).

    Example:
        >>> t = text_relevancy(coop, 0, images)
        >>> t.labels, t.relevancy, t.share("context")
    """
    clip = learner.clip
    c = len(learner.classnames)
    if not 0 <= class_index < c:
        raise ValueError(f"class_index {class_index} is outside the learner's {c} classes (0..{c - 1})")
    if not learner.has_text_prompts and template is None:
        raise ValueError(
            f"{learner.name} has no learnable text prompts; pass template='a photo of a {{}}.' to "
            "explain a hand template through the frozen text tower"
        )
    name = learner.classnames[class_index]
    images = images.to(clip.device)
    with _explaining(learner), _plain_text(learner):
        if template is None:
            with tracing(clip.text_blocks) as trace:
                logits = learner.logits(*learner.encode(images))  # (B, C)
            prompts = learner.prompts
            tokens, slots, eot = prompts.tokens[class_index], prompts.slots[class_index], int(prompts.eot[class_index])
            y = logits[:, class_index].sum()
        else:
            with torch.no_grad():
                img = learner.encode(images)[0]  # (B, E); outside the trace (fixed text may run the text tower)
            tokens = clip.tokenize([template.format(name.replace("_", " "))]).to(clip.device)  # (1, L)
            eot_t = tokens.argmax(-1)  # (1,)
            x, mask = clip.start_text(clip.token_embedding(tokens), eot_t)  # (1, L', Dt)
            with tracing(clip.text_blocks) as trace:
                # a graph through the frozen tower
                x, _ = clip.run(x.detach().requires_grad_(True), None, text_mask=mask)
            y = learner.logits(img, clip.pool_text(x, eot_t))[:, 0].sum()  # (B, 1) → scalar
            tokens, slots, eot = tokens[0], torch.zeros(0, dtype=torch.long), int(eot_t[0])
        if len(trace.probs) != clip.text_depth:
            raise RuntimeError(f"the text tower ran {len(trace.probs)} blocks, expected {clip.text_depth}")
        grads = torch.autograd.grad(y, trace.probs)
    r = propagate(trace, grads).detach()  # (rows, L', L')
    rows = r.shape[0]
    if template is not None:
        picked = r  # (1, L', L')
    elif rows % c == 0:
        picked = r[class_index::c]  # (rows / C, L', L'): this class's prompt, once or once per image
    else:
        raise RuntimeError(f"the text tower ran {rows} prompts for {c} classes; cannot find class {class_index}")
    row = picked.mean(0)[eot, : eot + 1].clone()  # (EOT+1,)
    row[eot] -= 1.0  # the identity R starts from is not relevancy
    tokens, slots = tokens.cpu(), slots.cpu()
    return TextRelevancy(
        token_labels(clip, tokens, slots, eot),
        token_kinds(clip, tokens, slots, eot, name),
        row.cpu(),
        name,
        learner.name,
    )


# ----------------------------------------------------------------------------- other maps, deletion
def cls_attention(learner: PromptLearner, images: Tensor, layer: int = -1) -> Tensor:
    """Raw attention of CLS to the patches in one layer, head-averaged: (B, g, g), renormalised over
    the patches. The "attention is explanation" baseline."""
    rec = capture(learner, images)
    a = rec.vision[layer].mean(1)[:, 0, rec.patch_index]  # (B, P)
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    return a.reshape(-1, rec.grid, rec.grid)  # (B, g, g)


def patch_maps(learner: PromptLearner, images: Tensor, kind: str = "relevancy", target: Tensor | None = None) -> Tensor:
    """(B, g, g) map of one kind: "relevancy" (this module), "attention" (last-layer CLS attention)
    or "rollout" (`attention.cls_rollout`)."""
    if kind == "relevancy":
        return relevancy(learner, images, target)
    if kind == "attention":
        return cls_attention(learner, images)
    if kind == "rollout":
        return cls_rollout(capture(learner, images))
    raise ValueError(f"unknown map {kind!r}; choose from {MAPS}")


def delete_patches(images: Tensor, order: Tensor, k: int, grid: int) -> Tensor:
    """Set the first k patches of `order` (B, P) to 0 in normalised space (the normalisation mean
    colour). images (B, 3, H, W) → (B, 3, H, W)."""
    b, p = order.shape
    keep = torch.ones(b, p, device=images.device)
    keep.scatter_(1, order[:, :k].to(images.device), 0.0)  # (B, P)
    keep = F.interpolate(keep.view(b, 1, grid, grid), size=images.shape[-2:], mode="nearest")  # (B, 1, H, W)
    return images * keep


@torch.no_grad()
def _target_probability(learner: PromptLearner, images: Tensor, target: Tensor, text: Tensor | None) -> Tensor:
    logits = learner(images) if text is None else learner(images, text_features=text)  # (B, C)
    return logits.float().softmax(-1).gather(1, target[:, None])[:, 0].cpu()  # (B,)


def deletion_curve(
    learner: PromptLearner,
    dataset,
    n: int = 8,
    *,
    maps: tuple[str, ...] = ("relevancy",),
    steps: int = 16,
    draws: int = 5,
    seed: int = 0,
    images: Tensor | None = None,
) -> dict:
    """Deletion test: delete patches most-relevant-first and watch the target probability fall.

    For n images of `dataset` (one per class, `attention.image_batch`), the target is each image's
    predicted class on the intact image. Patches are set to 0 in normalised space in order of each
    map (highest first) and in `draws` seeded random orders, at `steps`+1 fractions 0, 1/steps, …, 1.
    The area under the curve (mean probability over the fractions, trapezoid rule) is lower for a more
    faithful map; random deletion is the reference.

    Args:
        learner, dataset: what to explain, on which images (scored with the dataset's class names).
        n: images (one per class while classes last). `images` (B, 3, H, W) replaces them if given.
        maps: which maps to test, from "relevancy", "attention", "rollout".
        steps, draws, seed: the fraction grid, random orders, their seed.
    Returns:
        {"method": learner name, "fractions": [...], "curves": {map: [...], "random": [...]},
         "auc": {map: float, "random": float}, "start": mean probability on intact images, "n": images,
         "draws": draws, "prompt_share": mean share of CLS relevancy from prompt tokens (relevancy only)}.

    Example:
        >>> d = deletion_curve(vpt.learner, vpt.test, n=8)
        >>> d["auc"]["relevancy"] < d["auc"]["random"]
    """
    unknown = [m for m in maps if m not in MAPS]
    if unknown:
        raise ValueError(f"unknown maps {unknown}; choose from {MAPS}")
    if steps < 1 or draws < 1:
        raise ValueError(f"steps and draws must be ≥ 1 (random deletion is the reference), got {steps}, {draws}")
    clip = learner.clip
    with learner.use_classnames(dataset.classnames):
        if images is None:
            images = image_batch(dataset, clip, n)[0]
        images = images.to(clip.device)
        text = None if learner.conditional else _text_features(learner)
        was_training = learner.training
        learner.eval()
        try:
            info = explain(learner, images)
            target = info.target.to(clip.device)  # (B,)
            b, p, g = images.shape[0], clip.num_patches, int(round(clip.num_patches**0.5))
            ks = [round(i * p / steps) for i in range(steps + 1)]
            orders = {
                m: (info.maps if m == "relevancy" else patch_maps(learner, images, m))
                .reshape(b, p)
                .argsort(-1, descending=True)
                for m in maps
            }
            gen = torch.Generator().manual_seed(seed)
            randoms = [torch.stack([torch.randperm(p, generator=gen) for _ in range(b)]) for _ in range(draws)]

            def mean_probability(order: Tensor, k: int) -> float:
                return float(_target_probability(learner, delete_patches(images, order, k, g), target, text).mean())

            start = mean_probability(randoms[0], 0)  # the intact images
            curves = {m: [start] + [mean_probability(o, k) for k in ks[1:]] for m, o in orders.items()}
            curves["random"] = [start] + [float(np.mean([mean_probability(o, k) for o in randoms])) for k in ks[1:]]
        finally:
            learner.train(was_training)
    fractions = [k / p for k in ks]
    auc = {m: _area(c, fractions) for m, c in curves.items()}
    return {
        "method": learner.name,
        "fractions": fractions,
        "curves": curves,
        "auc": auc,
        "start": start,
        "n": int(images.shape[0]),
        "draws": draws,
        "prompt_share": float(info.prompt_share.mean()),
    }


def _area(ys: list[float], xs: list[float]) -> float:
    """Trapezoid rule."""
    pairs = zip(xs, xs[1:], ys, ys[1:], strict=False)  # neighbours: the shifted lists are one shorter
    return float(sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in pairs))


@torch.no_grad()
def _text_features(learner: PromptLearner) -> Tensor:
    return learner.encode_text()  # (C, E), computed once for every deletion step


def top_overlap(a: Tensor, b: Tensor, k: int = 8) -> Tensor:
    """(B, g, g) × (B, g, g) → (B,) the share of the k highest patches of `a` that are among the k
    highest of `b`."""
    ta, tb = a.flatten(1).topk(k).indices, b.flatten(1).topk(k).indices  # (B, k)
    return (ta[:, :, None] == tb[:, None, :]).any(-1).float().mean(-1)  # (B,)


def compare_relevancy(
    learners: dict[str, PromptLearner], dataset, n: int = 8, reference: str | None = None, k: int = 8
) -> dict[str, dict]:
    """What tuning changed in where each learner looks, on the same n images of `dataset` (one per class).

    Each learner explains its own predicted class. Returns {name: {"overlap": share of its k most
    relevant patches that are also among the reference's k most relevant (mean over images),
    "cosine": mean cosine similarity of the two maps, "prompt_share": mean share of CLS's relevancy
    that flows from visual prompt tokens}}. `reference` names the learner compared with (default:
    the first).

    Example:
        >>> compare_relevancy({"zero-shot": zs, "VPT": vpt}, test, n=24)["VPT"]["overlap"]
    """
    reference = reference or next(iter(learners))
    if reference not in learners:
        raise ValueError(f"reference {reference!r} is not among the learners {list(learners)}")
    images = image_batch(dataset, next(iter(learners.values())).clip, n)[0]
    out = {}
    for who, learner in learners.items():
        with learner.use_classnames(dataset.classnames):
            out[who] = explain(learner, images)
    ref = out[reference].maps
    return {
        who: {
            "overlap": round(float(top_overlap(e.maps, ref, k).mean()), 3),
            "cosine": round(float(F.cosine_similarity(e.maps.flatten(1), ref.flatten(1)).mean()), 3),
            "prompt_share": round(float(e.prompt_share.mean()), 3),
        }
        for who, e in out.items()
    }


def class_images(dataset, clip, class_index: int, n: int = 4) -> Tensor:
    """The first n test-transformed images of one class of `dataset`: (n, 3, H, W)."""
    transform = test_transform(clip)
    chosen = [it for it in dataset.items if it.label == class_index][:n]
    if not chosen:
        raise ValueError(f"{dataset.name} has no images of class {class_index} in this selection")
    return torch.stack([transform(dataset.source.load_image(it).convert("RGB")) for it in chosen])  # (n, 3, H, W)


def text_relevancies(
    learners: dict[str, PromptLearner], dataset, class_index: int = 0, n: int = 4
) -> list[TextRelevancy]:
    """`text_relevancy` of class `class_index`'s prompt for each learner, on n images of that class;
    hand-template learners explain the dataset's template."""
    first = next(iter(learners.values()))
    images = class_images(dataset, first.clip, class_index, n)
    out = []
    for who, learner in learners.items():
        with learner.use_classnames(dataset.classnames):
            template = None if learner.has_text_prompts else dataset.template
            r = text_relevancy(learner, class_index, images, template=template)
        r.method = who
        out.append(r)
    return out


# ----------------------------------------------------------------------------- figures
def relevancy_figure(
    learners: PromptLearner | dict[str, PromptLearner], dataset, n: int = 4, maps: tuple[str, ...] = ("relevancy",)
) -> go.Figure:
    """Overlay grid: one row per image (n images of `dataset`, one per class), one column per
    (learner, map). E.g. several learners' relevancy on the same images, or one learner's relevancy
    vs raw attention vs rollout (`maps=("relevancy", "attention", "rollout")`). Titles give the true
    class; each relevancy column explains that learner's predicted class."""
    learners = learners if isinstance(learners, dict) else {learners.name: learners}
    first = next(iter(learners.values()))
    images, pixels, labels = image_batch(dataset, first.clip, n)
    named = {}
    for who, learner in learners.items():
        with learner.use_classnames(dataset.classnames):
            for kind in maps:
                key = f"{who} · {kind}" if len(learners) > 1 and len(maps) > 1 else (who if len(maps) == 1 else kind)
                named[key] = patch_maps(learner, images, kind)
    return overlay_figure(pixels, named, titles=[dataset.classnames[y] for y in labels])


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_DASH = {"relevancy": "solid", "attention": "dashdot", "rollout": "dash", "random": "dot"}


def deletion_figure(curves: dict | list[dict], maps: tuple[str, ...] | None = None, title: str = "") -> go.Figure:
    """Deletion curves (target probability vs fraction of patches deleted) of one or several
    `deletion_curve` results (one, a list, or {name: result}): one colour per learner (named by the
    dict keys, else its method), one dash per map (dotted: random order), and the area under each curve
    in the legend (lower = more faithful). `maps` picks which curves to draw (default: all)."""
    if isinstance(curves, dict) and "curves" in curves:
        curves = {curves["method"]: curves}
    elif not isinstance(curves, dict):
        curves = {d["method"]: d for d in curves}
    fig = go.Figure()
    for i, (who, d) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        for kind, ys in d["curves"].items():
            if maps is not None and kind not in maps:
                continue
            fig.add_scatter(
                x=d["fractions"],
                y=ys,
                mode="lines+markers",
                marker_size=4,
                line=dict(color=colour, dash=_DASH.get(kind, "solid")),
                name=f"{who} · {kind} (AUC {d['auc'][kind]:.3f})",
            )
    fig.update_layout(
        title=title or "deletion test: most relevant patches first vs random (lower = more faithful)",
        xaxis_title="fraction of patches deleted",
        yaxis_title="target probability",
        yaxis_range=[0, 1.02],
        height=420,
        margin=dict(t=50, b=40, l=60, r=20),
    )
    return fig


_KIND_COLOURS = {"sos": "#7f7f7f", "context": "#d62728", "class": "#1f77b4", "template": "#2ca02c", "eot": "#bcbd22"}


def text_relevancy_figure(results: TextRelevancy | list[TextRelevancy], title: str = "") -> go.Figure:
    """Bars of token relevancy for one or several prompts (one row each), coloured by kind:
    learned context, class name, template words, SOS/EOT."""
    results = [results] if isinstance(results, TextRelevancy) else list(results)
    fig = make_subplots(
        rows=len(results),
        cols=1,
        subplot_titles=[f"{r.method}: '{r.classname}'" for r in results],
        vertical_spacing=0.18 if len(results) > 1 else 0.1,
    )
    shown = set()
    for row, r in enumerate(results, start=1):
        x = [f"{i}:{t}" for i, t in enumerate(r.labels)]
        for kind in _KIND_COLOURS:
            idx = [i for i, k in enumerate(r.kinds) if k == kind]
            if not idx:
                continue
            fig.add_bar(
                x=[x[i] for i in idx],
                y=r.relevancy[idx].tolist(),
                name=kind,
                legendgroup=kind,
                marker_color=_KIND_COLOURS[kind],
                showlegend=kind not in shown,
                row=row,
                col=1,
            )
            shown.add(kind)
        fig.update_xaxes(categoryorder="array", categoryarray=x, row=row, col=1)
    fig.update_layout(
        title=title or "text relevancy: R[EOT, token] (what the class feature is made of)",
        height=220 * len(results) + 90,
        margin=dict(t=70, b=40, l=50, r=20),
        barmode="overlay",
    )
    return fig


__all__ = [
    "ImageRelevancy",
    "TextRelevancy",
    "attention_probs",
    "class_images",
    "cls_attention",
    "compare_relevancy",
    "delete_patches",
    "deletion_curve",
    "deletion_figure",
    "explain",
    "patch_maps",
    "propagate",
    "relevancy",
    "relevancy_figure",
    "text_relevancies",
    "text_relevancy",
    "text_relevancy_figure",
    "token_kinds",
    "top_overlap",
    "tracing",
    "vision_layout",
]
