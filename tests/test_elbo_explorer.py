"""The ELBO explorer's callback: its numbers obey ELBO = log p(x) − KL and match Monte Carlo."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from utils.elbo_explorer import draw_elbo_explorer
from utils.toy_models import LinearGaussian1D

MODEL = LinearGaussian1D(w=np.array([2.0, 1.0]), b=np.array([0.5, -0.5]), sigma=0.3)
X = np.array([1.5, 0.2])


@pytest.mark.parametrize("q_mean, q_log_std", [(0.0, 0.0), (0.4, -2.0), (-1.0, 0.5)])
def test_callback_numbers_satisfy_the_elbo_identity(q_mean: float, q_log_std: float) -> None:
    numbers = draw_elbo_explorer(MODEL, X, q_mean, q_log_std)
    np.testing.assert_allclose(numbers["ELBO"], numbers["log p(x)"] - numbers["KL(q || p(z|x))"], rtol=1e-10)
    assert numbers["KL(q || p(z|x))"] >= 0


def test_callback_elbo_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    q_mean, q_std = 0.3, 0.2
    z = q_mean + q_std * rng.standard_normal(400_000)
    log_joint = (-((X[None] - z[:, None] * MODEL.w - MODEL.b) ** 2).sum(1) / (2 * MODEL.sigma**2)
                 - np.log(2 * np.pi * MODEL.sigma**2) - 0.5 * z**2 - 0.5 * np.log(2 * np.pi))
    log_q = -0.5 * ((z - q_mean) / q_std) ** 2 - np.log(q_std * np.sqrt(2 * np.pi))
    numbers = draw_elbo_explorer(MODEL, X, q_mean, np.log(q_std))
    np.testing.assert_allclose(numbers["ELBO"], np.mean(log_joint - log_q), atol=0.02)


def test_gap_vanishes_at_the_posterior() -> None:
    mean, std = MODEL.posterior(X)
    numbers = draw_elbo_explorer(MODEL, X, mean, np.log(std))
    assert numbers["KL(q || p(z|x))"] < 1e-12
