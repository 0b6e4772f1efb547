"""The learner base: the prompted forward every method shares, its hooks and the per-pass state,
the declared capabilities, the config base, training presets, depth resolution, learner-only state
and official-state-dict import. The prompt machinery itself (prompt tokens with learnable slots,
context layouts, slot scatter/gather, visual prompt insertion, inits) is in `prompts.py`.

A learner is an `nn.Module` around a `FrozenCLIP` that decides which tokens to insert or replace
before each block. One forward is one *pass*: `begin_pass()` computes once what the pass needs
(e.g. UPT's mixer output) and the same state is handed to every hook of that pass; nothing
computed in a pass is kept on the learner. Subclasses override a few hooks:

    begin_pass()                  -> PassState, a dict of tensors computed once per pass ({} by default)
    text_prompts(state)           -> (C, L, Dt) layer-0 prompt embeddings (context in the slots), (C,) EOT
    vision_prompts(state)         -> (N, Dv) layer-0 visual prompts, or None
    layer(i, text, vision, state) -> (text, vision), called before block i (deep prompts, coupling)

`encode`, `encode_text` and `encode_image` open a pass and give `FrozenCLIP.run` the hook
`self.hook(state)`; `forward(images) -> (B, C)` logits.

Capabilities are declared as class attributes, never discovered by catching exceptions; a config
that switches one off sets it on the instance in `__init__` (IVLP without vision prompts):
`has_text_prompts`, `has_vision_prompts`, `conditional`, `image_conditioned_text`, `couples_towers`,
`records_cross_attention`, `extra_loss_terms`, `shares_text_prefix` (each is described where it is declared).

The text pass shares its prefix (`mmprompt_lab.text_prefix`, docs/design.md §7): positions every class
has in common (SOS, context, template words) are computed once and only each class's own positions run
per class, exactly. `learner.shared_prefix = False` switches it off (to measure it); `text_chunk`
bounds how many classes one suffix step holds ("auto": by size, checkpointed when there are several).

One naming scheme across learners (official names appear only in each `official_names()`):

    prompts      PromptTokens: the tokenised class prompts with learnable slots (text side)
    ctx          layer-0 text prompts spliced into the slots, (M, Dt) ((C, M, Dt) class-specific)
    deep_text    text prompts of blocks 1..J-1: `deep_text[i - 1]` (M, Dt) before block i
    vision_ctx   layer-0 visual prompts (N, Dv) (UPT: (1, N, Dv), the released shape)
    deep_vision  visual prompts of blocks 1..J-1: `deep_vision[i - 1]` (N, Dv) before block i

Method-specific modules keep their method's name (`meta_net`, `proj`/`deep_proj`, `mixer`, `cmpa`,
`t2v`/`v2t`, `text_dafe`/`vision_dafe`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbone import FrozenCLIP, LayerHook
from ..config import build_config
from ..text_prefix import Chunk, SharedText, pool_shared, run_shared, split_text
from .prompts import PromptTokens, insert_vision

PassState = dict[str, Tensor]  # what one forward pass computes once and hands to every hook


@dataclass(frozen=True)
class ImageFeatures:
    """Frozen image features (B, E) passed where images go: `encode_image` returns them as they are.
    The engine's feature cache (`fit(cache_views=K)`) trains text-only learners on them (docs/design.md §7)."""

    features: Tensor  # (B, E)

    def __len__(self) -> int:
        return self.features.shape[0]


@dataclass(frozen=True)
class TrainPreset:
    """Official optimisation settings of a method (docs/methods.md); `fit` uses them for unset arguments."""

    lr: float = 0.002
    batch_size: int = 4
    epochs: int = 5
    eval_batch_size: int = 100


@dataclass(frozen=True)
class RecipePreset:
    """A named recipe of a method besides its official default (STYLE rule 7: presets are data): learner
    options plus the optimisation settings, selected by name (`ExperimentSpec(preset=…)`, `--preset NAME`).

    Depth fields in `options` are official depths on a 12-block tower, scaled to the model like the
    defaults (`scaled_depth`); options and recipe values given explicitly next to a preset win over it.
    """

    summary: str  # one line: what the recipe is for, and its source
    train: TrainPreset  # lr, batch size, epochs of the recipe
    options: dict[str, Any] = field(default_factory=dict)  # learner config overrides (depths on 12 blocks)


@dataclass(frozen=True)
class LearnerConfig:
    """Base of every learner config. Fields set to None in overrides keep their default."""

    @classmethod
    def from_overrides(cls, **overrides: Any) -> LearnerConfig:
        """Build a config, rejecting unknown keys with a suggestion (docs/design.md §2)."""
        return build_config(cls, overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(condition: bool, message: str) -> None:
    """Config validation helper: raise ValueError(message) when `condition` is false."""
    if not condition:
        raise ValueError(message)


# ---------------------------------------------------------------------------- the learner
class PromptLearner(nn.Module):
    """Base class: a frozen CLIP plus learnable prompts. `forward(images (B,3,H,W)) -> (B, C)`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[LearnerConfig]] = LearnerConfig
    preset: ClassVar[TrainPreset] = TrainPreset()
    vision_position: ClassVar[str] = "end"  # where visual prompts sit: "end" or "after_cls"
    vision_before_ln_pre: ClassVar[bool] = True  # layer-0 visual prompts go through ln_pre

    # -- capabilities (declared; analysis and the engine read them) --------------------------------
    has_text_prompts: bool = True  # learnable text tokens (`prompts`, `ctx`); False = hand-template text
    has_vision_prompts: bool = False  # learnable tokens in the image tower (`vision_prompts` is not None)
    conditional: bool = False  # text features depend on the images: no caching, only `encode(images)`
    image_conditioned_text: bool = False  # layer-0 text prompts are made per image (meta-net): `text_prompts`
    # has no image-free value; `ctx` is the shared part
    couples_towers: bool = False  # one tower's prompts are computed from the other's prompts or hidden states
    records_cross_attention: bool = False  # has a cross-modal attention module with a `record` dict
    # (read by mmprompt_lab.analysis.attention.recording)
    extra_loss_terms: bool = False  # `training_loss` adds terms to the cross-entropy
    shares_text_prefix: bool = True  # `layer` writes the same values for every class at text positions all
    # classes share, so the text pass may compute the shared prefix once (checked at every block)

    # config field → (official depth on a 12-block tower, which tower bounds it: "text" | "vision" | "both")
    depth_fields: ClassVar[dict[str, tuple[int, str]]] = {}
    # named recipes besides the official default, e.g. MaPLe's "transfer" (cross-dataset / domain generalisation)
    presets: ClassVar[dict[str, RecipePreset]] = {}

    @classmethod
    def named_preset(cls, name: str) -> RecipePreset:
        """The recipe `name` of this method; an unknown name raises a ValueError listing the method's presets."""
        if name in cls.presets:
            return cls.presets[name]
        close = difflib.get_close_matches(name, list(cls.presets), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(f"{k} ({p.summary})" for k, p in cls.presets.items()) or "none (only the official default)"
        raise ValueError(f"{cls.name} has no preset {name!r}.{hint} Its presets: {known}")

    @classmethod
    def preset_options(cls, name: str, clip: FrozenCLIP) -> dict[str, Any]:
        """The learner options of preset `name` on `clip`: its depths (given on 12 blocks) scaled to the model."""
        options = dict(cls.named_preset(name).options)
        for key in set(options) & set(cls.depth_fields):
            options[key] = scaled_depth(cls, key, options[key], clip)
        return options

    @classmethod
    def depth_limit(cls, field: str, clip: FrozenCLIP) -> int:
        """The largest value a depth field may take on `clip` (its tower's blocks; a method whose
        prompts start at block 1 overrides this). `resolve_depths` and the knobs of the lessons use it."""
        tower = cls.depth_fields[field][1]
        return {"text": clip.text_depth, "vision": clip.vision_depth, "both": min(clip.text_depth, clip.vision_depth)}[
            tower
        ]

    def __init__(self, clip: FrozenCLIP, classnames: list[str], config: LearnerConfig):
        super().__init__()
        if not isinstance(clip, FrozenCLIP):
            raise TypeError(f"expected a FrozenCLIP from mmprompt_lab.load_clip, got {type(clip).__name__}")
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        self.clip = clip
        self.config = resolve_depths(config, type(self), clip)
        self.classnames = list(classnames)
        self.register_buffer("fixed_text", None, persistent=False)  # (C, E) cache of `fixed_text_features`
        self.shared_prefix = True  # switch: the shared-prefix text pass where it applies (False = plain pass)
        self.text_chunk: Chunk = "auto"  # classes per suffix step of that pass: "auto" (by size), a number, None = all

    # -- hooks ---------------------------------------------------------------------------
    def begin_pass(self) -> PassState:
        """What one forward pass computes once and every hook of the pass reads (e.g. UPT's mixer
        output, MuDPT's fused deep prompts). Default: nothing."""
        return {}

    def text_prompts(self, state: PassState) -> tuple[Tensor, Tensor]:
        """Layer-0 prompt embeddings (C, L, Dt) and EOT positions (C,). Learners with text prompts override."""
        raise NotImplementedError(
            f"{self.name} does not define text_prompts (has_text_prompts={self.has_text_prompts})"
        )

    def vision_prompts(self, state: PassState) -> Tensor | None:
        """Layer-0 visual prompts (N, Dv), or None for an untouched image tower."""
        return None

    def layer(
        self, i: int, text: Tensor | None, vision: Tensor | None, state: PassState
    ) -> tuple[Tensor | None, Tensor | None]:
        """Called before block i with both towers' states; returns them (possibly with new prompts)."""
        return text, vision

    def hook(self, state: PassState) -> LayerHook:
        """`layer` bound to one pass's state: the `hook(i, text, vision)` that `FrozenCLIP.run` calls."""
        return functools.partial(self.layer, state=state)

    def set_classnames(self, classnames: list[str]) -> None:
        """Switch class names (base → novel); only class-dependent buffers are rebuilt."""
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        self.classnames = list(classnames)
        self.fixed_text = None
        for module in self.modules():
            if isinstance(module, PromptTokens):
                module.set_classnames(self.classnames)

    @contextlib.contextmanager
    def use_classnames(self, classnames: list[str]) -> Iterator[PromptLearner]:
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
    def vision_input(self, images: Tensor, state: PassState) -> Tensor:
        """(B, 3, H, W) → (B, T, Dv) tokens entering block 0, with the layer-0 visual prompts."""
        x = self.clip.embed_image(images)  # (B, 1+P, Dv)
        prompts = self.vision_prompts(state)
        if prompts is None:
            return self.clip.ln_pre(x)
        if self.vision_before_ln_pre:
            return self.clip.ln_pre(insert_vision(x, prompts, self.vision_position))  # (B, T, Dv)
        return insert_vision(self.clip.ln_pre(x), prompts, self.vision_position)  # (B, T, Dv)

    def encode_text(self, state: PassState | None = None) -> Tensor:
        """(C, E) text features of the current prompts (unnormalised); opens a pass unless given one."""
        if self.conditional:
            raise RuntimeError(
                f"{self.name}'s text features depend on the images; call encode(images) or the learner itself"
            )
        state = self.begin_pass() if state is None else state
        emb, eot = self.text_prompts(state)
        shared = self.shared_text(emb, eot)
        if shared is not None:
            shared, _ = run_shared(self.clip, shared, None, self.hook(state), chunk=self.text_chunk)
            return pool_shared(self.clip, shared, eot)  # (C, E)
        x, mask = self.clip.start_text(emb, eot)  # (C, L', Dt)
        x, _ = self.clip.run(x, None, self.hook(state), text_mask=mask)
        return self.clip.pool_text(x, eot)  # (C, E)

    def shared_text(self, emb: Tensor, eot: Tensor) -> SharedText | None:
        """emb (C, L, Dt), eot (C,) split at the prefix all classes share, or None for the plain pass: switched
        off, not declared (`shares_text_prefix`), image-dependent text, or too little shared (class first, csc)."""
        if not (self.shared_prefix and self.shares_text_prefix) or self.conditional:
            return None
        return split_text(self.clip, emb, eot)

    def encode_image(
        self, images: Tensor | ImageFeatures, state: PassState | None = None, attention: dict | None = None
    ) -> Tensor:
        """(B, 3, H, W) → (B, E) image features (unnormalised); opens a pass unless given one.
        Cached `ImageFeatures` of the frozen tower are returned as they are (learners without visual prompts)."""
        if isinstance(images, ImageFeatures):
            if self.has_vision_prompts or self.conditional:
                raise ValueError(
                    f"{self.name} prompts or conditions on the image tower; cached frozen image "
                    "features cannot stand in for its images"
                )
            return images.features  # (B, E)
        state = self.begin_pass() if state is None else state
        _, v = self.clip.run(None, self.vision_input(images, state), self.hook(state), attention=attention)
        return self.clip.pool_image(v)  # (B, E)

    def encode(self, images: Tensor, attention: dict | None = None) -> tuple[Tensor, Tensor]:
        """Both towers in lockstep, one pass: → image features (B, E), text features (C, E) or (B, C, E).
        With `attention` a dict, every block's attention weights are recorded into it (FrozenCLIP.run)."""
        state = self.begin_pass()
        if not self.has_text_prompts:  # hand-template text: only the image tower is prompted
            return self.encode_image(images, state, attention), self.encode_text(state)
        emb, eot = self.text_prompts(state)
        shared = self.shared_text(emb, eot) if attention is None else None  # recording needs the plain pass
        if shared is not None:
            shared, v = run_shared(
                self.clip, shared, self.vision_input(images, state), self.hook(state), chunk=self.text_chunk
            )
            return self.clip.pool_image(v), pool_shared(self.clip, shared, eot)  # (B, E), (C, E)
        t, mask = self.clip.start_text(emb, eot)  # (C, L', Dt)
        t, v = self.clip.run(t, self.vision_input(images, state), self.hook(state), text_mask=mask, attention=attention)
        return self.clip.pool_image(v), self.clip.pool_text(t, eot)  # (B, E), (C, E)

    def logits(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """(B, E) × (C, E) or (B, C, E) → (B, C) scaled cosine similarities."""
        img, txt = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        scale = self.clip.logit_scale
        if txt.ndim == 3:
            return scale * torch.einsum("be,bce->bc", img, txt)  # (B, C)
        return scale * img @ txt.t()  # (B, C)

    def forward(
        self, images: Tensor, text_features: Tensor | None = None, labels: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """(B, 3, H, W) preprocessed images → (B, C) logits. `text_features` reuses cached ones.
        With `labels` (B,) → (loss, logits) from `training_loss` (one entry point, so DDP sees it)."""
        if labels is not None:
            return self.training_loss(images, labels)
        if text_features is not None and not self.conditional:
            return self.logits(self.encode_image(images), text_features)
        if self.conditional:
            return self.logits(*self.encode(images))
        state = self.begin_pass()  # one pass serves both towers (UPT's mixer runs once)
        return self.logits(self.encode_image(images, state), self.encode_text(state))

    # -- training hooks (the engine's seam for regularisers and schedules) --------------------
    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The loss `fit` minimises and the logits it reports: (scalar loss, (B, C) logits).
        Default: cross-entropy on the scaled cosine logits. A learner adds its own terms here
        (e.g. a pull toward the frozen CLIP's features) from the same forward pass, and declares
        `extra_loss_terms = True`."""
        logits = self(images)  # (B, C)
        return F.cross_entropy(logits.float(), labels), logits

    def on_epoch_end(self, epoch: int, epochs: int) -> None:
        """Called by `fit` after each finished epoch (0-based `epoch` of `epochs`); e.g. to update
        an aggregate of the prompts over epochs. Any state it keeps must be in buffers or
        parameters, so that an epoch checkpoint restores it."""

    # -- helpers for learners with fixed (hand-template) text --------------------------------
    def fixed_text_features(self, templates: Iterable[str]) -> Tensor:
        """(C, E) frozen features of hand templates, averaged over templates after normalising.
        Each template is formatted with the class name (`template.format(name)`), so braces in a
        name stay plain text. Cached in the non-persistent `fixed_text` buffer until class names change."""
        if self.fixed_text is None:
            with torch.no_grad():
                names = [c.replace("_", " ") for c in self.classnames]
                feats = [
                    F.normalize(self.clip.encode_text([t.format(c) for c in names]), dim=-1) for t in templates
                ]  # T × (C, E)
                self.fixed_text = F.normalize(torch.stack(feats).mean(0), dim=-1)  # (C, E)
        return self.fixed_text

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
                raise ValueError(
                    f"{self.name} parameter {key!r} has shape {tuple(own[key].shape)}, "
                    f"the checkpoint has {tuple(value.shape)} (different backbone or settings?)"
                )
        self.load_state_dict({**state, **{k: v for k, v in self.state_dict().items() if k.startswith("clip.")}})

    # -- official checkpoints ----------------------------------------------------------------
    def official_names(self) -> dict[str, str]:
        """Official parameter name → ours. Names are given without the `prompt_learner.` prefix
        where the official code uses it; both forms are accepted on import."""
        return {}

    def load_official_state_dict(self, state: Mapping[str, Tensor]) -> list[str]:
        """Import a released checkpoint's tensors by their official names (docs/methods.md).

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
            ours = (
                mapping.get(name)
                or mapping.get(re.sub(r"^prompt_learner\.", "", name))
                or mapping.get("prompt_learner." + name)
            )
            if ours is None:
                ignored.append(key)
                continue
            if tuple(targets[ours].shape) != tuple(value.shape):
                raise ValueError(
                    f"official tensor {key!r} has shape {tuple(value.shape)}; {self.name}'s "
                    f"{ours!r} expects {tuple(targets[ours].shape)} (other settings or backbone?)"
                )
            if ours in found and not torch.equal(found[ours], value):
                raise ValueError(f"official tensors mapped to {ours!r} disagree (e.g. {key!r})")
            found[ours] = value
        missing = [n for n, p in targets.items() if p.requires_grad and n not in found]
        if missing:
            raise ValueError(
                f"the state dict lacks official tensors for {missing}; expected names such as "
                f"{sorted(mapping)[:6]} (with or without the 'prompt_learner.' prefix)"
            )
        with torch.no_grad():
            for ours, value in found.items():
                targets[ours].copy_(value.to(targets[ours].dtype))
        return ignored

    def extra_repr(self) -> str:
        return f"method={self.name!r}, classes={len(self.classnames)}, trainable={self.num_trainable():,}"

    # -- checkpoints (PEFT/HF style; engine.checkpoint does the work) -------------------------
    def save_pretrained(self, out_dir, extra: dict | None = None):
        """Write this learner's prompts (safetensors) and its JSON card into `out_dir`; see
        `learners.saving.save_learner`. Example: `learner.save_pretrained("runs/coop")`."""
        from .saving import save_learner

        return save_learner(self, out_dir, extra=extra)

    @classmethod
    def from_pretrained(
        cls, path, clip: FrozenCLIP | None = None, *, device: str | None = None, download: bool | None = None
    ) -> PromptLearner:
        """Rebuild a learner saved by `save_pretrained`; clip=None loads the backbone named in its card
        (local cache only unless `download`). Example: `CoOp.from_pretrained("runs/coop")`."""
        from .saving import load_learner

        return load_learner(path, clip, method=cls.name or None, device=device, download=download)


def resolve_depths(config: LearnerConfig, cls: type[PromptLearner], clip: FrozenCLIP) -> LearnerConfig:
    """Fill the depth fields (`cls.depth_fields`) left at None with the official depth scaled to the
    model's towers (e.g. MaPLe's 9 of 12 blocks → 3 of ToyCLIP's 4), and check every depth against
    `cls.depth_limit`. The resolved values are stored in the config, so checkpoints record what ran."""
    updates = {}
    for name, (official, tower) in cls.depth_fields.items():
        blocks = {
            "text": clip.text_depth,
            "vision": clip.vision_depth,
            "both": min(clip.text_depth, clip.vision_depth),
        }[tower]
        limit = cls.depth_limit(name, clip)
        value = getattr(config, name)
        if value is None:
            value = scaled_depth(cls, name, official, clip)
        fewer = "" if limit == blocks else f" (at most {limit} for {cls.name})"
        check(
            0 <= value <= limit,
            f"{cls.name}: {name}={value} exceeds the model's {blocks} "
            f"{'text/vision' if tower == 'both' else tower} blocks{fewer} ({clip.id})",
        )
        updates[name] = value
    return dataclasses.replace(config, **updates) if updates else config


def scaled_depth(cls: type[PromptLearner], name: str, official: int, clip: FrozenCLIP) -> int:
    """An official depth on a 12-block tower scaled to `clip`'s blocks for depth field `name`, at least 1 and
    at most `cls.depth_limit` (MaPLe's 9 → 3 and its transfer recipe's 3 → 1 on ToyCLIP's 4 blocks; 9 and 3
    on ViT-B/16)."""
    tower = cls.depth_fields[name][1]
    blocks = {"text": clip.text_depth, "vision": clip.vision_depth, "both": min(clip.text_depth, clip.vision_depth)}[
        tower
    ]
    return min(cls.depth_limit(name, clip), max(1, round(official * blocks / 12)))
