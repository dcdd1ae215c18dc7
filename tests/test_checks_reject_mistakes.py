"""Every lesson's self-checks reject a typical mistake (the solutions' nbval run shows they accept the
right answers)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from utils.checks import ExerciseCheckFailed
from utils.checks import lesson02, lesson03, lesson04, lesson05, lesson06, lesson07
from utils.vae import Encoder


def test_lesson02_rejects_missing_prior_wrong_covariance_and_missing_cell_volume() -> None:
    def no_prior(x, z, W, b, log_sigma):
        return Normal(z @ W.T + b, torch.exp(log_sigma)).log_prob(x).sum(-1)

    with pytest.raises(ExerciseCheckFailed):
        lesson02.check_log_joint_torch(no_prior)

    def covariance_without_noise(x, W, b, sigma):
        M = W.T @ W + sigma**2 * np.eye(W.shape[1])
        return np.linalg.solve(M, W.T @ (x - b)), np.linalg.inv(M)

    with pytest.raises(ExerciseCheckFailed, match="covariance"):
        lesson02.check_posterior_params(covariance_without_noise)
    with pytest.raises(ExerciseCheckFailed, match="log p\\(x\\)"):
        lesson02.check_grid_posterior(lambda values, cell: (torch.logsumexp(values.flatten(), 0),
                                                            torch.exp(values - torch.logsumexp(values.flatten(), 0))))


def test_lesson03_rejects_an_elbo_without_entropy_and_an_optimizer_that_does_nothing() -> None:
    def without_log_q(log_joint, x, mu, log_std, n_samples, generator):
        z = mu + torch.exp(log_std) * torch.randn(n_samples, mu.shape[-1], generator=generator, dtype=mu.dtype)
        return log_joint(x, z).mean()

    with pytest.raises(ExerciseCheckFailed):
        lesson03.check_elbo_estimate(without_log_q)
    with pytest.raises(ExerciseCheckFailed, match="KL"):
        lesson03.check_maximize_elbo(lambda log_joint, x, d, steps, lr, n_samples, seed:
                                     (torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64),
                                      [0.0] * steps))


def test_lesson04_rejects_common_mistakes() -> None:
    with pytest.raises(ExerciseCheckFailed):  # logvar used as log σ
        lesson04.check_gaussian_kl(lambda mu, logvar: -0.5 * (1 + 2 * logvar - mu**2 - torch.exp(2 * logvar)).sum(-1))
    with pytest.raises(ExerciseCheckFailed, match="log\\(2πσ²\\)"):
        lesson04.check_gaussian_log_likelihood(lambda x, mean, sigma: -((x - mean) ** 2).sum(-1) / (2 * sigma**2))

    def sigma_not_exponentiated(f, mu, log_sigma, n, generator):
        z = mu + log_sigma * torch.randn(n, generator=generator, dtype=mu.dtype)
        return torch.autograd.grad(f(z).mean(), (mu, log_sigma))

    with pytest.raises(ExerciseCheckFailed):
        lesson04.check_reparam_gradient(sigma_not_exponentiated)


def test_lesson05_rejects_missing_bias_ceiling_and_swapped_pooling() -> None:
    with pytest.raises(ExerciseCheckFailed, match="conv2d_loops"):
        lesson05.check_conv2d_loops(lambda Y, W, B, s, p: F.conv2d(Y[None], W, None, s, p)[0])
    with pytest.raises(ExerciseCheckFailed, match="PyTorch gives"):
        lesson05.check_conv_output_size(lambda n, k, s=1, p=0: int(np.ceil((n - k + 2 * p) / s)) + 1)
    with pytest.raises(ExerciseCheckFailed, match="pooling"):
        lesson05.check_pool2d(lambda Y, size, mode="max": F.avg_pool2d(Y[None], size)[0] if mode == "max"
                              else F.max_pool2d(Y[None], size)[0])


def test_lesson06_rejects_wrong_compliance_and_a_missing_update() -> None:
    with pytest.raises(ExerciseCheckFailed, match="compliance"):
        lesson06.check_compliance_from_stiffness(lambda K, U: float(U @ U))
    with pytest.raises(ExerciseCheckFailed, match="oc_update"):
        lesson06.check_oc_update(lambda x, dc, dv, volfrac, move=0.2: x)


def test_lesson07_rejects_std_for_logvar_pixel_means_and_swapped_halves() -> None:
    with pytest.raises(ExerciseCheckFailed):
        lesson07.check_reparameterize(lambda mu, logvar: mu + logvar * torch.randn_like(mu))

    def mean_over_pixels(logits, x, mu, logvar, beta=1.0):
        reconstruction = F.binary_cross_entropy_with_logits(logits, x)
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(1).mean()
        return reconstruction + beta * kl, reconstruction, kl

    with pytest.raises(ExerciseCheckFailed, match="reconstruction"):
        lesson07.check_vae_loss(mean_over_pixels)

    class SwappedEncoder(Encoder):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logvar, mu = self.to_moments(self.features(x)).chunk(2, dim=-1)
            return mu, logvar

    with pytest.raises(ExerciseCheckFailed, match="μ with the shipped weights"):
        lesson07.check_encoder(SwappedEncoder)


def test_lesson07_accepts_the_reference_encoder() -> None:
    lesson07.check_encoder(Encoder)
    assert isinstance(Encoder(4), nn.Module)
