#!/usr/bin/env python3
"""Build the independent references of lessons 8 and 9's studies (instructor tool): ``make references``.

For every validation, test and out-of-distribution problem, the two reference runs of :mod:`studies.references`
(SIMP continued from the dataset's design to a tight tolerance; SIMP from a uniform start with a density filter and
a continuation of the penalty), the stiffer of them at the volume target kept. Writes
``data/references_64x32.npz`` and its manifest (settings, seconds per set, SHA-256 of the file and of the dataset it
was built from); the studies check the file against the manifest on every load. Deterministic: the same dataset
gives the same references. Refuses to overwrite unless ``--force``; ``--problems N`` builds the first N problems of
each set only (a check: it writes where ``--out`` says).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from studies.references import (
    CONTINUED,
    INDEPENDENT_LAST,
    INDEPENDENT_PENALTIES,
    INDEPENDENT_STAGE,
    REFERENCE_SETS,
    REFERENCES_FILE,
    REFERENCES_MANIFEST,
    SOURCES,
    References,
    dataset_noise,
    reference_for,
    stack_references,
)
from utils.data import TopologyData, load_topology_dataset
from utils.integrity import save_archive
from utils.paths import DATA_DIR
from utils.settings import MANIFEST_FILE, OOD_MANIFEST_FILE
from utils.threads import usable_cpus
from utils.topopt import LoadCase

COMMAND = "make references  (python -m tools.build_references)"
RESULTS = DATA_DIR.parent / "docs" / "results" / "references.md"


def reference_sets(problems: int | None = None) -> dict[str, TopologyData]:
    """The problems that get references, by set (the first ``problems`` of each when given)."""
    data = load_topology_dataset()
    sets = {"validation": data.subset("validation"), "test": data.subset("test"),
            "ood": load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)}
    assert tuple(sets) == REFERENCE_SETS
    return {name: s.take(np.arange(min(problems, len(s)))) if problems else s for name, s in sets.items()}


def _one(job: tuple[LoadCase, np.ndarray]) -> dict:
    return reference_for(*job)


def build(problems: TopologyData, workers: int, name: str) -> tuple[References, float]:
    """The references of one set, on ``workers`` processes (one BLAS thread each), with a progress bar; and the wall
    seconds."""
    jobs = [(problems.load_case(i), problems.density[i].astype(float)) for i in range(len(problems))]
    start = time.perf_counter()
    if workers > 1:
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = "1"
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(tqdm(pool.map(_one, jobs, chunksize=4), total=len(jobs), desc=f"references, {name}"))
    else:
        rows = [_one(job) for job in tqdm(jobs, desc=f"references, {name}")]
    return stack_references(rows), time.perf_counter() - start


def write(directory: Path, built: dict[str, tuple[References, float]], workers: int) -> Path:
    """Write the archive (via a temporary name) and its manifest."""
    arrays = {f"{name}_{field}": value for name, (references, _) in built.items()
              for field, value in asdict(references).items()}
    archive = directory / REFERENCES_FILE
    manifest = {
        "file": REFERENCES_FILE,
        "sha256": save_archive(archive, arrays),
        "command": COMMAND,
        "dataset_sha256": {file: json.loads((DATA_DIR / file).read_text())["sha256"]
                           for file in (MANIFEST_FILE, OOD_MANIFEST_FILE)},
        "continued": CONTINUED.as_dict(),
        "independent": {"penalties": list(INDEPENDENT_PENALTIES),
                        "stage": {k: v for k, v in INDEPENDENT_STAGE.as_dict().items() if k != "penal"},
                        "last stage": {k: v for k, v in INDEPENDENT_LAST.as_dict().items() if k != "penal"}},
        "chosen": "the stiffer of the two at the volume target (E_min 1e-9, penalty 3)",
        "counts": {name: len(references.source) for name, (references, _) in built.items()},
        "source_counts": {name: {source: int(np.sum(references.source == i)) for i, source in enumerate(SOURCES)}
                          for name, (references, _) in built.items()},
        "seconds": {name: round(seconds, 1) for name, (_, seconds) in built.items()},
        "machine": f"{platform.machine()}, {workers} worker process(es), load average {os.getloadavg()[0]:.1f} on "
                   f"{os.cpu_count()} CPUs at the end",
    }
    (directory / REFERENCES_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the independent references of lessons 8 and 9's studies.")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--workers", type=int, default=usable_cpus(), help="processes (default: the usable CPUs)")
    parser.add_argument("--problems", type=int, default=None, help="the first N problems of each set only")
    parser.add_argument("--force", action="store_true", help="overwrite existing references")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"results page (default {RESULTS}; none with --problems unless given)")
    args = parser.parse_args(argv)
    if (args.out / REFERENCES_FILE).exists() and not args.force:
        print(f"error: {args.out / REFERENCES_FILE} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    built = {name: build(problems, args.workers, name) for name, problems in reference_sets(args.problems).items()}
    archive = write(args.out, built, args.workers)
    lines = results_page(built, args.workers)
    print("\n".join(lines))
    print(f"wrote {archive} and its manifest")
    results = args.results or (None if args.problems else RESULTS)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text("\n".join(lines) + "\n")
        print(f"wrote {results}")
    return 0


def results_page(built: dict[str, tuple[References, float]], workers: int) -> list[str]:
    """The results page: what each set's references cost, which run won, and the dataset's design against them."""
    lines = ["# The independent references of lessons 8 and 9", "",
             f"Written by `{COMMAND}` ({platform.machine()}, {workers} worker process(es), load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; wall times on a shared machine are "
             "inflated). Settings and checksums: `data/references_64x32.manifest.json`; the runs: "
             "`studies.references`. "
             "CE of the dataset's design = C / C_ref − 1 at the volume target (E_min = 1e-9): the reference's noise, "
             "the distance between the design every earlier table called SIMP's and the reference.", "",
             "| set | problems | wall s | s per problem | independent run stiffer | median iterations (continued / "
             "independent) | dataset's design: median CE | p95 CE | largest CE | share > 1 % worse | share stiffer |",
             "| --- |" + " --- |" * 10]
    for name, (references, seconds) in built.items():
        noise = dataset_noise(references)
        n = len(noise)
        lines.append(f"| {name} | {n} | {seconds:.0f} | {seconds / n:.2f} | {int(references.source.sum())} | "
                     f"{np.median(references.iterations_continued):.0f} / "
                     f"{np.median(references.iterations_independent):.0f} | {np.median(noise):+.4f} | "
                     f"{np.percentile(noise, 95):+.4f} | {noise.max():+.4f} | {np.mean(noise > 0.01):.3f} | "
                     f"{np.mean(noise < 0):.3f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
