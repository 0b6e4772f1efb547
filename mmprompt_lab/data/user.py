"""A user's own images as a dataset: a folder of class folders, or a CSV file.

    load_dataset("folder", root="~/pets")       # ~/pets/<class>/*.jpg, or ~/pets/{train,val,test}/<class>/…
    load_dataset("csv", root="~/pets/labels.csv")   # columns path,label or path,classname (+ optional split)

Ordering is deterministic: classes sorted by name, images sorted by path. A flat folder (no
train/val/test sub-folders) or a CSV without a `split` column puts the same images in "train" and
"test" — keep a held-out folder for honest evaluation.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .base import SPLITS, DatasetSource, Item, register_dataset
from .images import IMAGE_EXTENSIONS, file_kind, list_image_files, load_rgb

DEFAULT_TEMPLATE = "a photo of a {}."


def _load_item(item: Item):
    return load_rgb(item.path)


def _class_images(folder: Path) -> list[str]:
    """Image files anywhere below `folder`, sorted by path (FIFOs and the like skipped with a warning)."""
    return list_image_files(folder)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_template(template: str) -> None:
    if template.count("{}") != 1:
        raise ValueError(f"template must contain exactly one '{{}}', got {template!r}")


@register_dataset("folder")
def folder_source(root: Path | None, template: str = DEFAULT_TEMPLATE) -> DatasetSource:
    """`root/<class>/*.jpg` (classes = sorted folder names), or `root/{train,val,test}/<class>/…`."""
    _check_template(template)
    if root is None or not Path(root).is_dir():
        raise ValueError(f"folder dataset: root must be an existing folder of class folders, got {root}")
    root = Path(root).absolute()
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    layout = split_dirs or {"train": root}
    found: dict[str, dict[str, list[str]]] = {}
    for split, folder in layout.items():
        found[split] = {d.name: _class_images(d) for d in _class_dirs(folder)}
        empty = [name for name, files in found[split].items() if not files]
        if empty and not split_dirs:
            raise ValueError(
                f"folder dataset {root}: class folder(s) {empty[:5]} hold no images "
                f"(allowed extensions: {' '.join(IMAGE_EXTENSIONS)})"
            )
    classnames = sorted({name for per_class in found.values() for name, files in per_class.items() if files})
    if not classnames:
        raise ValueError(
            f"folder dataset {root}: no images found; expected {root}/<class>/*.jpg "
            f"or {root}/train/<class>/*.jpg (extensions: {' '.join(IMAGE_EXTENSIONS)})"
        )
    label = {name: i for i, name in enumerate(classnames)}
    splits = {
        split: [Item(path, label[name], name) for name in sorted(per_class) for path in per_class[name]]
        for split, per_class in found.items()
    }
    if not split_dirs:
        splits["test"] = list(splits["train"])
    return DatasetSource(
        name="folder",
        classnames=classnames,
        splits=splits,
        load_image=_load_item,
        template=template,
        meta={"root": str(root), "split_folders": bool(split_dirs)},
    )


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the (line number, row) pairs of a UTF-8 CSV file (a BOM is allowed).

    Raises ValueError naming the file (and the line) for an empty file, bytes that are not UTF-8,
    a malformed CSV, or a row with more or fewer values than the header.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ValueError(f"csv dataset {path}: cannot read the file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ValueError(
            f"csv dataset {path} line {line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        filled = ((reader.line_num, values) for values in reader if any(v.strip() for v in values))
        header = [c.strip() for c in next(filled, (0, []))[1]]
        rows = list(filled)
    except csv.Error as err:
        raise ValueError(f"csv dataset {path}: not a readable CSV file ({err})") from None
    if not any(header):
        raise ValueError(
            f"csv dataset {path}: the file is empty; expected a header line such as "
            "'path,classname' or 'path,label' followed by one row per image"
        )
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ValueError(f"csv dataset {path}: header names column(s) {twice} more than once")
    out = []
    for n, values in rows:
        if len(values) != len(header):
            raise ValueError(
                f"csv dataset {path} line {n}: {len(values)} value(s) but the header "
                f"{','.join(header)!r} has {len(header)}; check for missing or extra commas "
                "(quote values that contain commas)"
            )
        out.append((n, {k: v.strip() for k, v in zip(header, values, strict=True)}))
    return header, out


@register_dataset("csv")
def csv_source(root: Path | None, template: str = DEFAULT_TEMPLATE) -> DatasetSource:
    """A CSV file with a header: `path` and `label` and/or `classname` columns, optional `split`.

    Relative paths are relative to the CSV's folder. With `label` only, labels must be 0..n-1 and the
    class names are the label strings; with `classname` only, labels follow sorted class names.
    The file is read as UTF-8 (a byte-order mark, as Excel writes, is fine).
    """
    _check_template(template)
    if root is None or not Path(root).is_file():
        kind = file_kind(root) if root is not None else "missing"
        raise ValueError(f"csv dataset: root must be a CSV file, got {root} ({kind})")
    path = Path(root).absolute()
    columns, rows = read_csv_rows(path)
    if "path" not in columns or not {"label", "classname"} & set(columns):
        raise ValueError(f"csv dataset {path}: header must have 'path' and 'label' and/or 'classname'; got {columns}")
    if not rows:
        raise ValueError(f"csv dataset {path}: no rows")
    required = ["path"] if "label" in columns else ["path", "classname"]  # with labels, names may be blank
    for n, row in rows:
        empty = [column for column in required if not row[column]]
        if empty:
            raise ValueError(f"csv dataset {path} line {n}: empty {' and '.join(empty)}")
    names: dict[int, str] = {}
    if "label" in columns:
        for n, row in rows:
            if not row["label"].lstrip("-").isdigit():
                raise ValueError(f"csv dataset {path} line {n}: label must be an integer, got {row['label']!r}")
            lab, name = int(row["label"]), row.get("classname") or row["label"]
            if names.setdefault(lab, name) != name:
                raise ValueError(f"csv dataset {path} line {n}: label {lab} is both {names[lab]!r} and {name!r}")
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"csv dataset {path}: labels must be 0..n-1 without gaps, got {sorted(names)[:10]}…")
        classnames = [names[i] for i in range(len(names))]
    else:
        classnames = sorted({row["classname"] for _, row in rows})
    to_label = {name: i for i, name in enumerate(classnames)}
    splits: dict[str, list[Item]] = {}
    for n, row in rows:
        split = row.get("split") or "train"
        if split not in SPLITS:
            raise ValueError(f"csv dataset {path} line {n}: split must be one of {SPLITS}, got {split!r}")
        image = Path(row["path"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        lab = int(row["label"]) if "label" in columns else to_label[row["classname"]]
        splits.setdefault(split, []).append(Item(str(image), lab, classnames[lab]))
    splits = {s: sorted(items, key=lambda it: it.path) for s, items in splits.items()}
    if "split" not in columns:
        splits["test"] = list(splits["train"])
    return DatasetSource(
        name="csv",
        classnames=classnames,
        splits=splits,
        load_image=_load_item,
        template=template,
        meta={"csv": str(path)},
    )
