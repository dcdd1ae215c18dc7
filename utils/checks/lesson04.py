"""Self-checks of lesson 4 (the VAE objective). References: torch.distributions and closed-form
gradients of E[sin z] under a Gaussian."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed


@exercise_check
def check_gaussian_kl(gaussian_kl: Callable) -> None:
    """Against ``kl_divergence(Normal(mu, sigma), Normal(0, 1))`` summed over dimensions, d ∈ {1, 3, 16}."""
    generator = torch.Generator().manual_seed(401)
    for dim in (1, 3, 16):
        mu = 2 * torch.randn(5, dim, generator=generator, dtype=torch.float64)
        logvar = 1.5 * torch.randn(5, dim, generator=generator, dtype=torch.float64)
        expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
        assert_close(f"gaussian_kl (d={dim})", gaussian_kl(mu, logvar), expected, rtol=1e-9, atol=1e-9,
                     hint="Sum −½(1 + log σ² − μ² − σ²) over the last dimension; logvar is log σ², so σ² = exp(logvar).")
    assert_close("gaussian_kl at the prior", gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2),
                 rtol=0, atol=1e-12)
    passed("gaussian_kl")


@exercise_check
def check_gaussian_log_likelihood(log_likelihood: Callable) -> None:
    """Against ``Normal(mean, sigma).log_prob(x).sum(-1)`` for several D and σ."""
    generator = torch.Generator().manual_seed(402)
    for dim, sigma in ((1, 0.5), (7, 1.0), (64, 0.1)):
        x = torch.randn(3, dim, generator=generator, dtype=torch.float64)
        mean = torch.randn(3, dim, generator=generator, dtype=torch.float64)
        expected = Normal(mean, sigma).log_prob(x).sum(-1)
        assert_close(f"gaussian_log_likelihood (D={dim}, σ={sigma})", log_likelihood(x, mean, sigma), expected,
                     rtol=1e-9, atol=1e-9, hint="Did you include −(D/2)·log(2πσ²)?")
    passed("gaussian_log_likelihood")


@exercise_check
def check_reparam_gradient(reparam_gradient: Callable) -> None:
    """For f = sin: E[sin z] = sin μ · exp(−σ²/2), so d/dμ = cos μ · exp(−σ²/2) and
    d/dlog σ = −σ² sin μ · exp(−σ²/2). The estimate with 200 000 samples must match within 5 standard errors."""
    mu = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(np.log(0.8), dtype=torch.float64, requires_grad=True)
    sigma2, n = 0.64, 200_000
    grad_mu, grad_log_sigma = reparam_gradient(torch.sin, mu, log_sigma, n, torch.Generator().manual_seed(3))
    damping = np.exp(-sigma2 / 2)
    assert_close("d/dmu", grad_mu, np.cos(0.7) * damping, rtol=0, atol=5 * 1.0 / np.sqrt(n),
                 hint="Build z = mu + exp(log_sigma) * eps and differentiate the mean of f(z).")
    assert_close("d/dlog_sigma", grad_log_sigma, -sigma2 * np.sin(0.7) * damping, rtol=0, atol=5 * 0.8 / np.sqrt(n),
                 hint="log_sigma enters through sigma = exp(log_sigma).")
    first = reparam_gradient(torch.sin, mu, log_sigma, 10, torch.Generator().manual_seed(9))[0]
    second = reparam_gradient(torch.sin, mu, log_sigma, 10, torch.Generator().manual_seed(9))[0]
    if first.item() != second.item():
        raise ExerciseCheckFailed("reparam_gradient: draw ε with the `generator` argument")
    passed("reparam_gradient")
