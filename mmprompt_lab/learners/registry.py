"""The learner registry: `@register_learner("coop")`, `create_learner`, `list_learners` (timm-style)."""

from __future__ import annotations

import difflib
import fnmatch

from ..backbone import FrozenCLIP
from ..seeding import rng_scope
from .base import PromptLearner

_LEARNERS: dict[str, type[PromptLearner]] = {}


def register_learner(cls: type[PromptLearner]) -> type[PromptLearner]:
    """Class decorator: registers a learner under its `name`. A duplicate name is an error."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered")
    if cls.name in _LEARNERS:
        raise ValueError(f"learner {cls.name!r} is already registered by {_LEARNERS[cls.name].__name__}")
    _LEARNERS[cls.name] = cls
    return cls


def list_learners(pattern: str | None = None) -> list[str]:
    """Names accepted by `create_learner`, in registration order; `pattern` filters them with a
    case-insensitive fnmatch pattern, e.g. `list_learners("*coop")` → ['coop', 'cocoop']."""
    if pattern is None:
        return list(_LEARNERS)
    return [n for n in _LEARNERS if fnmatch.fnmatchcase(n, pattern.lower())]


def get_learner_class(name: str) -> type[PromptLearner]:
    key = name.lower().replace("-", "_")
    if key not in _LEARNERS:
        close = difflib.get_close_matches(key, list(_LEARNERS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Available: {', '.join(_LEARNERS)}")
    return _LEARNERS[key]


def create_learner(
    name: str, clip: FrozenCLIP, classnames: list[str], *, seed: int | None = None, **overrides
) -> PromptLearner:
    """Build a learner with its official defaults; `overrides` are checked against its config.

    Args:
        seed: draws the random prompt initialisation from a generator seeded with it (the global
            generator is left untouched), so the same seed gives the same initial prompts in any
            process. None draws from the global generator.

    Example:
        >>> learner = create_learner("maple", clip, classnames=["cat", "dog"], seed=1, n_ctx=2)
    """
    cls = get_learner_class(name)
    config = cls.config_class.from_overrides(**overrides)
    with rng_scope(seed):
        return cls(clip, list(classnames), config)
