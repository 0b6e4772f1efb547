"""Checked construction of the package's frozen config dataclasses (docs/design.md §8, rule 5): unknown keys
are named with a close match, and values are converted to each field's declared type.

    build_config(MaPLeConfig, {"n_ctx": "4", "ctx_init": ""})        # from `--set n_ctx=4`: int 4
    build_config(CoOpConfig, {"csc": "yes"})                          # bool True
    build_config(CoOpConfig, {"n_ctx": "four"})  → ValueError: CoOpConfig.n_ctx expects an integer …
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def build_config(cls: type[T], overrides: dict[str, Any]) -> T:
    """`cls(**overrides)` with checked keys and typed values.

    None keeps a field's default; an unknown key raises a ValueError naming it, a close match and the
    allowed keys; a value of the wrong type (e.g. "four" for an int, from the command line or a
    checkpoint card) raises a ValueError naming the key and the expected type. Strings are converted
    to the declared type (booleans accept true/false/yes/no/1/0; lists become tuples).
    """
    names = [f.name for f in dataclasses.fields(cls)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{cls.__name__} has no option {key!r}.{hint} Allowed: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    values = {k: convert(v, hints[k], f"{cls.__name__}.{k}") for k, v in overrides.items() if v is not None}
    return cls(**values)


def convert(value: Any, annotation: Any, where: str) -> Any:
    """Convert `value` to `annotation` (int, float, bool, str, tuple[...], X | None, Literal) or raise."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [value] if value else []
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} expects a list, got {value!r}")
        item = args[0] if args else Any
        items = [convert(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
            return value.strip().lower() in TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{where} expects true or false (yes/no, 1/0), got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ValueError(f"{where} expects an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (ValueError, OverflowError):
            raise ValueError(f"{where} expects an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError(f"{where} expects a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} expects a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} expects text, got {value!r}")
        return value
    return value  # Any or a type this converter does not know: passed as it is


def parse_options(pairs: list[str] | None) -> dict:
    """`--set n_ctx=4 --set ctx_init="a photo of a"` → {"n_ctx": "4", "ctx_init": "a photo of a"}.

    Values stay text here; the learner's config converts each to its declared type (and names the key
    and the expected type when it cannot). "none"/"null" mean "keep the default"."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = (part.strip() for part in pair.split("=", 1))
        if not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = None if value.lower() in ("none", "null") else value
    return out
