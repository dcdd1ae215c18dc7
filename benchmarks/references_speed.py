#!/usr/bin/env python3
"""What one independent reference costs (``make references``, studies.references), printed, never asserted: per
problem the wall seconds and iterations of the continued run and of the independent run, and the seconds per
iteration, on the first test problems (one process; the tool runs one per CPU).

Usage: ``python benchmarks/references_speed.py [--problems N]``."""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from studies.references import continued_run, independent_run
from utils.data import load_topology_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=5)
    args = parser.parse_args()
    test = load_topology_dataset().subset("test").take(np.arange(args.problems))
    print(f"{args.problems} test problems, one process; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "CPUs at the start")
    totals = {"continued": [0.0, 0], "independent": [0.0, 0]}
    for i in range(len(test)):
        case = test.load_case(i)
        for name, run in (("continued", lambda c=case, d=test.density[i]: continued_run(c, d.astype(float))),
                          ("independent", lambda c=case: independent_run(c))):
            start = time.perf_counter()
            _, iterations = run()
            seconds = time.perf_counter() - start
            totals[name][0] += seconds
            totals[name][1] += iterations
            print(f"problem {i}: {name:11s} {iterations:4d} iterations {seconds:6.2f} s")
    for name, (seconds, iterations) in totals.items():
        print(f"{name:11s}: {seconds / len(test):.2f} s per problem, {1e3 * seconds / iterations:.2f} ms per iteration")
    per_problem = sum(s for s, _ in totals.values()) / len(test)
    print(f"both runs: {per_problem:.2f} s per problem; 324 problems (validation, test, out of distribution): "
          f"about {324 * per_problem / 60:.0f} min on one process")


if __name__ == "__main__":
    main()
