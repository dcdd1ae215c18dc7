"""The VAE module: shapes, the loss against torch.distributions, training lowers the loss, checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence
from torch.utils.data import DataLoader

from utils.evaluation import reconstruct
from utils.integrity import CheckpointError
from utils.training import kl_weight
from utils.vae import ConvVAE, load_checkpoint, save_checkpoint, train_vae, vae_loss


def test_shapes() -> None:
    model = ConvVAE(latent_dim=5, width=8)
    logits, mu, logvar = model(torch.rand(3, 1, 32, 64))
    assert logits.shape == (3, 1, 32, 64) and mu.shape == logvar.shape == (3, 5)
    assert model.decoder(torch.zeros(2, 5)).shape == (2, 1, 32, 64)


def test_loss_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 32, 64, dtype=torch.float64), torch.rand(4, 1, 32, 64, dtype=torch.float64)
    mu, logvar = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    total, reconstruction, kl = vae_loss(logits, x, mu, logvar, beta=2.0)
    expected_reconstruction = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1).mean()
    expected_kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(reconstruction, expected_reconstruction)
    torch.testing.assert_close(kl, expected_kl)
    torch.testing.assert_close(total, expected_reconstruction + 2.0 * expected_kl)


def test_kl_warmup_is_linear_then_flat() -> None:
    assert [kl_weight(e, 2.0, 4) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]


def test_training_lowers_the_validation_loss() -> None:
    torch.manual_seed(0)
    images = (torch.rand(64, 1, 32, 64) > 0.5).float() * torch.linspace(0, 1, 64)[None, None, None, :].round()
    loader = DataLoader(images, batch_size=16)
    model = ConvVAE(latent_dim=4, width=8)
    history = train_vae(model, loader, loader, epochs=6, warmup_epochs=2, progress=False)
    assert history.validation[-1]["reconstruction"] < 0.8 * history.validation[0]["reconstruction"]


def test_checkpoint_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    model = ConvVAE(latent_dim=3, width=4)
    path = tmp_path / "model.pt"
    digest = save_checkpoint(model, path, {"note": "test"})
    loaded, record = load_checkpoint(path)
    assert record["sha256"] == digest and record["note"] == "test"
    x = np.random.default_rng(0).random((2, 32, 64))
    cpu = torch.device("cpu")
    np.testing.assert_allclose(reconstruct(loaded, x, cpu), reconstruct(model, x, cpu), rtol=1e-6)
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="make checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_both_memory_layouts_train_the_same_model() -> None:
    """Channels-last (utils.settings.CPU_TRAINING_LAYOUT) is a layout, not another model: the batches and the
    convolution weights are held in it, and three epochs end where the default layout's do, up to rounding."""
    from utils.data import DesignBatches
    rng = np.random.default_rng(0)
    designs = (rng.uniform(size=(96, 32, 64)) > 0.6).astype(np.float32)
    trained = {}
    for layout in ("contiguous", "channels last"):
        torch.manual_seed(0)
        model = ConvVAE(latent_dim=4, width=4)
        train = DesignBatches(designs, 32, True, seed=1, layout=layout)
        assert train.images.is_contiguous(memory_format=torch.channels_last if layout == "channels last"
                                          else torch.contiguous_format)
        history = train_vae(model, train, DesignBatches(designs[:32], 32, False, layout=layout), 3, progress=False)
        convolution = next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)  # 1 channel: both
        assert convolution.is_contiguous(memory_format=torch.channels_last) == (layout == "channels last")
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        trained[layout] = (history.validation[-1]["loss"], weights)
    assert trained["channels last"][0] == pytest.approx(trained["contiguous"][0], rel=1e-4)
    torch.testing.assert_close(trained["channels last"][1], trained["contiguous"][1], rtol=1e-3, atol=1e-4)
