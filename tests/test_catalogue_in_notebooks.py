"""A ✅ is a promise that the rest of the notebook runs: each lesson's exercise notebook (what a student opens) is
executed end to end with every exercise answered by one of its catalogue's correct variants (tests/mistakes/),
substituted just before the exercise's self-check. Every check must print ✅ and every later cell must run.

One execution per lesson (CI time): exercise j of a lesson takes correct variant (j + CATALOGUE_ROTATION) modulo the
number of its variants; the environment variable CATALOGUE_ROTATION (default 0) rotates them, so that successive CI
runs (CATALOGUE_ROTATION=1, 2, …) cover every variant. CATALOGUE_KEEP_EXECUTED=<folder> keeps the executed
notebooks, outputs and figures included, for a person to look at."""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.mistakes.catalogue import Exercise
from tools.build_notebooks import EXERCISES_DIR, REPO_ROOT

CHECK_CALL = re.compile(r"^(check_\w+)\((\w+)\)\s*$", flags=re.MULTILINE)
ROTATION = int(os.environ.get("CATALOGUE_ROTATION", "0"))
# A folder to write the executed notebooks to (with their outputs), when set.
KEEP_EXECUTED = os.environ.get("CATALOGUE_KEEP_EXECUTED", "")
NOTEBOOKS = sorted(EXERCISES_DIR.glob("[0-9][0-9]_*.ipynb"))


def _catalogue(lesson: int) -> dict[str, Exercise]:
    """The lesson's catalogue, by the name of its check."""
    module = importlib.import_module(f"tests.mistakes.lesson{lesson:02d}")
    return {exercise.check.__name__: exercise for exercise in module.EXERCISES}


def with_correct_variants(notebook: nbformat.NotebookNode, lesson: int, rotation: int
                          ) -> tuple[nbformat.NotebookNode, list[tuple[int, str]]]:
    """The notebook with a cell before each self-check that binds the exercise's name to a catalogue variant, and
    (index of the check cell in the new notebook, what was substituted) for each exercise."""
    catalogue = _catalogue(lesson)
    cells, checks = [], []
    setup = nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n"
                                      f"from tests.mistakes.lesson{lesson:02d} import EXERCISES as _CATALOGUE")
    for cell in notebook.cells:
        call = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
        if call:
            check, name = call.groups()
            exercise = catalogue[check]
            position = [e.number for e in catalogue.values()].index(exercise.number)
            variant = (position + rotation) % len(exercise.correct)
            if not checks:
                cells.append(setup)
            cells.append(nbformat.v4.new_code_cell(
                f"{name} = next(e for e in _CATALOGUE if e.number == {exercise.number!r}).correct[{variant}].function"))
            checks.append((len(cells), f"{exercise.number}: {exercise.correct[variant].description}"))
        cells.append(cell)
    assert len(checks) == len(catalogue), f"lesson {lesson}: a self-check cell was not found"
    filled = nbformat.v4.new_notebook(cells=cells, metadata=notebook.metadata)
    return filled, checks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_exercise_notebook_runs_to_the_end_with_correct_variants(path: Path) -> None:
    lesson = int(path.name[:2])
    notebook, checks = with_correct_variants(nbformat.read(path, as_version=4), lesson, ROTATION)
    try:
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(EXERCISES_DIR)}}).execute()  # raises at the first failure
    finally:
        if KEEP_EXECUTED:  # for a person to look at the figures and messages
            Path(KEEP_EXECUTED).mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, Path(KEEP_EXECUTED) / path.name)
    for index, substituted in checks:
        printed = "".join(output.get("text", "") for output in notebook.cells[index].outputs)
        assert "✅" in printed, f"{path.name}, {substituted}: its self-check did not pass: {printed!r}"


def test_every_exercise_of_every_notebook_is_substituted() -> None:
    """The substitution finds each self-check (one per catalogue entry) in the notebook a student opens."""
    for path in NOTEBOOKS:
        lesson = int(path.name[:2])
        _, checks = with_correct_variants(nbformat.read(path, as_version=4), lesson, 0)
        substituted = sorted(text.split(":")[0] for _, text in checks)
        assert substituted == sorted(e.number for e in _catalogue(lesson).values()), path.name
