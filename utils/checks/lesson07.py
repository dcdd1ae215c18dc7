"""Self-checks of lesson 7 (the convolutional VAE). References: exact gradients of the reparametrization,
torch.distributions for the loss, and the shipped checkpoint for the encoder."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed
from utils.data import load_topology_dataset
from utils.paths import DATA_DIR
from utils.vae import load_checkpoint


@exercise_check
def check_reparameterize(reparameterize: Callable) -> None:
    """Moments of z (5 standard errors) and exact gradients: dz/dμ = 1, dz/dlog σ² = (z − μ)/2."""
    torch.manual_seed(701)
    n = 100_000
    mu = torch.tensor([[2.0, -1.0, 0.0]], dtype=torch.float64).repeat(n, 1).requires_grad_()
    logvar = torch.tensor([[np.log(0.25), np.log(4.0), 0.0]], dtype=torch.float64).repeat(n, 1).requires_grad_()
    z = reparameterize(mu, logvar)
    if z.shape != mu.shape:
        raise ExerciseCheckFailed(f"reparameterize: expected shape {tuple(mu.shape)}, got {tuple(z.shape)}")
    std = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    assert_close("mean of z", z.detach().mean(0), [2.0, -1.0, 0.0], rtol=0, atol=5 * float(std.max()) / np.sqrt(n))
    assert_close("standard deviation of z", z.detach().std(0), std, rtol=0.02, atol=0,
                 hint="σ = exp(logvar / 2): logvar is the log of the variance.")
    grad_mu, grad_logvar = torch.autograd.grad(z.sum(), (mu, logvar))
    assert_close("dz/dmu", grad_mu, torch.ones_like(mu), rtol=0, atol=1e-12,
                 hint="z must be computed from mu and logvar with torch operations.")
    assert_close("dz/dlogvar", grad_logvar, 0.5 * (z - mu).detach(), rtol=1e-9, atol=1e-12)
    passed("reparameterize")


@exercise_check
def check_vae_loss(vae_loss: Callable) -> None:
    """Against −Bernoulli(logits).log_prob(x) and kl_divergence(Normal(μ, σ), Normal(0, 1)), for binary and
    grey targets and β ∈ {0.5, 4}."""
    generator = torch.Generator().manual_seed(702)
    logits = 3 * torch.randn(6, 1, 32, 64, generator=generator, dtype=torch.float64)
    mu = torch.randn(6, 16, generator=generator, dtype=torch.float64)
    logvar = torch.randn(6, 16, generator=generator, dtype=torch.float64)
    targets = {"binary": (torch.rand(6, 1, 32, 64, generator=generator) > 0.5).double(),
               "grey": torch.rand(6, 1, 32, 64, generator=generator, dtype=torch.float64)}
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1).mean()
    for kind, x in targets.items():
        reconstruction = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1).mean()
        for beta in (0.5, 4.0):
            total, got_reconstruction, got_kl = vae_loss(logits, x, mu, logvar, beta)
            assert_close(f"reconstruction ({kind} targets)", got_reconstruction, reconstruction, rtol=1e-9, atol=1e-9,
                         hint="Sum the BCE over pixels, then average over the batch.")
            assert_close("KL", got_kl, kl, rtol=1e-9, atol=1e-9,
                         hint="Sum lesson 4's −½(1 + log σ² − μ² − σ²) over latents, then average over the batch.")
            assert_close(f"total (β={beta})", total, reconstruction + beta * kl, rtol=1e-9, atol=1e-9)
    passed("vae_loss")


@exercise_check
def check_encoder(encoder_class: Callable) -> None:
    """Shapes, gradients to every layer, and — with the shipped checkpoint's weights — the same (μ, log σ²)
    as the shipped model on real designs."""
    encoder = encoder_class(8)
    x = torch.rand(5, 1, 32, 64)
    mu, logvar = encoder(x)
    if mu.shape != (5, 8) or logvar.shape != (5, 8):
        raise ExerciseCheckFailed(f"Encoder: expected μ and log σ² of shape (5, 8), got {tuple(mu.shape)} and "
                                  f"{tuple(logvar.shape)}")
    (mu.sum() + logvar.sum()).backward()
    silent = [name for name, p in encoder.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    if silent:
        raise ExerciseCheckFailed(f"Encoder: no gradient reaches {silent}; use every layer in forward")
    shipped, _ = load_checkpoint(DATA_DIR / "vae_topology.pt")
    encoder = encoder_class(shipped.latent_dim, shipped.width)
    encoder.load_state_dict(shipped.encoder.state_dict())
    designs = torch.tensor(load_topology_dataset().subset("test").density[:8])[:, None]
    with torch.no_grad():
        got, expected = encoder(designs), shipped.encoder(designs)
    assert_close("μ with the shipped weights", got[0], expected[0], rtol=1e-5, atol=1e-5,
                 hint="μ is the first half of to_moments' output, log σ² the second.")
    assert_close("log σ² with the shipped weights", got[1], expected[1], rtol=1e-5, atol=1e-5)
    passed("Encoder")
