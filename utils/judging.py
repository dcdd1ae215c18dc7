"""Judging designs made for given problems, the way an engineer judges a method: each design under its own
problem, against that problem's SIMP design, **at equal volume**, reported as a distribution, and at equal cost.
Used by lessons 7 and 8, tools/evaluate_checkpoint.py and tools/evaluate_cvae.py.

The one judge is :class:`Judge`: built once per set of problems (their load cases and one finite-element model
shared by all of them), it returns :class:`utils.metrics.DesignMetrics` for designs ``(N, nely, nelx)``, design i
for problem i:

- CE = C / C_SIMP − 1, signed (positive: less stiff than SIMP), under one of three named threshold rules
  (:data:`ThresholdRule`):

  - ``"equal volume"`` (the default; lessons 7 and 8): the design is thresholded at the volume of the problem's SIMP
    design thresholded at 0.5 (:func:`utils.metrics.threshold_at_volume`), C_SIMP that thresholded reference's, so no
    design buys stiffness with material;
  - ``"target volume"`` (lesson 9, whose searches hold the target exactly): the design *and* the SIMP design are
    thresholded at the problem's volume target, the ``round(V·N)`` densest pixels of each;
  - ``"0.5"``: pixel by pixel (as decoded), against the reference thresholded at 0.5.
- ΔV = VF / VF_SIMP − 1 of the design thresholded at 0.5 (signed, its own volume, shown beside CE; VFE like
  with like is |ΔV|), the VFE against the problem's volume target, |VF / VF_target − 1|, and the same of the judged
  (thresholded) design.
- floating material (more than one 8-connected solid piece) and load disrespect (void at every element touching
  the load's nodes), on the judged (thresholded) design.

TopoDiff's (Mazé & Ahmed 2023) variants of the same four metrics, adapted to our grid, are :func:`topodiff_summary`.
Compliances use the void stiffness ``e_min``: the course's 1e-9 unless said otherwise (TopoDiff: 1e-3).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from utils.cvae import ConditionalVAE, problem_conditions
from utils.data import TopologyData
from utils.metrics import (
    DesignMetrics,
    floating_material,
    load_disrespect,
    solid_components,
    solid_iou,
    threshold,
    threshold_at_volume,
)
from utils.settings import DATASET_SOLVER, PARAMETER_RANGES, TOPODIFF_E_MIN
from utils.topopt import E_MIN, LoadCase, SharedModels, compliance, optimize

# How the judge thresholds a design (module docstring): at the SIMP reference's volume, at the problem's volume
# target (the reference thresholded alike), or pixel by pixel at 0.5.
ThresholdRule = Literal["equal volume", "target volume", "0.5"]
THRESHOLD_RULES: tuple[ThresholdRule, ...] = ("equal volume", "target volume", "0.5")
# Warm-started and uniform SIMP runs count the iterations to come within this of the uniform run's compliance.
COMPLIANCE_TOLERANCE = 0.01
# The finite-element budgets (solves per problem) of the equal-compute comparison.
BUDGETS = (1, 2, 4, 8, 16, 32)
# The offline cost of the dataset: `make data` (1,500 SIMP designs, in parallel) took 4.6 minutes on 2 CPU cores
# (the README's table of tools); the manifest records no time. Training costs are in the checkpoints' records.
MAKE_DATA_SECONDS = 4.6 * 60
# TopoDiff binarises its 0–255 images at 127 (white = void): our density ρ is solid where 255 (1 − ρ) < 127.
TOPODIFF_SOLID_LEVEL = 128 / 255


def inside_training_ranges(volfrac: np.ndarray | float, load_y: np.ndarray | float,
                           angle_deg: np.ndarray | float) -> np.ndarray:
    """Whether each problem's condition lies inside the training set's (utils.settings.PARAMETER_RANGES): volume
    fraction and load height in range, and the load's line of action that of an angle in range (the condition
    uses the doubled angle, so θ and θ ± 180° are one problem)."""
    volfrac, load_y, angle = (np.asarray(v, dtype=float) for v in (volfrac, load_y, angle_deg))
    low, high = PARAMETER_RANGES["angle_deg"]
    line = np.mod(angle - low, 180.0) + low  # the angle in [low, low + 180) with the same line of action
    return ((volfrac >= PARAMETER_RANGES["volfrac"][0]) & (volfrac <= PARAMETER_RANGES["volfrac"][1])
            & (load_y >= PARAMETER_RANGES["load_y"][0]) & (load_y <= PARAMETER_RANGES["load_y"][1])
            & (line >= low) & (line <= high))


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so that a wall-clock time includes it (CUDA runs asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Judge:
    """The judge of designs for a set of problems: load cases built once, one finite-element model shared by all
    problems with the same supports, the SIMP references' compliances under each threshold rule (computed on first
    use) and their volumes (thresholded at 0.5)."""

    def __init__(self, problems: TopologyData, e_min: float = E_MIN) -> None:
        self.problems = problems
        self.e_min = e_min
        self.load_cases: list[LoadCase] = [problems.load_case(i) for i in range(len(problems))]
        self.models = SharedModels()
        self.reference_volumes = threshold(problems.density).mean(axis=(-2, -1))
        self.targets = np.asarray(problems.volfrac, dtype=float)
        self._reference_compliances: dict[ThresholdRule, np.ndarray] = {}
        if e_min == E_MIN:  # the dataset stores C_SIMP of the design thresholded at 0.5 with the course's E_min
            stored = np.asarray(problems.compliance_thresholded, dtype=float)
            self._reference_compliances.update({"equal volume": stored, "0.5": stored})

    def __len__(self) -> int:
        return len(self.load_cases)

    def compliances(self, solids: np.ndarray, e_min: float | None = None) -> np.ndarray:
        """Compliance of each (already thresholded) design ``(N, nely, nelx)`` under problem i, with the judge's
        void stiffness unless ``e_min`` is given: (N,)."""
        e_min = self.e_min if e_min is None else e_min
        return np.array([compliance(s, case, DATASET_SOLVER.penal, self.models(case), e_min)
                         for s, case in zip(solids, self.load_cases, strict=True)])

    def solid(self, designs: np.ndarray, rule: ThresholdRule = "equal volume") -> np.ndarray:
        """The thresholded designs the judge scores under ``rule`` (module docstring)."""
        if rule == "equal volume":
            return threshold_at_volume(designs, self.reference_volumes)
        if rule == "target volume":
            return threshold_at_volume(designs, self.targets)
        if rule == "0.5":
            return threshold(designs)
        raise ValueError(f"unknown threshold rule {rule!r}: one of {', '.join(map(repr, THRESHOLD_RULES))}")

    def compliances_at(self, designs: np.ndarray, rule: ThresholdRule = "equal volume") -> np.ndarray:
        """Compliance of each design ``(N, nely, nelx)`` thresholded under ``rule``, under its problem: (N,)."""
        return self.compliances(self.solid(np.asarray(designs, dtype=float), rule))

    def reference_compliances(self, rule: ThresholdRule = "equal volume") -> np.ndarray:
        """C_SIMP of each problem under ``rule``: its SIMP design thresholded at 0.5 (``"equal volume"``, ``"0.5"``)
        or at the volume target (``"target volume"``): (N,)."""
        if rule not in self._reference_compliances:
            self._reference_compliances[rule] = self.compliances_at(
                self.problems.density, "target volume" if rule == "target volume" else "0.5")
        return self._reference_compliances[rule]

    def __call__(self, designs: np.ndarray, rule: ThresholdRule = "equal volume") -> DesignMetrics:
        """Metrics of designs ``(N, nely, nelx)``, design i for problem i (module docstring)."""
        designs = np.asarray(designs, dtype=float)
        if len(designs) != len(self):
            raise ValueError(f"{len(designs)} designs for {len(self)} problems")
        solid = self.solid(designs, rule)
        own_volumes = threshold(designs).mean(axis=(-2, -1))
        return DesignMetrics(
            compliance_error=self.compliances(solid) / self.reference_compliances(rule) - 1,
            volume_change=own_volumes / self.reference_volumes - 1,
            target_volume_error=np.abs(own_volumes / self.targets - 1),
            load_disrespect=np.array([load_disrespect(s, c) for s, c in zip(solid, self.load_cases, strict=True)]),
            floating_material=np.array([floating_material(s) for s in solid]),
            judged_volume_error=np.abs(solid.mean(axis=(-2, -1)) / self.targets - 1))

    def take(self, indices: np.ndarray) -> Judge:
        """The judge of a subset of the problems (sharing this one's finite-element models)."""
        subset = Judge.__new__(Judge)
        indices = np.asarray(indices)
        subset.problems, subset.e_min, subset.models = self.problems.take(indices), self.e_min, self.models
        subset.load_cases = [self.load_cases[i] for i in indices]
        subset.reference_volumes, subset.targets = self.reference_volumes[indices], self.targets[indices]
        subset._reference_compliances = {rule: values[indices] for rule, values in self._reference_compliances.items()}
        return subset


# ---------------------------------------------------------------------------------------------------------------
# TopoDiff's metrics, adapted (francoismaze/topodiff, topodiff/topodiff_analysis.py)

def topodiff_load_disrespect(density: np.ndarray, case: LoadCase) -> bool:
    """TopoDiff's rule on our grid: void at the single element under the load's position (coordinates truncated,
    the right edge's load read in the last column), binarised at 127/255."""
    nely, nelx = np.asarray(density).shape
    load = case.loads[0]
    row, col = min(int(load.y), nely - 1), min(int(load.x), nelx - 1)
    return not bool(np.asarray(density)[row, col] > TOPODIFF_SOLID_LEVEL)


def topodiff_summary(designs: np.ndarray, judge: Judge) -> dict[str, float]:
    """TopoDiff's four figures, adapted (and the median and 90th percentile of the same CEs): binarised at 127/255;
    average signed CE with E_void = 1e-3 (FᵀU on our
    64×32 mesh, references binarised alike); average VFE against the target; load disrespect on the single element
    at the load; floating material as "solid pieces ≠ 1" (an empty design counts). ``judge`` supplies the problems
    (its own E_min is not used)."""
    solid = threshold(designs, TOPODIFF_SOLID_LEVEL)
    references = threshold(judge.problems.density, TOPODIFF_SOLID_LEVEL)
    compliance_error = (judge.compliances(solid, TOPODIFF_E_MIN) / judge.compliances(references, TOPODIFF_E_MIN)
                        - 1)
    return {"CE mean": float(np.mean(compliance_error)), "CE median": float(np.median(compliance_error)),
            "CE p90": float(np.percentile(compliance_error, 90)),
            "VFE mean": float(np.mean(np.abs(solid.mean(axis=(-2, -1)) / judge.targets - 1))),
            "load disrespect share": float(np.mean([topodiff_load_disrespect(d, c)
                                                    for d, c in zip(designs, judge.load_cases, strict=True)])),
            "floating material share": float(np.mean([solid_components(s) != 1 for s in solid]))}


# ---------------------------------------------------------------------------------------------------------------
# Choosing among samples

def best_of_k(samples: np.ndarray, judge: Judge, rule: ThresholdRule = "equal volume"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick one of k samples ``(k, N, nely, nelx)`` per problem: the stiffest at equal volume (each sample
    thresholded under ``rule``, so more material cannot win). Returns the chosen designs ``(N, nely, nelx)``, their
    indices ``(N,)`` and all the thresholded samples' compliances ``(k, N)``."""
    compliances = np.stack([judge.compliances_at(s, rule) for s in samples])
    choice = compliances.argmin(axis=0)
    return samples[choice, np.arange(samples.shape[1])], choice, compliances


# ---------------------------------------------------------------------------------------------------------------
# Equal compute

@dataclass(frozen=True)
class BudgetComparison:
    """Per method and per budget k (finite-element solves per problem): the judged designs' metrics (equal
    volume) and the wall seconds per problem, decoder included."""

    budgets: tuple[int, ...]
    metrics: dict[str, list[DesignMetrics]]
    seconds: dict[str, np.ndarray]

    def curve(self, statistic: Callable[[DesignMetrics], float]) -> dict[str, np.ndarray]:
        """One statistic of each method's metrics, budget by budget."""
        return {method: np.array([statistic(m) for m in rows]) for method, rows in self.metrics.items()}


def _timed(function: Callable[[], np.ndarray], device: torch.device | str) -> tuple[np.ndarray, float]:
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def simp_trajectory(start: np.ndarray, case: LoadCase, iterations: int) -> tuple[np.ndarray, float]:
    """The physical designs after each of exactly ``iterations`` SIMP iterations from ``start`` (the dataset's
    settings, tolerance off), ``(iterations, nely, nelx)``, and the run's wall seconds."""
    begin = time.perf_counter()
    result = optimize(case, initial_density=start, max_iterations=iterations, tolerance=0.0, snapshot_every=1)
    return np.stack(result.snapshots), time.perf_counter() - begin


def best_of_k_curve(cvae: ConditionalVAE, judge: Judge, budgets: tuple[int, ...] = BUDGETS, seed: int = 0,
                    device: torch.device | str = "cpu") -> tuple[list[DesignMetrics], float]:
    """CVAE best of k for each k of ``budgets``: max(budgets) draws z ~ p(z | c) from ``seed``, each thresholded at
    equal volume and solved once, the stiffest of the first k kept and judged. Returns the metrics per budget and the
    seconds of all the draws' decoding and solves (for N problems)."""
    largest, n = max(budgets), len(judge)
    conditions = problem_conditions(judge.problems).to(device)
    draws, draw_seconds = _timed(lambda: cvae.generate(conditions, largest, torch.Generator().manual_seed(seed)
                                                       ).cpu().numpy(), device)
    begin = time.perf_counter()
    _, _, draw_compliances = best_of_k(draws, judge)  # (K, N)
    seconds = draw_seconds + time.perf_counter() - begin
    return [judge(draws[draw_compliances[:k].argmin(axis=0), np.arange(n)]) for k in budgets], seconds


def budget_comparison(cvae: ConditionalVAE, baseline: ConditionalVAE, judge: Judge,
                      budgets: tuple[int, ...] = BUDGETS, seed: int = 0, device: torch.device | str = "cpu"
                      ) -> BudgetComparison:
    """Four ways to spend k finite-element solves on each problem, judged at equal volume:

    - CVAE best of k: k draws z ~ p(z | c), each solved once (equal volume), the stiffest kept;
    - CVAE + (k − 1) SIMP its: the design decoded at μ_p(c), then k − 1 SIMP iterations (k = 1: as decoded);
    - baseline + k SIMP its: the baseline's design, then k SIMP iterations;
    - SIMP, uniform start: k SIMP iterations from the uniform design at the target volume.

    One SIMP iteration is one solve. Seconds per problem: the decoder's time for the batch (all draws, CUDA
    synchronised) divided by N, plus each problem's solves; SIMP runs once to the largest budget and is charged
    k / K of its time at budget k (every iteration costs the same), best of k is charged k / K of its draws'
    decoding and solves."""
    largest = max(budgets)
    problems = judge.problems
    n = len(problems)
    conditions = problem_conditions(problems).to(device)
    best, best_seconds = best_of_k_curve(cvae, judge, budgets, seed, device)
    decoded, decode_seconds = _timed(lambda: cvae.generate(conditions)[0].cpu().numpy(), device)
    fixed, baseline_seconds = _timed(lambda: baseline.generate(conditions)[0].cpu().numpy(), device)
    starts = {"CVAE + (k − 1) SIMP its": decoded, "baseline + k SIMP its": fixed,
              "SIMP, uniform start": np.broadcast_to(judge.targets[:, None, None], decoded.shape)}
    trajectories: dict[str, list[np.ndarray]] = {name: [] for name in starts}
    run_seconds = {name: np.zeros(n) for name in starts}
    for name, designs in starts.items():
        for i, (design, case) in enumerate(zip(designs, judge.load_cases, strict=True)):
            trajectory, seconds = simp_trajectory(design, case, largest)
            trajectories[name].append(trajectory)
            run_seconds[name][i] = seconds
    metrics: dict[str, list[DesignMetrics]] = {"CVAE best of k": best}
    seconds: dict[str, list[float]] = {"CVAE best of k": [best_seconds * k / largest / n for k in budgets]}
    decoder_seconds = {"CVAE + (k − 1) SIMP its": decode_seconds / n, "baseline + k SIMP its": baseline_seconds / n,
                       "SIMP, uniform start": 0.0}
    for name, runs in trajectories.items():
        metrics[name], seconds[name] = [], []
        for k in budgets:
            iterations = k - 1 if name.startswith("CVAE") else k
            designs = starts[name] if iterations == 0 else np.stack([t[iterations - 1] for t in runs])
            metrics[name].append(judge(designs))
            seconds[name].append(decoder_seconds[name] + float(np.mean(run_seconds[name])) * iterations / largest)
    return BudgetComparison(tuple(budgets), metrics, {m: np.array(s) for m, s in seconds.items()})


# ---------------------------------------------------------------------------------------------------------------
# Warm starts

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


def warm_start_study(designs: np.ndarray, judge: Judge, max_iterations: int = 100) -> WarmStartStudy:
    """SIMP from a uniform start (the dataset's settings) and from each generated design ``(N, nely, nelx)``;
    the target is the uniform run's final compliance; seconds scale the measured run time by the share of its
    iterations needed.

    A uniform start meets the volume target from its first iteration; a generated design need not, and a heavier
    design is stiffer. So the generated design itself never counts as reaching the target: a warm start's count
    begins with the design after the first OC update (its smallest count is 2). That update moves every density
    by at most the move limit (0.2), so it meets the volume target only when the limit allows; the count does
    not assume it does."""
    rows = []
    for design, case in zip(designs, judge.load_cases, strict=True):
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


# ---------------------------------------------------------------------------------------------------------------
# Does the decoder listen to c?

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
    design. A decoder that takes its design from z alone redraws design i. Judged at 0.5 (as decoded)."""
    problems = judge.problems
    swapped, other = swapped_designs(model, problems, device)
    metrics = judge.take(other)(swapped, "0.5")
    return {"load disrespect under the new problem": float(np.mean(metrics.load_disrespect)),
            "median |CE| under the new problem": float(np.median(np.abs(metrics.compliance_error))),
            "IoU with the encoded design": float(np.mean([solid_iou(s, d) for s, d in zip(swapped, problems.density,
                                                                                             strict=True)])),
            "IoU with the new problem's SIMP design": float(np.mean(
                [solid_iou(s, d) for s, d in zip(swapped, problems.density[other], strict=True)]))}


def break_even_designs(offline_seconds: float, simp_seconds: float, method_seconds: float) -> float:
    """How many designs a method must make before its offline cost (data, training) is paid back by what each
    design saves against SIMP: offline / (SIMP − method); infinite when the method saves nothing."""
    saving = simp_seconds - method_seconds
    return offline_seconds / saving if saving > 0 else float("inf")
