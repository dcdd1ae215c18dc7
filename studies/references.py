"""The independent references of lessons 8 and 9's studies (``make references``, tools/build_references.py): for
every validation, test and out-of-distribution problem, a design computed once by runs that are none of the compared
methods, shipped with a manifest (settings, time, SHA-256) and checked like the data on every load.

Two reference runs per problem, both to a tight tolerance:

- *continued*: SIMP with the dataset's settings continued from the dataset's design, to a largest change of 1e-3;
- *independent*: SIMP from a uniform start with a density filter instead of the sensitivity filter and a
  continuation of the penalty (1 → 3), the last stage to a largest change of 1e-3.

The reference is the stiffer of the two thresholded at the problem's volume target (the ``round(V·N)`` densest pixels),
so no compared method coincides with it by construction: the dataset's own design is a method ("the dataset's SIMP
run"), and its CE against the reference is the reference's noise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.integrity import DataIntegrityError, file_sha256
from utils.metrics import threshold_at_volume
from utils.paths import DATA_DIR
from utils.settings import DATASET_SOLVER, NELX, NELY, SolverSettings
from utils.topopt import LoadCase, compliance, optimize

REFERENCES_FILE = f"references_{NELX}x{NELY}.npz"
REFERENCES_MANIFEST = f"references_{NELX}x{NELY}.manifest.json"
REBUILD_HINT = "Rebuild them with `make references` (python -m tools.build_references --force)."
# The sets that have references: the dataset's splits read once or used for choices, and lesson 8's problems outside
# the training ranges.
REFERENCE_SETS = ("validation", "test", "ood")
# The continued run: the dataset's SIMP to a tight tolerance (with a cap, recorded with each design's iterations).
CONTINUED = DATASET_SOLVER.with_overrides(tolerance=1e-3, max_iterations=200)
# The independent run: a density filter and the penalty raised stage by stage; each stage but the last to the
# dataset's tolerance, the last to a tight one.
INDEPENDENT_PENALTIES = (1.0, 1.5, 2.0, 2.5, 3.0)
INDEPENDENT_STAGE = DATASET_SOLVER.with_overrides(filter="density", tolerance=1e-2, max_iterations=40)
INDEPENDENT_LAST = DATASET_SOLVER.with_overrides(filter="density", tolerance=1e-3, max_iterations=200)
SOURCES = ("continued", "independent")


def continued_run(case: LoadCase, start: np.ndarray) -> tuple[np.ndarray, int]:
    """The continued reference run from ``start`` (the dataset's design): the design and its iterations."""
    result = optimize(case, CONTINUED, initial_density=start)
    return result.density, result.iterations


def independent_run(case: LoadCase) -> tuple[np.ndarray, int]:
    """The independent reference run: the design and the iterations of all its stages (each stage starts from the
    previous stage's physical design)."""
    design, iterations = None, 0
    for penal in INDEPENDENT_PENALTIES:
        settings: SolverSettings = (INDEPENDENT_LAST if penal == INDEPENDENT_PENALTIES[-1] else INDEPENDENT_STAGE)
        result = optimize(case, settings.with_overrides(penal=penal), initial_density=design)
        design, iterations = result.density, iterations + result.iterations
    return design, iterations


def target_compliance(design: np.ndarray, case: LoadCase) -> float:
    """The compliance of ``design`` thresholded at the problem's volume target (the judge's rule
    ``"at_target_volume"``, the course's E_min and penalty)."""
    return compliance(threshold_at_volume(design, case.volfrac), case, DATASET_SOLVER.penal)


@dataclass(frozen=True)
class References:
    """One set's references: the chosen designs ``(N, nely, nelx)``, which run gave each (0 continued, 1
    independent), both runs' compliances at the volume target and their iterations, and the dataset's design's
    compliance at the volume target, all ``(N,)``."""

    density: np.ndarray
    source: np.ndarray
    compliance_dataset: np.ndarray
    compliance_continued: np.ndarray
    compliance_independent: np.ndarray
    iterations_continued: np.ndarray
    iterations_independent: np.ndarray


def reference_for(case: LoadCase, start: np.ndarray) -> dict[str, np.ndarray | float | int]:
    """Both reference runs for one problem and the stiffer at the volume target (a row of :class:`References`)."""
    runs = [continued_run(case, start), independent_run(case)]
    compliances = [target_compliance(design, case) for design, _ in runs]
    source = int(np.argmin(compliances))
    return {"density": runs[source][0].astype(np.float32), "source": source,
            "compliance_dataset": target_compliance(start, case), "compliance_continued": compliances[0],
            "compliance_independent": compliances[1],
            "iterations_continued": runs[0][1], "iterations_independent": runs[1][1]}


def stack_references(rows: list[dict]) -> References:
    """The rows of :func:`reference_for` as one :class:`References`."""
    return References(**{name: np.stack([row[name] for row in rows]) for name in References.__dataclass_fields__})


def read_references_manifest(directory: Path = DATA_DIR) -> dict:
    path = Path(directory) / REFERENCES_MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataIntegrityError(f"The references' manifest {path} is missing or unreadable ({error}). "
                                 f"{REBUILD_HINT}") from None


def load_references(set_name: str, directory: Path = DATA_DIR) -> References:
    """The shipped references of one set (``"validation"``, ``"test"`` or ``"ood"``), after checking the file's
    SHA-256 against its manifest."""
    if set_name not in REFERENCE_SETS:
        raise ValueError(f"no references for {set_name!r}: one of {', '.join(REFERENCE_SETS)}")
    manifest = read_references_manifest(directory)
    path = Path(directory) / manifest.get("file", REFERENCES_FILE)
    if not path.exists() or file_sha256(path) != manifest.get("sha256"):
        raise DataIntegrityError(f"The references {path} are missing or differ from their manifest. {REBUILD_HINT}")
    with np.load(path, allow_pickle=False) as archive:
        return References(**{name: archive[f"{set_name}_{name}"] for name in References.__dataclass_fields__})


def dataset_noise(references: References) -> np.ndarray:
    """The dataset's SIMP run judged against the reference at the volume target: CE = C_dataset / C_ref − 1, (N,)
    (the reference's noise: how far the design every earlier table called "SIMP's" lies from it)."""
    reference = np.minimum(references.compliance_continued, references.compliance_independent)
    return references.compliance_dataset / reference - 1
