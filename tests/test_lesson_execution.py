"""Every lesson's solution notebook executed top to bottom, as the site executes it.

The execution goes through :func:`tools.build_site.execute_cached` with ``refresh``: every run of the tests executes
every lesson (nothing is taken from the cache), and the executed notebook is stored in the site's cache, so the
``make site`` that follows in CI builds its pages from these very executions instead of running each lesson again.
A failing cell fails the test with the cell's traceback. The time of each lesson is printed at the end of the run
(``conftest.py``).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import build_site
from tools.build_notebooks import build_lesson, lesson_number, lesson_sources
from utils.settings import COURSE_ENVIRONMENT_PREFIX, QUICK_LESSONS


def test_the_solution_notebook_runs_top_to_bottom(lesson_source: Path) -> None:
    solution = build_lesson(lesson_source).solution
    key = build_site.cache_key(solution, build_site.inputs_digest())
    executed = build_site.execute_cached(solution, key, refresh=True)
    code_cells = [cell for cell in executed.notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.get("execution_count") for cell in code_cells), "a code cell did not run"
    assert (build_site.CACHE_DIR / f"{key}.ipynb").exists(), "the site's cache holds this execution"


@pytest.mark.parametrize("lesson", QUICK_LESSONS, ids=lambda lesson: f"lesson {lesson}, quick path")
def test_the_quick_path_runs_top_to_bottom(lesson: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lessons 7 and 8 with ``VAE_COURSE_QUICK=1`` (the shipped models instead of training): every cell runs and the
    quick path was taken. The test above runs their training path. (Not cached for the site: the key differs.)"""
    monkeypatch.setenv(f"{COURSE_ENVIRONMENT_PREFIX}QUICK", "1")
    source = next(s for s in lesson_sources() if lesson_number(s) == lesson)
    solution = build_lesson(source).solution
    executed = build_site.execute_cached(solution, build_site.cache_key(solution, build_site.inputs_digest()),
                                         refresh=True)
    printed = "".join(output.get("text", "") for cell in executed.notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "QUICK: " in printed, "the notebook did not say it took the quick path"
    assert not re.search(r"\d+ epochs in \d+ s", printed), "the quick path trained the notebook's model"
