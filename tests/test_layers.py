"""Imports point one way (docs/design.md §6): a module may import only areas of its own layer or
below, so the package has no import cycle between its areas — lazy imports inside functions included."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmprompt_lab"
LAYERS = [  # low → high
    {"io", "config", "seeding", "stats"},
    {"models", "threads"},
    {"backbone", "transforms", "text_prefix", "data", "toyworld"},
    {"learners", "toyclip"},
    {"engine"},
    {"experiment", "runs"},
    {"settings"},
    {"analysis", "widgets", "protocols", "render", "catalog"},
    {"cli"},
]
RANK = {area: n for n, layer in enumerate(LAYERS) for area in layer}
APART = {("analysis", "widgets"), ("widgets", "analysis")}  # same layer, still independent


def area_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported mmprompt_lab module, line) for every import in the file, nested ones included."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found += [(t, node.lineno) for t in names if t.startswith("mmprompt_lab")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("mmprompt_lab")]
    return found


def test_every_area_has_a_layer():
    areas = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert not areas - set(RANK), f"put these areas into LAYERS: {sorted(areas - set(RANK))}"


def test_imports_point_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = area_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if here == "__init__":
            continue  # the package root re-exports the public API
        for target, line in imports(path):
            there = area_of(target)
            if there in ("__init__", "__version__", here):
                continue
            if there not in RANK or RANK[there] > RANK[here] or (here, there) in APART:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)
