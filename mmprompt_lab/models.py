"""Model sources: where `load_clip` gets an open_clip CLIP from (docs/design.md §6: sources register
themselves; the backbone knows none of them by name).

    register_model_source("toyclip", load_toyclip, cpu_threads=1)   # done by mmprompt_lab.toyclip
    get_model_source("ViT-B-16")           # no registered source claims it → the open_clip source
    list_models("ViT-B-16*")               # ['ViT-B-16', 'ViT-B-16-plus', …] that prompts can drive
    list_models(pretrained=True)           # [ModelTag('toyclip', None, True), ModelTag('ViT-B-16', 'openai', False), …]

Real weights are read from the local cache only unless downloading is allowed
(`load_clip(..., download=True)` or MMPROMPT_ALLOW_DOWNLOAD=1): a missing file fails at once with a
message naming the cache, instead of a minute of hub retries.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Callable

from torch import nn

from .seeding import rng_scope

log = logging.getLogger(__name__)

DOWNLOAD_ENV = "MMPROMPT_ALLOW_DOWNLOAD"
HF_HUB_PREFIX = "hf-hub:"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class LoadedModel:
    """What a source's loader returns: an open_clip CLIP in eval mode and how to feed it.

    `name` and `pretrained` become `FrozenCLIP.id` ("name" or "name:pretrained"), which checkpoint
    cards record and `load_clip(name, pretrained=...)` must accept again.
    """

    model: nn.Module
    tokenizer: Any
    name: str
    pretrained: str | None
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    augment: str = "official"  # the engine's train augmentation suited to the model's images


# loader(name, pretrained, precision, download) -> LoadedModel
Loader = Callable[[str, Any, str, bool], LoadedModel]


class ModelTag(NamedTuple):
    """One loadable (model, pretrained tag) pair; `cached` = its weights are on this machine."""

    name: str
    tag: str | None
    cached: bool


@dataclass(frozen=True)
class ModelSource:
    """A registered way to load models. `matches(name)` says whether a model name is this source's."""

    name: str
    load: Loader
    matches: Callable[[str], bool]
    cpu_threads: int | None = None  # preferred CPU thread count (None = torch's default)
    tags: Callable[[], list[ModelTag]] | None = None  # what `list_models` shows for this source
    description: str = ""


_SOURCES: dict[str, ModelSource] = {}


def register_model_source(
    name: str,
    load: Loader,
    *,
    matches: Callable[[str], bool] | None = None,
    cpu_threads: int | None = None,
    tags: Callable[[], list[ModelTag]] | None = None,
    description: str = "",
) -> ModelSource:
    """Register a model source; `load_clip(n)` uses the first registered source whose `matches(n)` is
    true, and open_clip for any other name. `matches` defaults to `n == name`.

    Example:
        >>> register_model_source("mini", lambda name, pretrained, precision, download: LoadedModel(...))
    """
    if name in _SOURCES:
        raise ValueError(f"model source {name!r} is already registered")
    source = ModelSource(name, load, matches or (lambda n, _name=name: n == _name), cpu_threads, tags, description)
    _SOURCES[name] = source
    return source


def list_model_sources() -> list[str]:
    """Names of the registered sources (open_clip, the fallback, is not among them)."""
    return list(_SOURCES)


def get_model_source(name: str) -> ModelSource:
    """The source that loads model `name`: a registered one that claims it, else open_clip."""
    for source in _SOURCES.values():
        if source.matches(name):
            return source
    return OPEN_CLIP


def allow_download(download: bool | None = None) -> bool:
    """`download` if given, else whether MMPROMPT_ALLOW_DOWNLOAD is set to 1/true/yes."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def parse_backbone_id(backbone_id: str) -> tuple[str, str | None]:
    """Split a `FrozenCLIP.id` into `load_clip` arguments: "ViT-B-16:openai" → ("ViT-B-16", "openai"),
    "toyclip" → ("toyclip", None), "hf-hub:timm/x" → ("hf-hub:timm/x", None)."""
    if backbone_id.startswith(HF_HUB_PREFIX):
        return backbone_id, None
    name, _, tag = backbone_id.partition(":")
    return name, tag or None


# ---------------------------------------------------------------------------- the local cache
def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "huggingface" / "hub"


def url_cache_dir() -> Path:
    """Where open_clip keeps weights downloaded from a plain URL."""
    return Path("~/.cache/clip").expanduser()


def _hf_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's `hf_hub` entry "org/repo/file" → (repo id, files in the order open_clip tries them)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(hf_hub)  # "org/repo/" (trailing slash) = the default weights file
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo, [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return repo, [filename[:-4] + ".safetensors", filename]
    return repo, [filename]


def _from_hf_cache(repo: str, files: list[str]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in files:
        path = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir())
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def pretrained_locations(name: str, tag: str) -> list[str]:
    """Where the weights of (open_clip model, tag) would be in the local cache, for messages."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    where = []
    if cfg.get("hf_hub"):
        repo, files = _hf_candidates(cfg["hf_hub"])
        where.append(f"{' or '.join(f'{repo}/{f}' for f in files)} in {hf_cache_dir()}")
    if cfg.get("url"):
        where.append(f"{os.path.basename(cfg['url'])} in {url_cache_dir()}")
    return where


def cached_pretrained_file(name: str, tag: str) -> str | None:
    """The local file holding open_clip weights `tag` of model `name`, or None when not cached.

    Looks where open_clip would download them (the Hugging Face cache, then open_clip's URL cache),
    without any network request.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        found = _from_hf_cache(*_hf_candidates(cfg["hf_hub"]))
        if found:
            return found
    if cfg.get("url"):
        path = url_cache_dir() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


# ---------------------------------------------------------------------------- what prompts can drive
def unsupported_reason(config: dict) -> str | None:
    """Why an open_clip model config cannot be driven by the prompted forward, or None if it can.

    The same conditions as `FrozenCLIP._check_supported`, read from the config JSON without building
    the model: a class-token ViT image tower built by open_clip (not timm, not a ResNet, no attention
    pooling), a causal open_clip text tower pooled at EOT (argmax) with a linear projection, CLIP's
    BPE tokenizer, the standard residual blocks.
    """
    v, t = config.get("vision_cfg", {}), config.get("text_cfg", {})
    custom = ("qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc")
    if v.get("timm_model_name"):
        return f"its image tower is a timm model ({v['timm_model_name']}), not an open_clip VisionTransformer"
    if isinstance(v.get("layers"), (list, tuple)):
        return "its image tower is a ResNet; visual prompts need a ViT"
    if v.get("attentional_pool") or v.get("pool_type", "tok") != "tok":
        return "its image tower is not pooled at the class token (pool_type='tok', no attentional pooling)"
    size = v.get("image_size", 224)
    if isinstance(size, (list, tuple)) and len(set(size)) != 1:
        return f"its images are not square ({size})"
    if t.get("hf_model_name"):
        return f"its text tower is a Hugging Face model ({t['hf_model_name']}), not an open_clip TextTransformer"
    if t.get("hf_tokenizer_name"):
        return f"it uses the {t['hf_tokenizer_name']} tokenizer; learned context slots need CLIP's BPE tokenizer"
    if t.get("pool_type", "argmax") != "argmax" or t.get("embed_cls"):
        return "its text tower is not pooled at the EOT token (pool_type='argmax')"
    if t.get("no_causal_mask"):
        return "its text tower is not causal"
    if t.get("proj_type", "linear") != "linear":
        return f"its text projection is {t['proj_type']!r}, not linear"
    for tower, cfg in (("image", v), ("text", t)):
        if cfg.get("block_type") not in (None, "default") or any(cfg.get(k) for k in custom):
            return f"its {tower} tower uses custom attention blocks"
    return None


def _supported_open_clip_names() -> list[str]:
    import open_clip

    claimed = set()
    names = []
    for name in open_clip.list_models():
        if any(s.matches(name) for s in _SOURCES.values()):
            claimed.add(name)
            continue
        if unsupported_reason(open_clip.get_model_config(name) or {}) is None:
            names.append(name)
    return names


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str] | list[ModelTag]:
    """Backbones the prompted forward supports: the registered sources' models ("toyclip") and the
    open_clip models with a class-token ViT image tower and an EOT-pooled causal text tower.

    Args:
        pattern: an fnmatch pattern on the name, case-insensitive (e.g. "ViT-B-*", "*quickgelu").
        pretrained: False = names; True = one `ModelTag(name, tag, cached)` per pretrained tag (open_clip
            models without tags are left out), `cached` telling whether the weights are on this machine
            (`load_clip` reads only the local cache unless downloading is allowed).

    Example:
        >>> list_models("ViT-B-16*")
        ['ViT-B-16', 'ViT-B-16-plus', 'ViT-B-16-plus-240', 'ViT-B-16-quickgelu']
        >>> [t for t in list_models("ViT-B-16", pretrained=True) if t.cached]
        []
    """
    import open_clip

    def keep(name: str) -> bool:
        return pattern is None or fnmatch.fnmatchcase(name.lower(), pattern.lower())

    sources = [s for s in _SOURCES.values() if keep(s.name)]
    names = [n for n in _supported_open_clip_names() if keep(n)]
    if not pretrained:
        return [s.name for s in sources] + names
    tags = [t for s in sources for t in (s.tags() if s.tags else [ModelTag(s.name, None, True)])]
    for name in names:
        tags += [
            ModelTag(name, tag, cached_pretrained_file(name, tag) is not None)
            for tag in open_clip.list_pretrained_tags_by_model(name)
        ]
    return tags


# ---------------------------------------------------------------------------- the open_clip source
def _open_clip_weights(name: str, pretrained: str | None, download: bool) -> tuple[str | None, dict]:
    """(what to pass open_clip as `pretrained`, the tag's config or {}): a local file when the weights
    are a file or cached; the tag itself only when downloading is allowed and nothing is cached."""
    import open_clip

    if not pretrained:
        return None, {}
    if Path(pretrained).expanduser().is_file():
        return str(Path(pretrained).expanduser().resolve()), {}
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        raise ValueError(f"{name!r} has no pretrained tag {pretrained!r} and no such file; tags: {tags}")
    found = cached_pretrained_file(name, pretrained)
    if found is None and not download:
        raise RuntimeError(
            f"weights {pretrained!r} for {name!r} are not in the local cache (looked for "
            f"{'; '.join(pretrained_locations(name, pretrained))}). Nothing is downloaded unless you ask: "
            f"pass download=True to load_clip (or set {DOWNLOAD_ENV}=1) on a machine with network access "
            "to fetch them once into that cache, or pass a local weights file as pretrained=."
        )
    return found or pretrained, open_clip.get_pretrained_cfg(name, pretrained)


def _hf_hub_folder(repo: str) -> str | None:
    """The cached snapshot folder of an hf-hub open_clip repo (config and weights), or None."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    config = _from_hf_cache(repo, ["open_clip_config.json"])
    weights = _from_hf_cache(repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME])
    if config is None or weights is None or Path(config).parent != Path(weights).parent:
        return None  # open_clip's local-dir: loader reads both from one snapshot folder
    return str(Path(config).parent)


def _load_open_clip(name: str, pretrained: Any, precision: str, download: bool) -> LoadedModel:
    import open_clip

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if pretrained is True or pretrained is False:  # True/False mean "the default"/"random" for ToyCLIP only
        raise ValueError(
            f"pretrained={pretrained!r}: for {name!r} give a tag (e.g. 'openai'), a weights "
            "file, or None for random weights"
        )
    if name.startswith(HF_HUB_PREFIX):
        return _load_hf_hub(name, pretrained, precision, download)
    if name not in open_clip.list_models() and name.endswith((".safetensors", ".pt", ".pth", ".bin")):
        raise FileNotFoundError(
            f"no weights file {name!r}; a ToyCLIP file is loaded by its path, open_clip "
            "weights with load_clip(model_name, pretrained=path)"
        )
    if name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        raise ValueError(
            f"unknown CLIP model {name!r}; did you mean {close}? Use 'toyclip', a name from "
            "mmprompt_lab.list_models(), or 'hf-hub:org/repo'"
        )
    reason = unsupported_reason(open_clip.get_model_config(name) or {})
    if reason:
        raise ValueError(
            f"{name!r} cannot be prompt-tuned here: {reason}. Supported backbones: mmprompt_lab.list_models()"
        )
    checkpoint, tag_cfg = _open_clip_weights(name, pretrained, download)
    kwargs = {}
    if tag_cfg and checkpoint != pretrained:  # a cached file: open_clip reads it, with the tag's preprocessing
        kwargs["force_preprocess_cfg"] = {
            k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg
        }
        gelu = bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))
        if bool(tag_cfg.get("quick_gelu", False)) != gelu:  # open_clip warns the same when it resolves a tag
            log.warning(
                "%s has quick_gelu=%s but weights %r were trained with quick_gelu=%s; use the model "
                "name %s '-quickgelu'",
                name,
                gelu,
                pretrained,
                not gelu,
                "without" if gelu else "with",
            )
    try:
        # random-weight backbones come from a fixed seed, so checkpoints on them reload exactly
        with rng_scope(None if pretrained else 0):
            model = open_clip.create_model(
                name, pretrained=checkpoint, precision=precision, require_pretrained=bool(pretrained), **kwargs
            )
    except Exception as err:  # a missing download, an unreadable or mismatched file: say what to do
        if not pretrained:
            raise
        raise RuntimeError(
            f"could not load weights {pretrained!r} for {name!r}: {err}. Pass a local weights "
            "file as pretrained=, or download them once with load_clip(..., download=True)"
        ) from err
    pre = getattr(model.visual, "preprocess_cfg", {}) or {}
    tag = checkpoint if checkpoint and not tag_cfg else (pretrained or None)  # a weights file: its full path
    return LoadedModel(
        model.eval(),
        open_clip.get_tokenizer(name),
        name,
        tag,
        tuple(pre.get("mean", OPENAI_MEAN)),
        tuple(pre.get("std", OPENAI_STD)),
    )


def _load_hf_hub(name: str, pretrained: Any, precision: str, download: bool) -> LoadedModel:
    """`hf-hub:org/repo`: open_clip's config and weights from that repo (the local cache unless `download`)."""
    import open_clip

    if pretrained:
        raise ValueError(f"{name!r} names its weights itself; leave pretrained=None (got {pretrained!r})")
    repo = name[len(HF_HUB_PREFIX) :]
    folder = _hf_hub_folder(repo)
    if folder is None and not download:
        raise RuntimeError(
            f"{name!r} is not in the local cache (looked for {repo}/open_clip_config.json and its weights in "
            f"{hf_cache_dir()}). Nothing is downloaded unless you ask: pass download=True to load_clip (or set "
            f"{DOWNLOAD_ENV}=1) on a machine with network access to fetch it once."
        )
    source = f"local-dir:{folder}" if folder else name
    config = open_clip.get_model_config(source) or {}
    reason = unsupported_reason(config)
    if reason:
        raise ValueError(
            f"{name!r} cannot be prompt-tuned here: {reason}. Supported backbones: mmprompt_lab.list_models()"
        )
    model = open_clip.create_model(source, precision=precision, require_pretrained=True)
    pre = getattr(model.visual, "preprocess_cfg", {}) or {}
    return LoadedModel(
        model.eval(),
        open_clip.get_tokenizer(source),
        name,
        None,
        tuple(pre.get("mean", OPENAI_MEAN)),
        tuple(pre.get("std", OPENAI_STD)),
    )


OPEN_CLIP = ModelSource(
    "open_clip",
    _load_open_clip,
    lambda name: True,
    description="open_clip model names (ViT-B-16, …) and hf-hub:org/repo",
)
