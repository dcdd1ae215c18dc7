"""The ELBO's shared terms against torch.distributions: the reparametrisation's law, both Gaussian KLs, the
Bernoulli log-likelihood of a batch and of a stack of samples."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.elbo_terms import bernoulli_log_likelihood, gaussian_kl_terms, reparameterize


def _moments(generator: torch.Generator, *shape: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.randn(*shape, generator=generator, dtype=torch.float64),
            torch.randn(*shape, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (2, 16)])
def test_both_kls_match_torch_distributions(shape: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    (mu_q, lv_q), (mu_p, lv_p) = _moments(generator, *shape), _moments(generator, *shape)
    q = Normal(mu_q, torch.exp(0.5 * lv_q))
    torch.testing.assert_close(gaussian_kl_terms(mu_q, lv_q), kl_divergence(q, Normal(0.0, 1.0)))
    torch.testing.assert_close(gaussian_kl_terms(mu_q, lv_q, mu_p, lv_p),
                               kl_divergence(q, Normal(mu_p, torch.exp(0.5 * lv_p))))
    zeros = torch.zeros_like(mu_q)
    torch.testing.assert_close(gaussian_kl_terms(mu_q, lv_q, zeros, zeros), gaussian_kl_terms(mu_q, lv_q))
    with pytest.raises(ValueError, match="both"):
        gaussian_kl_terms(mu_q, lv_q, mu_p)


def test_reparameterize_draws_from_the_gaussian_and_uses_given_noise() -> None:
    mu, logvar = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.0, 2.0 * 0.5], dtype=torch.float64)
    torch.manual_seed(0)
    draws = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2))
    std = torch.exp(0.5 * logvar)
    # Six standard errors of the mean and of the standard deviation (≈ σ/√(2n)) for n = 200,000.
    torch.testing.assert_close(draws.mean(0), mu, rtol=0, atol=float(6 * std.max() / 200_000**0.5))
    torch.testing.assert_close(draws.std(0), std, rtol=0, atol=float(6 * std.max() / (2 * 200_000) ** 0.5))
    noise = torch.tensor([0.5, -1.0], dtype=torch.float64)
    torch.testing.assert_close(reparameterize(mu, logvar, noise), mu + std * noise)


def test_bernoulli_log_likelihood_sums_the_pixels_of_each_image_and_each_sample() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 4, 1, 8, 16, generator=generator, dtype=torch.float64)
    x = (torch.rand(4, 1, 8, 16, generator=generator, dtype=torch.float64) > 0.5).double()
    expected = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(-3).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)
    torch.testing.assert_close(bernoulli_log_likelihood(logits[0], x), expected[0])
    assert bernoulli_log_likelihood(logits[0], x).shape == (4,)
