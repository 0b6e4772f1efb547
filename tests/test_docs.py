"""The documentation is part of the product: every markdown document cited anywhere in the package,
tests, notebooks, README, docs or benchmarks exists in this repository; relative links between the
docs resolve (anchors included); and the worked example of docs/adding-a-method.md runs."""

from __future__ import annotations

import json
import re
import sys
import types
import uuid
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CITATION = re.compile(r"\b[\w./-]+\.md\b")
URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+")
SKIP_DIRS = {".git", "runs", "artifacts", "node_modules", "__pycache__", ".ipynb_checkpoints"}
# Written by `mmprompt_lab.protocols.write_report` into a run's report folder, not a document of
# this repository; checked below to still be what the aggregator writes.
GENERATED = {"results.md": ROOT / "mmprompt_lab" / "protocols" / "aggregate.py"}
EXAMPLE_NAME = "shallow_vl"  # the learner name used in docs/adding-a-method.md


def _repo_files(pattern: str) -> list[Path]:
    return sorted(
        p
        for p in ROOT.glob(pattern)
        if p.is_file()
        and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)
    )


def _scanned_files() -> list[Path]:
    files = (
        _repo_files("mmprompt_lab/**/*.py")
        + _repo_files("mmprompt_lab/**/*.json")
        + _repo_files("tests/**/*.py")
        + _repo_files("notebooks/*.ipynb")
        + [ROOT / "README.md"]
        + _repo_files("docs/*.md")
        + _repo_files("bench/**/*")
    )
    return [f for f in files if f.exists()]


def _text_lines(path: Path) -> list[str]:
    """A file's lines; a notebook's are its cells' source lines (not its JSON escapes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    if path.suffix == ".ipynb":
        cells = json.loads(text).get("cells", [])
        return [line for c in cells for line in "".join(c.get("source", [])).splitlines()]
    return text.splitlines()


def _markdown_names() -> dict[str, list[Path]]:
    names: dict[str, list[Path]] = {}
    for path in _repo_files("**/*.md"):
        names.setdefault(path.name, []).append(path)
    return names


def _resolves(ref: str, citing: Path, names: dict[str, list[Path]]) -> bool:
    ref = ref.removeprefix("./")
    if "/" not in ref:  # a bare name: any document of that exact name in the repository
        return ref in names
    return any(
        (base / ref).resolve().is_file() and ROOT in (base / ref).resolve().parents for base in (ROOT, citing.parent)
    )


def test_every_cited_document_exists():
    names = _markdown_names()
    missing = []
    for path in _scanned_files():
        for n, line in enumerate(_text_lines(path), 1):
            for ref in CITATION.findall(URL.sub(" ", line)):
                if Path(ref).name in GENERATED or _resolves(ref, path, names):
                    continue
                missing.append(f"{path.relative_to(ROOT)}:{n}: {ref}")
    assert not missing, (
        "documents cited but not in the repository (cite the matching docs/ page, "
        "e.g. docs/methods.md §6):\n" + "\n".join(missing)
    )


def test_generated_names_are_really_generated():
    for name, writer in GENERATED.items():
        assert name in writer.read_text(encoding="utf-8"), f"{writer} no longer writes {name}"


# ----------------------------------------------------------------------------- links inside docs/
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _anchors(path: Path) -> set[str]:
    """GitHub-style heading anchors of a markdown file (headings inside code fences do not count)."""
    anchors, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _doc_links() -> list[tuple[Path, str]]:
    links = []
    for path in _repo_files("docs/*.md"):
        fenced = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if FENCE.match(line):
                fenced = not fenced
            elif not fenced:
                links += [(path, target) for target in LINK.findall(line)]
    return links


def test_docs_exist():
    for name in (
        "README.md",
        "methods.md",
        "protocols.md",
        "toyclip.md",
        "design.md",
        "adding-a-method.md",
        "robustness.md",
    ):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_relative_links_in_docs_resolve():
    broken = []
    for path, target in _doc_links():
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: …
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{path.relative_to(ROOT)}: {target} (no heading with anchor #{anchor})")
    assert not broken, "broken links in docs/:\n" + "\n".join(broken)


# ----------------------------------------------------------------------------- the worked example
def _example_block(label: str) -> str:
    """The ```python block right after `<!-- worked-example: <label> -->` in docs/adding-a-method.md."""
    text = (DOCS / "adding-a-method.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- worked-example: " + re.escape(label) + r" -->\s*```python\n(.*?)\n```", text, re.S)
    assert m, f"docs/adding-a-method.md has no python block marked 'worked-example: {label}'"
    return m.group(1)


@pytest.fixture
def example(monkeypatch):
    """Execute the documented learner file as a module of the learners package, registered under a
    unique name in a scratch copy of the registry (dropped after the test: no public unregister)."""
    from mmprompt_lab.learners import list_learners, registry

    assert EXAMPLE_NAME not in list_learners(), (
        f"a real learner is now called {EXAMPLE_NAME!r}; give the "
        "worked example in docs/adding-a-method.md another name"
    )
    monkeypatch.setattr(registry, "_LEARNERS", dict(registry._LEARNERS))
    name = f"docs_example_{uuid.uuid4().hex[:8]}"
    code = _example_block("learner")
    assert f'"{EXAMPLE_NAME}"' in code
    module = types.ModuleType(f"mmprompt_lab.learners.{name}")
    module.__package__ = "mmprompt_lab.learners"
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses resolve annotations there
    exec(compile(code.replace(f'"{EXAMPLE_NAME}"', f'"{name}"'), "docs/adding-a-method.md", "exec"), module.__dict__)
    assert name in list_learners()
    return name


@pytest.fixture(scope="module")
def toyclip():
    import mmprompt_lab as mpl

    return mpl.load_clip("toyclip", device="cpu")


def test_worked_example_gives_logits_and_trains_only_its_own_parameters(example, toyclip):
    from mmprompt_lab.learners import create_learner

    classnames = ["circle", "star", "heart"]
    learner = create_learner(example, toyclip, classnames, seed=0)
    assert learner.num_trainable() == 4 * toyclip.text_width + 4 * toyclip.vision_width  # 5,120 on ViT-B/16
    images = torch.randn(2, 3, toyclip.image_size, toyclip.image_size, generator=torch.Generator().manual_seed(0))
    learner.eval()
    with torch.no_grad():
        logits = learner(images)
    assert logits.shape == (2, len(classnames)) and torch.isfinite(logits).all()

    own = {n for n, p in learner.named_parameters() if p.requires_grad}
    assert own == {"ctx", "vision_ctx"}
    before = {k: v.clone() for k, v in learner.state_dict().items()}  # learner and frozen CLIP
    learner.train()
    optimizer = torch.optim.SGD(learner.trainable_parameters(), lr=0.1)
    loss, _ = learner(images, labels=torch.tensor([0, 2]))
    loss.backward()
    optimizer.step()
    after = learner.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == own, f"a step changed {sorted(changed)}, expected only {sorted(own)}"


def test_worked_example_parity_test_passes(example):
    code = _example_block("parity-test").replace(f'"{EXAMPLE_NAME}"', f'"{example}"')
    namespace: dict = {"__name__": "docs_parity_example"}
    exec(compile(code, "docs/adding-a-method.md", "exec"), namespace)
    tests = [f for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    assert len(tests) == 1
    tests[0]()
