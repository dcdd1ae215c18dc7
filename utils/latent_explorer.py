"""The latent explorer of lesson 7: move along the main directions of the latent means and see the
decoded design with its problem's supports and load, its volume fraction, its compliance, and whether it
carries the load. The widget's callback is
:func:`draw_latent_explorer`, a plain function."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from utils.evaluation import decode_latents
from utils.metrics import load_status, threshold
from utils.plotting import draw_problem, show_design
from utils.topopt import LoadCase, compliance


@dataclass(frozen=True)
class LatentDirections:
    """Centre (d,), unit directions (k, d) and standard deviations (k,) of the latent means (PCA)."""

    center: np.ndarray
    directions: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_means(cls, means: np.ndarray, count: int) -> LatentDirections:
        center = means.mean(axis=0)
        _, singular_values, vectors = np.linalg.svd(means - center, full_matrices=False)
        return cls(center, vectors[:count], singular_values[:count] / np.sqrt(len(means)))

    def point(self, coefficients: Sequence[float]) -> np.ndarray:
        """centre + Σ_k c_k · scale_k · direction_k, with c_k in standard deviations."""
        return self.center + (np.asarray(coefficients) * self.scales) @ self.directions


def draw_latent_explorer(model: nn.Module, device: torch.device, directions: LatentDirections,
                         coefficients: Sequence[float], load_case: LoadCase,
                         reference_compliance: float) -> dict[str, float | str]:
    """Decode the latent point at ``coefficients`` (standard deviations along each direction), draw it with the
    problem's supports and load, and return its volume fraction (thresholded), its compliance under
    ``load_case`` and whether it carries the load (``reference_compliance``: the SIMP design's)."""
    density = decode_latents(model, directions.point(coefficients)[None], device)[0]
    solid = threshold(density)
    design_compliance = compliance(solid, load_case)
    numbers: dict[str, float | str] = {
        "volume fraction": float(solid.mean()), "compliance": design_compliance,
        "load": load_status(solid, load_case, design_compliance, reference_compliance)}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    show_design(ax, density, f"VF {numbers['volume fraction']:.3f} (target {load_case.volfrac:.3f}), compliance "
                             f"{design_compliance:.3g} (SIMP: {reference_compliance:.3g})\n{numbers['load']}")
    draw_problem(ax, load_case)
    plt.show()
    return numbers
