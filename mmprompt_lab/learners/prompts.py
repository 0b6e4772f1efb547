"""Prompt machinery shared by the learners, written once (docs/design.md §2): text prompts with
learnable slots, where the context sits and how it starts, slot scatter/gather, visual prompt
insertion/replacement, and the official initialisations.

    layout = deep_text_layout(clip, n_ctx=2, ctx_init="a photo of a")   # "{ctx} of a {}.", word init
    prompts = layout.tokens(clip, classnames)                           # PromptTokens: (C, L) ids, slots
    ctx = layout.context(prompts, 2, clip.text_width)                   # (M, Dt) layer-0 context
    x = prompts.assemble(ctx)                                           # (C, L, Dt)
    x = replace_slots(x, prompts.slots, deep)                           # deep text prompts, block i
    v = replace_vision(v, deep_v, "end")                                # deep visual prompts, block i

Nothing here knows a method or an official parameter name; learners import from here, never from
each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backbone import FrozenCLIP

CTX = "{ctx}"  # marks a run of learnable context tokens in a prompt template
CLASS = "{}"  # marks the class name in a prompt template


# ---------------------------------------------------------------------------- text prompts
class PromptTokens(nn.Module):
    """Tokenised class prompts with learnable slots.

    `template` is a prompt with `{}` for the class name and `{ctx}` for each run of learnable
    tokens, e.g. "{ctx} {}." (CoOp), "{ctx} of a {}." (MaPLe: "a photo" learnable, "of a" fixed),
    "{ctx} {} {ctx}." (class in the middle), "a photo of a {}. {ctx}" (MAP-DAFE). `runs` gives the
    length of each `{ctx}` run. `fill` gives the words rendered at the slots while tokenising
    (the init phrase, else "X"); they are replaced by the context at forward time. The template is
    split at `{ctx}` before the class name goes in, so braces in a class name are plain text.

    Buffers (C classes, L context length, M slots in total):
        embeddings (C, L, Dt) frozen token embeddings; tokens (C, L) ids; slots (C, M) slot
        positions; eot (C,) EOT positions.
    """

    def __init__(
        self, clip: FrozenCLIP, classnames: list[str], template: str, runs: list[int], fill: list[str] | None = None
    ):
        super().__init__()
        if template.count(CTX) != len(runs):
            raise ValueError(
                f"template {template!r} has {template.count(CTX)} {CTX} runs but {len(runs)} run lengths were given"
            )
        if any(r < 0 for r in runs):
            raise ValueError(f"context run lengths must be ≥ 0, got {runs}")
        fill = list(fill) if fill is not None else ["X"] * sum(runs)
        if len(fill) != sum(runs):
            raise ValueError(f"{len(fill)} fill words for {sum(runs)} slots")
        self.clip, self.template, self.runs, self.fill = [clip], template, list(runs), fill  # [clip]: not a submodule
        self.set_classnames(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        """Rebuild the class-dependent buffers (e.g. base → novel)."""
        classnames = list(classnames)
        if not classnames:
            raise ValueError("classnames is empty: a learner needs at least one class")
        clip = self.clip[0]
        tok = clip.tokenizer
        pieces = self.template.split(CTX)  # literal pieces around the runs, split before the name goes in
        rows, slot_rows = [], []
        for name in classnames:
            ids, slots, k = [tok.sot_token_id], [], 0
            for n, piece in enumerate(pieces):
                piece = piece.replace(CLASS, name.replace("_", " "))  # the name stays plain text
                ids += tok.encode(piece) if piece.strip() else []
                if n < len(self.runs):
                    for word in self.fill[k : k + self.runs[n]]:  # one token per slot, like the official "X X X X"
                        word_ids = tok.encode(word)
                        if len(word_ids) != 1:
                            raise ValueError(
                                f"context word {word!r} is {len(word_ids)} tokens; each learnable slot takes one token"
                            )
                        slots.append(len(ids))
                        ids += word_ids
                    k += self.runs[n]
            ids.append(tok.eot_token_id)
            if len(ids) > clip.context_length:
                raise ValueError(
                    f"the prompt for class {name!r} has {len(ids)} tokens with the context; "
                    f"this model's context length is {clip.context_length}"
                )
            rows.append(ids + [0] * (clip.context_length - len(ids)))
            slot_rows.append(slots)
        tokens = torch.tensor(rows, device=clip.device)  # (C, L)
        self.classnames = classnames
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("eot", tokens.argmax(dim=-1), persistent=False)  # (C,)
        self.register_buffer(
            "slots",
            torch.tensor(slot_rows, dtype=torch.long, device=clip.device).reshape(len(rows), -1),
            persistent=False,
        )  # (C, M)
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


# ---------------------------------------------------------------------------- context layouts
@dataclass(frozen=True)
class ContextLayout:
    """Where a learner's text context sits and how it starts.

    template: `{ctx}` marks each run of slots, `{}` the class name. runs: each run's length.
    words: the M words rendered at the slots while tokenising. word_initialised: the context starts
    as those words' embeddings; otherwise it is drawn from N(0, std²) and the words are "X".
    """

    template: str
    runs: tuple[int, ...]
    words: tuple[str, ...]
    word_initialised: bool

    def tokens(self, clip: FrozenCLIP, classnames: list[str]) -> PromptTokens:
        return PromptTokens(clip, classnames, self.template, list(self.runs), list(self.words))

    def context(self, prompts: PromptTokens, *shape: int, std: float = 0.02) -> nn.Parameter:
        """The layer-0 context: the slot words' embeddings (M, Dt) when word-initialised, else N(0, std²)
        of `shape` ((M, Dt), or (C, M, Dt) for class-specific context)."""
        return nn.Parameter(prompts.init_vectors()) if self.word_initialised else normal_(*shape, std=std)


def random_layout(template: str, runs: list[int]) -> ContextLayout:
    """Randomly initialised context: "X" placeholders at every slot."""
    return ContextLayout(template, tuple(runs), ("X",) * sum(runs), False)


def init_phrase_words(clip: FrozenCLIP, phrase: str, n: int) -> tuple[list[str], str]:
    """Split a word-init phrase into its first n tokens (learnable) and the fixed rest ("a photo", "of a")."""
    words = [clip.tokenizer.decoder[i].replace("</w>", "") for i in clip.tokenizer.encode(phrase)]
    if len(words) < n:
        raise ValueError(f"init phrase {phrase!r} has {len(words)} tokens, fewer than n_ctx={n}")
    return words[:n], " ".join(words[n:])


COOP_TEMPLATES = {"end": "{ctx} {}.", "middle": "{ctx} {} {ctx}.", "front": "{} {ctx}."}


def coop_layout(clip: FrozenCLIP, position: str, n_ctx: int, ctx_init: str) -> ContextLayout:
    """CoOp-style context (CoOp, CoCoOp): M = n_ctx random tokens at the class `position`, or, with
    `ctx_init`, the whole phrase learnable and word-initialised (M = its token count), class at the end."""
    if ctx_init:
        words, _ = init_phrase_words(clip, ctx_init, len(clip.tokenizer.encode(ctx_init)))
        return ContextLayout(COOP_TEMPLATES["end"], (len(words),), tuple(words), True)
    runs = [n_ctx // 2, n_ctx - n_ctx // 2] if position == "middle" else [n_ctx]
    return random_layout(COOP_TEMPLATES[position], runs)


def deep_text_layout(clip: FrozenCLIP, n_ctx: int, ctx_init: str, max_words: int = 4) -> ContextLayout:
    """MaPLe-style context (MaPLe, IVLP, DCP): with `ctx_init` and n_ctx ≤ max_words, the first n_ctx
    words of the phrase are learnable (word-initialised) and the rest stays as fixed tokens
    ("{ctx} of a {}."); otherwise n_ctx random tokens ("{ctx} {}.")."""
    if ctx_init and n_ctx <= max_words:
        words, rest = init_phrase_words(clip, ctx_init, n_ctx)
        return ContextLayout(("{ctx} " + rest + " {}.").replace("  ", " "), (n_ctx,), tuple(words), True)
    return random_layout("{ctx} {}.", [n_ctx])


# ---------------------------------------------------------------------------- initialisations
def normal_(*shape: int, std: float = 0.02) -> nn.Parameter:
    """A parameter drawn from N(0, std²) — the official init of context and deep prompts."""
    return nn.Parameter(torch.randn(*shape) * std)


def deep_prompts(count: int, n: int, d: int) -> nn.ParameterList:
    """`count` deep prompts (n, d) ~ N(0, 0.02²), one per block 1..count: `deep[i - 1]` before block i."""
    return nn.ParameterList([normal_(n, d) for _ in range(count)])


def uniform_(*shape: int, bound: float) -> nn.Parameter:
    """A parameter drawn from U(−bound, bound)."""
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


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
    return torch.cat([x[:, :1], p, x[:, 1 + n :]], dim=1)


def vision_slots(x: Tensor, n: int, position: str) -> Tensor:
    """The N prompt tokens of x (B, T, Dv) → (B, N, Dv)."""
    return x[:, -n:] if position == "end" else x[:, 1 : 1 + n]
