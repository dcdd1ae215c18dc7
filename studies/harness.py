"""The one harness of lessons 8 and 9's studies.

**Budget.** A method given a budget of b solves spends exactly b finite-element solves per problem producing its
design: one per SIMP iteration, per gradient step, per best-of-b candidate (each solved thresholded under the
study's rule). Decoding costs no solve; evaluating the final design is the judge's, never the method's. The design
"at budget b" is the one the b-th solve's update produced (for SIMP: after b iterations; b = 0 is the start).

**Timing.** A method's seconds at budget b are the wall time of its own work for all N problems up to its b-th
solve: decoding, projections, solves and updates, CUDA synchronised, judging excluded (:class:`Stopwatch`). Work
whose every solve costs the same is run once to the largest budget B and charged b / B of that run (plus any one-off
work before the first solve, e.g. decoding a start): :func:`linear_seconds`.

**Names.** Each method has a key (an identifier, used in code and caches) and a label (its name in tables and
prose), both in :data:`LABELS` only.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from utils.cvae import problem_conditions
from utils.data import TopologyData
from utils.design_space import FEProblem, fe_problems
from utils.judging import Judge, ThresholdRule
from utils.metrics import DesignMetrics

# The one grid of budgets (finite-element solves per problem); lessons and tools take the budgets up to their largest.
BUDGETS = (1, 2, 5, 10, 20, 50, 100)
# A finer grid for counting the solves to come within WITHIN of the reference (the count is the first grid point
# within it: an upper bound on the exact count).
FINE_BUDGETS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
WITHIN = 0.01

# Every method of the studies: key → label (tables and prose). Keys never change meaning; labels are for people.
LABELS: dict[str, str] = {
    "dataset_simp": "the dataset's SIMP run",
    "simp_uniform": "SIMP, uniform start",
    "simp_from_cvae": "SIMP from the CVAE's design",
    "simp_from_baseline": "SIMP from the baseline's design",
    "simp_from_retrieval": "SIMP from the nearest training design",
    "simp_from_cvae_blend": "SIMP from the CVAE's design blended with uniform",
    "best_of_cvae": "best of b (CVAE)",
    "retrieval": "best of the b nearest training designs",
    "cvae_latent": "CVAE latent, β = 1",
    "cvae_latent_sharpening": "CVAE latent, sharpening",
    "pixel_adam_sharpening": "Adam on the pixels, sharpening",
    "cvae_latent_lbfgs": "CVAE latent, L-BFGS, sharpening",
    "pixel_lbfgs_sharpening": "L-BFGS on the pixels, sharpening",
    "cvae_latent_from_best": "CVAE latent from best of k",
    "cvae_latent_then_simp": "CVAE latent, then SIMP",
    "vae_latent_from_best": "VAE latent from best of k",
    "untrained_decoder": "an untrained decoder with Adam",
}
# The figures of the budget tables: DesignMetrics.summary() key → column heading.
SUMMARY_COLUMNS = {"CE mean": "mean CE", "CE median": "median CE", "CE p90": "p90 CE", "CE p95": "p95 CE",
                   "CE > 10 % share": "> 10 % worse", "floating material share": "floating",
                   "load disrespect share": "load disr.", "judged VFE max": "max VFE"}


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so that a wall-clock time includes it (CUDA runs asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Stopwatch:
    """The timing rule's clock: ``with Stopwatch(device) as watch: ...``; ``watch.seconds`` after the block, the
    device synchronised at both ends."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass
class StudyProblems:
    """The problems a study runs on: the judge (load cases, shared finite-element models, references), the
    decoders' conditions ``(N, 4)`` on ``device``, the study's threshold rule (how best of b thresholds its
    candidates and how the designs are judged), and each problem's number in its whole set (``ids``; what a method's
    random draws for it depend on, so that a subset, a chunk and the whole set draw the same for a problem)."""

    judge: Judge
    conditions: torch.Tensor
    device: torch.device | str
    rule: ThresholdRule
    ids: np.ndarray

    @classmethod
    def of(cls, problems: TopologyData, rule: ThresholdRule, device: torch.device | str = "cpu",
           references: np.ndarray | None = None, ids: np.ndarray | None = None) -> StudyProblems:
        """``ids`` default to 0 … N − 1: the problems are the first N of their set."""
        ids = np.arange(len(problems)) if ids is None else np.asarray(ids)
        return cls(Judge(problems, references=references), problem_conditions(problems).to(device), device, rule, ids)

    def __len__(self) -> int:
        return len(self.judge)

    def fe_problems(self) -> list[FEProblem]:
        """Fresh FEProblems (solve counters at zero) sharing the judge's finite-element models."""
        return fe_problems(self.judge.load_cases, models=self.judge.models)

    def take(self, indices: np.ndarray) -> StudyProblems:
        indices = np.asarray(indices)
        return StudyProblems(self.judge.take(indices), self.conditions[torch.as_tensor(indices).to(self.device)],
                             self.device, self.rule, self.ids[indices])

    def normal_draws(self, seed: int, count: int, dim: int) -> torch.Tensor:
        """``count`` standard normal vectors of size ``dim`` per problem, ``(count, N, dim)`` on the conditions'
        device: problem i's from a generator seeded with (seed, its id), so its draws depend on neither the other
        problems nor, for the first ones, on ``count``."""
        draws = [np.random.default_rng([seed, int(i)]).standard_normal((count, dim)) for i in self.ids]
        stacked = np.stack(draws, axis=1) if draws else np.zeros((count, 0, dim))
        return torch.as_tensor(stacked, dtype=self.conditions.dtype).to(self.conditions.device)


@dataclass
class MethodResult:
    """What a method returns: its designs ``designs[b]: (N, nely, nelx)`` at each budget b, the finite-element solves
    it spent on each problem to produce them ``solves[b]: (N,)``, its seconds for all N problems up to budget b
    ``seconds[b]`` (the timing rule), and the design it decoded, if any (``(N, nely, nelx)``)."""

    designs: dict[int, np.ndarray]
    solves: dict[int, np.ndarray]
    seconds: dict[int, float]
    decoded: np.ndarray | None = None

    def at(self, budgets: Iterable[int]) -> MethodResult:
        """The same result at the given budgets only (those it has)."""
        kept = [b for b in budgets if b in self.designs]
        return MethodResult({b: self.designs[b] for b in kept}, {b: self.solves[b] for b in kept},
                            {b: self.seconds[b] for b in kept}, self.decoded)


class Method(Protocol):
    """A way to spend b finite-element solves per problem (module docstring). ``key`` is one of :data:`LABELS`."""

    key: str

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        """Designs at every budget of ``budgets`` (each exactly that many solves per problem)."""
        ...


def linear_seconds(budgets: Iterable[int], largest: int, run_seconds: float, setup_seconds: float = 0.0
                   ) -> dict[int, float]:
    """The timing rule for work whose every solve costs the same: ``setup + run · b / largest`` at each budget b."""
    return {b: setup_seconds + run_seconds * b / largest for b in budgets}


def exact_solves(budgets: Iterable[int], n: int) -> dict[int, np.ndarray]:
    """b solves on each of n problems at each budget b (for methods whose count is fixed by construction)."""
    return {b: np.full(n, b) for b in budgets}


def run_methods(methods: Sequence[Method], problems: StudyProblems, budgets: Sequence[int],
                progress: Callable[[str], None] | None = None) -> dict[str, MethodResult]:
    """Every method on the problems at every budget, by key; ``progress`` is told each label as it starts."""
    results = {}
    for method in methods:
        (progress or (lambda label: None))(LABELS[method.key])
        results[method.key] = method.run(problems, tuple(sorted(budgets)))
    return results


def judge_results(results: dict[str, MethodResult], problems: StudyProblems
                  ) -> dict[str, dict[int, DesignMetrics]]:
    """Every method's designs at every budget, judged under the study's rule."""
    return {key: {b: problems.judge(d, problems.rule) for b, d in result.designs.items()}
            for key, result in results.items()}


def solves_to_within(per_budget: dict[int, DesignMetrics], tolerance: float = WITHIN) -> np.ndarray:
    """Per problem, the first budget (of those judged, in order) whose CE is within ``tolerance`` of the reference or
    below it; NaN where none is: (N,)."""
    grid = sorted(per_budget)
    errors = np.stack([per_budget[b].compliance_error for b in grid])
    reached = errors <= tolerance
    return np.where(reached.any(axis=0), np.asarray(grid, dtype=float)[reached.argmax(axis=0)], np.nan)


def budget_table(judgements: dict[str, dict[int, DesignMetrics]], figure: str, budgets: Sequence[int]
                 ) -> dict[str, dict[int, float]]:
    """{label: {budget: the summary figure}} for the budgets each method has."""
    return {LABELS[key]: {b: per_budget[b].summary()[figure] for b in budgets if b in per_budget}
            for key, per_budget in judgements.items()}

# Lesson 10's methods (studies/prior_study.py): the CVAE's decoder with latents from a conditional diffusion prior.
LABELS.update({
    "best_of_cvae_diffusion": "best of b (CVAE, diffusion prior)",
    "simp_from_cvae_diffusion": "SIMP from the CVAE's diffusion-prior design",
})
