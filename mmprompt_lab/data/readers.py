"""Readers for the CoOp datasets and the ImageNet variants (reference: docs/protocols.md §2).

Every manifest in `data_manifests/` is registered under its name. A reader turns a dataset folder
into item lists in the official order:

- `zhou_split`: `split_zhou_<Name>.json` = `{"train"|"val"|"test": [[relpath, label, classname], …]}`,
  paths relative to the image folder (StanfordCars: the dataset folder). Without a split file the
  official split is generated once (50/20/30 per class, or trainval 80/20 per class) and written as
  JSON into the cache folder (`cache_dir()`), never as pickle.
- `fgvc_aircraft`: the official `images_variant_{train,val,test}.txt` lists and `variants.txt`.
- `imagenet`: `images/train/<wnid>/`, `images/val/<wnid>/` (= test), `classnames.txt`.
- `imagenetv2`: folders `0..999`; `imagenet_folders` (-Sketch, -A, -R): `<wnid>/` folders, labels in
  sorted wnid order, names from the ImageNet `classnames.txt`.

    source = get_source("dtd", root="~/data")          # reads ~/data/dtd/
    source.splits["train"][0]                          # Item(path=…, label=…, classname=…)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from functools import partial
from pathlib import Path
from collections.abc import Callable

from ..io import write_json
from .base import SPLITS, DatasetSource, Item, register_dataset
from .images import file_kind, list_image_files, load_rgb
from .manifest import Manifest, list_manifests, load_manifest

Splits = dict[str, list[Item]]
Read = tuple[Splits, list[str], dict]  # splits, class names by label, source meta
GENERATION_SEED = 1  # the generated splits use their own random.Random(1); the global stream is untouched
DOMAINS = {"imagenet_sketch": "sketch", "imagenet_a": "adversarial", "imagenet_r": "rendition"}


def cache_dir() -> Path:
    """Where generated splits and listings go: $MMPROMPT_LAB_CACHE, else ~/.cache/mmprompt_lab."""
    env = os.environ.get("MMPROMPT_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmprompt_lab"


def dataset_dir(manifest: Manifest, root: str | Path | None) -> Path:
    """The dataset's folder: `root/<folder>`, or `root` itself when it already is that folder."""
    if root is None:
        raise ValueError(
            f"dataset {manifest.name!r} needs root= (the data folder holding "
            f"{manifest.folder}/), e.g. load_dataset({manifest.name!r}, root='~/data')"
        )
    root = Path(root).expanduser().absolute()
    if (root / manifest.folder).is_dir():
        return root / manifest.folder
    first = manifest.layout[0].path if manifest.layout else manifest.image_dir
    if root.name == manifest.folder or (root / first).exists():
        return root
    raise ValueError(
        f"dataset {manifest.name!r}: folder {root / manifest.folder} not found. "
        f"Expected {manifest.folder}/ under {root}; get the data from:\n{manifest.where_to_get()}\n"
        f"and check it with `mmprompt-lab data verify --root {root} --dataset {manifest.name}`."
    )


def _list_images(folder: Path) -> list[str]:
    """Image file names in `folder`, sorted (the official code uses os.listdir order)."""
    return sorted(os.path.basename(p) for p in list_image_files(folder, recursive=False))


def _list_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"missing file {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cache_file(kind: str, manifest: Manifest, folder: Path) -> Path:
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / kind / f"{manifest.name}-{digest}.json"


# ----------------------------------------------------------------------------- split files
def read_split_file(path: str | Path, image_dir: str | Path) -> Splits:
    """Read a `split_zhou_*.json` file; paths are joined to `image_dir`.

    Raises ValueError naming the file, split and entry when the format is wrong.
    """
    path, image_dir = Path(path), Path(image_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read split file {path}: {err}") from None
    if not isinstance(data, dict) or not set(SPLITS) <= set(data):
        keys = list(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"split file {path} should be an object with keys {list(SPLITS)}, got {keys}")
    splits: Splits = {}
    for split in SPLITS:
        items = []
        for i, entry in enumerate(data[split]):
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[0], str)
                and isinstance(entry[1], int)
                and isinstance(entry[2], str)
            ):
                raise ValueError(
                    f"split file {path}: {split}[{i}] should be [relative_path, label, classname], got {entry!r}"
                )
            items.append(Item(str(image_dir / entry[0]), entry[1], entry[2]))
        splits[split] = items
    return splits


def write_split_file(path: str | Path, splits: Splits, image_dir: str | Path) -> None:
    """Write splits in the `split_zhou_*.json` format, paths relative to `image_dir` (atomic)."""
    image_dir = Path(image_dir)
    data = {
        split: [[Path(it.path).relative_to(image_dir).as_posix(), it.label, it.classname] for it in splits[split]]
        for split in SPLITS
    }
    write_json(Path(path), data)


def classnames_from_splits(splits: Splits, where: str) -> list[str]:
    """Class names by label; labels must be 0..n-1 and name one class each."""
    names: dict[int, str] = {}
    for split, items in splits.items():
        for it in items:
            if names.setdefault(it.label, it.classname) != it.classname:
                raise ValueError(
                    f"{where}: label {it.label} is both {names[it.label]!r} and {it.classname!r} (split {split!r})"
                )
    if sorted(names) != list(range(len(names))):
        gaps = sorted(set(range(max(names, default=-1) + 1)) - set(names))
        raise ValueError(f"{where}: labels must be 0..n-1 without gaps; missing {gaps[:10]}")
    return [names[label] for label in range(len(names))]


# ----------------------------------------------------------------------------- split generation
def split_per_class(
    groups: list[tuple[int, str, list[str]]], rng: random.Random, p_train: float = 0.5, p_val: float = 0.2
) -> Splits:
    """Official 50/20/30 generation: shuffle each class, take round(n·p) for train and val.

    `groups` = [(label, classname, image paths)] in label order.
    """
    splits: Splits = {s: [] for s in SPLITS}
    for label, classname, paths in groups:
        paths = list(paths)
        rng.shuffle(paths)
        n_train, n_val = round(len(paths) * p_train), round(len(paths) * p_val)
        if n_train == 0 or n_val == 0 or len(paths) - n_train - n_val == 0:
            raise ValueError(
                f"class {classname!r} has {len(paths)} images; the 50/20/30 split needs "
                "at least one image in each of train/val/test (≥ 4 images)"
            )
        cut = {"train": paths[:n_train], "val": paths[n_train : n_train + n_val], "test": paths[n_train + n_val :]}
        for split, chosen in cut.items():
            splits[split].extend(Item(p, label, classname) for p in chosen)
    return splits


def split_trainval(trainval: list[Item], rng: random.Random, p_val: float = 0.2) -> tuple[list[Item], list[Item]]:
    """Official 80/20 generation: per label (first-appearance order) shuffle, first round(n·0.2) → val."""
    by_label: dict[int, list[Item]] = {}
    for item in trainval:
        by_label.setdefault(item.label, []).append(item)
    train, val = [], []
    for items in by_label.values():
        n_val = round(len(items) * p_val)
        if n_val == 0:
            raise ValueError(
                f"class {items[0].classname!r} has {len(items)} trainval images; the 80/20 split needs at least 3"
            )
        order = list(range(len(items)))
        rng.shuffle(order)
        for n, idx in enumerate(order):
            (val if n < n_val else train).append(items[idx])
    return train, val


def _gen_folders(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    """Caltech101, DTD, Food101, EuroSAT: sorted class folders, renames and ignored folders."""
    image_dir = ddir / m.image_dir
    folders = [f for f in _list_dirs(image_dir) if f not in m.ignored_folders]
    groups = [
        (label, m.classname_renames.get(f, f), [str(image_dir / f / n) for n in _list_images(image_dir / f)])
        for label, f in enumerate(folders)
    ]
    return split_per_class(groups, rng)


def _loadmat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValueError(
            f"reading {path} needs scipy (pip install scipy), or put the CoOp split file in the dataset folder"
        ) from None
    if not path.is_file():
        raise ValueError(f"missing file {path}")
    return loadmat(str(path))


def _gen_flowers(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    labels = _loadmat(ddir / "imagelabels.mat")["labels"][0]
    names = json.loads((ddir / "cat_to_name.json").read_text(encoding="utf-8"))
    by_label: dict[int, list[str]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(str(ddir / m.image_dir / f"image_{i + 1:05d}.jpg"))
    return split_per_class([(lab - 1, names[str(lab)], paths) for lab, paths in by_label.items()], rng)


def _gen_pets(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    def read(name: str) -> list[Item]:
        items = []
        for line in _read_lines(ddir / "annotations" / name):
            if line.startswith("#"):
                continue
            imname, label = line.split()[:2]
            breed = "_".join(imname.split("_")[:-1]).lower()
            items.append(Item(str(ddir / m.image_dir / f"{imname}.jpg"), int(label) - 1, breed))
        return items

    train, val = split_trainval(read("trainval.txt"), rng)
    return {"train": train, "val": val, "test": read("test.txt")}


def _gen_cars(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    meta = _loadmat(ddir / "devkit" / "cars_meta.mat")["class_names"][0]

    def read(folder: str, anno: Path) -> list[Item]:
        items = []
        for rec in _loadmat(anno)["annotations"][0]:
            label = int(rec["class"][0, 0]) - 1
            words = str(meta[label][0]).split(" ")
            name = " ".join([words[-1]] + words[:-1])  # year first: "2012 Tesla Model S Sedan"
            items.append(Item(str(ddir / folder / str(rec["fname"][0])), label, name))
        return items

    train, val = split_trainval(read("cars_train", ddir / "devkit" / "cars_train_annos.mat"), rng)
    return {"train": train, "val": val, "test": read("cars_test", ddir / "cars_test_annos_withlabels.mat")}


def _gen_sun397(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    classes = [line.lstrip("/") for line in _read_lines(ddir / "ClassName.txt")]
    to_label = {c: i for i, c in enumerate(classes)}

    def read(name: str) -> list[Item]:
        items = []
        for line in _read_lines(ddir / name):
            rel = line.lstrip("/")
            cls = os.path.dirname(rel)
            if cls not in to_label:
                raise ValueError(f"{ddir / name}: class {cls!r} of {line!r} is not in ClassName.txt")
            words = cls.split("/")[1:][::-1]  # drop the letter level; "outdoor apartment_building"
            items.append(Item(str(ddir / m.image_dir / rel), to_label[cls], " ".join(words)))
        return items

    train, val = split_trainval(read("Training_01.txt"), rng)
    return {"train": train, "val": val, "test": read("Testing_01.txt")}


def _gen_ucf101(m: Manifest, ddir: Path, rng: random.Random) -> Splits:
    lists = ddir / "ucfTrainTestlist"
    to_label = {}
    for line in _read_lines(lists / "classInd.txt"):
        label, action = line.split()
        to_label[action] = int(label) - 1

    def read(name: str) -> list[Item]:
        items = []
        for line in _read_lines(lists / name):
            action, filename = line.split()[0].split("/")
            renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))  # ApplyEyeMakeup → Apply_Eye_Makeup
            path = ddir / m.image_dir / renamed / filename.replace(".avi", ".jpg")
            items.append(Item(str(path), to_label[action], renamed))
        return items

    train, val = split_trainval(read("trainlist01.txt"), rng)
    return {"train": train, "val": val, "test": read("testlist01.txt")}


SPLIT_GENERATORS: dict[str, Callable[[Manifest, Path, random.Random], Splits]] = {
    "caltech101": _gen_folders,
    "dtd": _gen_folders,
    "food101": _gen_folders,
    "eurosat": _gen_folders,
    "oxford_flowers": _gen_flowers,
    "oxford_pets": _gen_pets,
    "stanford_cars": _gen_cars,
    "sun397": _gen_sun397,
    "ucf101": _gen_ucf101,
}


def generate_split(name: str, root: str | Path, out: str | Path | None = None) -> Path:
    """Generate the official-style split of dataset `name` (no split file needed) and write it as JSON.

    Args:
        name: a dataset with a `zhou_split` reader (e.g. "dtd").
        root: the data root (or the dataset folder).
        out: where to write; default: the cache folder.
    Returns:
        The written file (split_zhou format, paths relative to the image folder).
    """
    m = load_manifest(name)
    if name not in SPLIT_GENERATORS:
        raise ValueError(f"dataset {name!r} has no split generation; allowed: {', '.join(SPLIT_GENERATORS)}")
    ddir = dataset_dir(m, root)
    try:
        splits = SPLIT_GENERATORS[name](m, ddir, random.Random(GENERATION_SEED))
    except (OSError, KeyError) as err:
        raise ValueError(
            f"cannot generate the {name} split from {ddir} (no {m.split_file}): {type(err).__name__}: {err}"
        ) from None
    out = Path(out) if out is not None else _cache_file("splits", m, ddir)
    write_split_file(out, splits, ddir / m.image_dir)
    return out


# ----------------------------------------------------------------------------- readers
def _read_zhou(m: Manifest, ddir: Path, split_file: str | Path | None = None) -> Read:
    path = Path(split_file).expanduser() if split_file else ddir / m.split_file
    generated = False
    if path.exists() and not path.is_file():
        raise ValueError(f"split file {path} is not a regular file ({file_kind(path)}); replace it with the JSON file")
    if not path.is_file():
        if split_file:
            raise ValueError(f"split file {path} not found")
        path, generated = _cache_file("splits", m, ddir), True
        if not path.is_file():
            generate_split(m.name, ddir, path)
    splits = read_split_file(path, ddir / m.image_dir)
    meta = {"split_file": str(path), "generated_split": generated}
    return splits, classnames_from_splits(splits, f"split file {path}"), meta


def _read_fgvc(m: Manifest, ddir: Path) -> Read:
    classnames = _read_lines(ddir / "variants.txt")
    to_label = {c: i for i, c in enumerate(classnames)}
    splits: Splits = {}
    for split in SPLITS:
        path, items = ddir / f"images_variant_{split}.txt", []
        for n, line in enumerate(_read_lines(path), 1):
            image_id, _, variant = line.partition(" ")
            if variant not in to_label:
                raise ValueError(f"{path} line {n}: variant {variant!r} is not in variants.txt")
            items.append(Item(str(ddir / m.image_dir / f"{image_id}.jpg"), to_label[variant], variant))
        splits[split] = items
    return splits, classnames, {}


def read_imagenet_classnames(path: Path) -> dict[str, str]:
    """`classnames.txt` ("wnid class name" lines) → {wnid: name}, in file order."""
    names = {}
    for n, line in enumerate(_read_lines(path), 1):
        wnid, _, name = line.partition(" ")
        if not name:
            raise ValueError(f"{path} line {n}: expected 'wnid class name', got {line!r}")
        names[wnid] = name.strip()
    return names


def _imagenet_classnames_file(ddir: Path) -> Path:
    for path in (ddir / "classnames.txt", ddir.parent / "imagenet" / "classnames.txt"):
        if path.is_file():
            return path
    raise ValueError(
        f"classnames.txt not found in {ddir} or {ddir.parent / 'imagenet'}; copy the ImageNet "
        "classnames.txt ('wnid name' lines, from the CoOp repository) into one of them"
    )


def _wnid_folders(folder: Path, names: dict[str, str], names_file: Path) -> tuple[list[Item], list[str]]:
    if not folder.is_dir():
        raise ValueError(f"missing folder {folder}")
    wnids = _list_dirs(folder)
    unknown = [w for w in wnids if w not in names]
    if unknown:
        raise ValueError(f"{folder}: folder(s) {unknown[:5]} are not wnids listed in {names_file}")
    items = [
        Item(str(folder / w / f), label, names[w]) for label, w in enumerate(wnids) for f in _list_images(folder / w)
    ]
    return items, wnids


def _read_imagenet(m: Manifest, ddir: Path) -> Read:
    names_file = ddir / "classnames.txt"
    names = read_imagenet_classnames(names_file)
    cache = _cache_file("listings", m, ddir)
    image_dir = ddir / m.image_dir
    if cache.is_file():  # listing 1.28M files is slow; the listing (not the sampling) is cached
        data = json.loads(cache.read_text(encoding="utf-8"))
        wnids = data["wnids"]
        splits = {
            s: [Item(str(image_dir / rel), lab, names[wnids[lab]]) for rel, lab in data[s]] for s in ("train", "test")
        }
        return splits, [names[w] for w in wnids], {"listing": str(cache)}
    train, wnids = _wnid_folders(image_dir / "train", names, names_file)
    test, test_wnids = _wnid_folders(image_dir / "val", names, names_file)
    if test_wnids != wnids:
        diff = sorted(set(wnids) ^ set(test_wnids))
        raise ValueError(f"{image_dir}: train/ and val/ must hold the same wnid folders; differ in {diff[:5]}")
    splits = {"train": train, "test": test}
    write_json(
        cache,
        {
            "wnids": wnids,
            **{
                s: [[Path(it.path).relative_to(image_dir).as_posix(), it.label] for it in items]
                for s, items in splits.items()
            },
        },
    )
    return splits, [names[w] for w in wnids], {"listing": str(cache)}


def _read_imagenetv2(m: Manifest, ddir: Path) -> Read:
    names_file = _imagenet_classnames_file(ddir)
    classnames = list(read_imagenet_classnames(names_file).values())
    image_dir = ddir / m.image_dir
    if not image_dir.is_dir():
        raise ValueError(f"missing folder {image_dir}")
    extra = sorted(set(_list_dirs(image_dir)) - {str(i) for i in range(len(classnames))})
    if extra:
        raise ValueError(
            f"{image_dir}: folders must be named 0..{len(classnames) - 1} "
            f"({len(classnames)} classes in {names_file}); unexpected: {extra[:5]}"
        )
    items = [
        Item(str(image_dir / str(label) / f), label, name)
        for label, name in enumerate(classnames)
        if (image_dir / str(label)).is_dir()
        for f in _list_images(image_dir / str(label))
    ]
    return {"test": items}, classnames, {"classnames_file": str(names_file)}


def _read_imagenet_folders(m: Manifest, ddir: Path) -> Read:
    names_file = _imagenet_classnames_file(ddir)
    names = read_imagenet_classnames(names_file)
    items, wnids = _wnid_folders(ddir / m.image_dir, names, names_file)
    return {"test": items}, [names[w] for w in wnids], {"classnames_file": str(names_file), "wnids": wnids}


READERS = {
    "zhou_split": _read_zhou,
    "fgvc_aircraft": _read_fgvc,
    "imagenet": _read_imagenet,
    "imagenetv2": _read_imagenetv2,
    "imagenet_folders": _read_imagenet_folders,
}


def _load_item(item: Item):
    return load_rgb(item.path)


def build_source(name: str, root: str | Path | None, **kwargs) -> DatasetSource:
    """The `DatasetSource` of manifest dataset `name` under `root` (what `load_dataset` uses).

    Keyword args: `split_file` (zhou datasets only): a split file to use instead of the dataset's own.
    """
    m = load_manifest(name)
    allowed = {"split_file"} if m.reader == "zhou_split" else set()
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"dataset {name!r} got unknown option(s) {unknown}; allowed: {sorted(allowed) or 'none'}")
    ddir = dataset_dir(m, root)
    splits, classnames, meta = READERS[m.reader](m, ddir, **kwargs)
    domain = DOMAINS.get(name, "")
    if domain:
        splits = {
            s: [Item(it.path, it.label, it.classname, it.key, domain) for it in items] for s, items in splits.items()
        }
    meta = {"manifest": m.path, "dataset_dir": str(ddir), **meta}
    return DatasetSource(
        name=name,
        classnames=classnames,
        splits=splits,
        load_image=_load_item,
        augment="official",
        template=m.template,
        meta=meta,
    )


for _name in list_manifests():
    register_dataset(_name)(partial(build_source, _name))

from . import user  # noqa: E402,F401  (registers "folder" and "csv")
