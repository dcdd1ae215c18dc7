"""Self-checks of lesson 1 (latent variable models). References: scipy.stats closed forms and the moments of
the model's samples."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed, returned

# Statistical checks allow 6 standard errors: under the normal approximation a correct answer fails one such
# test with probability 2e-9, so a check with fewer than 500 of them refuses a correct answer with
# probability < 1e-6.
STANDARD_ERRORS = 6.0
# A Kolmogorov–Smirnov p-value is exact: a correct sampler is refused with probability 1e-7 per test.
NORMALITY_P_VALUE = 1e-7


def _random_model(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    return rng.normal(size=dim), rng.normal(size=dim), float(rng.uniform(0.3, 1.5))


@exercise_check
def check_log_joint(log_joint: Callable) -> None:
    """Against scipy's Gaussian log-densities for D ∈ {1, 2, 5}, small and large σ, and a single z."""
    rng = np.random.default_rng(101)
    for dim, n_latents in ((1, 7), (2, 1), (5, 9), (3, 4)):
        w, b, sigma = _random_model(rng, dim)
        if dim == 3:
            sigma = 0.05
        x, z = rng.normal(size=dim), rng.normal(size=n_latents)
        log_prior = stats.norm.logpdf(z)
        squared = ((x - (z[:, None] * w + b)) ** 2).sum(1)
        log_likelihood = np.array([stats.multivariate_normal(w * zi + b, sigma**2 * np.eye(dim)).logpdf(x)
                                   for zi in z])
        normaliser = -0.5 * dim * np.log(2 * np.pi * sigma**2)
        mistakes = {
            "without the prior term log N(z; 0, 1)": log_likelihood,
            "with σ in place of σ² in the normaliser −(D/2)·log(2πσ²)":
                log_likelihood + log_prior - normaliser - 0.5 * dim * np.log(2 * np.pi * sigma),
            "with σ in place of σ² in the exponent −‖x − (w z + b)‖² / (2σ²)":
                log_likelihood + log_prior + squared / (2 * sigma**2) - squared / (2 * sigma),
            "with σ in place of σ² (in the normaliser and in the exponent)":
                log_likelihood + log_prior - normaliser - 0.5 * dim * np.log(2 * np.pi * sigma)
                + squared / (2 * sigma**2) - squared / (2 * sigma),
            "without the ½ in the exponent −‖x − (w z + b)‖² / (2σ²)":
                log_likelihood + log_prior - squared / (2 * sigma**2),
            "with the normaliser counted once instead of D times (−½·log(2πσ²))":
                log_likelihood + log_prior - normaliser - 0.5 * np.log(2 * np.pi * sigma**2),
            "for p(x, z) instead of log p(x, z)": np.exp(log_likelihood + log_prior),
        }
        values = "1 value" if n_latents == 1 else f"{n_latents} values"
        assert_close(f"log_joint (D={dim}, σ={sigma:.2g}, {values} of z)", log_joint(x, z, w, b, sigma),
                     log_likelihood + log_prior, rtol=1e-8, atol=1e-8, mistakes=mistakes,
                     hint="log p(x, z) = log N(x; w z + b, σ² I) + log N(z; 0, 1), one value per z.")
    passed("log_joint")


# An integral short of log p(x) by more than this many nats did not integrate p(x, z) over its bump at all: a range
# that misses part of the bump costs a few nats; the integral of log p(x, z) is off by tens or hundreds.
FAR_BELOW_NATS = 10.0


def _quadrature_hint(got: object, log_evidence: float, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                     sigma: float) -> str:
    """What an integral off by more than rounding usually got wrong, with where the integrand's mass lies: its
    peak is the posterior N(m, s²) of the 1-D latent, m = s²·wᵀ(x − b)/σ², s² = 1 / (1 + wᵀw/σ²)."""
    variance = 1.0 / (1.0 + w @ w / sigma**2)
    mean, spread = variance * (w @ (x - b)) / sigma**2, np.sqrt(variance)
    where = (f"Here the integrand is a bump centred at z ≈ {mean:.2f} with width (standard deviation) ≈ "
             f"{spread:.2g}")
    advice = ("sample it on a grid whose spacing is well below that width (or let scipy.integrate.quad choose), "
              "then take the log of the integral.")
    try:
        too_high = float(np.asarray(got, dtype=float)) > log_evidence
    except (TypeError, ValueError):
        return f"Integrate p(x, z) = exp(log_joint(x, z)) over z, then take the log. {where}."
    if too_high:
        return (f"Your value is too high. A range too narrow can only lower it; a grid too coarse for the integrand's "
                f"peak (its spacing, not its range) can raise it, and so can an integrand other than p(x, z) = "
                f"p(x | z)·p(z). {where}: {advice}")
    if log_evidence - float(np.asarray(got, dtype=float)) > FAR_BELOW_NATS:
        return (f"Your value is far too low ({log_evidence - float(np.asarray(got, dtype=float)):.0f} nats below log "
                f"p(x)): the integrand must be p(x, z) = exp(log_joint(x, z)), not log p(x, z), and its range must "
                f"cover the bump. {where}: {advice}")
    return (f"Your value is too low: part of the integral is missing. {where}: the range must cover it by several "
            "widths on each side, and a grid's spacing must be well below that width (or let scipy.integrate.quad "
            "choose the points); then take the log of the integral.")


@exercise_check
def check_log_marginal_quadrature(log_marginal: Callable) -> None:
    """Against the closed form log N(x; b, wwᵀ + σ²I) for D ∈ {1, 2, 3}, including a peaked posterior and an x
    far from b."""
    rng = np.random.default_rng(102)
    for dim, sigma, shift in ((1, 0.8, 0.0), (2, 0.2, 0.0), (3, 0.6, 2.5)):
        w, b, _ = _random_model(rng, dim)
        covariance = np.outer(w, w) + sigma**2 * np.eye(dim)
        x = rng.multivariate_normal(b, covariance) + shift * w
        log_evidence = stats.multivariate_normal(b, covariance).logpdf(x)
        got = log_marginal(x, w, b, sigma)
        assert_close(f"log_marginal_quadrature (D={dim}, σ={sigma})", got, log_evidence, rtol=1e-6, atol=1e-6,
                     mistakes={"for p(x) itself: take the log of the integral": np.exp(log_evidence)},
                     hint=_quadrature_hint(got, log_evidence, x, w, b, sigma))
    passed("log_marginal_quadrature")


def _check_sample_moments(z: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float) -> None:
    """Moments of z ~ N(0, 1) and of the noise x − (w z + b) ~ N(0, σ² I), independent of z and across
    coordinates, each within STANDARD_ERRORS standard errors."""
    n, dim = x.shape
    error = STANDARD_ERRORS / np.sqrt(n)
    assert_close("mean of z", z.mean(), 0.0, rtol=0, atol=error, hint="z ~ N(0, 1): use rng.standard_normal.")
    assert_close("variance of z", z.var(), 1.0, rtol=0, atol=np.sqrt(2) * error,
                 hint="z ~ N(0, 1): use rng.standard_normal.")
    if stats.kstest(z, "norm").pvalue < NORMALITY_P_VALUE:
        raise ExerciseCheckFailed("ancestral_sample: z is not standard normal (Kolmogorov–Smirnov test against "
                                  "N(0, 1)); draw it with rng.standard_normal.")
    noise = x - (z[:, None] * w + b)
    assert_close("mean of x − (w z + b)", noise.mean(0), np.zeros(dim), rtol=0, atol=sigma * error,
                 mistakes={"for x drawn without the offset b": -b},
                 hint="x | z is centred on w z + b, for the same z you return.")
    assert_close("correlation of the noise x − (w z + b) with z", noise.T @ z / n / sigma, np.zeros(dim), rtol=0,
                 atol=error, hint="Draw x from p(x | z) for *the same* z you return.")
    assert_close("standard deviation of x − (w z + b)", noise.std(0), np.full(dim, sigma), rtol=0,
                 atol=sigma * error / np.sqrt(2),
                 mistakes={"for x drawn without noise": np.zeros(dim),
                           "for noise with standard deviation σ²": np.full(dim, sigma**2),
                           "for noise with standard deviation √σ": np.full(dim, np.sqrt(sigma))},
                 hint="x | z has standard deviation σ around w z + b.")
    if stats.kstest(noise.ravel() / sigma, "norm").pvalue < NORMALITY_P_VALUE:
        raise ExerciseCheckFailed("ancestral_sample: the noise x − (w z + b) is not Gaussian (Kolmogorov–Smirnov "
                                  "test); draw it with rng.standard_normal or rng.normal.")
    correlation = np.corrcoef(noise.T)[np.triu_indices(dim, 1)]
    assert_close("correlation of the noise between coordinates", correlation, np.zeros(dim * (dim - 1) // 2),
                 rtol=0, atol=error, mistakes={"for a single noise draw shared by every coordinate":
                                               np.ones_like(correlation)},
                 hint="Each coordinate of x gets its own noise: draw an (n, D) array.")


@exercise_check
def check_ancestral_sample(sample: Callable) -> None:
    """Shapes (n = 1 included), reproducibility with the `rng` argument, and the first two moments of z and of
    the noise (mean, standard deviation, independence from z and across coordinates) for two models."""
    z_one, x_one = (np.asarray(v) for v in returned("ancestral_sample", sample(
        1, np.ones(2), np.zeros(2), 0.5, np.random.default_rng(0))))
    if z_one.shape != (1,) or x_one.shape != (1, 2):
        raise ExerciseCheckFailed(f"ancestral_sample with n=1: expected shapes (1,) and (1, 2), got {z_one.shape} "
                                  f"and {x_one.shape}")
    n = 20_000
    for w, b, sigma in ((np.array([1.5, -0.5, 0.8]), np.array([0.2, 1.0, -1.0]), 0.4),
                        (np.array([0.3, 2.0]), np.array([-3.0, 0.5]), 1.3)):
        z, x = (np.asarray(v, dtype=float) for v in sample(n, w, b, sigma, np.random.default_rng(7)))
        if z.shape != (n,) or x.shape != (n, len(b)):
            raise ExerciseCheckFailed(f"ancestral_sample: expected shapes {(n,)} and {(n, len(b))}, got {z.shape} "
                                      f"and {x.shape}")
        z_again, x_again = (np.asarray(v) for v in sample(n, w, b, sigma, np.random.default_rng(7)))
        if not (np.array_equal(z, z_again) and np.array_equal(x, x_again)):
            raise ExerciseCheckFailed("ancestral_sample: two calls with the same seed gave different samples; draw "
                                      "every random number from the `rng` argument")
        _check_sample_moments(z, x, w, b, sigma)
    passed("ancestral_sample")
