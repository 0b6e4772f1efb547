"""Files that are never half-written: one atomic-write helper, strict JSON, readable permissions.

atomic_write(path, lambda tmp: save_file(tensors, tmp))    # temp file in the same folder + rename
write_json(path, {"accuracy": 61.2})                       # NaN/inf refused, never written
read_json(path, what="checkpoint card")                    # one clear error for bad JSON
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then rename onto `path` (atomic on POSIX and Windows).

    The file gets the normal permissions of a new file (0666 minus the umask, e.g. 0644), not the
    0600 of `tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON: a NaN or infinity raises ValueError naming the problem instead of writing 'NaN'."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"refusing to write a non-finite number (NaN or inf) as JSON: {err}") from err


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Strict JSON (see `dumps`), written atomically with a trailing newline."""
    text = dumps(obj, indent) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file raises one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist or is not a regular file")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err})") from err


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
