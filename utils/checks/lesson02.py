"""Self-checks of lesson 2 (posterior inference). References: torch.distributions and Gaussian conditioning."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed


def _reference_log_joint(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                         log_sigma: torch.Tensor) -> torch.Tensor:
    likelihood = Normal(z @ W.T + b, torch.exp(log_sigma)).log_prob(x).sum(-1)
    return likelihood + Normal(0.0, 1.0).log_prob(z).sum(-1)


@exercise_check
def check_log_joint_torch(log_joint: Callable) -> None:
    """Values and parameter gradients against ``torch.distributions.Normal``."""
    generator = torch.Generator().manual_seed(201)
    for dim_x, dim_z in ((3, 1), (5, 2), (4, 4)):
        W = torch.randn(dim_x, dim_z, generator=generator, dtype=torch.float64, requires_grad=True)
        b = torch.randn(dim_x, generator=generator, dtype=torch.float64, requires_grad=True)
        log_sigma = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
        x = torch.randn(dim_x, generator=generator, dtype=torch.float64)
        z = torch.randn(6, dim_z, generator=generator, dtype=torch.float64)
        got = log_joint(x, z, W, b, log_sigma)
        expected = _reference_log_joint(x, z, W, b, log_sigma)
        assert_close(f"log_joint_torch (D={dim_x}, d={dim_z})", got, expected, rtol=1e-9, atol=1e-9,
                     hint="Remember both the likelihood's normaliser and the prior log N(z; 0, I).")
        if not got.requires_grad:
            raise ExerciseCheckFailed("log_joint_torch: the result is not differentiable; use torch operations only")
        for name, grad_got, grad_expected in zip(("W", "b", "log_sigma"),
                                                 torch.autograd.grad(got.sum(), (W, b, log_sigma)),
                                                 torch.autograd.grad(expected.sum(), (W, b, log_sigma))):
            assert_close(f"gradient with respect to {name}", grad_got, grad_expected, rtol=1e-9, atol=1e-9)
    passed("log_joint_torch")


@exercise_check
def check_posterior_params(posterior_params: Callable) -> None:
    """Against the conditional of the joint Gaussian of (z, x): mean Wᵀ Σₓ⁻¹ (x − b), cov I − Wᵀ Σₓ⁻¹ W."""
    rng = np.random.default_rng(202)
    for dim_x, dim_z in ((2, 1), (5, 2), (6, 3)):
        W, b, sigma = rng.normal(size=(dim_x, dim_z)), rng.normal(size=dim_x), float(rng.uniform(0.3, 1.2))
        x = rng.normal(size=dim_x)
        covariance_x = W @ W.T + sigma**2 * np.eye(dim_x)
        gain = np.linalg.solve(covariance_x, W).T
        mean, covariance = posterior_params(x, W, b, sigma)
        assert_close(f"posterior mean (D={dim_x}, d={dim_z})", mean, gain @ (x - b), rtol=1e-8, atol=1e-10,
                     hint="The mean is M⁻¹ Wᵀ (x − b) with M = WᵀW + σ²I.")
        assert_close(f"posterior covariance (D={dim_x}, d={dim_z})", covariance, np.eye(dim_z) - gain @ W,
                     rtol=1e-8, atol=1e-10, hint="The covariance is σ² M⁻¹.")
    passed("posterior_params")


@exercise_check
def check_grid_posterior(grid_posterior: Callable) -> None:
    """On a 2-D linear-Gaussian model: the grid evidence equals the closed form and the posterior
    integrates to one, with the exact posterior mean."""
    generator = torch.Generator().manual_seed(203)
    W, b, sigma = (torch.randn(3, 2, dtype=torch.float64, generator=generator),
                   torch.randn(3, dtype=torch.float64, generator=generator), 0.8)
    x = torch.randn(3, dtype=torch.float64, generator=generator)
    axis = torch.linspace(-6, 6, 301, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis).reshape(301, 301, 2)
    cell = float((axis[1] - axis[0]) ** 2)
    values = _reference_log_joint(x, z, W, b, torch.tensor(np.log(sigma), dtype=torch.float64))
    log_evidence, posterior = grid_posterior(values, cell)
    exact = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(3, dtype=torch.float64)).log_prob(x)
    assert_close("log p(x) on the grid", log_evidence, exact, rtol=0, atol=1e-6,
                 hint="log p(x) ≈ logsumexp(log p(x, z_k)) + log(cell volume).")
    assert_close("posterior mass on the grid", (posterior * cell).sum(), 1.0, rtol=0, atol=1e-6)
    if posterior.shape != values.shape:
        raise ExerciseCheckFailed(f"posterior: expected shape {tuple(values.shape)}, got {tuple(posterior.shape)}")
    covariance_x = W @ W.T + sigma**2 * torch.eye(3, dtype=torch.float64)
    exact_mean = W.T @ torch.linalg.solve(covariance_x, x - b)
    grid_mean = (posterior[..., None] * z).sum((0, 1)) * cell
    assert_close("posterior mean on the grid", grid_mean, exact_mean, rtol=0, atol=1e-5)
    passed("grid_posterior")
