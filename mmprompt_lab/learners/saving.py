"""Learner checkpoints (never the frozen CLIP): safetensors + a JSON card, like a PEFT adapter folder.

    out/learner.safetensors   trainable state, by our parameter names
    out/learner.json          the card: {"format", "method", "config", "classnames", "backbone",
                              "backbone_sha256", "backbone_precision", "mmprompt_lab_version",
                              "weights_sha256", …extra (metrics, data, history)}

    learner.save_pretrained("out")                   # = save_learner(learner, "out")
    CoOp.from_pretrained("out")                       # = load_learner("out", method="coop")
    mmprompt_lab.load_learner("out")                  # any method; the backbone named in the card

Every file is written to a temporary name in the same folder and renamed into place, and the card
records the weights' hash, so an interrupted save never leaves a half-written or mismatched pair.
The card is validated when read (types, known config keys, the backbone weights' hash), and the
backbone it names is loaded from the local cache only unless downloading is allowed. (The resumable
training state of `fit` lives beside it: `engine/checkpoint.py`.)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..config import build_config
from ..io import atomic_write, read_json, sha256_file, write_json
from .base import PromptLearner
from .registry import get_learner_class

log = logging.getLogger(__name__)

FORMAT = "mmprompt_lab.learner/1"
REQUIRED = ("format", "method", "config", "backbone", "classnames", "weights_sha256")
# key → (check, what it must be); cards written before backbone hashes lack the optional ones
FIELDS = {
    "format": (lambda v: isinstance(v, str), "text"),
    "method": (lambda v: isinstance(v, str) and v != "", "a method name"),
    "config": (lambda v: isinstance(v, dict), "a JSON object of the learner's options"),
    "backbone": (lambda v: isinstance(v, str) and v != "", "a backbone id such as 'toyclip' or 'ViT-B-16:openai'"),
    "classnames": (
        lambda v: isinstance(v, list) and v != [] and all(isinstance(c, str) and c for c in v),
        "a non-empty list of class names (strings)",
    ),
    "weights_sha256": (
        lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
        "a sha256 hex digest",
    ),
    "backbone_sha256": (
        lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
        "a sha256 hex digest",
    ),
    "backbone_precision": (lambda v: v in ("fp32", "bf16", "fp16"), "'fp32', 'bf16' or 'fp16'"),
    "mmprompt_lab_version": (lambda v: isinstance(v, str), "text"),
}


def tensors_of(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_learner(learner: PromptLearner, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write `learner.safetensors` + the `learner.json` card into `out_dir`; returns the folder.

    Args:
        extra: more JSON for the card (e.g. {"metrics": {...}, "data": {...}}); its keys may not
            replace the card's own.

    Example:
        >>> save_learner(learner, "runs/coop", extra={"metrics": {"accuracy": 71.2}})
    """
    from .. import __version__

    clash = sorted(set(extra or {}) & (set(FIELDS) | {"_folder"}))
    if clash:
        raise ValueError(f"extra keys {clash} would replace the card's own; rename them")
    out = Path(out_dir)
    weights = out / "learner.safetensors"
    atomic_write(weights, lambda tmp: save_file(tensors_of(learner.learner_state_dict()), tmp))
    clip = learner.clip
    card = {
        "format": FORMAT,
        "method": learner.name,
        "config": learner.config.to_dict(),
        "classnames": list(learner.classnames),
        "backbone": clip.id,
        "backbone_sha256": clip.weights_sha256,
        "backbone_precision": getattr(clip, "precision", "fp32"),
        "mmprompt_lab_version": __version__,
        "weights_sha256": sha256_file(weights),
        **(extra or {}),
    }
    write_json(out / "learner.json", card)
    return out


def read_card(path: str | Path) -> dict:
    """The JSON card of a checkpoint folder (or of its learner.json / learner.safetensors), validated:
    a JSON object with the required keys, each of the right type, and a known method; one ValueError
    naming the file and the key otherwise. `card["_folder"]` is the checkpoint folder."""
    folder = Path(path).expanduser()
    folder = folder.parent if folder.suffix in (".json", ".safetensors") else folder
    card_path = folder / "learner.json"
    if not card_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {folder}: {card_path.name} is missing "
            "(expected the output folder of `mmprompt-lab tune` or `save_learner`)"
        )
    card = read_json(card_path, "checkpoint card")
    if not isinstance(card, dict):
        raise ValueError(
            f"{card_path} is not an mmprompt_lab learner card: a JSON object was expected, found {type(card).__name__}"
        )
    missing = [k for k in REQUIRED if k not in card]
    if missing or card.get("format") != FORMAT:
        raise ValueError(
            f"{card_path} is not an mmprompt_lab learner card (missing {missing}, "
            f"format {card.get('format')!r}, expected {FORMAT!r})"
        )
    for key, (ok, what) in FIELDS.items():
        if key in card and not ok(card[key]):
            raise ValueError(f"{card_path}: key {key!r} must be {what}, found {card[key]!r}")
    try:
        get_learner_class(card["method"])
    except ValueError as err:
        raise ValueError(f"{card_path}: key 'method': {err}") from None
    card["_folder"] = str(folder)
    return card


def card_config(card: dict, cls: type[PromptLearner] | None = None):
    """The learner config a card describes, built by `build_config` (types converted and checked,
    unknown keys refused); errors name the card file and the key."""
    cls = cls or get_learner_class(card["method"])
    where = Path(card["_folder"]) / "learner.json"
    try:
        config = build_config(cls.config_class, card["config"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: key 'config': {err}") from None
    for key, value in card["config"].items():  # build_config reads None as "the default"
        if value is None and getattr(config, key) is not None:
            raise ValueError(
                f"{where}: key 'config.{key}' is null, but {cls.config_class.__name__}.{key} "
                f"cannot be None (its default is {getattr(config, key)!r})"
            )
    return config


def load_learner(
    path: str | Path, clip=None, *, method: str | None = None, device: str | None = None, download: bool | None = None
) -> PromptLearner:
    """Rebuild a learner from a checkpoint folder; its logits equal the saved learner's.

    Args:
        clip: the FrozenCLIP to attach; None loads the backbone named in the card, from the local cache
            only unless `download` (see `load_clip`). A clip with another id, or whose weights hash
            differs from the card's `backbone_sha256`, is refused.
        method: if given, the checkpoint must be of this method.

    Example:
        >>> learner = load_learner("runs/maple-toyworld_polygons-seed1")
        >>> logits = learner(images)   # (B, C)
    """
    from ..backbone import load_clip
    from ..models import parse_backbone_id

    card = read_card(path)
    folder = Path(card["_folder"])
    card_path = folder / "learner.json"
    cls = get_learner_class(card["method"])
    if method is not None and get_learner_class(method) is not cls:
        raise ValueError(f"{folder} holds a {card['method']!r} learner, not {method!r}")
    config = card_config(card, cls)
    if clip is None:
        name, tag = parse_backbone_id(card["backbone"])
        clip = load_clip(
            name, pretrained=tag, device=device, precision=card.get("backbone_precision", "fp32"), download=download
        )
    elif clip.id != card["backbone"]:
        raise ValueError(
            f"{folder} was trained on backbone {card['backbone']!r}, but the given CLIP is "
            f"{clip.id!r}; load the matching backbone (or pass clip=None)"
        )
    if "backbone_sha256" not in card:
        log.warning(
            "%s has no backbone_sha256 (written before backbone hashes were recorded): cannot check "
            "that %s has the weights it was trained on",
            card_path,
            card["backbone"],
        )
    elif card["backbone_sha256"] != clip.weights_sha256:
        raise ValueError(
            f"{card_path} was trained on {card['backbone']!r} with weights sha256 "
            f"{card['backbone_sha256'][:12]}…, but the loaded backbone's weights hash to "
            f"{clip.weights_sha256[:12]}…: another version of those weights (e.g. a retrained "
            "ToyCLIP or a different file). Load the weights it was trained on, or retrain"
        )
    weights = folder / "learner.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing; the checkpoint is incomplete")
    if sha256_file(weights) != card["weights_sha256"]:
        raise ValueError(
            f"{weights} does not match the hash in learner.json: the checkpoint is corrupt or "
            "was modified; re-run training or restore both files together"
        )
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"cannot read {weights}: {err}") from err
    learner = cls(clip, card["classnames"], config)
    learner.load_learner_state_dict({k: v.to(clip.device) for k, v in state.items()})
    return learner.eval()
