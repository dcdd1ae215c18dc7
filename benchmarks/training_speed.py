"""Seconds per training epoch of lesson 7's VAE and lesson 8's conditional VAE (their lessons' widths, batch 64, the
1,200 training designs) through the course's one training loop (``utils.training.fit`` via ``train_vae`` and
``train_conditional``), with the batches, and so the model, in PyTorch's default (contiguous, NCHW) memory layout and
in channels-last (NHWC), on the device ``utils.get_device`` picks. Prints figures; asserts nothing. The figures decide
``utils.settings.CPU_TRAINING_LAYOUT``.

The layouts alternate epoch by epoch (a model per layout, each trained one epoch at a time), so a load that comes and
goes on the machine falls on both alike. Run: ``.venv/bin/python -m benchmarks.training_speed [--epochs 6]``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from utils import get_device, seed_everything
from utils.cvae import ConditionalVAE, problem_conditions, train_conditional
from utils.data import DesignBatches, TopologyData, load_topology_dataset
from utils.settings import LATENT_DIM, LESSON7_WIDTH, LESSON8_WIDTH, MemoryLayout
from utils.vae import ConvVAE, train_vae

LAYOUTS: tuple[MemoryLayout, ...] = ("contiguous", "channels last")


def vae_epoch(data: TopologyData, layout: MemoryLayout, device: torch.device) -> Callable[[], None]:
    """One more epoch of lesson 7's VAE in ``layout`` each call (a fresh one-epoch schedule: the cost per epoch)."""
    seed_everything(0)
    model = ConvVAE(LATENT_DIM, LESSON7_WIDTH).to(device)
    train = DesignBatches(data.subset("train").density, 64, True, device=device, layout=layout)
    validation = DesignBatches(data.subset("validation").density, 256, False, device=device, layout=layout)

    def epoch() -> None:
        train_vae(model, train, validation, 1, warmup_epochs=1, progress=False)
    return epoch


def cvae_epoch(data: TopologyData, layout: MemoryLayout, device: torch.device) -> Callable[[], None]:
    """One more epoch of lesson 8's conditional VAE in ``layout`` each call."""
    seed_everything(0)
    model = ConditionalVAE(LATENT_DIM, LESSON8_WIDTH).to(device)
    train_split, validation_split = data.subset("train"), data.subset("validation")
    train = DesignBatches(train_split.density, 64, True, device=device, layout=layout,
                          conditions=problem_conditions(train_split))
    validation = DesignBatches(validation_split.density, 256, False, device=device, layout=layout,
                               conditions=problem_conditions(validation_split))

    def epoch() -> None:
        train_conditional(model, train, validation, 1, warmup_epochs=1, progress=False)
    return epoch


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of one call, the device's queued work included."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per layout, after one warm-up each")
    args = parser.parse_args(argv)
    device = get_device()
    data = load_topology_dataset()
    print(f"batch 64, {args.epochs} epochs per layout after a warm-up, alternating, on {device} "
          f"({torch.get_num_threads()} threads)")
    for name, width, build in (("lesson 7's VAE", LESSON7_WIDTH, vae_epoch),
                               ("lesson 8's conditional VAE", LESSON8_WIDTH, cvae_epoch)):
        steps = {layout: build(data, layout, device) for layout in LAYOUTS}
        seconds: dict[MemoryLayout, list[float]] = {layout: [] for layout in LAYOUTS}
        for epoch in range(args.epochs + 1):
            for layout in LAYOUTS:
                elapsed = timed(steps[layout], device)
                if epoch:
                    seconds[layout].append(elapsed)
        print(f"{name}, width {width}:")
        for layout in LAYOUTS:
            print(f"  {layout:14s} median {statistics.median(seconds[layout]):.3f} s per epoch "
                  f"(min {min(seconds[layout]):.3f}, max {max(seconds[layout]):.3f})")
        ratio = statistics.median(seconds["channels last"]) / statistics.median(seconds["contiguous"])
        print(f"  channels-last takes {ratio:.2f}x the time of the default layout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
