"""Paired bootstrap intervals for the differences lessons 8 and 9 conclude from: method A against method B on the
same problems (the same resampled problems for both, so what the two share cancels), for the median CE, its 95th
percentile and the share of designs more than 10 % worse than the reference. Percentile intervals (Efron &
Tibshirani 1993, ch. 13); with 150 problems a p95 rests on about 8 designs, which the interval shows."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from studies.harness import LABELS
from utils.metrics import DesignMetrics

# A statistic of CEs along an axis: (R, N) → (R,).
Statistic = Callable[[np.ndarray, int], np.ndarray]
STATISTICS: dict[str, Statistic] = {
    "median CE": lambda ce, axis: np.median(ce, axis=axis),
    "p95 CE": lambda ce, axis: np.percentile(ce, 95, axis=axis),
    "share > 10 % worse": lambda ce, axis: np.mean(ce > 0.10, axis=axis),
}
RESAMPLES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A difference A − B on the problems themselves, and its bootstrap interval [low, high]."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """Whether the interval supports a difference (either way)."""
        return self.low > 0 or self.high < 0

    def __format__(self, spec: str) -> str:
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def paired_bootstrap(a: np.ndarray, b: np.ndarray, statistic: Statistic, resamples: int = RESAMPLES,
                     seed: int = 0, level: float = LEVEL) -> Interval:
    """statistic(a) − statistic(b) for paired values ``a, b: (N,)`` (problem i in both), and the percentile interval
    of the same difference over ``resamples`` resamplings of the problems with replacement."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need one shape (N,), got {a.shape} and {b.shape}")
    rows = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    differences = statistic(a[rows], 1) - statistic(b[rows], 1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(float(statistic(a[None], 1)[0] - statistic(b[None], 1)[0]), float(low), float(high))


def difference_rows(judgements: dict[str, dict[int, DesignMetrics]], pairs: Sequence[tuple[str, str]],
                    budgets: Sequence[int]) -> dict[str, dict[str, Interval]]:
    """For each pair of method keys (A, B) and budget: every statistic's difference A − B with its interval."""
    rows = {}
    for first, second in pairs:
        for b in budgets:
            a, c = judgements[first][b].compliance_error, judgements[second][b].compliance_error
            rows[f"{LABELS[first]} − {LABELS[second]}, {b} solves"] = {
                name: paired_bootstrap(a, c, statistic) for name, statistic in STATISTICS.items()}
    return rows


def markdown_intervals(rows: dict[str, dict[str, Interval]], number_format: str = "+.4f",
                       cell: Callable[[Interval], str] | None = None) -> list[str]:
    """Rows of intervals ({label: {statistic: Interval}}, e.g. from :func:`difference_rows`) as a markdown table, one
    column per statistic of the first row; each cell in ``number_format``, or written by ``cell``; a star marks an
    interval that excludes 0."""
    names = list(next(iter(rows.values()), {}))
    write = cell or (lambda interval: f"{interval:{number_format}}")
    lines = ["| A − B | " + " | ".join(f"{name} (95 % interval)" for name in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for label, intervals in rows.items():
        cells = [write(intervals[n]) + (" *" if intervals[n].excludes_zero() else "") for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def seed_verdict(intervals: Sequence[Interval]) -> str:
    """What one difference's intervals over several training seeds support together: "lower on every seed" or
    "higher on every seed" (every interval excludes 0, all on one side), "no seed excludes 0", or "seed-dependent"."""
    if all(i.high < 0 for i in intervals):
        return "lower on every seed"
    if all(i.low > 0 for i in intervals):
        return "higher on every seed"
    if not any(i.excludes_zero() for i in intervals):
        return "no seed excludes 0"
    return "seed-dependent"


def markdown_seed_differences(per_seed: dict[int, dict[str, dict[int, DesignMetrics]]],
                              pairs: Sequence[tuple[str, str]], budgets: Sequence[int], statistic: str,
                              number_format: str = "+.2%") -> list[str]:
    """One statistic's difference A − B (a key of :data:`STATISTICS`) for each pair and budget, with its interval
    for each training seed of ``per_seed`` ({seed: judgements}) and the seeds' :func:`seed_verdict`: a markdown
    table."""
    seeds = list(per_seed)
    rows = {seed: difference_rows(judgements, pairs, budgets) for seed, judgements in per_seed.items()}
    lines = ["| A − B | " + " | ".join(f"seed {seed}" for seed in seeds) + " | over the seeds |",
             "| --- |" + " --- |" * (len(seeds) + 1)]
    for label in rows[seeds[0]]:
        intervals = [rows[seed][label][statistic] for seed in seeds]
        cells = [f"{i:{number_format}}" + (" *" if i.excludes_zero() else "") for i in intervals]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {seed_verdict(intervals)} |")
    return lines
