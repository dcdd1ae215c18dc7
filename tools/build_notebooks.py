#!/usr/bin/env python3
"""Build the course notebooks from the lesson sources (instructor tool; students never import it).

Each lesson has one source, ``lessons/NN_name.py``: a jupytext percent script holding the full solution.
From it this tool writes, without outputs,

* ``solutions/NN_name.ipynb``: the full version (markers removed);
* ``notebooks/NN_name.ipynb``: the exercise version handed to students.

Markers (see README, "For instructors"):

* A code cell whose first line is ``# EXERCISE: <title>`` is exercise ``N.k`` (N: the lesson number,
  k: its rank in the lesson). Inside it, lines ``# BEGIN SOLUTION`` and ``# END SOLUTION`` enclose the
  solution; the exercise version replaces each block by
  ``raise NotImplementedError("Exercise N.k: <title>")`` at the marker's indentation, so signatures and
  docstrings stay. The next visible code cell must call a self-check (``check_...(``).
* A cell tagged ``solution`` (``# %% tags=["solution"]``) is left out of the exercise version.
* In markdown, lines ``<!-- BEGIN ANSWER -->`` and ``<!-- END ANSWER -->`` enclose an answer; the exercise
  version shows a prompt instead.

Generation is deterministic and idempotent. A generated notebook records a checksum of its cells; one whose
cells no longer match it was edited by hand, and is not overwritten unless ``--force`` is given.

Usage: ``python -m tools.build_notebooks [--check] [--force] [lessons/NN_name.py ...]``
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
LESSONS_DIR = REPO_ROOT / "lessons"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
EXERCISES_DIR = REPO_ROOT / "notebooks"

EXERCISE_HEADER = re.compile(r"^#\s*EXERCISE:\s*(?P<title>\S.*?)\s*$")
BEGIN_SOLUTION = "# BEGIN SOLUTION"
END_SOLUTION = "# END SOLUTION"
BEGIN_ANSWER = "<!-- BEGIN ANSWER -->"
END_ANSWER = "<!-- END ANSWER -->"
SOLUTION_TAG = "solution"
# ``# %% points=2``: what an exercise (default 1) or a written answer (default 0) is worth in the gradebook.
POINTS_KEY = "points"
SELF_CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")
CHECKER_CALL = re.compile(r"\b(?P<name>check_\w+)\s*\(")
CHECKER_DEFINITION = re.compile(r"^\s*def\s+(?P<name>check_\w+)\s*\(", re.MULTILINE)
CHECKS_DIR = REPO_ROOT / "utils" / "checks"
# ``{{exercise:vae_loss}}`` in any cell becomes the number of the exercise defining ``vae_loss`` (in any lesson), so
# that prose never goes stale when an exercise is added or moved; a number typed by hand must name an exercise.
EXERCISE_REFERENCE = re.compile(r"\{\{\s*exercise:\s*(?P<name>\w+)\s*\}\}")
TYPED_EXERCISE_NUMBER = re.compile(r"\b[Ee]xercises?\s+(?P<number>\d+\.\d+)\b")
DEFINED_NAME = re.compile(r"^\s*(?:def|class)\s+(?P<name>\w+)", re.MULTILINE)
# Anything that looks like a marker but is not exactly one (``# BEGIN SOLUTION.``, ``#BEGIN SOLUTION: x``,
# ``# <!-- BEGIN ANSWER -->`` in code): an error, never copied through silently.
SOLUTION_MARKER_LIKE = re.compile(r"\b(?:BEGIN|END)[\s_-]*SOLUTION\b", re.IGNORECASE)
ANSWER_MARKER_LIKE = re.compile(r"\b(?:BEGIN|END)[\s_-]*ANSWER\b", re.IGNORECASE)
ANSWER_PROMPT = "*Your answer here.*"
CELL_MARKER = re.compile(r"^# %%")
# Generated cells carry ``metadata["vae_course"] = {"exercise": "N.k", "role": ROLE}`` (role "exercise" for the
# exercise cell, "check" for its self-check cell; "solution" alone for a cell tagged ``solution``, which only the
# solution version holds): the grader and the course site find cells by it, never by their text.
CELL_METADATA_KEY = "vae_course"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# What ipykernel reports for the course's reference Python (the one CI runs). JupyterLab writes the kernel's
# language_info into a notebook when it opens it, and marks the notebook modified if that changes anything:
# with this, a notebook opened on that Python shows as unmodified; on another, only "version" differs.
REFERENCE_PYTHON = "3.11.7"
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": REFERENCE_PYTHON}


# A solution line shorter than this (without spaces) is too generic to give an exercise away (``return x``).
KEY_LINE_MIN_CHARS = 20


def key_form(line: str) -> str:
    """A code line as compared for leaks: without spaces, or "" for a comment, a blank or a short generic line."""
    compact = re.sub(r"\s+", "", line)
    return "" if compact.startswith("#") or len(compact) < KEY_LINE_MIN_CHARS else compact


class MarkerError(ValueError):
    """A lesson source whose markers are malformed; the message names the file, cell and line."""


class HandEditError(RuntimeError):
    """A generated notebook was edited by hand; regenerating would lose the edit."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: ``number`` is ``"N.k"``; ``points`` what a pass is worth (the cell's
    ``points=`` metadata, 1 by default)."""

    number: str
    title: str
    points: float = 1.0

    @property
    def label(self) -> str:
        return f"Exercise {self.number}: {self.title}"


@dataclass(frozen=True)
class Question:
    """A written-answer question: ``number`` is ``"N.Qk"``, ``cell_id`` the generated id of its markdown cell,
    ``prompt`` the cell's text before the answer block, ``points`` the cell's ``points=`` metadata (0 by default:
    scored by the instructor through the gradebook's overrides)."""

    number: str
    cell_id: str
    prompt: str
    points: float = 0.0


@dataclass
class BuiltLesson:
    """Both versions of one lesson, with what the exercise version must hide."""

    source: Path
    solution: nbformat.NotebookNode
    exercise: nbformat.NotebookNode
    exercises: list[Exercise] = field(default_factory=list)
    hidden_lines: set[str] = field(default_factory=set)
    public_lines: set[str] = field(default_factory=set)
    # The written-answer questions, in order.
    questions: list[Question] = field(default_factory=list)
    # Each exercise's key lines (its solution blocks' code lines, see :func:`key_form`) → the exercise number.
    key_lines: dict[str, str] = field(default_factory=dict)


def lesson_sources(lessons_dir: Path = LESSONS_DIR) -> list[Path]:
    """Every lesson source, ``lessons/NN_name.py``, in lesson order: the one list every tool and test uses.
    Two sources with the same number are refused (:class:`MarkerError` naming both)."""
    sources = sorted(lessons_dir.glob("[0-9][0-9]_*.py"))
    by_number: dict[int, list[Path]] = {}
    for source in sources:
        by_number.setdefault(lesson_number(source), []).append(source)
    duplicates = [paths for paths in by_number.values() if len(paths) > 1]
    if duplicates:
        raise MarkerError("two lesson sources share a number (renumber one): "
                          + "; ".join(" and ".join(str(p) for p in paths) for paths in duplicates))
    return sources


def lesson_number(source: Path) -> int:
    """The lesson number, taken from the ``NN_`` prefix of the source's file name."""
    match = re.match(r"^(\d+)_", source.name)
    if not match:
        raise MarkerError(f"{source}: a lesson source must be named NN_name.py")
    return int(match.group(1))


def _cell_start_lines(text: str) -> list[int]:
    """1-based line numbers of the ``# %%`` markers that open each cell."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if CELL_MARKER.match(line)]


def _check_markdown_lines(source: Path, text_lines: list[str], start_lines: list[int], cells: list) -> None:
    """Every non-blank line of a markdown cell must be a comment (``# ...``); jupytext would otherwise keep
    a stray code line inside the text silently."""
    bounds = start_lines + [len(text_lines) + 1]
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        for number in range(bounds[index] + 1, bounds[index + 1]):
            line = text_lines[number - 1]
            if line.strip() and not line.startswith("#"):
                raise MarkerError(f"{source}:{number}: cell {index}: markdown line does not start with '#'")


def _where(source: Path, cell_index: int, start_lines: list[int], offset: int) -> str:
    """``file:line: cell i`` for line ``offset`` (0-based) of a cell's source."""
    return f"{source}:{start_lines[cell_index] + 1 + offset}: cell {cell_index}"


def _cells_checksum(cells: list[dict]) -> str:
    """SHA-256 of the cells' types and sources: what a hand edit changes."""
    payload = json.dumps([[c["cell_type"], c["source"]] for c in cells], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _split_exercise_cell(source: Path, index: int, lines: list[str], start_lines: list[int],
                         exercise: Exercise | None) -> tuple[list[str], list[str], list[str]]:
    """Return (solution lines, exercise lines, hidden lines) of one code cell.

    Raises :class:`MarkerError` for unclosed, nested or stray markers, and for an exercise without a block.
    """
    solution, student, hidden = [], [], []
    inside = False
    blocks = 0
    for offset, line in enumerate(lines):
        stripped = line.strip()
        if offset > 0 and EXERCISE_HEADER.match(stripped):
            raise MarkerError(f"{_where(source, index, start_lines, offset)}: "
                              "'# EXERCISE:' must be the cell's first line")
        if ANSWER_MARKER_LIKE.search(stripped):
            raise MarkerError(f"{_where(source, index, start_lines, offset)}: answer marker in a code cell "
                              f"({stripped!r}): written answers belong in markdown cells")
        if stripped not in (BEGIN_SOLUTION, END_SOLUTION) and SOLUTION_MARKER_LIKE.search(stripped):
            raise MarkerError(f"{_where(source, index, start_lines, offset)}: malformed solution marker "
                              f"{stripped!r}: a marker is alone on its line, exactly '{BEGIN_SOLUTION}' or "
                              f"'{END_SOLUTION}'")
        if stripped == BEGIN_SOLUTION:
            if exercise is None:
                raise MarkerError(f"{_where(source, index, start_lines, offset)}: solution block outside an "
                                  "exercise cell (start the cell with '# EXERCISE: <title>')")
            if inside:
                raise MarkerError(f"{_where(source, index, start_lines, offset)}: nested '{BEGIN_SOLUTION}'")
            inside = True
            blocks += 1
            indent = line[: len(line) - len(line.lstrip())]
            student.append(f"{indent}# YOUR CODE HERE")
            student.append(f'{indent}raise NotImplementedError("{exercise.label}")')
            continue
        if stripped == END_SOLUTION:
            if not inside:
                raise MarkerError(f"{_where(source, index, start_lines, offset)}: '{END_SOLUTION}' without "
                                  f"'{BEGIN_SOLUTION}'")
            inside = False
            continue
        if offset == 0 and exercise is not None:
            line = f"# {exercise.label}"
        solution.append(line)
        if inside:
            hidden.append(line)
        else:
            student.append(line)
    if inside:
        raise MarkerError(f"{_where(source, index, start_lines, len(lines) - 1)}: '{BEGIN_SOLUTION}' is never closed")
    if exercise is not None and blocks == 0:
        raise MarkerError(f"{_where(source, index, start_lines, 0)}: exercise '{exercise.title}' has no "
                          f"'{BEGIN_SOLUTION}' block")
    return solution, student, hidden


def _split_markdown_cell(source: Path, index: int, lines: list[str],
                         start_lines: list[int]) -> tuple[list[str], list[str], list[str]]:
    """Return (solution lines, exercise lines, hidden lines) of one markdown cell."""
    solution, student, hidden = [], [], []
    inside = False
    for offset, line in enumerate(lines):
        stripped = line.strip()
        if SOLUTION_MARKER_LIKE.search(stripped) or EXERCISE_HEADER.match(stripped):
            raise MarkerError(f"{_where(source, index, start_lines, offset)}: code marker '{stripped}' in a "
                              "markdown cell")
        if stripped not in (BEGIN_ANSWER, END_ANSWER) and ANSWER_MARKER_LIKE.search(stripped):
            raise MarkerError(f"{_where(source, index, start_lines, offset)}: malformed answer marker "
                              f"{stripped!r}: a marker is alone on its line, exactly '{BEGIN_ANSWER}' or "
                              f"'{END_ANSWER}'")
        if stripped == BEGIN_ANSWER:
            if inside:
                raise MarkerError(f"{_where(source, index, start_lines, offset)}: nested '{BEGIN_ANSWER}'")
            inside = True
            student.append(ANSWER_PROMPT)
            continue
        if stripped == END_ANSWER:
            if not inside:
                raise MarkerError(f"{_where(source, index, start_lines, offset)}: '{END_ANSWER}' without "
                                  f"'{BEGIN_ANSWER}'")
            inside = False
            continue
        solution.append(line)
        (hidden if inside else student).append(line)
    if inside:
        raise MarkerError(f"{_where(source, index, start_lines, len(lines) - 1)}: '{BEGIN_ANSWER}' is never closed")
    return solution, student, hidden


def _new_cell(cell_type: str, lines: list[str], metadata: dict, cell_id: str) -> nbformat.NotebookNode:
    source = "\n".join(lines)
    if cell_type == "code":
        return nbformat.v4.new_code_cell(source, metadata=metadata, id=cell_id)
    return nbformat.v4.new_markdown_cell(source, metadata=metadata, id=cell_id)


def _new_notebook(cells: list, source: Path, version: str) -> nbformat.NotebookNode:
    relative = source.relative_to(REPO_ROOT).as_posix() if source.is_relative_to(REPO_ROOT) else source.name
    metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": LANGUAGE_INFO,
        "vae_course": {
            "generated_from": relative,
            "version": version,
            "cells_sha256": _cells_checksum(cells),
            "warning": "Generated by tools/build_notebooks.py: edit the lesson source, not this file.",
        },
    }
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


@dataclass
class ParsedSource:
    """A lesson source read and its cell structure validated: jupytext's cells and the line each opens on."""

    source: Path
    number: int
    cells: list
    start_lines: list[int]

    def where(self, cell_index: int, offset: int = 0) -> str:
        return _where(self.source, cell_index, self.start_lines, offset)


def parse_source(source: Path) -> ParsedSource:
    """Read a lesson source; every cell must open with ``# %%`` and every markdown line must be a comment."""
    text = source.read_text(encoding="utf-8")
    number = lesson_number(source)
    parsed = jupytext.reads(text, fmt="py:percent")
    start_lines = _cell_start_lines(text)
    if len(start_lines) != len(parsed.cells) or (start_lines and start_lines[0] != 1):
        raise MarkerError(f"{source}:1: every cell must open with a '# %%' line, the first on line 1")
    _check_markdown_lines(source, text.splitlines(), start_lines, parsed.cells)
    return ParsedSource(source, number, parsed.cells, start_lines)


@dataclass
class ExerciseSequence:
    """The exercise bookkeeping of one lesson: numbers the exercises in order and requires a self-check cell right
    after each; :meth:`role` gives each code cell its generated metadata."""

    parsed: ParsedSource
    exercises: list[Exercise] = field(default_factory=list)
    awaiting_check: tuple[Exercise, int] | None = None

    def role(self, index: int, lines: list[str], is_solution_cell: bool,
             points: float = 1.0) -> tuple[Exercise | None, dict | None]:
        """The exercise a code cell opens (or None) and its ``vae_course`` metadata (or None)."""
        header = EXERCISE_HEADER.match(lines[0].strip()) if lines else None
        if header:
            if is_solution_cell:
                raise MarkerError(f"{self.parsed.where(index)}: an exercise cell cannot be tagged 'solution'")
            if self.awaiting_check is not None:
                raise MarkerError(f"{self.parsed.where(index)}: {self.awaiting_check[0].label} "
                                  f"(cell {self.awaiting_check[1]}) has no self-check cell before the next exercise")
            exercise = Exercise(f"{self.parsed.number}.{len(self.exercises) + 1}", header.group("title"), points)
            self.exercises.append(exercise)
            self.awaiting_check = (exercise, index)
            return exercise, {"exercise": exercise.number, "role": "exercise"}
        if is_solution_cell:
            return None, {"role": "solution"}
        if self.awaiting_check is None:
            return None, None
        awaited, opened_at = self.awaiting_check
        if not SELF_CHECK_CALL.search("\n".join(lines)):
            raise MarkerError(f"{self.parsed.where(index)}: {awaited.label} (cell {opened_at}) must be followed by a "
                              "self-check cell calling check_...(...)")
        self.awaiting_check = None
        return None, {"exercise": awaited.number, "role": "check"}

    def finish(self) -> None:
        """Refuse a lesson whose last exercise has no self-check."""
        if self.awaiting_check is not None:
            awaited, opened_at = self.awaiting_check
            raise MarkerError(f"{self.parsed.where(opened_at)}: {awaited.label} has no self-check cell after it")


def _cell_metadata(cell: nbformat.NotebookNode) -> tuple[dict, bool]:
    """The metadata a generated cell keeps (the ``solution`` tag removed), and whether the cell had that tag."""
    tags = list(cell.metadata.get("tags", []))
    metadata = {k: v for k, v in cell.metadata.items() if k not in ("tags", POINTS_KEY)}
    visible_tags = [t for t in tags if t != SOLUTION_TAG]
    if visible_tags:
        metadata["tags"] = visible_tags
    return metadata, SOLUTION_TAG in tags


def _points(parsed: ParsedSource, index: int, cell: nbformat.NotebookNode, default: float) -> float:
    """A cell's ``points=`` metadata (a number ≥ 0), else ``default``."""
    value = cell.metadata.get(POINTS_KEY, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise MarkerError(f"{parsed.where(index)}: points={value!r}: points are a number, 0 or more")
    return float(value)


def known_checkers(lesson_text: str, checks_dir: Path = CHECKS_DIR) -> set[str]:
    """The self-check functions a lesson may call: those ``utils/checks/*.py`` define, and those the lesson
    defines itself (read as text: building a notebook imports nothing of the course)."""
    texts = [lesson_text] + [path.read_text(encoding="utf-8") for path in sorted(checks_dir.glob("*.py"))]
    return {match.group("name") for text in texts for match in CHECKER_DEFINITION.finditer(text)}


def _check_checker_names(parsed: ParsedSource, calls: list[tuple[int, str]]) -> None:
    """Refuse a self-check cell calling a checker that exists nowhere (a misspelt name would only fail when run)."""
    known = known_checkers(parsed.source.read_text(encoding="utf-8"))
    for index, name in calls:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise MarkerError(f"{parsed.where(index)}: the self-check calls {name}, which neither utils/checks nor "
                              f"the lesson defines{hint}")


def exercise_numbers(lessons_dir: Path) -> dict[str, str]:
    """Every exercise of the lessons in ``lessons_dir``, by the first function or class its cell defines: the map
    ``{{exercise:NAME}}`` is resolved with (read as text, cheaply: each cell starting ``# EXERCISE:`` counts)."""
    numbers: dict[str, str] = {}
    for source in lesson_sources(lessons_dir):
        cells = re.split(r"^# %%.*$", source.read_text(encoding="utf-8"), flags=re.MULTILINE)
        exercise_cells = [cell for cell in cells if EXERCISE_HEADER.match(cell.strip().split("\n")[0])]
        for rank, cell in enumerate(exercise_cells, start=1):
            if name := DEFINED_NAME.search(cell):
                numbers.setdefault(name.group("name"), f"{lesson_number(source)}.{rank}")
            numbers.setdefault(f"{lesson_number(source)}.{rank}", f"{lesson_number(source)}.{rank}")
    return numbers


def _resolve_exercise_numbers(parsed: ParsedSource, numbers: dict[str, str]) -> None:
    """Replace every ``{{exercise:NAME}}`` of the lesson's cells by the exercise's number; refuse an unknown name and
    a number typed by hand that names no exercise, or that differs from the exercise a markdown cell introduces (the
    cell right before an exercise cell)."""
    existing = set(numbers.values())
    for index, cell in enumerate(parsed.cells):
        lines = cell.source.split("\n")
        for offset, line in enumerate(lines):
            for match in EXERCISE_REFERENCE.finditer(line):
                if match.group("name") not in numbers:
                    raise MarkerError(f"{parsed.where(index, offset)}: {match.group(0)} names no exercise's function "
                                      "or class")
            lines[offset] = EXERCISE_REFERENCE.sub(lambda m: numbers[m.group("name")], line)
            for match in TYPED_EXERCISE_NUMBER.finditer(lines[offset]):
                if match.group("number") not in existing:
                    raise MarkerError(f"{parsed.where(index, offset)}: '{match.group(0)}' names no exercise (write "
                                      "{{exercise:NAME}}, NAME the function or class it defines)")
        cell.source = "\n".join(lines)


def _check_introductions(parsed: ParsedSource, exercises: list[Exercise], opening_cells: list[int]) -> None:
    """A markdown cell right before an exercise cell that opens with a bold exercise number must name that one."""
    for exercise, index in zip(exercises, opening_cells, strict=True):
        if index > 0 and parsed.cells[index - 1].cell_type == "markdown":
            match = re.match(r"\s*\*\*Exercise\s+(\d+\.\d+)", parsed.cells[index - 1].source)
            if match and match.group(1) != exercise.number:
                raise MarkerError(f"{parsed.where(index - 1)}: introduces Exercise {match.group(1)}, but the next "
                                  f"exercise is {exercise.number} (write **Exercise {{{{exercise:NAME}}}}**)")


def build_lesson(source: Path) -> BuiltLesson:
    """Parse one lesson source and build its solution and exercise notebooks (in memory)."""
    parsed = parse_source(source)
    _resolve_exercise_numbers(parsed, exercise_numbers(source.parent))
    sequence = ExerciseSequence(parsed)
    solution_cells, exercise_cells = [], []
    hidden_lines: set[str] = set()
    public_lines: set[str] = set()
    checker_calls: list[tuple[int, str]] = []
    key_lines: dict[str, str] = {}
    questions: list[Question] = []
    opening_cells: list[int] = []
    for index, cell in enumerate(parsed.cells):
        exercise = None
        lines = cell.source.splitlines()
        metadata, is_solution_cell = _cell_metadata(cell)
        points = _points(parsed, index, cell, 1.0 if cell.cell_type == "code" else 0.0)
        if cell.cell_type == "code":
            exercise, role = sequence.role(index, lines, is_solution_cell, points)
            if exercise is not None:
                opening_cells.append(index)
            if role is not None:
                metadata[CELL_METADATA_KEY] = role
            full, student, hidden = _split_exercise_cell(source, index, lines, parsed.start_lines, exercise)
            if role is not None and role.get("role") == "check":
                checker_calls += [(index, m.group("name")) for m in CHECKER_CALL.finditer(cell.source)]
        elif cell.cell_type == "markdown":
            full, student, hidden = _split_markdown_cell(source, index, lines, parsed.start_lines)
        else:
            raise MarkerError(f"{parsed.where(index)}: unsupported cell type {cell.cell_type!r}")

        solution_cells.append(_new_cell(cell.cell_type, full, metadata, f"cell-{len(solution_cells):03d}"))
        if is_solution_cell:
            hidden_lines.update(line.strip() for line in full)
            continue
        exercise_cells.append(_new_cell(cell.cell_type, student, metadata, f"cell-{len(exercise_cells):03d}"))
        if cell.cell_type == "markdown" and BEGIN_ANSWER in (line.strip() for line in lines):
            prompt = "\n".join(lines[: [line.strip() for line in lines].index(BEGIN_ANSWER)]).strip()
            questions.append(Question(f"{parsed.number}.Q{len(questions) + 1}", exercise_cells[-1].id, prompt,
                                      points))
        if cell.cell_type == "code" and exercise is not None:
            key_lines |= {form: exercise.number for line in hidden if (form := key_form(line))}
        hidden_lines.update(line.strip() for line in hidden)
        public_lines.update(line.strip() for line in student)
    sequence.finish()
    _check_checker_names(parsed, checker_calls)
    _check_introductions(parsed, sequence.exercises, opening_cells)
    return BuiltLesson(
        source=source,
        solution=_new_notebook(solution_cells, source, "solution"),
        exercise=_new_notebook(exercise_cells, source, "exercise"),
        exercises=sequence.exercises,
        hidden_lines={line for line in hidden_lines if line},
        public_lines=public_lines,
        key_lines=key_lines,
        questions=questions,
    )


def exposed_key_lines(lessons: list[BuiltLesson]) -> list[str]:
    """Every place a student notebook shows an exercise's key line outside its solution block, in its own lesson or
    a later one: one message per place, naming the exercise, the notebook, the cell and the line. A line an
    earlier lesson already shows in an ordinary cell (``with torch.no_grad():``) was taught: it gives nothing away."""
    shown: list[tuple[int, BuiltLesson, int, int, str]] = []
    for built in lessons:
        for index, cell in enumerate(built.exercise.cells):
            if cell.cell_type == "code":
                shown += [(lesson_number(built.source), built, index, offset, line)
                          for offset, line in enumerate(cell.source.splitlines()) if key_form(line)]
    first_shown: dict[str, int] = {}
    for lesson, _, _, _, line in shown:
        first_shown[key_form(line)] = min(lesson, first_shown.get(key_form(line), lesson))
    keys = {form: number for built in lessons for form, number in built.key_lines.items()}
    problems = []
    for _, built, index, offset, line in shown:
        number = keys.get(key_form(line))
        if number is not None and first_shown[key_form(line)] >= int(number.split(".")[0]):
            problems.append(f"{built.source.name}: cell {index}, line {offset + 1} shows a key line of "
                            f"exercise {number} to students: {line.strip()!r}")
    return problems


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """The exact bytes (as text) a generated notebook is written with."""
    return nbformat.writes(notebook, version=4).rstrip("\n") + "\n"


def was_edited_by_hand(path: Path) -> bool:
    """True when ``path``'s cells no longer match the checksum recorded when it was generated."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except (nbformat.reader.NotJSONError, ValueError, KeyError):
        return True  # no longer a notebook (a merge's conflict markers, a broken hand edit): never overwrite silently
    recorded = notebook.metadata.get("vae_course", {}).get("cells_sha256")
    return recorded != _cells_checksum(notebook.cells)


def planned_outputs(sources: list[Path], solutions_dir: Path = SOLUTIONS_DIR,
                    exercises_dir: Path = EXERCISES_DIR) -> dict[Path, str]:
    """Every notebook the given sources produce, mapped to its text. Refuses (:class:`MarkerError`) sources whose
    student notebooks show an exercise's key line outside its solution block (:func:`exposed_key_lines`)."""
    outputs: dict[Path, str] = {}
    built_lessons = [build_lesson(source) for source in sources]
    if exposed := exposed_key_lines(built_lessons):
        raise MarkerError("an exercise's solution shows elsewhere in the student notebooks (write it differently "
                          "there, or call the student's function):\n  " + "\n  ".join(exposed))
    for source, built in zip(sources, built_lessons, strict=True):
        name = source.with_suffix(".ipynb").name
        outputs[solutions_dir / name] = notebook_text(built.solution)
        outputs[exercises_dir / name] = notebook_text(built.exercise)
    return outputs


def write_outputs(outputs: dict[Path, str], force: bool = False) -> list[Path]:
    """Write the notebooks that changed; refuse, before writing anything, if one was edited by hand."""
    changed = [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    edited = [p for p in changed if p.exists() and was_edited_by_hand(p)]
    if edited and not force:
        names = "\n  ".join(str(p) for p in edited)
        raise HandEditError(
            f"These generated notebooks were edited by hand since they were generated:\n  {names}\n"
            "Regenerating would overwrite the edits. Move them into the lesson source (lessons/NN_name.py), "
            "or rerun with --force to discard them. Nothing was written.")
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs[path], encoding="utf-8")
    return changed


def out_of_sync(outputs: dict[Path, str], directories: tuple[Path, ...]) -> list[str]:
    """Describe every generated notebook that is missing, differs, or has no source."""
    problems = [f"{p}: missing" for p in outputs if not p.exists()]
    problems += [f"{p}: differs from its source (run `make notebooks`)" for p, text in outputs.items()
                 if p.exists() and p.read_text(encoding="utf-8") != text]
    for directory in directories:
        problems += [f"{p}: no lesson source produces it" for p in sorted(directory.glob("*.ipynb"))
                     if p not in outputs]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help="lesson sources (default: lessons/*.py)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a notebook is out of sync")
    parser.add_argument("--force", action="store_true", help="overwrite notebooks even if edited by hand")
    args = parser.parse_args(argv)
    sources = [s.resolve() for s in args.sources] or lesson_sources()
    try:
        outputs = planned_outputs(sources)
        if args.check:
            problems = out_of_sync(outputs, (SOLUTIONS_DIR, EXERCISES_DIR) if not args.sources else ())
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        for path in write_outputs(outputs, force=args.force):
            print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    except (MarkerError, HandEditError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
