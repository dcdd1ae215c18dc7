#!/usr/bin/env python3
"""Retrain the shipped VAE checkpoint (instructor tool): ``make checkpoint``.

Reproducible: fixed seed, the dataset's fixed training split; uses a GPU when ``utils.get_device`` finds
one (results then differ from a CPU run in the last digits). Writes ``data/vae_topology.pt`` and
``data/vae_topology.pt.sha256.json`` (checksum, settings, validation figures).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from utils import get_device, seed_everything
from utils.data import load_topology_dataset, make_loader
from utils.integrity import prepare_output
from utils.settings import CHECKPOINT_PATH, LATENT_DIM, VAE_TRAINING
from utils.vae import ConvVAE, save_checkpoint, train_vae

SETTINGS = {"latent_dim": LATENT_DIM, **VAE_TRAINING.as_dict()}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; without arguments, the shipped checkpoint's settings."""
    parser = argparse.ArgumentParser(description="Retrain the shipped VAE checkpoint.")
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--out", type=Path, default=CHECKPOINT_PATH)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    prepare_output(args.out)  # before the training: a folder that cannot be written fails now, not after it
    settings = {**SETTINGS, "epochs": args.epochs}
    seed_everything(settings["seed"])
    device = get_device()
    data = load_topology_dataset()
    model = ConvVAE(settings["latent_dim"], settings["width"]).to(device)
    start = time.perf_counter()
    train_batches = make_loader(data, "train", settings["batch_size"], seed=settings["seed"], device=device,
                                order=settings["batch_order"], layout=settings["layout"])
    history = train_vae(model, train_batches,
                        make_loader(data, "validation", 256, device=device, layout=settings["layout"]),
                        settings["epochs"],
                        beta=settings["beta"], warmup_epochs=settings["warmup_epochs"], lr=settings["lr"])
    seconds = time.perf_counter() - start
    model.cpu()
    digest = save_checkpoint(model, args.out, {"settings": settings, "device": str(device),
                                               "training_seconds": round(seconds, 1),
                                               "final_validation": history.validation[-1]})
    print(f"wrote {args.out} (SHA-256 {digest[:12]}…) after {seconds:.0f} s on {device}; "
          f"validation −ELBO {history.validation[-1]['loss']:.1f} nats per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
