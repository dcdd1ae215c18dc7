"""Lesson 3's toy model in closed form: a 1-D latent z ~ N(0, 1) and x | z ~ N(w z + b, σ² I), whose evidence,
posterior and ELBO for a Gaussian q are all exact, so that the ELBO explorer can show the gap as a number."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class LinearGaussian1D:
    """z ~ N(0, 1), x | z ~ N(w z + b, σ² I) with x: (D,)."""

    w: np.ndarray
    b: np.ndarray
    sigma: float

    def log_evidence(self, x: np.ndarray) -> float:
        covariance = np.outer(self.w, self.w) + self.sigma**2 * np.eye(len(self.b))
        return float(stats.multivariate_normal(self.b, covariance).logpdf(x))

    def posterior(self, x: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of p(z | x)."""
        precision = 1.0 + self.w @ self.w / self.sigma**2
        return float(self.w @ (x - self.b) / self.sigma**2 / precision), float(np.sqrt(1.0 / precision))

    def elbo(self, x: np.ndarray, mean: float, std: float) -> float:
        """E_q[log p(x, z)] + H[q] for q = N(mean, std²), in closed form."""
        dim = len(self.b)
        residual = x - self.w * mean - self.b
        expected_log_likelihood = (-(residual @ residual + std**2 * self.w @ self.w) / (2 * self.sigma**2)
                                   - 0.5 * dim * np.log(2 * np.pi * self.sigma**2))
        expected_log_prior = -0.5 * (mean**2 + std**2) - 0.5 * np.log(2 * np.pi)
        entropy = 0.5 * np.log(2 * np.pi * np.e * std**2)
        return float(expected_log_likelihood + expected_log_prior + entropy)
