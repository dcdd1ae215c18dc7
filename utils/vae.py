"""The convolutional VAE of lesson 7, promoted here so that the retraining script, the evaluation script
and the shipped checkpoint share one definition (lesson 7 builds the same model step by step).

Images are densities ``x: (B, 1, 32, 64)`` in [0, 1]; the decoder returns Bernoulli logits of the same
shape. Losses are per image, in nats.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from utils.data import layout_of
from utils.elbo_terms import bernoulli_log_likelihood, gaussian_kl_terms, reparameterize
from utils.integrity import read_verified, write_recorded
from utils.settings import FEATURE_GRID, LATENT_DIM
from utils.training import TrainingHistory, fit, run_epoch

FEATURE_PIXELS = FEATURE_GRID[0] * FEATURE_GRID[1]


class Encoder(nn.Module):
    """Three strided convolutions (32×64 → 4×8) and a linear layer to (μ, log σ²). Lesson 7 builds it (worked code)."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.to_moments = nn.Linear(4 * width * FEATURE_PIXELS, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 1, 32, 64) → μ, log σ²: (B, latent_dim) each."""
        mu, logvar = self.to_moments(self.features(x)).chunk(2, dim=-1)
        return mu, logvar


class Decoder(nn.Module):
    """A linear layer to 4×8 feature maps and three transposed convolutions back to 32×64 logits. Built in lesson 7,
    exercise 7.2; the ReLU after the linear layer is ``upsample``'s first module, so that the shipped weights'
    names (``upsample.1``, ``upsample.3``, ``upsample.5``) are fixed by this layout."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.from_latent = nn.Linear(latent_dim, 4 * width * FEATURE_PIXELS)
        self.upsample = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) → logits: (B, 1, 32, 64)."""
        return self.upsample(self.from_latent(z).view(-1, 4 * self.width, *FEATURE_GRID))


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(−ELBO_β, reconstruction, KL), each averaged over the batch, summed over pixels / latents. Built in lesson 7,
    exercise 7.1."""
    reconstruction = -bernoulli_log_likelihood(logits, x).mean()
    kl = gaussian_kl_terms(mu, logvar).sum(1).mean()
    return reconstruction + beta * kl, reconstruction, kl


class ConvVAE(nn.Module):
    """Encoder, reparametrization and decoder; ``forward`` returns (logits, μ, log σ²)."""

    def __init__(self, latent_dim: int = LATENT_DIM, width: int = 32, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.width = width
        self.encoder = encoder if encoder is not None else Encoder(latent_dim, width)
        self.decoder = decoder if decoder is not None else Decoder(latent_dim, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        return self.decoder(reparameterize(mu, logvar)), mu, logvar


LossFunction = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
EpochFunction = Callable[..., dict[str, float]]


def _batch_losses(model: nn.Module, loss_fn: LossFunction, weight: float) -> Callable:
    def losses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, mu, logvar = model(x)
        return loss_fn(logits, x, mu, logvar, weight)
    return losses


def evaluate_loss(model: nn.Module, loader: Iterable[torch.Tensor], beta: float = 1.0,
                  loss_fn: LossFunction = vae_loss) -> dict[str, float]:
    """Average −ELBO (with β), reconstruction and KL per image over a loader, in evaluation mode."""
    return run_epoch(model, loader, _batch_losses(model, loss_fn, beta))


def train_epoch(model: nn.Module, batches: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                kl_weight: float, loss_fn: LossFunction = vae_loss) -> dict[str, float]:
    """One pass over ``batches``: a gradient step on ``loss_fn(logits, x, μ, log σ², kl_weight)`` per batch; the
    epoch's averages per image of the loss, the reconstruction and the KL. Built in lesson 7, exercise 7.3."""
    return run_epoch(model, batches, _batch_losses(model, loss_fn, kl_weight), optimizer)


def train_vae(model: nn.Module, train_loader: Iterable[torch.Tensor], validation_loader: Iterable[torch.Tensor],
              epochs: int, beta: float = 1.0, warmup_epochs: int = 10, lr: float = 2e-3,
              loss_fn: LossFunction = vae_loss, progress: bool = True,
              epoch_fn: EpochFunction = train_epoch) -> TrainingHistory:
    """Adam on −ELBO with a KL warm-up and cosine learning-rate decay; a tqdm bar over epochs.

    Each epoch is ``epoch_fn(model, batches, optimizer, kl_weight, loss_fn)`` (lesson 7's students write their
    own). The loaders yield batches ``(B, 1, H, W)`` already on ``device`` (:func:`utils.data.make_loader` with
    ``device=device``), so an epoch costs the device no host work but one sync.
    """
    return fit(model, epochs, lr, beta, warmup_epochs, progress,
               lambda optimizer, weight: epoch_fn(model, train_loader, optimizer, weight, loss_fn),
               lambda weight: evaluate_loss(model, validation_loader, weight, loss_fn), layout_of(train_loader))


def save_checkpoint(model: ConvVAE, path: Path, metadata: dict) -> str:
    """Save weights and settings; write ``<path>.sha256.json`` with the file's SHA-256; return it."""
    return write_recorded({"state_dict": model.state_dict(), "latent_dim": model.latent_dim, "width": model.width},
                          path, metadata)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[ConvVAE, dict]:
    """Load a checkpoint after checking its SHA-256 against ``<path>.sha256.json``."""
    data, record = read_verified(path, "make checkpoint")
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    model = ConvVAE(payload["latent_dim"], payload["width"]).to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, record
