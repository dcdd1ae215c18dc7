#!/usr/bin/env python3
"""The two cited methods of lesson 9 reproduced on a subset of the test problems (``make evaluate-published``):
Hoyer et al.'s neural reparametrisation against pixels under the same L-BFGS, and CMA-ES in the CVAE's latent against
CMA-ES on coarse pixels, SIMP beside it for scale (studies.published_methods). Every design is thresholded at its
volume target and judged against the independent reference thresholded the same way (the harness's judge, rule
``at_target_volume``), with paired bootstrap intervals (studies.uncertainty) for each method against its control.
Each chunk of problems is kept in build/evaluate_published, so a run can be split and resumed. Writes
``docs/results/published.md``."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from studies.harness import LABELS, StudyProblems, judge_results
from studies.methods import SimpFrom, decoded_start
from studies.published_methods import HOYER_BUDGET, cmaes_methods, hoyer_methods
from studies.references import load_references
from studies.uncertainty import Interval, markdown_intervals, paired_bootstrap
from tools.evaluate_latent import BROKEN_CE, cached, percent
from utils.cvae import load_models
from utils.data import TopologyData, load_topology_dataset
from utils.design_space import frozen
from utils.metrics import DesignMetrics
from utils.paths import REPO_ROOT
from utils.settings import CVAE_CHECKPOINT_PATH
from utils.threads import single_threaded_blas

RESULTS = REPO_ROOT / "docs" / "results" / "published.md"
RULE = "at_target_volume"
# Budgets (finite-element solves per problem) the tables show; both studies run once to the largest.
BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# Hoyer et al.'s claim is about final quality: the intervals at small budgets and at their budget.
HOYER_INTERVAL_BUDGETS = (10, 20, 50, 100, HOYER_BUDGET)
HOYER_PAIRS = (("hoyer_cnn_lbfgs", "hoyer_pixels_lbfgs"), ("hoyer_cnn_lbfgs", "hoyer_pixels_lbfgs_cnn_start"))
# Kus & Bessa's claim: the latent at b solves against coarse pixels at 10 b; and at equal solves.
TENFOLD_BUDGETS = (10, 20, 50, 100)
CMAES_EQUAL_PAIRS = (("cmaes_cvae_latent", "cmaes_coarse_pixels"),
                     ("cmaes_cvae_latent", "cmaes_coarse_pixels_cvae_start"), ("simp_from_cvae", "cmaes_cvae_latent"),
                     ("simp_uniform", "cmaes_cvae_latent"))
CMAES_INTERVAL_BUDGETS = (10, 50, 100, 1000)
CHUNK = 2
# Part of every cached chunk's name: a chunk written by an older version is recomputed, never misread.
CACHE_FORMAT = "published1"
# The statistics of the intervals: CEs (R, N) → (R,).
STATISTICS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "median CE": lambda ce, axis: np.median(ce, axis=axis),
    "p90 CE": lambda ce, axis: np.percentile(ce, 90, axis=axis),
    "mean CE": lambda ce, axis: np.mean(ce, axis=axis),
    "share > 10 % worse": lambda ce, axis: np.mean(ce > 0.10, axis=axis),
}
# The figure tables: DesignMetrics.summary() key, caption, signed (a CE) or not (a share).
FIGURES = (("CE median", "median CE", True), ("CE p90", "p90 CE", True), ("CE mean", "mean CE", True),
           ("CE > 10 % share", "> 10 % worse", False))


def run_method(method, problems: StudyProblems, budgets: tuple[int, ...]) -> dict:  # noqa: ANN001 (a Method)
    """One method on one chunk: {"judgements": {b: DesignMetrics}, "seconds": {b: s}, "restarts": [per problem]}."""
    with single_threaded_blas():
        run = method.run(problems, budgets)
    return {"judgements": judge_results({method.key: run}, problems)[method.key], "seconds": run.seconds,
            "restarts": list(getattr(method, "restarts", []))}


def evaluate(name: str, methods: Sequence, data: TopologyData, references: np.ndarray, budgets: tuple[int, ...],
             cache: Path, part: tuple[int, int]) -> dict | None:
    """Every method on every problem of ``data``, ``CHUNK`` problems at a time, each method's chunk cached (a method
    added later runs alone); None when ``part`` leaves chunks to another process. Returns {"judgements": {key: {b:
    DesignMetrics}}, "seconds": {key: {b: s for all problems}}, "restarts": {key: [per problem]}}."""
    merged: dict = {"judgements": {}, "seconds": {}, "restarts": {}}
    complete = True
    for number, start in enumerate(tqdm(range(0, len(data), CHUNK), desc=f"{name}, {CHUNK} problems at a time")):
        indices = np.arange(start, min(start + CHUNK, len(data)))
        for method in methods:
            path = cache / f"{CACHE_FORMAT}_{name}_{method.key}_{start}_{indices[-1]}_to{max(budgets)}.pkl"
            if number % part[1] != part[0] and not path.exists():
                complete = False
                continue
            result = cached(path, lambda indices=indices, method=method: run_method(
                method, StudyProblems.of(data.take(indices), RULE, "cpu", references[indices], indices), budgets))
            key = method.key
            for b, metrics in result["judgements"].items():
                merged["judgements"].setdefault(key, {}).setdefault(b, []).append(metrics)
                merged["seconds"].setdefault(key, {}).setdefault(b, 0.0)
                merged["seconds"][key][b] += result["seconds"][b]
            merged["restarts"].setdefault(key, []).extend(result["restarts"])
    if not complete:
        return None
    merged["judgements"] = {key: {b: DesignMetrics.concatenate(parts) for b, parts in per_budget.items()}
                            for key, per_budget in merged["judgements"].items()}
    return merged


def percent_bound(value: float) -> str:
    """A difference of CEs (or one end of its interval) in per cent; beyond ±BROKEN_CE it is a broken design's
    compliance on one side, and its digits say nothing but that."""
    return "broken" if abs(value) > BROKEN_CE else percent(value)


def percent_interval(interval: Interval) -> str:
    """An A − B interval in per cent: "+1.95 % [−2.08 %, +10.82 %]"."""
    return f"{percent_bound(interval.estimate)} [{percent_bound(interval.low)}, {percent_bound(interval.high)}]"


def figure_tables(judgements: dict[str, dict[int, DesignMetrics]], budgets: Sequence[int]) -> list[str]:
    """One markdown table per figure: a row per method, a column per budget."""
    lines = []
    for figure, caption, signed in FIGURES:
        lines += [f"**{caption}** (columns: budget in finite-element solves)", "",
                  "| method | " + " | ".join(map(str, budgets)) + " |", "| --- |" + " --- |" * len(budgets)]
        for key, per_budget in judgements.items():
            lines.append(f"| {LABELS[key]} | " + " | ".join(percent(per_budget[b].summary()[figure], signed)
                                                     for b in budgets) + " |")
        lines.append("")
    return lines


def interval_rows(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[list[str], dict[str, dict[str, Interval]]]:
    """Paired bootstrap intervals of every statistic for each row's (A, B) CEs, as a markdown table in per cent (* the
    interval excludes 0), and the intervals themselves."""
    intervals = {label: {name: paired_bootstrap(a, b, statistic) for name, statistic in STATISTICS.items()}
                 for label, (a, b) in rows.items()}
    return [*markdown_intervals(intervals, cell=percent_interval), ""], intervals


def seconds_table(result: dict, budgets: Sequence[int], problems: int) -> list[str]:
    """Wall seconds per problem to each budget (the method's own work, judging excluded), and restarts."""
    lines = ["| method | " + " | ".join(f"s to {b}" for b in budgets) + " | optimiser restarts (per problem) |",
             "| --- |" + " --- |" * (len(budgets) + 1)]
    for key, per_budget in result["seconds"].items():
        restarts = result["restarts"].get(key) or []
        lines.append(f"| {LABELS[key]} | " + " | ".join(f"{per_budget[b] / problems:.2f}" for b in budgets)
                     + f" | {'—' if not restarts else f'median {np.median(restarts):.0f}, max {max(restarts)}'} |")
    return [*lines, ""]


def compliance_errors(result: dict) -> dict[str, dict[int, np.ndarray]]:
    """{method: {budget: CE per problem}} of a study's result."""
    return {key: {b: m.compliance_error for b, m in per_budget.items()}
            for key, per_budget in result["judgements"].items()}


def verdict(interval: Interval, better: str, worse: str, unresolved: str) -> str:
    """Which way an A − B interval of CEs points: A better (below 0), worse (above 0) or unresolved."""
    if interval.high < 0:
        return better
    if interval.low > 0:
        return worse
    return unresolved


def section_start(title: str, prose: str, result: dict, budget: int) -> list[str]:
    """A study's heading, its description and its figure tables up to ``budget``."""
    return [f"## {title}", "", prose, "", *figure_tables(result["judgements"], [b for b in BUDGETS if b <= budget])]


def wall_time_lines(result: dict, budget: int, problems: int) -> list[str]:
    return ["**Wall time** (seconds per problem, this machine, one torch thread, one BLAS thread):", "",
            *seconds_table(result, [b for b in (10, 100, budget) if b <= budget], problems)]


def hoyer_section(result: dict, problems: int, budget: int) -> list[str]:
    """Hoyer et al.'s study: tables, intervals against both controls, wall time, the verdict at their budget."""
    ce = compliance_errors(result)
    lines = section_start(
             f"Neural reparametrisation, adapted from Hoyer et al. (2019): {problems} test problems",
             "Adapted from their description (google-research/neural-structural-optimization: `models.CNNModel`, "
             "`train.train_lbfgs`, `topo_physics.physical_density`), re-implemented in PyTorch "
             "(`studies/published_methods.py`): their CNN (a trainable 128-d input, a dense layer to 4 × 8 × 32, five "
             "stages of tanh → bilinear upsampling ×1, 2, 2, 2, 1 → normalisation → 5×5 convolution with 128, 64, 32, "
             "16, 1 filters → a trainable offset per element; 567,553 parameters), the volume-constrained sigmoid and "
             "a cone filter of radius 2, L-BFGS-B with their settings (memory 10, factr 1, pgtol 1e-14), the best "
             f"design over all evaluations, to their code's default budget ({budget} function evaluations, one solve "
             "each, line searches included). Controls: pixels (a logit per element) under the same L-BFGS-B, "
             "projection, filter and best-over-trajectory rule, from their constant start (their pixel baseline) and "
             "from the CNN's initial design (their seeded pixel runs: the same start). **What differs from their "
             "publication**: our problems (64 × 32 cantilevers, one load on the right edge, not their 116 tasks; the "
             "grid divides by 8, so their resizes apply unchanged); our finite-element model and adjoint gradient "
             "(the same Q4 element, penalty 3, E_min 1e-9, ν 0.3, a banded Cholesky solve); PyTorch's initialisers "
             "from our seeds; one seed per problem (they ran ten); when L-BFGS-B stops before the budget (a failed "
             "line search, or no progress), we restart it from its last iterate with an empty memory to spend the "
             "budget (they stop): the restarts are counted below. Their quality figure is the final compliance; "
             "ours is CE after thresholding at the volume target, as every method of lesson 9 is judged.", result,
             budget)
    pairs = {f"{LABELS[a]} − {LABELS[b]}, {n} solves": (ce[a][n], ce[b][n])
             for a, b in HOYER_PAIRS for n in HOYER_INTERVAL_BUDGETS if n <= budget}
    table, intervals = interval_rows(pairs)
    lines += ["**CNN against its controls** (A − B on the same problems, paired bootstrap 95 % intervals, 4,000 "
              "resamplings; * the interval excludes 0; negative: the CNN's designs are stiffer):", "", *table]
    lines += wall_time_lines(result, budget, problems)
    final = intervals[f"{LABELS[HOYER_PAIRS[0][0]]} − {LABELS[HOYER_PAIRS[0][1]]}, {budget} solves"]["median CE"]
    lines += [f"**Verdict on their claim** (the reparametrised designs are better than pixels' under the same "
              f"optimiser, at their final budget): median CE difference {percent_interval(final)} → " + verdict(
                  final, "supported on these problems (the interval lies below 0).",
                  "contradicted on these problems: pixels under L-BFGS give the stiffer designs (the interval lies "
                  "above 0).",
                  f"not supported: the interval includes 0 ({problems} problems cannot tell the two apart)."), ""]
    return lines


def cmaes_section(result: dict, problems: int, budget: int) -> list[str]:
    """Kus & Bessa's claim: tables, the tenfold and equal-solve intervals, wall time, a verdict per claim."""
    ce = compliance_errors(result)
    lines = section_start(
             f"Gradient-free search in a pre-trained latent, Kus & Bessa's claim: {problems} test problems",
             "Kus & Bessa (2024, \"Gradient-free neural topology optimization\", arXiv:2403.04937v2, abstract) "
             "report that their method \"leads to at least one order of magnitude decrease in iteration count to "
             "reach minimum compliance when optimizing designs in latent space, as opposed to the conventional "
             "gradient-free approach without latent parameterization\", and add: \"gradient-based topology "
             "optimization is more efficient for problems that are differentiable and well-behaved, such as "
             "compliance optimization\". Tested here with CMA-ES "
             "(`cma` 4.5.0, default population: 12 in the 16-d latent, 18 on the 128 coarse pixels) on the CVAE's "
             "latent z for the problem's condition (start μ_p(c), spread σ_p(c)) against CMA-ES on 16 × 8 logits "
             "upsampled bilinearly to 64 × 32 (from a uniform start, and from the CVAE's design pooled to the "
             "coarse grid), the same volume projection, each candidate thresholded at the volume target and solved "
             "once (its compliance the fitness, so the CE here is the fitness's), the best candidate so far the "
             "design at budget b. They count iterations (generations), we count solves: with these populations ten "
             "times fewer generations is fifteen times fewer solves, so the tenfold test below in solves asks less "
             "than their claim. SIMP from a uniform start (the dataset's settings) is beside it for scale. The "
             "CVAE's offline cost (the 1,200 training designs' SIMP runs and its training) is not counted. **What "
             "differs from their study**: our CVAE (a 16-d latent conditioned on the problem), our problems and our "
             "gradient-free baseline (coarse pixels, as the issue proposes; their networks, problems and baselines "
             "are not reproduced here): this tests their claim's direction on our problems, not their numbers.",
             result, budget)
    latent, pixels = "cmaes_cvae_latent", "cmaes_coarse_pixels"
    tenfold = {f"{LABELS[latent]} at {n} − {LABELS[pixels]} at {10 * n}": (ce[latent][n], ce[pixels][10 * n])
               for n in TENFOLD_BUDGETS if 10 * n <= budget}
    table, tenfold_intervals = interval_rows(tenfold)
    lines += ["**The latent at b solves against coarse pixels at 10 b** (A − B, paired bootstrap 95 % intervals; "
              "negative: the latent with ten times fewer solves is still better):", "", *table]
    equal = {f"{LABELS[a]} − {LABELS[b]}, {n} solves": (ce[a][n], ce[b][n])
             for a, b in CMAES_EQUAL_PAIRS for n in CMAES_INTERVAL_BUDGETS if n <= budget}
    table, equal_intervals = interval_rows(equal)
    lines += ["**At equal solves** (A − B, paired bootstrap 95 % intervals):", "", *table]
    lines += wall_time_lines(result, budget, problems)
    medians = [tenfold_intervals[label]["median CE"] for label in tenfold]
    lines += ["**Verdict on the first claim** (a pre-trained latent makes gradient-free search at least ten times "
              "faster): "
              + "; ".join(f"{label}: {percent_interval(i)}" for label, i in zip(tenfold, medians, strict=True))
              + " → " + ("not tested: the budget is below ten times the smallest latent budget." if not medians else
                         "supported on these problems: at every pair the latent with ten times fewer solves has "
                         "the lower median CE (each interval below 0)." if all(i.high < 0 for i in medians) else
                         "not supported at every pair: "
                         + ", ".join(verdict(i, "lower", "higher", "unresolved") for i in medians)
                         + " (latent's median CE against the pixels' with ten times the solves).")]
    shown = [n for n in CMAES_INTERVAL_BUDGETS if n <= budget]
    lines += ["", "**Verdict on the second claim** (gradient-based optimisation stays more efficient for compliance), "
              "SIMP − latent CMA-ES median CE at equal solves (negative: SIMP better):"]
    for simp, start in (("simp_from_cvae", "from the CVAE's design, the latent search's own start"),
                        ("simp_uniform", "from a uniform start, without the CVAE")):
        medians = [equal_intervals[f"{LABELS[simp]} − {LABELS[latent]}, {n} solves"]["median CE"] for n in shown]
        lines.append(f"- SIMP {start}: " + "; ".join(
            f"{n} solves {percent_interval(i)} ({verdict(i, 'SIMP better', 'CMA-ES better', 'unresolved')})"
            for n, i in zip(shown, medians, strict=True)) + ".")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lesson 9's cited methods reproduced on a subset of the test set.")
    parser.add_argument("--hoyer-problems", type=int, default=6, help="the first N test problems for Hoyer et al.")
    parser.add_argument("--cmaes-problems", type=int, default=12, help="the first N test problems for CMA-ES")
    parser.add_argument("--hoyer-budget", type=int, default=HOYER_BUDGET, help="function evaluations (solves)")
    parser.add_argument("--cmaes-budget", type=int, default=1000, help="candidates (solves) per problem")
    parser.add_argument("--only", choices=("hoyer", "cmaes"), default=None, help="one study only (no report)")
    parser.add_argument("--part", default="0/1", help="K/N: every N-th chunk from the K-th only (no report)")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "evaluate_published")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the markdown file to write")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the networks are small)")
    args = parser.parse_args(argv)
    begin, load_before = time.perf_counter(), os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    part = tuple(int(v) for v in args.part.split("/"))
    models, record = load_models(CVAE_CHECKPOINT_PATH, "cpu")
    cvae = frozen(models["cvae"])
    test = load_topology_dataset().subset("test")
    references = load_references("test").density
    studies = {
        "hoyer": (hoyer_methods(), args.hoyer_problems, args.hoyer_budget, hoyer_section),
        "cmaes": ([*cmaes_methods(cvae), SimpFrom("simp_uniform"), SimpFrom("simp_from_cvae", decoded_start(cvae))],
                  args.cmaes_problems, args.cmaes_budget,
                  cmaes_section)}
    sections, sizes = [], {}
    for name, (methods, count, budget, section) in studies.items():
        if args.only and name != args.only:
            continue
        count = min(count, len(test))
        sizes[name] = count
        budgets = tuple(b for b in BUDGETS if b < budget) + (budget,)
        result = evaluate(name, methods, test.take(np.arange(count)), references[:count], budgets, args.cache,
                          part)
        if result is not None:
            sections += section(result, count, budget)
    if args.only or part != (0, 1):
        return 0
    subset = test.take(np.arange(max(sizes.values())))
    lines = ["# Lesson 9's cited methods, reproduced", "",
             f"Written by `python -m tools.evaluate_published --hoyer-problems {sizes['hoyer']} --cmaes-problems "
             f"{sizes['cmaes']} --hoyer-budget {args.hoyer_budget} --cmaes-budget {args.cmaes_budget}` (`make "
             f"evaluate-published`); CVAE checkpoint SHA-256 {record['sha256'][:12]}…. The subset: the first "
             f"{sizes['hoyer']} (Hoyer et al.) and {sizes['cmaes']} (CMA-ES) problems of the test split (volume "
             f"fractions {subset.volfrac.min():.2f}–{subset.volfrac.max():.2f}, load heights "
             f"{subset.load_y.min():.1f}–{subset.load_y.max():.1f}, angles {subset.angle_deg.min():.0f}°–"
             f"{subset.angle_deg.max():.0f}°), read here and nowhere else; no choice was made on them. Every design is "
             "thresholded at its problem's volume target (rule `at_target_volume`) and judged under its own problem "
             "against the independent reference (`make references`) thresholded the same way: CE = C / C_ref − 1, "
             "signed, in per cent (positive: less stiff than the reference), E_min = 1e-9. A design whose load is "
             f"cut off from the support has a compliance of order 1 / E_min: a CE above {100 * BROKEN_CE:,.0f} % is "
             "printed \"broken\" (and so is a difference or an interval's end beyond it), and a mean with one such "
             "design in it only says that it exists. Budgets count finite-element solves per problem (one per function "
             "evaluation, line searches included; one per CMA-ES candidate; one per SIMP iteration; judging not "
             "counted). Seeds: problem i's network and CMA-ES run are drawn from i (seed 0), one draw each: the "
             "intervals cover the problems, not the seeds.", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other work, one torch thread and one "
             "BLAS thread per run. Each chunk of two problems ran when it was computed (cached, one heavy job at a "
             "time on this machine, other agents' light work beside it), not when this report was written (load "
             f"average {load_before:.1f} then); wall times are the methods' own work (decoding, projection, optimiser, "
             "solves), judging excluded, and carry their chunk's load: compare them with each other, not across "
             "machines.",
             "", *sections,
             f"Report written in {time.perf_counter() - begin:.0f} s (from the chunks kept in {args.cache.name}/ where "
             "they exist; each method's own time is in the tables)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
