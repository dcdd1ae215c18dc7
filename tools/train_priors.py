#!/usr/bin/env python3
"""Fit lesson 10's priors to the shipped VAE's codes (instructor tool): ``make priors``.

For each seed of ``utils.settings.PRIOR_SEEDS``: a VampPrior (its pseudo-inputs, the VAE frozen) and a latent
diffusion prior (a DDPM's denoiser on codes z ~ q(z | x) of the training designs), both from ``utils.priors``.
Reproducible on a CPU (fixed seeds, the dataset's training split). Writes ``data/priors_topology.pt`` and its record
``data/priors_topology.pt.sha256.json`` (checksum, settings, the shipped VAE's SHA-256, fitting times and each
diffusion prior's training loss every 100 iterations).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from utils.data import load_topology_dataset
from utils.integrity import prepare_output, record_path
from utils.priors import (
    FittedPriors,
    fit_diffusion_prior,
    fit_vamp_prior,
    posterior_parameters,
    sample_posteriors,
    save_priors,
)
from utils.settings import (
    CHECKPOINT_PATH,
    DIFFUSION_HIDDEN,
    DIFFUSION_ITERATIONS,
    DIFFUSION_STEPS,
    LATENT_DIM,
    PRIOR_SEEDS,
    PRIORS_PATH,
    VAMP_COMPONENTS,
    VAMP_STEPS,
)
from utils.vae import load_checkpoint

SETTINGS = {"seeds": list(PRIOR_SEEDS), "vamp_components": VAMP_COMPONENTS, "vamp_steps": VAMP_STEPS,
            "diffusion_steps": DIFFUSION_STEPS, "diffusion_iterations": DIFFUSION_ITERATIONS,
            "diffusion_hidden": DIFFUSION_HIDDEN}
LOSS_EVERY = 100


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; without arguments, the shipped priors' settings."""
    parser = argparse.ArgumentParser(description="Fit lesson 10's priors to the shipped VAE's codes.")
    parser.add_argument("--out", type=Path, default=PRIORS_PATH)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    prepare_output(args.out)
    torch.set_num_threads(2)  # the course's reference machine; the fits are small
    device = torch.device("cpu")
    train = load_topology_dataset().subset("train")
    model, _ = load_checkpoint(CHECKPOINT_PATH, device)
    mu, logvar = posterior_parameters(model.encoder, train.density, device)
    priors, seconds, losses = {}, {}, {}
    for seed in PRIOR_SEEDS:
        start = time.perf_counter()
        vamp = fit_vamp_prior(model.encoder, train.density, VAMP_COMPONENTS, VAMP_STEPS, seed, device)
        vamp_seconds = time.perf_counter() - start
        start = time.perf_counter()
        diffusion, history = fit_diffusion_prior(lambda generator, count: sample_posteriors(mu, logvar, count,
                                                                                            generator),
                                                 LATENT_DIM, DIFFUSION_ITERATIONS, seed, device,
                                                 steps=DIFFUSION_STEPS, hidden=DIFFUSION_HIDDEN)
        seconds[seed] = {"vamp": round(vamp_seconds, 1), "diffusion": round(time.perf_counter() - start, 1)}
        losses[seed] = [round(float(np.mean(history[i:i + LOSS_EVERY])), 4)
                        for i in range(0, len(history), LOSS_EVERY)]
        priors[seed] = FittedPriors(vamp, diffusion)
        print(f"seed {seed}: VampPrior {seconds[seed]['vamp']} s, diffusion prior {seconds[seed]['diffusion']} s, "
              f"final loss {losses[seed][-1]}", flush=True)
    vae_record = json.loads(record_path(CHECKPOINT_PATH).read_text())
    digest = save_priors(priors, args.out, {"settings": SETTINGS, "vae_sha256": vae_record["sha256"],
                                            "device": str(device), "fitting_seconds": seconds,
                                            "loss_every": LOSS_EVERY, "diffusion_losses": losses})
    print(f"wrote {args.out} (SHA-256 {digest[:12]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
