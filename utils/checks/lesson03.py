"""Self-checks of lesson 3 (variational inference). Reference: ELBO = log p(x) − KL(q ‖ p(z|x)) in closed
form, from torch.distributions."""
from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed


def _linear_gaussian(seed: int, dim_x: int = 4, dim_z: int = 2, orthogonal: bool = False):
    """A random linear-Gaussian model: (log_joint, x, log p(x), exact posterior)."""
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(dim_x, dim_z, generator=generator, dtype=torch.float64)
    if orthogonal:
        W = torch.linalg.qr(W)[0] * torch.linspace(1.5, 0.8, dim_z, dtype=torch.float64)
    b = torch.randn(dim_x, generator=generator, dtype=torch.float64)
    x = torch.randn(dim_x, generator=generator, dtype=torch.float64)
    sigma = 0.5

    def log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return Normal(z @ W.T + b, sigma).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)

    eye_x, eye_z = torch.eye(dim_x, dtype=torch.float64), torch.eye(dim_z, dtype=torch.float64)
    log_evidence = MultivariateNormal(b, W @ W.T + sigma**2 * eye_x).log_prob(x)
    M = W.T @ W + sigma**2 * eye_z
    posterior = MultivariateNormal(torch.linalg.solve(M, W.T @ (x - b)), sigma**2 * torch.linalg.inv(M))
    return log_joint, x, log_evidence, posterior


@exercise_check
def check_elbo_estimate(elbo_estimate: Callable) -> None:
    """The estimate matches log p(x) − KL within Monte Carlo error, is differentiable and uses the generator."""
    log_joint, x, log_evidence, posterior = _linear_gaussian(301)
    mu = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor([-0.7, -0.3], dtype=torch.float64, requires_grad=True)
    estimate = elbo_estimate(log_joint, x, mu, log_std, 200_000, torch.Generator().manual_seed(1))
    q = MultivariateNormal(mu.detach(), torch.diag(torch.exp(2 * log_std.detach())))
    assert_close("ELBO estimate", estimate, log_evidence - kl_divergence(q, posterior), rtol=0, atol=0.03,
                 hint="Average log p(x, z) − log q(z) over z = μ + exp(log_std)·ε.")
    if not estimate.requires_grad:
        raise ExerciseCheckFailed("ELBO estimate: not differentiable in mu and log_std; build z = mu + exp(log_std) * eps")
    grad_mu, grad_log_std = torch.autograd.grad(estimate, (mu, log_std))
    if torch.all(grad_log_std == 0) or torch.all(grad_mu == 0):
        raise ExerciseCheckFailed("ELBO estimate: the gradient with respect to mu or log_std is zero")
    again = elbo_estimate(log_joint, x, mu, log_std, 1000, torch.Generator().manual_seed(5))
    once_more = elbo_estimate(log_joint, x, mu, log_std, 1000, torch.Generator().manual_seed(5))
    if again.item() != once_more.item():
        raise ExerciseCheckFailed("ELBO estimate: draw ε with the `generator` argument so that runs repeat")
    passed("elbo_estimate")


@exercise_check
def check_maximize_elbo(maximize_elbo: Callable) -> None:
    """On a model whose posterior is diagonal, the optimised q must reach it (KL < 0.01)."""
    log_joint, x, _, posterior = _linear_gaussian(302, orthogonal=True)
    steps = 800
    mu, log_std, history = maximize_elbo(log_joint, x, 2, steps=steps, lr=0.05, n_samples=64, seed=1)
    if len(history) != steps:
        raise ExerciseCheckFailed(f"maximize_elbo: expected {steps} ELBO values in the history, got {len(history)}")
    q = MultivariateNormal(mu, torch.diag(torch.exp(2 * log_std)))
    kl = kl_divergence(q, posterior).item()
    if not kl < 0.01:
        raise ExerciseCheckFailed(f"maximize_elbo: KL(q ‖ posterior) = {kl:.3g} after {steps} steps (expected < 0.01). "
                                  "Do you minimise −ELBO and call optimizer.zero_grad() every step?")
    passed("maximize_elbo")
