"""What the package offers, as aligned text tables (`mmprompt-lab list`) — never truncated.

    print(list_tables())          # methods, datasets and models
    print(methods_table())        # method, paper, trainable parameters at ViT-B/16 and on ToyCLIP
    print(datasets_table())       # dataset, classes, source
    print(models_table("ViT-B-16*"))   # model, pretrained tag, cached on this machine

Trainable-parameter counts at ViT-B/16 need a 150 M-parameter model, so they are precomputed into
`learners/parameter_counts.json` by `write_parameter_counts()` (a test checks the file against live
counts); ToyCLIP counts are computed live.
"""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path
from collections.abc import Sequence

COUNTS_PATH = Path(__file__).parent / "learners" / "parameter_counts.json"
COUNTS_BACKBONE = "ViT-B-16-quickgelu"  # random weights: counts depend on the shapes only
COUNT_CLASSNAMES = ("cat", "dog", "sea lion")


# ---------------------------------------------------------------------------- tables
def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, a rule under the header; cells are never cut.

    Example:
        >>> print(format_table(["a", "bb"], [[1, "x"], [22, "yyy"]]))
        a   bb
        --  ---
        1   x
        22  yyy
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- methods
def parameter_counts(clip, classnames: Sequence[str] = COUNT_CLASSNAMES) -> dict[str, int]:
    """{method: trainable parameters} of every registered learner with its default config on `clip`."""
    from .learners import create_learner, list_learners

    return {name: create_learner(name, clip, list(classnames), seed=0).num_trainable() for name in list_learners()}


def write_parameter_counts(path: str | Path = COUNTS_PATH, clip=None) -> Path:
    """Compute the ViT-B/16 counts (random-weight ViT-B-16-quickgelu, ~3 s) and write them to `path`.

    Run after adding a learner or changing a default: `python -c "from mmprompt_lab.catalog import
    write_parameter_counts; write_parameter_counts()"`.
    """
    from .backbone import load_clip
    from .io import write_json

    clip = clip or load_clip(COUNTS_BACKBONE, pretrained=None, device="cpu")
    return write_json(
        path,
        {
            "backbone": f"{clip.id} (random weights)",
            "classnames": list(COUNT_CLASSNAMES),
            "written_by": "mmprompt_lab.catalog.write_parameter_counts",
            "counts": parameter_counts(clip),
        },
    )


def read_parameter_counts(path: str | Path = COUNTS_PATH) -> dict[str, int]:
    """The precomputed ViT-B/16 counts ({} if the file is missing)."""
    from .io import read_json

    return dict(read_json(path, "parameter counts")["counts"]) if Path(path).is_file() else {}


def method_paper(name: str) -> str:
    """The paper line of a learner's method card: the first sentence of its module docstring."""
    from .learners import get_learner_class

    doc = sys.modules[get_learner_class(name).__module__].__doc__ or ""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    depth = 0
    for i, ch in enumerate(text):  # up to the first closing parenthesis at top level: name (authors, venue)
        depth += (ch == "(") - (ch == ")")
        if (ch == ")" and depth == 0) or (ch == "." and depth == 0 and text[i + 1 : i + 2] in ("", " ")):
            text = text[: i + (ch == ")")]
            break
    text = re.sub(r"[;,] (official|released) code[^)]*", "", text)  # code pointers live in the docstring
    return text.split(" — ", 1)[-1]


def methods_table(toyclip=None) -> str:
    """method | paper | trainable parameters at ViT-B/16 (precomputed) | on ToyCLIP (live)."""
    from .backbone import load_clip
    from .learners import list_learners

    toyclip = toyclip or load_clip("toyclip", device="cpu")
    vit, toy = read_parameter_counts(), parameter_counts(toyclip)
    rows = [
        [name, method_paper(name), f"{vit[name]:,}" if name in vit else "? (write_parameter_counts)", f"{toy[name]:,}"]
        for name in list_learners()
    ]
    return format_table(["method", "paper", "trainable @ ViT-B/16", "trainable @ ToyCLIP"], rows)


# ---------------------------------------------------------------------------- datasets
def datasets_table() -> str:
    """dataset | classes | source (the ToyWorld generator, a real dataset's manifest, or your files)."""
    from .data import get_source, list_datasets
    from .data.manifest import list_manifests, load_manifest

    manifests = set(list_manifests())
    rows = []
    for name in list_datasets():
        if name in manifests:
            m = load_manifest(name)
            rows.append([name, m.num_classes, f"real data under root: {m.title} (manifest {Path(m.path).name})"])
        elif name.startswith("toyworld/"):
            source = get_source(name)
            where = f"ToyWorld generator, built in: {source.meta.get('description', '')}"
            rows.append([name, len(source.classnames), where])
        else:
            rows.append([name, "yours", "your own images: load_dataset(name, root=...)"])
    return format_table(["dataset", "classes", "source"], rows)


# ---------------------------------------------------------------------------- models
def models_table(pattern: str | None = None) -> str:
    """model | pretrained | cached: every supported backbone with each pretrained tag and whether its
    weights are on this machine (open_clip models without tags: random weights only)."""
    from .models import list_models

    tags: dict[str, list] = {}
    for t in list_models(pattern, pretrained=True):
        tags.setdefault(t.name, []).append(t)
    rows = []
    for name in list_models(pattern):
        for t in tags.get(name, []):
            shown = t.tag if t.tag is not None else "(default: shipped weights)"
            rows.append([name, shown, "yes" if t.cached else "no"])
        if name not in tags:
            rows.append([name, "- (random weights only)", "-"])
    return format_table(["model", "pretrained", "cached"], rows)


# ---------------------------------------------------------------------------- all of it
def list_tables(toyclip=None) -> str:
    """The methods, datasets and models tables, each under a heading (`mmprompt-lab list`)."""
    from .models import hf_cache_dir

    return "\n\n".join(
        [
            "Methods\n\n" + methods_table(toyclip),
            "Datasets\n\n" + datasets_table(),
            "Models (prompt-tunable; `cached` = weights in the local cache, "
            + str(hf_cache_dir())
            + "; others need load_clip(..., download=True) once)\n\n"
            + models_table(),
        ]
    )


def version_text() -> str:
    """One line for `--version`: the package, torch, open_clip and Python versions."""
    import open_clip
    import torch

    from . import __version__

    return (
        f"mmprompt_lab {__version__} (torch {torch.__version__}, open_clip {open_clip.__version__}, "
        f"Python {platform.python_version()})"
    )
