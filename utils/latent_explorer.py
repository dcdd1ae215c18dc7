"""The latent explorer of lesson 7: move along the main directions of the latent means and see the
decoded design, its volume fraction and its compliance. The widget's callback is
:func:`draw_latent_explorer`, a plain function."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from utils.evaluation import decode_latents
from utils.metrics import threshold
from utils.plotting import show_design
from utils.topopt import LoadCase, compliance


@dataclass(frozen=True)
class LatentDirections:
    """Centre (d,), unit directions (k, d) and standard deviations (k,) of the latent means (PCA)."""

    center: np.ndarray
    directions: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_means(cls, means: np.ndarray, count: int) -> "LatentDirections":
        center = means.mean(axis=0)
        _, singular_values, vectors = np.linalg.svd(means - center, full_matrices=False)
        return cls(center, vectors[:count], singular_values[:count] / np.sqrt(len(means)))

    def point(self, coefficients: Sequence[float]) -> np.ndarray:
        """centre + Σ_k c_k · scale_k · direction_k, with c_k in standard deviations."""
        return self.center + (np.asarray(coefficients) * self.scales) @ self.directions


def draw_latent_explorer(model: nn.Module, device: torch.device, directions: LatentDirections,
                         coefficients: Sequence[float], load_case: LoadCase) -> dict[str, float]:
    """Decode the latent point at ``coefficients`` (standard deviations along each direction), draw it and
    return its volume fraction (thresholded) and its compliance under ``load_case``."""
    density = decode_latents(model, directions.point(coefficients)[None], device)[0]
    solid = threshold(density)
    numbers = {"volume fraction": float(solid.mean()), "compliance": compliance(solid, load_case)}
    fig, ax = plt.subplots(figsize=(6, 3.4))
    show_design(ax, density, f"VF {numbers['volume fraction']:.3f} (target {load_case.volfrac:.3f}), "
                             f"compliance {numbers['compliance']:.1f}")
    plt.show()
    return numbers
