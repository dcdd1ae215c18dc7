#!/usr/bin/env python3
"""Lesson 9's comparison on every test problem (``make evaluate-latent``): SIMP from a uniform start, SIMP warm-started
from the CVAE's, the baseline's and the nearest training design (and from a blend of the CVAE's with uniform), best of
b of the CVAE and of the nearest training designs, latent searches in lesson 8's CVAE and lesson 7's VAE, Adam on the
pixels (the latent search's control), L-BFGS on the latent and on the pixels (the optimiser's control) and an
untrained decoder with Adam, at equal budgets of finite-element solves; every design thresholded at its volume target
and judged against the independent reference thresholded the same way (studies.latent_study: the harness lesson 9
runs on a subset). Every hyperparameter is chosen on validation problems first (studies.latent_study.choose), each
sweep recorded. Prints the tables and writes them as markdown to ``docs/results/latent.md``.

``--training-seeds 0 1 2`` writes ``docs/results/latent_training_seeds.md`` instead: the methods whose designs depend
on lesson 8's trained models (studies.latent_study.TRAINED_METHODS) rerun with the CVAE and the baseline of each
training seed (``make cvae-checkpoint`` and ``python -m tools.train_cvae --seed N``), the hyperparameters as chosen
on the shipped seed's models, each figure as its range over the seeds and each conclusion's interval seed by seed."""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from studies.cvae_study import training_seed_models
from studies.harness import (
    BUDGETS,
    FINE_BUDGETS,
    LABELS,
    SUMMARY_COLUMNS,
    StudyProblems,
    judge_results,
    run_methods,
    solves_to_within,
)
from studies.latent_study import (
    CANDIDATES,
    CONTROLS,
    OPTIMISER_CONTROLS,
    RULE,
    SWEEP_BUDGETS,
    SWEPT_METHOD,
    TRAINED_METHODS,
    Choices,
    choose,
    latent_methods,
)
from studies.methods import Retrieval
from studies.references import load_references
from studies.uncertainty import difference_rows, markdown_intervals, markdown_seed_differences
from utils import get_device
from utils.cvae import load_models
from utils.data import TopologyData, load_topology_dataset
from utils.design_space import frozen
from utils.judging import Judge
from utils.metrics import DesignMetrics, floating_material
from utils.paths import REPO_ROOT
from utils.plotting import BROKEN_RATIO
from utils.settings import (
    CHECKPOINT_PATH,
    CVAE_CHECKPOINT_PATH,
    CVAE_SEED_MODELS,
    CVAE_TRAINING,
    CVAE_TRAINING_SEEDS,
    OOD_MANIFEST_FILE,
    cvae_seed_checkpoint_path,
)
from utils.tables import range_cell
from utils.vae import load_checkpoint

RESULTS = REPO_ROOT / "docs" / "results" / "latent.md"
SEED_RESULTS = REPO_ROOT / "docs" / "results" / "latent_seeds.md"
TRAINING_SEED_RESULTS = REPO_ROOT / "docs" / "results" / "latent_training_seeds.md"
# The seed study's figures: (summary key, caption, format) at each of SEED_BUDGETS.
SEED_FIGURES = (("CE median", "median CE", "+.2%"), ("CE p90", "p90 CE", "+.2%"), ("CE p95", "p95 CE", "+.2%"),
                ("CE > 10 % share", "> 10 % worse", ".1%"), ("floating material share", "floating", ".1%"))
SEED_BUDGETS = (10, 20, 50)
CHUNK = 25
# The differences lesson 9 concludes from (method A, method B), with paired bootstrap intervals at these budgets.
# Each method against its control (studies.latent_study.CONTROLS), each L-BFGS search against Adam on the same
# variables (OPTIMISER_CONTROLS), then the search against the warm start and the warm start against SIMP from a
# uniform start.
CONCLUSION_PAIRS = (*CONTROLS.items(), *OPTIMISER_CONTROLS.items(), ("cvae_latent_sharpening", "simp_from_cvae"),
                    ("simp_from_cvae", "simp_uniform"))
CONCLUSION_BUDGETS = (10, 20, 100)
# Part of every cached chunk's name: a chunk written by an older harness or judge is recomputed, never misread.
CACHE_FORMAT = "harness2"
# A CE above this is a broken design (the compliance of a cut load path): its digits say nothing but "broken".
BROKEN_CE = BROKEN_RATIO - 1


def choice_lines(validation: TopologyData, references: np.ndarray | None, models: dict, vae: torch.nn.Module,
                 retrieval: Retrieval, device: torch.device) -> tuple[Choices, list[str]]:
    """studies.latent_study.choose on the validation problems, and its markdown record."""
    problems = StudyProblems.of(validation, RULE, device, references)
    chosen, record = choose(problems, models["cvae"], models["baseline"], vae, retrieval,
                            progress=lambda name: print(f"choosing {name} on {len(validation)} validation problems"))
    lines = [f"**Hyperparameters, chosen on {len(validation)} validation problems** (never on the test problems), one "
             "after the other in this order, each with the values chosen before it; score: the mean CE with each CE "
             f"capped at 100 % (a broken design counts as 100 % worse), after {' and '.join(map(str, SWEEP_BUDGETS))} "
             "solves, summed; the lowest wins (`studies.latent_study.choose`):", "",
             "| hyperparameter | method it tunes | value: capped mean CE at " + " / ".join(map(str, SWEEP_BUDGETS))
             + " solves | chosen |", "| --- | --- | --- | --- |"]
    for name, scores in record.items():
        cells = "; ".join(f"{value:g}: " + " / ".join(f"{v:+.2%}" for v in values) for value, values in scores.items())
        lines.append(f"| `{name}` | {LABELS[SWEPT_METHOD[name]]} | {cells} | {getattr(chosen, name):g} |")
    return chosen, [*lines, ""]


def choices_tag(choices: Choices) -> str:
    """Part of a cached result's name: the hyperparameters it ran with."""
    return hashlib.sha256(repr(choices).encode()).hexdigest()[:8]


def reference_tag(references: np.ndarray | None) -> str:
    """Part of a cached chunk's name: which reference its judgements are against."""
    return "dataset" if references is None else "independent"


def cached(path: Path, compute: Callable[[], Any]) -> Any:
    """What is kept at ``path``, else what ``compute()`` returns, then kept there (a run resumes where it stopped)."""
    if path.exists():
        return pickle.loads(path.read_bytes())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(result))
    return result


def evaluate_chunk(chunk: TopologyData, ids: np.ndarray, references: np.ndarray | None, models: dict,
                   vae: torch.nn.Module, retrieval: Retrieval, choices: Choices, device: torch.device,
                   budgets: tuple[int, ...], untrained: bool, path_of: Callable[[str], Path],
                   keys: Sequence[str] | None = None) -> dict[str, dict]:
    """Every method on the problems of ``chunk`` (numbered ``ids`` in their set), each method's result kept at
    ``path_of(key)`` (a method already kept there is not rerun): {method: {"judgements": {budget: DesignMetrics},
    "seconds": seconds for the chunk, "grey gap": thresholded / grey compliance − 1 at the largest budget}}."""
    problems = StudyProblems.of(chunk, RULE, device, references, ids)
    judge, largest = problems.judge, max(budgets)

    def run(method: object) -> dict:
        result = method.run(problems, budgets)
        designs = result.designs[largest]
        return {"judgements": {b: judge(d, RULE) for b, d in result.designs.items()},
                "seconds": result.seconds[largest],  # judge.compliances of a grey design: its penalised compliance
                "grey gap": judge.compliances_at(designs, RULE) / judge.compliances(designs) - 1}
    methods = latent_methods(models["cvae"], models["baseline"], vae, retrieval, choices, untrained=untrained,
                             keys=keys)
    return {method.key: cached(path_of(method.key), partial(run, method)) for method in methods}


def evaluate(name: str, problems_data: TopologyData, references: np.ndarray | None, models: dict,
             vae: torch.nn.Module, retrieval: Retrieval, choices: Choices,
             device: torch.device, budgets: tuple[int, ...], cache: Path, untrained: int,
             part: tuple[int, int] = (0, 1), keys: Sequence[str] | None = None, tag: str = ""
             ) -> tuple[dict[str, dict[int, DesignMetrics]], dict[str, float], dict]:
    """Every method on every problem, in chunks of ``CHUNK`` (each method's result on each chunk kept in ``cache``,
    so that a run can be resumed, split between processes, or extended by a method); the untrained decoder on the
    first ``untrained`` problems only (it costs several times the others); ``keys``: these methods only; ``tag``:
    part of the cached chunks' names (another training seed's models: ``training<seed>``). Returns the judgements
    {method: {budget: DesignMetrics}}, the seconds per problem for the whole run to the largest budget, and the
    grey-against-thresholded gaps."""
    judged: dict[str, dict[int, list[DesignMetrics]]] = {}
    seconds: dict[str, list[float]] = {}
    grey_gap: dict[str, list[float]] = {}
    for number, start in enumerate(tqdm(range(0, len(problems_data), CHUNK),
                                        desc=f"{name}, {CHUNK} problems at a time")):
        if number % part[1] != part[0]:
            continue
        indices = np.arange(start, min(start + CHUNK, len(problems_data)))
        stem = (f"{CACHE_FORMAT}_{reference_tag(references)}_{tag + '_' if tag else ''}{name}_{start}_{indices[-1]}_"
                f"{choices_tag(choices)}_to{max(budgets)}")
        result = evaluate_chunk(problems_data.take(indices), indices,
                                None if references is None else references[indices], models, vae, retrieval, choices,
                                device, budgets, start < untrained, lambda key, stem=stem: cache / f"{stem}_{key}.pkl",
                                keys)
        for method, kept in result.items():
            for b, judgement in kept["judgements"].items():
                judged.setdefault(method, {}).setdefault(b, []).append(judgement)
            seconds.setdefault(method, []).append(kept["seconds"] / len(indices))
            grey_gap.setdefault(method, []).extend(kept["grey gap"])
    merged = {name: {b: DesignMetrics.concatenate(parts) for b, parts in per_budget.items()}
              for name, per_budget in judged.items()}
    return merged, {method: float(np.mean(s)) for method, s in seconds.items()}, {"grey gap": grey_gap}


def percent(value: float, signed: bool = True) -> str:
    """A CE or a share as a percentage ("+1.07 %", "5.3 %"); a CE above :data:`BROKEN_CE` as "broken"."""
    if signed and value > BROKEN_CE:
        return "broken"
    return f"{100 * value:{'+' if signed else ''}.2f} %"


def table(judgements: dict[str, dict[int, DesignMetrics]], figure: str, budgets: tuple[int, ...],
          signed: bool) -> list[str]:
    """A markdown table: one row per method, one column per budget, the summary ``figure`` as a percentage."""
    lines = ["| method | " + " | ".join(f"{b}" for b in budgets) + " |", "| --- |" + " --- |" * len(budgets)]
    for key, per_budget in judgements.items():
        lines.append(f"| {LABELS[key]} | " + " | ".join(percent(figure(per_budget[b]), signed) for b in budgets)
                     + " |")
    return lines


def summary_figure(name: str) -> Callable[[DesignMetrics], float]:
    return lambda metrics: metrics.summary()[name]


def broken_share(metrics: DesignMetrics) -> float:
    """The share of broken designs: C / C_ref above utils.plotting.BROKEN_RATIO."""
    return float(np.mean(metrics.compliance_error > BROKEN_CE))


def report(title: str, judgements: dict, seconds: dict[str, float], extra: dict, budgets: tuple[int, ...],
           decoded_ce: np.ndarray) -> list[str]:
    """The markdown section of one set of problems."""
    lines = [f"## {title}", ""]
    for figure, caption, signed in (
            (summary_figure("CE median"), "median signed CE", True),
            (summary_figure("CE mean"), "mean signed CE", True),
            (summary_figure("CE p90"), "90th percentile of CE", True),
            (summary_figure("CE p95"), "95th percentile of CE", True),
            (summary_figure("CE > 10 % share"), "share of designs more than 10 % worse than the reference", False),
            (broken_share, f"share of broken designs (C / C_ref > {BROKEN_RATIO:g})", False),
            (summary_figure("floating material share"), "share with floating material", False),
            (summary_figure("load disrespect share"), "share with load disrespect", False),
            (summary_figure("judged VFE max"), "largest VFE (rounding of round(V·N) pixels)", False)):
        lines += [f"**{caption}** (columns: budget in finite-element solves; broken: the figure lands on a design "
                  f"with C / C_ref > {BROKEN_RATIO:g})", ""]
        lines += table(judgements, figure, budgets, signed) + [""]
    at = 20 if 20 in budgets else max(budgets)  # lesson 9's goals are set at 20 solves
    lines += [f"**At {at} solves**, with the wall time per problem for the whole run to the largest budget "
              f"({max(budgets)} solves; decoder, projection and solves included) and the solves to come within 1 % of "
              "the reference's compliance (median over problems; first point of the grid "
              f"{', '.join(map(str, sorted(next(iter(judgements.values())))))} at or below 1 %; never: share not "
              "within 1 % at "
              f"{max(budgets)} solves):", ""]
    header = ["method", *SUMMARY_COLUMNS.values(), f"s per problem ({max(budgets)} solves)",
              "solves to 1 % (median)", "never within 1 %"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key, per_budget in judgements.items():
        counts = solves_to_within(per_budget)
        summary = per_budget[at].summary()
        median = f"{np.nanmedian(counts):.0f}" if np.any(~np.isnan(counts)) else "—"
        lines.append(f"| {LABELS[key]} | " + " | ".join(percent(summary[k], not k.endswith(("share", "max")))
                                                 for k in SUMMARY_COLUMNS)
                     + f" | {seconds[key]:.2f} | {median} | {percent(np.mean(np.isnan(counts)), False)} |")
    wrong = decoded_ce > 0.10
    lines += ["", f"**Where the generated topology was wrong**: the {int(wrong.sum())} problems whose CVAE design as "
              "decoded (thresholded at the volume target) is more than 10 % worse than the reference, against the "
              "other "
              f"{int((~wrong).sum())}; median and largest CE at {at} solves:", "",
              "| method | median CE, wrong start | largest CE, wrong start | median CE, others | largest CE, others |",
              "| --- | --- | --- | --- | --- |"]
    for key, per_budget in judgements.items():
        ce = per_budget[at].compliance_error
        if len(ce) != len(decoded_ce):
            continue  # a method run on the first problems only
        parts = [percent(f(ce[mask])) if mask.any() else "—" for mask in (wrong, ~wrong) for f in (np.median, np.max)]
        lines.append(f"| {LABELS[key]} | " + " | ".join(parts) + " |")
    lines += ["", f"**Grey against thresholded** at {max(budgets)} solves: the compliance of the design thresholded at "
              "the volume target over that of the grey design the method minimised, minus 1 (median; 90th "
              "percentile):", "", "| method | median | p90 |", "| --- | --- | --- |"]
    for key, gaps in extra["grey gap"].items():
        lines.append(f"| {LABELS[key]} | {percent(np.median(gaps))} | {percent(np.percentile(gaps, 90))} |")
    return [*lines, ""]


def seed_chunk(chunk: TopologyData, ids: np.ndarray, references: np.ndarray | None, models: dict,
               vae: torch.nn.Module, retrieval: Retrieval, choices: Choices,
               device: torch.device, budgets: tuple[int, ...], seed: int, untrained: bool
               ) -> dict[str, dict[int, DesignMetrics]]:
    """The seeded methods (studies.latent_study.SEEDED_METHODS) on ``chunk`` with draw seed ``seed``, judged per
    method and budget."""
    problems = StudyProblems.of(chunk, RULE, device, references, ids)
    methods = latent_methods(models["cvae"], models["baseline"], vae, retrieval, choices, seed, untrained,
                             seeded_only=True)
    return judge_results(run_methods(methods, problems, budgets), problems)


def seed_study(sets: dict[str, TopologyData], references: dict[str, np.ndarray | None], models: dict,
               vae: torch.nn.Module, retrieval: Retrieval, choices: Choices, device: torch.device, seeds: list[int],
               untrained: int, cache: Path) -> list[str]:
    """The seeded methods' figures at :data:`SEED_BUDGETS` for each draw seed, on each set of problems: a markdown
    table per set with each figure's smallest and largest value over the seeds."""
    lines = []
    for key, problems_data in sets.items():
        per_seed: dict[int, dict[str, dict[int, DesignMetrics]]] = {}
        for seed in seeds:
            judged: dict[str, dict[int, list[DesignMetrics]]] = {}
            for start in tqdm(range(0, len(problems_data), CHUNK), desc=f"{key}, seed {seed}"):
                indices = np.arange(start, min(start + CHUNK, len(problems_data)))
                path = cache / (f"{CACHE_FORMAT}_{reference_tag(references[key])}_seed{seed}_{key}_{start}_"
                                f"{indices[-1]}_{choices_tag(choices)}_untrained{untrained}.pkl")
                chunk_references = None if references[key] is None else references[key][indices]
                result = cached(path, partial(seed_chunk, problems_data.take(indices), indices, chunk_references,
                                              models, vae, retrieval, choices,
                                              device, SEED_BUDGETS, seed, start < untrained))
                for method, per_budget in result.items():
                    for b, metrics in per_budget.items():
                        judged.setdefault(method, {}).setdefault(b, []).append(metrics)
            per_seed[seed] = {method: {b: DesignMetrics.concatenate(parts) for b, parts in per_budget.items()}
                              for method, per_budget in judged.items()}
        methods = list(per_seed[seeds[0]])
        sizes = {m: len(per_seed[seeds[0]][m][SEED_BUDGETS[0]].compliance_error) for m in methods}
        lines += [f"## {key}: {len(problems_data)} problems", "",
                  "Smallest – largest over draw seeds " + ", ".join(map(str, seeds)) + " (the untrained "
                  f"decoder on the first {sizes.get('untrained_decoder', 0)} problems only):", "",
                  *range_table(per_seed, methods, SEED_BUDGETS), ""]
    return lines


def range_table(per_seed: dict[int, dict[str, dict[int, DesignMetrics]]], methods: Sequence[str],
                budgets: Sequence[int]) -> list[str]:
    """Each method's :data:`SEED_FIGURES` at each budget as the smallest – largest over the seeds of ``per_seed``
    ({seed: judgements}): a markdown table."""
    lines = ["| method | solves | " + " | ".join(caption for _, caption, _ in SEED_FIGURES) + " |",
             "| --- | --- |" + " --- |" * len(SEED_FIGURES)]
    for method in methods:
        for b in budgets:
            cells = [range_cell([judgements[method][b].summary()[figure] for judgements in per_seed.values()],
                                number_format) for figure, _, number_format in SEED_FIGURES]
            lines.append(f"| {LABELS[method]} | {b} | " + " | ".join(cells) + " |")
    return lines


def training_seed_study(args: argparse.Namespace, sets: dict[str, TopologyData],
                        references: dict[str, np.ndarray | None], vae: torch.nn.Module, retrieval: Retrieval,
                        choices: Choices, device: torch.device) -> list[str]:
    """The methods of :data:`TRAINED_METHODS` with each training seed's models (the others, which no training seed
    changes, as with the shipped models), judged at :data:`SEED_BUDGETS`: per set of problems, each figure's range
    over the seeds and, seed by seed, the interval of each difference lesson 9 concludes from."""
    shipped, budgets = CVAE_TRAINING.seed, tuple(b for b in SEED_BUDGETS if b <= args.largest)
    if shipped not in args.training_seeds:
        raise SystemExit(f"--training-seeds must include the shipped seed {shipped}: the methods that no training "
                         "seed changes are read from its run")
    if not budgets:
        raise SystemExit(f"--largest {args.largest} is below every budget of the seed study {SEED_BUDGETS}")
    grid = tuple(b for b in FINE_BUDGETS if b < args.largest) + (args.largest,)
    seed_grid = tuple(b for b in FINE_BUDGETS if b < max(budgets)) + (max(budgets),)
    lines = []
    for key, problems_data in sets.items():
        per_seed: dict[int, dict[str, dict[int, DesignMetrics]]] = {}
        for seed in args.training_seeds:
            models = training_seed_models(seed, device)[0]
            if seed == shipped:  # the comparison's own run: every method, read from its cache where it exists
                per_seed[seed] = evaluate(key, problems_data, references[key], models, vae, retrieval, choices, device,
                                          grid, args.cache, args.untrained)[0]
            else:
                per_seed[seed] = evaluate(key, problems_data, references[key], models, vae, retrieval, choices, device,
                                          seed_grid, args.cache, 0, keys=TRAINED_METHODS, tag=f"training{seed}")[0]
        untouched = {m: j for m, j in per_seed[shipped].items() if m not in TRAINED_METHODS}
        per_seed = {seed: {**untouched, **judgements} for seed, judgements in per_seed.items()}
        seeds = ", ".join(map(str, per_seed))
        lines += [f"## {key}: {len(problems_data)} problems", "",
                  f"Smallest – largest over training seeds {seeds}:", "",
                  *range_table(per_seed, TRAINED_METHODS, budgets), "",
                  "**Differences lesson 9 concludes from, seed by seed** (A − B on the same problems, paired "
                  "bootstrap 95 % intervals, 4,000 resamplings; * the interval excludes 0; the last column: what "
                  "the seeds' intervals support together).", ""]
        for statistic in ("median CE", "share > 10 % worse"):
            lines += [f"{statistic}:", "",
                      *markdown_seed_differences(per_seed, CONCLUSION_PAIRS, budgets, statistic), ""]
    return lines


def write_training_seed_study(args: argparse.Namespace, sets: dict[str, TopologyData],
                              references: dict[str, np.ndarray | None], vae: torch.nn.Module,
                              retrieval: Retrieval, choices: Choices, device: torch.device, begin: float) -> int:
    """Run :func:`training_seed_study` and write its report to ``args.training_seed_out``."""
    records = {seed: training_seed_models(seed, device)[1] for seed in args.training_seeds}

    def described(seed: int, record: dict) -> str:
        seconds = sum(record["models"][name]["training_seconds"] for name in CVAE_SEED_MODELS)
        return (f"seed {seed}: `{cvae_seed_checkpoint_path(seed).name}` SHA-256 {record['sha256'][:12]}…, the CVAE and "
                f"the baseline trained in {seconds:.0f} s on {record['device']}")
    files = "; ".join(described(seed, record) for seed, record in records.items())
    options = [f"--{name} {getattr(args, name)}" for name, default in (("problems", None), ("largest", 100))
               if getattr(args, name) != default]
    command = " ".join(["python -m tools.evaluate_latent --training-seeds", *map(str, args.training_seeds), *options])
    largest = max(b for b in SEED_BUDGETS if b <= args.largest)
    lines = ["# Lessons 8 and 9: how much the figures move with the training seed", "",
             f"Written by `{command}`. Lesson 8's CVAE and baseline trained with each seed, the settings of the "
             f"shipped file otherwise ({files}); the lessons use seed {CVAE_TRAINING.seed}. The methods whose designs "
             f"depend on those models rerun with each seed's, to {largest} solves; the others (SIMP from a uniform "
             "start, retrieval, the VAE's latent, the untrained decoder) are the shipped seed's run. Judged as in "
             "`docs/results/latent.md` (at the volume target, signed CE against the independent reference, in per "
             f"cent); hyperparameters as chosen on validation with the shipped models: {choices}. Draw seed 0 "
             "throughout (`docs/results/latent_seeds.md` varies it).", ""]
    lines += training_seed_study(args, sets, references, vae, retrieval, choices, device)
    return write_report(lines, args.training_seed_out, args.cache, begin)


def write_report(lines: list[str], out: Path, cache: Path, begin: float) -> int:
    """Print a study's report, with the time it took, and write it as markdown to ``out``."""
    lines = [*lines, f"Written in {time.perf_counter() - begin:.0f} s (from the chunks kept in {cache.name}/ where "
                     "they exist)."]
    print("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lesson 9's comparison at equal budgets on every test problem.")
    parser.add_argument("--problems", type=int, default=None, help="only the first N problems of each set")
    parser.add_argument("--validation", type=int, default=24, help="validation problems for the hyperparameters")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the markdown file to write")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "evaluate_latent",
                        help="where each chunk's judgements are kept (delete it to recompute)")
    parser.add_argument("--largest", type=int, default=100, help="the largest budget (solves) every method runs to")
    parser.add_argument("--untrained", type=int, default=50,
                        help="run the untrained decoder on the first N problems of each set only")
    parser.add_argument("--only", choices=("test", "ood"), default=None, help="evaluate one set only (no report)")
    parser.add_argument("--part", default="0/1",
                        help="K/N: evaluate every N-th chunk from the K-th only (no report); run the N parts in "
                             "parallel, then once without --part to write the report from the cache")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="instead of the comparison: the seeded methods (best of b, the searches from the best "
                             "of k, the untrained decoder) once per draw seed, on the first --seed-problems test "
                             "problems and every out-of-distribution one; writes docs/results/latent_seeds.md")
    parser.add_argument("--seed-problems", type=int, default=150, help="test problems of the seed study")
    parser.add_argument("--seed-out", type=Path, default=SEED_RESULTS, help="the seed study's markdown file")
    parser.add_argument("--training-seeds", type=int, nargs="*", default=None,
                        help="instead of the comparison: the methods that depend on lesson 8's trained models with "
                             "each training seed's CVAE and baseline (the shipped seed included; the flag alone: "
                             "every seed of utils.settings.CVAE_TRAINING_SEEDS); writes "
                             "docs/results/latent_training_seeds.md")
    parser.add_argument("--training-seed-out", type=Path, default=TRAINING_SEED_RESULTS,
                        help="the training-seed study's markdown file")
    parser.add_argument("--reference", choices=("independent", "dataset"), default="independent",
                        help="judge against the independent references of `make references` (default) or the "
                             "dataset's SIMP designs")
    args = parser.parse_args(argv)
    if args.training_seeds == []:  # the flag alone: every training seed of utils.settings
        args.training_seeds = list(CVAE_TRAINING_SEEDS)
    begin = time.perf_counter()
    device = get_device()
    models, record = load_models(CVAE_CHECKPOINT_PATH, device)
    models = {name: frozen(model) for name, model in models.items()}
    vae, _ = load_checkpoint(CHECKPOINT_PATH, device)
    vae = frozen(vae)
    data = load_topology_dataset()
    retrieval = Retrieval.of(data.subset("train"))
    test, validation = data.subset("test"), data.subset("validation").take(np.arange(args.validation))
    ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    if args.problems:
        test, ood = (d.take(np.arange(min(args.problems, len(d)))) for d in (test, ood))
    references = {name: (load_references(name).density[:len(problems)] if args.reference == "independent" else None)
                  for name, problems in (("validation", validation), ("test", test), ("ood", ood))}
    options = [f"--{name} {getattr(args, name)}" for name, default in (("problems", None), ("largest", 100),
                                                                       ("untrained", 50), ("validation", 24),
                                                                       ("reference", "independent"))
               if getattr(args, name) != default]
    command = " ".join(["python -m tools.evaluate_latent", *options])
    grid = tuple(b for b in FINE_BUDGETS if b < args.largest) + (args.largest,)
    budgets = tuple(b for b in BUDGETS if b < args.largest) + (args.largest,)
    lines = ["# Lesson 9: designing in the learned space, judged at equal cost", "",
             f"Written by `{command}` (`make evaluate-latent`); shipped models SHA-256 {record['sha256'][:12]}…, "
             f"decoders on {device}, {platform.machine()} {torch.get_num_threads()} torch thread(s). Every design is "
             "thresholded at its problem's volume target (rule `at_target_volume`) and judged under its own problem "
             "against the reference design thresholded the same way (" + (
                 "the independent reference of `make references`, docs/results/references.md, a design no method here "
                 "is" if args.reference == "independent" else "the dataset's SIMP design") + "); CE = C / C_ref − 1, "
             "signed, in per cent, E_min = 1e-9. Budgets count the finite-element solves spent producing a design (one "
             "per SIMP iteration, per gradient step, per best-of-b candidate; judging is not counted: "
             "`studies.harness`). Methods: lesson 9, section 3. Wall times are this machine's, shared: "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs as the report was written (compare them "
             "with each other, not with another machine).", ""]
    # The sweeps are deterministic: a resumed or split run reuses them.
    choices, sweep_lines = cached(args.cache / (f"{CACHE_FORMAT}_{reference_tag(references['validation'])}_choices_"
                                                f"{hashlib.sha256(repr(CANDIDATES).encode()).hexdigest()[:8]}"
                                                f"_validation{args.validation}.pkl"),
                                  partial(choice_lines, validation, references["validation"], models, vae, retrieval,
                                          device))
    lines += sweep_lines
    if args.seeds:
        seed_test = test.take(np.arange(min(args.seed_problems, len(test))))
        seed_references = {"test": None if references["test"] is None else references["test"][:len(seed_test)],
                           "ood": references["ood"]}
        return write_seed_study(args, {"test": seed_test, "ood": ood}, seed_references, models, vae, retrieval,
                                choices, device, record, begin)
    if args.training_seeds:
        return write_training_seed_study(args, {"test": test, "ood": ood}, references, vae, retrieval, choices,
                                         device, begin)
    print("\n".join(lines))
    for key, title, problems_data in (("test", f"{len(test)} test problems", test),
                                      ("ood", f"{len(ood)} out-of-distribution problems", ood)):
        if args.only and key != args.only:
            continue
        part = tuple(int(v) for v in args.part.split("/"))
        judgements, seconds, extra = evaluate(key, problems_data, references[key], models, vae, retrieval, choices,
                                              device, grid, args.cache, args.untrained, part)
        if part != (0, 1):
            continue
        if args.untrained < len(problems_data):
            title += f" (the untrained decoder: the first {min(args.untrained, len(problems_data))} only)"
        decoded = judgements["best_of_cvae"][1].compliance_error  # the first candidate is the design at μ_p(c)
        section = report(title, judgements, seconds, extra, budgets, decoded)
        reference_judge = Judge(problems_data, references=references[key])
        own = np.mean([floating_material(s) for s in reference_judge.solid(reference_judge.references, RULE)])
        noise = reference_judge(problems_data.density, RULE).compliance_error
        section.insert(2, f"The references themselves, thresholded at the volume target, have floating material "
                          f"in {percent(own, False)} of these problems (the reference of every CE below). **The "
                          "dataset's SIMP run** (the dataset's own design: SIMP stopped at 100 iterations or a change "
                          "of 0.01) against them, the reference's noise: median CE "
                          f"{percent(np.median(noise))}, p95 {percent(np.percentile(noise, 95))}, largest "
                          f"{percent(noise.max())}, {percent(np.mean(noise > 0.10), False)} more than 10 % worse.\n")
        if all(b in budgets for b in CONCLUSION_BUDGETS):
            section += ["**Differences the lesson concludes from** (A − B on the same problems, paired bootstrap 95 % "
                        "intervals, 4,000 resamplings; * the interval excludes 0):", "",
                        *markdown_intervals(difference_rows(judgements, CONCLUSION_PAIRS, CONCLUSION_BUDGETS),
                                            "+.2%"), ""]
        print("\n".join(section))
        lines += section
    if args.only or args.part != "0/1":
        return 0
    lines.append(f"Report written in {time.perf_counter() - begin:.0f} s (from the chunks kept in {args.cache.name}/ "
                 "where they exist; each method's own wall time is in the tables).")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def write_seed_study(args: argparse.Namespace, sets: dict[str, TopologyData],
                     references: dict[str, np.ndarray | None], models: dict, vae: torch.nn.Module,
                     retrieval: Retrieval, choices: Choices, device: torch.device, record: dict, begin: float) -> int:
    """Run :func:`seed_study` and write its report to ``args.seed_out``."""
    command = (f"python -m tools.evaluate_latent --seeds {' '.join(map(str, args.seeds))} --seed-problems "
               f"{args.seed_problems} --untrained {args.untrained}")
    lines = ["# Lesson 9: how much the seeded methods' figures move with the draw seed", "",
             f"Written by `{command}`; shipped models SHA-256 {record['sha256'][:12]}…, decoders on {device}. The "
             "methods that draw (best of b, the searches started from the best of k, the untrained decoder's "
             "initialisations) run once per draw seed; everything else in `docs/results/latent.md` draws nothing. "
             "Judged as there (at the volume target, signed CE against the reference, in per cent); "
             f"hyperparameters chosen on validation, as there: {choices}.", ""]
    lines += seed_study(sets, references, models, vae, retrieval, choices, device, args.seeds, args.untrained,
                        args.cache)
    return write_report(lines, args.seed_out, args.cache, begin)


if __name__ == "__main__":
    sys.exit(main())
