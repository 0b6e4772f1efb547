"""The lessons exist. Running them is `tests/test_notebook_figures.py`: one execution per notebook at CI size
(`MMPROMPT_CI=1`, a fresh kernel each, the failing cell named) that both runs it top to bottom — what a
`pytest --nbval-lax` subprocess per notebook did here before — and checks that every figure it shows has data,
so each notebook is executed once per test session. Set MMPROMPT_SKIP_NOTEBOOKS=1 to skip the runs.
"""
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]
