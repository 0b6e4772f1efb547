"""Check a user's data folder against the manifests: what is missing or wrong, and where to get it.

report = verify("~/data", dataset="dtd")
print(format_report(report))        # never a stack trace; report.ok is False on any error
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .images import BadImageError, MissingImageError, load_rgb, missing_images, not_regular_files
from .manifest import Manifest, list_manifests, load_manifest
from .readers import build_source, dataset_dir


@dataclass
class DatasetCheck:
    """The result of checking one dataset folder."""

    name: str
    folder: str  # the folder that was checked (or expected)
    found: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # split → number of images
    num_classes: int | None = None
    sources: str = ""  # where to get the data

    @property
    def ok(self) -> bool:
        return self.found and not self.errors


@dataclass
class VerifyReport:
    """All checks of one `verify` call; `ok` when every checked dataset is complete."""

    root: str
    checks: list[DatasetCheck]
    requested: str | None = None

    @property
    def ok(self) -> bool:
        present = [c for c in self.checks if c.found or self.requested]
        return bool(present) and all(c.ok for c in present)


def _check_layout(m: Manifest, ddir: Path, check: DatasetCheck) -> None:
    for entry in m.layout:
        path = ddir / entry.path
        exists = path.is_dir() if entry.kind == "dir" else path.is_file()
        what = f"{entry.kind} {entry.path}{'/' if entry.kind == 'dir' else ''}"
        note = f" ({entry.note})" if entry.note else ""
        if exists:
            continue
        if entry.required:
            check.errors.append(f"missing {what}{note}")
        elif entry.path == m.split_file:
            check.warnings.append(
                f"no split file {m.split_file}: the split will be generated "
                f"({m.split_generation_notes}); published numbers use the CoOp split file"
            )


def _check_dataset(m: Manifest, ddir: Path, decode: int) -> DatasetCheck:
    check = DatasetCheck(m.name, str(ddir), found=True, sources=m.where_to_get())
    _check_layout(m, ddir, check)
    if check.errors:
        return check
    try:
        source = build_source(m.name, ddir)
    except (ValueError, OSError, KeyError, IndexError) as err:
        check.errors.append(f"cannot read the dataset: {err}")
        return check
    except Exception as err:  # verify must never end in a stack trace
        check.errors.append(f"cannot read the dataset ({type(err).__name__}): {err}")
        return check
    check.num_classes = len(source.classnames)
    if check.num_classes != m.num_classes:
        check.warnings.append(f"{check.num_classes} classes found, the full dataset has {m.num_classes}")
    for split, items in source.splits.items():
        check.counts[split] = len(items)
        expected = m.split_sizes.get(split)
        if expected is not None and len(items) != expected:
            check.warnings.append(f"split {split!r} has {len(items)} images, the official one {expected}")
        missing = missing_images(it.path for it in items)
        if missing:
            check.errors.append(
                f"{len(missing)} of {len(items)} images listed in split {split!r} are missing:" + _first_five(missing)
            )
            if source.meta.get("generated_split") and not any("delete that file" in w for w in check.warnings):
                check.warnings.append(
                    f"the split was generated earlier from this folder and cached in "
                    f"{source.meta['split_file']}; delete that file to generate it again"
                )
        odd = not_regular_files(it.path for it in items)
        if odd:
            check.errors.append(
                f"{len(odd)} path(s) listed in split {split!r} are not regular files:" + _first_five(odd)
            )
    everything = [it for items in source.splits.values() for it in items if it.path and os.path.isfile(it.path)]
    step = max(1, len(everything) // max(decode, 1))
    for item in everything[::step][:decode]:
        try:
            load_rgb(item.path)
        except (BadImageError, MissingImageError) as err:
            check.errors.append(str(err))
    return check


def verify(root: str | Path, dataset: str | None = None, decode: int = 8) -> VerifyReport:
    """Check the data folder `root` (holding `dtd/`, `imagenet/`, …) against the manifests.

    Args:
        root: the data root, or a dataset's own folder when `dataset` is given.
        dataset: check only this dataset; None = every manifest dataset found under `root`.
        decode: how many images per dataset to decode as a spot check (spread over all splits).
    Returns:
        A `VerifyReport`; `format_report(report)` turns it into text.

    Example:
        >>> verify("~/data", "dtd").ok
    """
    root = Path(root).expanduser()
    if dataset is not None and dataset not in list_manifests():
        check = DatasetCheck(
            dataset, str(root), errors=[f"unknown dataset {dataset!r}; known: {', '.join(list_manifests())}"]
        )
        return VerifyReport(str(root), [check], dataset)
    checks = []
    for name in [dataset] if dataset else list_manifests():
        m = load_manifest(name)
        if dataset:
            try:
                ddir = dataset_dir(m, root)
            except ValueError:
                checks.append(
                    DatasetCheck(
                        name,
                        str(root / m.folder),
                        errors=[f"folder {root / m.folder} not found"],
                        sources=m.where_to_get(),
                    )
                )
                continue
        else:
            ddir = root / m.folder
            if not ddir.is_dir():
                checks.append(DatasetCheck(name, str(ddir), sources=m.where_to_get()))
                continue
        checks.append(_check_dataset(m, ddir, decode))
    return VerifyReport(str(root), checks, dataset)


def format_report(report: VerifyReport) -> str:
    """Plain-text report: one block per dataset, errors (✗), warnings (!) and where to get the data."""
    lines = [f"data verify: {report.root}"]
    if not Path(report.root).is_dir():
        return "\n".join(lines + [f"  ✗ {report.root} is not a folder", "result: problems found"])
    absent = []
    for c in report.checks:
        if not c.found and not report.requested:
            absent.append(c)
            continue
        status = "OK" if c.ok else "PROBLEMS"
        sizes = ", ".join(f"{s} {n}" for s, n in c.counts.items())
        detail = f" — {c.num_classes} classes; {sizes}" if c.num_classes is not None else ""
        lines.append(f"{c.name} ({c.folder}): {status}{detail}")
        lines += [f"  ✗ {e}" for e in c.errors] + [f"  ! {w}" for w in c.warnings]
        if c.errors and c.sources:
            lines += ["  get it from:", *[f"  {s}" for s in c.sources.splitlines()]]
    if absent:
        lines.append("not found under this root: " + ", ".join(f"{c.name} ({Path(c.folder).name}/)" for c in absent))
    if not any(c.found for c in report.checks) and not report.requested:
        lines.append("  ✗ no dataset folder found; `mmprompt-lab data list` shows the expected folder names")
    lines.append("result: OK" if report.ok else "result: problems found")
    return "\n".join(lines)


def _first_five(paths: list[str]) -> str:
    """The first five paths, one per indented line, and how many more there are."""
    more = f"\n      … and {len(paths) - 5} more" if len(paths) > 5 else ""
    return "".join(f"\n      {p}" for p in paths[:5]) + more
