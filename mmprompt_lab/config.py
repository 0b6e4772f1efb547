"""Checked construction of the package's frozen config dataclasses (STYLE.md rule 5)."""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, TypeVar

T = TypeVar("T")


def build_config(cls: type[T], overrides: dict[str, Any]) -> T:
    """`cls(**overrides)`, where None keeps a field's default and an unknown key raises a ValueError
    naming the key, a close match and the allowed keys."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{cls.__name__} has no option {key!r}.{hint} Allowed: {', '.join(names)}")
    return cls(**{k: v for k, v in overrides.items() if v is not None})
