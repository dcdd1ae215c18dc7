#!/usr/bin/env python3
"""Lesson 9's comparison on every test problem (``make evaluate-latent``): SIMP from a uniform start, SIMP warm-started
from the CVAE's and the baseline's designs, best of k, latent searches in lesson 8's CVAE and lesson 7's VAE, and the
neural reparametrisation, at equal budgets of finite-element solves; every design thresholded at its volume target
and judged against the reference thresholded the same way (studies.latent_study: the harness lesson 9 runs on a
subset). The latent searches' learning rate is chosen on validation problems first. Prints the tables and writes them
as markdown to ``docs/results/latent.md``."""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

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
from studies.latent_study import LEARNING_RATES, RULE, choose_learning_rate, latent_methods
from studies.references import load_references
from studies.uncertainty import difference_rows, markdown_intervals
from utils import get_device
from utils.cvae import load_models
from utils.data import TopologyData, load_topology_dataset
from utils.design_space import frozen
from utils.judging import Judge
from utils.metrics import DesignMetrics, floating_material
from utils.paths import REPO_ROOT
from utils.settings import CHECKPOINT_PATH, CVAE_CHECKPOINT_PATH, OOD_MANIFEST_FILE
from utils.tables import range_cell
from utils.vae import load_checkpoint

RESULTS = REPO_ROOT / "docs" / "results" / "latent.md"
SEED_RESULTS = REPO_ROOT / "docs" / "results" / "latent_seeds.md"
# The seed study's figures: (summary key, caption, format) at each of SEED_BUDGETS.
SEED_FIGURES = (("CE median", "median CE", "+.4f"), ("CE p90", "p90 CE", "+.4f"), ("CE p95", "p95 CE", "+.4f"),
                ("CE > 10 % share", "> 10 % worse", ".3f"), ("floating material share", "floating", ".3f"))
SEED_BUDGETS = (10, 20, 50)
CHUNK = 25
# The differences lesson 9 concludes from (method A, method B), with paired bootstrap intervals at these budgets.
CONCLUSION_PAIRS = (("cvae_latent_sharpening", "simp_from_cvae"), ("simp_from_cvae", "simp_uniform"),
                    ("cvae_latent_5_then_simp", "simp_from_baseline"), ("simp_from_baseline", "simp_from_cvae"))
CONCLUSION_BUDGETS = (10, 20)
# Part of every cached chunk's name: a chunk written by an older harness or judge is recomputed, never misread.
CACHE_FORMAT = "harness1"


def learning_rate_lines(validation: TopologyData, references: np.ndarray | None, cvae: torch.nn.Module,
                        device: torch.device) -> tuple[float, list[str]]:
    """studies.latent_study.choose_learning_rate on the validation problems, and its markdown table."""
    chosen, scores = choose_learning_rate(StudyProblems.of(validation, RULE, device, references), cvae,
                                          LEARNING_RATES)
    lines = [f"Learning rate of the latent searches, chosen on {len(validation)} validation problems (mean CE at "
             "the volume target after 10 / 20 solves, CVAE latent with sharpening from μ_p(c)):", "",
             "| lr | mean CE, 10 solves | mean CE, 20 solves |", "| --- | --- | --- |"]
    lines += [f"| {lr:g}{' (chosen)' if lr == chosen else ''} | {a:+.4f} | {b:+.4f} |" for lr, (a, b) in scores.items()]
    return chosen, [*lines, ""]


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
                   vae: torch.nn.Module, lr: float, device: torch.device, budgets: tuple[int, ...],
                   reparametrisation: bool) -> dict:
    """Every method on the problems of ``chunk`` (numbered ``ids`` in their set): {"judgements": {method: {budget:
    DesignMetrics}}, "seconds": {method: seconds for the chunk}, "grey gap": {method: thresholded / grey compliance
    − 1 at the largest budget}}."""
    problems = StudyProblems.of(chunk, RULE, device, references, ids)
    judge, largest = problems.judge, max(budgets)
    runs = run_methods(latent_methods(models["cvae"], models["baseline"], vae, lr,
                                      reparametrisation=reparametrisation), problems, budgets)
    grey_gap = {key: judge.compliances_at(run.designs[largest], RULE) / judge.compliances(run.designs[largest])
                - 1 for key, run in runs.items()}  # judge.compliances of a grey design: its penalised compliance
    return {"judgements": judge_results(runs, problems),
            "seconds": {key: run.seconds[largest] for key, run in runs.items()}, "grey gap": grey_gap}


def evaluate(name: str, problems_data: TopologyData, references: np.ndarray | None, models: dict,
             vae: torch.nn.Module, lr: float,
             device: torch.device, budgets: tuple[int, ...], cache: Path, reparametrised: int,
             part: tuple[int, int] = (0, 1)) -> tuple[dict[str, dict[int, DesignMetrics]], dict[str, float], dict]:
    """Every method on every problem, in chunks of ``CHUNK`` (each kept in ``cache``, so that a run can be resumed
    or split between processes); the neural reparametrisation on the first ``reparametrised`` problems only (it costs
    several times the others). Returns the judgements {method: {budget: DesignMetrics}}, the seconds per problem
    for the whole run to the largest budget, and the grey-against-thresholded gaps."""
    judged: dict[str, dict[int, list[DesignMetrics]]] = {}
    seconds: dict[str, list[float]] = {}
    grey_gap: dict[str, list[float]] = {}
    for number, start in enumerate(tqdm(range(0, len(problems_data), CHUNK),
                                        desc=f"{name}, {CHUNK} problems at a time")):
        if number % part[1] != part[0]:
            continue
        indices = np.arange(start, min(start + CHUNK, len(problems_data)))
        path = cache / (f"{CACHE_FORMAT}_{reference_tag(references)}_{name}_{start}_{indices[-1]}_lr{lr:g}"
                        f"_to{max(budgets)}"
                        f"_reparam{reparametrised}.pkl")
        result = cached(path, partial(evaluate_chunk, problems_data.take(indices), indices,
                                      None if references is None else references[indices], models, vae, lr, device,
                                      budgets, start < reparametrised))
        for method, per_budget in result["judgements"].items():
            for b, judgement in per_budget.items():
                judged.setdefault(method, {}).setdefault(b, []).append(judgement)
            seconds.setdefault(method, []).append(result["seconds"][method] / len(indices))
            grey_gap.setdefault(method, []).extend(result["grey gap"][method])
    merged = {name: {b: DesignMetrics.concatenate(parts) for b, parts in per_budget.items()}
              for name, per_budget in judged.items()}
    return merged, {method: float(np.mean(s)) for method, s in seconds.items()}, {"grey gap": grey_gap}


def table(judgements: dict[str, dict[int, DesignMetrics]], figure: str, budgets: tuple[int, ...],
          number_format: str) -> list[str]:
    """A markdown table: one row per method, one column per budget, the summary ``figure``."""
    lines = ["| method | " + " | ".join(f"{b}" for b in budgets) + " |", "| --- |" + " --- |" * len(budgets)]
    for key, per_budget in judgements.items():
        lines.append(f"| {LABELS[key]} | " + " | ".join(f"{per_budget[b].summary()[figure]:{number_format}}"
                                                 for b in budgets) + " |")
    return lines


def report(title: str, judgements: dict, seconds: dict[str, float], extra: dict, budgets: tuple[int, ...],
           decoded_ce: np.ndarray) -> list[str]:
    """The markdown section of one set of problems."""
    lines = [f"## {title}", ""]
    for figure, caption, number_format in (
            ("CE median", "median signed CE", "+.4f"), ("CE mean", "mean signed CE", "+.3f"),
            ("CE p90", "90th percentile of CE", "+.4f"), ("CE p95", "95th percentile of CE", "+.4f"),
            ("CE > 10 % share", "share of designs more than 10 % worse than the reference", ".3f"),
            ("floating material share", "share with floating material", ".3f"),
            ("load disrespect share", "share with load disrespect", ".3f"),
            ("judged VFE max", "largest VFE (rounding of round(V·N) pixels)", ".4f")):
        lines += [f"**{caption}** (columns: budget in finite-element solves)", ""]
        lines += table(judgements, figure, budgets, number_format) + [""]
    at = 20 if 20 in budgets else max(budgets)  # the goals are set at 20 solves
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
        lines.append(f"| {LABELS[key]} | " + " | ".join(f"{summary[k]:.3f}" if k.endswith(("share", "max")) else
                                                 f"{summary[k]:+.4f}" for k in SUMMARY_COLUMNS)
                     + f" | {seconds[key]:.2f} | {median} | {np.mean(np.isnan(counts)):.3f} |")
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
        parts = [f"{f(ce[mask]):+.4f}" if mask.any() else "—" for mask in (wrong, ~wrong) for f in (np.median, np.max)]
        lines.append(f"| {LABELS[key]} | " + " | ".join(parts) + " |")
    lines += ["", f"**Grey against thresholded** at {max(budgets)} solves: the compliance of the design thresholded at "
              "the volume target over that of the grey design the method minimised, minus 1 (median; 90th "
              "percentile):", "", "| method | median | p90 |", "| --- | --- | --- |"]
    for key, gaps in extra["grey gap"].items():
        lines.append(f"| {LABELS[key]} | {np.median(gaps):+.4f} | {np.percentile(gaps, 90):+.4f} |")
    return [*lines, ""]


def seed_chunk(chunk: TopologyData, ids: np.ndarray, references: np.ndarray | None, models: dict,
               vae: torch.nn.Module, lr: float,
               device: torch.device, budgets: tuple[int, ...], seed: int, reparametrisation: bool
               ) -> dict[str, dict[int, DesignMetrics]]:
    """The seeded methods (studies.latent_study.SEEDED_METHODS) on ``chunk`` with draw seed ``seed``, judged per
    method and budget."""
    problems = StudyProblems.of(chunk, RULE, device, references, ids)
    methods = latent_methods(models["cvae"], models["baseline"], vae, lr, seed, reparametrisation, seeded_only=True)
    return judge_results(run_methods(methods, problems, budgets), problems)


def seed_study(sets: dict[str, TopologyData], references: dict[str, np.ndarray | None], models: dict,
               vae: torch.nn.Module, lr: float, device: torch.device, seeds: list[int], reparametrised: int,
               cache: Path) -> list[str]:
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
                                f"{indices[-1]}_lr{lr:g}"
                                f"_reparam{reparametrised}.pkl")
                chunk_references = None if references[key] is None else references[key][indices]
                result = cached(path, partial(seed_chunk, problems_data.take(indices), indices, chunk_references,
                                              models, vae, lr,
                                              device, SEED_BUDGETS, seed, start < reparametrised))
                for method, per_budget in result.items():
                    for b, metrics in per_budget.items():
                        judged.setdefault(method, {}).setdefault(b, []).append(metrics)
            per_seed[seed] = {method: {b: DesignMetrics.concatenate(parts) for b, parts in per_budget.items()}
                              for method, per_budget in judged.items()}
        methods = list(per_seed[seeds[0]])
        sizes = {m: len(per_seed[seeds[0]][m][SEED_BUDGETS[0]].compliance_error) for m in methods}
        lines += [f"## {key}: {len(problems_data)} problems", "",
                  "Smallest – largest over draw seeds " + ", ".join(map(str, seeds)) + " (the neural "
                  f"reparametrisation on the first {sizes.get('reparametrisation', 0)} problems only):", "",
                  "| method | solves | " + " | ".join(caption for _, caption, _ in SEED_FIGURES) + " |",
                  "| --- | --- |" + " --- |" * len(SEED_FIGURES)]
        for method in methods:
            for b in SEED_BUDGETS:
                cells = []
                for figure, _, number_format in SEED_FIGURES:
                    cells.append(range_cell([per_seed[seed][method][b].summary()[figure] for seed in seeds],
                                            number_format))
                lines.append(f"| {LABELS[method]} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lesson 9's comparison at equal budgets on every test problem.")
    parser.add_argument("--problems", type=int, default=None, help="only the first N problems of each set")
    parser.add_argument("--validation", type=int, default=24, help="validation problems for the learning rate")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the markdown file to write")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "evaluate_latent",
                        help="where each chunk's judgements are kept (delete it to recompute)")
    parser.add_argument("--largest", type=int, default=100, help="the largest budget (solves) every method runs to")
    parser.add_argument("--reparametrised", type=int, default=50,
                        help="run the neural reparametrisation on the first N problems of each set only")
    parser.add_argument("--only", choices=("test", "ood"), default=None, help="evaluate one set only (no report)")
    parser.add_argument("--part", default="0/1",
                        help="K/N: evaluate every N-th chunk from the K-th only (no report); run the N parts in "
                             "parallel, then once without --part to write the report from the cache")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="instead of the comparison: the seeded methods (best of b, the searches from the best "
                             "of 5, the reparametrisation) once per draw seed, on the first --seed-problems test "
                             "problems and every out-of-distribution one; writes docs/results/latent_seeds.md")
    parser.add_argument("--seed-problems", type=int, default=150, help="test problems of the seed study")
    parser.add_argument("--seed-out", type=Path, default=SEED_RESULTS, help="the seed study's markdown file")
    parser.add_argument("--reference", choices=("independent", "dataset"), default="independent",
                        help="judge against the independent references of `make references` (default) or the "
                             "dataset's SIMP designs")
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    device = get_device()
    models, record = load_models(CVAE_CHECKPOINT_PATH, device)
    models = {name: frozen(model) for name, model in models.items()}
    vae, _ = load_checkpoint(CHECKPOINT_PATH, device)
    vae = frozen(vae)
    data = load_topology_dataset()
    test, validation = data.subset("test"), data.subset("validation").take(np.arange(args.validation))
    ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    if args.problems:
        test, ood = (d.take(np.arange(min(args.problems, len(d)))) for d in (test, ood))
    references = {name: (load_references(name).density[:len(problems)] if args.reference == "independent" else None)
                  for name, problems in (("validation", validation), ("test", test), ("ood", ood))}
    options = [f"--{name} {getattr(args, name)}" for name, default in (("problems", None), ("largest", 100),
                                                                       ("reparametrised", 50), ("validation", 24),
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
             "signed (fractions), E_min = 1e-9. Budgets count the finite-element solves spent producing a design (one "
             "per SIMP iteration, per gradient step, per best-of-b candidate; judging is not counted: "
             "`studies.harness`). Methods: lesson 9, section 3. Wall times are this machine's, shared: "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs as the report was written (compare them "
             "with each other, not with another machine).", ""]
    # The sweep is deterministic: a resumed or split run reuses it.
    lr, sweep_lines = cached(args.cache / (f"{CACHE_FORMAT}_{reference_tag(references['validation'])}_learning_rate"
                                           f"_validation{args.validation}.pkl"),
                             partial(learning_rate_lines, validation, references["validation"], models["cvae"], device))
    lines += sweep_lines
    if args.seeds:
        seed_test = test.take(np.arange(min(args.seed_problems, len(test))))
        seed_references = {"test": None if references["test"] is None else references["test"][:len(seed_test)],
                           "ood": references["ood"]}
        return write_seed_study(args, {"test": seed_test, "ood": ood}, seed_references, models, vae, lr, device,
                                record, begin)
    print("\n".join(lines))
    for key, title, problems_data in (("test", f"{len(test)} test problems", test),
                                      ("ood", f"{len(ood)} out-of-distribution problems", ood)):
        if args.only and key != args.only:
            continue
        part = tuple(int(v) for v in args.part.split("/"))
        judgements, seconds, extra = evaluate(key, problems_data, references[key], models, vae, lr, device, grid,
                                              args.cache, args.reparametrised, part)
        if part != (0, 1):
            continue
        if args.reparametrised < len(problems_data):
            title += f" (neural reparametrisation: the first {min(args.reparametrised, len(problems_data))} only)"
        decoded = judgements["best_of_cvae"][1].compliance_error  # the first candidate is the design at μ_p(c)
        section = report(title, judgements, seconds, extra, budgets, decoded)
        reference_judge = Judge(problems_data, references=references[key])
        own = np.mean([floating_material(s) for s in reference_judge.solid(reference_judge.references, RULE)])
        noise = reference_judge(problems_data.density, RULE).compliance_error
        section.insert(2, f"The references themselves, thresholded at the volume target, have floating material "
                          f"in {own:.3f} of these problems (the reference of every CE below). The dataset's SIMP run "
                          f"against them (the reference's noise): median CE {np.median(noise):+.4f}, p95 "
                          f"{np.percentile(noise, 95):+.4f}, largest {noise.max():+.4f}.\n")
        if all(b in budgets for b in CONCLUSION_BUDGETS):
            section += ["**Differences the lesson concludes from** (A − B on the same problems, paired bootstrap 95 % "
                        "intervals, 4,000 resamplings; * the interval excludes 0):", "",
                        *markdown_intervals(difference_rows(judgements, CONCLUSION_PAIRS, CONCLUSION_BUDGETS)), ""]
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
                     lr: float, device: torch.device, record: dict, begin: float) -> int:
    """Run :func:`seed_study` and write its report to ``args.seed_out``."""
    command = (f"python -m tools.evaluate_latent --seeds {' '.join(map(str, args.seeds))} --seed-problems "
               f"{args.seed_problems} --reparametrised {args.reparametrised}")
    lines = ["# Lesson 9: how much the seeded methods' figures move with the draw seed", "",
             f"Written by `{command}`; shipped models SHA-256 {record['sha256'][:12]}…, decoders on {device}. The "
             "methods that draw (best of b, the searches started from the best of 5, the neural reparametrisation's "
             "initialisations) run once per draw seed; everything else in `docs/results/latent.md` draws nothing. "
             "Judged as there (at the volume target, signed CE against the reference, fractions); "
             f"learning rate {lr:g} (chosen on validation, as there).", ""]
    lines += seed_study(sets, references, models, vae, lr, device, args.seeds, args.reparametrised, args.cache)
    lines.append(f"Written in {time.perf_counter() - begin:.0f} s (from the chunks kept in {args.cache.name}/ "
                 "where they exist).")
    print("\n".join(lines))
    args.seed_out.parent.mkdir(parents=True, exist_ok=True)
    args.seed_out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.seed_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
