"""Self-checks of lesson 4 (the VAE objective). References: torch.distributions and closed-form gradients of
E[sin z] and E[z²] under a Gaussian."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from utils.checks._core import (
    ExerciseCheckFailed,
    assert_close,
    check_draws_from_generator,
    exercise_check,
    passed,
    returned,
)

# The reparametrization-gradient check allows 6 standard errors: a correct estimate fails one of its four
# comparisons with probability < 1e-8 (normal approximation).
STANDARD_ERRORS = 6.0


@exercise_check
def check_gaussian_kl(gaussian_kl: Callable) -> None:
    """Against ``kl_divergence(Normal(mu, sigma), Normal(0, 1))`` summed over dimensions, d ∈ {1, 3, 16}, a batch
    of one, and the prior itself (KL = 0)."""
    generator = torch.Generator().manual_seed(401)
    for batch, dim in ((5, 1), (1, 3), (4, 16)):
        mu = 2 * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
        logvar = 1.5 * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
        variance = torch.exp(logvar)
        expected = kl_divergence(Normal(mu, variance.sqrt()), Normal(0.0, 1.0)).sum(-1)
        terms = 1 + logvar - mu**2 - variance
        mistakes = {
            "with logvar taken for log σ (σ² = exp(2·logvar))": -0.5 * (1 + 2 * logvar - mu**2 - variance**2).sum(-1),
            "with σ in place of σ² (exp(logvar / 2))": -0.5 * (1 + logvar - mu**2 - variance.sqrt()).sum(-1),
            "without the 1 inside the sum": -0.5 * (logvar - mu**2 - variance).sum(-1),
            "for a mean over latent dimensions instead of a sum": -0.5 * terms.mean(-1),
            "for the reversed divergence KL(N(0, I) ‖ q)":
                kl_divergence(Normal(0.0, torch.ones_like(mu)), Normal(mu, variance.sqrt())).sum(-1),
            "for a sum over the batch too (one number, not one per row)": -0.5 * terms.sum(),
        }
        assert_close(f"gaussian_kl (batch {batch}, d={dim})", gaussian_kl(mu, logvar), expected, rtol=1e-9,
                     atol=1e-9, mistakes=mistakes,
                     hint="Derive each dimension's KL from E_q[log q(z) − log p(z)] with E_q[(z − μ)²] = σ² and "
                          "E_q[z²] = σ² + μ², then sum over the last dimension, one value per row; logvar is log σ², "
                          "so σ² = exp(logvar).")
    assert_close("gaussian_kl at the prior (μ = 0, log σ² = 0)", gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)),
                 torch.zeros(2), rtol=0, atol=1e-12, hint="KL(q ‖ p) is zero when q = p.")
    passed("gaussian_kl")


def _check_gradient_estimate(reparam_gradient: Callable, function: Callable, mu_value: float, sigma_value: float,
                             exact: tuple[float, float], spread: tuple[float, float], name: str) -> None:
    """One function: the estimate with 200 000 samples must match the exact gradients within STANDARD_ERRORS
    standard errors (``spread`` bounds the per-sample standard deviation of each gradient)."""
    n = 200_000
    mu = torch.tensor(mu_value, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(np.log(sigma_value), dtype=torch.float64, requires_grad=True)
    grad_mu, grad_log_sigma = returned("reparam_gradient", reparam_gradient(function, mu, log_sigma, n,
                                                                            torch.Generator().manual_seed(3)))
    assert_close(f"d/dmu of E[{name}(z)]", grad_mu, exact[0], rtol=0, atol=STANDARD_ERRORS * spread[0] / np.sqrt(n),
                 hint="Build z = mu + exp(log_sigma)·ε and differentiate the mean of f(z).")
    assert_close(f"d/dlog_sigma of E[{name}(z)]", grad_log_sigma, exact[1], rtol=0,
                 atol=STANDARD_ERRORS * spread[1] / np.sqrt(n),
                 mistakes={"for the derivative with respect to σ instead of log σ": exact[1] / sigma_value},
                 hint="log_sigma enters through σ = exp(log_sigma); the derivative is taken with respect to log σ.")


def _check_no_accumulation(reparam_gradient: Callable, mu: torch.Tensor, log_sigma: torch.Tensor) -> None:
    """Two calls with the same seed on the same mu and log_sigma must give the same gradients: ``.backward()``
    adds into mu.grad, so an answer that returns mu.grad returns the sum over its calls."""
    first, second = ([float(value) for value in reparam_gradient(torch.sin, mu, log_sigma, 10,
                                                                 torch.Generator().manual_seed(5))]
                     for _ in range(2))
    if first != second and (mu.grad is not None or log_sigma.grad is not None):
        raise ExerciseCheckFailed(
            f"reparam_gradient: two calls with the same seed on the same mu returned {first[0]:.4g}, then "
            f"{second[0]:.4g}. .backward() adds each call's gradient into mu.grad and log_sigma.grad, so they pile up "
            "across calls; use torch.autograd.grad(mean, (mu, log_sigma)), which returns the gradients without "
            "storing them.")


@exercise_check
def check_reparam_gradient(reparam_gradient: Callable) -> None:
    """For f = sin: E[sin z] = sin μ · exp(−σ²/2), so d/dμ = cos μ · exp(−σ²/2) and d/dlog σ = −σ² sin μ ·
    exp(−σ²/2). For f = z²: E[z²] = μ² + σ², so d/dμ = 2μ and d/dlog σ = 2σ². Then reproducibility, with no
    gradient piling up in mu.grad across calls."""
    damping = np.exp(-0.64 / 2)
    # Per-sample spread: |cos|, |sin| ≤ 1, so each per-sample gradient of sin is bounded by 1 and σ·|ε|.
    _check_gradient_estimate(reparam_gradient, torch.sin, 0.7, 0.8,
                             (np.cos(0.7) * damping, -0.64 * np.sin(0.7) * damping), (1.0, 0.8), "sin")
    # For z²: the per-sample gradients are 2z (std 2σ) and 2zσε (std 2σ·sqrt(μ² + 2σ²)).
    mu, sigma = -1.5, 2.0
    _check_gradient_estimate(reparam_gradient, torch.square, mu, sigma, (2 * mu, 2 * sigma**2),
                             (2 * sigma, 2 * sigma * np.sqrt(mu**2 + 2 * sigma**2)), "square")
    mu = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(np.log(0.8), dtype=torch.float64, requires_grad=True)
    _check_no_accumulation(reparam_gradient, mu, log_sigma)
    check_draws_from_generator("reparam_gradient", lambda generator: reparam_gradient(
        torch.sin, mu, log_sigma, 10, generator)[0].item())
    passed("reparam_gradient")
