#!/usr/bin/env python3
"""Print the figures of lesson 8's shipped models (``make evaluate-cvae``): for the 150 test problems and the 24
out-of-distribution problems, each design judged under its own problem against SIMP's design (load disrespect,
median |CE|, floating material, median VFE against the target; E_min = 1e-9, and |CE| with TopoDiff's 1e-3),
as decoded, best of 16, and after 10 warm-started SIMP iterations; the shortcut test; the speed payoff."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from utils import get_device
from utils.cvae import load_models, problem_conditions
from utils.data import load_topology_dataset
from utils.generation import (
    TABLE_COLUMNS,
    generate_for_problems,
    generation_table,
    judge_for_problems,
    shortcut_test,
    warm_start_study,
)
from utils.settings import CVAE_CHECKPOINT_PATH, OOD_MANIFEST_FILE, TOPODIFF_E_MIN
from utils.tables import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the figures of lesson 8's shipped models.")
    parser.add_argument("--problems", type=int, default=None,
                        help="only the first N problems of each set (a quick look)")
    args = parser.parse_args(argv)
    device = get_device()
    models, record = load_models(CVAE_CHECKPOINT_PATH, device)
    test = load_topology_dataset().subset("test")
    out_of_distribution = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
    if args.problems:
        test, out_of_distribution = (d.take(np.arange(min(args.problems, len(d)))) for d in (test, out_of_distribution))
    print(f"shipped models: {record['settings']}, SHA-256 {record['sha256'][:12]}…, on {device}")
    for name, problems in ((f"test problems ({len(test)})", test),
                           (f"out-of-distribution problems ({len(out_of_distribution)})", out_of_distribution)):
        for model_name, model in models.items():
            designs = generate_for_problems(model, problems, device=device)
            rows = generation_table(designs, problems)
            topodiff = np.median(np.abs(judge_for_problems(designs.decoded, problems, TOPODIFF_E_MIN).compliance_error))
            print(f"\n{model_name}, {name}; as decoded, median |CE| with E_min = 1e-3: {topodiff:.4f}")
            print(format_table(rows, TABLE_COLUMNS, ".4f"))
    for model_name in ("naive", "cvae"):
        print(f"\nshortcut test, {model_name}: {shortcut_test(models[model_name], test, device)}")
    conditions = problem_conditions(test).to(device)
    start = time.perf_counter()
    decoded = models["cvae"].generate(conditions)[0].cpu().numpy()
    milliseconds = 1e3 * (time.perf_counter() - start) / len(test)
    study = warm_start_study(decoded, test)
    print(f"\ngeneration: {milliseconds:.2f} ms per design (batch of {len(test)}, {torch.get_num_threads()} threads)")
    print(f"SIMP to within 1 % of its own compliance, median over the test problems: uniform start "
          f"{np.nanmedian(study.uniform_iterations):.0f} iterations ({np.nanmedian(study.uniform_seconds):.2f} s), "
          f"warm start from the CVAE {np.nanmedian(study.warm_iterations):.0f} iterations "
          f"({np.nanmedian(study.warm_seconds):.2f} s); never within 1 %: {int(np.isnan(study.warm_iterations).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
