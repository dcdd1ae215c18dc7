#!/usr/bin/env python3
"""Speed of the SIMP solver: ms per iteration and designs per minute on three meshes, and the speed-up of
the banded Cholesky over a plain ``scipy.sparse.linalg.spsolve`` of the assembled matrix (same process,
same iterations). Prints figures; asserts nothing about time. Run with ``make benchmark``."""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg

from utils.topopt import FiniteElementModel, cantilever, optimize

MESHES = [(60, 20), (64, 32), (64, 64)]
ITERATIONS = 100  # the dataset's iteration cap: one design = one run


class SparseDirectModel(FiniteElementModel):
    """The baseline: assemble a sparse matrix every iteration and call spsolve (SuperLU), as top88 does."""

    def solve(self, young: np.ndarray, force: np.ndarray) -> np.ndarray:
        displacement = np.zeros_like(force)
        displacement[self.free_dofs] = scipy.sparse.linalg.spsolve(self.sparse_stiffness(young), force[self.free_dofs])
        return displacement


def seconds_per_design(nelx: int, nely: int, model_class: type[FiniteElementModel], repeats: int = 3) -> float:
    """Best of ``repeats`` runs of ITERATIONS iterations (tolerance 0, so every run does all of them)."""
    case = cantilever(nelx, nely, 0.4, load_y=nely / 2, angle_deg=-90.0)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        optimize(case, max_iterations=ITERATIONS, tolerance=0.0, model=model_class(nelx, nely, case.fixed_dofs))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    print(f"SIMP, {ITERATIONS} iterations per design, best of 3, one process")
    print(f"{'mesh':>8} {'banded ms/it':>13} {'designs/min':>12} {'spsolve ms/it':>14} {'speed-up':>9}")
    for nelx, nely in MESHES:
        banded = seconds_per_design(nelx, nely, FiniteElementModel)
        baseline = seconds_per_design(nelx, nely, SparseDirectModel)
        print(f"{nelx:>4}×{nely:<3} {1e3 * banded / ITERATIONS:>13.2f} {60 / banded:>12.0f} "
              f"{1e3 * baseline / ITERATIONS:>14.2f} {baseline / banded:>8.1f}×")


if __name__ == "__main__":
    main()
