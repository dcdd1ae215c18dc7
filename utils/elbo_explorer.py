"""The ELBO explorer of lesson 3: a 1-D Gaussian q(z) against the exact posterior of a 1-D-latent
linear-Gaussian model (:class:`utils.toy_models.LinearGaussian1D`). The widget's callback is
:func:`draw_elbo_explorer`, a plain function that only draws and returns what it drew."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from utils.elbo_terms import gaussian_kl_terms
from utils.toy_models import LinearGaussian1D


def _kl(mean_q: float, std_q: float, mean_p: float, std_p: float) -> float:
    """KL(N(mean_q, std_q²) ‖ N(mean_p, std_p²)) by the course's one Gaussian KL."""
    def moments(mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(mean, dtype=torch.float64), torch.tensor(2.0 * np.log(std), dtype=torch.float64)
    return float(gaussian_kl_terms(*moments(mean_q, std_q), *moments(mean_p, std_p)))


def draw_elbo_explorer(model: LinearGaussian1D, x: np.ndarray, q_mean: float, q_log_std: float) -> dict[str, float]:
    """Plot q against the exact posterior, and bars of log p(x), the ELBO and the gap; return the numbers."""
    std = float(np.exp(q_log_std))
    post_mean, post_std = model.posterior(x)
    numbers = {"log p(x)": model.log_evidence(x), "ELBO": model.elbo(x, q_mean, std),
               "KL(q || p(z|x))": _kl(q_mean, std, post_mean, post_std)}
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
