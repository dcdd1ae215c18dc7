#!/usr/bin/env python3
"""Judge lesson 8's shipped models the way an engineer judges a method (``make evaluate-cvae``), print the tables
and write them as markdown to docs/results/cvae.md (``--out``):

- validation first (every choice is made there), then the test problems once: each model's designs as decoded,
  smoothed, the best of 16 at the reference's volume, and after 10 warm-started SIMP iterations; every design
  judged under its own problem against the reference at the reference's volume (utils.judging.Judge), with the
  distribution of signed CE;
- TopoDiff's four figures, adapted (utils.judging.topodiff_summary), and our means under both void stiffnesses;
- the equal-compute comparison at b = 1 … 50 finite-element solves per problem, with wall time (studies.cvae_study,
  the harness lesson 8 runs on a subset), and the solves each method needs to come within 1 % of the reference;
- the out-of-distribution problems, those inside the training ranges (by the condition) apart;
- the shortcut test; the cost, offline included, and the break-even number of designs.

``--training-seeds 0 1 2`` writes ``docs/results/cvae_training_seeds.md`` instead: the CVAE's and the baseline's
designs and the equal-compute comparison with each training seed's models (``python -m tools.train_cvae --seed N``),
each figure as its range over the seeds and each difference the lesson concludes from with its interval seed by
seed."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from studies.cvae_study import (
    MAKE_DATA_SECONDS,
    RULE,
    TABLE_BUDGETS,
    VERIFIED_AT,
    break_even_designs,
    cvae_methods,
    own_volume_rule,
    run_cvae_study,
    simp_seconds,
    training_seed_models,
)
from studies.harness import LABELS, Stopwatch, StudyProblems, judge_results
from studies.references import load_references
from studies.uncertainty import STATISTICS, difference_rows, markdown_intervals, markdown_seed_differences
from utils import get_device
from utils.cvae import condition_vector, load_models, problem_conditions
from utils.data import TopologyData, load_topology_dataset
from utils.generation import SIMP_ITERATIONS, generate_for_problems, shortcut_test, smoothed, warm_started_simp
from utils.judging import Judge, best_of_k, inside_training_ranges, topodiff_summary
from utils.paths import DATA_DIR
from utils.settings import (
    CVAE_CHECKPOINT_PATH,
    CVAE_TRAINING,
    CVAE_TRAINING_SEEDS,
    OOD_MANIFEST_FILE,
    TOPODIFF_E_MIN,
    cvae_seed_checkpoint_path,
)
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

COMMAND = "make evaluate-cvae  (python -m tools.evaluate_cvae)"
SEED_OUT = DATA_DIR.parent / "docs" / "results" / "cvae_seeds.md"
TRAINING_SEED_OUT = DATA_DIR.parent / "docs" / "results" / "cvae_training_seeds.md"
# The training-seed study's designs (stage_rows' row names) and figures (table_row keys, format).
TRAINING_SEED_ROWS = ("cvae, as decoded", "cvae, best of 16", f"cvae, as decoded + {SIMP_ITERATIONS} SIMP its",
                      "baseline, as decoded", f"baseline, as decoded + {SIMP_ITERATIONS} SIMP its")
# The seed study's figures of best of k: (DesignMetrics.summary() key, heading).
SEED_FIGURES = (("CE median", "median CE"), ("CE p90", "p90 CE"), ("CE > 10 % share", "CE > 10 %"),
                ("floating material share", "floating"))
# The differences lesson 8 concludes from (method A, method B), with paired bootstrap intervals at these budgets.
CONCLUSION_PAIRS = (("simp_from_cvae", "best_of_cvae"), ("simp_from_baseline", "simp_from_cvae"),
                    ("simp_from_cvae", "simp_uniform"))
CONCLUSION_BUDGETS = (5, 20)
# The budget table's figures: DesignMetrics.summary() key (or "ms") → heading.
BUDGET_COLUMNS = {"CE median": "median CE", "CE p90": "p90 CE", "CE > 10 % share": "CE > 10 %",
                  "floating material share": "floating", "ms": "ms per design"}
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
    rows = {"the dataset's SIMP run (the reference's noise)": table_row(judge(judge.problems.density))}
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
                rows[f"{name}, as decoded, thresholded at 0.5"] = table_row(judge(d, "at_0.5"))
    return rows


def own_volume_sentence(model: torch.nn.Module, judge: Judge, device: torch.device, samples: int = 16) -> str:
    """studies.cvae_study.own_volume_rule on the test problems, as one sentence."""
    rule = own_volume_rule(model, judge, device, samples=samples)
    return (f"Best of {samples} at the draws' own volume (≤ target + 3 %, thresholded at 0.5; test): the heaviest "
            f"admissible draw is chosen in {rule['heaviest chosen share']:.0%} of problems, the chosen designs carry "
            f"a median ΔV of {rule['median ΔV']:+.2%} against the reference's and lie above the target in "
            f"{rule['above target share']:.0%}; their median CE is {rule['median CE at own volume']:+.2%} at their own "
            f"volume, {rule['median CE at reference volume']:+.2%} at the reference's volume. The tables "
            "therefore rank draws at the reference's volume.")


def seed_study(models: dict, problems: StudyProblems, seeds: list[int]) -> list[str]:
    """The CVAE's best of b (the harness's method, studies.cvae_study.cvae_methods) once per draw seed: a markdown
    table of each figure's smallest and largest value over the seeds, b by b."""
    per_seed = {}
    for seed in tqdm(seeds, desc="best of b, seed by seed"):
        best = [m for m in cvae_methods(models["cvae"], models["baseline"], seed) if m.key == "best_of_cvae"]
        per_seed[seed] = judge_results({"best_of_cvae": best[0].run(problems, TABLE_BUDGETS)}, problems)["best_of_cvae"]
    lines = ["| b | " + " | ".join(heading for _, heading in SEED_FIGURES) + " |",
             "| --- |" + " --- |" * len(SEED_FIGURES)]
    for b in TABLE_BUDGETS:
        cells = [range_cell([per_seed[seed][b].summary()[key] for seed in seeds], ".1%") for key, _ in SEED_FIGURES]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return lines


def write_seed_study(models: dict, record: dict, test: TopologyData, references: np.ndarray | None,
                     seeds: list[int], device: torch.device, out: Path) -> int:
    """Run :func:`seed_study` on the test problems and write it to ``out``."""
    command = f"python -m tools.evaluate_cvae --seeds {' '.join(map(str, seeds))}"
    lines = ["# Lesson 8's best of b: how much it moves with the sampling seed", "",
             f"Written by `{command}`; shipped models SHA-256 `{record['sha256'][:12]}…`, on {device}. The shipped "
             f"CVAE's best of b (μ_p(c) first, then draws) on the {len(test)} test problems, judged as in "
             "`docs/results/cvae.md` (at the reference's volume, signed CE against the reference), smallest – largest "
             f"over the sampling seeds {', '.join(map(str, seeds))}; `docs/results/cvae.md` is seed 0. The designs "
             "decoded at μ_p(c), the baseline's and every SIMP run draw nothing.", ""]
    lines += seed_study(models, StudyProblems.of(test, RULE, device, references), seeds)
    print("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}")
    return 0


def training_seed_study(seeds: list[int], test: TopologyData, references: np.ndarray | None,
                        device: torch.device) -> list[str]:
    """Each training seed's CVAE and baseline (studies.cvae_study's harness, as in the comparison) on the test
    problems: each design's figures as smallest – largest over the seeds, the equal-compute table's figures the
    same way, and each of :data:`CONCLUSION_PAIRS` seed by seed with its interval."""
    judge = Judge(test, references=references)
    problems = StudyProblems.of(test, RULE, device, references)
    stages, studies = {}, {}
    for seed in tqdm(seeds, desc="training seeds"):
        models = training_seed_models(seed, device)[0]
        stages[seed] = stage_rows(models, judge, device, full=True)
        studies[seed] = run_cvae_study(models["cvae"], models["baseline"], problems)
    figures = [key for key in JUDGE_COLUMNS if key.startswith("CE") or key.endswith("share")]
    lines = [f"**The designs (test, {len(test)} problems; smallest – largest over training seeds "
             f"{', '.join(map(str, seeds))})**", "",
             "| design | " + " | ".join(JUDGE_COLUMNS[key] for key in figures) + " |",
             "| --- |" + " --- |" * len(figures)]
    for row in TRAINING_SEED_ROWS:
        lines.append(f"| {row} | " + " | ".join(range_cell([stages[seed][row][key] for seed in seeds], ".2%")
                                              for key in figures) + " |")
    lines += ["", f"**Equal compute: b finite-element solves per problem (test, {len(test)} problems; smallest – "
              "largest over the training seeds)**", "",
              "| method | b | " + " | ".join(BUDGET_COLUMNS[k] for k in BUDGET_COLUMNS if k != "ms") + " |",
              "| --- | --- |" + " --- |" * (len(BUDGET_COLUMNS) - 1)]
    for key in studies[seeds[0]].judgements:
        for b in TABLE_BUDGETS:
            cells = [range_cell([studies[seed].judgements[key][b].summary()[figure] for seed in seeds], ".2%")
                     for figure in BUDGET_COLUMNS if figure != "ms"]
            lines.append(f"| {LABELS[key]} | {b} | " + " | ".join(cells) + " |")
    lines += ["", "**Differences the lesson concludes from, seed by seed** (A − B on the same problems, paired "
              "bootstrap 95 % intervals, 4,000 resamplings; * the interval excludes 0; the last column: what the "
              "seeds' intervals support together).", ""]
    for statistic in STATISTICS:
        lines += [f"{statistic}:", "", *markdown_seed_differences(
            {seed: study.judgements for seed, study in studies.items()}, CONCLUSION_PAIRS, CONCLUSION_BUDGETS,
            statistic), ""]
    return lines


def write_training_seed_study(seeds: list[int], test: TopologyData, references: np.ndarray | None,
                              device: torch.device, out: Path) -> int:
    """Run :func:`training_seed_study` and write it to ``out``."""
    records = {seed: training_seed_models(seed)[1] for seed in seeds}  # a missing seed stops here, before any work
    files = "; ".join(f"seed {seed}: `{cvae_seed_checkpoint_path(seed).name}` SHA-256 `{r['sha256'][:12]}…`"
                      for seed, r in records.items())
    lines = ["# Lesson 8's models: how much the figures move with the training seed", "",
             f"Written by `python -m tools.evaluate_cvae --training-seeds {' '.join(map(str, seeds))}`, on {device}. "
             f"The CVAE and the baseline trained with each seed, the shipped settings otherwise ({files}); the lesson "
             f"uses seed {CVAE_TRAINING.seed}. Judged as in `docs/results/cvae.md` (at the reference's volume, signed "
             "CE against the independent reference); the draws of best of b from sampling seed 0.", ""]
    lines += training_seed_study(seeds, test, references, device)
    print("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
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
    parser.add_argument("--training-seeds", type=int, nargs="*", default=None,
                        help="instead: the CVAE and the baseline of each training seed on the test problems (the "
                             "flag alone: every seed of utils.settings.CVAE_TRAINING_SEEDS), written to "
                             "--training-seed-out")
    parser.add_argument("--training-seed-out", type=Path, default=TRAINING_SEED_OUT,
                        help="the training-seed study's markdown file")
    parser.add_argument("--reference", choices=("independent", "dataset"), default="independent",
                        help="judge against the independent references of `make references` (default) or the "
                             "dataset's SIMP designs")
    args = parser.parse_args(argv)
    if args.training_seeds == []:  # the flag alone: every training seed of utils.settings
        args.training_seeds = list(CVAE_TRAINING_SEEDS)
    out = args.out or (None if args.problems else DEFAULT_OUT)
    device = get_device()
    models, record = load_models(CVAE_CHECKPOINT_PATH, device)
    data = load_topology_dataset()
    validation, test = data.subset("validation"), data.subset("test")
    ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    if args.problems:
        validation, test, ood = (d.take(np.arange(min(args.problems, len(d)))) for d in (validation, test, ood))
    references = {name: (load_references(name).density[:len(problems)] if args.reference == "independent" else None)
                  for name, problems in (("validation", validation), ("test", test), ("ood", ood))}
    if args.seeds:
        return write_seed_study(models, record, test, references["test"], args.seeds, device, args.seed_out)
    if args.training_seeds:
        return write_training_seed_study(args.training_seeds, test, references["test"], device,
                                         args.training_seed_out)
    report = Report()
    report.markdown += ["# Lesson 8's shipped models, judged", "",
                        f"Produced by `{COMMAND}`; not rerun by the course site. Shipped models: "
                        f"{record['settings']}, SHA-256 `{record['sha256'][:12]}…`, evaluated on {device} with "
                        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} on "
                        f"{os.cpu_count()} CPUs at the start (wall times on a shared machine are inflated, their "
                        "ratios less so).", "",
                        "Every design is judged under its own problem against the reference design **at the "
                        "reference's volume** (rule `at_reference_volume`: thresholded at the volume of the "
                        "reference thresholded at 0.5) unless a row says \"thresholded at 0.5\"; CE = C / C_ref − 1 "
                        "is signed (positive: less stiff); ΔV is the design's own volume at 0.5 against the "
                        "reference's; E_min = 1e-9. The reference: " + (
                            "the independent reference of `make references` (docs/results/references.md), a design no "
                            "method here is; the dataset's own SIMP design is judged as a method beside the others."
                            if args.reference == "independent" else "the dataset's SIMP design."), ""]
    print(report.markdown[2])
    judges = {"validation": Judge(validation, references=references["validation"]),
              "test": Judge(test, references=references["test"])}
    for split, judge in judges.items():
        report.table(f"{split} problems ({len(judge)})", stage_rows(models, judge, device, full=split == "test"),
                     JUDGE_COLUMNS)

    judge = judges["test"]
    conditions = problem_conditions(test).to(device)
    report.text(own_volume_sentence(models["cvae"], judge, device))
    decoded = {name: model.generate(conditions)[0].cpu().numpy() for name, model in models.items()}
    topodiff_judge = Judge(test, TOPODIFF_E_MIN, references["test"])
    side_by_side = {}
    for name, d in decoded.items():
        side_by_side[f"{name}: TopoDiff's, adapted"] = topodiff_summary(d, judge)
        side_by_side[f"{name}: ours"] = in_topodiff_columns(judge(d))
        side_by_side[f"{name}: ours with E_min = 1e-3"] = in_topodiff_columns(topodiff_judge(d))
    report.table("TopoDiff's figures, adapted (binarised at 127/255, E_void = 1e-3, single load pixel, pieces ≠ 1), "
                 "beside ours (at the reference's volume; VFE against the target); test, as decoded", side_by_side,
                 TOPODIFF_COLUMNS)
    report.text("E_min enters the compliance only: floating material, load disrespect and the volume errors of the "
                "rows 'ours' and 'ours with E_min = 1e-3' are identical; the means move most.")

    study_problems = StudyProblems.of(test, RULE, device, references["test"])
    study = run_cvae_study(models["cvae"], models["baseline"], study_problems,
                           progress=lambda label: print(f"equal compute: {label}"))
    report.table(f"equal compute: b finite-element solves per problem (test, {len(judge)} problems, at the "
                 "reference's volume; ms: wall time per design, decoding included, judging excluded)",
                 study.rows(TABLE_BUDGETS), BUDGET_COLUMNS, {"ms": ".1f"})
    reach = study.solves_to_within()
    report.table("solves to come within 1 % of the reference's compliance (test; first budget of the grid "
                 f"{', '.join(map(str, sorted(next(iter(study.judgements.values())))))} at or below 1 %)",
                 {LABELS[key]: {"median": float(np.nanmedian(r)) if np.any(~np.isnan(r)) else float("nan"),
                                "never": float(np.mean(np.isnan(r)))} for key, r in reach.items()},
                 {"median": "solves (median)", "never": "never within 1 % (share)"}, {"median": ".0f", "never": ".3f"})
    report.text("**Differences the lesson concludes from** (test; A − B on the same problems, paired bootstrap 95 % "
                "intervals, 4,000 resamplings; * the interval excludes 0):")
    intervals = markdown_intervals(difference_rows(study.judgements, CONCLUSION_PAIRS, CONCLUSION_BUDGETS))
    print("\n".join(intervals))
    report.markdown += [*intervals, ""]

    inside = inside_training_ranges(ood.volfrac, ood.load_y, ood.angle_deg)
    ood_judge = Judge(ood, references=references["ood"])
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

    with Stopwatch(device) as watch:
        models["cvae"].generate(conditions)[0].cpu().numpy()
    unverified = watch.seconds / len(test)
    simp = simp_seconds(judge)
    verified = {key: result.seconds[VERIFIED_AT] / len(test) for key, result in study.results.items()}
    training = sum(m["training_seconds"] for m in record["models"].values())
    cvae_training = record["models"]["cvae"]["training_seconds"]
    cost_rows = {"CVAE, unverified (decode only)": {"s": unverified},
                 **{f"{LABELS[key]}, {VERIFIED_AT} solves": {"s": seconds} for key, seconds in verified.items()},
                 "the dataset's SIMP run (its settings, to its tolerance or 100 iterations)": {"s": simp}}
    report.table("cost per design (seconds, this machine; the timing rule of studies.harness)", cost_rows,
                 {"s": "s"}, ".4f")
    for label, seconds in (("the CVAE alone", cvae_training), ("all three shipped models", training)):
        designs = break_even_designs(MAKE_DATA_SECONDS + seconds, simp, verified["simp_from_cvae"])
        report.text(f"Offline cost, {label}: data {MAKE_DATA_SECONDS / 60:.1f} min (`make data` on 2 cores) + training "
                    f"{seconds / 60:.1f} min (data/cvae_topology.pt.sha256.json, on {record['device']}); a verified "
                    f"design (decoded, then {VERIFIED_AT} SIMP iterations) against the dataset's SIMP run breaks even "
                    f"after {designs:,.0f} designs.")
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
