#!/usr/bin/env python3
"""Judge lesson 8's shipped models the way an engineer judges a method (``make evaluate-cvae``), print the tables
and write them as markdown to docs/results/cvae.md (``--out``):

- validation first (every choice is made there), then the test problems once: each model's designs as decoded,
  smoothed, the best of 16 at equal volume, and after 10 warm-started SIMP iterations; every design judged under
  its own problem against SIMP's design at equal volume (utils.judging.Judge), with the distribution of signed CE;
- TopoDiff's four figures, adapted (utils.judging.topodiff_summary), and our means under both void stiffnesses;
- the equal-compute comparison at k = 1 … 32 finite-element solves per problem, with wall time;
- the out-of-distribution problems, those inside the training ranges (by the condition) apart;
- the shortcut test; the warm-start study; the cost, offline included, and the break-even number of designs."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from utils import get_device
from utils.cvae import condition_vector, load_models, problem_conditions
from utils.data import TopologyData, load_topology_dataset
from utils.generation import SIMP_ITERATIONS, generate_for_problems, smoothed, warm_started_simp
from utils.judging import (
    BUDGETS,
    MAKE_DATA_SECONDS,
    Judge,
    best_of_k,
    best_of_k_curve,
    break_even_designs,
    budget_comparison,
    inside_training_ranges,
    shortcut_test,
    synchronize,
    topodiff_summary,
    warm_start_study,
)
from utils.metrics import threshold
from utils.paths import DATA_DIR
from utils.settings import CVAE_CHECKPOINT_PATH, OOD_MANIFEST_FILE, TOPODIFF_E_MIN
from utils.tables import (
    JUDGE_COLUMNS,
    PERCENT,
    TOPODIFF_COLUMNS,
    NumberFormat,
    format_table,
    in_topodiff_columns,
    markdown_table,
    range_cell,
    table_row,
)
from utils.topopt import optimize

COMMAND = "make evaluate-cvae  (python -m tools.evaluate_cvae)"
SEED_OUT = DATA_DIR.parent / "docs" / "results" / "cvae_seeds.md"
# The seed study's figures of best of k: (DesignMetrics.summary() key, heading).
SEED_FIGURES = (("CE median", "median CE"), ("CE p90", "p90 CE"), ("CE > 10 % share", "CE > 10 %"),
                ("floating material share", "floating"))
# Exercise 8.2's tolerance: a draw may exceed its volume target by this much (relative) at its own volume.
OWN_VOLUME_TOLERANCE = 0.03
DEFAULT_OUT = DATA_DIR.parent / "docs" / "results" / "cvae.md"


class Report:
    """Prints each table and keeps its markdown for the results page."""

    def __init__(self) -> None:
        self.markdown: list[str] = []

    def text(self, line: str) -> None:
        print(line)
        self.markdown += [line, ""]

    def table(self, title: str, rows: dict[str, dict[str, float]], columns: dict[str, str],
              number_format: NumberFormat = PERCENT) -> None:
        print(f"\n{title}\n{format_table(rows, columns, number_format)}")
        self.markdown += [f"**{title}**", "", markdown_table(rows, columns, number_format), ""]


def stage_rows(models: dict, judge: Judge, device: torch.device, full: bool) -> dict[str, dict[str, float]]:
    """Every model's designs as decoded (at equal volume and at 0.5); with ``full``, the CVAE's smoothed, best of
    16 and warm-started designs, and the other models' warm-started ones too."""
    rows = {}
    conditions = problem_conditions(judge.problems).to(device)
    for name, model in models.items():
        if name == "cvae" and full:
            stages = generate_for_problems(model, judge, device=device).stages()
        elif name == "cvae":
            decoded = model.generate(conditions)[0].cpu().numpy()
            drawn = model.generate(conditions, 16, torch.Generator().manual_seed(0)).cpu().numpy()
            stages = {"as decoded": decoded, "as decoded, smoothed": smoothed(decoded),
                      "best of 16": best_of_k(drawn, judge)[0]}
        else:
            decoded = model.generate(conditions)[0].cpu().numpy()
            stages = {"as decoded": decoded}
            if full:
                stages[f"as decoded + {SIMP_ITERATIONS} SIMP its"] = warm_started_simp(decoded, judge)
        for stage, d in stages.items():
            rows[f"{name}, {stage}"] = table_row(judge(d))
            if stage == "as decoded":
                rows[f"{name}, as decoded, thresholded at 0.5"] = table_row(judge(d, "0.5"))
    return rows


def own_volume_rule(model: torch.nn.Module, judge: Judge, device: torch.device, samples: int = 16) -> str:
    """What best of k buys when draws compete at their own volume (thresholded at 0.5, admissible up to the target
    + 3 %, the rule of exercise 8.2), against the equal-volume judge: one sentence."""
    drawn = model.generate(problem_conditions(judge.problems).to(device), samples,
                           torch.Generator().manual_seed(0)).cpu().numpy()
    volumes = threshold(drawn).mean(axis=(-2, -1))
    compliances = np.stack([judge.compliances(threshold(d)) for d in drawn])
    admissible = volumes <= judge.targets * (1 + OWN_VOLUME_TOLERANCE)
    choice = np.where(admissible.any(axis=0), np.where(admissible, compliances, np.inf).argmin(axis=0),
                      volumes.argmin(axis=0))
    heaviest = np.where(admissible, volumes, -np.inf).argmax(axis=0)
    picked = drawn[choice, np.arange(len(judge))]
    own, equal = judge(picked, "0.5"), judge(picked)
    return (f"Best of {samples} at the draws' own volume (≤ target + 3 %, thresholded at 0.5; test): the heaviest "
            f"admissible draw is chosen in {np.mean(choice == heaviest):.0%} of problems, the chosen designs carry a "
            f"median ΔV of {np.median(own.volume_change):+.2%} against SIMP's and lie above the target in "
            f"{np.mean(volumes[choice, np.arange(len(judge))] > judge.targets):.0%}; their median CE is "
            f"{np.median(own.compliance_error):+.2%} at their own volume, {np.median(equal.compliance_error):+.2%} at "
            f"SIMP's volume. The tables therefore rank draws at equal volume.")


def seed_study(cvae: torch.nn.Module, judge: Judge, seeds: list[int], device: torch.device) -> list[str]:
    """Best of k (utils.judging.best_of_k_curve) once per sampling seed: a markdown table of each figure's smallest and
    largest value over the seeds, k by k."""
    per_seed = {seed: best_of_k_curve(cvae, judge, BUDGETS, seed, device)[0]
                for seed in tqdm(seeds, desc="best of k, seed by seed")}
    lines = ["| k | " + " | ".join(heading for _, heading in SEED_FIGURES) + " |",
             "| --- |" + " --- |" * len(SEED_FIGURES)]
    for index, k in enumerate(BUDGETS):
        cells = [range_cell([per_seed[seed][index].summary()[key] for seed in seeds], ".1%")
                 for key, _ in SEED_FIGURES]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def write_seed_study(models: dict, record: dict, test: TopologyData, seeds: list[int], device: torch.device,
                     out: Path) -> int:
    """Run :func:`seed_study` on the test problems and write it to ``out``."""
    command = f"python -m tools.evaluate_cvae --seeds {' '.join(map(str, seeds))}"
    lines = ["# Lesson 8's best of k: how much it moves with the sampling seed", "",
             f"Written by `{command}`; shipped models SHA-256 `{record['sha256'][:12]}…`, on {device}. The shipped "
             f"CVAE's best of k on the {len(test)} test problems, judged as in `docs/results/cvae.md` (equal volume, "
             "signed CE against SIMP's design), smallest – largest over the sampling seeds "
             f"{', '.join(map(str, seeds))}; `docs/results/cvae.md` is seed 0. The designs decoded at μ_p(c), the "
             "baseline's and every SIMP run draw nothing.", ""]
    lines += seed_study(models["cvae"], Judge(test), seeds, device)
    print("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Judge lesson 8's shipped models; write docs/results/cvae.md.")
    parser.add_argument("--problems", type=int, default=None,
                        help="only the first N problems of each set (a quick look; writes no markdown by default)")
    parser.add_argument("--out", type=Path, default=None, help=f"markdown file (default {DEFAULT_OUT})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="instead: best of k on the test problems once per sampling seed, written to --seed-out")
    parser.add_argument("--seed-out", type=Path, default=SEED_OUT, help="the seed study's markdown file")
    args = parser.parse_args(argv)
    out = args.out or (None if args.problems else DEFAULT_OUT)
    device = get_device()
    models, record = load_models(CVAE_CHECKPOINT_PATH, device)
    data = load_topology_dataset()
    validation, test = data.subset("validation"), data.subset("test")
    ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    if args.problems:
        validation, test, ood = (d.take(np.arange(min(args.problems, len(d)))) for d in (validation, test, ood))
    if args.seeds:
        return write_seed_study(models, record, test, args.seeds, device, args.seed_out)
    report = Report()
    report.markdown += ["# Lesson 8's shipped models, judged", "",
                        f"Produced by `{COMMAND}`; not rerun by the course site. Shipped models: "
                        f"{record['settings']}, SHA-256 `{record['sha256'][:12]}…`, evaluated on {device} with "
                        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} on "
                        f"{os.cpu_count()} CPUs at the start (wall times on a shared machine are inflated, their "
                        "ratios less so).", "",
                        "Every design is judged under its own problem against SIMP's design at **equal volume** "
                        "(thresholded at the volume of the thresholded SIMP design) unless a row says "
                        "\"thresholded at 0.5\"; CE = C / C_SIMP − 1 is signed (positive: less stiff); ΔV is the "
                        "design's own volume at 0.5 against SIMP's; E_min = 1e-9.", ""]
    print(report.markdown[2])
    judges = {"validation": Judge(validation), "test": Judge(test)}
    for split, judge in judges.items():
        report.table(f"{split} problems ({len(judge)})", stage_rows(models, judge, device, full=split == "test"),
                     JUDGE_COLUMNS)

    judge = judges["test"]
    conditions = problem_conditions(test).to(device)
    report.text(own_volume_rule(models["cvae"], judge, device))
    decoded = {name: model.generate(conditions)[0].cpu().numpy() for name, model in models.items()}
    topodiff_judge = Judge(test, TOPODIFF_E_MIN)
    side_by_side = {}
    for name, d in decoded.items():
        side_by_side[f"{name}: TopoDiff's, adapted"] = topodiff_summary(d, judge)
        side_by_side[f"{name}: ours"] = in_topodiff_columns(judge(d))
        side_by_side[f"{name}: ours with E_min = 1e-3"] = in_topodiff_columns(topodiff_judge(d))
    report.table("TopoDiff's figures, adapted (binarised at 127/255, E_void = 1e-3, single load pixel, pieces ≠ 1), "
                 "beside ours (equal volume; VFE against the target); test, as decoded", side_by_side,
                 TOPODIFF_COLUMNS)
    report.text("E_min enters the compliance only: floating material, load disrespect and the volume errors of the "
                "rows 'ours' and 'ours with E_min = 1e-3' are identical; the means move most.")

    comparison = budget_comparison(models["cvae"], models["baseline"], judge, BUDGETS, device=device)
    rows = {}
    for method, metrics in comparison.metrics.items():
        for k, m, seconds in zip(comparison.budgets, metrics, comparison.seconds[method], strict=True):
            summary = m.summary()
            rows[f"{method}, k = {k}"] = {**summary, "ms": 1e3 * seconds}
    budget_columns = {"CE median": "median CE", "CE p90": "p90 CE", "CE > 10 % share": "CE > 10 %",
                      "floating material share": "floating", "ms": "ms per design"}
    report.table(f"equal compute: k finite-element solves per problem (test, {len(judge)} problems, equal volume; "
                 "ms: wall time per design, decoder included)",
                 rows, budget_columns, {"ms": ".1f"})

    inside = inside_training_ranges(ood.volfrac, ood.load_y, ood.angle_deg)
    ood_judge = Judge(ood)
    ood_rows = {}
    for name, model in models.items():
        d = model.generate(problem_conditions(ood).to(device))[0].cpu().numpy()
        for label, mask in (("inside the ranges (by the condition)", inside), ("outside", ~inside)):
            if mask.any():
                ood_rows[f"{name}, {label} ({mask.sum()})"] = table_row(ood_judge.take(np.flatnonzero(mask))(d[mask]))
    report.table(f"the {len(ood)} out-of-distribution problems, as decoded", ood_rows, JUDGE_COLUMNS)

    shortcut = {name: shortcut_test(models[name], judge, device) for name in ("naive", "cvae")}
    report.table("shortcut test (test; each design encoded with its problem, decoded with the next one's; at 0.5)",
                 shortcut, {key: key for key in next(iter(shortcut.values()))}, ".3f")

    synchronize(device)
    start = time.perf_counter()
    models["cvae"].generate(conditions)[0].cpu().numpy()
    synchronize(device)
    unverified = (time.perf_counter() - start) / len(test)
    timed = min(20, len(test))
    start = time.perf_counter()
    for i in range(timed):
        optimize(test.load_case(i))
    simp_seconds = (time.perf_counter() - start) / timed
    study = warm_start_study(decoded["cvae"], judge)
    index16 = comparison.budgets.index(16) if 16 in comparison.budgets else -1
    verified = {method: float(s[index16]) for method, s in comparison.seconds.items()}
    training = sum(m["training_seconds"] for m in record["models"].values())
    cvae_training = record["models"]["cvae"]["training_seconds"]
    cost_rows = {"CVAE, unverified (decode only)": {"s": unverified},
                 "CVAE, verified: best of 16": {"s": verified["CVAE best of k"]},
                 "CVAE, verified: decode + 15 SIMP its": {"s": verified["CVAE + (k − 1) SIMP its"]},
                 "SIMP, uniform start, to convergence (dataset settings)": {"s": simp_seconds},
                 "SIMP, uniform start, to within 1 % of its final compliance": {
                     "s": float(np.nanmedian(study.uniform_seconds))},
                 "SIMP warm-started from the CVAE, to within 1 %": {"s": float(np.nanmedian(study.warm_seconds))}}
    report.table("cost per design (seconds, this machine; medians where a study gives one)", cost_rows, {"s": "s"},
                 ".4f")
    for label, seconds in (("the CVAE alone", cvae_training), ("all three shipped models", training)):
        designs = break_even_designs(MAKE_DATA_SECONDS + seconds, simp_seconds, verified["CVAE + (k − 1) SIMP its"])
        report.text(f"Offline cost, {label}: data {MAKE_DATA_SECONDS / 60:.1f} min (`make data` on 2 cores) + training "
                    f"{seconds / 60:.1f} min (data/cvae_topology.pt.sha256.json, on {record['device']}); a verified "
                    f"design (decode + 15 SIMP its) against SIMP to convergence breaks even after {designs:,.0f} "
                    "designs.")
    report.text(f"Warm-start study (test, {len(judge)} problems): iterations to within 1 % of the uniform run's "
                f"compliance, median: uniform start {np.nanmedian(study.uniform_iterations):.0f}, from the CVAE's "
                f"design {np.nanmedian(study.warm_iterations):.0f}; never within 1 % in 100 iterations: "
                f"{int(np.isnan(study.warm_iterations).sum())}.")
    # The upward out-of-distribution loads have the condition of their downward twin (the doubled angle).
    twins = condition_vector(ood.volfrac, ood.load_y, ood.angle_deg - 180.0).to(device)
    upward = ood.angle_deg > 0
    if upward.any():
        twin_designs = models["cvae"].generate(twins)[0].cpu().numpy()
        difference = np.abs(twin_designs[upward] - decoded_ood(models, ood, device)[upward])
        report.text(f"Upward loads: largest difference to the design for the downward twin {difference.max():.1e}.")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(report.markdown).rstrip() + "\n")
        print(f"\nwrote {out}")
    return 0


def decoded_ood(models: dict, ood: TopologyData, device: torch.device) -> np.ndarray:
    """The shipped CVAE's designs for the out-of-distribution problems, decoded at μ_p(c)."""
    return models["cvae"].generate(problem_conditions(ood).to(device))[0].cpu().numpy()


if __name__ == "__main__":
    sys.exit(main())
