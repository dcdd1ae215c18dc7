"""Lesson 8's study: the conditional models' designs at equal budgets of finite-element solves, judged at the
reference's volume (:data:`RULE`), the own-volume selection rule measured, and the cost with its break-even. Lesson 8
runs it on a subset; ``make evaluate-cvae`` (tools/evaluate_cvae.py) on every problem."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from studies.harness import (
    BUDGETS,
    FINE_BUDGETS,
    LABELS,
    Method,
    MethodResult,
    Stopwatch,
    StudyProblems,
    judge_results,
    run_methods,
    solves_to_within,
)
from studies.methods import BestOf, SimpFrom, conditional_decoder, decoded_start, prior_latents, uniform_start
from utils.cvae import load_models, problem_conditions
from utils.design_space import frozen
from utils.judging import Judge, ThresholdRule
from utils.metrics import DesignMetrics, threshold
from utils.settings import CVAE_SEED_MODELS, cvae_seed_checkpoint_path
from utils.topopt import optimize

RULE: ThresholdRule = "at_reference_volume"
# Lesson 8's budgets: the harness's grid up to LARGEST (tables), and its fine grid (solves to within 1 %).
LARGEST = 50
TABLE_BUDGETS = tuple(b for b in BUDGETS if b <= LARGEST)
STUDY_BUDGETS = tuple(b for b in FINE_BUDGETS if b <= LARGEST)
# The budget at which a generated design counts as verified and repaired, for the cost comparison.
VERIFIED_AT = 20
# The offline cost of the dataset: `make data` (1,500 SIMP designs, in parallel) took 4.6 minutes on 2 CPU cores
# (the README's table of tools); the manifest records no time. Training costs are in the checkpoints' records.
MAKE_DATA_SECONDS = 4.6 * 60
# Exercise 8.3's tolerance: a draw may exceed its volume target by this much (relative) at its own volume.
OWN_VOLUME_TOLERANCE = 0.03
# The rule that picks one draw per problem: (compliances (k, N), volume fractions (k, N), targets (N,), tolerance)
# → indices (N,): exercise 8.3's contract.
Selection = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def cvae_methods(cvae: nn.Module, baseline: nn.Module, seed: int = 0) -> list[Method]:
    """The ways lesson 8 spends b solves per problem: SIMP from a uniform start, SIMP from the CVAE's design
    (decoded at μ_p(c)) and from the baseline's, and best of b of the CVAE (μ_p(c) first, then draws from ``seed``)."""
    return [SimpFrom("simp_uniform", uniform_start), SimpFrom("simp_from_cvae", decoded_start(cvae)),
            SimpFrom("simp_from_baseline", decoded_start(baseline)),
            BestOf("best_of_cvae", prior_latents(cvae, seed), conditional_decoder(cvae))]


def training_seed_models(seed: int, device: torch.device | str = "cpu") -> tuple[dict[str, nn.Module], dict]:
    """Lesson 8's CVAE and baseline trained with ``seed`` (the shipped file for the shipped seed), frozen, and the
    file's record; a clear error naming the command that trains a missing seed."""
    path = cvae_seed_checkpoint_path(seed)
    if not path.exists():
        raise SystemExit(f"{path.name} is missing: train it first with `python -m tools.train_cvae --seed {seed}` "
                         "(or `make training-seeds`)")
    models, record = load_models(path, device)
    return {name: frozen(models[name]) for name in CVAE_SEED_MODELS}, record


def stiffest_admissible(compliances: np.ndarray, volume_fractions: np.ndarray, targets: np.ndarray,
                        tolerance: float) -> np.ndarray:
    """Exercise 8.3's rule: the stiffest candidate with volume fraction ≤ target · (1 + tolerance), else the
    lightest: (k, N), (k, N), (N,) → (N,)."""
    admissible = volume_fractions <= targets * (1 + tolerance)
    stiffest = np.where(admissible, compliances, np.inf).argmin(axis=0)
    return np.where(admissible.any(axis=0), stiffest, volume_fractions.argmin(axis=0))


def own_volume_rule(model: nn.Module, judge: Judge, device: torch.device | str,
                    select: Selection = stiffest_admissible, samples: int = 16, seed: int = 0) -> dict[str, float]:
    """What best of k buys when draws compete at their own volume (thresholded at 0.5, admissible up to the target
    + 3 %) rather than at the reference's: the share of problems where ``select`` picks the heaviest admissible draw,
    the share of chosen designs above the target, their median ΔV against the reference, and their median CE at their
    own volume and at the reference's."""
    drawn = model.generate(problem_conditions(judge.problems).to(device), samples,
                           torch.Generator().manual_seed(seed)).cpu().numpy()
    volumes = threshold(drawn).mean(axis=(-2, -1))
    compliances = np.stack([judge.compliances(threshold(d)) for d in drawn])
    chosen = select(compliances, volumes, judge.targets, OWN_VOLUME_TOLERANCE)
    admissible = volumes <= judge.targets * (1 + OWN_VOLUME_TOLERANCE)
    heaviest = np.where(admissible, volumes, -np.inf).argmax(axis=0)
    columns = np.arange(len(judge))
    picked = drawn[chosen, columns]
    own, equal = judge(picked, "at_0.5"), judge(picked, RULE)
    return {"heaviest chosen share": float(np.mean(chosen == heaviest)),
            "above target share": float(np.mean(volumes[chosen, columns] > judge.targets)),
            "median ΔV": float(np.median(own.volume_change)),
            "median CE at own volume": float(np.median(own.compliance_error)),
            "median CE at reference volume": float(np.median(equal.compliance_error))}


def break_even_designs(offline_seconds: float, simp_seconds: float, method_seconds: float) -> float:
    """How many designs a method must make before its offline cost (data, training) is paid back by what each
    design saves against SIMP: offline / (SIMP − method); infinite when the method saves nothing."""
    saving = simp_seconds - method_seconds
    return offline_seconds / saving if saving > 0 else float("inf")


@dataclass(frozen=True)
class CvaeStudy:
    """Lesson 8's equal-compute comparison on a set of problems: the methods' results and their judgements (at the
    reference's volume), by method key and budget."""

    problems: StudyProblems
    results: dict[str, MethodResult]
    judgements: dict[str, dict[int, DesignMetrics]]

    def rows(self, budgets: Sequence[int]) -> dict[str, dict[str, float]]:
        """The comparison's table: per method and budget, the distribution figures and ms per design (timing rule)."""
        n = len(self.problems)
        return {f"{LABELS[key]}, b = {b}": {**per_budget[b].summary(), "ms": 1e3 * self.results[key].seconds[b] / n}
                for key, per_budget in self.judgements.items() for b in budgets if b in per_budget}

    def solves_to_within(self) -> dict[str, np.ndarray]:
        """Per method, each problem's first budget within 1 % of the reference (NaN: none), on the study's grid."""
        return {key: solves_to_within(per_budget) for key, per_budget in self.judgements.items()}


def run_cvae_study(cvae: nn.Module, baseline: nn.Module, problems: StudyProblems,
                   budgets: Sequence[int] = STUDY_BUDGETS, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> CvaeStudy:
    """:func:`cvae_methods` on ``problems`` at every budget of ``budgets``, judged under the problems' rule."""
    results = run_methods(cvae_methods(cvae, baseline, seed), problems, budgets, progress)
    return CvaeStudy(problems, results, judge_results(results, problems))


def simp_seconds(judge: Judge, count: int = 20) -> float:
    """Mean wall seconds of the dataset's SIMP run (its settings, to its tolerance or cap) on the first ``count``
    problems: what a design costs without a model."""
    count = min(count, len(judge))
    with Stopwatch() as watch:
        for case in judge.load_cases[:count]:
            optimize(case, model=judge.models(case))
    return watch.seconds / count
