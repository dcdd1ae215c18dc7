#!/usr/bin/env python3
"""What each lesson asks of a student's server: wall time and the kernel's peak memory (resident set),
running each solution notebook top to bottom in a fresh kernel, one at a time. Prints figures; asserts nothing.
Used to size a JupyterHub user's CPU and memory limits (README, "Teaching from a JupyterHub").
Run with ``.venv/bin/python -m benchmarks.lesson_footprint [lesson numbers…]``."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tools.build_notebooks import SOLUTIONS_DIR
from utils.threads import usable_cpus

# Runs in a child process, so that the only child it waits for is the kernel: RUSAGE_CHILDREN's ru_maxrss
# (kibibytes on Linux) is then the kernel's peak resident memory.
RUN_ONE = textwrap.dedent("""
    import json, resource, sys, time
    import nbformat
    from nbclient import NotebookClient
    path = sys.argv[1]
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": sys.argv[2]}}).execute()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
""")


def measure(notebook: Path) -> dict:
    """Wall time (kernel start included) and the kernel's peak resident memory in MiB."""
    output = subprocess.run([sys.executable, "-c", RUN_ONE, str(notebook), str(notebook.parent)],
                            capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    wanted = {int(a) for a in argv}
    notebooks = [p for p in sorted(SOLUTIONS_DIR.glob("*.ipynb")) if not wanted or int(p.name[:2]) in wanted]
    print(f"each solution notebook in a fresh kernel, {usable_cpus()} usable CPUs")
    print(f"{'notebook':<40} {'seconds':>8} {'peak memory (MiB)':>18}")
    for notebook in notebooks:
        figures = measure(notebook)
        print(f"{notebook.stem:<40} {figures['seconds']:>8.1f} {figures['peak_mib']:>18.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
