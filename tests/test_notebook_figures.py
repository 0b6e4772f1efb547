"""Every lesson runs top to bottom at CI size (`MMPROMPT_CI=1`) and every figure it shows carries data.

One execution per notebook does both jobs: `pytest --nbval-lax` runs it top to bottom in a fresh kernel
(outputs are not compared: the notebooks are stored without outputs), with this module loaded as a pytest
plugin that checks what each cell displayed:
- every plotly figure has at least one trace, and no trace has an empty `x`, `y`, `z`, `values` or table cells
  (an empty figure is how a key mismatch hides: notebook 04's gain-vs-variance plot was once blank);
- no progress bar reached an output (tqdm widgets reopen as "Error displaying widget").
The tuner's live FigureWidgets stream through widget messages, which a saved notebook does not keep; their
data is checked in tests/widgets/test_tuner.py.
Set MMPROMPT_SKIP_NOTEBOOKS=1 to skip them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
DATA_KEYS = ("x", "y", "z", "values")

pytestmark = pytest.mark.skipif(
    os.environ.get("MMPROMPT_SKIP_NOTEBOOKS", "") not in ("", "0"), reason="MMPROMPT_SKIP_NOTEBOOKS is set"
)


def is_empty(value) -> bool:
    """An empty data array: [], "", None, or a typed array (plotly ≥ 6: {"dtype", "bdata"}) without bytes."""
    if value is None:
        return True
    if isinstance(value, dict):
        return not value.get("bdata") and not value.get("_inputArray")
    return hasattr(value, "__len__") and len(value) == 0


def trace_problems(trace: dict) -> list[str]:
    """Why a plotly trace shows nothing (an empty list when it is fine)."""
    kind = trace.get("type", "scatter")
    if kind == "table":
        cells = (trace.get("cells") or {}).get("values")
        return ["table without cells"] if is_empty(cells) or all(is_empty(c) for c in cells) else []
    present = [k for k in DATA_KEYS if k in trace]
    if not present:
        return [f"{kind} trace {trace.get('name')!r} has no {'/'.join(DATA_KEYS)}"]
    return [f"{kind} trace {trace.get('name')!r} has an empty {k}" for k in present if is_empty(trace[k])]


def figure_problems(fig: dict) -> list[str]:
    data = fig.get("data") or []
    title = (fig.get("layout", {}).get("title") or {}).get("text") if isinstance(fig.get("layout"), dict) else None
    if not data:
        return [f"figure {title!r} has no traces"]
    return [f"figure {title!r}: {p}" for trace in data for p in trace_problems(trace)]


def output_problems(cell_index: int, output: dict) -> list[str]:
    where = f"cell {cell_index}"
    problems = []
    data = output.get("data", {})
    if PLOTLY in data:
        problems += [f"{where}: {p}" for p in figure_problems(data[PLOTLY])]
    text = "".join(output.get("text", "")) + "".join(data.get("text/plain", ""))
    if "it/s]" in text or "FloatProgress" in text or "s/it]" in text:
        problems.append(f"{where}: a progress bar reached the notebook: {text[:120]!r}")
    return problems


# ----------------------------------------------------------------------------- nbval plugin
# Loaded into the `pytest --nbval-lax` subprocess below with `-p test_notebook_figures`: nbval runs
# each cell and keeps what it displayed in `item.test_outputs`; a cell whose outputs hold an empty
# figure or a progress bar fails there, naming the cell.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)
    if call.when != "call" or not report.passed or not outputs:
        return
    problems = [p for output in outputs for p in output_problems(getattr(item, "cell_num", "?"), output)]
    if problems:
        report.outcome = "failed"
        report.longrepr = "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_nbval_and_its_figures_have_data(notebook, tmp_path):
    pytest.importorskip("nbval", reason="notebook tests need nbval (pip install -e '.[dev]')")
    here = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "MMPROMPT_CI": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        str(notebook),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "test_notebook_figures",
        "--nbval-cell-timeout=600",
        "-o",
        "addopts=",
        "--rootdir",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{notebook.name} failed under nbval:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def test_checks_catch_empty_figures():
    """The checks themselves: an empty trace, a figure without traces, progress bars."""
    assert figure_problems({"data": [], "layout": {"title": {"text": "gain"}}}) == ["figure 'gain' has no traces"]
    assert figure_problems({"data": [{"type": "scatter", "name": "coop", "x": [], "y": []}]})
    assert not figure_problems({"data": [{"type": "bar", "x": ["a"], "y": {"dtype": "f8", "bdata": "AAAA"}}]})
    assert figure_problems({"data": [{"type": "table", "cells": {"values": []}}]})
    assert output_problems(3, {"output_type": "stream", "text": "coop epoch 1/5: 100%|███| 3/3 [00:01<00:00, 2.1it/s]"})


def test_every_lesson_is_covered():
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:  # stored without outputs (README: outputs are never committed)
        cells = json.loads(path.read_text())["cells"]
        assert not [c for c in cells if c.get("outputs")], f"{path.name} is stored with outputs"
