"""Seconds per training epoch of lesson 7's VAE (width 16, batch 64, the 1,200 training designs) through the
course's one epoch loop, with the images and the model in PyTorch's default (contiguous, NCHW) memory layout
and in channels-last (NHWC), on the device ``utils.get_device`` picks. Prints figures; asserts nothing.

Run: ``.venv/bin/python -m benchmarks.training_speed [--epochs 5] [--width 16]``. Run it on an idle machine:
other processes on the same cores change the figures more than the layout does.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from utils import get_device, seed_everything
from utils.data import load_topology_dataset, make_loader
from utils.settings import LATENT_DIM
from utils.vae import ConvVAE, train_epoch

LAYOUTS = {"contiguous (NCHW)": torch.contiguous_format, "channels-last (NHWC)": torch.channels_last}


def epoch_seconds(layout: torch.memory_format, epochs: int, width: int, device: torch.device) -> list[float]:
    """Wall time of each of ``epochs`` epochs after one warm-up epoch, the model and every batch in ``layout``."""
    seed_everything(0)
    loader = make_loader(load_topology_dataset(), "train", 64, seed=0, device=device)
    loader.images = loader.images.contiguous(memory_format=layout)
    model = ConvVAE(LATENT_DIM, width).to(device).to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    seconds = []
    for epoch in range(epochs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_epoch(model, loader, optimizer, 1.0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch:
            seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args(argv)
    device = get_device()
    print(f"lesson 7's VAE, width {args.width}, batch 64, {args.epochs} epochs after a warm-up, on {device} "
          f"({torch.get_num_threads()} threads)")
    medians = {}
    for name, layout in LAYOUTS.items():
        seconds = epoch_seconds(layout, args.epochs, args.width, device)
        medians[name] = statistics.median(seconds)
        print(f"  {name:22s} median {medians[name]:.3f} s per epoch (min {min(seconds):.3f}, max {max(seconds):.3f})")
    contiguous, channels_last = medians.values()
    print(f"  channels-last takes {channels_last / contiguous:.2f}x the time of the default layout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
