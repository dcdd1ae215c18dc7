"""utils.priors against independent references: ELBO surgery's Monte Carlo estimates against the closed form of a
linear-Gaussian encoder; the mixture log-density against torch.distributions; the DDPM ancestral sampler with the
exact noise predictor of Gaussian data against that data's moments, and its conditional version per condition; the
importance weights with a prior put in."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)

from tests.mistakes.lesson10 import EXERCISES
from utils.checks import lesson10
from utils.elbo_terms import gaussian_kl_terms
from utils.evaluation import importance_log_weights
from utils.integrity import CheckpointError
from utils.priors import (
    Denoiser,
    DiffusionPrior,
    FittedPriors,
    VampPrior,
    cosine_alpha_bar,
    ddpm_loss,
    elbo_surgery,
    fit_diffusion_prior,
    linear_gaussian_example,
    linear_gaussian_surgery,
    load_conditional_priors,
    load_priors,
    mixture_log_density,
    sample_posteriors,
    save_conditional_priors,
    save_priors,
    share_in_holes,
    standard_normal_log_density,
)
from utils.vae import ConvVAE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elbo_surgery_agrees_with_the_linear_gaussian_closed_form(seed: int) -> None:
    """Both terms within 3 standard errors plus 0.01 nats (the 3,000-point mixture is not exactly Gaussian: its own
    MI and KL differ from the infinite-data closed form by less than that, measured at 20,000 points); a missing
    −log N (8 nats) or a wrong variance convention (~0.3 nats here) would fail."""
    mu, logvar, closed = linear_gaussian_example(3000, seed)
    estimates = elbo_surgery(mu, logvar, draws=8, generator=torch.Generator().manual_seed(seed))
    for name in ("index-code MI", "KL(q(z) ‖ p(z))", "average KL"):
        estimate = estimates[name]
        assert 0 < estimate.standard_error < 0.02, name
        assert abs(estimate.value - closed[name]) < 3 * estimate.standard_error + 0.01, (name, estimate, closed[name])


def test_linear_gaussian_closed_forms_against_torch_distributions() -> None:
    rng = np.random.default_rng(3)
    weight, covariance, variance = rng.normal(size=(2, 3)), np.diag([1.0, 0.5, 2.0]), np.array([0.2, 0.7])
    closed = linear_gaussian_surgery(weight, covariance, variance)
    marginal = torch.tensor(weight @ covariance @ weight.T + np.diag(variance))
    origin = torch.zeros(2, dtype=torch.float64)
    expected_kl = kl_divergence(MultivariateNormal(origin, marginal),
                                MultivariateNormal(origin, torch.eye(2, dtype=torch.float64)))
    assert closed["KL(q(z) ‖ p(z))"] == pytest.approx(float(expected_kl), rel=1e-12)
    # E_x KL(q(z|x) ‖ N(0, I)) in closed form from lesson 4's per-dimension KL, E[(Wx)_j²] = (W C Wᵀ)_jj.
    second_moment = np.diag(weight @ covariance @ weight.T)
    average_kl = 0.5 * np.sum(variance + second_moment - 1 - np.log(variance))
    assert closed["average KL"] == pytest.approx(average_kl, rel=1e-12)


def test_elbo_surgery_terms_add_up_and_the_average_kl_matches_its_closed_form() -> None:
    generator = torch.Generator().manual_seed(4)
    mu = 1.5 * torch.randn(200, 5, generator=generator, dtype=torch.float64)
    logvar = -1.0 + 0.5 * torch.randn(200, 5, generator=generator, dtype=torch.float64)
    estimates = elbo_surgery(mu, logvar, draws=4, generator=generator)
    parts = estimates["index-code MI"].value + estimates["KL(q(z) ‖ p(z))"].value
    assert parts == pytest.approx(estimates["average KL"].value, abs=1e-9)
    split = estimates["dimension-wise KL"].value + estimates["total correlation"].value
    assert split == pytest.approx(estimates["KL(q(z) ‖ p(z))"].value, abs=1e-9)
    closed = float(gaussian_kl_terms(mu, logvar).sum(1).mean())
    assert abs(estimates["average KL"].value - closed) < 4 * estimates["average KL"].standard_error
    assert estimates["index-code MI"].value <= math.log(200) + 1e-9


def test_mixture_log_density_against_torch_distributions_in_chunks() -> None:
    generator = torch.Generator().manual_seed(5)
    mu = torch.randn(30, 16, generator=generator, dtype=torch.float64)
    logvar = torch.randn(30, 16, generator=generator, dtype=torch.float64) - 2
    z = 4 * torch.randn(70, 16, generator=generator, dtype=torch.float64)
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(30, dtype=torch.float64)),
                                Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    torch.testing.assert_close(mixture_log_density(z, mu, logvar, chunk=16), mixture.log_prob(z), rtol=1e-10,
                               atol=1e-10)
    torch.testing.assert_close(standard_normal_log_density(z), Normal(0.0, 1.0).log_prob(z).sum(1))


def test_share_in_holes_counts_points_below_the_reference_quantile() -> None:
    reference = torch.arange(100, dtype=torch.float64)
    assert share_in_holes(torch.tensor([-1.0, 3.0, 50.0, 99.0], dtype=torch.float64), reference) == 0.5


def test_the_cosine_schedule_falls_from_one_to_zero() -> None:
    alpha_bar = cosine_alpha_bar(100)
    assert alpha_bar.shape == (100,) and torch.all(torch.diff(alpha_bar) < 0)
    assert 0.99 < float(alpha_bar[0]) < 1 and float(alpha_bar[-1]) < 1e-4


class _ExactGaussianNoise(nn.Module):
    """The optimal ε-prediction for data z0 ~ N(m, s² I): E[ε | z_t] = √(1 − ᾱ) (z_t − √ᾱ m) / (ᾱ s² + 1 − ᾱ)."""

    def __init__(self, alpha_bar: torch.Tensor, mean: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.alpha_bar, self.mean, self.scale = alpha_bar, mean, scale

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar[t].to(z.dtype)[:, None]
        return (1 - a).sqrt() * (z - a.sqrt() * self.mean) / (a * self.scale**2 + 1 - a)


def test_the_ancestral_sampler_with_the_exact_denoiser_draws_the_data_distribution() -> None:
    """4,000 draws: mean within 0.05 (5 standard errors of 0.3/√4000 ≈ 0.005, plus the 100-step discretisation) and
    standard deviation within 3 % of the data's; a sampler without its added noise would shrink the spread."""
    prior = DiffusionPrior(latent_dim=3, steps=100)
    mean = torch.tensor([1.0, -2.0, 0.5])
    prior.denoiser = _ExactGaussianNoise(prior.alpha_bar, mean, 0.3)
    samples = prior.sample(4000, torch.Generator().manual_seed(6))
    assert torch.allclose(samples.mean(0).float(), mean, atol=0.05)
    assert torch.allclose(samples.std(0).float(), torch.full((3,), 0.3), rtol=0.03)


def test_the_course_loss_and_vamp_prior_pass_the_lesson_checks(capsys: pytest.CaptureFixture) -> None:
    lesson10.check_ddpm_loss(ddpm_loss)
    lesson10.check_vamp_log_prior(
        lambda z, encoder, inputs: mixture_log_density(z, *encoder(inputs)))
    assert capsys.readouterr().out.count("✅") == 2
    assert [exercise.number for exercise in EXERCISES] == ["10.1", "10.2", "10.3"]


def test_vamp_prior_samples_its_components_and_keeps_the_encoder_frozen() -> None:
    torch.manual_seed(7)
    model = ConvVAE(latent_dim=4, width=4)
    prior = VampPrior(model.encoder, torch.rand(3, 1, 32, 64))
    assert not any(p.requires_grad for p in model.encoder.parameters())
    z = prior.sample(500, torch.Generator().manual_seed(8))
    mu, logvar = prior.components()
    nearest = torch.cdist(z.float(), mu).argmin(1)
    assert z.shape == (500, 4) and len(nearest.unique()) == 3
    assert torch.isfinite(prior.log_prob(z.float())).all()
    again = sample_posteriors(mu.double().detach(), logvar.double().detach(), 500, torch.Generator().manual_seed(8))
    torch.testing.assert_close(again, z)


def test_importance_weights_with_the_standard_normal_put_in_are_the_default() -> None:
    torch.manual_seed(9)
    model = ConvVAE(latent_dim=4, width=4)
    x = torch.rand(2, 1, 32, 64)
    default = importance_log_weights(model, x, 20, torch.Generator().manual_seed(10))
    put_in = importance_log_weights(model, x, 20, torch.Generator().manual_seed(10),
                                    log_prior=standard_normal_log_density)
    torch.testing.assert_close(default, put_in)


def test_saved_priors_load_back_identical_and_a_damaged_file_is_refused(tmp_path) -> None:
    torch.manual_seed(11)
    model = ConvVAE(latent_dim=4, width=4)
    vamp = VampPrior(model.encoder, torch.rand(3, 1, 32, 64))
    diffusion = DiffusionPrior(latent_dim=4, steps=10, hidden=8)
    path = tmp_path / "priors.pt"
    settings = {"diffusion_steps": 10, "diffusion_hidden": 8}
    save_priors({5: FittedPriors(vamp, diffusion)}, path, {"settings": settings})
    loaded, record = load_priors(path, model.encoder)
    assert record["settings"] == settings and list(loaded) == [5]
    z = torch.randn(7, 4)
    torch.testing.assert_close(loaded[5].vamp.log_prob(z), vamp.log_prob(z))
    torch.testing.assert_close(loaded[5].diffusion.sample(5, torch.Generator().manual_seed(1)),
                               diffusion.sample(5, torch.Generator().manual_seed(1)))
    payload = bytearray(path.read_bytes())
    payload[-50] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match="make priors"):
        load_priors(path, model.encoder)


class _ExactConditionalNoise(nn.Module):
    """The optimal ε-prediction, in the prior's standardised coordinates z̃ = (z − m₀) / s₀, for data
    z0 | c ~ N(W c, s² I): z̃0 | c ~ N((W c − m₀) / s₀, (s / s₀)² I), so E[ε | z̃_t, c] is _ExactGaussianNoise's with
    that mean and scale."""

    def __init__(self, alpha_bar: torch.Tensor, weight: torch.Tensor, scale: float, shift: torch.Tensor,
                 spread: torch.Tensor) -> None:
        super().__init__()
        self.alpha_bar, self.weight, self.scale, self.shift, self.spread = alpha_bar, weight, scale, shift, spread

    def forward(self, z: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar[t].to(z.dtype)[:, None]
        mean = (c.to(z.dtype) @ self.weight.T - self.shift) / self.spread
        variance = (self.scale / self.spread) ** 2
        return (1 - a).sqrt() * (z - a.sqrt() * mean) / (a * variance + 1 - a)


def test_the_conditional_sampler_with_the_exact_denoiser_draws_each_conditions_distribution() -> None:
    """Two conditions, 3,000 draws each, latents standardised by a shift and spread that are not 0 and 1: each
    condition's sample mean within 0.05 of W c and its spread within 5 % of s (about 4 standard errors of a standard
    deviation from 3,000 draws, plus the 100-step discretisation). Dropping the condition, or the standardisation's
    way back, would put both means elsewhere; a sampler without its added noise would shrink the spread."""
    prior = DiffusionPrior(latent_dim=2, steps=100, condition_dim=1)
    weight, scale = torch.tensor([[2.0], [-1.0]]), 0.3
    prior.code_mean.copy_(torch.tensor([0.5, -0.5]))
    prior.code_scale.copy_(torch.tensor([0.5, 0.4]))
    prior.denoiser = _ExactConditionalNoise(prior.alpha_bar, weight, scale, prior.code_mean, prior.code_scale)
    conditions = torch.tensor([[-1.0]] * 3000 + [[1.0]] * 3000)
    samples = prior.sample(6000, torch.Generator().manual_seed(12), conditions).float()
    for half, c in ((samples[:3000], -1.0), (samples[3000:], 1.0)):
        torch.testing.assert_close(half.mean(0), weight[:, 0] * c, atol=0.05, rtol=0)
        torch.testing.assert_close(half.std(0), torch.full((2,), scale), rtol=0.05, atol=0)


def test_sampling_from_given_noise_is_the_sampler_fed_that_noise() -> None:
    """``sample_from_noise`` with the noise a generator would draw, in the sampler's order, gives ``sample``'s
    latents exactly; a wrong shape of noise is refused."""
    torch.manual_seed(13)
    prior = DiffusionPrior(latent_dim=3, steps=20, hidden=8, condition_dim=2)
    conditions = torch.randn(5, 2)
    generator = torch.Generator().manual_seed(14)
    noise = torch.stack([torch.randn(5, 3, generator=generator, dtype=torch.float64) for _ in range(20)])
    torch.testing.assert_close(prior.sample_from_noise(noise, conditions),
                               prior.sample(5, torch.Generator().manual_seed(14), conditions), rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected"):
        prior.sample_from_noise(noise[1:], conditions)


def test_a_conditional_denoiser_refuses_a_missing_or_misshapen_condition() -> None:
    conditional, plain = Denoiser(3, 10, 8, condition_dim=2), Denoiser(3, 10, 8)
    z, t = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    assert conditional(z, t, torch.randn(4, 2)).shape == (4, 3) and plain(z, t).shape == (4, 3)
    for denoiser, c in ((conditional, None), (conditional, torch.randn(4, 3)), (plain, torch.randn(4, 2))):
        with pytest.raises(ValueError, match="condition values"):
            denoiser(z, t, c)


def test_a_conditional_diffusion_prior_learns_a_condition_dependent_mean() -> None:
    """Codes z = 3 c + 0.1 ε with c = ±1 (two latents): after 600 Adam steps the draws for c = −1 and c = +1 have
    means within 0.5 of ∓3; a prior that ignored c would put both near 0."""
    def codes(generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.randint(2, (count, 1), generator=generator).double() * 2 - 1
        return 3 * c.expand(-1, 2) + 0.1 * torch.randn(count, 2, generator=generator, dtype=torch.float64), c

    prior, losses = fit_diffusion_prior(codes, 2, 600, seed=0, device=torch.device("cpu"), batch_size=64, lr=5e-3,
                                        steps=20, hidden=64, condition_dim=1,
                                        standardise=(torch.zeros(2), torch.full((2,), 3.0)))
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    for c in (-1.0, 1.0):
        draws = prior.sample(400, torch.Generator().manual_seed(15), torch.full((400, 1), c))
        torch.testing.assert_close(draws.mean(0).float(), torch.full((2,), 3 * c), atol=0.5, rtol=0)


def test_saved_conditional_priors_load_back_identical_and_a_damaged_file_is_refused(tmp_path) -> None:
    torch.manual_seed(16)
    prior = DiffusionPrior(latent_dim=4, steps=10, hidden=8, condition_dim=2)
    prior.code_mean.copy_(torch.randn(4))
    path = tmp_path / "conditional.pt"
    settings = {"latent_dim": 4, "condition_dim": 2, "diffusion_steps": 10, "diffusion_hidden": 8}
    save_conditional_priors({3: prior}, path, {"settings": settings})
    loaded, record = load_conditional_priors(path)
    assert record["settings"] == settings and list(loaded) == [3]
    c = torch.randn(6, 2)
    torch.testing.assert_close(loaded[3].sample(6, torch.Generator().manual_seed(2), c),
                               prior.sample(6, torch.Generator().manual_seed(2), c))
    payload = bytearray(path.read_bytes())
    payload[-50] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match="make priors"):
        load_conditional_priors(path)
