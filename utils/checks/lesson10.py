"""Self-checks of lesson 10 (the prior). References: torch.distributions' MixtureSameFamily for the aggregate
posterior's and the VampPrior's log-densities (and autograd through it for the pseudo-inputs' gradient); the DDPM
loss written out sample by sample in float64 from Ho et al. (2020)'s definition, with a denoiser that records what
it was given."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, gradients, passed, returned


def _mixture(mu: torch.Tensor, logvar: torch.Tensor) -> MixtureSameFamily:
    """The equal-weight mixture of N(μ_k, diag σ_k²), by torch.distributions: the independent reference."""
    weights = Categorical(logits=torch.zeros(len(mu), dtype=mu.dtype))
    return MixtureSameFamily(weights, Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))


def _log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    return Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1).log_prob(z)


def _component_log_densities(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_m; μ_k, σ_k²) for every point and component, (M, K), by torch.distributions."""
    return Independent(Normal(mu[None], torch.exp(0.5 * logvar[None])), 1).log_prob(z[:, None, :])


def _scalar(subject: str, value: object) -> float:
    number = value.detach() if isinstance(value, torch.Tensor) else value
    try:
        return float(number)
    except (TypeError, ValueError):
        raise ExerciseCheckFailed(f"{subject}: expected a number, got {type(value).__name__} "
                                  f"{getattr(value, 'shape', '')}: average over the draws.") from None


def _aggregate_cases(generator: torch.Generator) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(name, draws z (M, d), posterior means and log-variances (N, d)): the draws come from the mixture itself,
    except in the last case (any points: the function averages over the points it is given)."""
    cases = []
    for name, designs, dim, draws, spread, log_sigma in (
            ("7 designs, 3 latents, 400 draws", 7, 3, 400, 1.0, -0.5),
            ("one design, 2 latents, 300 draws", 1, 2, 300, 0.5, 0.3),
            ("300 designs, 16 latents, 250 draws", 300, 16, 250, 1.0, -1.5),
            ("40 designs, 16 latents, 200 draws, narrow posteriors", 40, 16, 200, 2.0, -3.5)):
        mu = spread * torch.randn(designs, dim, generator=generator, dtype=torch.float64)
        logvar = 2 * log_sigma + 0.3 * torch.randn(designs, dim, generator=generator, dtype=torch.float64)
        index = torch.randint(designs, (draws,), generator=generator)
        z = mu[index] + torch.exp(0.5 * logvar[index]) * torch.randn(draws, dim, generator=generator,
                                                                     dtype=torch.float64)
        cases.append((name, z, mu, logvar))
    # The same narrow posteriors at points far from all of them (as prior draws are): every density underflows.
    cases.append(("40 designs, 16 latents, 100 points far from every posterior", 5 * torch.randn(
        100, 16, generator=generator, dtype=torch.float64), cases[-1][2], cases[-1][3]))
    return cases


@exercise_check
def check_aggregate_kl(aggregate_kl: Callable) -> None:
    """``aggregate_kl(z (M, d), mu (N, d), logvar (N, d))`` → (estimate, standard error) on five cases (one design to
    300, 2 to 16 latents, narrow posteriors, points where every density underflows): the mean over the draws of
    log q(z) − log p(z), q(z) the equal mixture of the N posteriors and p = N(0, I), against torch.distributions; the
    standard error the draws' standard deviation over √M (either ddof)."""
    generator = torch.Generator().manual_seed(1001)
    for name, z, mu, logvar in _aggregate_cases(generator):
        result = returned("aggregate_kl", aggregate_kl(z.clone(), mu.clone(), logvar.clone()))
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise ExerciseCheckFailed("aggregate_kl: return a pair (the estimate, its standard error)")
        estimate, standard_error = (_scalar(f"aggregate_kl ({name})", value) for value in result)
        log_q = _mixture(mu, logvar).log_prob(z)
        log_p = _log_standard_normal(z)
        terms = log_q - log_p
        draws, designs = len(z), len(mu)
        components = _component_log_densities(z, mu, logvar)
        as_log_sigma = _component_log_densities(z, mu, 2 * logvar)
        mistakes = {
            "without the −log N: log q(z) is a log-MEAN-exp over the N posteriors, not a log-sum-exp":
                (terms + math.log(designs)).mean(),
            "with the mean of the log-densities in place of the log of the mean density (log-mean-exp)":
                (components.mean(1) - log_p).mean(),
            "with the largest component only (a max in place of the log-mean-exp)":
                (components.max(1).values - log_p).mean(),
            "with logvar taken for log σ (the posterior's σ² is exp(logvar))":
                (torch.logsumexp(as_log_sigma, 1) - math.log(designs) - log_p).mean(),
            "with the opposite sign (log p(z) − log q(z)): the KL from q(z) to p(z) averages log q − log p":
                -terms.mean(),
            "without the ½ log 2π per dimension in log p(z) (the constant must cancel between log q and log p)":
                (log_q - log_p - 0.5 * math.log(2 * math.pi) * z.shape[1]).mean(),
            "with log p(z) left out (the entropy term alone)": log_q.mean(),
        }
        if not math.isfinite(estimate):
            raise ExerciseCheckFailed(
                f"aggregate_kl ({name}): the estimate is {estimate}: the densities underflow to 0 in many "
                "dimensions. Work with log-densities and combine them with torch.logsumexp, never exp then log.")
        assert_close(f"aggregate_kl: the estimate ({name})", estimate, terms.mean(), rtol=1e-8, atol=1e-8,
                     mistakes=mistakes,
                     hint="log q(z) = logsumexp_n log N(z; μ_n, σ_n²) − log N; average log q(z) − log N(z; 0, I) "
                          "over the draws.")
        spread = terms.std(unbiased=True).item()
        accepted = (spread / math.sqrt(draws), terms.std(unbiased=False).item() / math.sqrt(draws))
        if not any(abs(standard_error - value) <= 1e-6 * value + 1e-10 for value in accepted):
            known = {"the standard deviation itself (not divided by √M)": spread,
                     "the standard deviation over M (not over √M)": spread / draws,
                     "the variance over M (its square root is missing)": spread**2 / draws}
            for description, value in known.items():
                if abs(standard_error - value) <= 1e-6 * abs(value) + 1e-10:
                    raise ExerciseCheckFailed(f"aggregate_kl ({name}): your standard error equals {description}. "
                                              "The standard error of a mean of M draws is their standard deviation "
                                              "over √M.")
            raise ExerciseCheckFailed(f"aggregate_kl ({name}): standard error {standard_error:.6g}, expected "
                                      f"{accepted[0]:.6g}: the standard deviation of the M per-draw terms "
                                      "log q(z) − log p(z), over √M.")
    passed("aggregate_kl")


class _LinearEncoder(nn.Module):
    """Images (K, 1, h, w) → (μ, log σ²), each (K, d): a fixed linear map, the check's stand-in for the VAE's."""

    def __init__(self, pixels: int, latent_dim: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(2 * latent_dim, pixels, generator=generator, dtype=torch.float64)
                                   / math.sqrt(pixels))
        self.bias = nn.Parameter(torch.cat([torch.zeros(latent_dim, dtype=torch.float64),
                                            torch.full((latent_dim,), -2.0, dtype=torch.float64)]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = (x.flatten(1) @ self.weight.T + self.bias).chunk(2, dim=-1)
        return mu, logvar


@exercise_check
def check_vamp_log_prior(vamp_log_prior: Callable) -> None:
    """``vamp_log_prior(z (M, d), encoder, pseudo_inputs (K, 1, h, w))`` → log p(z) (M,) with p the equal mixture of
    the encoder's posteriors of the K pseudo-inputs, against torch.distributions, for K = 1, 6 and 50, d = 2 and 16,
    points far from every component; and its gradient with respect to the pseudo-inputs equals the reference's."""
    generator = torch.Generator().manual_seed(1002)
    for name, components, dim, points, scale in (("6 pseudo-inputs, 2 latents", 6, 2, 9, 1.0),
                                                 ("one pseudo-input, 16 latents", 1, 16, 5, 1.0),
                                                 ("50 pseudo-inputs, 16 latents, far points", 50, 16, 12, 6.0)):
        encoder = _LinearEncoder(12, dim, seed=components)
        inputs = torch.rand(components, 1, 3, 4, generator=generator, dtype=torch.float64).requires_grad_(True)
        z = scale * torch.randn(points, dim, generator=generator, dtype=torch.float64)
        got = returned("vamp_log_prior", vamp_log_prior(z, encoder, inputs))
        if not isinstance(got, torch.Tensor):
            raise ExerciseCheckFailed(f"vamp_log_prior: return a torch tensor (got {type(got).__name__}): the prior is "
                                      "trained through it.")
        mu, logvar = encoder(inputs)
        expected = _mixture(mu, logvar).log_prob(z)
        components_log = _component_log_densities(z, mu.detach(), logvar.detach())
        detached = expected.detach()
        mistakes = {
            "without the −log K: the mixture's weights are 1/K each": detached + math.log(components),
            "with the mean of the components' log-densities in place of the log of their mean density":
                components_log.mean(1),
            "with the largest component only (a max in place of the logsumexp)": components_log.max(1).values,
            "with logvar taken for log σ (σ² is exp(logvar))":
                torch.logsumexp(_component_log_densities(z, mu.detach(), 2 * logvar.detach()), 1) -
                math.log(components),
            "with −log M (the number of points) in place of −log K (the number of components)":
                detached + math.log(components) - math.log(points),
        }
        if isinstance(got, torch.Tensor) and got.shape == (points, dim):
            raise ExerciseCheckFailed(f"vamp_log_prior ({name}): the result has shape {tuple(got.shape)}, one value "
                                      "per latent: sum each component's log-density over the latent dimensions "
                                      "before combining the components.")
        if not bool(torch.all(torch.isfinite(got.detach()))):
            raise ExerciseCheckFailed(f"vamp_log_prior ({name}): some log-densities are not finite: far from every "
                                      "component the densities underflow to 0. Combine log-densities with "
                                      "torch.logsumexp, never exp then log.")
        assert_close(f"vamp_log_prior ({name})", got, detached, rtol=1e-9, atol=1e-9, mistakes=mistakes,
                     hint="Encode the pseudo-inputs to (μ_k, log σ²_k); log p(z) = logsumexp_k log N(z; μ_k, σ²_k) "
                          "− log K.")
        (got_grad,) = gradients(f"vamp_log_prior ({name})", got, {"the pseudo-inputs": inputs}).values()
        (expected_grad,) = torch.autograd.grad(expected.sum(), inputs)
        assert_close(f"vamp_log_prior ({name}): the gradient with respect to the pseudo-inputs", got_grad,
                     expected_grad, rtol=1e-7, atol=1e-9,
                     hint="Compute everything from encoder(pseudo_inputs) with torch operations: the VampPrior is "
                          "fitted through this gradient.")
    passed("vamp_log_prior")


class _RecordingDenoiser(nn.Module):
    """ε_θ(z, t) = tanh(z W + b) + 0.1 (t + 1) c: a fixed network that records the inputs it was given."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(dim, dim, generator=generator, dtype=torch.float64) / math.sqrt(dim))
        self.bias = nn.Parameter(0.1 * torch.randn(dim, generator=generator, dtype=torch.float64))
        self.step_direction = torch.randn(dim, generator=generator, dtype=torch.float64)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append((z.detach().clone(), torch.as_tensor(t).detach().clone()))
        return torch.tanh(z @ self.weight + self.bias) + 0.1 * (torch.as_tensor(t, dtype=z.dtype)[:, None] + 1) * \
            self.step_direction


def _reference_ddpm_loss(denoiser: _RecordingDenoiser, z0: torch.Tensor, alpha_bar: torch.Tensor, t: torch.Tensor,
                         noise: torch.Tensor, *, index_shift: int = 0, power: float = 0.5, swap: bool = False,
                         noise_sign: float = 1.0, target: str = "noise", reduce: str = "mean",
                         denoise_clean: bool = False) -> torch.Tensor:
    """Sample by sample: z_t = √ᾱ_t z0 + √(1 − ᾱ_t) ε, loss (ε − ε_θ(z_t, t))² averaged over every element; the
    keywords give the usual mistakes."""
    per_sample = []
    for b in range(len(z0)):
        signal = alpha_bar[int(t[b]) + index_shift]
        keep, add = signal**power, (1 - signal) ** power
        if swap:
            keep, add = add, keep
        noisy = z0[b] if denoise_clean else keep * z0[b] + noise_sign * add * noise[b]
        prediction = torch.tanh(noisy @ denoiser.weight + denoiser.bias) + 0.1 * (float(t[b]) + 1) * \
            denoiser.step_direction
        wanted = noise[b] if target == "noise" else z0[b]
        per_sample.append(((wanted - prediction) ** 2).sum())
    total = torch.stack(per_sample)
    return total.mean() if reduce == "per sample" else total.sum() / z0.numel()


@exercise_check
def check_ddpm_loss(ddpm_loss: Callable) -> None:
    """``ddpm_loss(denoiser, z0 (B, d), alpha_bar (T,), t (B,), noise (B, d))`` → a scalar tensor on three cases
    (B = 1 to 64, d = 2 to 16, steps t = 0 and T − 1 among them): the noisy latents and steps given to the
    denoiser, the loss (a mean over every element of (ε − ε_θ)²) against the definition written out sample by
    sample, and its gradient reaching the denoiser's weights."""
    generator = torch.Generator().manual_seed(1003)
    for name, batch, dim, steps in (("64 latents of 16, T = 100", 64, 16, 100), ("one latent of 2, T = 10", 1, 2, 10),
                                    ("5 latents of 3, T = 50", 5, 3, 50)):
        denoiser = _RecordingDenoiser(dim, seed=batch)
        z0 = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
        alpha_bar = torch.cumprod(1 - torch.linspace(0.02, 0.4, steps, dtype=torch.float64), dim=0)
        t = torch.randint(steps, (batch,), generator=generator)
        t[0] = 0 if batch == 1 else t[0]
        if batch > 1:
            t[-1] = steps - 1
        noise = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
        loss = returned("ddpm_loss", ddpm_loss(denoiser, z0, alpha_bar, t, noise))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ExerciseCheckFailed("ddpm_loss: return one number as a torch tensor (a mean over every element), "
                                      "not a batch of losses or a Python float: training calls backward() on it.")
        if not denoiser.calls:
            raise ExerciseCheckFailed("ddpm_loss: the denoiser was never called: the loss compares its prediction "
                                      "ε_θ(z_t, t) with the noise.")
        given_z, given_t = denoiser.calls[-1]
        signal = alpha_bar.index_select(0, t).unsqueeze(-1)
        noisy = signal.sqrt() * z0 + (1 - signal).sqrt() * noise
        if given_t.shape == t.shape and not torch.equal(given_t.long(), t):
            shift = (given_t.long() - t).unique()
            detail = f" (shifted by {int(shift[0]):+d})" if len(shift) == 1 else ""
            raise ExerciseCheckFailed(f"ddpm_loss ({name}): the denoiser was given other steps than t{detail}: pass "
                                      "t itself, the same 0-based indices that select ᾱ_t.")
        if given_z.shape == z0.shape and torch.allclose(given_z, z0) and not torch.allclose(noisy, z0):
            raise ExerciseCheckFailed(f"ddpm_loss ({name}): the denoiser was given the clean z0: give it the noisy "
                                      "z_t = √ᾱ_t z0 + √(1 − ᾱ_t) ε.")
        reference = _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise)
        mistakes = {
            "with ᾱ_t and 1 − ᾱ_t without their square roots (z_t = ᾱ_t z0 + (1 − ᾱ_t) ε)":
                _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise, power=1.0),
            "with the two square roots swapped (√(1 − ᾱ_t) on z0, √ᾱ_t on the noise)":
                _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise, swap=True),
            "with z0 as the target: this loss trains the network to predict the noise ε":
                _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise, target="clean"),
            "with a sum over latent dimensions averaged over the batch: take the mean over every element":
                _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise, reduce="per sample"),
            "with the noise subtracted (z_t = √ᾱ_t z0 − √(1 − ᾱ_t) ε)":
                _reference_ddpm_loss(denoiser, z0, alpha_bar, t, noise, noise_sign=-1.0),
        }
        if steps > 1 and int(t.min()) > 0:
            mistakes["with ᾱ_{t−1} (the step index is off by one)"] = _reference_ddpm_loss(
                denoiser, z0, alpha_bar, t, noise, index_shift=-1)
        assert_close(f"ddpm_loss ({name})", loss, reference, rtol=1e-9, atol=1e-12, mistakes=mistakes,
                     hint="z_t = √ᾱ_t z0 + √(1 − ᾱ_t) ε with ᾱ_t = alpha_bar[t]; the loss is the mean of "
                          "(ε − denoiser(z_t, t))² over every element.")
        grads = gradients(f"ddpm_loss ({name})", loss, {"the denoiser's weights": denoiser.weight})
        (expected_grad,) = torch.autograd.grad(reference, denoiser.weight)
        assert_close(f"ddpm_loss ({name}): the gradient with respect to the denoiser's weights",
                     grads["the denoiser's weights"], expected_grad, rtol=1e-7, atol=1e-12,
                     hint="Compute the loss with torch operations from the denoiser's output.")
    passed("ddpm_loss")
