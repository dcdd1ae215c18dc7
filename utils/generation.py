"""Judging designs generated for a given problem, the way TopoDiff (Mazé & Ahmed 2023) judges them: each design
under its own problem, against that problem's SIMP design. Used by lesson 8 and tools/evaluate_cvae.py.

Metrics, on designs thresholded at 0.5:
- CE = C / C_SIMP − 1, C_SIMP the compliance of the thresholded SIMP design of the same problem (signed;
  the tables report the median of |CE|);
- VFE = |VF / VF_target − 1| against the problem's volume-fraction target;
- floating material: more than one 8-connected solid piece; load disrespect: void under the load.
A design "as decoded" is thresholded pixel by pixel; "smoothed" designs (:func:`smoothed`) are first averaged over
the solver's filter radius, a post-processing that the tables name wherever they use it.
Compliances use the void stiffness ``e_min``: the course's 1e-9 unless said otherwise (TopoDiff: 1e-3).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from utils.cvae import ConditionalVAE, problem_conditions
from utils.data import TopologyData
from utils.metrics import DesignMetrics, floating_material, load_disrespect, solid_iou, threshold
from utils.settings import DATASET_SOLVER
from utils.topopt import E_MIN, DensityFilter, FiniteElementModel, LoadCase, compliance, optimize, warm_start

# A best-of-k candidate may exceed its volume target by this much (relative) and stay admissible: more
# material always lowers compliance, so a selection by compliance alone would pick the heaviest design.
VOLUME_TOLERANCE = 0.03
# Warm-started and uniform SIMP runs count the iterations to come within this of the uniform run's compliance.
COMPLIANCE_TOLERANCE = 0.01


def problem_load_cases(problems: TopologyData) -> list[LoadCase]:
    """The load case of every problem of a split."""
    return [problems.load_case(i) for i in range(len(problems))]


def thresholded_compliances(designs: np.ndarray, load_cases: list[LoadCase], e_min: float = E_MIN) -> np.ndarray:
    """Compliance of each thresholded design ``(N, nely, nelx)`` under its load case: (N,)."""
    model = FiniteElementModel(load_cases[0].nelx, load_cases[0].nely, load_cases[0].fixed_dofs)
    return np.array([compliance(threshold(d), case, DATASET_SOLVER.penal,
                                model if case.fixed_dofs == model.fixed_dofs else None, e_min)
                     for d, case in zip(designs, load_cases, strict=True)])


def reference_compliances(problems: TopologyData, e_min: float = E_MIN) -> np.ndarray:
    """C_SIMP of each problem: the stored thresholded-SIMP compliance, recomputed when ``e_min`` differs."""
    if e_min == E_MIN:
        return np.asarray(problems.compliance_thresholded, dtype=float)
    return thresholded_compliances(problems.density, problem_load_cases(problems), e_min)


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


def judge_for_problems(designs: np.ndarray, problems: TopologyData, e_min: float = E_MIN) -> DesignMetrics:
    """Metrics of designs ``(N, nely, nelx)``, design i for problem i: CE against the thresholded SIMP design,
    VFE against the volume target, load disrespect and floating material (thresholded at 0.5)."""
    load_cases = problem_load_cases(problems)
    solid = threshold(designs)
    return DesignMetrics(
        compliance_error=thresholded_compliances(solid, load_cases, e_min) / reference_compliances(problems, e_min) - 1,
        volume_fraction_error=np.abs(solid.mean(axis=(-2, -1)) / problems.volfrac - 1),
        load_disrespect=np.array([load_disrespect(s, case) for s, case in zip(solid, load_cases, strict=True)]),
        floating_material=np.array([floating_material(s) for s in solid]))


def best_of_k(samples: np.ndarray, problems: TopologyData, volume_tolerance: float = VOLUME_TOLERANCE
              ) -> tuple[np.ndarray, np.ndarray]:
    """Pick one of k samples ``(k, N, nely, nelx)`` per problem: the stiffest (lowest compliance of the
    thresholded design) among those within ``volume_tolerance`` of the volume target; where none is, the one
    with the least material. Returns the chosen designs ``(N, nely, nelx)`` and their indices ``(N,)``."""
    load_cases = problem_load_cases(problems)
    volumes = threshold(samples).mean(axis=(-2, -1))  # (k, N)
    costs = np.stack([thresholded_compliances(s, load_cases) for s in samples])
    admissible = volumes <= problems.volfrac * (1 + volume_tolerance)
    choice = np.where(admissible.any(axis=0), np.where(admissible, costs, np.inf).argmin(axis=0),
                      volumes.argmin(axis=0))
    return samples[choice, np.arange(samples.shape[1])], choice


def warm_started_simp(designs: np.ndarray, problems: TopologyData, iterations: int = 10) -> np.ndarray:
    """``iterations`` SIMP iterations (the dataset's solver settings) from each design, for its problem."""
    return np.stack([warm_start(d, case, iterations).density
                     for d, case in zip(designs, problem_load_cases(problems), strict=True)])


def iterations_to_reach(history: list[float], target: float, tolerance: float = COMPLIANCE_TOLERANCE) -> int | None:
    """The first iteration (1-based) whose compliance is within ``tolerance`` of ``target`` or below it;
    None if none is."""
    for iteration, value in enumerate(history, start=1):
        if value <= target * (1 + tolerance):
            return iteration
    return None


@dataclass(frozen=True)
class WarmStartStudy:
    """Per problem: iterations and seconds for SIMP to come within 1 % of the compliance SIMP reaches from a
    uniform start, from a uniform start and from a generated design (NaN: not within ``max_iterations``)."""

    uniform_iterations: np.ndarray
    warm_iterations: np.ndarray
    uniform_seconds: np.ndarray
    warm_seconds: np.ndarray


def _timed_history(case: LoadCase, max_iterations: int, start: np.ndarray | None) -> tuple[list[float], float]:
    begin = time.perf_counter()
    result = optimize(case, max_iterations=max_iterations, initial_density=start)
    return result.compliance_history + [result.compliance], time.perf_counter() - begin


def warm_start_study(designs: np.ndarray, problems: TopologyData, max_iterations: int = 100) -> WarmStartStudy:
    """SIMP from a uniform start (the dataset's settings) and from each generated design ``(N, nely, nelx)``;
    the target is the uniform run's final compliance; seconds scale the measured run time by the share of its
    iterations needed.

    A uniform start meets the volume target from its first iteration; a generated design need not, and a heavier
    design is stiffer. So the generated design itself never counts as reaching the target: a warm start's count
    begins with the design after the first OC update, which enforces the volume (its smallest count is 2)."""
    rows = []
    for design, case in zip(designs, problem_load_cases(problems), strict=True):
        uniform, uniform_time = _timed_history(case, DATASET_SOLVER.max_iterations, None)
        warm, warm_time = _timed_history(case, max_iterations, design)
        target = uniform[-1]
        after_first_update = iterations_to_reach(warm[1:], target)
        counts = [iterations_to_reach(uniform, target), None if after_first_update is None else after_first_update + 1]
        seconds = [np.nan if n is None else t * n / len(h)
                   for n, t, h in zip(counts, (uniform_time, warm_time), (uniform, warm), strict=True)]
        rows.append([np.nan if n is None else n for n in counts] + seconds)
    table = np.array(rows, dtype=float)
    return WarmStartStudy(*table.T)


# The four figures the lesson's tables report, by their DesignMetrics.summary() names.
TABLE_COLUMNS = {"load disrespect share": "load disrespect", "|CE| median": "median |CE|",
                 "floating material share": "floating", "VFE median": "median VFE"}


def table_row(metrics: DesignMetrics) -> dict[str, float]:
    """The four reported figures of a set of designs (shares and medians, as fractions)."""
    summary = metrics.summary()
    return {key: summary[key] for key in TABLE_COLUMNS}


@dataclass(frozen=True)
class GeneratedDesigns:
    """One model's designs for N problems: decoded at the prior's mean (as is, and :func:`smoothed`), the best of
    k samples, and each after ``SIMP_ITERATIONS`` warm-started SIMP iterations; all ``(N, nely, nelx)``."""

    decoded: np.ndarray
    decoded_smoothed: np.ndarray
    best_of_k: np.ndarray
    decoded_simp: np.ndarray
    best_of_k_simp: np.ndarray
    samples: int


SIMP_ITERATIONS = 10


def generate_for_problems(model: ConditionalVAE, problems: TopologyData, samples: int = 16, seed: int = 0,
                          device: torch.device | str = "cpu") -> GeneratedDesigns:
    """Decode, pick the best of ``samples`` draws from p(z | c) (:func:`best_of_k`), and warm-start SIMP from both."""
    conditions = problem_conditions(problems).to(device)
    decoded = model.generate(conditions)[0].cpu().numpy()
    drawn = model.generate(conditions, samples, torch.Generator().manual_seed(seed)).cpu().numpy()
    chosen, _ = best_of_k(drawn, problems)
    return GeneratedDesigns(decoded, smoothed(decoded), chosen, warm_started_simp(decoded, problems, SIMP_ITERATIONS),
                            warm_started_simp(chosen, problems, SIMP_ITERATIONS), samples)


def generation_table(designs: GeneratedDesigns, problems: TopologyData) -> dict[str, dict[str, float]]:
    """The reported figures of each stage: as decoded (as is and smoothed), best of k, and both after
    warm-started SIMP."""
    k, n = designs.samples, SIMP_ITERATIONS
    stages = {"as decoded": designs.decoded, "as decoded, smoothed": designs.decoded_smoothed,
              f"best of {k}": designs.best_of_k,
              f"as decoded + {n} SIMP its": designs.decoded_simp, f"best of {k} + {n} SIMP its": designs.best_of_k_simp}
    return {stage: table_row(judge_for_problems(d, problems)) for stage, d in stages.items()}


@torch.no_grad()
def shortcut_test(model: ConditionalVAE, problems: TopologyData, device: torch.device | str = "cpu"
                  ) -> dict[str, float]:
    """How much the decoder listens to the condition. Each design i is encoded with its own problem,
    z_i = μ_q(x_i, c_i), and decoded with the problem of the next design, c_j (j = i + 1, cyclically). A decoder
    that uses c draws a design for problem j: it carries j's load, its compliance under j is near SIMP's, and it
    looks like j's SIMP design. A decoder that takes its design from z alone redraws design i."""
    if model.encoder is None:
        raise ValueError("the deterministic baseline has no latent to test")
    model.eval()
    images = torch.as_tensor(problems.density, dtype=torch.float32)[:, None].to(device)
    conditions = problem_conditions(problems).to(device)
    mu, _ = model.encoder(images, conditions)
    other = np.roll(np.arange(len(problems)), -1)
    swapped = torch.sigmoid(model.decode(mu, conditions[torch.as_tensor(other).to(device)]))[:, 0].cpu().numpy()
    metrics = judge_for_problems(swapped, problems.take(other))
    return {"load disrespect under the new problem": float(np.mean(metrics.load_disrespect)),
            "median |CE| under the new problem": float(np.median(np.abs(metrics.compliance_error))),
            "IoU with the encoded design": float(np.mean([solid_iou(s, d) for s, d in zip(swapped, problems.density,
                                                                                             strict=True)])),
            "IoU with the new problem's SIMP design": float(np.mean(
                [solid_iou(s, d) for s, d in zip(swapped, problems.density[other], strict=True)]))}
