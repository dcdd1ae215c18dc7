#!/usr/bin/env python3
"""Fairness of the grader between concurrent sandboxes: how much a notebook that forks to its process limit (each
process in a session of its own, every one spinning on the CPU) slows honest notebooks graded beside it. Two
workers grade one hostile notebook and three honest lesson-1 solutions; the honest notebooks' median seconds are
compared with the same run where the hostile notebook only sleeps. ``--unpinned`` gives every worker all the CPUs
(the grader before it pinned each worker and its sandboxes to a share of them). Prints figures; asserts nothing
about time. Run with ``.venv/bin/python -m benchmarks.grading_fairness [--unpinned]``."""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
from pathlib import Path

import nbformat

from tools.build_notebooks import SOLUTIONS_DIR
from tools.grading import run
from tools.grading.run import GradingOptions, grade_all

LESSON_1 = "01_latent_variable_models.ipynb"
HONEST = 3
TIME_LIMIT_S = 45
FORK_BOMB = ("import os\nfor _ in range(500):\n    try:\n        if os.fork() == 0:\n"
             "            os.setsid()\n            break\n    except OSError:\n        break\nwhile True:\n    pass")
SLEEPER = "import time\ntime.sleep(600)"


def _with_first_exercise(code: str) -> nbformat.NotebookNode:
    notebook = copy.deepcopy(nbformat.read(SOLUTIONS_DIR / LESSON_1, as_version=4))
    cell = next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("# Exercise 1.1:"))
    cell.source += "\n" + code
    return notebook


def honest_seconds(hostile_code: str) -> list[float]:
    """Seconds each honest notebook took, graded on two workers beside a notebook running ``hostile_code``."""
    with tempfile.TemporaryDirectory() as folder:
        nbformat.write(_with_first_exercise(hostile_code), Path(folder) / "a_hostile.ipynb")
        for index in range(HONEST):
            nbformat.write(nbformat.read(SOLUTIONS_DIR / LESSON_1, as_version=4), Path(folder) / f"honest{index}.ipynb")
        results = grade_all(Path(folder), workers=2, options=GradingOptions(time_limit_s=TIME_LIMIT_S),
                            progress=False)
    honest = [r for r in results if r.student.startswith("honest")]
    if any(r.passed != len(r.exercises) for r in honest):
        raise SystemExit("an honest notebook did not pass everything: check the grader")
    return [r.seconds for r in honest]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unpinned", action="store_true", help="every worker on all the CPUs")
    args = parser.parse_args(argv)
    if args.unpinned:
        everything = set(os.sched_getaffinity(0))
        run.cpu_shares = lambda workers: [everything] * workers
    quiet, bombed = honest_seconds(SLEEPER), honest_seconds(FORK_BOMB)
    print(f"{'unpinned' if args.unpinned else 'pinned'} workers, {len(os.sched_getaffinity(0))} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"honest lesson-1 notebooks beside a sleeping notebook: median {statistics.median(quiet):.1f} s "
          f"({', '.join(f'{s:.1f}' for s in quiet)})")
    print(f"honest lesson-1 notebooks beside a fork bomb:         median {statistics.median(bombed):.1f} s "
          f"({', '.join(f'{s:.1f}' for s in bombed)})")
    print(f"slowdown: {statistics.median(bombed) / statistics.median(quiet):.2f}×")


if __name__ == "__main__":
    main()
