#!/usr/bin/env python3
"""Throughput of the grader (``make grade``): notebooks per minute on this machine, for submissions of
lessons 1–6 (COPIES solution notebooks of each, so every exercise runs its check). Prints figures; asserts
nothing about time. Run with ``.venv/bin/python benchmarks/grading_throughput.py [--copies 4] [--workers K]``."""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.build_notebooks import SOLUTIONS_DIR  # noqa: E402
from tools.grade import grade_all  # noqa: E402
from utils.threads import usable_cpus  # noqa: E402

LESSONS = range(1, 7)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="submissions per lesson")
    parser.add_argument("--workers", type=int, default=usable_cpus())
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        for lesson in LESSONS:
            source = next(SOLUTIONS_DIR.glob(f"{lesson:02d}_*.ipynb"))
            for copy in range(args.copies):
                shutil.copy(source, Path(folder) / f"student{copy:02d}_lesson{lesson}.ipynb")
        start = time.perf_counter()
        results = grade_all(Path(folder), workers=args.workers, progress=False)
        elapsed = time.perf_counter() - start
    failed = [r for r in results if r.problem or r.passed != len(r.exercises)]
    print(f"grading {len(results)} solution notebooks of lessons 1–6 ({args.copies} per lesson), "
          f"{args.workers} workers, {usable_cpus()} usable CPUs")
    print(f"{'lesson':>6}  {'median s per notebook (kernel start included)':>46}")
    for lesson in LESSONS:
        seconds = [r.seconds for r in results if r.lesson == lesson]
        print(f"{lesson:>6}  {statistics.median(seconds):>46.1f}")
    print(f"total {elapsed:.1f} s: {len(results) / elapsed * 60:.1f} notebooks per minute"
          f"{'' if not failed else f'  ({len(failed)} did not pass everything: check the grader)'}")


if __name__ == "__main__":
    main()
