#!/usr/bin/env python3
"""Print the quality figures of the shipped VAE checkpoint on the test split (``make evaluate``):
solid IoU and the physics metrics of thresholded reconstructions (against the thresholded originals), and
of prior samples before and after the SIMP cleanup (under, and against, their nearest training design)."""
from __future__ import annotations

import sys

import numpy as np
import torch

from utils import get_device
from utils.data import load_topology_dataset
from utils.evaluation import decode_latents, judge_against_nearest, reconstruction_report, simp_cleanup
from utils.metrics import relative_volume_change
from utils.settings import CHECKPOINT_PATH
from utils.vae import load_checkpoint


def print_table(rows: dict[str, dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{'':<28}" + "".join(f"{c:>24}" for c in columns))
    for name, values in rows.items():
        print(f"{name:<28}" + "".join(f"{values[c]:>24.4f}" for c in columns))


def main() -> int:
    device = get_device()
    model, record = load_checkpoint(CHECKPOINT_PATH, device)
    data = load_topology_dataset()
    test, train = data.subset("test"), data.subset("train")
    print(f"shipped checkpoint: {record['settings']}, SHA-256 {record['sha256'][:12]}…, on {device}")
    print_table({"test reconstructions": reconstruction_report(model, test, device)})
    originals_miss = np.median(np.abs(relative_volume_change(test.density, test.volfrac)))
    print(f"(the thresholded test originals themselves: VFE vs target median {originals_miss:.4f})")
    latents = torch.randn(100, model.latent_dim, generator=torch.Generator().manual_seed(1)).numpy()
    samples = decode_latents(model, latents, device)
    metrics, nearest = judge_against_nearest(samples, train)
    cleaned = np.stack([simp_cleanup(s, train.load_case(int(i))) for s, i in zip(samples, nearest, strict=True)])
    print_table({"prior samples": metrics.summary(),
                 # judged under the problems the cleanup ran for, not under a recomputed nearest design
                 "prior samples + 10 SIMP its": judge_against_nearest(cleaned, train, nearest)[0].summary()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
