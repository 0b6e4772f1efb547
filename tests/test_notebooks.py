"""Every notebook runs top to bottom under nbval (lax: outputs are not compared — the notebooks are
stored without outputs, and plotly outputs carry random ids), at CI size (`MMPROMPT_CI=1`).

Each notebook runs in its own `pytest --nbval-lax` subprocess so its kernel, imports and UMAP JIT
are isolated and a failing cell names the notebook. Set MMPROMPT_SKIP_NOTEBOOKS=1 to skip them.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.skipif(os.environ.get("MMPROMPT_SKIP_NOTEBOOKS", "") not in ("", "0"),
                                reason="MMPROMPT_SKIP_NOTEBOOKS is set")


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook, tmp_path):
    pytest.importorskip("nbval", reason="notebook tests need nbval (pip install -e '.[dev]')")
    env = {**os.environ, "MMPROMPT_CI": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-q", "-p", "no:cacheprovider",
           "--nbval-cell-timeout=600", "-o", "addopts=", "--rootdir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{notebook.name} failed under nbval:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
