"""Grade students' exercise notebooks with the course's own self-checks, each in a sandbox (instructor tool).

``python -m tools.grade SUBMISSIONS [--out grades] [--lesson N] [--workers K] [--time-limit S] [--memory GiB]
[--no-sandbox] [--class-table]`` (``make grade SUBMISSIONS=dir``); ``python -m tools.grade --class-table [--out
grades]`` (``make class-table``) only merges the lessons' gradebooks into ``class.csv``.
SUBMISSIONS is one notebook, or a folder holding one notebook
per student (the file's stem names the student) and/or one folder per student (the folder names the student;
every notebook inside is graded, whatever its file name). Nothing under SUBMISSIONS is written.

Each notebook runs in a bubblewrap sandbox of its own (no network, no view of the course's lessons, solutions,
tools, the submissions or the grades, limits on memory, processes, file size and CPU time); its verdicts come
from the grader's runner, never from what the notebook prints. docs/grading.md explains the sandbox, the
statuses and what a determined student can still do.

Each exercise gets one result:

=========== ======================================================================================
pass        the check ran and accepted the answer
fail        the check rejected the answer (its message is in the feedback), or the exercise used the
            course's own implementation in ``utils``
not done    the exercise still raises NotImplementedError
error       the student's code raised (the feedback names the exception and the student's line)
missing     the exercise cell was deleted, or the function it must define is not there
tampered    the notebook's process broke the grader's protocol (a malformed, misplaced or forged record), or,
            for the exercises still checked inside it, changed the checker or a library it relies on: not
            counted (docs/grading.md)
not graded  grading stopped before this exercise (time limit, Python died, an early end), or the file was
            not a readable notebook
=========== ======================================================================================

Outputs in ``--out``: one folder per lesson, ``lesson-NN/``, with its ``gradebook.csv`` (statuses, points, score,
note, review: lines flagged for the instructor's eye, pasted copies of the course's code among them),
``overrides.csv`` (the instructor's), ``answers.md`` (the written answers, question by question),
``feedback/<student>.md``, ``summary.txt``, and the ``moodle.csv`` and ``canvas.csv`` exports
(tools/grading/gradebook.py). Grading a lesson again replaces the rows of the students graded again and keeps the
others. ``--class-table`` also writes ``class.csv``, every lesson's score per student.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from tools.build_notebooks import build_lesson
from tools.grading.copies import flag_pasted_copies
from tools.grading.gradebook import lesson_folder, write_class_table, write_lesson_gradebook
from tools.grading.memory_cgroup import memory_cgroups_available
from tools.grading.plan import NotGradable, find_submissions, lessons_by_number, read_submission
from tools.grading.report import summary_text
from tools.grading.results import NotebookResult
from tools.grading.run import DEFAULT_TIME_LIMIT_S, GradingOptions, grade_all
from tools.grading.sandbox import GIB, Limits, SandboxUnavailable

UNCONFINED_WARNING = ("warning: --no-sandbox: students' code runs with your rights, your files and your network; "
                      "grade only submissions you trust this way")


def memory_bound_text(limits: Limits, cgroup: bool) -> str:
    """What bounds a notebook's memory in this run, for the instructor's terminal."""
    if cgroup:
        return (f"memory: each notebook's processes and its tmpfs folders together hold at most "
                f"{limits.cgroup_bytes / GIB:.2f} GiB (a memory cgroup each)")
    return (f"memory: {limits.memory_bytes / GIB:g} GiB per process (no memory cgroup can be made here: "
            "docs/grading.md, 'What remains out of scope')")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def read_notebooks(results: list[NotebookResult], base: Path) -> dict[str, nbformat.NotebookNode]:
    """The submitted notebooks that can be read, by their path in the results (for the static looks after grading:
    pasted copies, written answers; nothing of them runs)."""
    notebooks = {}
    for result in results:
        try:
            notebooks[result.notebook] = read_submission(base / result.notebook)
        except (NotGradable, OSError):
            continue
    return notebooks


def write_gradebooks(results: list[NotebookResult], out: Path, base: Path) -> list[str]:
    """Flag pasted copies, then merge each lesson's results into its folder; one line per lesson written."""
    notebooks = read_notebooks(results, base)
    sources = lessons_by_number()
    by_lesson: dict[int | None, list[NotebookResult]] = {}
    for result in results:
        lesson = result.lesson if result.lesson in sources else None
        by_lesson.setdefault(lesson, []).append(result)
    written = []
    for lesson, own in sorted(by_lesson.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        if lesson is not None:
            built = build_lesson(sources[lesson])
            for result in own:
                if result.notebook in notebooks and result.exercises:
                    flag_pasted_copies(result, notebooks[result.notebook], built)
        written.append(str(write_lesson_gradebook(own, lesson_folder(out, lesson), lesson, notebooks)))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, nargs="?",
                        help="a notebook, or a folder of notebooks and student folders")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where to write the gradebook and feedback")
    parser.add_argument("--lesson", type=int, help="grade only notebooks of this lesson; others get a note")
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: usable CPUs)")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S,
                        help=f"seconds per notebook, sandbox start included (default {DEFAULT_TIME_LIMIT_S})")
    parser.add_argument("--memory", type=float, default=Limits().memory_bytes / GIB,
                        help="GiB of memory each notebook may allocate (default %(default)g)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run students' code unconfined, with your rights (where bwrap is unavailable)")
    parser.add_argument("--class-table", action="store_true",
                        help="merge every lesson's gradebook in --out into class.csv (alone: without grading)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if args.submissions is None:
        if not args.class_table:
            parser.error("give the submissions to grade, or --class-table to merge the gradebooks in --out")
        print(f"wrote {write_class_table(out)}")
        return 0
    submissions = args.submissions.resolve()
    if not submissions.exists():
        parser.error(f"{args.submissions}: no such file or folder")
    if args.time_limit <= 0 or args.memory <= 0:
        parser.error("--time-limit and --memory must be positive")
    if _inside(out, submissions if submissions.is_dir() else submissions.parent) or _inside(submissions, out):
        parser.error("--out must not be inside the submissions (nor hold them): the grader never writes there")
    if args.no_sandbox:
        print(UNCONFINED_WARNING, file=sys.stderr)
    limits = Limits(memory_bytes=int(args.memory * GIB), cpu_seconds=int(args.time_limit) + 60)
    options = GradingOptions(time_limit_s=args.time_limit, limits=limits, sandboxed=not args.no_sandbox)
    print(memory_bound_text(limits, memory_cgroups_available()), file=sys.stderr)
    try:
        results = grade_all(submissions, args.lesson, args.workers, options)
    except SandboxUnavailable as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    if not results:
        print(f"no notebooks (*.ipynb) found in {args.submissions}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    try:
        written = write_gradebooks(results, out, submissions if submissions.is_dir() else submissions.parent)
    except ValueError as error:  # a malformed overrides.csv: nothing of that lesson was written
        print(f"grade: {error}", file=sys.stderr)
        return 2
    print(summary_text(results, find_submissions(submissions).skipped))
    print("wrote\n  " + "\n  ".join(written))
    if args.class_table:
        print(f"wrote {write_class_table(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
