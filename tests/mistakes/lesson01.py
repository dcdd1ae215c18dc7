"""Lesson 1: log p(x, z), log p(x) by quadrature, ancestral sampling."""
from __future__ import annotations

import numpy as np
from scipy import integrate, special, stats

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson01


def _log_joint(x, z, w, b, sigma, *, prior=1.0, scale=None, half=0.5, normaliser_dims=None):
    z = np.atleast_1d(z)
    dim = len(x) if normaliser_dims is None else normaliser_dims
    variance = sigma**2 if scale is None else scale
    squared = ((x - (z[:, None] * w + b)) ** 2).sum(1)
    return (-half * squared / variance - 0.5 * dim * np.log(2 * np.pi * (sigma**2 if scale is None else sigma))
            + prior * stats.norm.logpdf(z))


def _log_joint_loops(x, z, w, b, sigma):
    values = []
    for zi in np.atleast_1d(z):
        value = stats.norm.logpdf(zi)
        for d in range(len(x)):
            value += stats.norm.logpdf(x[d], loc=w[d] * zi + b[d], scale=sigma)
        values.append(value)
    return np.array(values)


def _log_joint_without_return(x, z, w, b, sigma):
    log_likelihood = stats.norm.logpdf(x[None, :], np.atleast_1d(z)[:, None] * w + b, sigma).sum(1)
    log_likelihood + stats.norm.logpdf(np.atleast_1d(z))  # noqa: B018  (the slip: the value is never returned)


LOG_JOINT = Exercise("1.1", lesson01.check_log_joint, wrong=(
    Answer("forgets the prior", lambda x, z, w, b, s: _log_joint(x, z, w, b, s, prior=0.0), "without the prior"),
    Answer("σ for σ² in the normaliser and exponent", lambda x, z, w, b, s: _log_joint(x, z, w, b, s, scale=s), ""),
    Answer("no ½ in the exponent", lambda x, z, w, b, s: _log_joint(x, z, w, b, s, half=1.0), "without the ½"),
    Answer("normaliser once, not D times", lambda x, z, w, b, s: _log_joint(x, z, w, b, s, normaliser_dims=1),
           "counted once"),
    Answer("returns the density", lambda x, z, w, b, s: np.exp(_log_joint(x, z, w, b, s)), "instead of log"),
    Answer("sums over z instead of returning one value per z",
           lambda x, z, w, b, s: np.array([_log_joint(x, z, w, b, s).sum()]), "shape"),
    Answer("prior with variance σ²", lambda x, z, w, b, s: _log_joint(x, z, w, b, s, prior=0.0)
           + stats.norm.logpdf(np.atleast_1d(z), scale=s), ""),
    Answer("mean over dimensions instead of sum", lambda x, z, w, b, s: np.array(
        [stats.norm.logpdf(x, w * zi + b, s).mean() + stats.norm.logpdf(zi) for zi in np.atleast_1d(z)]), ""),
    Answer("computes the value but forgets the return line", _log_joint_without_return, "returned None"),
), correct=(
    Answer("scipy with loops", _log_joint_loops),
    Answer("multivariate_normal per z", lambda x, z, w, b, s: np.array(
        [stats.multivariate_normal(w * zi + b, s**2).logpdf(x) + stats.norm.logpdf(zi) for zi in np.atleast_1d(z)])),
))


def _quadrature(x, w, b, sigma, *, take_log=True, low=-10.0, high=10.0, integrand_log=False):
    def integrand(z):
        value = _log_joint(x, z, w, b, sigma)[0]
        return value if integrand_log else np.exp(value)
    value, _ = integrate.quad(integrand, low, high, limit=200, epsabs=0.0, epsrel=1e-10)
    return float(np.log(value)) if take_log else value


def _trapezoid(x, w, b, sigma):
    z = np.linspace(-12, 12, 40_001)
    log_values = _log_joint(x, z, w, b, sigma)
    return float(special.logsumexp(log_values) + np.log(z[1] - z[0]))


def _coarse_trapezoid(x, w, b, sigma, points):
    z = np.linspace(-10, 10, points)
    return float(np.log(np.trapezoid(np.exp(_log_joint(x, z, w, b, sigma)), z)))


LOG_MARGINAL = Exercise("1.2", lesson01.check_log_marginal_quadrature, wrong=(
    Answer("forgets the log", lambda x, w, b, s: _quadrature(x, w, b, s, take_log=False), "p(x) itself"),
    Answer("integrates log p(x, z)", lambda x, w, b, s: _quadrature(x, w, b, s, take_log=False, integrand_log=True),
           "not log p(x, z)"),
    Answer("integrates over [−2, 2] only", lambda x, w, b, s: _quadrature(x, w, b, s, low=-2.0, high=2.0)),
    Answer("forgets the prior in the integrand", lambda x, w, b, s: float(np.log(integrate.quad(
        lambda z: np.exp(_log_joint(x, z, w, b, s, prior=0.0)[0]), -10, 10, limit=200)[0]))),
    Answer("logsumexp without the cell width", lambda x, w, b, s: _trapezoid(x, w, b, s)
           - np.log(24 / 40_000)),
    Answer("the log-joint at z = 0 (no integral)", lambda x, w, b, s: float(_log_joint(x, 0.0, w, b, s)[0])),
    Answer("the integrand's maximum (Laplace without width)", lambda x, w, b, s: float(
        _log_joint(x, np.linspace(-10, 10, 20_001), w, b, s).max())),
    Answer("a trapezoid on a coarse grid (41 points on [−10, 10])",
           lambda x, w, b, s: _coarse_trapezoid(x, w, b, s, 41), "spacing"),
    Answer("quad over [−1, 1] only", lambda x, w, b, s: _quadrature(x, w, b, s, low=-1.0, high=1.0), "too low"),
), correct=(
    Answer("logsumexp on a fine grid", _trapezoid),
    Answer("scipy quad on the whole line", lambda x, w, b, s: float(np.log(integrate.quad(
        lambda z: np.exp(_log_joint(x, z, w, b, s)[0]), -np.inf, np.inf, epsabs=0, epsrel=1e-10, limit=400)[0]))),
))


def _sample(n, w, b, sigma, rng, *, offset=True, shared_noise=False, noise_scale=None, reuse_z=True,
            uniform=False):
    z = rng.uniform(-np.sqrt(3), np.sqrt(3), n) if uniform else rng.standard_normal(n)
    noise = rng.standard_normal((n, 1)) if shared_noise else rng.standard_normal((n, len(b)))
    z_used = z if reuse_z else rng.standard_normal(n)
    scale = sigma if noise_scale is None else noise_scale
    return z, z_used[:, None] * w + (b if offset else 0.0) + scale * noise


ANCESTRAL = Exercise("1.3", lesson01.check_ancestral_sample, wrong=(
    Answer("forgets the offset b", lambda n, w, b, s, rng: _sample(n, w, b, s, rng, offset=False),
           "without the offset"),
    Answer("one noise draw for every coordinate", lambda n, w, b, s, rng: _sample(n, w, b, s, rng, shared_noise=True),
           "shared by every coordinate"),
    Answer("noise with standard deviation σ²", lambda n, w, b, s, rng: _sample(n, w, b, s, rng, noise_scale=s**2),
           "standard deviation σ²"),
    Answer("returns a z other than the one x was drawn from",
           lambda n, w, b, s, rng: _sample(n, w, b, s, rng, reuse_z=False), "*the same* z"),
    Answer("uses NumPy's global generator", lambda n, w, b, s, rng: _sample(n, w, b, s, np.random.default_rng()),
           "rng"),
    Answer("no noise at all", lambda n, w, b, s, rng: _sample(n, w, b, s, rng, noise_scale=0.0), ""),
    Answer("x of shape (D, n)", lambda n, w, b, s, rng: (lambda z, x: (z, x.T))(*_sample(n, w, b, s, rng)), "shape"),
    Answer("z uniform with variance 1",
           lambda n, w, b, s, rng: _sample(n, w, b, s, rng, uniform=True), ""),
), correct=(
    Answer("vectorised with rng.normal", lambda n, w, b, s, rng: (lambda z: (
        z, rng.normal(np.outer(z, w) + b, s)))(rng.normal(0.0, 1.0, n))),
    Answer("noise drawn before z", lambda n, w, b, s, rng: (lambda noise, z: (z, b + np.outer(z, w) + s * noise))(
        rng.standard_normal((n, len(b))), rng.standard_normal(n))),
))

EXERCISES = (LOG_JOINT, LOG_MARGINAL, ANCESTRAL)
