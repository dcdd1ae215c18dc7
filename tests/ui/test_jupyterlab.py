"""The course in a real browser: JupyterLab in Debian's Chromium, driven by Playwright (`make ui-test`).

What a headless nbval run cannot see: the lab loads, a freshly opened notebook is not marked modified,
lesson 1 stops at exercise 1.1 with the student's NotImplementedError, the ELBO explorer (lesson 3) and the
latent explorer (lesson 7) and the design explorer (lesson 8) render and redraw when a slider moves, lesson 7's
tqdm bar renders, and the browser console shows no error. The lab serves a scratch copy of the notebooks, so
nothing in the repository is written; lessons 7 and 8 train for 3 epochs (VAE_COURSE_LESSON7_EPOCHS,
VAE_COURSE_LESSON8_EPOCHS).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import chromium, free_port, serving
from tools.build_notebooks import REFERENCE_PYTHON

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "course-ui-test"
# Console messages that are not the course's: the lab asks the (unreachable) internet for news and updates.
IGNORED_CONSOLE = ("news", "update", "favicon", "ERR_INTERNET_DISCONNECTED", "ERR_NAME_NOT_RESOLVED")


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("lab")
    for folder in ("notebooks", "solutions"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    # JupyterLab 4 may leave cells out of the viewport unrendered ("windowing"); a test that looks for a
    # widget after "Run All" has scrolled past it must see every cell, so this lab renders them all.
    settings = root / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"windowingMode": "none"}')
    port = free_port()
    env = {**os.environ, "VAE_COURSE_LESSON7_EPOCHS": "3", "VAE_COURSE_LESSON8_EPOCHS": "3",
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root"]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/api/status?token={TOKEN}", "JupyterLab", 60, env=env):
        tracker = json.load(urllib.request.urlopen(
            f"{url}/lab/api/settings/@jupyterlab/notebook-extension:tracker?token={TOKEN}", timeout=10))
        assert tracker["settings"]["windowingMode"] == "none", "the lab did not take the test's settings"
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium("ui-test") as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.console_errors = []  # type: ignore[attr-defined]
    opened.on("console", lambda message: opened.console_errors.append(message.text)  # type: ignore[attr-defined]
              if message.type == "error" and not any(word in message.text for word in IGNORED_CONSOLE) else None)
    yield opened
    context.close()


def _open(page: Page, lab_url: str, notebook: str) -> None:
    """Open ``notebook`` alone, in a fresh workspace, and wait for its kernel; decline the news prompt."""
    workspace = Path(notebook).stem
    page.goto(f"{lab_url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={TOKEN}")
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=60_000)
    # The status bar says "| Idle" only once the kernel is connected; "Run All" sent before that can be lost.
    expect(page.get_by_role("button", name="Python 3 (ipykernel) | Idle")).to_be_visible(timeout=120_000)
    decline_news = page.get_by_role("button", name="No", exact=True)
    if decline_news.count():
        decline_news.first.click()


def _run_all(page: Page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _move_slider_and_wait_for_new_figure(page: Page) -> None:
    """Press → on the first slider of the notebook's first interactive widget; wait for its figure to change."""
    page.locator(".jp-CodeCell", has_text="widgets.interact(").first.scroll_into_view_if_needed()
    widget = page.locator(".widget-interact").first
    widget.wait_for(timeout=180_000)
    widget.scroll_into_view_if_needed()
    figure = widget.locator("img").first
    expect(figure).to_be_visible(timeout=180_000)
    before = figure.get_attribute("src")
    widget.locator(".widget-slider .noUi-handle").first.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(widget.locator("img").first).not_to_have_attribute("src", before, timeout=60_000)


def test_fresh_notebook_is_not_modified_and_lesson_1_stops_at_exercise_1_1(page: Page, lab_url: str) -> None:
    _open(page, lab_url, "notebooks/01_latent_variable_models.ipynb")
    page.wait_for_timeout(2_000)
    # Only the kernel's Python version may differ from the generated metadata (tools/build_notebooks.py).
    expected_dirty = platform.python_version() != REFERENCE_PYTHON
    assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == int(expected_dirty), \
        f"a freshly opened notebook shows as {'unmodified' if expected_dirty else 'modified'}"
    _run_all(page)
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                         has_text="ExerciseNotDone").first
    expect(error).to_contain_text("Exercise 1.1", timeout=120_000)
    expect(error).to_contain_text("not done yet")
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_elbo_explorer_redraws_when_a_slider_moves(page: Page, lab_url: str) -> None:
    _open(page, lab_url, "solutions/03_variational_inference_elbo.ipynb")
    _run_all(page)
    _move_slider_and_wait_for_new_figure(page)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_lesson_7_progress_bar_and_latent_explorer(page: Page, lab_url: str) -> None:
    _open(page, lab_url, "solutions/07_convolutional_vae_topology.ipynb")
    _run_all(page)
    expect(page.locator(".widget-hprogress, .progress").first).to_be_attached(timeout=180_000)
    expect(page.get_by_text("trained 3 epochs")).to_be_visible(timeout=180_000)
    _move_slider_and_wait_for_new_figure(page)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_lesson_8_design_explorer_redraws_when_a_slider_moves(page: Page, lab_url: str) -> None:
    _open(page, lab_url, "solutions/08_conditional_vae_design.ipynb")
    _run_all(page)
    expect(page.get_by_text("standard: 3 epochs")).to_be_visible(timeout=180_000)
    _move_slider_and_wait_for_new_figure(page)
    assert page.console_errors == []  # type: ignore[attr-defined]
