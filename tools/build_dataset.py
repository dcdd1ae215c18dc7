#!/usr/bin/env python3
"""Generate the course's topology dataset (instructor tool): ``make data``.

Every sample is a 64×32 cantilever clamped on its left edge with one point load on its right edge; the
load's height, its angle and the volume fraction vary continuously. Each is optimised by the course's SIMP
solver (penalty 3, sensitivity filter of radius 2, at most 100 iterations) and stored with its full
problem, so that every physics metric can be recomputed later.

Writes ``data/topology_64x32.npz`` and its manifest ``data/topology_64x32.manifest.json`` (SHA-256,
generator version, seed, parameter ranges, counts, split). Deterministic: the same seed gives the same
designs. Refuses to overwrite an existing dataset unless ``--force``.

``--verify K`` regenerates the first K samples and compares them with the shipped file instead.

``--out-of-distribution`` writes instead the small set of lesson 8's problems outside the training ranges
(``data/topology_64x32_ood.npz`` and its manifest; every problem in its "test" split), same solver.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from utils.data import GENERATOR_VERSION, SPLIT_NAMES, load_topology_dataset
from utils.integrity import save_archive
from utils.metrics import threshold
from utils.paths import DATA_DIR
from utils.settings import (
    DATASET_COUNT,
    DATASET_FILE,
    DATASET_SEED,
    DATASET_SOLVER,
    MANIFEST_FILE,
    NELX,
    NELY,
    OOD_DATASET_FILE,
    OOD_DATASET_SEED,
    OOD_MANIFEST_FILE,
    PARAMETER_RANGES,
    SPLIT_FRACTIONS,
)
from utils.threads import usable_cpus
from utils.topopt import LoadCase, cantilever, compliance, optimize


def draw_problems(count: int, seed: int) -> list[LoadCase]:
    """The ``count`` load cases of the dataset, drawn uniformly in the parameter ranges of
    :mod:`utils.settings` with ``seed``."""
    rng = np.random.default_rng(seed)
    volfrac, load_y, angle = (rng.uniform(*PARAMETER_RANGES[k], size=count) for k in ("volfrac", "load_y", "angle_deg"))
    return [cantilever(NELX, NELY, round(float(v), 6), round(float(y), 6), round(float(a), 6))
            for v, y, a in zip(volfrac, load_y, angle, strict=True)]


def out_of_distribution_problems() -> list[LoadCase]:
    """24 problems outside the training ranges (volume fraction 0.30–0.50, angle −150°…−30°): 12 with a volume
    fraction of 0.25 or 0.55, 8 with a load direction outside the range (near-horizontal or upwards), 4 with both."""
    cases = [cantilever(NELX, NELY, v, y, a) for v in (0.25, 0.55) for y in (4.0, 16.0, 28.0) for a in (-60.0, -120.0)]
    cases += [cantilever(NELX, NELY, 0.4, y, a) for a in (-175.0, -5.0, 60.0, 120.0) for y in (8.0, 24.0)]
    cases += [cantilever(NELX, NELY, v, 16.0, a) for v in (0.25, 0.55) for a in (-10.0, -170.0)]
    return cases


def draw_split(count: int, seed: int) -> np.ndarray:
    """Split codes (0 train, 1 validation, 2 test) fixed by ``seed``."""
    order = np.random.default_rng(seed + 1).permutation(count)
    codes = np.zeros(count, dtype=np.int8)
    n_train = int(round(SPLIT_FRACTIONS["train"] * count))
    n_validation = int(round(SPLIT_FRACTIONS["validation"] * count))
    codes[order[n_train:n_train + n_validation]] = 1
    codes[order[n_train + n_validation:]] = 2
    return codes


def solve(case: LoadCase) -> dict:
    """Optimise one load case; return its design and figures."""
    result = optimize(case, DATASET_SOLVER)
    thresholded = threshold(result.density)
    return {"density": result.density.astype(np.float32), "compliance": result.compliance,
            "compliance_thresholded": compliance(thresholded, case, DATASET_SOLVER.penal),
            "iterations": result.iterations, "converged": result.converged}


def solve_all(cases: list[LoadCase], workers: int) -> list[dict]:
    """Solve every case on ``workers`` processes, in order, with a progress bar.

    Each worker is a fresh process whose BLAS uses one thread: several multi-threaded BLAS libraries on
    the same cores slow each other down by an order of magnitude.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(solve, cases, chunksize=8), total=len(cases), desc="SIMP designs"))


def write_dataset(directory: Path, cases: list[LoadCase], results: list[dict], seed: int,
                  file_name: str = DATASET_FILE, manifest_name: str = MANIFEST_FILE,
                  split: np.ndarray | None = None) -> Path:
    """Write the archive and its manifest (the archive first, via a temporary name); ``split`` defaults to the
    seed's random split."""
    arrays = {
        "density": np.stack([r["density"] for r in results]),
        "volfrac": np.array([c.volfrac for c in cases]),
        "load_y": np.array([c.loads[0].y for c in cases]),
        "angle_deg": np.array([c.loads[0].angle_deg for c in cases]),
        "compliance": np.array([r["compliance"] for r in results]),
        "compliance_thresholded": np.array([r["compliance_thresholded"] for r in results]),
        "iterations": np.array([r["iterations"] for r in results], dtype=np.int16),
        "converged": np.array([r["converged"] for r in results]),
        "split": draw_split(len(cases), seed) if split is None else split,
        "problems": np.array([json.dumps(c.to_dict()) for c in cases]),
    }
    archive = directory / file_name
    manifest = {
        "file": file_name,
        "sha256": save_archive(archive, arrays),
        "generator_version": GENERATOR_VERSION,
        "command": "make data  (python tools/build_dataset.py)",
        "seed": seed,
        "count": len(cases),
        "split_counts": {name: int(np.sum(arrays["split"] == code)) for code, name in enumerate(SPLIT_NAMES)},
        "domain": {"nelx": NELX, "nely": NELY, "supports": "left edge clamped",
                   "load": "one unit point load on the right edge"},
        "solver": DATASET_SOLVER.as_dict(),
        "parameter_ranges": PARAMETER_RANGES,
        "converged": int(arrays["converged"].sum()),
    }
    (directory / manifest_name).write_text(json.dumps(manifest, indent=2) + "\n")
    return archive


def verify(directory: Path, count: int, seed: int) -> float:
    """Regenerate the first ``count`` samples; return the largest density difference to the shipped ones."""
    shipped = load_topology_dataset(directory)
    cases = draw_problems(int(shipped.density.shape[0]), seed)[:count]
    if [c.to_dict() for c in cases] != [json.loads(p) for p in shipped.problems[:count]]:
        raise SystemExit("the regenerated problems differ from the shipped ones (seed or generator changed)")
    results = [solve(case) for case in cases]
    return float(max(np.abs(r["density"] - d).max() for r, d in zip(results, shipped.density[:count], strict=True)))


def write_out_of_distribution(directory: Path, workers: int, force: bool) -> int:
    """Solve and write the out-of-distribution problems (refuses to overwrite unless ``force``)."""
    if (directory / OOD_DATASET_FILE).exists() and not force:
        print(f"error: {directory / OOD_DATASET_FILE} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    cases = out_of_distribution_problems()
    test_split = np.full(len(cases), SPLIT_NAMES.index("test"), dtype=np.int8)
    archive = write_dataset(directory, cases, solve_all(cases, workers), OOD_DATASET_SEED, OOD_DATASET_FILE,
                            OOD_MANIFEST_FILE, test_split)
    print(f"wrote {archive} ({archive.stat().st_size / 1e3:.0f} kB) and its manifest")
    return 0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; without arguments, the shipped dataset's settings."""
    parser = argparse.ArgumentParser(description="Generate the topology dataset.")
    parser.add_argument("--count", type=int, default=DATASET_COUNT)
    parser.add_argument("--seed", type=int, default=DATASET_SEED)
    parser.add_argument("--workers", type=int, default=usable_cpus(), help="processes (default: the usable CPUs)")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    parser.add_argument("--verify", type=int, metavar="K", help="regenerate K samples and compare instead")
    parser.add_argument("--out-of-distribution", action="store_true",
                        help="write lesson 8's out-of-distribution problems instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.out_of_distribution:
        return write_out_of_distribution(args.out, args.workers, args.force)
    if args.verify:
        difference = verify(args.out, args.verify, args.seed)
        print(f"largest density difference over {args.verify} regenerated samples: {difference:.2e}")
        return 0 if difference < 1e-4 else 1
    if (args.out / DATASET_FILE).exists() and not args.force:
        print(f"error: {args.out / DATASET_FILE} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cases = draw_problems(args.count, args.seed)
    archive = write_dataset(args.out, cases, solve_all(cases, args.workers), args.seed)
    print(f"wrote {archive} ({archive.stat().st_size / 1e6:.1f} MB) and its manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
