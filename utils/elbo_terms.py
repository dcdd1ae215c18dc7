"""The terms of the ELBO that every model of the course shares, written once: the reparametrisation, the Gaussian
KL divergence (to N(0, I) or to a learned Gaussian prior) and the Bernoulli log-likelihood of a density image.

Built in the lessons first: the reparametrisation in lesson 3, the Gaussian KL in lesson 4 (exercise 4.1), the
Bernoulli likelihood in lesson 4 and, summed over pixels, in lesson 7 (exercise 7.1); lesson 8 derives the KL
between two Gaussians. Latents are ``(..., latent_dim)``; images ``(B, 1, H, W)``; values are in nats.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """z = μ + σ ⊙ ε with σ = exp(½ log σ²); ε ~ N(0, I) drawn here unless ``noise`` (broadcastable) is given."""
    return mu + torch.exp(0.5 * logvar) * (torch.randn_like(mu) if noise is None else noise)


def gaussian_kl_terms(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor | None = None,
                      logvar_p: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ p) of every latent dimension, the shape of ``mu_q``.

    Without a prior given, p = N(0, 1): −½ (1 + log σ_q² − μ_q² − σ_q²). With ``mu_p`` and ``logvar_p``,
    p = N(μ_p, σ_p²): ½ (log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1)."""
    if mu_p is None and logvar_p is None:
        return -0.5 * (1 + logvar_q - mu_q**2 - logvar_q.exp())
    if mu_p is None or logvar_p is None:
        raise ValueError("give both the prior's mean and its log-variance, or neither (for N(0, I))")
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) = −Σ_pixels BCE(logits, x) of each image: ``(..., 1, H, W)`` → ``(...)``, in nats.

    ``x`` may be grey (densities in [0, 1]); the value is then a cross-entropy, not the log-probability of a
    binary image (lesson 7 discusses what it measures)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(-3).sum(-1)
