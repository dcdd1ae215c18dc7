"""Lesson 2: log p(x, z) in torch, the exact posterior, normalising on a grid."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson02


def _log_joint(x, z, W, b, log_sigma, *, prior=1.0, sigma=None, reduce="sum"):
    scale = torch.exp(log_sigma) if sigma is None else sigma(log_sigma)
    likelihood = Normal(z @ W.T + b, scale).log_prob(x)
    prior_terms = Normal(0.0, 1.0).log_prob(z)
    if reduce == "mean":
        return likelihood.mean(-1) + prior * prior_terms.mean(-1)
    return likelihood.sum(-1) + prior * prior_terms.sum(-1)


def _detached(name):
    def log_joint(x, z, W, b, log_sigma):
        pieces = {"W": W, "b": b, "log_sigma": log_sigma}
        pieces[name] = pieces[name].detach()
        return _log_joint(x, z, pieces["W"], pieces["b"], pieces["log_sigma"])
    return log_joint


def _log_joint_by_hand(x, z, W, b, log_sigma):
    residual = x - torch.einsum("dk,sk->sd", W, z) - b
    dim_x, dim_z = W.shape
    return (-0.5 * residual.pow(2).sum(-1) / torch.exp(2 * log_sigma) - dim_x * log_sigma
            - 0.5 * (dim_x + dim_z) * math.log(2 * math.pi) - 0.5 * z.pow(2).sum(-1))


LOG_JOINT_TORCH = Exercise("2.1", lesson02.check_log_joint_torch, wrong=(
    Answer("forgets the prior", lambda *a: _log_joint(*a, prior=0.0), "without the prior"),
    Answer("log_sigma used as σ", lambda *a: _log_joint(*a, sigma=lambda s: s.abs()), "taken for σ itself"),
    Answer("log_sigma used as log σ²", lambda *a: _log_joint(*a, sigma=lambda s: torch.exp(0.5 * s)), "log σ²"),
    Answer("means over coordinates", lambda *a: _log_joint(*a, reduce="mean"), "mean over coordinates"),
    Answer("−log σ once, not D times", lambda x, z, W, b, s: _log_joint_by_hand(x, z, W, b, s)
           + (W.shape[0] - 1) * s, "once instead of D times"),
    Answer("detaches log_sigma", _detached("log_sigma"), "no gradient reaches log_sigma"),
    Answer("detaches W", _detached("W"), "no gradient reaches W"),
    Answer("goes through NumPy", lambda x, z, W, b, s: torch.tensor(
        _log_joint(x, z, W, b, s).detach().numpy()), "not differentiable"),
), correct=(
    Answer("by hand with einsum", _log_joint_by_hand),
    Answer("MultivariateNormal", lambda x, z, W, b, s: MultivariateNormal(
        z @ W.T + b, torch.exp(2 * s) * torch.eye(len(x), dtype=x.dtype)).log_prob(x)
        + MultivariateNormal(torch.zeros(z.shape[-1], dtype=z.dtype),
                             torch.eye(z.shape[-1], dtype=z.dtype)).log_prob(z)),
))


def _posterior(x, W, b, sigma, *, mean_of=lambda x, b: x - b, add=None, cov_scale=None, invert=True):
    M = W.T @ W + (sigma**2 if add is None else add) * np.eye(W.shape[1])
    scale = sigma**2 if cov_scale is None else cov_scale
    return np.linalg.solve(M, W.T @ mean_of(x, b)), scale * (np.linalg.inv(M) if invert else M)


POSTERIOR = Exercise("2.2", lesson02.check_posterior_params, wrong=(
    Answer("forgets b", lambda x, W, b, s: _posterior(x, W, b, s, mean_of=lambda x, b: x), "instead of x − b"),
    Answer("σ for σ² in M", lambda x, W, b, s: _posterior(x, W, b, s, add=s), "σ in place of σ²"),
    Answer("covariance without σ²", lambda x, W, b, s: _posterior(x, W, b, s, cov_scale=1.0), "without the factor σ²"),
    Answer("covariance σ M⁻¹", lambda x, W, b, s: _posterior(x, W, b, s, cov_scale=s), "σ M⁻¹"),
    Answer("covariance not inverted", lambda x, W, b, s: _posterior(x, W, b, s, invert=False), "not inverted"),
    Answer("least squares, no prior", lambda x, W, b, s: (np.linalg.lstsq(W, x - b, rcond=None)[0],
                                                          s**2 * np.linalg.pinv(W.T @ W)), "least squares"),
    Answer("prior covariance returned", lambda x, W, b, s: (_posterior(x, W, b, s)[0], np.eye(W.shape[1])), ""),
    Answer("mean of shape (d, 1)", lambda x, W, b, s: (_posterior(x, W, b, s)[0][:, None],
                                                       _posterior(x, W, b, s)[1]), "shape"),
), correct=(
    Answer("explicit inverse", lambda x, W, b, s: (lambda Minv: (Minv @ W.T @ (x - b), s**2 * Minv))(
        np.linalg.inv(W.T @ W + s**2 * np.eye(W.shape[1])))),
    Answer("Cholesky", lambda x, W, b, s: (lambda L: (
        np.linalg.solve(L.T, np.linalg.solve(L, W.T @ (x - b))),
        s**2 * np.linalg.solve(L.T, np.linalg.solve(L, np.eye(W.shape[1])))))(
        np.linalg.cholesky(W.T @ W + s**2 * np.eye(W.shape[1])))),
))


def _grid(values, cell, *, with_cell=True, stable=True, density=True):
    flat = values.flatten()
    log_sum = torch.logsumexp(flat, 0) if stable else torch.log(torch.exp(flat).sum())
    log_evidence = log_sum + (math.log(cell) if with_cell else 0.0)
    posterior = torch.exp(values - log_evidence)
    return log_evidence, posterior if density else posterior * cell


GRID = Exercise("2.3", lesson02.check_grid_posterior, wrong=(
    Answer("forgets the cell volume", lambda v, c: _grid(v, c, with_cell=False), "without the log of the cell"),
    Answer("exp then log (underflows)", lambda v, c: _grid(v, c, stable=False), "NaN or inf"),
    Answer("probabilities instead of a density", lambda v, c: _grid(v, c, density=False), "probabilities per node"),
    Answer("log-mean-exp", lambda v, c: (torch.logsumexp(v.flatten(), 0) - math.log(v.numel()),
                                         torch.exp(v - torch.logsumexp(v.flatten(), 0)) / c), "mean over nodes"),
    Answer("unnormalised posterior", lambda v, c: (_grid(v, c)[0], torch.exp(v)), ""),
    Answer("flattened posterior", lambda v, c: (_grid(v, c)[0], _grid(v, c)[1].flatten()), "shape"),
    Answer("max instead of logsumexp", lambda v, c: (v.max() + math.log(c), torch.exp(v - v.max() - math.log(c))), ""),
    Answer("softmax over one axis only", lambda v, c: (_grid(v, c)[0], torch.softmax(v, dim=0) / c), ""),
), correct=(
    Answer("softmax over all nodes", lambda v, c: (torch.logsumexp(v.flatten(), 0) + math.log(c),
                                                   torch.softmax(v.flatten(), 0).reshape(v.shape) / c)),
    Answer("shift by the maximum", lambda v, c: (lambda m: (lambda e: (e, torch.exp(v - e)))(
        m + torch.log(torch.exp(v - m).sum()) + math.log(c)))(v.max())),
))

EXERCISES = (LOG_JOINT_TORCH, POSTERIOR, GRID)
