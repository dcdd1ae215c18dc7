#!/usr/bin/env python3
"""Retrain lesson 8's shipped models (instructor tool): ``make cvae-checkpoint``.

Three models, one file: the conditional VAE with a learned prior p(z | c) (``cvae``), the naive conditional VAE
with the standard prior N(0, I) (``naive``), and the deterministic baseline, the same decoder with no latent
(``baseline``). Reproducible: fixed seeds, the dataset's training split; uses a GPU when ``utils.get_device``
finds one (results then differ from a CPU run in the last digits). Writes ``data/cvae_topology.pt`` and
``data/cvae_topology.pt.sha256.json`` (checksum, settings, validation losses, training time).

The decoders end with a full-resolution refinement stage (``utils.cvae.RefinedDecoder``); ``--plain-decoder``
trains them with lesson 7's decoder instead, the comparison lesson 8 quotes for floating material.
``--thresholded-targets`` trains on the designs thresholded at 0.5 (black and white, the designs the judge compares
against) instead of SIMP's grey densities: lesson 8 quotes what that does to floating material. Pass ``--out`` with
either flag so that the shipped file stays as it is.

``--seed N`` trains with another seed, the same settings otherwise: for a seed other than the shipped one it trains
the CVAE and the baseline only (``CVAE_SEED_MODELS``, the models whose figures the benchmark quotes as ranges over
``CVAE_TRAINING_SEEDS``) into ``data/cvae_topology_seedN.pt``, which ``make evaluate-cvae`` and
``make evaluate-latent`` read; the lessons always use the shipped seed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from utils import get_device, seed_everything
from utils.cvae import ConditionalVAE, problem_conditions, save_models, train_conditional
from utils.data import DesignBatches, load_topology_dataset
from utils.integrity import matches_own_record, prepare_output
from utils.metrics import threshold
from utils.settings import CVAE_SEED_MODELS, CVAE_TRAINING, CVAE_TRAINING_SEEDS, LATENT_DIM, cvae_seed_checkpoint_path

MODELS = {"cvae": {"latent_dim": LATENT_DIM, "prior": "learned"},
          "naive": {"latent_dim": LATENT_DIM, "prior": "standard"},
          "baseline": {"latent_dim": 0, "prior": "standard"}}
SETTINGS = CVAE_TRAINING.as_dict()


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; without arguments, the shipped models' settings."""
    parser = argparse.ArgumentParser(description="Retrain lesson 8's shipped conditional models.")
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--seed", type=int, default=SETTINGS["seed"],
                        help="the training seed; another than the shipped one trains the CVAE and the baseline only")
    parser.add_argument("--other-seeds", action="store_true",
                        help="train every seed of CVAE_TRAINING_SEEDS but the shipped one, one file each "
                             "(a file that exists and matches its record is kept)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the file to write (default: the shipped file, or data/cvae_topology_seedN.pt)")
    parser.add_argument("--thresholded-targets", action="store_true",
                        help="train on the designs thresholded at 0.5 instead of SIMP's grey densities")
    parser.add_argument("--plain-decoder", action="store_true",
                        help="lesson 7's decoder, without the full-resolution refinement stage")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = cvae_seed_checkpoint_path(args.seed)
    return args


def models_to_train(seed: int) -> dict[str, dict[str, int | str]]:
    """All three models for the shipped seed; the CVAE and the baseline for another seed."""
    if seed == SETTINGS["seed"]:
        return MODELS
    return {name: MODELS[name] for name in CVAE_SEED_MODELS}


def training_settings(args: argparse.Namespace) -> dict[str, float | int | str | bool]:
    """What the record of the trained file holds under ``settings``."""
    return {**SETTINGS, "epochs": args.epochs, "seed": args.seed,
            "targets": "thresholded" if args.thresholded_targets else "grey", "refined": not args.plain_decoder}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.other_seeds:
        for seed in CVAE_TRAINING_SEEDS:
            path = cvae_seed_checkpoint_path(seed)
            if seed == SETTINGS["seed"]:
                continue
            if matches_own_record(path):
                print(f"seed {seed}: {path.name} exists and matches its record; kept")
                continue
            train_one(parse_arguments(["--seed", str(seed)]))
        return 0
    return train_one(args)


def train_one(args: argparse.Namespace) -> int:
    """Train the models of ``args`` and write their file and record."""
    prepare_output(args.out)  # before the training: a folder that cannot be written fails now, not in half an hour
    settings = training_settings(args)
    targets = threshold if args.thresholded_targets else np.asarray
    device = get_device()
    data = load_topology_dataset()
    train, validation = data.subset("train"), data.subset("validation")
    models, record = {}, {}
    for name, shape in models_to_train(settings["seed"]).items():
        seed_everything(settings["seed"])
        model = ConditionalVAE(shape["latent_dim"], settings["width"], shape["prior"], settings["refined"]).to(device)
        start = time.perf_counter()
        history = train_conditional(
            model, DesignBatches(targets(train.density), settings["batch_size"], True, seed=settings["seed"],
                                 device=device, conditions=problem_conditions(train), order=settings["batch_order"],
                                 layout=settings["layout"]),
            DesignBatches(targets(validation.density), 256, False, device=device,
                          conditions=problem_conditions(validation), layout=settings["layout"]),
            settings["epochs"], beta=settings["beta"], warmup_epochs=settings["warmup_epochs"], lr=settings["lr"])
        models[name] = model.cpu().eval()
        record[name] = {**shape, "training_seconds": round(time.perf_counter() - start, 1),
                        "final_validation": history.validation[-1]}
        print(f"{name}: validation −ELBO {history.validation[-1]['loss']:.1f} nats per design, "
              f"{record[name]['training_seconds']:.0f} s on {device}")
    digest = save_models(models, args.out, {"settings": settings, "device": str(device), "models": record})
    print(f"wrote {args.out} (SHA-256 {digest[:12]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
