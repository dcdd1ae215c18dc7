"""The convolutional VAE of lesson 7, promoted here so that the retraining script, the evaluation script
and the shipped checkpoint share one definition (lesson 7 builds the same model step by step).

Images are densities ``x: (B, 1, 32, 64)`` in [0, 1]; the decoder returns Bernoulli logits of the same
shape. Losses are per image, in nats.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.integrity import read_verified, write_recorded
from utils.settings import LATENT_DIM


class Encoder(nn.Module):
    """Three strided convolutions (32×64 → 4×8) and a linear layer to (μ, log σ²)."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.to_moments = nn.Linear(4 * width * 4 * 8, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 1, 32, 64) → μ, log σ²: (B, latent_dim) each."""
        mu, logvar = self.to_moments(self.features(x)).chunk(2, dim=-1)
        return mu, logvar


class Decoder(nn.Module):
    """A linear layer to 4×8 feature maps and three transposed convolutions back to 32×64 logits."""

    def __init__(self, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.from_latent = nn.Linear(latent_dim, 4 * width * 4 * 8)
        self.upsample = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) → logits: (B, 1, 32, 64)."""
        return self.upsample(self.from_latent(z).view(-1, 4 * self.width, 4, 8))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε, ε ~ N(0, I)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def gaussian_kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_j, σ_j²) ‖ N(0, 1)) of every latent dimension: −½(1 + log σ² − μ² − σ²), shape of ``mu``."""
    return -0.5 * (1 + logvar - mu**2 - logvar.exp())


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(−ELBO_β, reconstruction, KL), each averaged over the batch, summed over pixels / latents."""
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
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


@dataclass
class TrainingHistory:
    """Per-epoch averages (per image, nats) on the training and validation splits."""

    train: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)


LossFunction = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def kl_weight(epoch: int, beta: float, warmup_epochs: int) -> float:
    """Linear KL warm-up: β · min(1, (epoch + 1) / warmup_epochs)."""
    return beta * min(1.0, (epoch + 1) / max(1, warmup_epochs))


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: Iterable[torch.Tensor], device: torch.device, beta: float = 1.0,
                  loss_fn: LossFunction = vae_loss) -> dict[str, float]:
    """Average −ELBO (with β), reconstruction and KL per image over a loader."""
    model.eval()
    totals = torch.zeros(3, device=device)
    count = 0
    for x in loader:
        x = x.to(device)
        logits, mu, logvar = model(x)
        totals += torch.stack(loss_fn(logits, x, mu, logvar, beta)) * len(x)
        count += len(x)
    return dict(zip(("loss", "reconstruction", "kl"), (totals / count).tolist(), strict=True))


EpochFunction = Callable[..., dict[str, float]]


def train_epoch(model: nn.Module, batches: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                kl_weight: float, loss_fn: LossFunction = vae_loss) -> dict[str, float]:
    """One pass over ``batches``: a gradient step on ``loss_fn(logits, x, μ, log σ², kl_weight)`` per batch.

    Returns the epoch's averages per image of the loss, the reconstruction and the KL, each batch weighted by
    its size. The sums stay on the device: one host synchronisation per epoch, none per batch.
    """
    model.train()
    totals, count = 0.0, 0
    for x in batches:
        logits, mu, logvar = model(x)
        loss, reconstruction, kl = loss_fn(logits, x, mu, logvar, kl_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals = totals + torch.stack([loss.detach(), reconstruction.detach(), kl.detach()]) * len(x)
        count += len(x)
    return dict(zip(("loss", "reconstruction", "kl"), (totals / count).tolist(), strict=True))


def train_vae(model: nn.Module, train_loader: Iterable[torch.Tensor], validation_loader: Iterable[torch.Tensor],
              epochs: int,
              device: torch.device, beta: float = 1.0, warmup_epochs: int = 10, lr: float = 2e-3,
              loss_fn: LossFunction = vae_loss, progress: bool = True,
              epoch_fn: EpochFunction = train_epoch) -> TrainingHistory:
    """Adam on −ELBO with a KL warm-up and cosine learning-rate decay; a tqdm bar over epochs.

    Each epoch is ``epoch_fn(model, batches, optimizer, kl_weight, loss_fn)`` (lesson 7's students write their
    own). The loaders yield batches ``(B, 1, H, W)`` already on ``device`` (:func:`utils.data.make_loader` with
    ``device=device``), so an epoch costs the device no host work but one sync.
    """
    return fit(model, epochs, lr, beta, warmup_epochs, progress,
               lambda optimizer, weight: epoch_fn(model, train_loader, optimizer, weight, loss_fn),
               lambda weight: evaluate_loss(model, validation_loader, device, weight, loss_fn))


def fit(model: nn.Module, epochs: int, lr: float, beta: float, warmup_epochs: int, progress: bool,
        train_one: Callable[[torch.optim.Optimizer, float], dict[str, float]],
        validate_one: Callable[[float], dict[str, float]]) -> TrainingHistory:
    """The schedule every training of the course shares: Adam, a linear KL warm-up to β, cosine learning-rate decay
    to lr/20, and a tqdm bar over epochs. Each epoch calls ``train_one(optimizer, kl_weight)`` then
    ``validate_one(kl_weight)``; both return the epoch's averages, which the history keeps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr / 20)
    history = TrainingHistory()
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for epoch in bar:
        weight = kl_weight(epoch, beta, warmup_epochs)
        history.train.append(train_one(optimizer, weight))
        schedule.step()
        history.validation.append(validate_one(weight))
        bar.set_postfix(val_loss=f"{history.validation[-1]['loss']:.1f}")
    return history


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
