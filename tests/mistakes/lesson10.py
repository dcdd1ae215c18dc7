"""Lesson 10: the Monte Carlo estimate of KL(q(z) ‖ p(z)), the VampPrior's log-density, the DDPM training loss."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson10

LOG_2PI = math.log(2 * math.pi)


def _component_log_densities(z, mu, log_sigma):
    """log N(z_m; μ_k, σ_k²) of every point and component, (M, K), with σ = exp(log_sigma)."""
    return (-0.5 * LOG_2PI - log_sigma[None] - 0.5 * (z[:, None] - mu[None]) ** 2 / torch.exp(2 * log_sigma[None])
            ).sum(-1)


def _aggregate_kl(*, drop_log_n=False, combine="logsumexp", logvar_as_log_sigma=False, sign=1.0, prior_constant=True,
                  standard_error="sqrt", naive_exp=False):
    def aggregate_kl(z, mu, logvar):
        log_sigma = logvar if logvar_as_log_sigma else 0.5 * logvar
        components = _component_log_densities(z, mu, log_sigma)
        if naive_exp:
            log_q = torch.log(torch.exp(components).mean(1))
        elif combine == "logsumexp":
            log_q = torch.logsumexp(components, 1) - (0.0 if drop_log_n else math.log(len(mu)))
        elif combine == "mean":
            log_q = components.mean(1)
        else:
            log_q = components.max(1).values
        log_p = -0.5 * (z**2).sum(1) - (0.5 * LOG_2PI * z.shape[1] if prior_constant else 0.0)
        terms = sign * (log_q - log_p)
        spread = terms.std()
        error = {"sqrt": spread / math.sqrt(len(z)), "none": spread, "over M": spread / len(z)}[standard_error]
        return terms.mean(), error
    return aggregate_kl


def _aggregate_kl_distributions(z, mu, logvar):
    """Correct: torch.distributions' mixture, the population standard deviation (ddof 0)."""
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(len(mu), dtype=mu.dtype)),
                                Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    terms = mixture.log_prob(z) - Normal(0.0, 1.0).log_prob(z).sum(1)
    return float(terms.mean()), float(terms.std(unbiased=False) / len(z) ** 0.5)


def _aggregate_kl_numpy(z, mu, logvar):
    """Correct: NumPy and scipy's logsumexp, the ½ log 2π left out of both densities (it cancels)."""
    z, mu, logvar = (np.asarray(a) for a in (z, mu, logvar))
    quadratic = ((z[:, None, :] - mu[None]) ** 2 / np.exp(logvar[None]) + logvar[None]).sum(-1)
    terms = logsumexp(-0.5 * quadratic, axis=1) - np.log(len(mu)) + 0.5 * (z**2).sum(1)
    return terms.mean(), terms.std(ddof=1) / np.sqrt(len(z))


AGGREGATE_KL = Exercise("10.1", lesson10.check_aggregate_kl, wrong=(
    Answer("log-sum-exp without −log N", _aggregate_kl(drop_log_n=True), "without the −log N"),
    Answer("mean of the log-densities", _aggregate_kl(combine="mean"), "mean of the log-densities"),
    Answer("largest component only", _aggregate_kl(combine="max"), "largest component only"),
    Answer("logvar taken for log σ", _aggregate_kl(logvar_as_log_sigma=True), "logvar taken for log σ"),
    Answer("log p − log q", _aggregate_kl(sign=-1.0), "opposite sign"),
    Answer("½ log 2π left out of log p only", _aggregate_kl(prior_constant=False), "½ log 2π"),
    Answer("standard deviation for the standard error", _aggregate_kl(standard_error="none"), "not divided by √M"),
    Answer("standard error over M", _aggregate_kl(standard_error="over M"), "over M (not over √M)"),
    Answer("exp, mean, then log", _aggregate_kl(naive_exp=True), "underflow"),
), correct=(
    Answer("torch.distributions' mixture", _aggregate_kl_distributions),
    Answer("NumPy with scipy's logsumexp, constants cancelled", _aggregate_kl_numpy),
))


def _vamp(*, drop_log_k=False, combine="logsumexp", logvar_as_log_sigma=False, per_dimension=False,
          divide_by_points=False, naive_exp=False):
    def vamp_log_prior(z, encoder, pseudo_inputs):
        mu, logvar = encoder(pseudo_inputs)
        log_sigma = logvar if logvar_as_log_sigma else 0.5 * logvar
        terms = -0.5 * LOG_2PI - log_sigma[None] - 0.5 * (z[:, None] - mu[None]) ** 2 / torch.exp(2 * log_sigma[None])
        components = terms if per_dimension else terms.sum(-1)
        if naive_exp:
            return torch.log(torch.exp(components).mean(1))
        if combine == "mean":
            return components.mean(1)
        if combine == "max":
            return components.max(1).values
        count = len(z) if divide_by_points else len(mu)
        return torch.logsumexp(components, 1) - (0.0 if drop_log_k else math.log(count))
    return vamp_log_prior


def _vamp_distributions(z, encoder, pseudo_inputs):
    """Correct: a torch.distributions mixture of the pseudo-inputs' posteriors."""
    mu, logvar = encoder(pseudo_inputs)
    weights = Categorical(probs=torch.full((len(mu),), 1 / len(mu), dtype=mu.dtype))
    return MixtureSameFamily(weights, Independent(Normal(mu, (0.5 * logvar).exp()), 1)).log_prob(z)


def _vamp_loop(z, encoder, pseudo_inputs):
    """Correct: one component at a time, Normal.log_prob, then logsumexp and −log K as a tensor."""
    mu, logvar = encoder(pseudo_inputs)
    columns = [Normal(mu[k], torch.sqrt(torch.exp(logvar[k]))).log_prob(z).sum(1) for k in range(len(mu))]
    return torch.logsumexp(torch.stack(columns, 1), 1) - torch.log(torch.tensor(float(len(mu)), dtype=z.dtype))


VAMP_LOG_PRIOR = Exercise("10.2", lesson10.check_vamp_log_prior, wrong=(
    Answer("no −log K", _vamp(drop_log_k=True), "without the −log K"),
    Answer("mean of the components' log-densities", _vamp(combine="mean"), "mean of the components' log-densities"),
    Answer("largest component only", _vamp(combine="max"), "largest component only"),
    Answer("logvar taken for log σ", _vamp(logvar_as_log_sigma=True), "logvar taken for log σ"),
    Answer("−log M for −log K", _vamp(divide_by_points=True), "in place of −log K"),
    Answer("no sum over the latent dimensions", _vamp(per_dimension=True), "sum each component's log-density"),
    Answer("exp, mean, then log", _vamp(naive_exp=True), "underflow"),
), correct=(
    Answer("torch.distributions' mixture", _vamp_distributions),
    Answer("a loop over components with Normal.log_prob", _vamp_loop),
))


def _ddpm(*, power=0.5, swap=False, target="noise", reduce="mean", noise_sign=1.0, index_shift=0, clean=False,
          step_shift=0):
    def ddpm_loss(denoiser, z0, alpha_bar, t, noise):
        signal = alpha_bar[t + index_shift][:, None]
        keep, add = signal**power, (1 - signal) ** power
        if swap:
            keep, add = add, keep
        noisy = z0 if clean else keep * z0 + noise_sign * add * noise
        prediction = denoiser(noisy, t + step_shift)
        wanted = noise if target == "noise" else z0
        squared = (wanted - prediction) ** 2
        return squared.sum(1).mean() if reduce == "per sample" else squared.mean()
    return ddpm_loss


def _ddpm_mse(denoiser, z0, alpha_bar, t, noise):
    """Correct: gather ᾱ_t, torch.lerp-free but with F.mse_loss."""
    a = alpha_bar.gather(0, t).unsqueeze(-1)
    z_t = torch.sqrt(a) * z0 + torch.sqrt(1.0 - a) * noise
    return F.mse_loss(denoiser(z_t, t), noise)


def _ddpm_per_sample(denoiser, z0, alpha_bar, t, noise):
    """Correct: one sample at a time, the errors summed and divided by the number of elements."""
    noisy = torch.stack([alpha_bar[int(s)] ** 0.5 * z0[b] + (1 - alpha_bar[int(s)]) ** 0.5 * noise[b]
                         for b, s in enumerate(t)])
    return ((denoiser(noisy, t) - noise) ** 2).sum() / noise.numel()


DDPM_LOSS = Exercise("10.3", lesson10.check_ddpm_loss, wrong=(
    Answer("no square roots", _ddpm(power=1.0), "without their square roots"),
    Answer("square roots swapped", _ddpm(swap=True), "swapped"),
    Answer("z0 as the target", _ddpm(target="clean"), "predict the noise ε"),
    Answer("sum over dimensions, mean over the batch", _ddpm(reduce="per sample"), "mean over every element"),
    Answer("the noise subtracted", _ddpm(noise_sign=-1.0), "noise subtracted"),
    Answer("the clean latent denoised", _ddpm(clean=True), "the clean z0"),
    Answer("the step given as t + 1", _ddpm(step_shift=1), "shifted by +1"),
), correct=(
    Answer("F.mse_loss with gather", _ddpm_mse),
    Answer("sample by sample", _ddpm_per_sample),
))

EXERCISES = (AGGREGATE_KL, VAMP_LOG_PRIOR, DDPM_LOSS)
