#!/usr/bin/env python3
"""Where the time of a latent search goes (lesson 9), printed, never asserted: finite-element solves per second
(the banded solver, one design at a time, as in every search), and per step of a batched search the decoder's forward
and backward passes, the volume projection and the solves, on the CPU and, when present, a GPU for the decoder.

Usage: ``python benchmarks/latent_design_speed.py [--problems N] [--steps K]``."""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from utils import get_device
from utils.cvae import load_models, problem_conditions
from utils.data import load_topology_dataset
from utils.design_space import differentiable_compliance, fe_problems, frozen, project_to_volume
from utils.settings import CVAE_CHECKPOINT_PATH
from utils.topopt import young_modulus


def solves_per_second(problems: list, repeats: int) -> float:
    """Banded solves (stiffness assembly, factorisation, element energies) per second on one design."""
    problem = problems[0]
    x = np.full(problem.model.n_elements, problem.case.volfrac)
    start = time.perf_counter()
    for _ in range(repeats):
        problem.model.element_energies(problem.model.solve(young_modulus(x, problem.penal), problem.force))
    return repeats / (time.perf_counter() - start)


def step_breakdown(device: torch.device, problems: list, conditions: torch.Tensor, steps: int) -> dict[str, float]:
    """Seconds per step of a batched CVAE latent search, by part (decoder forward, projection, solves, backward)."""
    models, _ = load_models(CVAE_CHECKPOINT_PATH, device)
    cvae = frozen(models["cvae"])
    c = conditions.to(device)
    z = cvae.prior_moments(c)[0].detach().clone().requires_grad_(True)
    volumes = torch.tensor([p.case.volfrac for p in problems], dtype=torch.float64)
    optimizer = torch.optim.Adam([z], lr=0.1)
    totals = dict.fromkeys(("decoder forward", "projection", "solves", "backward (all)", "optimiser"), 0.0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        logits = cvae.decode(z, c)[:, 0].double().cpu()
        sync()
        t1 = time.perf_counter()
        density = project_to_volume(logits, volumes)
        t2 = time.perf_counter()
        values = differentiable_compliance(density, problems)
        t3 = time.perf_counter()
        optimizer.zero_grad()
        values.sum().backward()
        sync()
        t4 = time.perf_counter()
        optimizer.step()
        sync()
        t5 = time.perf_counter()
        for key, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            totals[key] += seconds / steps
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=25, help="designs searched at once")
    parser.add_argument("--steps", type=int, default=10, help="steps timed")
    args = parser.parse_args()
    test = load_topology_dataset().subset("test").take(np.arange(args.problems))
    problems = fe_problems([test.load_case(i) for i in range(len(test))])
    rate = solves_per_second(problems, 200)
    print(f"finite-element solves (64×32, banded Cholesky, element energies): {rate:.0f} per second, "
          f"{1e3 / rate:.2f} ms each, {torch.get_num_threads()} torch thread(s)")
    devices = [torch.device("cpu")] + ([get_device()] if get_device().type != "cpu" else [])
    for device in devices:
        parts = step_breakdown(device, problems, problem_conditions(test), args.steps)
        total = sum(parts.values())
        print(f"\none step of a batched search, {args.problems} designs, decoder on {device}: {1e3 * total:.0f} ms "
              f"({1e3 * total / args.problems:.2f} ms per design and solve)")
        for name, seconds in parts.items():
            print(f"  {name:>16}: {1e3 * seconds:7.1f} ms ({seconds / total:.0%})")


if __name__ == "__main__":
    main()
