"""The ELBO explorer of lesson 3: a 1-D Gaussian q(z) against the exact posterior of a 1-D-latent
linear-Gaussian model. The widget's callback is :func:`draw_elbo_explorer`, a plain function."""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
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


def gaussian_kl(mean_q: float, std_q: float, mean_p: float, std_p: float) -> float:
    """KL(N(mean_q, std_q²) ‖ N(mean_p, std_p²))."""
    return float(np.log(std_p / std_q) + (std_q**2 + (mean_q - mean_p) ** 2) / (2 * std_p**2) - 0.5)


def draw_elbo_explorer(model: LinearGaussian1D, x: np.ndarray, q_mean: float, q_log_std: float) -> dict[str, float]:
    """Plot q against the exact posterior, and bars of log p(x), the ELBO and the gap; return the numbers."""
    std = float(np.exp(q_log_std))
    post_mean, post_std = model.posterior(x)
    numbers = {"log p(x)": model.log_evidence(x), "ELBO": model.elbo(x, q_mean, std),
               "KL(q || p(z|x))": gaussian_kl(q_mean, std, post_mean, post_std)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    z = np.linspace(post_mean - 4, post_mean + 4, 400)
    left.plot(z, stats.norm.pdf(z, post_mean, post_std), "k", label="exact posterior p(z|x)")
    left.plot(z, stats.norm.pdf(z, q_mean, std), "C1", label="q(z)")
    left.set(xlabel="z", ylabel="density", title="q against the posterior")
    left.legend(fontsize=8)
    right.bar(["log p(x)", "ELBO"], [numbers["log p(x)"], numbers["ELBO"]], color=["k", "C1"])
    right.set_title(f"gap = KL = {numbers['KL(q || p(z|x))']:.3f}")
    right.set_ylim(min(numbers["ELBO"], numbers["log p(x)"]) - 1.0, max(0.0, numbers["log p(x)"] + 0.5))
    fig.tight_layout()
    plt.show()
    return numbers
