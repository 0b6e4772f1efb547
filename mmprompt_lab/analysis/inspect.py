"""What did the prompts learn, what do they depend on, and where does the model fail?

- `layer_inputs(learner, images)`: the token sequences entering every block of a real prompted forward
  (recorded through the learner's own `hook`; no forked model), with which prompt slots were written there.
- words: `context_words` — the nearest vocabulary words of each layer's text prompts, next to
  `vocabulary_scale` (how far apart real words are), so a distance can be read.
- vision prompts: `vision_prompt_stats` — prompt norms vs patch-token norms and similarity to patches.
- data coupling: `input_dependence` — do the written prompts change with the image, the class or the
  batch-mates, and does an image's prediction change when its batch-mates do?
- DAFE: `dafe_gates` — MAP-DAFE's gate values and the relative size of its input-dependent term.
- ablation: `ablate_tokens` — accuracy and logit change when one prompt token is zeroed.
- failures: `misclassified`, `gallery_figure`, `confused_pairs`, `failure_table`.

Letters: B images, C classes, N vision prompts, M text slots, P patches, T = 1 + P + N vision tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from ..engine.evaluate import evaluate, predict_logits
from ..learners.base import PromptLearner
from ..learners.prompts import gather_slots, vision_slots
from .vocab import learned_context, nearest_words


# ----------------------------------------------------------------------------- recording the forward
@dataclass
class LayerInput:
    """The sequences entering block `layer` (after the learner's hook wrote its prompts there).

    vision (B, T, Dv) or None; text (N, L', Dt) or None (N = C, or B·C for per-image text);
    `*_written`: whether the hook changed the prompt slots at this block (layer 0: the inserted prompts).
    """

    layer: int
    vision: Tensor | None = None
    text: Tensor | None = None
    vision_written: bool = False
    text_written: bool = False


def _text_slots(learner: PromptLearner, x: Tensor) -> Tensor:
    slots = learner.prompts.slots
    return slots.repeat(x.shape[0] // slots.shape[0], 1) if x.shape[0] != slots.shape[0] else slots


def _vision_count(learner: PromptLearner, x: Tensor) -> int:
    return x.shape[1] - 1 - learner.clip.num_patches  # N prompt tokens


@contextlib.contextmanager
def evaluating(*learners: PromptLearner):
    """Within the block the learners are in eval mode; each gets its own mode back afterwards."""
    modes = [lr.training for lr in learners]
    for lr in learners:
        lr.eval()
    try:
        yield
    finally:
        for lr, mode in zip(learners, modes, strict=True):
            lr.train(mode)


@contextlib.contextmanager
def _watching(learner: PromptLearner, sink: list[LayerInput]):
    """Within the block, every pass of `learner` appends one `LayerInput` per block to `sink`."""
    own = learner.hook

    def hook(state):
        inner = own(state)

        def step(i, text, vision):
            new_text, new_vision = inner(i, text, vision)
            rec = LayerInput(
                i, None if new_vision is None else new_vision.detach(), None if new_text is None else new_text.detach()
            )
            if new_vision is not None and learner.has_vision_prompts and _vision_count(learner, new_vision) > 0:
                n = _vision_count(learner, new_vision)
                rec.vision_written = i == 0 or not torch.equal(
                    vision_slots(vision, n, learner.vision_position),
                    vision_slots(new_vision, n, learner.vision_position),
                )
            if new_text is not None and learner.has_text_prompts:
                slots = _text_slots(learner, new_text)
                rec.text_written = i == 0 or not torch.equal(gather_slots(text, slots), gather_slots(new_text, slots))
            sink.append(rec)
            return new_text, new_vision

        return step

    learner.hook = hook  # an instance attribute shadows the method for this block only
    try:
        yield sink
    finally:
        del learner.hook


@torch.no_grad()
def layer_inputs(learner: PromptLearner, images: Tensor) -> list[LayerInput]:
    """One prompted forward of `images` (B, 3, H, W); the inputs of every block, both towers merged by layer.

    Example:
        >>> rec = layer_inputs(maple, images)
        >>> [r.vision_written for r in rec]      # MaPLe at depth 3 on ToyCLIP: [True, True, True, False]
    """
    sink: list[LayerInput] = []
    with evaluating(learner), _watching(learner, sink):
        learner.encode(images.to(learner.clip.device))
    merged: dict[int, LayerInput] = {}
    for rec in sink:  # a learner with hand-template text runs the towers in separate passes
        m = merged.setdefault(rec.layer, LayerInput(rec.layer))
        if rec.vision is not None:
            m.vision, m.vision_written = rec.vision, rec.vision_written
        if rec.text is not None:
            m.text, m.text_written = rec.text, rec.text_written
    return [merged[i] for i in sorted(merged)]


def written_prompts(learner: PromptLearner, records: list[LayerInput]) -> dict[str, dict[int, Tensor]]:
    """The prompt tokens the learner wrote at each block: {"vision": {layer: (B, N, Dv)},
    "text": {layer: (N_text, M, Dt)}} (layer 0: the inserted prompts; text layer 0 includes the positional
    embedding, as the tower sees it)."""
    out: dict[str, dict[int, Tensor]] = {"vision": {}, "text": {}}
    for r in records:
        if r.vision_written:
            out["vision"][r.layer] = vision_slots(r.vision, _vision_count(learner, r.vision), learner.vision_position)
        if r.text_written:
            out["text"][r.layer] = gather_slots(r.text, _text_slots(learner, r.text))
    return out


# ----------------------------------------------------------------------------- words
def vocabulary_scale(clip, sample: int = 2048, seed: int = 0) -> dict[str, float]:
    """How far apart real words are: the median norm of the used token embeddings, and the median Euclidean
    distance from a word to its nearest other word — the yardstick for `context_words`. The distance median is
    taken over `sample` words drawn with `seed` (all of them when there are fewer), each against the whole table."""
    table = clip.text.token_embedding.weight.detach().float().cpu()  # (V, Dt)
    table = table[table.abs().sum(-1) > 0]
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(table), generator=g)[:sample] if len(table) > sample else torch.arange(len(table))
    nearest = []
    for chunk in rows.split(256):  # (256, V) distances at a time, not the (V, V) matrix
        d = torch.cdist(table[chunk], table)  # (n, V)
        d[torch.arange(len(chunk)), chunk] = float("inf")  # not the word itself
        nearest.append(d.min(-1).values)
    return {
        "word_norm": float(table.norm(dim=-1).median()),
        "nearest_word_distance": float(torch.cat(nearest).median()),
    }


def context_words(
    learner: PromptLearner, images: Tensor | None = None, k: int = 3, metric: str = "euclidean"
) -> list[dict]:
    """Nearest words of each learnable text slot, at every block where the learner writes text prompts.

    Layer 0 is the learned context itself (`vocab.learned_context`); deeper layers are the vectors the
    learner writes into the slots before that block (MaPLe's P_i, DCP's CMPA output, …; class 0's row),
    which live in that block's hidden space, not the word-embedding space — their "words" are a hint at best.
    `images` are needed only for learners whose prompts depend on the batch (DCP).
    Returns rows {"layer", "slot", "words", "distance", "norm"} (distance to the nearest word).
    """
    rows = []
    vectors = {0: learned_context(learner)}  # (M, Dt)
    if learner.conditional and images is None:
        raise ValueError(f"{learner.name}'s deep prompts depend on the images: pass a batch of images")
    if learner.conditional:
        deep = written_prompts(learner, layer_inputs(learner, images))["text"]
    else:
        sink: list[LayerInput] = []
        with torch.no_grad(), _watching(learner, sink):
            learner.encode_text()
        deep = written_prompts(learner, sink)["text"]
    vectors |= {i: t[0].float().cpu() for i, t in deep.items() if i > 0}
    for layer, vecs in sorted(vectors.items()):
        words = nearest_words(learner.clip, vecs, k=k, metric=metric)
        for m, w in enumerate(words):
            rows.append(
                {
                    "layer": layer,
                    "slot": m + 1,
                    "words": [x for x, _ in w],
                    "distance": w[0][1],
                    "norm": float(vecs[m].norm()),
                }
            )
    return rows


def words_table(rows: list[dict], scale: dict | None = None, title: str = "") -> go.Figure:
    """`context_words` rows as a table; with `scale` (`vocabulary_scale`), distances also in units of the
    typical nearest-word distance."""
    header = ["layer", "slot", "nearest words", "distance", "norm"] + (["× word spacing"] if scale else [])
    cols = [
        [r["layer"] for r in rows],
        [f"ctx{r['slot']}" for r in rows],
        [", ".join(r["words"]) for r in rows],
        [f"{r['distance']:.2f}" for r in rows],
        [f"{r['norm']:.2f}" for r in rows],
    ]
    if scale:
        cols.append([f"{r['distance'] / scale['nearest_word_distance']:.1f}" for r in rows])
    fig = go.Figure(go.Table(header=dict(values=header), cells=dict(values=cols)))
    fig.update_layout(
        title=title or None, height=90 + 26 * len(rows), margin=dict(t=40 if title else 10, b=10, l=10, r=10)
    )
    return fig


# ----------------------------------------------------------------------------- vision prompts
def vision_prompt_stats(learner: PromptLearner, images: Tensor) -> list[dict]:
    """Per block: how the vision prompt tokens entering it compare with the image's own tokens.

    Rows {"layer", "written" (the learner put fresh prompts there), "prompt_norm", "patch_norm", "cls_norm"
    (mean L2 norms), "max_cos_patch" (mean over prompts and images of the highest cosine similarity to any
    patch token), "mean_cos_patch", "spread" (how much the prompts differ between the images of the batch,
    relative to their norm: 0 = the same tokens for every image)}.
    """
    if not learner.has_vision_prompts:
        raise ValueError(f"{learner.name!r} has no vision prompts")
    rows = []
    for r in layer_inputs(learner, images):
        if r.vision is None:
            continue
        x = r.vision.float()  # (B, T, Dv)
        n = _vision_count(learner, x)
        prompts = vision_slots(x, n, learner.vision_position)  # (B, N, Dv)
        patches = (
            x[:, -learner.clip.num_patches :]
            if learner.vision_position == "after_cls"
            else x[:, 1 : 1 + learner.clip.num_patches]
        )  # (B, P, Dv)
        cos = F.normalize(prompts, dim=-1) @ F.normalize(patches, dim=-1).transpose(1, 2)  # (B, N, P)
        rows.append(
            {
                "layer": r.layer,
                "written": r.vision_written,
                "prompt_norm": float(prompts.norm(dim=-1).mean()),
                "patch_norm": float(patches.norm(dim=-1).mean()),
                "cls_norm": float(x[:, 0].norm(dim=-1).mean()),
                "max_cos_patch": float(cos.amax(-1).mean()),
                "mean_cos_patch": float(cos.mean()),
                "spread": _spread(prompts),
            }
        )
    return rows


def _spread(x: Tensor) -> float:
    """Mean distance of each group member to the group mean, over the mean norm (x: (G, ...))."""
    x = x.float().flatten(1)
    if x.shape[0] < 2 or bool((x == x[:1]).all()):  # identical members: exactly 0, not the mean's rounding
        return 0.0
    return float((x - x.mean(0)).norm(dim=-1).mean() / x.norm(dim=-1).mean().clamp_min(1e-12))


def stats_table(rows: list[dict], title: str = "", digits: int = 3) -> go.Figure:
    """Any list of flat dict rows (e.g. `vision_prompt_stats`, `dafe_gates`, `ablate_tokens`) as a table."""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v))

    cells = [[fmt(r.get(c)) for r in rows] for c in cols]
    fig = go.Figure(go.Table(header=dict(values=cols), cells=dict(values=cells)))
    fig.update_layout(
        title=title or None, height=90 + 26 * len(rows), margin=dict(t=40 if title else 10, b=10, l=10, r=10)
    )
    return fig


# ----------------------------------------------------------------------------- data coupling
@torch.no_grad()
def input_dependence(learner: PromptLearner, images: Tensor, other_images: Tensor) -> dict:
    """What a learner's *written* prompts (blocks ≥ 1, where the learner puts fresh prompts) depend on.

    images (B, 3, H, W); other_images (B', 3, H, W), used as different batch-mates for images[0].
    Returns {"vision_across_images": spread of the written vision prompts over the images of one batch
    (0 = one prompt set for every image), "text_across_classes": spread of the written text prompts over
    the classes, "text_with_images": relative change of the written text prompts when the batch changes,
    "logits_with_batchmates": max |Δ logit| of images[0] when its batch-mates are replaced by
    `other_images` (0 = predictions do not depend on the rest of the batch)}. Spreads are means over
    the written blocks (0 when there are none).
    """

    def written(batch):
        return written_prompts(learner, layer_inputs(learner, batch))

    a = written(images)
    b = written(torch.cat([images[:1], other_images]))
    deep_v = [v for i, v in a["vision"].items() if i > 0]
    deep_t = {i: t for i, t in a["text"].items() if i > 0}
    text_change = [
        float((deep_t[i] - b["text"][i]).norm() / deep_t[i].norm().clamp_min(1e-12))
        for i in deep_t
        if i in b["text"] and b["text"][i].shape == deep_t[i].shape
    ]
    device = learner.clip.device
    with evaluating(learner):
        first = learner(images.to(device))[0]  # (C,)
        second = learner(torch.cat([images[:1], other_images]).to(device))[0]  # (C,)
    return {
        "vision_across_images": float(np.mean([_spread(v) for v in deep_v])) if deep_v else 0.0,
        "text_across_classes": float(np.mean([_spread(t) for t in deep_t.values()])) if deep_t else 0.0,
        "text_with_images": float(np.mean(text_change)) if text_change else 0.0,
        "logits_with_batchmates": float((first - second).abs().max()),
    }


def dependence_table(learners: dict[str, PromptLearner], images: Tensor, other_images: Tensor) -> go.Figure:
    """`input_dependence` of several learners as one table (rows = learners)."""
    rows = [{"method": name, **input_dependence(lr, images, other_images)} for name, lr in learners.items()]
    return stats_table(rows, digits=4)


def batch_sensitivity(
    learner: PromptLearner, dataset, batch_sizes: Sequence[int] = (1, 4, 16, 100)
) -> dict[int, float]:
    """Accuracy (%) on `dataset` when it is scored in batches of each size. Equal for every size unless the
    learner couples the images of a batch (DCP's mean fusing): then a prediction depends on its batch-mates."""
    return {b: evaluate(learner, dataset, batch_size=b)["accuracy"] for b in batch_sizes}


# ----------------------------------------------------------------------------- DAFE
@torch.no_grad()
def dafe_gates(learner: PromptLearner, images: Tensor | None = None) -> list[dict]:
    """MAP-DAFE's gates per tower and block: rows {"tower", "layer", "gate" (kind), "value" (channel: mean |g|;
    input: mean σ(b), the gate at an all-zero input; convex: α), "max" (channel: max |g|), and with `images`
    "dafe_share": ‖X − P‖ / ‖P‖, how far the input-dependent term moves the prompts from the task-level ones}.
    Read from the learner's own parameters; `images` runs one forward with hooks on the DAFE modules."""
    towers = {t: getattr(learner, f"{t}_dafe", None) for t in ("text", "vision")}
    if not all(isinstance(m, torch.nn.ModuleList) for m in towers.values()):
        raise ValueError(f"{learner.name!r} has no DAFE modules (map_dafe has text_dafe and vision_dafe)")
    shares: dict[tuple[str, int], float] = {}
    if images is not None:
        handles = []
        for tower, mods in towers.items():
            for k, mod in enumerate(mods):

                def hook(module, args, out, key=(tower, k + 1)):
                    p = args[0]
                    shares[key] = float((out - p).norm() / (p.norm() * out.shape[0] ** 0.5).clamp_min(1e-12))

                handles.append(mod.register_forward_hook(hook))
        try:
            layer_inputs(learner, images)
        finally:
            for h in handles:
                h.remove()
    rows = []
    for tower, mods in towers.items():
        for k, mod in enumerate(mods):
            row = {"tower": tower, "layer": k + 1, "gate": mod.kind}
            if mod.kind == "channel":
                row |= {"value": float(mod.gate.abs().mean()), "max": float(mod.gate.abs().max())}
            elif mod.kind == "input":
                row |= {"value": float(torch.sigmoid(mod.gate.bias).mean()), "max": None}
            else:
                row |= {"value": float(torch.sigmoid(mod.gate)), "max": None}
            if images is not None:
                row["dafe_share"] = shares.get((tower, k + 1))
            rows.append(row)
    return rows


@contextlib.contextmanager
def dafe_off(learner: PromptLearner):
    """Within the block, every DAFE module returns its task-level prompts P unchanged (X = P): MAP-DAFE
    without its input-dependent term, the same trained parameters otherwise."""
    mods = [m for name in ("text_dafe", "vision_dafe") for m in getattr(learner, name, [])]
    if not mods:
        raise ValueError(f"{learner.name!r} has no DAFE modules")
    handles = [m.register_forward_hook(lambda module, args, out: args[0].expand_as(out)) for m in mods]
    try:
        yield learner
    finally:
        for h in handles:
            h.remove()


def dafe_off_accuracy(learner: PromptLearner, tests: dict) -> list[dict]:
    """Per test set ({name: dataset}, e.g. a run's `tests`): a MAP-DAFE learner's accuracy with DAFE and with DAFE
    switched off at test time (`dafe_off`): rows {"test set", "with DAFE", "without DAFE", "DAFE buys" (points)}."""
    rows = []
    for key, ds in tests.items():
        on = evaluate(learner, ds)["accuracy"]
        with dafe_off(learner):
            off = evaluate(learner, ds)["accuracy"]
        rows.append({"test set": key, "with DAFE": on, "without DAFE": off, "DAFE buys": on - off})
    return rows


# ----------------------------------------------------------------------------- ablation
@torch.no_grad()
def ablate_tokens(
    learner: PromptLearner,
    dataset,
    parameter: str = "vision_ctx",
    tokens: Sequence[int] | None = None,
    batch_size: int | None = None,
) -> list[dict]:
    """Zero one prompt token at a time (row k of the learner's parameter `parameter`, e.g. "vision_ctx",
    "ctx", "deep_text.0") and score `dataset` again. The learner is restored afterwards.

    Returns rows {"token" (1-based), "accuracy", "delta_accuracy" (points vs. the intact learner),
    "delta_true_logit" (mean change of the true class's logit)}, preceded by a row for the intact learner
    (token 0).
    """
    params = dict(learner.named_parameters())
    if parameter not in params:
        raise ValueError(
            f"{learner.name} has no parameter {parameter!r}; prompt parameters: "
            f"{[n for n, p in params.items() if p.ndim == 2][:10]}"
        )
    p = params[parameter]
    rows_of = p.shape[-2] if p.ndim >= 2 else 1
    tokens = list(range(rows_of)) if tokens is None else list(tokens)

    def scored():
        logits, labels = predict_logits(learner, dataset, batch_size=batch_size)
        true = logits.gather(1, labels[:, None])[:, 0]
        return float((logits.argmax(-1) == labels).double().mean() * 100), true

    base_acc, base_true = scored()
    rows = [{"token": 0, "accuracy": base_acc, "delta_accuracy": 0.0, "delta_true_logit": 0.0}]
    keep = p.detach().clone()
    try:
        for k in tokens:
            p[..., k, :] = 0.0
            acc, true = scored()
            rows.append(
                {
                    "token": k + 1,
                    "accuracy": acc,
                    "delta_accuracy": acc - base_acc,
                    "delta_true_logit": float((true - base_true).mean()),
                }
            )
            p.copy_(keep)
    finally:
        p.copy_(keep)
    return rows


def attention_received(weights: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    """From DCP's `cross_modal_attention` ({"vision": [(M, M) per layer], "text": [...]}; rows = queries, columns =
    keys): the mean attention each prompt token receives as a key, over queries and layers → {"vision_ctx": (M,),
    "ctx": (M,)} (the vision update's keys are the vision prompts, the text update's keys the text prompts), named
    as the layer-0 parameters `ablate_tokens` zeroes."""
    names = {"vision": "vision_ctx", "text": "ctx"}
    return {names[k]: torch.stack(v).mean(dim=(0, 1)) for k, v in weights.items() if v and k in names}


def ablation_figure(
    rows: dict[str, list[dict]], attention: dict[str, Tensor] | None = None, title: str = ""
) -> go.Figure:
    """Bars of the accuracy change per ablated token, one trace per ablated parameter (`ablate_tokens` rows);
    with `attention` ({name: (M,) attention each token receives}), the attention as a line on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": attention is not None}]])
    for name, rs in rows.items():
        rs = [r for r in rs if r["token"] > 0]
        fig.add_bar(x=[f"token {r['token']}" for r in rs], y=[r["delta_accuracy"] for r in rs], name=f"Δ acc, {name}")
    for name, att in (attention or {}).items():
        fig.add_scatter(
            x=[f"token {k + 1}" for k in range(len(att))],
            y=att.tolist(),
            mode="lines+markers",
            name=f"attention received, {name}",
            secondary_y=True,
        )
    fig.update_layout(
        barmode="group",
        title=title or "accuracy change when one prompt token is zeroed (points)",
        height=360,
        margin=dict(t=50, b=40, l=50, r=20),
    )
    fig.update_yaxes(title_text="Δ accuracy (points)", secondary_y=False)
    if attention is not None:
        fig.update_yaxes(title_text="attention received", secondary_y=True)
    return fig


# ----------------------------------------------------------------------------- failures
@torch.no_grad()
def misclassified(learner: PromptLearner, dataset, n: int = 12, batch_size: int | None = None) -> list[dict]:
    """The `n` most confident mistakes on `dataset` (scored with the dataset's class names).

    Rows {"index" (into dataset.items), "true", "predicted", "confidence" (softmax of the predicted class),
    "true_prob"}, most confident first.
    """
    logits, labels = predict_logits(learner, dataset, batch_size=batch_size)
    probs = logits.softmax(-1)
    pred = probs.argmax(-1)
    wrong = (pred != labels).nonzero()[:, 0]
    order = wrong[probs[wrong, pred[wrong]].argsort(descending=True)][:n]
    names = dataset.classnames
    return [
        {
            "index": int(i),
            "true": names[int(labels[i])],
            "predicted": names[int(pred[i])],
            "confidence": float(probs[i, pred[i]]),
            "true_prob": float(probs[i, labels[i]]),
        }
        for i in order
    ]


def gallery_figure(dataset, rows: list[dict], cols: int = 6, cell: int = 110, title: str = "") -> go.Figure:
    """The images of `misclassified` rows in a grid, each titled "true → predicted (confidence)"."""
    if not rows:  # a one-cell table, so the figure still says something
        fig = go.Figure(
            go.Table(
                header=dict(values=["mistakes"]), cells=dict(values=[[f"none on {dataset.name} ({dataset.split})"]])
            )
        )
        fig.update_layout(title=title or "no mistakes", height=120, margin=dict(t=40, b=10, l=10, r=10))
        return fig
    r = (len(rows) + cols - 1) // cols
    titles = [f"{x['true']} → {x['predicted']} ({x['confidence']:.2f})" for x in rows]
    fig = make_subplots(rows=r, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    for k, row in enumerate(rows):
        image = dataset.source.load_image(dataset.items[row["index"]]).convert("RGB")
        fig.add_trace(go.Image(z=np.asarray(image)), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        title=title or f"most confident mistakes on {dataset.name} ({dataset.split})",
        height=cell * r + 70,
        width=cell * cols + 40,
        margin=dict(t=60, b=5, l=5, r=5),
    )
    fig.update_annotations(font_size=9)
    return fig


def confused_pairs(confusion, classnames: Sequence[str], k: int = 5, symmetric: bool = False) -> list[dict]:
    """The k most frequent confusions of a confusion matrix (rows = true class, columns = predicted, as
    `evaluate` returns it).

    Directed (default): rows {"true", "predicted", "count", "rate" (% of the true class's images)}.
    symmetric: a and b mixed up either way, rows {"pair" (a, b), "count", "rate" (% of both classes' images)}.
    Ties keep matrix order; pairs with count 0 are left out.
    """
    m = np.asarray(confusion, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(classnames):
        raise ValueError(f"confusion must be C × C with C = {len(classnames)} class names, got shape {m.shape}")
    support = m.sum(1)
    out = []
    if symmetric:
        for a in range(len(m)):
            for b in range(a + 1, len(m)):
                count = int(m[a, b] + m[b, a])
                if count:
                    out.append(
                        {
                            "pair": (classnames[a], classnames[b]),
                            "count": count,
                            "rate": 100.0 * count / max(int(support[a] + support[b]), 1),
                        }
                    )
    else:
        for a in range(len(m)):
            for b in range(len(m)):
                if a != b and m[a, b]:
                    out.append(
                        {
                            "true": classnames[a],
                            "predicted": classnames[b],
                            "count": int(m[a, b]),
                            "rate": 100.0 * int(m[a, b]) / max(int(support[a]), 1),
                        }
                    )
    return sorted(out, key=lambda r: -r["count"])[:k]  # sorted() is stable: ties keep matrix order


def failure_table(result, k: int = 2) -> go.Figure:
    """Per test set of an experiment result (base, novel, shifted suites): accuracy, the worst class and the
    k most frequent confusions."""
    names, acc, worst, pairs = [], [], [], []
    for key, ev in result.evaluations.items():
        classes = result.tests[key].classnames
        per_class = ev["per_class_accuracy"]
        w = min(per_class, key=per_class.get)
        names.append(key)
        acc.append(f"{ev['accuracy']:.1f}")
        worst.append(f"{w} ({per_class[w]:.0f} %)")
        pairs.append(
            "; ".join(
                f"{p['true']} → {p['predicted']} ×{p['count']}" for p in confused_pairs(ev["confusion"], classes, k=k)
            )
        )
    header = ["test set", "accuracy %", "worst class", "most confused (true → predicted)"]
    fig = go.Figure(go.Table(header=dict(values=header), cells=dict(values=[names, acc, worst, pairs])))
    fig.update_layout(height=80 + 32 * len(names), margin=dict(t=10, b=10, l=10, r=10))
    return fig


__all__ = [
    "LayerInput",
    "ablate_tokens",
    "ablation_figure",
    "attention_received",
    "batch_sensitivity",
    "confused_pairs",
    "context_words",
    "dafe_gates",
    "dafe_off",
    "dafe_off_accuracy",
    "dependence_table",
    "failure_table",
    "gallery_figure",
    "input_dependence",
    "layer_inputs",
    "misclassified",
    "stats_table",
    "vision_prompt_stats",
    "vocabulary_scale",
    "words_table",
    "written_prompts",
]
