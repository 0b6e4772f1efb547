"""Executed HTML of the lessons, for reading without a kernel (e.g. on GitHub Pages or a course page).

    mmprompt-lab notebooks render                      # notebooks/*.ipynb → notebooks/html/*.html
    mmprompt-lab notebooks render notebooks/01_coop_live.ipynb --ci --out /tmp/html

Each notebook is run top to bottom in a fresh kernel (as `jupyter nbconvert --execute` would), then
written as one self-contained HTML file; `ci=True` runs at CI size (`MMPROMPT_CI=1`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import atomic_write


def render_notebooks(
    notebooks: list[str | Path], out: str | Path, *, ci: bool = False, timeout: int = 900
) -> list[Path]:
    """Execute each notebook and write `<out>/<name>.html`; returns the written files.

    Raises ValueError naming the notebook and its failing cell when a cell fails.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    paths = [Path(p) for p in notebooks]
    missing = [str(p) for p in paths if not p.is_file() or p.suffix != ".ipynb"]
    if missing or not paths:
        raise FileNotFoundError(f"no notebook to render: {', '.join(missing) or 'none given'} (expected .ipynb files)")
    written = []
    previous = os.environ.get("MMPROMPT_CI")
    os.environ["MMPROMPT_CI"] = "1" if ci else "0"  # the kernel inherits the environment
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            try:
                ExecutePreprocessor(timeout=timeout).preprocess(nb, {"metadata": {"path": str(path.parent)}})
            except CellExecutionError as err:
                first = str(err).strip().splitlines()[-1] if str(err).strip() else "a cell failed"
                raise ValueError(f"{path.name}: a cell failed while rendering ({first})") from None
            html, _ = HTMLExporter().from_notebook_node(nb)
            target = Path(out) / f"{path.stem}.html"
            atomic_write(target, lambda tmp, text=html: Path(tmp).write_text(text, encoding="utf-8"))
            written.append(target)
    finally:
        if previous is None:
            os.environ.pop("MMPROMPT_CI", None)
        else:
            os.environ["MMPROMPT_CI"] = previous
    return written
