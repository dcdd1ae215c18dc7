"""Lesson 10's section 4: a conditional latent diffusion prior p(z | c) on lesson 8's CVAE (``utils.priors``,
``make priors``) against the CVAE's own learned Gaussian prior p(z | c), through the one harness: as decoded (no
solve), best of b, and SIMP warm-started from the decoded design, at equal budgets of finite-element solves, judged
like lesson 8's study (:data:`RULE`: at the reference's volume) against the independent references, with paired
bootstrap intervals for the differences. Lesson 10 runs it on a subset of the validation problems;
``make evaluate-priors`` (tools/evaluate_priors.py) on all of them. The test split is not read."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from studies import cvae_study
from studies.harness import LABELS, Method, Stopwatch, StudyProblems, judge_results, run_methods
from studies.methods import BestOf, Decoder, Latents, SimpFrom, Start, conditional_decoder, decoded_start, prior_latents
from studies.uncertainty import Interval, paired_bootstrap
from utils.metrics import DesignMetrics
from utils.priors import DiffusionPrior
from utils.tables import format_value, range_cell

# Lesson 8's threshold rule: every design judged at the reference's volume.
RULE = cvae_study.RULE
# The budgets of finite-element solves per problem the study spends (best of b, SIMP iterations).
STUDY_BUDGETS = (1, 2, 5, 10)
# The rows "as decoded" (no solve): what each prior gives without verification.
DECODED_ROWS = ("μ_p(c) decoded (the CVAE's design)", "z ~ p(z | c) decoded (one draw)",
                "z ~ diffusion prior decoded (one draw)")
# The table's figures: DesignMetrics.summary() key → heading (each a range over the seeds where it depends on one).
COLUMNS = {"CE median": "median CE", "CE p90": "p90 CE", "CE > 10 % share": "> 10 % worse",
           "floating material share": "floating", "load disrespect share": "load disr.", "ΔV median": "median ΔV",
           "ms": "ms per design"}
# The methods whose designs depend on the seed (the diffusion prior's training and every draw), and the controls
# that do not (run once).
SEEDED_KEYS = ("best_of_cvae", "best_of_cvae_diffusion", "simp_from_cvae_diffusion")
CONTROL_KEYS = ("simp_uniform", "simp_from_cvae")
# The differences the lesson concludes from: (A, B) method keys (A − B) at these budgets, and the decoded draws.
PAIRS = (("best_of_cvae_diffusion", "best_of_cvae"), ("simp_from_cvae_diffusion", "simp_from_cvae"))
PAIR_BUDGETS = (5, 10)
DECODED_PAIRS = ((DECODED_ROWS[2], DECODED_ROWS[0]), (DECODED_ROWS[2], DECODED_ROWS[1]))
# The statistics of the intervals: a figure of the per-design metrics, (R, N) along an axis → (R,).
STATISTICS: dict[str, tuple[str, Callable[[np.ndarray, int], np.ndarray]]] = {
    "median CE": ("compliance_error", lambda v, axis: np.median(v, axis=axis)),
    "p90 CE": ("compliance_error", lambda v, axis: np.percentile(v, 90, axis=axis)),
    "share > 10 % worse": ("compliance_error", lambda v, axis: np.mean(v > 0.10, axis=axis)),
    "floating material share": ("floating_material", lambda v, axis: np.mean(v, axis=axis)),
}


def diffusion_latents(prior: DiffusionPrior, seed: int) -> Latents:
    """k draws of the conditional diffusion prior for each problem, ``(k, N, d)`` on the conditions' device: problem
    i's from a generator seeded with (seed, its id) (all its T noise vectors per draw), so its draws depend on
    neither the other problems nor, for the first ones, on k (like the harness's normal draws)."""
    def latents(problems: StudyProblems, k: int) -> torch.Tensor:
        n, steps, dim = len(problems), prior.steps, prior.latent_dim
        noise = np.stack([np.random.default_rng([seed, int(i)]).standard_normal((k, steps, dim))
                          for i in problems.ids], axis=1)  # (k, N, T, d)
        noise = torch.as_tensor(noise).reshape(k * n, steps, dim).transpose(0, 1)
        z = prior.sample_from_noise(noise, problems.conditions.repeat(k, 1))  # draw j of problem i: row j·N + i
        return z.reshape(k, n, dim).to(problems.conditions)
    return latents


def latent_start(latents: Latents, decoder: Decoder) -> Start:
    """A warm start: the design decoded from the first latent of ``latents`` (drawing and decoding timed; no solve)."""
    def start(problems: StudyProblems) -> tuple[np.ndarray, float]:
        with torch.no_grad(), Stopwatch(problems.device) as watch:
            designs = torch.sigmoid(decoder(problems)(latents(problems, 1)[0])).double().cpu().numpy()
        return designs, watch.seconds
    return start


def seeded_methods(cvae: nn.Module, diffusion: DiffusionPrior, seed: int) -> list[Method]:
    """The methods that depend on ``seed``: best of b from the learned prior (μ_p(c) first, then draws) and from the
    diffusion prior (draws only), and SIMP warm-started from the diffusion prior's first draw."""
    decoder = conditional_decoder(cvae)
    drawn = diffusion_latents(diffusion, seed)
    return [BestOf("best_of_cvae", prior_latents(cvae, seed), decoder),
            BestOf("best_of_cvae_diffusion", drawn, decoder),
            SimpFrom("simp_from_cvae_diffusion", latent_start(drawn, decoder))]


def control_methods(cvae: nn.Module) -> list[Method]:
    """The controls, the same for every seed: SIMP from a uniform start, and from the CVAE's design at μ_p(c)."""
    return [SimpFrom("simp_uniform"), SimpFrom("simp_from_cvae", decoded_start(cvae))]


@dataclass(frozen=True)
class PriorStudy:
    """The study on a set of problems: per seed, every method's judgements by key and budget (the controls the same
    object for every seed), its seconds for all the problems by key and budget (the harness's timing rule), and the
    decoded designs' judgements by :data:`DECODED_ROWS`."""

    problems: StudyProblems
    judgements: dict[int, dict[str, dict[int, DesignMetrics]]]
    seconds: dict[int, dict[str, dict[int, float]]]
    decoded: dict[int, dict[str, DesignMetrics]]

    @property
    def seeds(self) -> list[int]:
        return list(self.judgements)

    def rows(self, budgets: Sequence[int]) -> dict[str, list[dict[str, float]]]:
        """The table: per row (decoded, then each method at each budget), each seed's summary figures and "ms" (wall
        milliseconds per design, the timing rule; NaN for the decoded rows); the rows that do not depend on the seed
        hold one entry."""
        n = len(self.problems)
        rows: dict[str, list[dict[str, float]]] = {
            name: [{**self.decoded[s][name].summary(), "ms": float("nan")}
                   for s in (self.seeds if name != DECODED_ROWS[0] else self.seeds[:1])] for name in DECODED_ROWS}
        for b in budgets:
            for key in (*CONTROL_KEYS, *SEEDED_KEYS):
                seeds = self.seeds if key in SEEDED_KEYS and not (key == "best_of_cvae" and b == 1) else self.seeds[:1]
                rows[f"{LABELS[key]}, b = {b}"] = [{**self.judgements[s][key][b].summary(),
                                                    "ms": 1e3 * self.seconds[s][key][b] / n} for s in seeds]
        return rows

    def differences(self) -> dict[str, dict[str, list[Interval]]]:
        """The diffusion prior against the learned prior (A − B, paired over the problems), per seed, at those budgets
        of :data:`PAIR_BUDGETS` the study ran: {row: {statistic: [each seed's interval]}}."""
        pairs: dict[str, list[tuple[DesignMetrics, DesignMetrics]]] = {}
        for first, second in DECODED_PAIRS:
            pairs[f"{first} − {second}"] = [(self.decoded[s][first], self.decoded[s][second]) for s in self.seeds]
        for first, second in PAIRS:
            for b in (b for b in PAIR_BUDGETS if b in self.judgements[self.seeds[0]][first]):
                pairs[f"{LABELS[first]} − {LABELS[second]}, b = {b}"] = [
                    (self.judgements[s][first][b], self.judgements[s][second][b]) for s in self.seeds]
        return {label: {name: [paired_bootstrap(getattr(a, field).astype(float), getattr(c, field).astype(float),
                                                statistic, seed=s) for s, (a, c) in zip(self.seeds, per_seed,
                                                                                       strict=True)]
                        for name, (field, statistic) in STATISTICS.items()}
                for label, per_seed in pairs.items()}


def run_prior_study(cvae: nn.Module, diffusion_priors: dict[int, DiffusionPrior], problems: StudyProblems,
                    budgets: Sequence[int] = STUDY_BUDGETS, progress: Callable[[str], None] | None = None
                    ) -> PriorStudy:
    """The controls once and every seed's methods on ``problems`` (seed s: the diffusion prior trained with seed s,
    every draw from seed s), judged under the problems' rule, with the decoded designs of :data:`DECODED_ROWS`."""
    control_results = run_methods(control_methods(cvae), problems, budgets, progress)
    controls = judge_results(control_results, problems)
    decode = conditional_decoder(cvae)(problems)
    judgements, seconds, decoded = {}, {}, {}
    for seed, diffusion in diffusion_priors.items():
        results = run_methods(seeded_methods(cvae, diffusion, seed), problems, budgets, progress)
        judgements[seed] = {**controls, **judge_results(results, problems)}
        seconds[seed] = {key: result.seconds for key, result in {**control_results, **results}.items()}
        with torch.no_grad():
            draw = prior_latents(cvae, seed)(problems, 2)[1]
            drawn_design = torch.sigmoid(decode(draw)).double().cpu().numpy()
        decoded[seed] = {name: problems.judge(design, problems.rule) for name, design in zip(
            DECODED_ROWS, (results["best_of_cvae"].decoded, drawn_design, results["best_of_cvae_diffusion"].decoded),
            strict=True)}
    return PriorStudy(problems, judgements, seconds, decoded)


def table_cells(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, str]]:
    """:meth:`PriorStudy.rows` as text: each figure of :data:`COLUMNS` in percent (milliseconds with one decimal),
    "low – high" over the seeds (one value where a row has one, "–" where it is not defined)."""
    def cell(values: list[float], number_format: str) -> str:
        if len(values) == 1 or np.isnan(values).all():
            return format_value(values[0], number_format)
        return range_cell(values, number_format)

    return {name: {key: cell([seed[key] for seed in per_seed], ".1f" if key == "ms" else ".1%") for key in COLUMNS}
            for name, per_seed in rows.items()}


def text_table(cells: dict[str, dict[str, str]]) -> str:
    """The cells of :func:`table_cells` as aligned text (a notebook's output)."""
    width = max(map(len, cells))
    widths = {key: max(len(title), *(len(row[key]) for row in cells.values())) for key, title in COLUMNS.items()}
    lines = [" " * width + "".join(f"  {title:>{widths[key]}}" for key, title in COLUMNS.items())]
    lines += [f"{name:<{width}}" + "".join(f"  {row[key]:>{widths[key]}}" for key in COLUMNS)
              for name, row in cells.items()]
    return "\n".join(lines)


def markdown_row(cells: Sequence[str]) -> str:
    """One row of a markdown table, a "|" inside a cell (as in "p(z | c)") escaped so that it does not end it."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def markdown_table(cells: dict[str, dict[str, str]]) -> list[str]:
    """The cells of :func:`table_cells` as a markdown table (its lines)."""
    return [markdown_row(["", *COLUMNS.values()]), "| --- |" + " ---: |" * len(COLUMNS),
            *(markdown_row([name, *(row[key] for key in COLUMNS)]) for name, row in cells.items())]


def interval_lines(differences: dict[str, dict[str, list[Interval]]], markdown: bool = False) -> list[str]:
    """:meth:`PriorStudy.differences` as lines, one per difference and statistic, each seed's estimate and 95 %
    interval (a star where it excludes 0), as text or as a markdown table."""
    lines = ["| A − B | statistic | each seed: A − B [95 % interval] |", "| --- | --- | --- |"] if markdown else []
    for label, statistics in differences.items():
        for name, intervals in statistics.items():
            seeds = "; ".join(f"{interval:+.1%}{' *' if interval.excludes_zero() else ''}" for interval in intervals)
            lines.append(markdown_row([label, name, seeds]) if markdown else f"{label}, {name}: {seeds}")
    return lines
