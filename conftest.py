"""Repository-wide pytest hooks: a per-notebook execution-time table at the end of every run."""
from __future__ import annotations

from collections import defaultdict

import pytest

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the time of every cell of each notebook run by nbval."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the execution time of each notebook (and their total) after the test summary."""
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook execution times")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):8.1f} s  total")
