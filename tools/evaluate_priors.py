#!/usr/bin/env python3
"""Lesson 10's section 4 on every validation problem (``make evaluate-priors``): the shipped conditional diffusion
priors p(z | c) (``make priors``, one per seed) against lesson 8's CVAE's learned Gaussian prior p(z | c), as
decoded, as best of b and as SIMP warm starts at equal budgets of finite-element solves, judged at the reference's
volume against the independent references (``studies.prior_study``, the harness lesson 10 runs on a subset), with
paired bootstrap intervals for the differences; prints the tables and writes docs/results/priors.md (``--out``).
The test split is not read."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from studies.harness import Stopwatch, StudyProblems
from studies.prior_study import (
    RULE,
    interval_lines,
    markdown_table,
    run_prior_study,
    table_cells,
    text_table,
)
from studies.references import load_references
from utils import get_device
from utils.cvae import load_models
from utils.data import load_topology_dataset
from utils.paths import DATA_DIR
from utils.priors import load_conditional_priors
from utils.settings import CONDITIONAL_PRIORS_PATH, CVAE_CHECKPOINT_PATH

COMMAND = "make evaluate-priors  (python -m tools.evaluate_priors)"
DEFAULT_OUT = DATA_DIR.parent / "docs" / "results" / "priors.md"
TITLE = "# Lesson 10, section 4: a conditional diffusion prior for lesson 8's CVAE"
TABLE_CAPTION = "validation problems: figures at each budget b of finite-element solves per problem"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Lesson 10's section 4 on every validation problem.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--count", type=int, default=None, help="only the first COUNT validation problems")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    device = get_device()
    validation = load_topology_dataset().subset("validation")
    count = len(validation) if args.count is None else args.count
    if not 1 <= count <= len(validation):
        raise SystemExit(f"--count {count}: between 1 and {len(validation)} validation problems")
    ids = np.arange(count)
    models, cvae_record = load_models(CVAE_CHECKPOINT_PATH, device)
    priors, prior_record = load_conditional_priors(CONDITIONAL_PRIORS_PATH, device)
    references = load_references("validation").density[ids]
    problems = StudyProblems.of(validation.take(ids), RULE, device, references, ids)
    load = os.getloadavg()[0]
    with Stopwatch(device) as watch:
        study = run_prior_study(models["cvae"], priors, problems, progress=lambda label: print(f"running {label}"))
    cells = table_cells(study.rows(sorted(next(iter(study.judgements.values()))["simp_uniform"])))
    print(text_table(cells))
    intervals = interval_lines(study.differences())
    print("\n".join(intervals))
    seeds = ", ".join(map(str, study.seeds))
    markdown = [
        TITLE, "",
        f"Written by `{COMMAND}` in {watch.seconds:.0f} s on {device} ({torch.get_num_threads()} threads, load "
        f"average {load:.1f} on {os.cpu_count()} CPUs at the start); not rerun by the course site. The CVAE: "
        f"`data/cvae_topology.pt` (SHA-256 `{cvae_record['sha256'][:12]}…`); the conditional diffusion priors: "
        f"`data/priors_conditional.pt` (SHA-256 `{prior_record['sha256'][:12]}…`, seeds {seeds}, settings "
        f"`{prior_record['settings']}`).", "",
        f"The first {count} of the {len(validation)} validation problems; the test split is not read (nothing here "
        "is a choice tuned on these problems: the diffusion prior's settings are lesson 10's unconditional ones). "
        "Every design is judged under its own problem against the independent reference (`make references`) at the "
        "reference's volume (rule `at_reference_volume`, lesson 8's); CE = C / C_ref − 1, signed (positive: less "
        "stiff); ΔV: the design's own volume at 0.5 against the reference's. A method at budget b spends exactly b "
        "solves per problem (`studies.harness`); decoding spends none. Seed s: the diffusion prior trained with seed "
        "s and every draw (both priors') from seed s; a cell \"low – high\" is the range over the seeds, a single "
        "value a row that does not depend on the seed (μ_p(c), SIMP from a uniform start or from μ_p(c)).", "",
        f"**{TABLE_CAPTION}**", "", *markdown_table(cells), "",
        "**Differences** (the diffusion prior's method A against the learned prior's B on the same problems, paired "
        "bootstrap 95 % intervals over the problems, 4,000 resamplings, per seed; * the interval excludes 0; "
        "percentage points):", "", *interval_lines(study.differences(), markdown=True), "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(markdown))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
