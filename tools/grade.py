#!/usr/bin/env python3
"""Grade students' exercise notebooks with the course's own self-checks (instructor tool).

``python tools/grade.py SUBMISSIONS [--out grades] [--lesson N] [--workers K] [--time-limit S]``
(``make grade SUBMISSIONS=dir``). SUBMISSIONS is one notebook, or a folder holding one notebook per
student (the file's stem names the student) and/or one folder per student (the folder names the student;
every notebook inside is graded, whatever its file name).

What is graded is the student's code; the checks are ours. For each notebook the grader finds its lesson
(from the generated metadata, else from its exercise headers), regenerates that lesson's exercise notebook
from ``lessons/``, puts the student's exercise cells in place of the stubs (matched by their
``# Exercise N.k`` header, else by the function they define) and runs that notebook, in a kernel of its own
and a scratch folder, up to the lesson's last self-check. Self-check cells and every other cell come from the
lesson source; before each self-check the checkers are re-imported, so a student who edits a check cell,
deletes it, or rebinds ``check_…`` gains nothing. Code in cells a student added is not run: helpers belong
inside the exercise cell. Nothing under SUBMISSIONS is written.

Each exercise gets one result:

=========== ======================================================================================
pass        the check ran and printed its ✅ line
fail        the check ran and rejected the answer (its message is in the feedback)
not done    the exercise still raises NotImplementedError
error       the student's code raised (the feedback names the exception and the student's line)
missing     the exercise cell was deleted, or the function it must define is not there
not graded  grading stopped before this exercise (time limit, crashed kernel)
=========== ======================================================================================

Outputs in ``--out``: ``gradebook.csv`` (student, lesson, notebook, one column per exercise, passed, out
of, note), ``feedback/<student>.md``, and a summary printed at the end: per exercise, how many passed.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.build_notebooks import SELF_CHECK_CALL, build_lesson, lesson_number, lesson_sources  # noqa: E402
from utils.threads import THREADS_ENV_VAR, usable_cpus  # noqa: E402

STATUSES = ("pass", "fail", "not done", "error", "missing", "not graded")
EXERCISE_LINE = re.compile(r"^#\s*Exercise\s+(?P<number>\d+\.\d+)\b")
DEFINITION = re.compile(r"^(?:def|class)\s+(?P<name>\w+)", re.MULTILINE)
STUDENT_FRAME = re.compile(r"Cell In\[(?P<count>\d+)\], line (?P<line>\d+)")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
IPYTHON_CELL_FILE = re.compile(r" \(\d+\.py, line \d+\)")  # SyntaxError's "(1705073521.py, line 7)"
FAILED_CHECK_ERRORS = ("ExerciseCheckFailed", "AssertionError")
DEFAULT_TIME_LIMIT_S = 300

# Runs before every self-check: fresh checkers, whatever the student's cells did to the names or the module.
CHECK_GUARD = """\
import importlib as _grader_importlib, sys as _grader_sys
for _grader_name in sorted(n for n in _grader_sys.modules if n.startswith("utils.checks."))[::-1]:
    _grader_module = _grader_importlib.reload(_grader_sys.modules[_grader_name])
    globals().update({k: v for k, v in vars(_grader_module).items() if k.startswith("check_")})
"""


@dataclass
class ExerciseResult:
    """The grade of one exercise: ``number`` is ``"N.k"``, ``status`` one of :data:`STATUSES`."""

    number: str
    title: str
    status: str = "not graded"
    message: str = ""


@dataclass
class NotebookResult:
    """Everything the grader found out about one submitted notebook."""

    student: str
    notebook: str
    lesson: int | None = None
    exercises: list[ExerciseResult] = field(default_factory=list)
    problem: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(result.status == "pass" for result in self.exercises)


@dataclass
class _PlannedCell:
    """One cell of the notebook that is run: where it comes from and which exercise it belongs to."""

    source: str
    role: str  # "lesson", "exercise" (the student's code) or "check"
    exercise: str | None  # the exercise this cell follows ("N.k"), None before the first one


class NotGradable(ValueError):
    """A submission that cannot be graded at all: unreadable, or not a notebook of the expected lesson."""


def find_submissions(root: Path) -> list[tuple[str, Path]]:
    """``(student, notebook)`` pairs: a file is its stem's; a folder's notebooks are the folder's."""
    if root.is_file():
        return [(root.stem, root)]
    found = [(path.stem, path) for path in sorted(root.glob("*.ipynb")) if path.is_file()]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(folder.name, path) for path in sorted(folder.rglob("*.ipynb"))
                  if path.is_file() and ".ipynb_checkpoints" not in path.parts]
    return found


def lessons_by_number() -> dict[int, Path]:
    """The course's lessons by number."""
    return {lesson_number(path): path for path in lesson_sources()}


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path``, or :class:`NotGradable` saying why it cannot be read."""
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except UnicodeDecodeError:
        raise NotGradable("not a notebook: the file is not text (UTF-8)") from None
    except Exception as error:  # nbformat raises JSON, validation and version errors of several kinds
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotGradable(f"not a readable notebook ({first_line})") from None


def identify_lesson(notebook: nbformat.NotebookNode) -> int | None:
    """The lesson a notebook belongs to: its generated metadata, else the numbers of its exercise headers."""
    generated_from = notebook.metadata.get("vae_course", {}).get("generated_from")
    if generated_from:
        try:
            return lesson_number(Path(generated_from))
        except ValueError:
            pass
    numbers = Counter(int(match.group("number").split(".")[0]) for cell in notebook.cells
                      if cell.cell_type == "code" and (match := EXERCISE_LINE.match(cell.source.lstrip())))
    return numbers.most_common(1)[0][0] if numbers else None


def _exercise_number(cell: nbformat.NotebookNode) -> str | None:
    match = EXERCISE_LINE.match(cell.source.lstrip()) if cell.cell_type == "code" else None
    return match.group("number") if match else None


def _defined_names(source: str) -> list[str]:
    return [match.group("name") for match in DEFINITION.finditer(source)]


def find_student_cell(student: nbformat.NotebookNode, number: str, stub_source: str) -> str | None:
    """The source of the student's cell for exercise ``number``: the cell with its header, else the last
    cell defining the stub's first function or class; None if there is none."""
    for cell in student.cells:
        if _exercise_number(cell) == number:
            return cell.source
    names = _defined_names(stub_source)
    if names:
        defining = [cell.source for cell in student.cells
                    if cell.cell_type == "code" and names[0] in _defined_names(cell.source)]
        if defining:
            return defining[-1]
    return None


def plan_grading(lesson_source: Path, student: nbformat.NotebookNode
                 ) -> tuple[list[_PlannedCell], list[ExerciseResult], dict[str, list[str]]]:
    """The cells to run (the lesson's exercise notebook up to its last self-check, with the student's
    exercise cells in place), one result per exercise (missing ones marked), and each stub's names."""
    built = build_lesson(lesson_source)
    pristine = [cell for cell in built.exercise.cells if cell.cell_type == "code"]
    last_check = max(i for i, cell in enumerate(pristine) if SELF_CHECK_CALL.search(cell.source)
                     and i > 0 and _exercise_number(pristine[i - 1]))
    results = {exercise.number: ExerciseResult(exercise.number, exercise.title) for exercise in built.exercises}
    names: dict[str, list[str]] = {}
    plan: list[_PlannedCell] = []
    current: str | None = None
    for index, cell in enumerate(pristine[: last_check + 1]):
        number = _exercise_number(cell)
        if number:
            current = number
            names[number] = _defined_names(cell.source)
            source = find_student_cell(student, number, cell.source)
            if source is None:
                results[number].status = "missing"
                results[number].message = "the exercise cell is not in the notebook (deleted?); nothing to grade"
                source = cell.source
            plan.append(_PlannedCell(source, "exercise", number))
        elif index > 0 and _exercise_number(pristine[index - 1]):
            plan.append(_PlannedCell(CHECK_GUARD + cell.source, "check", current))
        else:
            plan.append(_PlannedCell(cell.source, "lesson", current))
    return plan, list(results.values()), names


def _error_of(cell: nbformat.NotebookNode) -> dict | None:
    return next((output for output in cell.get("outputs", []) if output.get("output_type") == "error"), None)


def _stdout_of(cell: nbformat.NotebookNode) -> str:
    outputs = cell.get("outputs", [])
    return "".join(output.get("text", "") for output in outputs if output.get("output_type") == "stream")


def _student_line(error: dict, student_cells: dict[int, tuple[str, str]]) -> str:
    """Where in the student's own cells the error was raised (the innermost such frame), or ""."""
    traceback = ANSI_ESCAPE.sub("", "\n".join(error.get("traceback", [])))
    where = ""
    for match in STUDENT_FRAME.finditer(traceback):
        count, line = int(match.group("count")), int(match.group("line"))
        if count in student_cells:
            number, source = student_cells[count]
            lines = source.splitlines()
            code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            where = f" at line {line} of your exercise {number} cell: `{code}`"
    return where


def _judge_check(result: ExerciseResult, cell: nbformat.NotebookNode, names: list[str],
                 student_cells: dict[int, tuple[str, str]]) -> None:
    """Set an exercise's result from what its self-check cell did."""
    error = _error_of(cell)
    if error is None:
        if "✅" in _stdout_of(cell):
            result.status, result.message = "pass", "correct"
        else:
            result.status, result.message = "error", "the self-check printed no verdict"
        return
    ename, evalue = error.get("ename", ""), error.get("evalue", "")
    missing_name = re.match(r"name '(\w+)' is not defined", evalue) if ename == "NameError" else None
    if ename == "ExerciseNotDone":
        result.status, result.message = "not done", evalue
    elif ename == "ExerciseCodeRaised":
        result.status, result.message = "error", evalue
    elif ename in FAILED_CHECK_ERRORS:
        result.status, result.message = "fail", evalue
    elif missing_name and missing_name.group(1) in names:
        result.status = "missing"
        result.message = (f"the self-check calls `{missing_name.group(1)}`, which your notebook does not define "
                          "(renamed or deleted?)")
    else:
        hint = (" (only exercise cells are graded: define helpers inside the exercise cell)"
                if ename == "NameError" else "")
        result.status = "error"
        result.message = f"{ename}: {evalue}{_student_line(error, student_cells)}{hint}"


# Lesson 7 trains its model between exercises 7.3 and 7.4; no check depends on how well it is trained, so the
# grader trains one epoch instead of 150 (the lesson reads VAE_COURSE_EPOCHS).
GRADING_EPOCHS = "1"


def _kernel_environment(threads: int) -> dict[str, str]:
    """The kernel's environment: its share of the CPUs, figures drawn without a screen, the shortest training."""
    return {**os.environ, THREADS_ENV_VAR: str(threads), "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "VAE_COURSE_EPOCHS": GRADING_EPOCHS}


def _run_plan(plan: list[_PlannedCell], results: dict[str, ExerciseResult], names: dict[str, list[str]],
              time_limit_s: float, threads: int) -> str:
    """Run the planned cells in a fresh kernel in a scratch folder, filling ``results``; return the
    notebook-level problem ("" when the run went to its end)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell.source) for cell in plan])
    deadline = time.monotonic() + time_limit_s
    scratch = Path(tempfile.mkdtemp(prefix="vae-course-grade-"))
    client = NotebookClient(notebook, kernel_name="python3", allow_errors=True, record_timing=False,
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())))
    student_cells: dict[int, tuple[str, str]] = {}
    problem = ""
    index = 0
    try:
        # The kernel's own stderr (start-up warnings) would clutter the instructor's terminal; what the
        # student's code prints reaches the cell outputs through the kernel's messages, not this stream.
        with client.setup_kernel(env=_kernel_environment(threads), cwd=str(scratch), stderr=subprocess.DEVNULL):
            for index, (planned, cell) in enumerate(zip(plan, notebook.cells, strict=True)):
                if time.monotonic() >= deadline:
                    raise CellTimeoutError("time limit")
                client.execute_cell(cell, index)
                if planned.role == "exercise":
                    student_cells[cell.execution_count] = (planned.exercise, planned.source)
                    error = _error_of(cell)
                    result = results[planned.exercise]
                    if error is not None and result.status != "missing":
                        result.status = "error"
                        evalue = IPYTHON_CELL_FILE.sub("", error.get("evalue", ""))
                        result.message = (f"your exercise cell raised {error.get('ename')}: {evalue}"
                                          f"{_student_line(error, student_cells)}")
                elif planned.role == "check" and results[planned.exercise].status == "not graded":
                    _judge_check(results[planned.exercise], cell, names[planned.exercise], student_cells)
    except (CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as error:
        where = plan[index].exercise
        place = f"at exercise {where}" if where else "before the first exercise"
        if isinstance(error, CellTimeoutError):
            problem = f"time limit of {time_limit_s:g} s reached {place} (an endless loop?)"
        elif isinstance(error, DeadKernelError):
            problem = f"kernel died {place} (the code exited Python or ran out of memory)"
        else:
            problem = f"the kernel failed {place}: {error}"
        if where and results[where].status == "not graded":
            results[where].status, results[where].message = "error", problem
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for result in results.values():
        if result.status == "not graded":
            result.message = f"not graded: {problem}" if problem else "not graded"
    return problem


def grade_notebook(student: str, path: Path, display_path: str, expected_lesson: int | None = None,
                   time_limit_s: float = DEFAULT_TIME_LIMIT_S, threads: int = 1) -> NotebookResult:
    """Grade one submitted notebook; every failure is a result, never an exception."""
    started = time.monotonic()
    outcome = NotebookResult(student=student, notebook=display_path)
    try:
        submission = read_submission(path)
        lesson = identify_lesson(submission)
        lessons = lessons_by_number()
        if lesson is None or lesson not in lessons:
            raise NotGradable("not a notebook of this course (no lesson metadata and no exercise headers)")
        if expected_lesson is not None and lesson != expected_lesson:
            raise NotGradable(f"not a notebook of lesson {expected_lesson} (it is lesson {lesson}'s)")
        outcome.lesson = lesson
        plan, exercises, names = plan_grading(lessons[lesson], submission)
        outcome.exercises = exercises
        outcome.problem = _run_plan(plan, {r.number: r for r in exercises}, names, time_limit_s, threads)
    except NotGradable as error:
        outcome.problem = str(error)
    outcome.seconds = time.monotonic() - started
    return outcome


def grade_all(submissions: Path, expected_lesson: int | None = None, workers: int | None = None,
              time_limit_s: float = DEFAULT_TIME_LIMIT_S, progress: bool = True) -> list[NotebookResult]:
    """Grade every submitted notebook on ``workers`` processes (default: the usable CPUs), with a progress
    bar; each kernel gets an equal share of the CPUs. Results come back in submission order."""
    found = find_submissions(submissions)
    if not found:
        return []
    workers = max(1, min(workers or usable_cpus(), len(found)))
    threads = max(1, usable_cpus() // workers)
    base = submissions if submissions.is_dir() else submissions.parent
    jobs = [(student, path, path.relative_to(base).as_posix(), expected_lesson, time_limit_s, threads)
            for student, path in found]
    results: list[NotebookResult | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(grade_notebook, *job): position for position, job in enumerate(jobs)}
        for future in tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                           disable=not progress):
            results[futures[future]] = future.result()
    return [result for result in results if result is not None]


def exercise_columns(results: list[NotebookResult]) -> list[str]:
    """Every exercise number seen, in lesson order (1.1, 1.2, …, 2.1, …)."""
    numbers = {exercise.number for result in results for exercise in result.exercises}
    return sorted(numbers, key=lambda n: tuple(int(part) for part in n.split(".")))


def write_gradebook(results: list[NotebookResult], path: Path) -> None:
    """One row per notebook: student, lesson, notebook, one column per exercise, passed, out of, note."""
    columns = exercise_columns(results)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "lesson", "notebook", *columns, "passed", "out_of", "note"])
        for result in sorted(results, key=lambda r: (r.student, r.lesson or 0, r.notebook)):
            status = {exercise.number: exercise.status for exercise in result.exercises}
            writer.writerow([result.student, result.lesson or "", result.notebook,
                             *(status.get(number, "") for number in columns),
                             result.passed, len(result.exercises), result.problem])


STATUS_MARK = {"pass": "✅ correct", "fail": "❌ the check failed", "not done": "⏳ not done yet",
               "error": "⚠️ your code raised an error", "missing": "❓ missing", "not graded": "⏹ not graded"}


def feedback_markdown(student: str, results: list[NotebookResult]) -> str:
    """A student's feedback: per notebook, per exercise, the result and what the check or the code said."""
    lines = [f"# Feedback for {student}", ""]
    for result in results:
        heading = f"Lesson {result.lesson}" if result.lesson else "Notebook"
        lines += [f"## {heading}: `{result.notebook}`", ""]
        if result.exercises:
            lines += [f"**{result.passed} of {len(result.exercises)} exercises correct.**", ""]
        if result.problem:
            lines += [f"**Grading note:** {result.problem}", ""]
        for exercise in result.exercises:
            lines += [f"### Exercise {exercise.number}: {exercise.title} — {STATUS_MARK[exercise.status]}", ""]
            if exercise.status != "pass" and exercise.message:
                lines += ["```text", exercise.message.strip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"


def write_feedback(results: list[NotebookResult], folder: Path) -> list[Path]:
    """One Markdown file per student in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[NotebookResult]] = {}
    for result in results:
        by_student.setdefault(result.student, []).append(result)
    written = []
    for student, own in sorted(by_student.items()):
        path = folder / f"{_safe_file_name(student)}.md"
        path.write_text(feedback_markdown(student, own), encoding="utf-8")
        written.append(path)
    return written


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def summary_text(results: list[NotebookResult]) -> str:
    """Per exercise, how many notebooks passed it and how the others ended: what the class found hard."""
    students = len({r.student for r in results})
    lines = [f"{len(results)} {_plural(len(results), 'notebook')} from {students} {_plural(students, 'student')}"]
    columns = exercise_columns(results)
    if columns:
        lines.append(f"{'exercise':<10}" + "".join(f"{status:>12}" for status in STATUSES))
        for number in columns:
            counts = Counter(e.status for r in results for e in r.exercises if e.number == number)
            lines.append(f"{number:<10}" + "".join(f"{counts[status]:>12}" for status in STATUSES))
    problems = [r for r in results if r.problem]
    if problems:
        lines.append(f"{len(problems)} {_plural(len(problems), 'notebook')} with a grading note:")
        lines += [f"  {r.student} ({r.notebook}): {r.problem}" for r in problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="a notebook, or a folder of notebooks and student folders")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where to write the gradebook and feedback")
    parser.add_argument("--lesson", type=int, help="grade only notebooks of this lesson; others get a note")
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: usable CPUs)")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S,
                        help=f"seconds per notebook, kernel start included (default {DEFAULT_TIME_LIMIT_S})")
    args = parser.parse_args(argv)
    submissions, out = args.submissions.resolve(), args.out.resolve()
    if not submissions.exists():
        parser.error(f"{args.submissions}: no such file or folder")
    if out == submissions or out.is_relative_to(submissions if submissions.is_dir() else submissions.parent / "\0"):
        parser.error("--out must not be inside the submissions: the grader never writes there")
    results = grade_all(submissions, args.lesson, args.workers, args.time_limit)
    if not results:
        print(f"no notebooks (*.ipynb) found in {args.submissions}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(results, out / "gradebook.csv")
    feedback = write_feedback(results, out / "feedback")
    print(summary_text(results))
    print(f"wrote {out / 'gradebook.csv'} and {len(feedback)} feedback files in {out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
