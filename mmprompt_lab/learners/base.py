"""Shared machinery of every prompt learner (STYLE.md rule 1): config checking, text prompt assembly
with learnable slots, word-initialised context, deep replacement in either tower, cached fixed text
features, official-state-dict import.

A learner is an `nn.Module` around a `FrozenCLIP` that decides which tokens to insert or replace
before each block. Subclasses override a few hooks:

    text_prompts()          -> (C, L, Dt) layer-0 prompt embeddings (context spliced into slots)
    vision_prompts()        -> (N, Dv) layer-0 visual prompts, or None
    layer(i, text, vision)  -> (text, vision), called before block i (deep prompts, coupling)

`forward(images) -> (B, C)` logits. Learners whose text features do not depend on the images
(`conditional = False`) let the engine compute text features once per evaluation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbone import FrozenCLIP
from ..config import build_config

CTX = "{ctx}"  # marks a run of learnable context tokens in a prompt template
VISION_POSITIONS = ("end", "after_cls")


@dataclass(frozen=True)
class TrainPreset:
    """Official optimisation settings of a method (METHODS.md); `fit` uses them for unset arguments."""

    lr: float = 0.002
    batch_size: int = 4
    epochs: int = 5
    eval_batch_size: int = 100


@dataclass(frozen=True)
class LearnerConfig:
    """Base of every learner config. Fields set to None in overrides keep their default."""

    @classmethod
    def from_overrides(cls, **overrides: Any) -> "LearnerConfig":
        """Build a config, rejecting unknown keys with a suggestion (STYLE.md rule 5)."""
        return build_config(cls, overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(condition: bool, message: str) -> None:
    """Config validation helper: raise ValueError(message) when `condition` is false."""
    if not condition:
        raise ValueError(message)


# ---------------------------------------------------------------------------- text prompts
class PromptTokens(nn.Module):
    """Tokenised class prompts with learnable slots.

    `template` is a prompt with `{}` for the class name and `{ctx}` for each run of learnable
    tokens, e.g. "{ctx} {}." (CoOp), "{ctx} of a {}." (MaPLe: "a photo" learnable, "of a" fixed),
    "{ctx} {} {ctx}." (class in the middle), "a photo of a {}. {ctx}" (MAP-DAFE). `runs` gives the
    length of each `{ctx}` run. `fill` gives the words rendered at the slots while tokenising
    (the init phrase, else "X"); they are replaced by the context at forward time.

    Buffers (C classes, L context length, M slots in total):
        embeddings (C, L, Dt) frozen token embeddings; slots (C, M) slot positions; eot (C,).
    """

    def __init__(self, clip: FrozenCLIP, classnames: list[str], template: str, runs: list[int],
                 fill: list[str] | None = None):
        super().__init__()
        check(template.count(CTX) == len(runs), f"template {template!r} has {template.count(CTX)} "
              f"{CTX} runs but {len(runs)} run lengths were given")
        check(all(r >= 0 for r in runs), f"context run lengths must be ≥ 0, got {runs}")
        self.clip, self.template, self.runs = [clip], template, list(runs)
        fill = fill if fill is not None else ["X"] * sum(runs)
        check(len(fill) == sum(runs), f"{len(fill)} fill words for {sum(runs)} slots")
        self.fill = fill
        self.set_classnames(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        """Rebuild the class-dependent buffers (e.g. base → novel)."""
        classnames = list(classnames)
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        clip = self.clip[0]
        tok = clip.tokenizer
        rows, slot_rows = [], []
        for name in classnames:
            text = self.template.replace("{}", name.replace("_", " "))
            pieces = text.split(CTX)  # literal pieces around the runs; runs sit between spaces
            ids, slots, k = [tok.sot_token_id], [], 0
            for n, piece in enumerate(pieces):
                ids += tok.encode(piece) if piece.strip() else []
                if n < len(self.runs):
                    words = self.fill[k:k + self.runs[n]]
                    for word in words:  # one token per slot, like the official "X X X X"
                        word_ids = tok.encode(word)
                        check(len(word_ids) == 1, f"context word {word!r} is {len(word_ids)} tokens; "
                              "each learnable slot takes one token")
                        slots.append(len(ids))
                        ids += word_ids
                    k += self.runs[n]
            ids.append(tok.eot_token_id)
            if len(ids) > clip.context_length:
                raise ValueError(f"the prompt for class {name!r} has {len(ids)} tokens with the context; "
                                 f"this model's context length is {clip.context_length}")
            rows.append(ids + [0] * (clip.context_length - len(ids)))
            slot_rows.append(slots)
        tokens = torch.tensor(rows, device=clip.device)  # (C, L)
        self.classnames = classnames
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("eot", tokens.argmax(dim=-1), persistent=False)  # (C,)
        self.register_buffer("slots", torch.tensor(slot_rows, dtype=torch.long, device=clip.device)
                             .reshape(len(rows), -1), persistent=False)  # (C, M)
        with torch.no_grad():
            self.register_buffer("embeddings", clip.token_embedding(tokens), persistent=False)  # (C, L, Dt)

    def init_vectors(self) -> Tensor:
        """(M, Dt) embeddings of the fill words at the slots of class 0: word-initialised context."""
        return self.embeddings[0, self.slots[0]].clone()

    def assemble(self, ctx: Tensor) -> Tensor:
        """Splice context into the slots. ctx (M, Dt), (C, M, Dt) or (N·C, M, Dt) → (·, L, Dt)."""
        emb, slots = self.embeddings, self.slots
        if ctx.ndim == 3 and ctx.shape[0] != emb.shape[0]:  # per image × class (conditional)
            reps = ctx.shape[0] // emb.shape[0]
            emb, slots = emb.repeat(reps, 1, 1), slots.repeat(reps, 1)
        ctx = ctx.expand(emb.shape[0], -1, -1) if ctx.ndim == 2 else ctx  # (·, M, Dt)
        return replace_slots(emb, slots, ctx)


def replace_slots(x: Tensor, slots: Tensor, values: Tensor) -> Tensor:
    """x (N, L, D) with x[n, slots[n, k]] ← values[n, k]; slots (N or 1, M), values (N, M, D) or (M, D)."""
    n, m, d = x.shape[0], slots.shape[-1], x.shape[-1]
    index = slots.expand(n, m).unsqueeze(-1).expand(n, m, d)  # (N, M, D)
    return x.scatter(1, index, values.expand(n, m, d).to(x.dtype))


def gather_slots(x: Tensor, slots: Tensor) -> Tensor:
    """x (N, L, D), slots (N or 1, M) → (N, M, D): the hidden states at the prompt slots."""
    n, m, d = x.shape[0], slots.shape[-1], x.shape[-1]
    return x.gather(1, slots.expand(n, m).unsqueeze(-1).expand(n, m, d))


def word_init(clip: FrozenCLIP, phrase: str, n: int) -> Tensor:
    """(n, Dt) token embeddings of the first n words of `phrase` (official word initialisation)."""
    ids = clip.tokenizer.encode(phrase)
    check(len(ids) >= n, f"init phrase {phrase!r} has {len(ids)} tokens, fewer than n_ctx={n}")
    with torch.no_grad():
        return clip.token_embedding(torch.tensor(ids[:n])).clone()


def init_phrase_words(clip: FrozenCLIP, phrase: str | None, n: int) -> tuple[list[str], str]:
    """Split a word-init phrase into the n learnable words and the fixed rest ("a photo", "of a")."""
    if not phrase:
        return ["X"] * n, ""
    words = [clip.tokenizer.decoder[i].replace("</w>", "") for i in clip.tokenizer.encode(phrase)]
    check(len(words) >= n, f"init phrase {phrase!r} has {len(words)} tokens, fewer than n_ctx={n}")
    return words[:n], " ".join(words[n:])


def normal_(*shape: int, std: float = 0.02) -> nn.Parameter:
    """A parameter drawn from N(0, std²) — the official init of context and deep prompts."""
    return nn.Parameter(torch.randn(*shape) * std)


# ---------------------------------------------------------------------------- vision prompts
def insert_vision(x: Tensor, prompts: Tensor, position: str) -> Tensor:
    """Insert prompts into vision tokens. x (B, T, Dv), prompts (N, Dv) or (B, N, Dv) → (B, T+N, Dv).

    "end": after all tokens (MaPLe, IVLP, VPT, DCP); "after_cls": right after the class token (UPT).
    """
    p = prompts.expand(x.shape[0], -1, -1).to(x.dtype) if prompts.ndim == 2 else prompts.to(x.dtype)
    if position == "end":
        return torch.cat([x, p], dim=1)
    return torch.cat([x[:, :1], p, x[:, 1:]], dim=1)


def replace_vision(x: Tensor, prompts: Tensor, position: str) -> Tensor:
    """Replace the N prompt tokens of x (B, T, Dv) by prompts (N, Dv) or (B, N, Dv)."""
    n = prompts.shape[-2]
    p = prompts.expand(x.shape[0], -1, -1).to(x.dtype) if prompts.ndim == 2 else prompts.to(x.dtype)
    if position == "end":
        return torch.cat([x[:, :-n], p], dim=1)
    return torch.cat([x[:, :1], p, x[:, 1 + n:]], dim=1)


def vision_slots(x: Tensor, n: int, position: str) -> Tensor:
    """The N prompt tokens of x (B, T, Dv) → (B, N, Dv)."""
    return x[:, -n:] if position == "end" else x[:, 1:1 + n]


# ---------------------------------------------------------------------------- the learner
class PromptLearner(nn.Module):
    """Base class: a frozen CLIP plus learnable prompts. `forward(images (B,3,H,W)) -> (B, C)`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[LearnerConfig]] = LearnerConfig
    preset: ClassVar[TrainPreset] = TrainPreset()
    conditional: ClassVar[bool] = False  # text features depend on the images (no caching)
    vision_position: ClassVar[str] = "end"  # where visual prompts sit: "end" or "after_cls"
    vision_before_ln_pre: ClassVar[bool] = True  # layer-0 visual prompts go through ln_pre

    # config field → (official depth on a 12-block tower, which tower bounds it: "text" | "vision" | "both")
    depth_fields: ClassVar[dict[str, tuple[int, str]]] = {}

    def __init__(self, clip: FrozenCLIP, classnames: list[str], config: LearnerConfig):
        super().__init__()
        if not isinstance(clip, FrozenCLIP):
            raise TypeError(f"expected a FrozenCLIP from mmprompt_lab.load_clip, got {type(clip).__name__}")
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        self.clip = clip
        self.config = resolve_depths(config, self.depth_fields, clip, type(self).name)
        self.classnames = list(classnames)
        self._fixed_text: Tensor | None = None

    # -- hooks ---------------------------------------------------------------------------
    def text_prompts(self) -> tuple[Tensor, Tensor]:
        """Layer-0 prompt embeddings (C, L, Dt) and EOT positions (C,). Subclasses override."""
        raise NotImplementedError

    def vision_prompts(self) -> Tensor | None:
        """Layer-0 visual prompts (N, Dv), or None for an untouched image tower."""
        return None

    def layer(self, i: int, text: Tensor | None, vision: Tensor | None):
        """Called before block i with both towers' states; returns them (possibly with new prompts)."""
        return text, vision

    def set_classnames(self, classnames: list[str]) -> None:
        """Switch class names (base → novel); only class-dependent buffers are rebuilt."""
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        self.classnames = list(classnames)
        self._fixed_text = None
        for module in self.modules():
            if isinstance(module, PromptTokens):
                module.set_classnames(self.classnames)

    @contextlib.contextmanager
    def use_classnames(self, classnames: list[str]) -> Iterator["PromptLearner"]:
        """Temporarily switch to other class names (base → novel, source → target), restoring the
        learner's own on exit — so evaluating on other classes never changes the learner.

            with learner.use_classnames(novel.classnames):
                logits = learner(images)  # (B, C_novel)
        """
        own = list(self.classnames)
        if list(classnames) == own:
            yield self
            return
        self.set_classnames(classnames)
        try:
            yield self
        finally:
            self.set_classnames(own)

    # -- the forward ----------------------------------------------------------------------
    def vision_input(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, T, Dv) tokens entering block 0, with the layer-0 visual prompts."""
        x = self.clip.embed_image(images)  # (B, 1+P, Dv)
        prompts = self.vision_prompts()
        if prompts is None:
            return self.clip.ln_pre(x)
        if self.vision_before_ln_pre:
            return self.clip.ln_pre(insert_vision(x, prompts, self.vision_position))  # (B, T, Dv)
        return insert_vision(self.clip.ln_pre(x), prompts, self.vision_position)  # (B, T, Dv)

    def encode_text(self) -> Tensor:
        """(C, E) text features of the current prompts (unnormalised)."""
        emb, eot = self.text_prompts()
        x, mask = self.clip.start_text(emb, eot)  # (C, L', Dt)
        x, _ = self.clip.run(x, None, self.layer, text_mask=mask)
        return self.clip.pool_text(x, eot)  # (C, E)

    def encode_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, E) image features (unnormalised)."""
        _, v = self.clip.run(None, self.vision_input(images), self.layer)
        return self.clip.pool_image(v)  # (B, E)

    def encode(self, images: Tensor, attention: dict | None = None) -> tuple[Tensor, Tensor]:
        """Both towers in lockstep: → image features (B, E), text features (C, E) or (B, C, E)."""
        emb, eot = self.text_prompts()
        t, mask = self.clip.start_text(emb, eot)
        t, v = self.clip.run(t, self.vision_input(images), self.layer, text_mask=mask, attention=attention)
        return self.clip.pool_image(v), self.clip.pool_text(t, eot)

    def logits(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """(B, E) × (C, E) or (B, C, E) → (B, C) scaled cosine similarities."""
        img, txt = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        scale = self.clip.logit_scale
        if txt.ndim == 3:
            return scale * torch.einsum("be,bce->bc", img, txt)  # (B, C)
        return scale * img @ txt.t()  # (B, C)

    def forward(self, images: Tensor, text_features: Tensor | None = None,
                labels: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """(B, 3, H, W) preprocessed images → (B, C) logits. `text_features` reuses cached ones.
        With `labels` (B,) → (loss, logits) from `training_loss` (one entry point, so DDP sees it)."""
        if labels is not None:
            return self.training_loss(images, labels)
        if text_features is not None and not self.conditional:
            return self.logits(self.encode_image(images), text_features)
        if self.conditional:
            return self.logits(*self.encode(images))
        return self.logits(self.encode_image(images), self.encode_text())

    # -- training hooks (the engine's seam for regularisers and schedules) --------------------
    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The loss `fit` minimises and the logits it reports: (scalar loss, (B, C) logits).
        Default: cross-entropy on the scaled cosine logits. A learner adds its own terms here
        (e.g. a pull toward the frozen CLIP's features) from the same forward pass."""
        logits = self(images)  # (B, C)
        return F.cross_entropy(logits.float(), labels), logits

    def on_epoch_end(self, epoch: int, epochs: int) -> None:
        """Called by `fit` after each finished epoch (0-based `epoch` of `epochs`); e.g. to update
        an aggregate of the prompts over epochs. Any state it keeps must be in buffers or
        parameters, so that an epoch checkpoint restores it."""

    # -- helpers for learners with fixed (hand-template) text --------------------------------
    def fixed_text_features(self, templates: Iterable[str]) -> Tensor:
        """(C, E) frozen features of hand templates, averaged over templates after normalising."""
        if self._fixed_text is None or self._fixed_text.device != self.clip.device:
            with torch.no_grad():
                feats = [F.normalize(self.clip.encode_text([t.format(c.replace("_", " ")) for c in self.classnames]), dim=-1)
                         for t in templates]
                self._fixed_text = F.normalize(torch.stack(feats).mean(0), dim=-1)  # (C, E)
        return self._fixed_text

    # -- state ---------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def learner_state_dict(self) -> dict[str, Tensor]:
        """Only the learner's own state (no frozen CLIP): what checkpoints store."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}

    def load_learner_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load `learner_state_dict()` output; missing or unexpected keys raise."""
        own = self.learner_state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{self.name} state mismatch: missing {missing}, unexpected {unexpected}")
        for key, value in state.items():
            if own[key].shape != value.shape:
                raise ValueError(f"{self.name} parameter {key!r} has shape {tuple(own[key].shape)}, "
                                 f"the checkpoint has {tuple(value.shape)} (different backbone or settings?)")
        self.load_state_dict({**state, **{k: v for k, v in self.state_dict().items() if k.startswith("clip.")}})

    # -- official checkpoints ----------------------------------------------------------------
    def official_names(self) -> dict[str, str]:
        """Official parameter name → ours. Names are given without the `prompt_learner.` prefix
        where the official code uses it; both forms are accepted on import."""
        return {}

    def load_official_state_dict(self, state: Mapping[str, Tensor]) -> list[str]:
        """Import a released checkpoint's tensors by their official names (METHODS.md).

        Accepts keys with or without a `prompt_learner.` / `module.` prefix, ignores the frozen
        CLIP's weights and class-dependent buffers (`token_prefix`, `token_suffix`), checks shapes,
        and requires every trainable tensor of this learner. Returns the ignored keys.
        """
        mapping = self.official_names()
        targets = dict(self.named_parameters())
        found: dict[str, Tensor] = {}
        ignored = []
        for key, value in state.items():
            name = re.sub(r"^(module\.)?", "", key)
            ours = mapping.get(name) or mapping.get(re.sub(r"^prompt_learner\.", "", name)) \
                or mapping.get("prompt_learner." + name)
            if ours is None:
                ignored.append(key)
                continue
            if tuple(targets[ours].shape) != tuple(value.shape):
                raise ValueError(f"official tensor {key!r} has shape {tuple(value.shape)}; {self.name}'s "
                                 f"{ours!r} expects {tuple(targets[ours].shape)} (other settings or backbone?)")
            if ours in found and not torch.equal(found[ours], value):
                raise ValueError(f"official tensors mapped to {ours!r} disagree (e.g. {key!r})")
            found[ours] = value
        missing = [n for n, p in targets.items() if p.requires_grad and n not in found]
        if missing:
            raise ValueError(f"the state dict lacks official tensors for {missing}; expected names such as "
                             f"{sorted(mapping)[:6]} (with or without the 'prompt_learner.' prefix)")
        with torch.no_grad():
            for ours, value in found.items():
                targets[ours].copy_(value.to(targets[ours].dtype))
        return ignored

    def extra_repr(self) -> str:
        return f"method={self.name!r}, classes={len(self.classnames)}, trainable={self.num_trainable():,}"


def resolve_depths(config: LearnerConfig, fields: dict[str, tuple[int, str]], clip: FrozenCLIP,
                   method: str) -> LearnerConfig:
    """Fill depth fields left at None with the official depth scaled to the model's towers
    (e.g. MaPLe's 9 of 12 blocks → 3 of ToyCLIP's 4), and check explicit depths against the model.
    The resolved values are stored in the config, so checkpoints record what actually ran."""
    updates = {}
    for name, (official, tower) in fields.items():
        limit = {"text": clip.text_depth, "vision": clip.vision_depth,
                 "both": min(clip.text_depth, clip.vision_depth)}[tower]
        value = getattr(config, name)
        if value is None:
            value = max(1, round(official * limit / 12))
        check(0 <= value <= limit, f"{method}: {name}={value} exceeds the model's {limit} "
              f"{'text/vision' if tower == 'both' else tower} blocks ({clip.id})")
        updates[name] = value
    return dataclasses.replace(config, **updates) if updates else config


def deep_indices(depth: int, total: int) -> range:
    """Blocks that receive fresh deep prompts: 1..depth-1, bounded by the tower depth."""
    return range(1, min(depth, total))


def uniform_(*shape: int, bound: float) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))
