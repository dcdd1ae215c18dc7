"""The committed notebooks: in sync with their sources, without outputs, and the student versions stop
at their first exercise with NotImplementedError and show no solution."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import LESSON_SOURCES
from tools.build_notebooks import EXERCISES_DIR, SOLUTIONS_DIR, build_lesson, out_of_sync, planned_outputs


def test_there_are_lessons() -> None:
    assert LESSON_SOURCES, "no lesson sources found in lessons/"


def test_generated_notebooks_are_in_sync() -> None:
    problems = out_of_sync(planned_outputs(LESSON_SOURCES), (SOLUTIONS_DIR, EXERCISES_DIR))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("directory", [SOLUTIONS_DIR, EXERCISES_DIR], ids=["solutions", "notebooks"])
def test_notebooks_are_committed_without_outputs(directory: Path) -> None:
    for path in sorted(directory.glob("*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path} cell {index} has outputs"


def test_exercise_version_contains_no_solution_line(lesson_source: Path) -> None:
    built = build_lesson(lesson_source)
    notebook = nbformat.read(EXERCISES_DIR / lesson_source.with_suffix(".ipynb").name, as_version=4)
    lines = {line.strip() for cell in notebook.cells for line in cell.source.splitlines()}
    leaked = sorted((built.hidden_lines - built.public_lines) & lines)
    assert built.hidden_lines, "a lesson must hide something from the student"
    assert leaked == []


def test_lesson_has_exercises(lesson_source: Path) -> None:
    assert len(build_lesson(lesson_source).exercises) >= 2


def test_student_version_stops_at_first_exercise(lesson_source: Path) -> None:
    first = build_lesson(lesson_source).exercises[0]
    path = EXERCISES_DIR / lesson_source.with_suffix(".ipynb").name
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(EXERCISES_DIR)}})
    with pytest.raises(CellExecutionError) as error:
        client.execute()
    assert error.value.ename == "ExerciseNotDone"  # the self-check's one-line NotImplementedError
    assert first.label in error.value.evalue and "not done yet" in error.value.evalue
