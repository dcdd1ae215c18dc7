"""Generating designs for given problems with lesson 8's conditional models: decoded at the prior's mean, smoothed,
the best of k draws, and warm-started SIMP from them. Judging them is utils.judging; laying the figures out in
tables is utils.tables. Used by lesson 8 and tools/evaluate_cvae.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from utils.cvae import ConditionalVAE, problem_conditions
from utils.judging import Judge, best_of_k
from utils.settings import DATASET_SOLVER
from utils.topopt import DensityFilter, warm_start

# Warm-started SIMP after generation: this many iterations (exactly; one finite-element solve each).
SIMP_ITERATIONS = 10


def smoothed(designs: np.ndarray, rmin: float = DATASET_SOLVER.rmin) -> np.ndarray:
    """Designs ``(..., nely, nelx)`` averaged over lesson 6's hat filter of radius ``rmin`` (weights
    max(0, rmin − distance), normalised by the weights that fall inside the domain), the solver's own length scale.
    Thresholded afterwards, a thin member drawn near 0.5 is decided over its neighbourhood rather than pixel by
    pixel, so it is less often cut into pieces."""
    designs = np.asarray(designs, dtype=float)
    nely, nelx = designs.shape[-2:]
    hat = DensityFilter(nelx, nely, rmin)
    # The filter numbers element (column ix, row iy) as ix * nely + iy: the transposed design, read row by row.
    flat = np.swapaxes(designs, -1, -2).reshape(-1, nelx * nely)
    filtered = (hat.matrix @ flat.T).T / hat.row_sums
    return np.swapaxes(filtered.reshape(*designs.shape[:-2], nelx, nely), -1, -2)


def warm_started_simp(designs: np.ndarray, judge: Judge, iterations: int = SIMP_ITERATIONS) -> np.ndarray:
    """Exactly ``iterations`` SIMP iterations (the dataset's solver settings) from each design, for its problem."""
    return np.stack([warm_start(d, case, iterations).density
                     for d, case in zip(designs, judge.load_cases, strict=True)])


@dataclass(frozen=True)
class GeneratedDesigns:
    """One model's designs for N problems: decoded at the prior's mean (as is, and :func:`smoothed`), the best of
    k samples at equal volume, and each after ``SIMP_ITERATIONS`` warm-started SIMP iterations; all
    ``(N, nely, nelx)``."""

    decoded: np.ndarray
    decoded_smoothed: np.ndarray
    best_of_k: np.ndarray
    decoded_simp: np.ndarray
    best_of_k_simp: np.ndarray
    samples: int

    def stages(self) -> dict[str, np.ndarray]:
        """The designs of each stage, by the name the tables give it."""
        k, n = self.samples, SIMP_ITERATIONS
        return {"as decoded": self.decoded, "as decoded, smoothed": self.decoded_smoothed,
                f"best of {k}": self.best_of_k, f"as decoded + {n} SIMP its": self.decoded_simp,
                f"best of {k} + {n} SIMP its": self.best_of_k_simp}


def generate_for_problems(model: ConditionalVAE, judge: Judge, samples: int = 16, seed: int = 0,
                          device: torch.device | str = "cpu") -> GeneratedDesigns:
    """Decode, pick the best of ``samples`` draws from p(z | c) (utils.judging.best_of_k, at equal volume), and
    warm-start SIMP from both."""
    conditions = problem_conditions(judge.problems).to(device)
    decoded = model.generate(conditions)[0].cpu().numpy()
    drawn = model.generate(conditions, samples, torch.Generator().manual_seed(seed)).cpu().numpy()
    chosen, _, _ = best_of_k(drawn, judge)
    return GeneratedDesigns(decoded, smoothed(decoded), chosen, warm_started_simp(decoded, judge),
                            warm_started_simp(chosen, judge), samples)
