"""Judging designs made for given problems, the way an engineer judges a method: each design under its own
problem, against that problem's reference design, **at one volume for both**, reported as a distribution. Used by
lessons 7, 8 and 9, the evaluation tools and the studies (``studies``).

The one judge is :class:`Judge`: built once per set of problems (their load cases and one finite-element model
shared by all of them), it returns :class:`utils.metrics.DesignMetrics` for designs ``(N, nely, nelx)``, design i
for problem i. The reference of problem i is the dataset's SIMP design unless the judge is given others (the
independent references of ``make references``):

- CE = C / C_ref − 1, signed (positive: less stiff than the reference), under one of three named threshold rules
  (:data:`ThresholdRule`; identifiers, never prose):

  - ``"at_reference_volume"`` (the default; lessons 7 and 8): the design is thresholded at the volume of the
    reference thresholded at 0.5 (:func:`utils.metrics.threshold_at_volume`), C_ref that thresholded reference's,
    so no design buys stiffness with material;
  - ``"at_target_volume"`` (lesson 9, whose searches hold the target exactly): the design *and* the reference are
    thresholded at the problem's volume target, the ``round(V·N)`` densest pixels of each;
  - ``"at_0.5"``: pixel by pixel (as decoded), against the reference thresholded at 0.5.
- ΔV = VF / VF_ref − 1 of the design thresholded at 0.5 (signed, its own volume, shown beside CE; VFE like
  with like is |ΔV|), the VFE against the problem's volume target, |VF / VF_target − 1|, and the same of the judged
  (thresholded) design.
- floating material (more than one 8-connected solid piece) and load disrespect (void at every element touching
  the load's nodes), on the judged (thresholded) design.

TopoDiff's (Mazé & Ahmed 2023) variants of the same four metrics, adapted to our grid, are :func:`topodiff_summary`.
Compliances use the void stiffness ``e_min``: the course's 1e-9 unless said otherwise (TopoDiff: 1e-3).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from utils.data import TopologyData
from utils.metrics import (
    DesignMetrics,
    floating_material,
    load_disrespect,
    solid_components,
    threshold,
    threshold_at_volume,
)
from utils.settings import DATASET_SOLVER, PARAMETER_RANGES, TOPODIFF_E_MIN
from utils.topopt import E_MIN, LoadCase, SharedModels, compliance

# How the judge thresholds a design (module docstring): at the reference's volume, at the problem's volume target
# (the reference thresholded alike), or pixel by pixel at 0.5.
ThresholdRule = Literal["at_reference_volume", "at_target_volume", "at_0.5"]
THRESHOLD_RULES: tuple[ThresholdRule, ...] = ("at_reference_volume", "at_target_volume", "at_0.5")
# TopoDiff binarises its 0–255 images at 127 (white = void): our density ρ is solid where 255 (1 − ρ) < 127.
TOPODIFF_SOLID_LEVEL = 128 / 255


def inside_training_ranges(volfrac: np.ndarray | float, load_y: np.ndarray | float,
                           angle_deg: np.ndarray | float) -> np.ndarray:
    """Whether each problem's condition lies inside the training set's (utils.settings.PARAMETER_RANGES): volume
    fraction and load height in range, and the load's line of action that of an angle in range (the condition
    uses the doubled angle, so θ and θ ± 180° are one problem)."""
    volfrac, load_y, angle = (np.asarray(v, dtype=float) for v in (volfrac, load_y, angle_deg))
    low, high = PARAMETER_RANGES["angle_deg"]
    line = np.mod(angle - low, 180.0) + low  # the angle in [low, low + 180) with the same line of action
    return ((volfrac >= PARAMETER_RANGES["volfrac"][0]) & (volfrac <= PARAMETER_RANGES["volfrac"][1])
            & (load_y >= PARAMETER_RANGES["load_y"][0]) & (load_y <= PARAMETER_RANGES["load_y"][1])
            & (line >= low) & (line <= high))


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so that a wall-clock time includes it (CUDA runs asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Judge:
    """The judge of designs for a set of problems: load cases built once, one finite-element model shared by all
    problems with the same supports, the references' compliances under each threshold rule (computed on first
    use) and their volumes (thresholded at 0.5). ``references: (N, nely, nelx)`` replaces the dataset's SIMP
    designs as the references."""

    def __init__(self, problems: TopologyData, e_min: float = E_MIN, references: np.ndarray | None = None) -> None:
        self.problems = problems
        self.e_min = e_min
        self.load_cases: list[LoadCase] = [problems.load_case(i) for i in range(len(problems))]
        self.models = SharedModels()
        if references is not None and np.shape(references) != np.shape(problems.density):
            raise ValueError(f"references of shape {np.shape(references)} for designs of {problems.density.shape}")
        self.references = np.asarray(problems.density if references is None else references, dtype=float)
        self.reference_volumes = threshold(self.references).mean(axis=(-2, -1))
        self.targets = np.asarray(problems.volfrac, dtype=float)
        self._reference_compliances: dict[ThresholdRule, np.ndarray] = {}
        if e_min == E_MIN and references is None:  # the dataset stores C_SIMP thresholded at 0.5 (the course's E_min)
            stored = np.asarray(problems.compliance_thresholded, dtype=float)
            self._reference_compliances.update({"at_reference_volume": stored, "at_0.5": stored})

    def __len__(self) -> int:
        return len(self.load_cases)

    def compliances(self, solids: np.ndarray, e_min: float | None = None) -> np.ndarray:
        """Compliance of each (already thresholded) design ``(N, nely, nelx)`` under problem i, with the judge's
        void stiffness unless ``e_min`` is given: (N,)."""
        e_min = self.e_min if e_min is None else e_min
        return np.array([compliance(s, case, DATASET_SOLVER.penal, self.models(case), e_min)
                         for s, case in zip(solids, self.load_cases, strict=True)])

    def solid(self, designs: np.ndarray, rule: ThresholdRule = "at_reference_volume") -> np.ndarray:
        """The thresholded designs the judge scores under ``rule`` (module docstring)."""
        if rule == "at_reference_volume":
            return threshold_at_volume(designs, self.reference_volumes)
        if rule == "at_target_volume":
            return threshold_at_volume(designs, self.targets)
        if rule == "at_0.5":
            return threshold(designs)
        raise ValueError(f"unknown threshold rule {rule!r}: one of {', '.join(map(repr, THRESHOLD_RULES))}")

    def compliances_at(self, designs: np.ndarray, rule: ThresholdRule = "at_reference_volume") -> np.ndarray:
        """Compliance of each design ``(N, nely, nelx)`` thresholded under ``rule``, under its problem: (N,)."""
        return self.compliances(self.solid(np.asarray(designs, dtype=float), rule))

    def reference_compliances(self, rule: ThresholdRule = "at_reference_volume") -> np.ndarray:
        """C_ref of each problem under ``rule``: its reference thresholded at 0.5 (``"at_reference_volume"``,
        ``"at_0.5"``) or at the volume target (``"at_target_volume"``): (N,)."""
        if rule not in self._reference_compliances:
            self._reference_compliances[rule] = self.compliances_at(
                self.references, "at_target_volume" if rule == "at_target_volume" else "at_0.5")
        return self._reference_compliances[rule]

    def __call__(self, designs: np.ndarray, rule: ThresholdRule = "at_reference_volume") -> DesignMetrics:
        """Metrics of designs ``(N, nely, nelx)``, design i for problem i (module docstring)."""
        designs = np.asarray(designs, dtype=float)
        if len(designs) != len(self):
            raise ValueError(f"{len(designs)} designs for {len(self)} problems")
        solid = self.solid(designs, rule)
        own_volumes = threshold(designs).mean(axis=(-2, -1))
        return DesignMetrics(
            compliance_error=self.compliances(solid) / self.reference_compliances(rule) - 1,
            volume_change=own_volumes / self.reference_volumes - 1,
            target_volume_error=np.abs(own_volumes / self.targets - 1),
            load_disrespect=np.array([load_disrespect(s, c) for s, c in zip(solid, self.load_cases, strict=True)]),
            floating_material=np.array([floating_material(s) for s in solid]),
            judged_volume_error=np.abs(solid.mean(axis=(-2, -1)) / self.targets - 1))

    def take(self, indices: np.ndarray) -> Judge:
        """The judge of a subset of the problems (sharing this one's finite-element models)."""
        subset = Judge.__new__(Judge)
        indices = np.asarray(indices)
        subset.problems, subset.e_min, subset.models = self.problems.take(indices), self.e_min, self.models
        subset.references = self.references[indices]
        subset.load_cases = [self.load_cases[i] for i in indices]
        subset.reference_volumes, subset.targets = self.reference_volumes[indices], self.targets[indices]
        subset._reference_compliances = {rule: values[indices] for rule, values in self._reference_compliances.items()}
        return subset


# ---------------------------------------------------------------------------------------------------------------
# TopoDiff's metrics, adapted (francoismaze/topodiff, topodiff/topodiff_analysis.py)

def topodiff_load_disrespect(density: np.ndarray, case: LoadCase) -> bool:
    """TopoDiff's rule on our grid: void at the single element under the load's position (coordinates truncated,
    the right edge's load read in the last column), binarised at 127/255."""
    nely, nelx = np.asarray(density).shape
    load = case.loads[0]
    row, col = min(int(load.y), nely - 1), min(int(load.x), nelx - 1)
    return not bool(np.asarray(density)[row, col] > TOPODIFF_SOLID_LEVEL)


def topodiff_summary(designs: np.ndarray, judge: Judge) -> dict[str, float]:
    """TopoDiff's four figures, adapted (and the median and 90th percentile of the same CEs): binarised at 127/255;
    average signed CE with E_void = 1e-3 (FᵀU on our
    64×32 mesh, references binarised alike); average VFE against the target; load disrespect on the single element
    at the load; floating material as "solid pieces ≠ 1" (an empty design counts). ``judge`` supplies the problems
    (its own E_min is not used)."""
    solid = threshold(designs, TOPODIFF_SOLID_LEVEL)
    references = threshold(judge.references, TOPODIFF_SOLID_LEVEL)
    compliance_error = (judge.compliances(solid, TOPODIFF_E_MIN) / judge.compliances(references, TOPODIFF_E_MIN)
                        - 1)
    return {"CE mean": float(np.mean(compliance_error)), "CE median": float(np.median(compliance_error)),
            "CE p90": float(np.percentile(compliance_error, 90)),
            "VFE mean": float(np.mean(np.abs(solid.mean(axis=(-2, -1)) / judge.targets - 1))),
            "load disrespect share": float(np.mean([topodiff_load_disrespect(d, c)
                                                    for d, c in zip(designs, judge.load_cases, strict=True)])),
            "floating material share": float(np.mean([solid_components(s) != 1 for s in solid]))}


# ---------------------------------------------------------------------------------------------------------------
# Choosing among samples

def best_of_k(samples: np.ndarray, judge: Judge, rule: ThresholdRule = "at_reference_volume"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick one of k samples ``(k, N, nely, nelx)`` per problem: the stiffest when all are thresholded at one
    volume (under ``rule``, so more material cannot win); one solve per sample. Returns the chosen designs
    ``(N, nely, nelx)``, their indices ``(N,)`` and all the thresholded samples' compliances ``(k, N)``."""
    compliances = np.stack([judge.compliances_at(s, rule) for s in samples])
    choice = compliances.argmin(axis=0)
    return samples[choice, np.arange(samples.shape[1])], choice, compliances
