"""Physics metrics for generated designs (adapted from TopoDiff, Mazé & Ahmed 2023), and pixel IoU; the judge that
applies them to a set of problems is utils.judging.Judge.

Conventions: designs are ``(nely, nelx)`` images in [0, 1]; "thresholded" means ``> 0.5``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from utils.topopt import LoadCase

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def threshold(density: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Solid (1.0) where ``density > level``, void (0.0) elsewhere."""
    return (np.asarray(density) > level).astype(float)


def threshold_at_volume(density: np.ndarray, volume_fraction: float | np.ndarray) -> np.ndarray:
    """The volume-preserving threshold: solid (1.0) at the ``round(volume_fraction · pixels)`` densest pixels of
    each design, void elsewhere, so that a thresholded design has exactly the volume it is compared at.

    ``density: (..., nely, nelx)``; ``volume_fraction``: a scalar or one value per design (shape ``density``'s
    leading dimensions). Ties in density are broken by pixel order (a stable sort), so the result is
    deterministic."""
    density = np.asarray(density, dtype=float)
    flat = density.reshape(-1, density.shape[-2] * density.shape[-1])
    fractions = np.broadcast_to(np.asarray(volume_fraction, dtype=float), density.shape[:-2]).reshape(-1)
    if np.any((fractions < 0) | (fractions > 1)):
        raise ValueError(f"volume fractions must lie in [0, 1], got {fractions.min():.3g} … {fractions.max():.3g}")
    solid = np.zeros_like(flat)
    order = np.argsort(-flat, axis=1, kind="stable")
    for row, (ranking, fraction) in enumerate(zip(order, fractions, strict=True)):
        solid[row, ranking[: int(round(fraction * flat.shape[1]))]] = 1.0
    return solid.reshape(density.shape)


def solid_iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of the solid regions of two designs (thresholded at 0.5)."""
    a, b = np.asarray(prediction) > 0.5, np.asarray(target) > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compliance_error(design_compliance: float, reference_compliance: float) -> float:
    """CE = C_design / C_reference − 1 (signed: positive means the design is less stiff)."""
    return float(design_compliance / reference_compliance - 1.0)


def volume_fraction_error(density: np.ndarray, reference_volfrac: float) -> float:
    """VFE = |VF − VF_ref| / VF_ref, VF the mean density; VF_ref is a reference design's volume fraction or a
    problem's volume target."""
    return float(abs(np.mean(density) - reference_volfrac) / reference_volfrac)


def relative_volume_change(designs: np.ndarray, reference_volume_fractions: np.ndarray) -> np.ndarray:
    """Signed relative volume of thresholded ``designs: (N, nely, nelx)``, VF / VF_ref − 1, against reference
    volume fractions (the problems' targets, or the thresholded originals'); negative: less material."""
    return threshold(designs).mean(axis=(-2, -1)) / np.asarray(reference_volume_fractions) - 1.0


def load_disrespect(density: np.ndarray, load_case: LoadCase) -> bool:
    """True when every element touching a load's node(s) is void after thresholding."""
    nely, nelx = np.asarray(density).shape
    solid = np.asarray(density) > 0.5
    for load in load_case.loads:
        ix, iy = int(round(load.x)), int(round(load.y))
        rows = slice(max(iy - 1, 0), min(iy + 1, nely))
        cols = slice(max(ix - 1, 0), min(ix + 1, nelx))
        if not solid[rows, cols].any():
            return True
    return False


def solid_components(density: np.ndarray) -> int:
    """Number of 8-connected solid components after thresholding."""
    return int(ndimage.label(np.asarray(density) > 0.5, structure=EIGHT_CONNECTED)[1])


def floating_material(density: np.ndarray) -> bool:
    """True when the thresholded design has more than one 8-connected solid component."""
    return solid_components(density) > 1


def keep_largest_component(density: np.ndarray) -> np.ndarray:
    """The design with every solid component but the largest one set to void (grey values kept inside it)."""
    labels, count = ndimage.label(np.asarray(density) > 0.5, structure=EIGHT_CONNECTED)
    if count <= 1:
        return np.asarray(density).copy()
    sizes = np.bincount(labels.ravel())[1:]
    largest = 1 + int(np.argmax(sizes))
    return np.where((labels == largest) | (labels == 0), density, 0.0)


# A compliance this many times the reference means the load path is broken: what holds the load is the void
# stiffness E_min = 1e-9 (orders of magnitude), not a weak member (a few times).
BROKEN_LOAD_PATH_FACTOR = 1e3


def load_status(density: np.ndarray, load_case: LoadCase, design_compliance: float,
                reference_compliance: float) -> str:
    """One sentence on whether the thresholded design carries the load to the supports."""
    if load_disrespect(density, load_case):
        return "no material at the load: the load is not carried"
    if design_compliance > BROKEN_LOAD_PATH_FACTOR * reference_compliance:
        return (f"the load is not carried to the supports: compliance {design_compliance / reference_compliance:.0e} "
                "× the SIMP design's, held only by the void stiffness")
    if floating_material(density):
        return "the load is carried; some material floats, disconnected"
    return "the load is carried"


# A design "worse than SIMP" in the tables is more than this much less stiff (CE > 0.10).
WORSE_THAN_SIMP = 0.10


def ce_distribution(compliance_error: np.ndarray) -> dict[str, float]:
    """The distribution figures of signed CEs: mean, median, 90th and 95th percentiles, the largest, and the share
    more than :data:`WORSE_THAN_SIMP` less stiff than SIMP."""
    errors = np.asarray(compliance_error, dtype=float)
    return {"CE mean": float(np.mean(errors)), "CE median": float(np.median(errors)),
            "CE p90": float(np.percentile(errors, 90)), "CE p95": float(np.percentile(errors, 95)),
            "CE max": float(np.max(errors)), "CE > 10 % share": float(np.mean(errors > WORSE_THAN_SIMP))}


@dataclass(frozen=True)
class DesignMetrics:
    """Per-design metrics against the SIMP reference of each design's problem (utils.judging.Judge): arrays of
    length N. ``compliance_error`` is signed; ``volume_change`` is the design's own volume (thresholded at 0.5)
    relative to the thresholded reference's, VF / VF_ref − 1, signed; ``target_volume_error`` the same volume
    against the problem's target, |VF / VF_target − 1|; ``judged_volume_error`` that of the judged (thresholded)
    design, |VF_judged / VF_target − 1| (under the target-volume rule, the rounding of ``round(V·N)`` pixels)."""

    compliance_error: np.ndarray
    volume_change: np.ndarray
    target_volume_error: np.ndarray
    load_disrespect: np.ndarray
    floating_material: np.ndarray
    judged_volume_error: np.ndarray

    @classmethod
    def concatenate(cls, parts: Sequence[DesignMetrics]) -> DesignMetrics:
        """The metrics of several sets of designs, one after the other."""
        return cls(**{f.name: np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(cls)})

    @property
    def volume_fraction_error(self) -> np.ndarray:
        """VFE like with like: |VF / VF_ref − 1| against the thresholded reference (lesson 7's definition)."""
        return np.abs(self.volume_change)

    def summary(self) -> dict[str, float]:
        """The distribution of signed CE (:func:`ce_distribution`), the median |CE|, the median signed volume
        change, VFE against the reference and against the target, and the shares of the failures."""
        return {
            **ce_distribution(self.compliance_error),
            "|CE| median": float(np.median(np.abs(self.compliance_error))),
            "ΔV median": float(np.median(self.volume_change)),
            "VFE median": float(np.median(self.volume_fraction_error)),
            "VFE mean": float(np.mean(self.volume_fraction_error)),
            "VFE vs target median": float(np.median(self.target_volume_error)),
            "VFE vs target mean": float(np.mean(self.target_volume_error)),
            "load disrespect share": float(np.mean(self.load_disrespect)),
            "floating material share": float(np.mean(self.floating_material)),
            "judged VFE max": float(np.max(self.judged_volume_error)),
        }
