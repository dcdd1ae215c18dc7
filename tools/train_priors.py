#!/usr/bin/env python3
"""Fit lesson 10's priors to the shipped VAE's codes (instructor tool): ``make priors``.

For each seed of ``utils.settings.PRIOR_SEEDS``: a VampPrior (its pseudo-inputs, the VAE frozen) and a latent
diffusion prior (a DDPM's denoiser on codes z ~ q(z | x) of the training designs), both from ``utils.priors``.
Reproducible on a CPU (fixed seeds, the dataset's training split). Writes ``data/priors_topology.pt`` and its record
``data/priors_topology.pt.sha256.json`` (checksum, settings, the shipped VAE's SHA-256, fitting times and each
diffusion prior's training loss every 100 iterations). Then, for section 4, a conditional diffusion prior p(z | c) per
seed on lesson 8's shipped CVAE (codes z ~ q(z | x, c) of the training designs with their conditions c, the latents
standardised by the codes' mean and spread): ``data/priors_conditional.pt`` and its record. ``--only`` fits one of
the two.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from utils.cvae import CONDITION_DIM, load_models, problem_conditions
from utils.data import TopologyData, load_topology_dataset
from utils.integrity import prepare_output, record_path
from utils.priors import (
    FittedPriors,
    fit_diffusion_prior,
    fit_vamp_prior,
    posterior_parameters,
    sample_posteriors,
    save_conditional_priors,
    save_priors,
)
from utils.settings import (
    CHECKPOINT_PATH,
    CONDITIONAL_PRIORS_PATH,
    CVAE_CHECKPOINT_PATH,
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
CONDITIONAL_SETTINGS = {"seeds": list(PRIOR_SEEDS), "model": "cvae", "latent_dim": LATENT_DIM,
                        "condition_dim": CONDITION_DIM, "diffusion_steps": DIFFUSION_STEPS,
                        "diffusion_iterations": DIFFUSION_ITERATIONS, "diffusion_hidden": DIFFUSION_HIDDEN,
                        "standardised": True}
LOSS_EVERY = 100


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; without arguments, the shipped priors' settings."""
    parser = argparse.ArgumentParser(description="Fit lesson 10's priors to the shipped VAE's codes.")
    parser.add_argument("--out", type=Path, default=PRIORS_PATH)
    parser.add_argument("--conditional-out", type=Path, default=CONDITIONAL_PRIORS_PATH)
    parser.add_argument("--only", choices=("unconditional", "conditional"),
                        help="fit only lesson 10's unconditional priors (sections 1–3) or only section 4's")
    return parser.parse_args(argv)


def loss_trace(history: list[float]) -> list[float]:
    """The training loss as the mean of every LOSS_EVERY iterations, rounded (the records' curve)."""
    return [round(float(np.mean(history[i:i + LOSS_EVERY])), 4) for i in range(0, len(history), LOSS_EVERY)]


def fit_conditional(train: TopologyData, out: Path, device: torch.device) -> None:
    """Section 4's conditional diffusion priors, one per seed, on the shipped CVAE's codes; written to ``out``."""
    models, cvae_record = load_models(CVAE_CHECKPOINT_PATH, device)
    conditions = problem_conditions(train)
    mu, logvar = posterior_parameters(models["cvae"].encoder, train.density, device, conditions=conditions)
    standardise = (mu.mean(0), mu.std(0))

    def codes(generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(len(mu), (count,), generator=generator)
        noise = torch.randn(count, mu.shape[1], generator=generator, dtype=mu.dtype)
        return mu[index] + torch.exp(0.5 * logvar[index]) * noise, conditions[index]

    priors, seconds, losses = {}, {}, {}
    for seed in PRIOR_SEEDS:
        start = time.perf_counter()
        priors[seed], history = fit_diffusion_prior(codes, LATENT_DIM, DIFFUSION_ITERATIONS, seed, device,
                                                    steps=DIFFUSION_STEPS, hidden=DIFFUSION_HIDDEN,
                                                    condition_dim=CONDITION_DIM, standardise=standardise)
        seconds[seed], losses[seed] = round(time.perf_counter() - start, 1), loss_trace(history)
        print(f"seed {seed}: conditional diffusion prior {seconds[seed]} s, final loss {losses[seed][-1]}",
              flush=True)
    digest = save_conditional_priors(priors, out, {"settings": CONDITIONAL_SETTINGS,
                                                   "cvae_sha256": cvae_record["sha256"], "device": str(device),
                                                   "fitting_seconds": seconds, "loss_every": LOSS_EVERY,
                                                   "diffusion_losses": losses})
    print(f"wrote {out} (SHA-256 {digest[:12]}…)")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    for out, part in ((args.out, "unconditional"), (args.conditional_out, "conditional")):
        if args.only in (None, part):
            prepare_output(out)
    torch.set_num_threads(2)  # the course's reference machine; the fits are small
    device = torch.device("cpu")
    train = load_topology_dataset().subset("train")
    if args.only != "unconditional":
        fit_conditional(train, args.conditional_out, device)
    if args.only == "conditional":
        return 0
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
        losses[seed] = loss_trace(history)
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
