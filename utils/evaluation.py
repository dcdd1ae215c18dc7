"""Judging a trained VAE: pixel IoU and physics metrics of reconstructions and generated designs, and the number
of active latent units. Used by lesson 7 and tools/evaluate_checkpoint.py."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from utils.data import TopologyData
from utils.elbo_terms import bernoulli_log_likelihood, gaussian_kl_terms, reparameterize
from utils.judging import Judge
from utils.metrics import DesignMetrics, solid_iou


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
    """Mean solid IoU and the physics summary of reconstructions of a split, thresholded at 0.5 and judged by
    utils.judging.Judge: CE and VFE against the thresholded original (like with like), "VFE vs target" against
    the problem's volume target."""
    reconstructions = reconstruct(model, subset.density, device)
    metrics = Judge(subset)(reconstructions, "at_0.5")
    ious = [solid_iou(r, d) for r, d in zip(reconstructions, subset.density, strict=True)]
    return {"IoU mean": float(np.mean(ious)), **metrics.summary()}


def nearest_designs(designs: np.ndarray, reference: TopologyData) -> np.ndarray:
    """Index in ``reference`` of the closest design (pixel L2) to each of ``designs: (N, 32, 64)``."""
    flat_reference = reference.density.reshape(len(reference), -1).astype(np.float64)
    flat = designs.reshape(len(designs), -1).astype(np.float64)
    distances = (flat**2).sum(1)[:, None] - 2 * flat @ flat_reference.T + (flat_reference**2).sum(1)[None, :]
    return np.argmin(distances, axis=1)


def judge_against_nearest(designs: np.ndarray, reference: TopologyData, nearest: np.ndarray | None = None
                          ) -> tuple[DesignMetrics, np.ndarray]:
    """Physics metrics of generated designs, each judged (thresholded at 0.5, utils.judging.Judge) under the load
    case of its nearest reference design and against that design, thresholded (its compliance and volume);
    returns the metrics and indices. Pass ``nearest`` to judge under problems chosen before (e.g. a cleanup's
    result under the problem the cleanup ran for, not a recomputed nearest one)."""
    nearest = nearest_designs(designs, reference) if nearest is None else np.asarray(nearest)
    return Judge(reference.take(nearest))(designs, "at_0.5"), nearest


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


@torch.no_grad()
def importance_log_weights(model: nn.Module, x: torch.Tensor, samples: int, generator: torch.Generator,
                           chunk: int = 50, log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None
                           ) -> torch.Tensor:
    """log w_k = log p(x | z_k) + log p(z_k) − log q(z_k | x) for z_k ~ q(z | x), k = 1..samples: (samples, B).

    ``log_prior`` maps latents (M, d) to log p(z) (M,); without it p(z) = N(0, I) (lesson 10 puts its learned priors
    in its place).
    ``x: (B, 1, H, W)`` on the model's device; log p(x | z) is the Bernoulli log-likelihood (−BCE) summed over
    pixels. The mean over k estimates the ELBO; log-mean-exp over K of them is the IWAE bound (Burda et al. 2016).
    ``chunk`` samples per design are decoded at once: 50 keeps the extra memory near 100 MiB for 10 designs.
    """
    model.eval()
    mu, logvar = model.encoder(x)
    std = torch.exp(0.5 * logvar)
    weights = []
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        epsilon = torch.randn((count, *mu.shape), generator=generator).to(mu.device)
        z = reparameterize(mu, logvar, epsilon)
        logits = model.decoder(z.reshape(-1, mu.shape[1])).reshape(count, *x.shape)
        log_likelihood = bernoulli_log_likelihood(logits, x)
        log_p_z = ((-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1) if log_prior is None
                   else log_prior(z.reshape(-1, mu.shape[1])).reshape(count, -1).to(z.dtype))
        log_posterior = (-0.5 * epsilon**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
        weights.append(log_likelihood + log_p_z - log_posterior)
    return torch.cat(weights)


def iwae_bound(log_weights: torch.Tensor, k: int) -> torch.Tensor:
    """The IWAE bound with K = ``k`` per design, averaged over the ⌊S / k⌋ disjoint groups of the S log-weights
    ``(S, B)``: mean over groups of log (1/K) Σ_k w_k. K = 1 gives the ELBO estimate."""
    groups = log_weights.shape[0] // k
    grouped = log_weights[:groups * k].reshape(groups, k, -1)
    return (torch.logsumexp(grouped, dim=1) - math.log(k)).mean(0)
