#!/usr/bin/env python3
"""Sharing a machine: lesson 7's training (10 epochs, ``tools/train_checkpoint.py``) and the SIMP solver
(8 designs of 64×32, 100 iterations each), run alone and as 2 and 4 concurrent copies, with the course's
thread settings and with libgomp's default spin count (what a plain ``import torch`` gets). Prints, for each,
the time of the slowest copy and the ratio to N runs one after the other (goal ≤ 1.25: sharing costs at most
25 % over taking turns). Asserts nothing. ``--taskset 0`` runs every copy under ``taskset -c 0`` (one CPU, as
a container CPU limit of 1 would). Run: ``.venv/bin/python -m benchmarks.shared_machine [--taskset 0]``."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLVER_CODE = ("import utils\nfrom utils.settings import NELX, NELY\n"
               "from utils.topopt import cantilever, optimize\nfor k in range(8):\n"
               "    optimize(cantilever(NELX, NELY, 0.4, 4.0 * k, -90.0), tolerance=0.0)")
SETTINGS = {"course settings (GOMP_SPINCOUNT=1000)": "1000", "libgomp default (GOMP_SPINCOUNT=300000)": "300000"}


def command(workload: str, folder: str, copy: int) -> list[str]:
    if workload == "training":
        return [sys.executable, str(REPO_ROOT / "tools" / "train_checkpoint.py"), "--epochs", "10",
                "--out", str(Path(folder) / f"copy{copy}.pt")]
    return [sys.executable, "-c", SOLVER_CODE]


def run_copies(workload: str, copies: int, spin_count: str, cpus: str | None) -> float:
    """Wall time until the last of ``copies`` concurrent processes ends."""
    env = {**os.environ, "GOMP_SPINCOUNT": spin_count}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        processes = [subprocess.Popen((["taskset", "-c", cpus] if cpus else []) + command(workload, folder, k),
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for k in range(copies)]
        codes = [process.wait() for process in processes]
        elapsed = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"{workload}: a copy failed (exit codes {codes})")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taskset", metavar="CPUS", help="run every copy under taskset -c CPUS")
    parser.add_argument("--copies", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args(argv)
    where = f"under taskset -c {args.taskset}" if args.taskset else f"on {os.cpu_count()} cores"
    columns = "".join(f"{f'{n} copies s (ratio)':>22}" for n in args.copies)
    print(f"{'workload':<10} {'setting':<42} {'alone s':>8}{columns}")
    for workload in ("training", "solver"):
        for name, spin_count in SETTINGS.items():
            alone = run_copies(workload, 1, spin_count, args.taskset)
            cells = []
            for copies in args.copies:
                together = run_copies(workload, copies, spin_count, args.taskset)
                cells.append(f"{together:>13.1f} ({together / (copies * alone):.2f})")
            print(f"{workload:<10} {name:<42} {alone:>8.1f}" + "".join(f"{c:>22}" for c in cells), flush=True)
    print(f"measured {where}; ratio = time of N copies together / (N × time alone); goal ≤ 1.25")


if __name__ == "__main__":
    main()
