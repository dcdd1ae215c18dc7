"""Planning: which notebooks to grade, whose they are, which lesson each belongs to, and the cells to run.

What is graded is the student's code; the checks are ours. For each notebook the plan is that lesson's exercise
notebook, regenerated from ``lessons/``, up to its last self-check, with the student's exercise cells in place of
the stubs. A student's cell is found by the metadata the generated notebooks carry
(``cell.metadata["vae_course"] = {"exercise": "N.k", "role": "exercise"}``), else by its ``# Exercise N.k``
header, else as the last cell defining the stub's first function or class. Self-check cells and every other
cell come from the lesson source; cells a student added are not run (helpers belong inside the exercise cell).
"""
from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools.build_notebooks import CELL_METADATA_KEY, build_lesson, lesson_number, lesson_sources
from tools.grading.references import references_of
from tools.grading.results import ExerciseResult, Flag
from tools.grading.scan import flag_lines, reference_uses

EXERCISE_LINE = re.compile(r"^#\s*Exercise\s+(?P<number>\d+\.\d+)\b")
CHECKER_IMPORT = re.compile(r"^\s*from\s+(utils\.checks\.\w+)\s+import", re.MULTILINE)
DEFINITION = re.compile(r"^(?:def|class)\s+(?P<name>\w+)", re.MULTILINE)
# Jupyter's autosave copies: never graded (the notebook beside them is), always counted in the summary.
CHECKPOINTS = ".ipynb_checkpoints"


class NotGradable(ValueError):
    """A submission that cannot be graded at all: unreadable, or not a notebook of the expected lesson."""


@dataclass
class PlannedCell:
    """One cell of the notebook that is run: where it comes from and which exercise it belongs to."""

    source: str
    role: str  # "lesson", "exercise" (the student's code) or "check"
    exercise: str | None  # the exercise this cell follows ("N.k"), None before the first one
    names: list[str] = field(default_factory=list)  # what an exercise cell must define


@dataclass
class GradingPlan:
    """The cells to run, one result per exercise (missing ones already marked), the lesson's checker
    modules, the reference implementations of its exercises, and what the static scan flagged."""

    lesson: int
    cells: list[PlannedCell]
    results: list[ExerciseResult]
    checker_modules: list[str]
    references: dict[str, list[str]]
    flags: list[Flag]
    reference_uses: dict[str, list[str]]


@dataclass(frozen=True)
class Submissions:
    """``(student, notebook)`` pairs to grade, the checkpoint copies that were left out, and ``(student, path,
    reason)`` for each notebook that is not a regular file inside the folder (a symbolic link, a device, a FIFO):
    those are reported and never opened."""

    notebooks: list[tuple[str, Path]]
    skipped: list[Path]
    refused: list[tuple[str, Path, str]] = field(default_factory=list)


def not_a_regular_file(path: Path, root: Path) -> str:
    """Why ``path`` may not be read as a submission ("" when it may): it must be a regular file, reached through
    no symbolic link, inside ``root``. Nothing is opened to find out."""
    try:
        status = path.lstat()
    except OSError as error:
        return f"cannot be examined ({error.strerror})"
    if stat.S_ISLNK(status.st_mode):
        return "a symbolic link (not followed: submissions must be regular files)"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file (a device, FIFO or socket): not read"
    if not path.resolve().is_relative_to(root.resolve()):
        return "outside the submissions folder: not read"
    return ""


def find_submissions(root: Path) -> Submissions:
    """A file is its stem's; a folder's notebooks are the folder's (hidden folders included: a student may
    name a folder so). Jupyter's checkpoint copies are left out and listed; symbolic links (to files or
    folders), devices and FIFOs are refused, never followed or opened."""
    if root.is_file() or not root.is_dir():
        reason = not_a_regular_file(root, root.parent)
        return Submissions([] if reason else [(root.stem, root)], [], [(root.stem, root, reason)] if reason else [])
    found: list[tuple[str, Path]] = []
    refused: list[tuple[str, Path, str]] = []
    skipped: list[Path] = []

    def consider(student: str, path: Path) -> None:
        reason = not_a_regular_file(path, root)
        if reason:
            refused.append((student, path, reason))
        else:
            found.append((student, path))

    entries = sorted(root.iterdir())
    for path in entries:
        if path.suffix == ".ipynb" and not (path.is_dir() and not path.is_symlink()):
            consider(path.stem, path)
    for folder in entries:
        if folder.suffix == ".ipynb" or not folder.is_dir():
            continue
        if folder.is_symlink():
            refused.append((folder.name, folder, "a symbolic link to a folder (not followed)"))
            continue
        if folder.name == CHECKPOINTS:
            skipped += sorted(folder.rglob("*.ipynb"))
            continue
        for path in sorted(folder.rglob("*.ipynb")):
            if CHECKPOINTS in path.relative_to(folder).parts:
                skipped.append(path)
            elif not (path.is_dir() and not path.is_symlink()):
                consider(folder.name, path)
    return Submissions(found, skipped, refused)


# The largest notebook the grader reads: a submission is code and text, not data.
NOTEBOOK_BYTES_LIMIT = 32 * 1024 * 1024


def lessons_by_number() -> dict[int, Path]:
    """The course's lessons by number."""
    return {lesson_number(path): path for path in lesson_sources()}


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``, or :class:`NotGradable` saying why it cannot be read. The file is opened without
    following a symbolic link and read only if it is a regular file under :data:`NOTEBOOK_BYTES_LIMIT`; no byte
    of a file that does not parse is quoted."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise NotGradable(f"not read: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotGradable("not read: not a regular file")
        if status.st_size > NOTEBOOK_BYTES_LIMIT:
            raise NotGradable(f"not read: {status.st_size} bytes, above the limit of {NOTEBOOK_BYTES_LIMIT}")
        data = handle.read(NOTEBOOK_BYTES_LIMIT + 1)
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        raise NotGradable("not a notebook: the file is not text (UTF-8)") from None
    except Exception as error:  # nbformat raises JSON, validation and version errors of several kinds
        raise NotGradable(f"not a readable notebook ({type(error).__name__})") from None
    if not isinstance(notebook.get("metadata"), dict) or not isinstance(notebook.get("cells"), list):
        raise NotGradable("not a readable notebook (no metadata or cell list)")
    return notebook


def identify_lesson(notebook: nbformat.NotebookNode) -> int | None:
    """The lesson a notebook belongs to: its generated metadata, else the numbers of its exercise headers."""
    course = notebook.metadata.get(CELL_METADATA_KEY)
    generated_from = course.get("generated_from") if isinstance(course, dict) else None
    if isinstance(generated_from, str) and generated_from:
        try:
            return lesson_number(Path(generated_from))
        except ValueError:
            pass
    numbers = Counter(int(number.split(".")[0]) for cell in notebook.cells if (number := _header_number(cell)))
    return numbers.most_common(1)[0][0] if numbers else None


def _cell_role(cell: nbformat.NotebookNode) -> tuple[str | None, str | None]:
    """``(exercise, role)`` from a cell's generated metadata; ``(None, None)`` when it has none."""
    metadata = cell.get("metadata")
    marker = metadata.get(CELL_METADATA_KEY) if isinstance(metadata, dict) else None
    if not isinstance(marker, dict):
        return None, None
    exercise, role = marker.get("exercise"), marker.get("role")
    return (exercise if isinstance(exercise, str) else None), (role if isinstance(role, str) else None)


def _is_code(cell: object) -> bool:
    """Whether ``cell`` is a well-formed code cell (a dict with ``cell_type`` "code" and a text source); any
    other cell, however malformed, is not the student's code."""
    return isinstance(cell, dict) and cell.get("cell_type") == "code" and isinstance(cell.get("source"), str)


def _header_number(cell: nbformat.NotebookNode) -> str | None:
    match = EXERCISE_LINE.match(cell.source.lstrip()) if _is_code(cell) else None
    return match.group("number") if match else None


def _defined_names(source: str) -> list[str]:
    return [match.group("name") for match in DEFINITION.finditer(source)]


def find_student_cell(student: nbformat.NotebookNode, number: str, stub_source: str) -> str | None:
    """The source of the student's cell for exercise ``number``: the cell whose metadata says so, else the
    cell with its header, else the last cell defining the stub's first function or class; None if none."""
    code_cells = [cell for cell in student.cells if _is_code(cell)]
    for cell in code_cells:
        if _cell_role(cell) == (number, "exercise"):
            return cell.source
    for cell in code_cells:
        if _header_number(cell) == number:
            return cell.source
    names = _defined_names(stub_source)
    if names:
        defining = [cell.source for cell in code_cells if names[0] in _defined_names(cell.source)]
        if defining:
            return defining[-1]
    return None


def plan_grading(lesson_source: Path, student: nbformat.NotebookNode) -> GradingPlan:
    """The plan for one notebook: the lesson's exercise notebook up to its last self-check, with the student's
    exercise cells in place, one result per exercise (missing ones marked), and what the scan found."""
    built = build_lesson(lesson_source)
    pristine = [cell for cell in built.exercise.cells if cell.cell_type == "code"]
    roles = [_cell_role(cell) for cell in pristine]
    last_check = max(i for i, (_, role) in enumerate(roles) if role == "check")
    results = {exercise.number: ExerciseResult(exercise.number, exercise.title) for exercise in built.exercises}
    references = references_of(list(results))
    cells: list[PlannedCell] = []
    flags: list[Flag] = []
    uses: dict[str, list[str]] = {}
    current: str | None = None
    for cell, (number, role) in zip(pristine[: last_check + 1], roles[: last_check + 1], strict=True):
        if role == "exercise" and number:
            current = number
            source = find_student_cell(student, number, cell.source)
            if source is None:
                results[number].status = "missing"
                results[number].message = "the exercise cell is not in the notebook (deleted?); nothing to grade"
                source = cell.source
            else:
                flags += flag_lines(number, source)
                if used := reference_uses(source, references.get(number, [])):
                    uses[number] = used
            cells.append(PlannedCell(source, "exercise", number, _defined_names(cell.source)))
        elif role == "check":
            cells.append(PlannedCell(cell.source, "check", number or current))
        else:
            cells.append(PlannedCell(cell.source, "lesson", current))
    checker_modules = sorted({match.group(1) for cell in pristine for match in CHECKER_IMPORT.finditer(cell.source)})
    return GradingPlan(lesson_number(lesson_source), cells, list(results.values()), checker_modules, references,
                       flags, uses)
