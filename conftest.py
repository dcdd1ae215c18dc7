"""Repository-wide pytest hooks: a per-lesson execution-time table at the end of every run."""
from __future__ import annotations

from collections import defaultdict

import pytest

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The time of each lesson's execution (tests/test_lesson_execution.py), or of every cell of a notebook that
    nbval runs (``pytest --nbval-lax solutions/NN_name.ipynb``), added up per notebook."""
    path, _, test = report.nodeid.partition("::")
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration
    elif path.endswith("test_lesson_execution.py") and report.when == "call":
        _notebook_seconds[test.partition("[")[2].rstrip("]")] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the execution time of each notebook (and their total) after the test summary."""
    if not _notebook_seconds:
        return
    terminalreporter.section("lesson execution times")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):8.1f} s  total")
