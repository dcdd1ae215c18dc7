"""The conditional VAE of lesson 8 and its deterministic baseline, promoted here so that the lesson, the
retraining script, the evaluation script and the shipped checkpoint share one definition.

A problem of the dataset (a cantilever with one load on its right edge) is the condition
``c = (standardised volume fraction, load height in [−1, 1], cos 2θ, sin 2θ)``: :func:`condition_vector`.
The encoder q(z | x, c) sees ``c`` as four constant image channels beside the design; the decoder
p(x | z, c) takes ``c`` beside ``z``; the prior p(z | c) is either N(0, I) (``prior="standard"``, the naive
CVAE) or a small network of ``c`` (``prior="learned"``). ``latent_dim=0`` leaves the latent out: the same
decoder, fed the condition only, is the deterministic baseline (a regression of the design on the problem).

Images are densities ``x: (B, 1, 32, 64)`` in [0, 1]; decoders return Bernoulli logits. Losses are per
design, in nats.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from utils.data import DesignBatches, TopologyData, layout_of
from utils.elbo_terms import bernoulli_log_likelihood, gaussian_kl_terms, reparameterize
from utils.integrity import read_verified, write_recorded
from utils.settings import LATENT_DIM, NELY, PARAMETER_RANGES
from utils.training import TrainingHistory, fit, run_epoch
from utils.vae import Decoder, Encoder

CONDITION_DIM = 4
PriorKind = Literal["standard", "learned"]


def condition_vector(volfrac: np.ndarray | float, load_y: np.ndarray | float,
                     angle_deg: np.ndarray | float) -> torch.Tensor:
    """The condition of each problem, ``(N, 4)`` (scalars broadcast against arrays): the volume fraction
    standardised over the dataset's range (−1 at its lower end, +1 at its upper end), the load's height from the
    top mapped to [−1, 1], and the load's line of action as (cos 2θ, sin 2θ). Compliance is quadratic in the
    load, so a load and its opposite (θ and θ + 180°) have the same optimal design: the doubled angle gives both
    the same condition, and it is continuous where the angle itself jumps by 360°."""
    low, high = PARAMETER_RANGES["volfrac"]
    volfrac, load_y, angle = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                                   for v in (volfrac, load_y, angle_deg)))
    doubled = np.radians(2 * angle)
    columns = [(2 * volfrac - low - high) / (high - low), 2 * load_y / NELY - 1, np.cos(doubled), np.sin(doubled)]
    return torch.as_tensor(np.stack(columns, axis=1), dtype=torch.float32)


def problem_conditions(problems: TopologyData) -> torch.Tensor:
    """The condition vectors ``(N, 4)`` of every problem of a split."""
    return condition_vector(problems.volfrac, problems.load_y, problems.angle_deg)


class ConditionalEncoder(nn.Module):
    """q(z | x, c): the course's encoder on five channels, the design and the four condition values, each
    spread over the image as a constant channel (so every pixel's filter sees the problem)."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.body = Encoder(latent_dim, width)
        first = self.body.features[0]
        self.body.features[0] = nn.Conv2d(1 + CONDITION_DIM, first.out_channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 1, H, W), c: (B, 4) → μ, log σ²: (B, latent_dim) each."""
        channels = c[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.body(torch.cat([x, channels], dim=1))


class ConditionalPrior(nn.Module):
    """p(z | c) = N(μ(c), diag σ²(c)): a network of the condition with two hidden layers (ReLU)."""

    def __init__(self, latent_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CONDITION_DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent_dim))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c: (B, 4) → μ, log σ²: (B, latent_dim) each."""
        mu, logvar = self.net(c).chunk(2, dim=-1)
        return mu, logvar


class RefinedDecoder(Decoder):
    """Lesson 7's decoder with a nonlinear stage at full resolution: its last transposed convolution gives width/2
    feature maps of 32×64 instead of the logits, and two 3×3 convolutions (a ReLU before each) turn them into the
    logits. Lesson 7's decoder is linear after its last ReLU at 16×32, so each output pixel is a fixed blend of
    coarser features; the extra stage can decide a thin member along its length (lesson 8, section 6, measures
    what it does to floating material)."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__(latent_dim, width)
        channels = max(width // 2, 1)
        self.upsample[-1] = nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1)
        self.upsample.extend([nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(channels, 1, 3, padding=1)])


class ConditionalVAE(nn.Module):
    """q(z | x, c), p(z | c) and p(x | z, c); ``forward`` returns (logits, (μ_q, log σ²_q), (μ_p, log σ²_p)).

    The decoder is lesson 7's, with ``latent_dim + 4`` inputs: z and c side by side; ``refined=True`` adds a
    full-resolution stage (:class:`RefinedDecoder`). ``latent_dim=0`` gives the deterministic baseline (no
    encoder, no prior, a KL of zero)."""

    def __init__(self, latent_dim: int = LATENT_DIM, width: int = 32, prior: PriorKind = "learned",
                 refined: bool = False) -> None:
        super().__init__()
        self.latent_dim, self.width, self.prior_kind, self.refined = latent_dim, width, prior, refined
        self.encoder = ConditionalEncoder(latent_dim, width) if latent_dim else None
        self.prior = ConditionalPrior(latent_dim) if latent_dim and prior == "learned" else None
        self.decoder = (RefinedDecoder if refined else Decoder)(latent_dim + CONDITION_DIM, width)

    def prior_moments(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ_p(c), log σ²_p(c): (B, latent_dim) each; zeros for the standard prior N(0, I)."""
        if self.prior is None:
            zeros = c.new_zeros(len(c), self.latent_dim)
            return zeros, zeros
        return self.prior(c)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim), c: (B, 4) → logits (B, 1, 32, 64)."""
        return self.decoder(torch.cat([z, c], dim=1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor],
                                                                  tuple[torch.Tensor, torch.Tensor]]:
        prior = self.prior_moments(c)
        if self.encoder is None:
            return self.decode(prior[0], c), prior, prior
        mu, logvar = self.encoder(x, c)
        return self.decode(reparameterize(mu, logvar), c), (mu, logvar), prior

    @torch.no_grad()
    def generate(self, c: torch.Tensor, samples: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Densities in [0, 1] for the problems ``c: (N, 4)``: ``samples=0`` decodes the prior's mean once,
        ``(1, N, 32, 64)``; ``samples=k`` decodes k draws z ~ p(z | c) per problem, ``(k, N, 32, 64)``."""
        self.eval()
        mu, logvar = self.prior_moments(c)
        if samples == 0 or self.latent_dim == 0:  # without a latent, every sample is the same design
            return torch.sigmoid(self.decode(mu, c))[None, :, 0].expand(max(samples, 1), -1, -1, -1)
        noise = torch.randn((samples, *mu.shape), generator=generator).to(mu.device)
        z = reparameterize(mu, logvar, noise)
        # One draw for all problems at a time: decoding 16 × 150 latents at once would hold ~0.4 GB of activations.
        return torch.stack([torch.sigmoid(self.decode(draw, c))[:, 0] for draw in z])


def cvae_loss(logits: torch.Tensor, x: torch.Tensor, posterior: tuple[torch.Tensor, torch.Tensor],
              prior: tuple[torch.Tensor, torch.Tensor], beta: float = 1.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(−conditional ELBO_β, reconstruction, KL(q(z|x,c) ‖ p(z|c))), each averaged over the batch, summed
    over pixels / latents. Lesson 8 builds it on the student's KL (exercise 8.1)."""
    reconstruction = -bernoulli_log_likelihood(logits, x).mean()
    kl = gaussian_kl_terms(*posterior, *prior).sum(1).mean()
    return reconstruction + beta * kl, reconstruction, kl


ConditionalLoss = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _batch_losses(model: ConditionalVAE, loss_fn: ConditionalLoss, weight: float) -> Callable:
    def losses(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, c = batch
        logits, posterior, prior = model(x, c)
        return loss_fn(logits, x, posterior, prior, weight)
    return losses


def train_conditional(model: ConditionalVAE, train_batches: DesignBatches,
                      validation_batches: DesignBatches, epochs: int, beta: float = 1.0, warmup_epochs: int = 20,
                      lr: float = 2e-3, progress: bool = True, loss_fn: ConditionalLoss = cvae_loss
                      ) -> TrainingHistory:
    """Adam on the negative conditional ELBO with lesson 7's KL warm-up and cosine learning-rate decay; the loss is
    ``loss_fn(logits, x, (μ_q, log σ²_q), (μ_p, log σ²_p), kl_weight)`` (lesson 8 passes one built on the
    student's KL)."""
    return fit(model, epochs, lr, beta, warmup_epochs, progress,
               lambda optimizer, weight: run_epoch(model, train_batches, _batch_losses(model, loss_fn, weight),
                                                   optimizer),
               lambda weight: run_epoch(model, validation_batches, _batch_losses(model, loss_fn, weight)),
               layout_of(train_batches))


def _settings(model: ConditionalVAE) -> dict[str, int | str | bool]:
    return {"latent_dim": model.latent_dim, "width": model.width, "prior": model.prior_kind, "refined": model.refined}


def save_models(models: dict[str, ConditionalVAE], path: Path, metadata: dict) -> str:
    """Save several named models in one file; write ``<path>.sha256.json`` with its SHA-256; return it."""
    return write_recorded({name: {"state_dict": m.state_dict(), **_settings(m)} for name, m in models.items()},
                          path, metadata)


def load_models(path: Path, device: torch.device | str = "cpu") -> tuple[dict[str, ConditionalVAE], dict]:
    """The models saved by :func:`save_models`, after checking the file's SHA-256 against its record."""
    data, record = read_verified(path, "make cvae-checkpoint")
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    models = {}
    for name, entry in payload.items():
        model = ConditionalVAE(entry["latent_dim"], entry["width"], entry["prior"], entry["refined"]).to(device)
        model.load_state_dict(entry["state_dict"])
        models[name] = model.eval()
    return models, record
