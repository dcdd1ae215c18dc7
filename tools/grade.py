"""Grade students' exercise notebooks with the course's own self-checks, each in a sandbox (instructor tool).

``python -m tools.grade SUBMISSIONS [--out grades] [--lesson N] [--workers K] [--time-limit S] [--memory GiB]
[--no-sandbox]`` (``make grade SUBMISSIONS=dir``). SUBMISSIONS is one notebook, or a folder holding one notebook
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
tampered    the checker, or a library function it relies on, was changed by the notebook's code, or a
            verdict was forged: not counted
not graded  grading stopped before this exercise (time limit, Python died)
=========== ======================================================================================

Outputs in ``--out``: ``gradebook.csv`` (student, lesson, notebook, one column per exercise, passed, out of,
note, review: lines flagged for the instructor's eye), ``feedback/<student>.md``, and a summary printed at the
end: per exercise, how many passed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.grading.plan import find_submissions
from tools.grading.report import summary_text, write_feedback, write_gradebook
from tools.grading.run import DEFAULT_TIME_LIMIT_S, GradingOptions, grade_all
from tools.grading.sandbox import GIB, Limits, SandboxUnavailable

UNCONFINED_WARNING = ("warning: --no-sandbox: students' code runs with your rights, your files and your network; "
                      "grade only submissions you trust this way")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="a notebook, or a folder of notebooks and student folders")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where to write the gradebook and feedback")
    parser.add_argument("--lesson", type=int, help="grade only notebooks of this lesson; others get a note")
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: usable CPUs)")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S,
                        help=f"seconds per notebook, sandbox start included (default {DEFAULT_TIME_LIMIT_S})")
    parser.add_argument("--memory", type=float, default=Limits().memory_bytes / GIB,
                        help="GiB of memory each notebook may allocate (default %(default)g)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run students' code unconfined, with your rights (where bwrap is unavailable)")
    args = parser.parse_args(argv)
    submissions, out = args.submissions.resolve(), args.out.resolve()
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
    try:
        results = grade_all(submissions, args.lesson, args.workers, options)
    except SandboxUnavailable as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    if not results:
        print(f"no notebooks (*.ipynb) found in {args.submissions}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(results, out / "gradebook.csv")
    feedback = write_feedback(results, out / "feedback")
    print(summary_text(results, find_submissions(submissions).skipped))
    print(f"wrote {out / 'gradebook.csv'} and {len(feedback)} feedback files in {out / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
