"""Every lesson's solution notebook executed top to bottom, as the site executes it.

The execution goes through :func:`tools.build_site.execute_cached` with ``refresh``: every run of the tests executes
every lesson (nothing is taken from the cache), and the executed notebook is stored in the site's cache, so the
``make site`` that follows in CI builds its pages from these very executions instead of running each lesson again.
A failing cell fails the test with the cell's traceback. The time of each lesson is printed at the end of the run
(``conftest.py``).
"""
from __future__ import annotations

from pathlib import Path

from tools import build_site
from tools.build_notebooks import build_lesson


def test_the_solution_notebook_runs_top_to_bottom(lesson_source: Path) -> None:
    solution = build_lesson(lesson_source).solution
    key = build_site.cache_key(solution, build_site.inputs_digest())
    executed = build_site.execute_cached(solution, key, refresh=True)
    code_cells = [cell for cell in executed.notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.get("execution_count") for cell in code_cells), "a code cell did not run"
    assert (build_site.CACHE_DIR / f"{key}.ipynb").exists(), "the site's cache holds this execution"
