"""Self-checks of lesson 1 (latent variable models). References: scipy.stats closed forms."""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed


def _random_model(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    return rng.normal(size=dim), rng.normal(size=dim), float(rng.uniform(0.3, 1.5))


@exercise_check
def check_log_joint(log_joint: Callable) -> None:
    """Compare ``log_joint(x, z, w, b, sigma)`` with scipy's Gaussian log-densities for several D."""
    rng = np.random.default_rng(101)
    for dim in (1, 2, 5):
        w, b, sigma = _random_model(rng, dim)
        x, z = rng.normal(size=dim), rng.normal(size=7)
        expected = np.array([stats.multivariate_normal(w * zi + b, sigma**2 * np.eye(dim)).logpdf(x)
                             + stats.norm.logpdf(zi) for zi in z])
        assert_close(f"log_joint (D={dim})", log_joint(x, z, w, b, sigma), expected, rtol=1e-8, atol=1e-8,
                     hint="Check the −(D/2)·log(2πσ²) term and that the prior log N(z; 0, 1) is added.")
    passed("log_joint")


@exercise_check
def check_log_marginal_quadrature(log_marginal: Callable) -> None:
    """Compare the quadrature estimate with the closed form log N(x; b, wwᵀ + σ²I)."""
    rng = np.random.default_rng(102)
    for dim in (1, 2, 3):
        w, b, sigma = _random_model(rng, dim)
        covariance = np.outer(w, w) + sigma**2 * np.eye(dim)
        x = rng.multivariate_normal(b, covariance)
        expected = stats.multivariate_normal(b, covariance).logpdf(x)
        assert_close(f"log_marginal_quadrature (D={dim})", log_marginal(x, w, b, sigma), expected,
                     rtol=1e-6, atol=1e-6, hint="Integrate exp(log_joint) over z, then take the log.")
    passed("log_marginal_quadrature")


@exercise_check
def check_ancestral_sample(sample: Callable) -> None:
    """Check shapes, reproducibility and the first two moments of the samples (5 standard errors)."""
    w, b, sigma, n = np.array([1.5, -0.5, 0.8]), np.array([0.2, 1.0, -1.0]), 0.4, 20_000
    z, x = sample(n, w, b, sigma, np.random.default_rng(7))
    z, x = np.asarray(z), np.asarray(x)
    if z.shape != (n,) or x.shape != (n, 3):
        raise ExerciseCheckFailed(f"ancestral_sample: expected shapes {(n,)} and {(n, 3)}, got {z.shape} and {x.shape}")
    z_again, _ = sample(n, w, b, sigma, np.random.default_rng(7))
    if not np.array_equal(z, np.asarray(z_again)):
        raise ExerciseCheckFailed("ancestral_sample: draw every random number from the `rng` argument")
    standard_error = 1 / np.sqrt(n)
    assert_close("mean of z", z.mean(), 0.0, rtol=0, atol=5 * standard_error)
    assert_close("variance of z", z.var(), 1.0, rtol=0, atol=5 * np.sqrt(2) * standard_error)
    residual = x - (z[:, None] * w + b)
    assert_close("std of x − (w z + b)", residual.std(axis=0), np.full(3, sigma), rtol=0,
                 atol=5 * sigma * standard_error, hint="x | z has standard deviation σ around w z + b.")
    assert_close("correlation of the noise with z", residual.T @ z / n / sigma, np.zeros(3), rtol=0,
                 atol=5 * standard_error, hint="Draw x from p(x | z) for *the same* z you return.")
    passed("ancestral_sample")
