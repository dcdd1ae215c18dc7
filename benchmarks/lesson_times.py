#!/usr/bin/env python3
"""How long a lesson takes to run, as a student meets it: each solution notebook executed top to bottom in a fresh
kernel (``tools.build_site.execute_cached``, the site's and CI's own execution), on the machine as it is ("idle") and
beside busy processes that this script starts itself (each a Python loop that never sleeps: three of them on two
cores is a loaded JupyterHub), for the training path and the quick path (``VAE_COURSE_QUICK=1``: lessons 7 and 8
load their shipped models instead of training). Prints figures; asserts nothing.

Each run becomes one row of ``docs/results/lesson_times.md`` (kernel start included; the 1-minute load average read
just before the busy processes start and the kernel starts, so other work on the machine shows). A later run replaces
the rows it measures and keeps the others, so the slow measurements can be split into short runs. The lessons' and
the README's stated run times are read from that file by ``tests/test_lesson_times.py``.

Run: ``.venv/bin/python -m benchmarks.lesson_times 7 8 --paths full quick --busy 0 3`` (lesson numbers; no numbers:
every lesson, training path, idle). ``--keep DIR`` also writes each executed notebook there, to look at its figures.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

from tools import build_site
from tools.build_notebooks import LESSONS_DIR, build_lesson, lesson_number
from utils.paths import REPO_ROOT
from utils.settings import COURSE_ENVIRONMENT_PREFIX, QUICK_LESSONS
from utils.threads import usable_cpus

RESULTS_FILE = REPO_ROOT / "docs" / "results" / "lesson_times.md"
QUICK_VARIABLE = f"{COURSE_ENVIRONMENT_PREFIX}QUICK"
PATHS = {"full": "default", "quick": "QUICK = True"}
# A busy process: a Python loop that never sleeps or waits.
BUSY_CODE = "while True:\n    pass"
TABLE_HEADER = ("| lesson | path | busy processes | load average at start | seconds |\n"
                "| ---: | --- | ---: | ---: | ---: |")
ROW = re.compile(r"^\| (\d+) \| ([^|]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$")


@dataclass(frozen=True)
class Timing:
    """One execution of one lesson's solution notebook."""

    lesson: int
    path: str  # "full" or "quick"
    busy: int  # busy processes started beside it
    load_average: float  # 1-minute load average just before it started
    seconds: float

    def key(self) -> tuple[int, str, int]:
        return self.lesson, self.path, self.busy

    def markdown(self) -> str:
        return f"| {self.lesson} | {PATHS[self.path]} | {self.busy} | {self.load_average:.2f} | {self.seconds:.0f} |"


def read_timings(text: str) -> dict[tuple[int, str, int], Timing]:
    """The rows of a results file written by :func:`results_page`, by (lesson, path, busy processes)."""
    names = {label: name for name, label in PATHS.items()}
    timings = {}
    for line in text.splitlines():
        match = ROW.match(line.strip())
        if match:
            lesson, label, busy, load, seconds = match.groups()
            timing = Timing(int(lesson), names[label.strip()], int(busy), float(load), float(seconds))
            timings[timing.key()] = timing
    return timings


def minutes_range(low_seconds: float, high_seconds: float) -> str:
    """A run time as the lessons and the README state it: "2.5–9.1 min" (minutes to one decimal), or "about 1.0 min"
    when both ends round alike."""
    low, high = f"{low_seconds / 60:.1f}", f"{high_seconds / 60:.1f}"
    return f"about {low} min" if low == high else f"{low}–{high} min"


def stated_range(timings: dict[tuple[int, str, int], Timing], lesson: int, path: str) -> str:
    """What the lessons and the README state for one lesson and path: from the idle run to the run beside the most
    busy processes measured, as :func:`minutes_range`. ``KeyError`` when either was not measured."""
    busiest = max(busy for (number, kind, busy) in timings if number == lesson and kind == path)
    if busiest == 0:
        raise KeyError(f"lesson {lesson}, {path} path: no run beside busy processes in {RESULTS_FILE.name}")
    return minutes_range(timings[lesson, path, 0].seconds, timings[lesson, path, busiest].seconds)


def machine() -> str:
    """The machine's processor, cores and the thread settings a kernel gets (utils sets them on import)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    return (f"{cpu}; {os.cpu_count()} cores, {usable_cpus()} usable by a kernel; torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads (utils.threads: the usable CPUs); GOMP_SPINCOUNT="
            f"{os.environ.get('GOMP_SPINCOUNT', 'unset')}; Python {platform.python_version()}")


def results_page(timings: dict[tuple[int, str, int], Timing], description: str) -> str:
    rows = [timings[key].markdown() for key in sorted(timings)]
    return "\n".join([
        "# Lesson run times, idle and on a loaded machine", "",
        "Each lesson's solution notebook executed top to bottom in a fresh kernel (kernel start included) by "
        "`benchmarks/lesson_times.py`, through the site's own execution (`tools.build_site.execute_cached`). "
        "*Busy processes*: Python loops that never sleep, started by the benchmark beside the lesson (three on two "
        "cores is a loaded JupyterHub); 0 is the machine as it was, and the load average read just before the "
        "lesson started shows what else ran on it. *Path*: lessons 7 and 8 train their own models by default; "
        "`QUICK = True` (or `VAE_COURSE_QUICK=1`) loads the shipped models instead. The lessons and the README "
        "state lessons 7 and 8's times from this table (`tests/test_lesson_times.py`).", "",
        f"Machine: {description}.", "", TABLE_HEADER, *rows, ""])


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that keep a CPU busy each, for as long as the block runs."""
    processes = [subprocess.Popen([sys.executable, "-c", BUSY_CODE]) for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


@contextmanager
def quick_path(on: bool) -> Iterator[None]:
    """The kernel inherits this process's environment: VAE_COURSE_QUICK=1 for the quick path, unset otherwise."""
    before = os.environ.pop(QUICK_VARIABLE, None)
    if on:
        os.environ[QUICK_VARIABLE] = "1"
    try:
        yield
    finally:
        os.environ.pop(QUICK_VARIABLE, None)
        if before is not None:
            os.environ[QUICK_VARIABLE] = before


def time_lesson(source: Path, path: str, busy: int, keep: Path | None) -> Timing:
    """Execute one lesson's solution notebook once, in a throwaway cache, and time it."""
    solution = build_lesson(source).solution
    with quick_path(path == "quick"), tempfile.TemporaryDirectory() as cache, busy_processes(busy):
        load_average = os.getloadavg()[0]
        if busy:
            time.sleep(2.0)  # let the busy processes start before the clock does
        executed = build_site.execute_cached(solution, "run", cache_dir=Path(cache), refresh=True)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(executed.notebook, keep / f"{source.stem}-{path}-busy{busy}.ipynb")
    return Timing(lesson_number(source), path, busy, load_average, executed.seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", type=int, nargs="*", help="lesson numbers (default: every lesson)")
    parser.add_argument("--paths", nargs="+", choices=sorted(PATHS), default=["full"])
    parser.add_argument("--busy", type=int, nargs="+", default=[0], help="busy processes beside the lesson")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    parser.add_argument("--keep", type=Path, help="write each executed notebook into this folder")
    args = parser.parse_args(argv)
    # A `timeout` (SIGTERM) unwinds like an error: the busy processes are killed and the kernel shut down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    sources = [s for s in sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))
               if not args.lessons or lesson_number(s) in args.lessons]
    timings = read_timings(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    description = machine()
    print(f"machine: {description}")
    print(TABLE_HEADER.splitlines()[0])
    for source in sources:
        for path in args.paths:
            if path == "quick" and lesson_number(source) not in QUICK_LESSONS:
                continue
            for busy in args.busy:
                timing = time_lesson(source, path, busy, args.keep)
                print(timing.markdown(), flush=True)
                timings[timing.key()] = timing
                args.out.write_text(results_page(timings, description), encoding="utf-8")
    print(f"wrote {args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out}")


if __name__ == "__main__":
    main()
