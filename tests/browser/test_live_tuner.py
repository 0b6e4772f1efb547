"""Real browser check of the live tuner: JupyterLab on 127.0.0.1 (random free port, token), notebook
01 opened in headless Debian Chromium through Playwright, all cells run, the widget and the plotly
figures must render, and pressing Start must add a run whose loss curve has data. A screenshot is
saved to artifacts/live_tuner.png (git-ignored).

Needs /usr/bin/chromium (Debian: `apt-get install -y chromium`) and the `playwright` Python package
(its bundled driver only; Playwright's own browser download is not used). Skipped otherwise.
Run alone: `python tests/browser/test_live_tuner.py`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_coop_live.ipynb"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("MMPROMPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

# JavaScript: the plotly graph divs inside the tuner's output (live figure first, comparison second)
PLOTS_JS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))
                    .map(gd => (gd.data || []).map(t => (t.x || []).length))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(workdir: Path, port: int, token: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "MMPROMPT_CI": "1",
        "HF_HUB_OFFLINE": "1",
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={workdir / 'nb'}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=",
        "--ServerApp.allow_root=True",
    ]
    log = open(workdir / "jupyterlab.log", "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def wait_http(url: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except Exception:
            time.sleep(1)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


def run_check(screenshot: Path, timeout_ms: int = 420_000) -> dict:
    """Open notebook 01 in JupyterLab + Chromium, run it, press Start; returns what was seen."""
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="mmprompt-browser-"))
    (work / "nb").mkdir()
    shutil.copy(NOTEBOOK, work / "nb" / NOTEBOOK.name)  # JupyterLab may autosave: never touch the repo copy
    port, token = free_port(), "mmprompt-" + os.urandom(8).hex()
    lab = start_lab(work, port, token)
    seen: dict = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/api?token={token}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(timeout_ms)
            try:
                _drive(page, port, token, screenshot, seen)
            except Exception:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot.with_name(screenshot.stem + "_failure.png")))
                seen["outputs"] = page.locator(".jp-OutputArea-output").all_inner_texts()
                raise
            finally:
                browser.close()
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
        seen["log"] = (work / "jupyterlab.log").read_text()[-3000:]
        shutil.rmtree(work, ignore_errors=True)
    return seen


def _drive(page, port: int, token: str, screenshot: Path, seen: dict) -> None:
    """Run the notebook in the open page, press Start, take the screenshots; fills `seen`."""
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
    try:  # a fresh JupyterLab may ask which kernel to start: take the preselected Python 3
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=20_000)
    except Exception:  # no dialog: the kernel started by itself
        pass
    page.get_by_role("menuitem", name="Run").click()
    page.locator("li[data-command='runmenu:run-all']").click()
    # the tuner renders: its Start button and two plotly figures inside the output area
    start = page.locator(".jp-OutputArea-output .widget-button", has_text="Start").first
    start.wait_for(state="visible")
    page.wait_for_function(f"() => ({PLOTS_JS})().length >= 2")
    # the notebook's own `tuner.start(wait=True)` cell finishes: the comparison has one bar
    page.wait_for_function(f"() => {{ const p = ({PLOTS_JS})(); return p.length >= 2 && p[1][0] >= 1; }}")
    seen["before"] = page.evaluate(PLOTS_JS)
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('.jp-InputPrompt')).some(e => e.textContent.includes('*'))"
    )
    try:  # JupyterLab's "news?" toast covers part of the figure
        page.get_by_role("button", name="No", exact=True).first.click(timeout=5_000)
    except Exception:
        pass
    # choose another method in the dropdown and press Start in the browser: a second run streams into
    # the live figure and joins the comparison
    page.locator(".jp-OutputArea-output .widget-dropdown select").first.select_option("vpt")
    start.scroll_into_view_if_needed()
    start.click()
    page.wait_for_function(f"() => {{ const p = ({PLOTS_JS})(); return p[1][0] >= 2 && p[0][0] > 0; }}")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea-output .widget-html'))"
        ".some(e => e.textContent.includes('done'))"
    )
    seen["after"] = page.evaluate(PLOTS_JS)
    seen["status"] = [e.inner_text() for e in page.locator(".jp-OutputArea-output .widget-html").all()]
    seen["bars"] = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot'))[1].data[0].x"
    )
    widget = page.locator(".jp-OutputArea-output:has(.widget-button)").first
    widget.scroll_into_view_if_needed()
    time.sleep(1.0)  # let plotly finish its transition before the picture
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=str(screenshot))
    page.screenshot(path=str(screenshot.with_name(screenshot.stem + "_page.png")))


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return (
            f"{CHROMIUM} is missing: install Debian's Chromium (`apt-get update && apt-get install -y "
            "chromium`) to run the real browser check of the live tuner"
        )
    for module in ("playwright", "jupyterlab", "anywidget"):
        try:
            __import__(module)
        except ImportError:
            return f"the browser check needs the Python package {module!r} (pip install -e '.[dev]')"
    return None


@pytest.mark.slow
def test_live_tuner_in_chromium():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    shot = ARTIFACTS / "live_tuner.png"
    seen = run_check(shot)
    live, comparison = seen["after"][0], seen["after"][1]
    assert live[0] > 0 and live[1] > 0, seen  # loss and accuracy traces have points
    assert comparison[0] == 2, seen  # the notebook's run + the one started by clicking Start
    assert any("done" in s for s in seen["status"]), seen["status"]
    assert any("2: vpt" in label for label in seen["bars"]), seen["bars"]
    assert shot.exists() and shot.stat().st_size > 10_000


if __name__ == "__main__":
    problem = _missing()
    if problem:
        sys.exit(problem)
    result = run_check(ARTIFACTS / "live_tuner.png")
    print({k: v for k, v in result.items() if k != "log"})
    print("screenshot:", ARTIFACTS / "live_tuner.png")
