"""Lesson 1's self-checks accept a correct answer and reject typical mistakes."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from utils.checks import ExerciseCheckFailed
from utils.checks.lesson01 import check_ancestral_sample, check_log_joint, check_log_marginal_quadrature


def reference_log_joint(x, z, w, b, sigma):
    return np.array([stats.norm.logpdf(x, w * zi + b, sigma).sum() + stats.norm.logpdf(zi) for zi in np.atleast_1d(z)])


def test_log_joint_check_accepts_reference_and_rejects_missing_prior() -> None:
    check_log_joint(reference_log_joint)
    with pytest.raises(ExerciseCheckFailed, match="log_joint"):
        check_log_joint(lambda x, z, w, b, s: reference_log_joint(x, z, w, b, s) - stats.norm.logpdf(z))


def test_quadrature_check_rejects_forgotten_log() -> None:
    exact = lambda x, w, b, s: stats.multivariate_normal(b, np.outer(w, w) + s**2 * np.eye(len(b))).logpdf(x)
    check_log_marginal_quadrature(exact)
    with pytest.raises(ExerciseCheckFailed):
        check_log_marginal_quadrature(lambda x, w, b, s: np.exp(exact(x, w, b, s)))


def good_sampler(n, w, b, sigma, rng):
    z = rng.standard_normal(n)
    return z, z[:, None] * w + b + sigma * rng.standard_normal((n, len(b)))


def test_sampling_check_rejects_independent_z_and_wrong_noise() -> None:
    check_ancestral_sample(good_sampler)
    with pytest.raises(ExerciseCheckFailed, match=r"x − \(w z \+ b\)|same z"):
        check_ancestral_sample(lambda n, w, b, s, rng: (good_sampler(n, w, b, s, rng)[0],
                                                        good_sampler(n, w, b, s, rng)[1]))
    with pytest.raises(ExerciseCheckFailed, match="std"):
        check_ancestral_sample(lambda n, w, b, s, rng: good_sampler(n, w, b, s**2, rng))
    with pytest.raises(ExerciseCheckFailed, match="rng"):
        check_ancestral_sample(lambda n, w, b, s, _: good_sampler(n, w, b, s, np.random.default_rng()))
