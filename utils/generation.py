"""Generating designs for given problems with lesson 8's conditional models: decoded at the prior's mean, smoothed,
the best of k draws, warm-started SIMP from them, and designs decoded under another problem's condition (the shortcut
test, exercise 8.2). Judging them is utils.judging; laying the figures out in tables is utils.tables. Used by lesson 8
and tools/evaluate_cvae.py; the studies behind lesson 8's tables are studies.cvae_study."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from utils.cvae import ConditionalVAE, problem_conditions
from utils.data import TopologyData
from utils.judging import Judge, best_of_k
from utils.metrics import solid_iou
from utils.settings import DATASET_SOLVER
from utils.topopt import DensityFilter, simp_iterations

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
    return np.stack([simp_iterations(case, iterations, d, model=judge.models(case))[iterations]
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


@torch.no_grad()
def swapped_designs(model: ConditionalVAE, problems: TopologyData, device: torch.device | str = "cpu"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each design i encoded with its own problem, z_i = μ_q(x_i, c_i), and decoded with the problem of the next
    design, c_j (j = i + 1, cyclically): the swapped designs ``(N, nely, nelx)`` and the indices j ``(N,)``."""
    if model.encoder is None:
        raise ValueError("the deterministic baseline has no latent to test")
    model.eval()
    images = torch.as_tensor(problems.density, dtype=torch.float32)[:, None].to(device)
    conditions = problem_conditions(problems).to(device)
    mu, _ = model.encoder(images, conditions)
    other = np.roll(np.arange(len(problems)), -1)
    swapped = torch.sigmoid(model.decode(mu, conditions[torch.as_tensor(other).to(device)]))[:, 0].cpu().numpy()
    return swapped, other


def shortcut_test(model: ConditionalVAE, judge: Judge, device: torch.device | str = "cpu") -> dict[str, float]:
    """How much the decoder listens to the condition (:func:`swapped_designs`). A decoder that uses c draws a
    design for problem j: it carries j's load, its compliance under j is near SIMP's, and it looks like j's SIMP
    design. A decoder that takes its design from z alone redraws design i. Judged as decoded (rule ``"at_0.5"``)."""
    problems = judge.problems
    swapped, other = swapped_designs(model, problems, device)
    metrics = judge.take(other)(swapped, "at_0.5")
    return {"load disrespect under the new problem": float(np.mean(metrics.load_disrespect)),
            "median |CE| under the new problem": float(np.median(np.abs(metrics.compliance_error))),
            "IoU with the encoded design": float(np.mean([solid_iou(s, d) for s, d in zip(swapped, problems.density,
                                                                                             strict=True)])),
            "IoU with the new problem's SIMP design": float(np.mean(
                [solid_iou(s, d) for s, d in zip(swapped, problems.density[other], strict=True)]))}
