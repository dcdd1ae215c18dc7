"""Self-checks of lesson 2 (posterior inference). References: torch.distributions and Gaussian conditioning
of the joint Gaussian of (z, x)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, gradients, passed, returned


def _reference_log_joint(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                         log_sigma: torch.Tensor) -> torch.Tensor:
    likelihood = Normal(z @ W.T + b, torch.exp(log_sigma)).log_prob(x).sum(-1)
    return likelihood + Normal(0.0, 1.0).log_prob(z).sum(-1)


def _log_joint_mistakes(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                        log_sigma: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual slips give, from the same pieces as the reference."""
    with torch.no_grad():
        mean, dim_x = z @ W.T + b, x.shape[-1]
        squared = ((x - mean) ** 2).sum(-1)
        log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
        normal_constant = 0.5 * dim_x * np.log(2 * np.pi)
        return {
            "without the prior term log N(z; 0, I)": Normal(mean, torch.exp(log_sigma)).log_prob(x).sum(-1),
            "with log_sigma taken for σ itself": Normal(mean, log_sigma.abs()).log_prob(x).sum(-1) + log_prior,
            "with log_sigma taken for log σ²":
                Normal(mean, torch.exp(0.5 * log_sigma)).log_prob(x).sum(-1) + log_prior,
            "without the −D·log σ term of the normaliser": -0.5 * squared * torch.exp(-2 * log_sigma)
                - normal_constant + log_prior,
            "with −log σ counted once instead of D times": -0.5 * squared * torch.exp(-2 * log_sigma)
                - log_sigma - normal_constant + log_prior,
            "with a mean over coordinates instead of a sum":
                Normal(mean, torch.exp(log_sigma)).log_prob(x).mean(-1) + Normal(0.0, 1.0).log_prob(z).mean(-1),
        }


@exercise_check
def check_log_joint_torch(log_joint: Callable) -> None:
    """Values and parameter gradients against ``torch.distributions.Normal`` for several dimensions (a single
    z and d = D included) and noise levels."""
    generator = torch.Generator().manual_seed(201)
    for dim_x, dim_z, n_latents, log_sigma_value in ((3, 1, 6, -0.4), (5, 2, 1, 0.3), (4, 4, 5, -1.5)):
        W = torch.randn(dim_x, dim_z, generator=generator, dtype=torch.float64, requires_grad=True)
        b = torch.randn(dim_x, generator=generator, dtype=torch.float64, requires_grad=True)
        log_sigma = torch.tensor(log_sigma_value, dtype=torch.float64, requires_grad=True)
        x = torch.randn(dim_x, generator=generator, dtype=torch.float64)
        z = torch.randn(n_latents, dim_z, generator=generator, dtype=torch.float64)
        got = log_joint(x, z, W, b, log_sigma)
        expected = _reference_log_joint(x, z, W, b, log_sigma)
        case = f"D={dim_x}, d={dim_z}, log σ={log_sigma_value}"
        assert_close(f"log_joint_torch ({case})", got, expected, rtol=1e-9, atol=1e-9,
                     mistakes=_log_joint_mistakes(x, z, W, b, log_sigma),
                     hint="log N(x; W z + b, σ² I) + log N(z; 0, I) with σ = exp(log_sigma), one value per row of z.")
        parameters = {"W": W, "b": b, "log_sigma": log_sigma}
        got_gradients = gradients("log_joint_torch", got, parameters)
        expected_gradients = torch.autograd.grad(expected.sum(), tuple(parameters.values()))
        for (name, grad_got), grad_expected in zip(got_gradients.items(), expected_gradients, strict=True):
            assert_close(f"gradient with respect to {name} ({case})", grad_got, grad_expected, rtol=1e-9, atol=1e-9)
    passed("log_joint_torch")


@exercise_check
def check_posterior_params(posterior_params: Callable) -> None:
    """Against the conditional of the joint Gaussian of (z, x): mean Wᵀ Σₓ⁻¹ (x − b), covariance I − Wᵀ Σₓ⁻¹ W,
    with Σₓ = W Wᵀ + σ² I (a formula other than the lesson's), for d = 1, d < D and d = D."""
    rng = np.random.default_rng(202)
    for dim_x, dim_z in ((2, 1), (5, 2), (6, 3), (3, 3)):
        W, b, sigma = rng.normal(size=(dim_x, dim_z)), rng.normal(size=dim_x), float(rng.uniform(0.3, 1.2))
        x = rng.normal(size=dim_x)
        covariance_x = W @ W.T + sigma**2 * np.eye(dim_x)
        gain = np.linalg.solve(covariance_x, W).T
        M = W.T @ W + sigma**2 * np.eye(dim_z)
        mean, covariance = returned("posterior_params", posterior_params(x, W, b, sigma))
        assert_close(f"posterior mean (D={dim_x}, d={dim_z})", mean, gain @ (x - b), rtol=1e-8, atol=1e-10,
                     mistakes={"from x instead of x − b": gain @ x,
                               "from least squares, (WᵀW)⁻¹Wᵀ(x − b), without the prior's σ²I":
                                   np.linalg.lstsq(W, x - b, rcond=None)[0],
                               "with M = WᵀW + σI (σ in place of σ²)":
                                   np.linalg.solve(W.T @ W + sigma * np.eye(dim_z), W.T @ (x - b))},
                     hint="The mean is M⁻¹ Wᵀ (x − b) with M = WᵀW + σ²I.")
        assert_close(f"posterior covariance (D={dim_x}, d={dim_z})", covariance, np.eye(dim_z) - gain @ W,
                     rtol=1e-8, atol=1e-10,
                     mistakes={"from M⁻¹, without the factor σ²": np.linalg.inv(M),
                               "from σ²(WᵀW)⁻¹, without the prior's σ²I in M": sigma**2 * np.linalg.pinv(W.T @ W),
                               "from σ M⁻¹ (σ in place of σ²)": sigma * np.linalg.inv(M),
                               "from σ² M (M not inverted)": sigma**2 * M},
                     hint="The covariance is σ² M⁻¹.")
    passed("posterior_params")


def _grid_case(seed: int, shift: float) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor, torch.Tensor]:
    """A 2-D linear-Gaussian model on a 301×301 grid: (log-joint values, nodes, cell volume, exact log p(x),
    exact posterior mean). ``shift`` moves x away from b, which makes every log-joint value very negative."""
    generator = torch.Generator().manual_seed(seed)
    W, b, sigma = (torch.randn(3, 2, dtype=torch.float64, generator=generator),
                   torch.randn(3, dtype=torch.float64, generator=generator), 0.8)
    x = torch.randn(3, dtype=torch.float64, generator=generator)
    x = x + shift * torch.linalg.svd(W, full_matrices=True)[0][:, -1]  # off the column space: the posterior stays
    axis = torch.linspace(-6, 6, 301, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis).reshape(301, 301, 2)
    cell = float((axis[1] - axis[0]) ** 2)
    values = _reference_log_joint(x, z, W, b, torch.tensor(np.log(sigma), dtype=torch.float64))
    covariance_x = W @ W.T + sigma**2 * torch.eye(3, dtype=torch.float64)
    exact = MultivariateNormal(b, covariance_x).log_prob(x)
    return values, z, cell, exact, W.T @ torch.linalg.solve(covariance_x, x - b)


@exercise_check
def check_grid_posterior(grid_posterior: Callable) -> None:
    """On 2-D linear-Gaussian models: the grid evidence equals the closed form, the posterior integrates to one
    and has the exact mean — also when every log p(x, z) is below −1000, where exp underflows to 0."""
    for seed, shift in ((203, 0.0), (204, 40.0)):
        values, z, cell, exact, exact_mean = _grid_case(seed, shift)
        log_evidence, posterior = returned("grid_posterior", grid_posterior(values, cell))
        logsumexp = torch.logsumexp(values.flatten(), 0)
        case = f"max log p(x, z) = {values.max():.0f}"
        assert_close(f"log p(x) on the grid ({case})", log_evidence, exact, rtol=0, atol=1e-6,
                     mistakes={"from logsumexp without the log of the cell volume": logsumexp,
                               "for a mean over nodes instead of a sum times the cell volume":
                                   logsumexp - np.log(values.numel())},
                     hint="log p(x) ≈ logsumexp(log p(x, z_k)) + log(cell volume); torch.logsumexp avoids the "
                          "underflow of exp.")
        if posterior.shape != values.shape:
            raise ExerciseCheckFailed(f"posterior: expected shape {tuple(values.shape)}, got {tuple(posterior.shape)}")
        assert_close(f"posterior mass on the grid, Σ p(z_k | x)·cell ({case})", (posterior * cell).sum(), 1.0,
                     rtol=0, atol=1e-6, mistakes={"for probabilities per node (summing to 1): a density divides them "
                                                  "by the cell volume": cell},
                     hint="p(z_k | x) = exp(log p(x, z_k) − log p(x)).")
        grid_mean = (posterior[..., None] * z).sum((0, 1)) * cell
        assert_close(f"posterior mean on the grid ({case})", grid_mean, exact_mean, rtol=0, atol=1e-5)
    passed("grid_posterior")
