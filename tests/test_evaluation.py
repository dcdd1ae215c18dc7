"""Evaluation helpers and the latent explorer's callback, on the shipped checkpoint and dataset."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from scipy.ndimage import maximum_filter
from torch import nn

from utils.data import load_topology_dataset
from utils.evaluation import (
    active_units,
    decode_latents,
    encode_means,
    judge_against_nearest,
    nearest_designs,
    reconstruction_report,
)
from utils.latent_explorer import LatentDirections, draw_latent_explorer
from utils.metrics import floating_material, load_status, relative_volume_change, threshold
from utils.settings import CHECKPOINT_PATH
from utils.topopt import compliance, simp_iterations
from utils.vae import load_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(CHECKPOINT_PATH)[0]


@pytest.fixture(scope="module")
def data():
    return load_topology_dataset()


def test_nearest_design_of_a_training_design_is_itself(data) -> None:
    train = data.subset("train")
    assert list(nearest_designs(train.density[[3, 10, 42]], train)) == [3, 10, 42]


def test_judging_training_designs_against_themselves_gives_no_error(data) -> None:
    train = data.subset("train")
    metrics, _ = judge_against_nearest(train.density[:5], train)
    np.testing.assert_allclose(metrics.compliance_error, 0.0, atol=1e-9)
    np.testing.assert_array_equal(metrics.volume_fraction_error, 0.0)


class PerfectReconstructor(nn.Module):
    """A stand-in "VAE" whose latent is the image itself: its reconstructions are the originals."""

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flatten(1), torch.zeros_like(x.flatten(1))

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logit(z.double(), eps=1e-12).view(-1, 1, 32, 64)


def test_a_perfect_reconstruction_scores_zero_error_but_misses_the_volume_target_like_its_original(data) -> None:
    test = data.subset("test")
    report = reconstruction_report(PerfectReconstructor(), test, CPU)
    assert report["IoU mean"] == 1.0
    assert report["|CE| median"] < 1e-9 and report["VFE median"] == 0.0
    originals_miss = np.median(np.abs(relative_volume_change(test.density, test.volfrac)))
    assert report["VFE vs target median"] == pytest.approx(originals_miss) and originals_miss > 0.01


def test_shipped_checkpoint_meets_the_quality_budget(shipped, data) -> None:
    report = reconstruction_report(shipped, data.subset("test"), CPU)
    assert report["IoU mean"] >= 0.92
    assert report["|CE| median"] <= 0.03
    assert report["VFE median"] <= 0.03
    assert report["floating material share"] <= 0.10


def test_judging_under_given_nearest_designs_keeps_them(data) -> None:
    train = data.subset("train")
    metrics, nearest = judge_against_nearest(train.density[:3], train, np.array([3, 4, 5]))
    assert nearest.tolist() == [3, 4, 5]
    expected = [compliance(threshold(train.density[i]), train.load_case(j)) / train.compliance_thresholded[j] - 1
                for i, j in zip(range(3), (3, 4, 5), strict=True)]
    np.testing.assert_allclose(metrics.compliance_error, expected, rtol=1e-9)


def test_ten_simp_iterations_remove_floating_islands(data) -> None:
    train = data.subset("train")
    index = next(i for i in range(len(train)) if not floating_material(train.density[i]))
    design = train.density[index].copy()
    void_rows, void_cols = np.nonzero(maximum_filter(design, size=5) < 0.01)  # far from any material
    row, col = void_rows[len(void_rows) // 2], void_cols[len(void_cols) // 2]
    design[row, col] = 1.0  # one isolated solid element
    assert floating_material(design)
    cleaned = simp_iterations(train.load_case(index), 10, design)[10]
    assert not floating_material(cleaned)
    assert abs(cleaned.mean() - train.volfrac[index]) < 0.01


def test_active_units_are_counted_from_the_encodings(shipped, data) -> None:
    count = active_units(shipped, data.subset("validation").density, CPU)
    variances = encode_means(shipped, data.subset("validation").density, CPU).var(axis=0)
    assert count == int(np.sum(variances > 0.01)) and 1 <= count <= shipped.latent_dim


def test_latent_explorer_callback_reports_the_decoded_design(shipped, data) -> None:
    means = encode_means(shipped, data.subset("train").density, CPU)
    directions = LatentDirections.from_means(means, count=3)
    np.testing.assert_allclose(np.linalg.norm(directions.directions, axis=1), 1.0, atol=1e-6)
    test = data.subset("test")
    case, reference = test.load_case(0), compliance(threshold(test.density[0]), test.load_case(0))
    numbers = draw_latent_explorer(shipped, CPU, directions, [1.0, -0.5, 0.0], case, reference)
    expected = decode_latents(shipped, directions.point([1.0, -0.5, 0.0])[None], CPU)[0]
    assert numbers["volume fraction"] == pytest.approx(threshold(expected).mean())
    assert numbers["compliance"] == pytest.approx(compliance(threshold(expected), case))
    assert numbers["load"] == load_status(threshold(expected), case, numbers["compliance"], reference)
    np.testing.assert_allclose(directions.point([0, 0, 0]), directions.center)


def test_the_load_status_says_when_the_load_is_not_carried(data) -> None:
    test = data.subset("test")
    case, design = test.load_case(0), threshold(test.density[0])
    reference = compliance(design, case)
    assert load_status(design, case, reference, reference) == "the load is carried"
    assert load_status(np.zeros_like(design), case, 1e12, reference).startswith("no material at the load")
    cut = design.copy()
    cut[:, 1:3] = 0.0  # sever the structure from the clamped edge
    cut_compliance = compliance(cut, case)
    assert cut_compliance > 1e3 * reference
    assert load_status(cut, case, cut_compliance, reference).startswith("the load is not carried to the supports")


def test_kl_per_unit_adds_up_to_the_loss_kl(shipped, data) -> None:
    from utils.evaluation import kl_per_unit
    from utils.vae import vae_loss
    designs = data.subset("validation").density[:32]
    x = torch.tensor(designs)[:, None]
    with torch.no_grad():
        mu, logvar = shipped.encoder(x)
        _, _, kl = vae_loss(shipped.decoder(mu), x, mu, logvar)
    per_unit = kl_per_unit(shipped, designs, CPU)
    assert per_unit.shape == (shipped.latent_dim,) and np.all(per_unit >= 0)
    np.testing.assert_allclose(per_unit.sum(), kl.item(), rtol=1e-5)



def test_the_iwae_bound_is_the_log_mean_of_the_weights_and_its_k1_case_is_the_elbo(shipped, data) -> None:
    from scipy.special import logsumexp

    from utils.evaluation import importance_log_weights, iwae_bound
    from utils.vae import vae_loss
    rng = np.random.default_rng(0)
    log_weights = torch.tensor(rng.normal(-300, 5, size=(1000, 3)))
    for k in (1, 10, 100, 1000):
        groups = log_weights.numpy()[: (1000 // k) * k].reshape(-1, k, 3)
        expected = (logsumexp(groups, axis=1) - np.log(k)).mean(0)
        np.testing.assert_allclose(iwae_bound(log_weights, k).numpy(), expected, rtol=1e-12)
    # The mean log-weight is a Monte Carlo estimate of the ELBO; compare with the loss's own estimate (analytic KL),
    # both with 2000 samples, within 6 standard errors of the log-weights' mean.
    x = torch.tensor(data.subset("test").density[:2])[:, None]
    weights = importance_log_weights(shipped, x, 2000, torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, logvar = shipped.encoder(x)
        std = torch.exp(0.5 * logvar)
        torch.manual_seed(2)
        elbo = torch.stack([-vae_loss(shipped.decoder(mu + std * torch.randn_like(mu)), x, mu, logvar)[0]
                            for _ in range(200)])
    standard_errors = weights.std() / np.sqrt(weights.numel()) + elbo.std() / np.sqrt(200)
    assert abs(weights.mean() - elbo.mean()) < 6 * standard_errors
    assert torch.all(iwae_bound(weights, 1000) >= iwae_bound(weights, 1))
