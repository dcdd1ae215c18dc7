#!/usr/bin/env python3
"""Throughput of the grader (``make grade``): notebooks per minute on this machine, for submissions of
lessons 1–6 (COPIES solution notebooks of each, so every exercise runs its check), in bubblewrap sandboxes and,
for the sandbox's cost, unconfined. Prints figures; asserts nothing about time. Run with
``.venv/bin/python -m benchmarks.grading_throughput [--copies 4] [--workers K] [--modes sandbox unconfined]``."""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tools.build_notebooks import SOLUTIONS_DIR
from tools.grading.results import NotebookResult
from tools.grading.run import GradingOptions, grade_all
from utils.threads import usable_cpus

LESSONS = range(1, 7)
MODES = {"sandbox": True, "unconfined": False}


def _measure(folder: Path, workers: int, sandboxed: bool) -> tuple[list[NotebookResult], float]:
    start = time.perf_counter()
    results = grade_all(folder, workers=workers, options=GradingOptions(sandboxed=sandboxed), progress=False)
    return results, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="submissions per lesson")
    parser.add_argument("--workers", type=int, default=usable_cpus())
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        for lesson in LESSONS:
            source = next(SOLUTIONS_DIR.glob(f"{lesson:02d}_*.ipynb"))
            for copy in range(args.copies):
                shutil.copy(source, Path(folder) / f"student{copy:02d}_lesson{lesson}.ipynb")
        measured = {mode: _measure(Path(folder), args.workers, MODES[mode]) for mode in args.modes}
    print(f"grading {args.copies * len(LESSONS)} solution notebooks of lessons 1–6 ({args.copies} per lesson), "
          f"{args.workers} workers, {usable_cpus()} usable CPUs")
    print(f"{'lesson':>6}" + "".join(f"  {mode + ': median s per notebook':>34}" for mode in measured))
    for lesson in LESSONS:
        medians = [statistics.median(r.seconds for r in results if r.lesson == lesson)
                   for results, _ in measured.values()]
        print(f"{lesson:>6}" + "".join(f"  {median:>34.1f}" for median in medians))
    for mode, (results, elapsed) in measured.items():
        failed = [r for r in results if r.problem or r.passed != len(r.exercises)]
        print(f"{mode}: total {elapsed:.1f} s, {len(results) / elapsed * 60:.1f} notebooks per minute"
              f"{'' if not failed else f'  ({len(failed)} did not pass everything: check the grader)'}")


if __name__ == "__main__":
    main()
