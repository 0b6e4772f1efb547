"""Where prompts look: attention of both towers captured through the prompted forward, turned into
pictures.

- `capture(learner, images)` runs `learner.encode(images, attention=...)` once (the same lockstep
  forward that trains the prompts; no forked model) and keeps every layer's attention weights,
  text (N, heads, L', L') and vision (B, heads, T, T), with the token layout needed to read them.
- `prompt_patch_maps`: visual prompt token → image patch attention, as (B, N, g, g) maps.
- `cls_rollout`: attention rollout (Abnar & Zuidema, ACL 2020) from the class token to the patches.
- `text_attention`: what the EOT token (the text feature) and the prompt slots attend to.
- `cross_modal_attention`: the weights of a coupling module's own attention (DCP's CMPA), per
  layer, recorded through the module's optional `record` dict.
- figures: `overlay_figure`, `text_attention_figure`, `cross_modal_figure`.

Letters: B images, N visual prompts, P = g·g patches, T = 1 + P + N vision tokens, L' text tokens.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from ..transforms import test_transform
from ..learners.base import PromptLearner
from ..learners.prompts import PromptTokens


@dataclass
class AttentionRecord:
    """Per-layer attention of one prompted forward.

    text[i]: (N, heads, L', L') or None per layer; vision[i]: (B, heads, T, T).
    Vision layout: token 0 is CLS; `patch_index` (P,) and `prompt_index` (N,) index the others.
    Text layout: `tokens` (C, L) ids, `eot` (C,), `slots` (C, M) learnable positions (M may be 0).
    """

    vision: list[Tensor]
    text: list[Tensor]
    patch_index: Tensor
    prompt_index: Tensor
    grid: int
    tokens: Tensor | None = None
    eot: Tensor | None = None
    slots: Tensor | None = None
    labels: list[str] = field(default_factory=list)  # decoded tokens of text row 0..N-1 (list per row)


def image_batch(dataset, clip, n: int = 4, per_class: bool = True) -> tuple[Tensor, np.ndarray, list[int]]:
    """The first n test-transformed images (one per class when `per_class`), their pixels for display
    (n, H, W, 3) uint8, and their labels."""
    transform = test_transform(clip)
    chosen, seen = [], set()
    for i, item in enumerate(dataset.items):
        if per_class and item.label in seen:
            continue
        seen.add(item.label)
        chosen.append(i)
        if len(chosen) == n:
            break
    pils = [dataset.source.load_image(dataset.items[i]).convert("RGB") for i in chosen]
    images = torch.stack([transform(p) for p in pils])  # (n, 3, H, W)
    size = clip.image_size
    pixels = np.stack([np.asarray(p.resize((size, size))) for p in pils])  # (n, H, W, 3)
    return images, pixels, [dataset.items[i].label for i in chosen]


@torch.no_grad()
def capture(learner: PromptLearner, images: Tensor) -> AttentionRecord:
    """Run the learner's prompted forward once and record both towers' attention, every layer.

    images (B, 3, H, W) preprocessed. Learners with hand-template text (`has_text_prompts` False:
    zeroshot, vpt) record the image tower only.
    """
    learner.eval()
    images = images.to(learner.clip.device)
    att: dict = {}
    learner.encode(images, attention=att)
    clip = learner.clip
    vision = [a.float().cpu() for a in att.get("vision", [])]
    t = vision[0].shape[-1]
    p, n = clip.num_patches, t - 1 - clip.num_patches
    if learner.vision_position == "after_cls":
        prompt_index, patch_index = torch.arange(1, 1 + n), torch.arange(1 + n, t)
    else:
        patch_index, prompt_index = torch.arange(1, 1 + p), torch.arange(1 + p, t)
    record = AttentionRecord(
        vision, [a.float().cpu() for a in att.get("text", [])], patch_index, prompt_index, int(round(p**0.5))
    )
    prompts = prompt_tokens(learner)
    if prompts is not None and record.text:
        record.tokens, record.eot, record.slots = prompts.tokens.cpu(), prompts.eot.cpu(), prompts.slots.cpu()
        record.labels = [
            token_labels(clip, row, slots, int(e))
            for row, slots, e in zip(record.tokens, record.slots, record.eot, strict=True)
        ]
    return record


def prompt_tokens(learner: PromptLearner) -> PromptTokens | None:
    """The learner's tokenised text prompts with learnable slots (`learner.prompts`), if it has any."""
    return learner.prompts if learner.has_text_prompts else None


def token_labels(clip, tokens: Tensor, slots: Tensor, eot: int) -> list[str]:
    """Readable labels of one prompt's tokens up to EOT; learnable slots read "ctx1", "ctx2", …"""
    decoder = clip.tokenizer.decoder
    slot_pos = {int(s): k for k, s in enumerate(slots)}
    out = []
    for pos, tok in enumerate(tokens[: eot + 1].tolist()):
        if pos in slot_pos:
            out.append(f"ctx{slot_pos[pos] + 1}")
        else:
            word = decoder.get(tok, str(tok)).replace("</w>", "")
            out.append({"<start_of_text>": "SOS", "<end_of_text>": "EOT"}.get(word, word))
    return out


def _layers(maps: list[Tensor], layer: int | str) -> Tensor:
    """Head-averaged attention of one layer (index) or the mean over layers ("mean"): (B, T, T)."""
    if layer == "mean":
        return torch.stack([m.mean(1) for m in maps]).mean(0)
    return maps[layer].mean(1)


def prompt_patch_maps(record: AttentionRecord, layer: int | str = -1) -> Tensor:
    """Attention from each visual prompt (query) to the image patches (keys), head-averaged.

    Returns (B, N, g, g); each map is renormalised over the patches (sums to 1), so it shows where
    on the image a prompt looks, whatever share of its attention goes to CLS or other prompts.
    """
    if len(record.prompt_index) == 0:
        raise ValueError("this learner has no visual prompt tokens; use cls_rollout for the image tower")
    a = _layers(record.vision, layer)  # (B, T, T)
    a = a[:, record.prompt_index][:, :, record.patch_index]  # (B, N, P)
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    return a.reshape(a.shape[0], a.shape[1], record.grid, record.grid)  # (B, N, g, g)


def cls_rollout(record: AttentionRecord, residual: float = 0.5) -> Tensor:
    """Attention rollout from CLS to the patches: R = Π_l norm(residual·I + (1−residual)·mean_h A_l).

    Prompt tokens that a learner replaces between layers are treated as one continuing token (the
    rollout is then an approximation for deep prompts). Returns (B, g, g), each map summing to 1.
    """
    rollout = None
    for a in record.vision:
        a = a.mean(1)  # (B, T, T)
        a = residual * torch.eye(a.shape[-1]) + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # (B, T, T)
    r = rollout[:, 0, record.patch_index]  # (B, P)
    r = r / r.sum(-1, keepdim=True)
    return r.reshape(-1, record.grid, record.grid)  # (B, g, g)


def text_attention(record: AttentionRecord, row: int = 0, query: str = "eot") -> tuple[list[str], Tensor]:
    """Head-averaged attention of one text prompt, every layer.

    query "eot": the EOT token's attention over the tokens (what the text feature reads) → (layers, L);
    query "slots": each learnable slot's attention → (layers, M, L). Returns (token labels, weights).
    """
    if not record.text or record.tokens is None:
        raise ValueError("this learner has no learnable text prompts to inspect (fixed or no text tower)")
    eot = int(record.eot[row % len(record.eot)])
    rows = [a[row].mean(0)[:, : eot + 1] for a in record.text]  # layers × (L', eot+1)
    if query == "eot":
        return record.labels[row], torch.stack([r[eot] for r in rows])  # (layers, L)
    if query == "slots":
        return record.labels[row], torch.stack([r[record.slots[row]] for r in rows])  # (layers, M, L)
    raise ValueError(f"query must be 'eot' or 'slots', got {query!r}")


# ----------------------------------------------------------------------------- coupling modules
@contextlib.contextmanager
def recording(learner: PromptLearner):
    """Within the block, every submodule with a `record` attribute (e.g. DCP's CMPA) records its
    attention weights into a fresh dict; yields {module name: that dict}. Restored afterwards."""
    modules = {name: m for name, m in learner.named_modules() if hasattr(m, "record")}
    for m in modules.values():
        m.record = {}
    try:
        yield {name: m.record for name, m in modules.items()}
    finally:
        for m in modules.values():
            m.record = None


@torch.no_grad()
def cross_modal_attention(learner: PromptLearner, images: Tensor) -> dict[str, list[Tensor]]:
    """The cross-modal prompt attention of a coupled learner, per prompted layer, head-averaged.

    Returns {"vision": [(M, M) per layer], "text": [...]}: for DCP's CMPA, "vision" holds the weights
    of the vision-prompt update (queries: projected text prompts, keys: vision prompts) and "text"
    those of the text-prompt update (queries: projected vision prompts, keys: text prompts),
    averaged over the fused groups. Raises for learners without a recording module
    (`records_cross_attention` False).
    """
    if not learner.records_cross_attention:
        raise ValueError(
            f"{learner.name!r} has no cross-modal attention module that can record "
            "(coupled methods with attention: dcp)"
        )
    learner.eval()
    with recording(learner) as records:
        learner.encode(images.to(learner.clip.device))
    out: dict[str, list[Tensor]] = {}
    for rec in records.values():
        for key, maps in rec.items():
            out.setdefault(key, []).extend(m.float().cpu().mean(dim=(0, 1)) for m in maps)  # (M, M)
    return out


# ----------------------------------------------------------------------------- figures
def upsample(maps: Tensor, size: int) -> Tensor:
    """(B, g, g) → (B, size, size) bilinear, each map rescaled to [0, 1] for display."""
    up = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    return (up - lo) / (hi - lo).clamp_min(1e-12)


def overlay_figure(
    pixels: np.ndarray, maps: dict[str, Tensor], titles: list[str] | None = None, opacity: float = 0.55, cell: int = 170
) -> go.Figure:
    """A grid: one row per image; the image, then each named map (B, g, g) upsampled over it.

    pixels (B, H, W, 3) uint8 from `image_batch`; maps {"prompt 1": (B, g, g), "CLS rollout": …}.
    """
    b, size = pixels.shape[0], pixels.shape[1]
    cols = 1 + len(maps)
    names = []
    for r in range(b):
        head = titles[r] if titles else f"image {r}"
        names += [head] + list(maps)
    fig = make_subplots(rows=b, cols=cols, subplot_titles=names, horizontal_spacing=0.01, vertical_spacing=0.04)
    ups = {k: upsample(v, size).numpy() for k, v in maps.items()}
    for r in range(b):
        fig.add_trace(go.Image(z=pixels[r]), row=r + 1, col=1)
        for c, (name, up) in enumerate(ups.items()):
            fig.add_trace(go.Image(z=pixels[r]), row=r + 1, col=c + 2)
            fig.add_trace(
                go.Heatmap(
                    z=up[r],
                    colorscale="Inferno",
                    opacity=opacity,
                    showscale=False,
                    hovertemplate=f"{name}<br>x %{{x}} y %{{y}}: %{{z:.2f}}<extra></extra>",
                ),
                row=r + 1,
                col=c + 2,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(height=cell * b + 40, width=cell * cols + 40, margin=dict(t=30, b=5, l=5, r=5))
    fig.update_annotations(font_size=11)
    return fig


def text_attention_figure(labels: list[str], weights: Tensor, title: str = "") -> go.Figure:
    """Heatmap of text attention: rows = layers (or layer × slot), columns = tokens.

    weights (layers, L) from `text_attention(query="eot")`, or (layers, M, L) for slots.
    """
    if weights.ndim == 3:
        layers, m, _ = weights.shape
        z = weights.reshape(layers * m, -1).numpy()
        rows = [f"L{i} ctx{k + 1}" for i in range(layers) for k in range(m)]
    else:
        z, rows = weights.numpy(), [f"layer {i}" for i in range(weights.shape[0])]
    cols = [f"{i}:{t}" for i, t in enumerate(labels)]  # unique column keys
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, colorscale="Viridis", colorbar=dict(title="weight")))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=title or "text attention (head average)",
        height=max(260, 22 * len(rows) + 120),
        margin=dict(t=50, b=60, l=90, r=20),
    )
    return fig


def cross_modal_figure(weights: dict[str, list[Tensor]], title: str = "") -> go.Figure:
    """One heatmap per (update, layer) of `cross_modal_attention`: rows = queries, columns = keys."""
    keys = list(weights)
    layers = max(len(v) for v in weights.values())
    names = [f"{k} update, layer {i + 1}" for k in keys for i in range(layers)]
    fig = make_subplots(
        rows=len(keys), cols=layers, subplot_titles=names, horizontal_spacing=0.03, vertical_spacing=0.12
    )
    for r, key in enumerate(keys):
        q, kv = ("text prompt", "vision prompt") if key == "vision" else ("vision prompt", "text prompt")
        for c, w in enumerate(weights[key]):
            fig.add_trace(
                go.Heatmap(
                    z=w.numpy(),
                    colorscale="Viridis",
                    coloraxis="coloraxis",
                    hovertemplate=f"{q} %{{y}} → {kv} %{{x}}: %{{z:.3f}}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=title or "cross-modal prompt attention (rows: queries, columns: keys)",
        coloraxis=dict(colorscale="Viridis"),
        height=260 * len(keys) + 80,
        margin=dict(t=80, b=20, l=30, r=20),
    )
    fig.update_annotations(font_size=11)
    return fig


def prompt_attention_figure(
    learner: PromptLearner, dataset, n: int = 4, prompts: int = 3, layer: int | str = -1
) -> go.Figure:
    """For n images of `dataset` (one per class): the image, where the first `prompts` visual prompt
    tokens look (layer `layer`, or "mean" over layers), and the CLS attention rollout."""
    images, pixels, labels = image_batch(dataset, learner.clip, n)
    rec = capture(learner, images)
    maps = prompt_patch_maps(rec, layer)
    named = {f"prompt {k + 1}": maps[:, k] for k in range(min(prompts, maps.shape[1]))}
    named["CLS rollout"] = cls_rollout(rec)
    return overlay_figure(pixels, named, titles=[dataset.classnames[y] for y in labels])


def rollout_figure(learners: dict[str, PromptLearner], dataset, n: int = 4) -> go.Figure:
    """CLS attention rollout of several learners on the same n images, one column per learner."""
    first = next(iter(learners.values()))
    images, pixels, labels = image_batch(dataset, first.clip, n)
    maps = {name: cls_rollout(capture(learner, images)) for name, learner in learners.items()}
    return overlay_figure(pixels, maps, titles=[dataset.classnames[y] for y in labels])


def cross_modal_figure_of(learner: PromptLearner, dataset, n: int = 8) -> go.Figure:
    """`cross_modal_figure` of a coupled learner on a batch of n images of `dataset`."""
    images, _, _ = image_batch(dataset, learner.clip, n)
    return cross_modal_figure(cross_modal_attention(learner, images))


def text_attention_figure_of(learner: PromptLearner, dataset, row: int = 0, query: str = "eot") -> go.Figure:
    """`text_attention_figure` of class `row`'s prompt (query "eot" or "slots") in the prompted forward."""
    images, _, _ = image_batch(dataset, learner.clip, 2)
    labels, weights = text_attention(capture(learner, images), row, query)
    who = "EOT (the text feature)" if query == "eot" else "each learnable slot"
    return text_attention_figure(labels, weights, f"what {who} attends to, per layer — {learner.name}")
