"""Datasets as plain item lists: one record per image, a registry of sources, the official few-shot
sampler and the base/novel split (reference: docs/protocols.md §1).

A *source* knows where a dataset's images are and lists its splits; `load_dataset` turns a source
into an `ImageDataset` (the exact selection for a split, shots, seed and class subsample).

    ds = load_dataset("toyworld/shapes", split="train", shots=16, seed=1, subsample="base")
    ds.classnames, ds.items[0].path, ds.items[0].label
    image, label = ds[0]                       # PIL image (or transform(image)) and int label
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Callable, Sequence

from PIL import Image
from torch.utils.data import Dataset

from .images import BadImageError, check_images_exist

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SUBSAMPLES = ("all", "base", "novel")


@dataclass(frozen=True)
class Item:
    """One image of a dataset: `path` on disk (None for generated images, then `key` names it)."""

    path: str | None
    label: int
    classname: str
    key: int | None = None  # generator index for procedurally generated images
    domain: str = ""  # e.g. "photo", "sketch"; informational


@dataclass
class DatasetSource:
    """Everything `load_dataset` needs to know about one dataset.

    `splits` maps split names ("train", "val", "test", and any extra test splits such as
    "test_sketch") to item lists in the official order; `load_image(item)` returns an RGB PIL image.
    `augment` names the train augmentation the engine should use by default ("official" =
    RandomResizedCrop(0.08–1) + flip, as the papers; "toy" = milder, for 32 px ToyWorld images).
    """

    name: str
    classnames: list[str]
    splits: dict[str, list[Item]]
    load_image: Callable[[Item], Image.Image]
    augment: str = "official"
    template: str = "a photo of a {}."  # the dataset's zero-shot template (docs/methods.md §1)
    meta: dict = field(default_factory=dict)


class ImageDataset(Dataset):
    """A selection of items. `ds[i]` → `(image, label)`; image is RGB PIL, or `transform(image)`.

    With `skip_bad_images=True` an unreadable image is logged, recorded in `skipped` (per process:
    DataLoader workers keep their own lists) and replaced by the next readable item.
    """

    def __init__(
        self,
        source: DatasetSource,
        split: str,
        items: list[Item],
        classnames: list[str],
        transform: Callable | None = None,
        info: dict | None = None,
        skip_bad_images: bool = False,
    ):
        if not classnames:
            raise ValueError(f"dataset {source.name!r} split {split!r} has no classes")
        self.source, self.split, self.items, self.classnames = source, split, items, list(classnames)
        self.transform = transform
        self.info = dict(info or {})  # shots, seed, subsample: how this selection was made
        self.skip_bad_images = skip_bad_images
        self.skipped: list[str] = []  # paths of unreadable images skipped so far

    name = property(lambda self: self.source.name)
    augment = property(lambda self: self.source.augment)
    template = property(lambda self: self.source.template)
    labels = property(lambda self: [it.label for it in self.items])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        for offset in range(len(self.items)):
            item = self.items[(index + offset) % len(self.items)]
            try:
                image = self.source.load_image(item)
            except BadImageError as err:
                if not self.skip_bad_images:
                    raise
                if item.path not in self.skipped:
                    self.skipped.append(item.path)
                    log.warning("skipping unreadable image (%d so far): %s", len(self.skipped), err)
                continue
            return (self.transform(image) if self.transform else image), item.label
        raise BadImageError(
            f"dataset {self.name!r} split {self.split!r}: no readable image among {len(self.items)} items"
        )

    def with_transform(self, transform: Callable | None) -> ImageDataset:
        """The same selection with another transform (the engine sets train/test transforms)."""
        return ImageDataset(
            self.source, self.split, self.items, self.classnames, transform, self.info, self.skip_bad_images
        )

    def first_per_class(self, k: int | None) -> ImageDataset:
        """The first `k` items of each class, in split order (quick test sets); None = all items."""
        if k is None:
            return self
        if k < 1:
            raise ValueError(f"the per-class cap must be ≥ 1 or None (all images), got {k}")
        counts: dict[int, int] = {}
        items = []
        for item in self.items:
            counts[item.label] = counts.get(item.label, 0) + 1
            if counts[item.label] <= k:
                items.append(item)
        return ImageDataset(
            self.source,
            self.split,
            items,
            self.classnames,
            self.transform,
            {**self.info, "per_class": k},
            self.skip_bad_images,
        )

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}, split={self.split!r}, {len(self)} images, "
            f"{len(self.classnames)} classes, {self.info})"
        )


# ----------------------------------------------------------------------------- registry
_SOURCES: dict[str, Callable[..., DatasetSource]] = {}
_CACHE: dict[tuple, DatasetSource] = {}


def register_dataset(name: str):
    """Decorator: `@register_dataset("dtd")` on `fn(root: Path | None, **kwargs) -> DatasetSource`."""

    def wrap(fn):
        if name in _SOURCES:
            raise ValueError(f"dataset {name!r} is already registered")
        _SOURCES[name] = fn
        return fn

    return wrap


def list_datasets() -> list[str]:
    """Names accepted by `load_dataset` (ToyWorld suites, the CoOp datasets, ImageNet variants)."""
    _import_builtin_sources()
    return sorted(_SOURCES)


def get_source(name: str, root: str | Path | None = None, **kwargs) -> DatasetSource:
    """The (cached) source of a registered dataset; an unknown name lists the known ones."""
    _import_builtin_sources()
    if name not in _SOURCES:
        close = difflib.get_close_matches(name, list(_SOURCES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown dataset {name!r}.{hint} Known: {', '.join(sorted(_SOURCES))}. "
            "A folder of class sub-folders works too: load_dataset('folder', root=DIR)."
        )
    root = Path(root).expanduser() if root is not None else None
    key = (name, str(root), tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = _SOURCES[name](root, **kwargs)
    return _CACHE[key]


def _import_builtin_sources() -> None:
    # Source modules register themselves on import; importing here keeps `data.base` import-light.
    import importlib

    for module in ("mmprompt_lab.toyworld", "mmprompt_lab.data.readers"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a module still being written is not an error
            if err.name != module:
                raise


# ----------------------------------------------------------------------------- protocol
def sample_few_shot(split_items: Sequence[list[Item]], shots: int, seed: int) -> list[list[Item]]:
    """The official few-shot sampler (docs/protocols.md §1).

    `random.seed(seed)` once; then for each list in order (train, then val) group by label in order
    of first appearance and draw `random.sample(items, k)` per label — all lists continue one random
    stream. k = shots for the first list and min(shots, 4) for the others; a label with fewer than k
    items keeps all of them in list order.
    """
    if shots < 1:
        raise ValueError(f"shots must be ≥ 1, got {shots}")
    random.seed(seed)
    out = []
    for n, items in enumerate(split_items):
        k = shots if n == 0 else min(shots, 4)
        by_label: dict[int, list[Item]] = {}
        for item in items:
            by_label.setdefault(item.label, []).append(item)
        chosen: list[Item] = []
        for group in by_label.values():
            chosen.extend(random.sample(group, k) if len(group) >= k else group)
        out.append(chosen)
    return out


def split_base_novel(labels: Sequence[int], subsample: str) -> dict[int, int]:
    """Map old label → new label for the `subsample` half: sorted labels, base = first ceil(n/2)."""
    if subsample not in SUBSAMPLES:
        raise ValueError(f"subsample must be one of {SUBSAMPLES}, got {subsample!r}")
    ordered = sorted(set(labels))
    m = math.ceil(len(ordered) / 2)
    kept = {"all": ordered, "base": ordered[:m], "novel": ordered[m:]}[subsample]
    return {old: new for new, old in enumerate(kept)}


def relabel(items: Sequence[Item], mapping: dict[int, int]) -> list[Item]:
    """Keep the items whose label is in `mapping`, re-indexed."""
    return [replace(it, label=mapping[it.label]) for it in items if it.label in mapping]


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    shots: int | None = None,
    seed: int = 1,
    subsample: str = "all",
    transform: Callable | None = None,
    skip_bad_images: bool = False,
    check_files: bool = True,
    **source_kwargs,
) -> ImageDataset:
    """Load the exact selection of a dataset that a protocol prescribes.

    Args:
        name: a name from `list_datasets()` (e.g. "toyworld/shapes", "dtd", "imagenet").
        split: "train", "val", "test" or a dataset's extra test split (e.g. "test_sketch").
        root: folder holding the dataset (real datasets; ToyWorld needs none).
        shots: K ≥ 1 images per class for train (and min(K, 4) for val), sampled officially with
            `seed`; None = every image. Ignored for test splits. A class with fewer images keeps all
            of them (a warning names it); `ds.info["shots_used"]` is the fewest any class got.
        subsample: "all", "base" or "novel" classes (labels re-indexed within the half).
        transform: applied to each PIL image (the engine sets the official ones).
        skip_bad_images: skip (and count in `ds.skipped`) unreadable images instead of raising.
        check_files: check that every selected image file exists (a clear error before training).
        **source_kwargs: options of the dataset's source (e.g. `template=` for "folder"/"csv").

    Example:
        >>> train = load_dataset("toyworld/shapes", split="train", shots=16, seed=1, subsample="base")
    """
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, numbers.Integral) or shots < 1):
        raise ValueError(f"shots must be a whole number ≥ 1 (images per class), or None for every image; got {shots!r}")
    source = get_source(name, root, **source_kwargs)
    if split not in source.splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; it has {', '.join(source.splits)}")
    items = list(source.splits[split])
    few_shot = shots is not None and split in ("train", "val")
    if few_shot:
        train, val = sample_few_shot([source.splits["train"], source.splits.get("val", [])], shots, seed)
        items = train if split == "train" else val
    # base/novel halves come from the train label set, as the official code does (few-shot keeps
    # every label, so the full and the few-shot train lists have the same label set)
    train_labels = [it.label for it in source.splits.get("train", [])] or range(len(source.classnames))
    mapping = split_base_novel(train_labels, subsample)
    classnames = [source.classnames[old] for old in mapping]
    if len(classnames) < 2:
        hint = " (e.g. another class folder or CSV classname)" if subsample == "all" else ", or use subsample='all'"
        raise ValueError(
            f"dataset {name!r} ({subsample} classes) has {len(classnames)} class(es) "
            f"{classnames}; prompt learning classifies among at least 2 classes. Add classes{hint}."
        )
    items = relabel(items, mapping)
    if not items:
        raise ValueError(f"dataset {name!r} split {split!r} ({subsample}) selects no images")
    if check_files:
        check_images_exist((it.path for it in items), f"dataset {name!r} split {split!r}")
    info = {
        "shots": shots if split in ("train", "val") else None,
        "seed": seed,
        "subsample": subsample,
        "shots_used": _shots_used(
            items, classnames, shots if split == "train" else min(shots, 4), f"dataset {name!r} split {split!r}"
        )
        if few_shot
        else None,
    }
    return ImageDataset(source, split, items, classnames, transform, info, skip_bad_images)


def _shots_used(items: list[Item], classnames: list[str], k: int, where: str) -> int:
    """The fewest images any class got (a class with fewer than k images keeps all; warn by name)."""
    counts = Counter(it.label for it in items)
    short = [f"{classnames[label]!r} ({counts[label]})" for label in range(len(classnames)) if counts[label] < k]
    if short:
        log.warning(
            "%s: %d shots per class asked, but %d class(es) have fewer and keep all they have: %s",
            where,
            k,
            len(short),
            ", ".join(short[:10]) + (" …" if len(short) > 10 else ""),
        )
    return min(counts[label] for label in range(len(classnames)))
