#!/usr/bin/env python3
"""Print the quality figures of the shipped VAE checkpoint on the test split (``make evaluate``):
solid IoU and the physics metrics of thresholded reconstructions (against the thresholded originals), and
of prior samples before and after the SIMP cleanup (under, and against, their nearest training design).
Also writes them as markdown to ``docs/results/vae.md`` (``--markdown PATH``; the course site's results page)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from utils import get_device
from utils.data import load_topology_dataset
from utils.evaluation import decode_latents, judge_against_nearest, reconstruction_report
from utils.metrics import relative_volume_change
from utils.settings import CHECKPOINT_PATH
from utils.topopt import simp_iterations
from utils.vae import load_checkpoint


def print_table(rows: dict[str, dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{'':<28}" + "".join(f"{c:>24}" for c in columns))
    for name, values in rows.items():
        print(f"{name:<28}" + "".join(f"{values[c]:>24.4f}" for c in columns))


MARKDOWN_PATH = Path(__file__).resolve().parents[1] / "docs" / "results" / "vae.md"
# The markdown table's columns: (title, key of the report, shown as a percentage).
MARKDOWN_COLUMNS = (("solid IoU", "IoU mean", False), ("median \\|CE\\|", "|CE| median", True),
                    ("median VFE", "VFE median", True), ("floating material", "floating material share", True),
                    ("load disrespect", "load disrespect share", True))


def _formatted(value: float, percent: bool) -> str:
    """A share or relative error as a percentage (as a multiple from 1 on: "9.9×"), anything else as a number."""
    if not percent:
        return f"{value:.3f}"
    return f"{value:.1f}×" if value >= 1 else f"{100 * value:.1f} %"


def markdown_table(rows: dict[str, dict[str, float]]) -> list[str]:
    """``rows`` (name → report) as a markdown table of :data:`MARKDOWN_COLUMNS` (the ones a report has)."""
    columns = [c for c in MARKDOWN_COLUMNS if c[1] in next(iter(rows.values()))]
    lines = ["| | " + " | ".join(title for title, _, _ in columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, values in rows.items():
        cells = [_formatted(values[key], percent) for _, key, percent in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(path: Path, settings: object, device: object, reconstructions: dict[str, float],
                   originals_miss: float, samples: dict[str, dict[str, float]]) -> None:
    """The results as a page section, headed by the command that reproduces them."""
    lines = ["# The shipped VAE checkpoint (lesson 7)", "",
             "Written by `make evaluate` (`tools/evaluate_checkpoint.py`); rerun it to reproduce every figure here.",
             f"Checkpoint settings: `{settings}`; evaluated on `{device}`.", "",
             "**Reconstructions of the 150 test designs.** Every design is thresholded at 0.5 and compared like "
             "with like: CE and VFE against the thresholded original, so a perfect reconstruction scores 0 on both.",
             "", *markdown_table({"test reconstructions": reconstructions}), "",
             f"Volume against the problem's volume **target** (TopoDiff's VFE): median "
             f"{100 * reconstructions['VFE vs target median']:.1f} % for the reconstructions, "
             f"{100 * originals_miss:.1f} % for the thresholded test originals themselves, so this figure cannot "
             "rank reconstructions.", "",
             "**100 prior samples** (seed 1). A generated design has no problem of its own: each is judged under the "
             "problem of its nearest training design (pixels), against that design, thresholded; then again after "
             "10 warm-started SIMP iterations.", "", *markdown_table(samples), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, default=MARKDOWN_PATH, help="where to write the markdown table")
    args = parser.parse_args([] if argv is None else argv)
    device = get_device()
    model, record = load_checkpoint(CHECKPOINT_PATH, device)
    data = load_topology_dataset()
    test, train = data.subset("test"), data.subset("train")
    print(f"shipped checkpoint: {record['settings']}, SHA-256 {record['sha256'][:12]}…, on {device}")
    reconstructions = reconstruction_report(model, test, device)
    print_table({"test reconstructions": reconstructions})
    originals_miss = np.median(np.abs(relative_volume_change(test.density, test.volfrac)))
    print(f"(the thresholded test originals themselves: VFE vs target median {originals_miss:.4f})")
    latents = torch.randn(100, model.latent_dim, generator=torch.Generator().manual_seed(1)).numpy()
    samples = decode_latents(model, latents, device)
    metrics, nearest = judge_against_nearest(samples, train)
    cleaned = np.stack([simp_iterations(train.load_case(int(i)), 10, s)[10]
                        for s, i in zip(samples, nearest, strict=True)])
    # The cleaned samples are judged under the problems the cleanup ran for, not under a recomputed nearest design.
    samples_report = {"prior samples": metrics.summary(),
                      "prior samples + 10 SIMP its": judge_against_nearest(cleaned, train, nearest)[0].summary()}
    print_table(samples_report)
    named = dict(zip(("prior samples, as decoded", "prior samples + 10 warm-started SIMP iterations"),
                     samples_report.values(), strict=True))
    write_markdown(args.markdown, record["settings"], device, reconstructions, float(originals_miss), named)
    print(f"written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
