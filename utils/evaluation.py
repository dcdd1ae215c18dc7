"""Judging a trained VAE: pixel IoU and physics metrics of reconstructions and generated designs, the
SIMP cleanup, and the number of active latent units. Used by lesson 7 and tools/evaluate_checkpoint.py."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from utils.data import TopologyData
from utils.metrics import DesignMetrics, evaluate_designs, relative_volume_change, solid_iou
from utils.topopt import LoadCase, optimize
from utils.vae import gaussian_kl_terms

SIMP_PENAL, SIMP_RMIN = 3.0, 2.0  # the dataset's solver settings


@torch.no_grad()
def encode_means(model: nn.Module, density: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Posterior means μ(x) of designs ``density: (N, 32, 64)``: (N, latent_dim)."""
    model.eval()
    means = [model.encoder(torch.as_tensor(density[i:i + batch_size], dtype=torch.float32)[:, None].to(device))[0]
             for i in range(0, len(density), batch_size)]
    return torch.cat(means).cpu().numpy()


@torch.no_grad()
def decode_latents(model: nn.Module, latents: np.ndarray, device: torch.device) -> np.ndarray:
    """Decoded densities in [0, 1] of latents ``(N, latent_dim)``: (N, 32, 64)."""
    model.eval()
    logits = model.decoder(torch.as_tensor(latents, dtype=torch.float32).to(device))
    return torch.sigmoid(logits)[:, 0].cpu().numpy()


def reconstruct(model: nn.Module, density: np.ndarray, device: torch.device) -> np.ndarray:
    """Decoded posterior means of designs ``(N, 32, 64)``: (N, 32, 64)."""
    return decode_latents(model, encode_means(model, density, device), device)


def reconstruction_report(model: nn.Module, subset: TopologyData, device: torch.device) -> dict[str, float]:
    """Mean solid IoU and the physics summary of thresholded reconstructions of a split.

    Compliance and volume-fraction errors compare each thresholded reconstruction with the thresholded
    original; "VFE vs target median" compares its volume with the problem's volume target instead."""
    reconstructions = reconstruct(model, subset.density, device)
    metrics = evaluate_designs(reconstructions, [subset.load_case(i) for i in range(len(subset))],
                               subset.density, subset.compliance_thresholded)
    ious = [solid_iou(r, d) for r, d in zip(reconstructions, subset.density)]
    target_misses = np.abs(relative_volume_change(reconstructions, subset.volfrac))
    return {"IoU mean": float(np.mean(ious)), **metrics.summary(),
            "VFE vs target median": float(np.median(target_misses))}


def nearest_designs(designs: np.ndarray, reference: TopologyData) -> np.ndarray:
    """Index in ``reference`` of the closest design (pixel L2) to each of ``designs: (N, 32, 64)``."""
    flat_reference = reference.density.reshape(len(reference), -1).astype(np.float64)
    flat = designs.reshape(len(designs), -1).astype(np.float64)
    distances = (flat**2).sum(1)[:, None] - 2 * flat @ flat_reference.T + (flat_reference**2).sum(1)[None, :]
    return np.argmin(distances, axis=1)


def judge_against_nearest(designs: np.ndarray, reference: TopologyData) -> tuple[DesignMetrics, np.ndarray]:
    """Physics metrics of generated designs, each judged under the load case of its nearest reference design
    and against that design, thresholded (its compliance and volume); returns the metrics and indices."""
    nearest = nearest_designs(designs, reference)
    cases = [reference.load_case(int(i)) for i in nearest]
    metrics = evaluate_designs(designs, cases, reference.density[nearest], reference.compliance_thresholded[nearest])
    return metrics, nearest


def simp_cleanup(design: np.ndarray, load_case: LoadCase, iterations: int = 10) -> np.ndarray:
    """A few SIMP iterations warm-started from ``design`` (the dataset's solver settings)."""
    return optimize(load_case, penal=SIMP_PENAL, rmin=SIMP_RMIN, max_iterations=iterations,
                    initial_density=design).density


@torch.no_grad()
def kl_per_unit(model: nn.Module, density: np.ndarray, device: torch.device) -> np.ndarray:
    """KL(q(z_j | x) ‖ N(0, 1)) of each latent dimension, averaged over designs ``(N, 32, 64)``: (latent_dim,)."""
    model.eval()
    mu, logvar = model.encoder(torch.as_tensor(density, dtype=torch.float32)[:, None].to(device))
    return gaussian_kl_terms(mu, logvar).mean(0).cpu().numpy()


@torch.no_grad()
def active_units(model: nn.Module, density: np.ndarray, device: torch.device, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across designs: Var_x(μ_j(x)) > threshold."""
    return int(np.sum(encode_means(model, density, device).var(axis=0) > threshold))
