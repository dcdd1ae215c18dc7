"""The prior of a VAE (lesson 10): how far the encoder's aggregate posterior q(z) = (1/N) Σ_n q(z | x_n) lies from
the prior p(z) = N(0, I) that samples are drawn from, and two priors fitted to q(z) after the VAE has been trained.

- ELBO surgery (Hoffman & Johnson 2016): the ELBO's average KL term splits exactly into the index-code mutual
  information I(n; z) = E[log q(z | x_n) − log q(z)] and KL(q(z) ‖ p(z)) = E[log q(z) − log p(z)], both expectations
  over n uniform on the N designs and z ~ q(z | x_n). :func:`elbo_surgery` estimates both by Monte Carlo, log q(z)
  computed exactly as a log-mean-exp over the N posteriors (:func:`mixture_log_density`), with standard errors;
  :func:`linear_gaussian_surgery` gives both in closed form for a linear-Gaussian encoder on Gaussian data.
- :class:`VampPrior` (Tomczak & Welling 2018): a mixture of the encoder's posteriors of K learned pseudo-inputs;
  fitted here *after* the VAE (encoder and decoder frozen), by maximising E_q(z)[log p(z)], the only part of the
  ELBO the prior changes. (Tomczak & Welling train it with the VAE: ours is adapted from theirs.)
- :class:`DiffusionPrior`: a DDPM (Ho et al. 2020) on the 16 latent numbers, an MLP that predicts the noise, with the
  cosine schedule of Nichol & Dhariwal (2021), trained on codes z ~ q(z | x) of the training designs and sampled
  by the ancestral loop.

Latents are ``(..., d)`` tensors; log-densities in nats.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from utils.data import TopologyData
from utils.evaluation import judge_against_nearest
from utils.integrity import read_verified, write_recorded
from utils.metrics import DesignMetrics, solid_iou

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension; the three broadcast against each other."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension: the course's prior p(z)."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def mixture_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """log (1/K) Σ_k N(z; μ_k, diag σ_k²) for points ``z: (M, d)`` and components ``mu, logvar: (K, d)``: (M,).

    A log-mean-exp (``torch.logsumexp`` − log K): the densities themselves underflow in 16 dimensions. ``chunk``
    points at a time keep the (chunk, K, d) intermediate small."""
    parts = [torch.logsumexp(gaussian_log_density(z[i:i + chunk, None, :], mu[None], logvar[None]), dim=1)
             for i in range(0, len(z), chunk)]
    return torch.cat(parts) - math.log(len(mu))


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate and its standard error, in nats."""

    value: float
    standard_error: float

    def __str__(self) -> str:
        return f"{self.value:.2f} ± {self.standard_error:.2f}"


def _stratified_estimate(terms: torch.Tensor) -> Estimate:
    """The mean of ``terms: (S, N)`` (S draws for each of the N designs, every design weighted 1/N) and its standard
    error, sqrt(Σ_n Var_s / S) / N: the designs are a fixed, fully enumerated set, so only the draws vary."""
    draws, designs = terms.shape
    variance = terms.var(dim=0, unbiased=True).sum() / draws / designs**2
    return Estimate(float(terms.mean()), float(variance.sqrt()))


@torch.no_grad()
def elbo_surgery(mu: torch.Tensor, logvar: torch.Tensor, draws: int, generator: torch.Generator
                 ) -> dict[str, Estimate]:
    """ELBO surgery of posteriors ``mu, logvar: (N, d)`` (float64 recommended) against p(z) = N(0, I), from ``draws``
    (≥ 2) samples z ~ q(z | x_n) per design.

    Returns estimates of "average KL" (E_n KL(q(z | x_n) ‖ p), its Monte Carlo estimate: the closed form is
    utils.elbo_terms.gaussian_kl_terms), "index-code MI" (≤ log N), "KL(q(z) ‖ p(z))", "dimension-wise KL"
    (Σ_j KL(q(z_j) ‖ N(0, 1)), each marginal q(z_j) a log-mean-exp in one dimension) and "total correlation"
    (KL(q(z) ‖ Π_j q(z_j)) = KL(q(z) ‖ p(z)) − dimension-wise KL). Per draw, the first equals the sum of the next
    two exactly, so their estimates add up too."""
    if draws < 2:
        raise ValueError(f"draws={draws}: at least 2 draws per design are needed for a standard error")
    noise = torch.randn(draws, *mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    draws_z = mu + torch.exp(0.5 * logvar) * noise
    z = draws_z.reshape(-1, mu.shape[1])
    designs = len(mu)
    log_posterior = gaussian_log_density(draws_z, mu, logvar).reshape(-1)
    log_aggregate = mixture_log_density(z, mu, logvar)
    log_prior = standard_normal_log_density(z)
    # Each dimension's marginal q(z_j): the same log-mean-exp with one coordinate.
    log_marginals = sum(mixture_log_density(z[:, j:j + 1], mu[:, j:j + 1], logvar[:, j:j + 1])
                        for j in range(mu.shape[1]))
    per_draw = {
        "average KL": log_posterior - log_prior,
        "index-code MI": log_posterior - log_aggregate,
        "KL(q(z) ‖ p(z))": log_aggregate - log_prior,
        "dimension-wise KL": log_marginals - log_prior,
        "total correlation": log_aggregate - log_marginals,
    }
    return {name: _stratified_estimate(terms.reshape(draws, designs)) for name, terms in per_draw.items()}


def linear_gaussian_surgery(weight: np.ndarray, data_covariance: np.ndarray, posterior_variance: np.ndarray
                            ) -> dict[str, float]:
    """Closed forms for the encoder q(z | x) = N(W x, diag v) on data x ~ N(0, C): q(z) = N(0, Σ), Σ = W C Wᵀ + diag v.

    "index-code MI" = E_x KL(q(z | x) ‖ q(z)) = ½ (log det Σ − Σ_j log v_j) (the data's index becomes x itself:
    infinitely many designs); "KL(q(z) ‖ p(z))" = ½ (tr Σ − d − log det Σ); "average KL" their sum, which equals
    E_x KL(q(z | x) ‖ N(0, I)) = ½ Σ_j (v_j + E[(W x)_j²] − 1 − log v_j)."""
    covariance = weight @ data_covariance @ weight.T + np.diag(posterior_variance)
    log_det = float(np.linalg.slogdet(covariance)[1])
    mutual_information = 0.5 * (log_det - float(np.sum(np.log(posterior_variance))))
    marginal_kl = 0.5 * (float(np.trace(covariance)) - len(covariance) - log_det)
    return {"index-code MI": mutual_information, "KL(q(z) ‖ p(z))": marginal_kl,
            "average KL": mutual_information + marginal_kl}


def linear_gaussian_example(designs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """A linear-Gaussian encoder on ``designs`` 3-dimensional data points: posteriors N(W x_n, diag v) in 2 latents,
    (μ, log σ²) each (designs, 2) in float64, and the closed forms of :func:`linear_gaussian_surgery`. The points are
    drawn, then centred and transformed so that their covariance is exactly C: the finite mixture then has the
    closed form's q(z) moments, and differs from it only by not being exactly Gaussian."""
    rng = np.random.default_rng(seed)
    data_dim, latent_dim = 3, 2
    factor = rng.normal(size=(data_dim, data_dim))
    covariance = factor @ factor.T / data_dim + 0.2 * np.eye(data_dim)
    weight = rng.normal(size=(latent_dim, data_dim)) * 0.6
    variance = np.array([0.3, 0.6])
    x = rng.normal(size=(designs, data_dim))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x.T, bias=True))).T @ np.linalg.cholesky(covariance).T
    mu = torch.tensor(x @ weight.T)
    logvar = torch.tensor(np.log(variance)).expand_as(mu).clone()
    return mu, logvar, linear_gaussian_surgery(weight, covariance, variance)


@torch.no_grad()
def posterior_parameters(encoder: nn.Module, density: np.ndarray, device: torch.device, batch_size: int = 256,
                         conditions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's (μ, log σ²) of designs ``(N, 32, 64)``, each (N, d) in float64 on the CPU; a conditional
    encoder (lesson 8's q(z | x, c)) is given each design's condition from ``conditions: (N, 4)``."""
    def moments(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(density[i:i + batch_size], dtype=torch.float32)[:, None].to(device)
        return encoder(x) if conditions is None else encoder(x, conditions[i:i + batch_size].to(device))

    parts = [moments(i) for i in range(0, len(density), batch_size)]
    return (torch.cat([p[0] for p in parts]).double().cpu(), torch.cat([p[1] for p in parts]).double().cpu())


def sample_posteriors(mu: torch.Tensor, logvar: torch.Tensor, count: int, generator: torch.Generator
                      ) -> torch.Tensor:
    """``count`` draws from the aggregate posterior: a design n chosen uniformly, then z ~ q(z | x_n): (count, d)."""
    index = torch.randint(len(mu), (count,), generator=generator)
    noise = torch.randn(count, mu.shape[1], generator=generator, dtype=mu.dtype)
    return mu[index] + torch.exp(0.5 * logvar[index]) * noise


def share_in_holes(log_density: torch.Tensor, reference_log_density: torch.Tensor, quantile: float = 0.05) -> float:
    """The share of points whose log q(z) lies below the ``quantile`` of the reference points' (held-out designs'
    posterior draws): "in a hole", where q(z) is less dense than at 95 % of real codes."""
    level = torch.quantile(reference_log_density, quantile)
    return float((log_density < level).double().mean())


class VampPrior(nn.Module):
    """p(z) = (1/K) Σ_k q(z | u_k): the frozen encoder's posteriors of K pseudo-inputs u_k = sigmoid(ℓ_k), images
    (K, 1, 32, 64) in [0, 1] whose logits ℓ_k are learned (Tomczak & Welling 2018)."""

    def __init__(self, encoder: nn.Module, initial_inputs: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.pseudo_logits = nn.Parameter(torch.logit(initial_inputs.clamp(0.02, 0.98)))

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_k, log σ²_k), each (K, d): the encoder's posteriors of the pseudo-inputs."""
        return self.encoder(torch.sigmoid(self.pseudo_logits))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of ``z: (M, d)``: (M,), differentiable in the pseudo-inputs."""
        mu, logvar = self.components()
        return mixture_log_density(z, mu.to(z.dtype), logvar.to(z.dtype))

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` draws: a component chosen uniformly, then z from its Gaussian: (count, d)."""
        mu, logvar = self.components()
        return sample_posteriors(mu.double().cpu(), logvar.double().cpu(), count, generator)


def fit_vamp_prior(encoder: nn.Module, training_density: np.ndarray, components: int, steps: int, seed: int,
                   device: torch.device, batch_size: int = 256, lr: float = 0.05) -> VampPrior:
    """A VampPrior with ``components`` pseudo-inputs started at randomly chosen training designs (seed ``seed``),
    fitted by Adam for ``steps`` steps to maximise the mean log p(z) of codes z ~ q(z | x) of random training
    designs (encoder frozen)."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.randperm(len(training_density), generator=generator)[:components]
    images = torch.as_tensor(training_density[start.numpy()], dtype=torch.float32)[:, None].to(device)
    prior = VampPrior(encoder, images)
    mu, logvar = posterior_parameters(encoder, training_density, device)
    optimizer = torch.optim.Adam([prior.pseudo_logits], lr=lr)
    for _ in tqdm(range(steps), desc="fitting the VampPrior", leave=False):
        z = sample_posteriors(mu, logvar, batch_size, generator).float().to(device)
        loss = -prior.log_prob(z).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior.eval()
    return prior


def cosine_alpha_bar(steps: int, offset: float = 0.008) -> torch.Tensor:
    """ᾱ_t = Π_{s ≤ t} (1 − β_s) for t = 1..T of the cosine schedule (Nichol & Dhariwal 2021): (T,), float64, each
    β_t = 1 − ᾱ_t / ᾱ_{t−1} clipped at 0.999 as they do."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


class Denoiser(nn.Module):
    """ε_θ(z_t, t) — or ε_θ(z_t, t, c) with ``condition_dim`` > 0 — an MLP on the noisy latent, a sinusoidal
    embedding of the step t (0-based, of T) and, for a conditional prior, the problem's condition c."""

    def __init__(self, latent_dim: int, steps: int, hidden: int = 256, embedding: int = 32,
                 condition_dim: int = 0) -> None:
        super().__init__()
        self.steps, self.condition_dim = steps, condition_dim
        self.register_buffer("frequencies", torch.exp(-math.log(1000.0) * torch.arange(embedding // 2) /
                                                      (embedding // 2)))
        self.network = nn.Sequential(nn.Linear(latent_dim + embedding + condition_dim, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, latent_dim))

    def forward(self, z: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, d), t: (B,) integers in [0, T), c: (B, condition_dim) or None → predicted noise (B, d)."""
        if (c is None) != (self.condition_dim == 0) or (c is not None and c.shape[-1] != self.condition_dim):
            raise ValueError(f"this denoiser takes {self.condition_dim or 'no'} condition values, got "
                             f"{'none' if c is None else c.shape[-1]}")
        angles = (t.to(z.dtype)[:, None] * 1000.0 / self.steps) * self.frequencies.to(z.dtype)[None]
        inputs = [z, torch.sin(angles), torch.cos(angles)] + ([] if c is None else [c.to(z.dtype)])
        return self.network(torch.cat(inputs, dim=-1))


def ddpm_loss(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z0: torch.Tensor,
              alpha_bar: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The ε-prediction loss of Ho et al. (2020): z_t = sqrt(ᾱ_t) z0 + sqrt(1 − ᾱ_t) ε, mean over every element of
    (ε − ε_θ(z_t, t))². ``t: (B,)`` 0-based indices into ``alpha_bar: (T,)``. Built in lesson 10, exercise 10.3.
    A conditional denoiser enters as ``partial(denoiser, c=c)``: the loss itself does not change."""
    signal = alpha_bar[t].to(z0.dtype)[:, None]
    noisy = signal.sqrt() * z0 + (1 - signal).sqrt() * noise
    return ((noise - denoiser(noisy, t)) ** 2).mean()


class DiffusionPrior(nn.Module):
    """A DDPM on latents: the denoiser and its schedule; ``sample`` runs the ancestral loop (Ho et al. 2020,
    algorithm 2, with σ_t² = β_t). With ``condition_dim`` > 0 it is a conditional prior p(z | c): every step's
    denoiser sees the problem's condition (lesson 10, section 4). The diffusion runs on standardised latents
    (z − ``code_mean``) / ``code_scale`` (per dimension; 0 and 1 unless set, as for lesson 7's VAE, whose codes are
    near N(0, I)); samples are returned in the latent space itself."""

    def __init__(self, latent_dim: int, steps: int = 100, hidden: int = 256, condition_dim: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.condition_dim = latent_dim, condition_dim
        self.denoiser = Denoiser(latent_dim, steps, hidden, condition_dim=condition_dim)
        self.register_buffer("alpha_bar", cosine_alpha_bar(steps).float())
        self.register_buffer("code_mean", torch.zeros(latent_dim))
        self.register_buffer("code_scale", torch.ones(latent_dim))

    @property
    def steps(self) -> int:
        return len(self.alpha_bar)

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator, conditions: torch.Tensor | None = None
               ) -> torch.Tensor:
        """``count`` latents (count, d) from z_T ~ N(0, I) down to z_0, on the CPU in float64; a conditional prior
        needs ``conditions: (count, condition_dim)``, one per latent."""
        start = torch.randn(count, self.latent_dim, generator=generator, dtype=torch.float64)
        return self._reverse(start, lambda: torch.randn(start.shape, generator=generator, dtype=torch.float64),
                             conditions)

    @torch.no_grad()
    def sample_from_noise(self, noise: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """The ancestral loop with its noise given, ``noise: (T, M, d)``: ``noise[0]`` is z_T and ``noise[k]`` the
        fresh noise of the k-th step down (k = 1 … T − 1; the last step adds none). The same noise gives the same
        latents (M, d), float64 on the CPU: a study can fix each problem's draws."""
        if noise.shape[0] != self.steps or noise.shape[-1] != self.latent_dim:
            raise ValueError(f"noise of shape {tuple(noise.shape)}: expected ({self.steps}, M, {self.latent_dim})")
        fresh = iter(noise[1:].double().cpu())
        return self._reverse(noise[0].double().cpu(), lambda: next(fresh), conditions)

    def _reverse(self, z: torch.Tensor, fresh_noise: Callable[[], torch.Tensor], conditions: torch.Tensor | None
                 ) -> torch.Tensor:
        """From z_T (M, d), float64 on the CPU, down to z_0, ``fresh_noise()`` called once per step but the last."""
        self.eval()
        alpha_bar = self.alpha_bar.double().cpu()
        alphas = alpha_bar / torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        device = self.alpha_bar.device
        c = None if conditions is None else conditions.float().to(device)
        for t in range(len(alpha_bar) - 1, -1, -1):
            steps = torch.full((len(z),), t, dtype=torch.long, device=device)
            inputs = (z.float().to(device), steps) if c is None else (z.float().to(device), steps, c)
            predicted = self.denoiser(*inputs).double().cpu()
            z = (z - (1 - alphas[t]) / (1 - alpha_bar[t]).sqrt() * predicted) / alphas[t].sqrt()
            if t > 0:
                z = z + (1 - alphas[t]).sqrt() * fresh_noise()
        return self.code_mean.double().cpu() + self.code_scale.double().cpu() * z


# Training codes for a diffusion prior: (generator, batch size) → latents (B, d), or (latents, conditions (B, c)).
Codes = Callable[[torch.Generator, int], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


def fit_diffusion_prior(codes: Codes, latent_dim: int, iterations: int, seed: int, device: torch.device,
                        batch_size: int = 256, lr: float = 2e-3, steps: int = 100, hidden: int = 256,
                        loss_fn: Callable = ddpm_loss, condition_dim: int = 0,
                        standardise: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[DiffusionPrior, list[float]]:
    """A :class:`DiffusionPrior` trained for ``iterations`` Adam steps (cosine learning-rate decay) on batches
    ``codes(generator, batch_size)`` (latents z ~ q(z | x) of training designs; with ``condition_dim`` > 0, pairs of
    latents and their designs' conditions) with ``loss_fn`` (``ddpm_loss``'s signature). ``standardise`` = (mean,
    scale) of the latents, (d,) each, makes the diffusion run on (z − mean) / scale. The model and its loss per
    iteration."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    prior = DiffusionPrior(latent_dim, steps, hidden, condition_dim).to(device)
    if standardise is not None:
        prior.code_mean.copy_(standardise[0].float())
        prior.code_scale.copy_(standardise[1].float())
    optimizer = torch.optim.Adam(prior.denoiser.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    losses = []
    prior.train()
    for _ in tqdm(range(iterations), desc="training the diffusion prior", leave=False):
        batch = codes(generator, batch_size)
        z0, c = batch if condition_dim else (batch, None)
        z0 = (z0.float().to(device) - prior.code_mean) / prior.code_scale
        t = torch.randint(steps, (batch_size,), generator=generator).to(device)
        noise = torch.randn(z0.shape, generator=generator).to(device)
        denoiser = prior.denoiser if c is None else partial(prior.denoiser, c=c.float().to(device))
        loss = loss_fn(denoiser, z0, prior.alpha_bar, t, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    prior.eval()
    return prior, losses


@dataclass(frozen=True)
class AggregatePosterior:
    """The training designs' posteriors (μ, log σ²), each (N, d) in float64, and the log q(z) of held-out designs'
    posterior draws that "in a hole" is measured against (:func:`share_in_holes`)."""

    mu: torch.Tensor
    logvar: torch.Tensor
    held_out_log_density: torch.Tensor

    @classmethod
    def of(cls, encoder: nn.Module, training_density: np.ndarray, held_out_density: np.ndarray,
           device: torch.device, draws: int, generator: torch.Generator) -> AggregatePosterior:
        mu, logvar = posterior_parameters(encoder, training_density, device)
        held_mu, held_logvar = posterior_parameters(encoder, held_out_density, device)
        held_out = sample_posteriors(held_mu, held_logvar, draws, generator)
        return cls(mu, logvar, mixture_log_density(held_out, mu, logvar))

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) of latents (M, d): (M,)."""
        return mixture_log_density(z.double().cpu(), self.mu, self.logvar)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return sample_posteriors(self.mu, self.logvar, count, generator)


def judge_latents(decode: Callable[[np.ndarray], np.ndarray], latents: torch.Tensor, training: TopologyData,
                  aggregate: AggregatePosterior) -> tuple[dict[str, float], DesignMetrics]:
    """Decode latents (M, d) and judge the designs as lesson 7 judges samples (utils.evaluation.judge_against_nearest:
    thresholded at 0.5, under the nearest training design's problem, against it). Returns the judge's summary with
    the mean solid IoU with that nearest design and the share of latents "in a hole" of q(z) added, and the
    per-design metrics."""
    designs = decode(latents.float().numpy())
    metrics, nearest = judge_against_nearest(designs, training)
    iou = np.mean([solid_iou(design, training.density[i]) for design, i in zip(designs, nearest, strict=True)])
    holes = share_in_holes(aggregate.log_density(latents), aggregate.held_out_log_density)
    return {**metrics.summary(), "IoU with nearest": float(iou), "in a hole share": holes}, metrics


@dataclass
class FittedPriors:
    """One seed's fitted priors: the VampPrior and the diffusion prior (both on the shipped VAE's codes)."""

    vamp: VampPrior
    diffusion: DiffusionPrior


def save_priors(priors: dict[int, FittedPriors], path: Path, metadata: dict) -> str:
    """Save every seed's pseudo-input logits and denoiser weights to ``path`` with its SHA-256 record; return it."""
    payload = {int(seed): {"pseudo_logits": fitted.vamp.pseudo_logits.detach().cpu(),
                           "denoiser": {k: v.cpu() for k, v in fitted.diffusion.denoiser.state_dict().items()}}
               for seed, fitted in priors.items()}
    return write_recorded({"seeds": payload}, path, metadata)


def load_priors(path: Path, encoder: nn.Module, device: torch.device | str = "cpu"
                ) -> tuple[dict[int, FittedPriors], dict]:
    """The shipped priors of every seed, after checking the file's SHA-256 against its record; the VampPriors use
    ``encoder`` (the shipped VAE's, frozen). Returns the priors by seed and the record."""
    data, record = read_verified(path, "make priors")
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    settings = record["settings"]
    priors = {}
    for seed, state in payload["seeds"].items():
        vamp = VampPrior(encoder, torch.full(state["pseudo_logits"].shape, 0.5, device=device))
        vamp.pseudo_logits.data.copy_(state["pseudo_logits"])
        diffusion = DiffusionPrior(encoder.to_moments.out_features // 2, settings["diffusion_steps"],
                                   settings["diffusion_hidden"]).to(device)
        diffusion.denoiser.load_state_dict(state["denoiser"])
        priors[int(seed)] = FittedPriors(vamp.eval(), diffusion.eval())
    return priors, record


def save_conditional_priors(priors: dict[int, DiffusionPrior], path: Path, metadata: dict) -> str:
    """Save every seed's conditional diffusion prior (its denoiser's weights and the latents' standardisation) to
    ``path`` with its SHA-256 record; return it. ``metadata["settings"]`` must name "latent_dim", "condition_dim",
    "diffusion_steps" and "diffusion_hidden" (what :func:`load_conditional_priors` rebuilds them from)."""
    payload = {int(seed): {k: v.cpu() for k, v in prior.state_dict().items()} for seed, prior in priors.items()}
    return write_recorded({"seeds": payload}, path, metadata)


def load_conditional_priors(path: Path, device: torch.device | str = "cpu") -> tuple[dict[int, DiffusionPrior], dict]:
    """The shipped conditional diffusion priors p(z | c) of lesson 8's CVAE, by seed, after checking the file's
    SHA-256 against its record; and the record."""
    data, record = read_verified(path, "make priors")
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    settings = record["settings"]
    priors = {}
    for seed, state in payload["seeds"].items():
        prior = DiffusionPrior(settings["latent_dim"], settings["diffusion_steps"], settings["diffusion_hidden"],
                               settings["condition_dim"]).to(device)
        prior.load_state_dict(state)
        priors[int(seed)] = prior.eval()
    return priors, record
