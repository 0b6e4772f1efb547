"""The lessons exist. Running them is `tests/test_notebook_figures.py`: one `pytest --nbval-lax` subprocess per
notebook at CI size (`MMPROMPT_CI=1`, a fresh kernel each, the failing cell named) that runs it top to bottom
and, through a small plugin, checks that every figure it shows has data — each notebook is executed once per
test session. Set MMPROMPT_SKIP_NOTEBOOKS=1 to skip the runs.
"""

from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]
