"""Dataset manifests: one JSON file per real dataset in `data_manifests/`, validated on load.

A manifest says where a dataset lives under the data root, what its folder must contain, how its
splits are made, its class count and split sizes, its class-name conventions, its zero-shot
template and where to get it (reference: docs/protocols.md §2).

    m = load_manifest("dtd")
    m.folder, m.split_file, m.num_classes, m.template
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# the repository's data_manifests/, reached through the package's symlink so wheels ship it too
MANIFEST_DIR = Path(__file__).parents[1] / "data_manifests"

READERS = ("zhou_split", "fgvc_aircraft", "imagenet", "imagenetv2", "imagenet_folders")
GENERATORS = ("none", "per_class_50_20_30", "trainval_80_20", "official_lists", "folders")
LAYOUT_KINDS = ("dir", "file")

# field → (type, required, meaning). The schema lives here, in code (no jsonschema dependency).
SCHEMA: dict[str, tuple[type | tuple[type, ...], bool, str]] = {
    "name": (str, True, "registry name, equal to the file name without .json"),
    "title": (str, True, "human-readable dataset name"),
    "folder": (str, True, "folder under the data root"),
    "image_dir": (str, True, "image folder relative to `folder` ('' = the folder itself)"),
    "reader": (str, True, f"how items are read: one of {READERS}"),
    "split_file": (str, True, "split file name inside `folder`, or 'none'"),
    "split_generation": (str, True, f"how splits are made without a split file: one of {GENERATORS}"),
    "split_generation_notes": (str, False, "details of the split generation"),
    "layout": (list, True, "expected entries: [{path, kind: dir|file, required, note}]"),
    "num_classes": (int, True, "number of classes"),
    "split_sizes": (dict, True, "{train, val, test}: image counts (null where the split is absent)"),
    "base_novel": (list, False, "[base, novel] class counts for base-to-novel"),
    "classnames": (str, True, "class-name convention"),
    "classname_renames": (dict, False, "folder name → class name"),
    "ignored_folders": (list, False, "class folders that are not classes"),
    "template": (str, True, "zero-shot template with one '{}'"),
    "sources": (list, True, "[{what, url}]: official owner pages"),
    "licence": (str, True, "licence / terms of use notes"),
    "notes": (str, False, "anything else a user should know"),
}


@dataclass(frozen=True)
class LayoutEntry:
    """One expected entry of a dataset folder."""

    path: str
    kind: str  # "dir" or "file"
    required: bool = True
    note: str = ""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (fields as in `SCHEMA`)."""

    name: str
    title: str
    folder: str
    image_dir: str
    reader: str
    split_file: str
    split_generation: str
    layout: tuple[LayoutEntry, ...]
    num_classes: int
    split_sizes: dict
    classnames: str
    template: str
    sources: tuple[dict, ...]
    licence: str
    split_generation_notes: str = ""
    base_novel: tuple[int, ...] = ()
    classname_renames: dict = field(default_factory=dict)
    ignored_folders: tuple[str, ...] = ()
    notes: str = ""
    path: str = ""  # the file it was read from

    @property
    def has_split_file(self) -> bool:
        return self.split_file != "none"

    def where_to_get(self) -> str:
        """One line per official source, for error messages and `data verify`."""
        return "\n".join(f"  {s['what']}: {s['url']}" for s in self.sources)


def _fail(path: Path | str, field_name: str, problem: str) -> ValueError:
    return ValueError(f"bad manifest {path}: field {field_name!r} {problem}")


def validate_manifest(data: object, path: Path | str = "<manifest>") -> Manifest:
    """Check a manifest's fields and values; a problem raises one ValueError naming file and field."""
    if not isinstance(data, dict):
        raise ValueError(f"bad manifest {path}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise _fail(path, unknown[0], f"is not a manifest field; allowed: {', '.join(SCHEMA)}")
    for key, (typ, required, meaning) in SCHEMA.items():
        if key not in data:
            if required:
                raise _fail(path, key, f"is missing ({meaning})")
            continue
        value = data[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise _fail(path, key, f"should be {typ.__name__} ({meaning}), got {value!r}")
    if Path(str(path)).suffix == ".json" and data["name"] != Path(str(path)).stem:
        raise _fail(path, "name", f"is {data['name']!r} but the file is named {Path(str(path)).name}")
    if data["reader"] not in READERS:
        raise _fail(path, "reader", f"is {data['reader']!r}; allowed: {', '.join(READERS)}")
    if data["split_generation"] not in GENERATORS:
        raise _fail(path, "split_generation", f"is {data['split_generation']!r}; allowed: {', '.join(GENERATORS)}")
    if data["num_classes"] < 1:
        raise _fail(path, "num_classes", f"should be ≥ 1, got {data['num_classes']}")
    if data["template"].count("{}") != 1:
        raise _fail(path, "template", f"should contain exactly one '{{}}', got {data['template']!r}")
    sizes = data["split_sizes"]
    for split, n in sizes.items():
        if split not in ("train", "val", "test") or not (n is None or isinstance(n, int)):
            raise _fail(path, "split_sizes", f"entry {split!r}: {n!r} (keys train/val/test, int or null)")
    layout = []
    for i, entry in enumerate(data["layout"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("path"), str)
            or entry.get("kind") not in LAYOUT_KINDS
            or set(entry) - {"path", "kind", "required", "note"}
        ):
            raise _fail(
                path,
                "layout",
                f"entry {i} should be {{path: str, kind: dir|file, required: bool, note: str}}, got {entry!r}",
            )
        layout.append(
            LayoutEntry(entry["path"], entry["kind"], bool(entry.get("required", True)), entry.get("note", ""))
        )
    for i, src in enumerate(data["sources"]):
        if not isinstance(src, dict) or not isinstance(src.get("what"), str) or not isinstance(src.get("url"), str):
            raise _fail(path, "sources", f"entry {i} should be {{what: str, url: str}}, got {src!r}")
    if "base_novel" in data and (len(data["base_novel"]) != 2 or sum(data["base_novel"]) != data["num_classes"]):
        raise _fail(path, "base_novel", f"should be [base, novel] summing to num_classes, got {data['base_novel']}")
    return Manifest(
        name=data["name"],
        title=data["title"],
        folder=data["folder"],
        image_dir=data["image_dir"],
        reader=data["reader"],
        split_file=data["split_file"],
        split_generation=data["split_generation"],
        layout=tuple(layout),
        num_classes=data["num_classes"],
        split_sizes=dict(sizes),
        classnames=data["classnames"],
        template=data["template"],
        sources=tuple(data["sources"]),
        licence=data["licence"],
        split_generation_notes=data.get("split_generation_notes", ""),
        base_novel=tuple(data.get("base_novel", ())),
        classname_renames=dict(data.get("classname_renames", {})),
        ignored_folders=tuple(data.get("ignored_folders", ())),
        notes=data.get("notes", ""),
        path=str(path),
    )


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"bad manifest {path}: not valid JSON ({err})") from None
    return validate_manifest(data, path)


def list_manifests(directory: str | Path = MANIFEST_DIR) -> list[str]:
    """Names of the real-dataset manifests (the `toyworld/` sub-folder is not among them)."""
    return sorted(p.stem for p in Path(directory).glob("*.json") if p.name != "schema.json")


@cache
def load_manifest(name: str, directory: str | Path = MANIFEST_DIR) -> Manifest:
    """The validated manifest of dataset `name` (e.g. "dtd").

    Example:
        >>> load_manifest("dtd").template
        '{} texture.'
    """
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"no manifest for dataset {name!r} in {directory}; known: {', '.join(list_manifests(directory))}"
        )
    return read_manifest(path)
