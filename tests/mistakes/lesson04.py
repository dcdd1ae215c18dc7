"""Lesson 4: the Gaussian KL (derived), the reparametrization gradient."""
from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson04

GAUSSIAN_KL = Exercise("4.1", lesson04.check_gaussian_kl, wrong=(
    Answer("logvar as log σ", lambda mu, lv: -0.5 * (1 + 2 * lv - mu**2 - torch.exp(2 * lv)).sum(-1), "log σ"),
    Answer("σ for σ²", lambda mu, lv: -0.5 * (1 + lv - mu**2 - torch.exp(lv / 2)).sum(-1), "σ in place of σ²"),
    Answer("no 1", lambda mu, lv: -0.5 * (lv - mu**2 - torch.exp(lv)).sum(-1), "without the 1"),
    Answer("mean over latents", lambda mu, lv: -0.5 * (1 + lv - mu**2 - torch.exp(lv)).mean(-1), "mean over latent"),
    Answer("reversed KL", lambda mu, lv: kl_divergence(Normal(torch.zeros_like(mu), 1.0),
                                                      Normal(mu, torch.exp(lv / 2))).sum(-1), "reversed"),
    Answer("sums the batch too", lambda mu, lv: -0.5 * (1 + lv - mu**2 - torch.exp(lv)).sum(), "batch too"),
    Answer("wrong sign", lambda mu, lv: 0.5 * (1 + lv - mu**2 - torch.exp(lv)).sum(-1), "wrong sign"),
    Answer("no ½", lambda mu, lv: -(1 + lv - mu**2 - torch.exp(lv)).sum(-1), "times the right one"),
    Answer("E_q[z²] taken as μ² (σ² left out of the second moment)",
           lambda mu, lv: 0.5 * (mu**2 - 1 - lv).sum(-1), "Derive each dimension's KL"),
), correct=(
    Answer("torch.distributions",
           lambda mu, lv: kl_divergence(Normal(mu, torch.exp(0.5 * lv)), Normal(0.0, 1.0)).sum(-1)),
    Answer("½ Σ (σ² + μ² − 1 − log σ²)", lambda mu, lv: 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).sum(dim=1)),
))

def _gradient(f, mu, log_sigma, n, generator, *, sigma_of=torch.exp, reduce="mean", detach_sigma=False):
    epsilon = torch.randn(n, generator=generator, dtype=mu.dtype)
    sigma = sigma_of(log_sigma)
    if detach_sigma:
        sigma = sigma.detach() + 0 * log_sigma
    values = f(mu + sigma * epsilon)
    objective = values.mean() if reduce == "mean" else values.sum()
    return torch.autograd.grad(objective, (mu, log_sigma))


def _own_seed(f, mu, log_sigma, n, generator):
    return _gradient(f, mu, log_sigma, n, torch.Generator().manual_seed(0))


def _score_function(f, mu, log_sigma, n, generator):
    with torch.no_grad():
        z = mu + torch.exp(log_sigma) * torch.randn(n, generator=generator, dtype=mu.dtype)
    log_q = Normal(mu, torch.exp(log_sigma)).log_prob(z)
    return torch.autograd.grad((f(z) * log_q).mean(), (mu, log_sigma))


REPARAM_GRADIENT = Exercise("4.2", lesson04.check_reparam_gradient, wrong=(
    Answer("σ = log_sigma", lambda *a: _gradient(*a, sigma_of=lambda s: s), ""),
    Answer("σ² for σ", lambda *a: _gradient(*a, sigma_of=lambda s: torch.exp(2 * s)), ""),
    Answer("sum over samples", lambda *a: _gradient(*a, reduce="sum"), ""),
    Answer("σ detached", lambda *a: _gradient(*a, detach_sigma=True), "log_sigma"),
    Answer("its own seed", _own_seed, "seed"),
    Answer("score function without a baseline, f not differentiated (wrong sign convention)",
           lambda f, mu, ls, n, g: tuple(-v for v in _score_function(f, mu, ls, n, g)), ""),
    Answer("derivative with respect to σ", lambda f, mu, ls, n, g: (lambda gm, gl: (gm, gl / torch.exp(ls)))(
        *_gradient(f, mu, ls, n, g)), "with respect to σ instead of log σ"),
    Answer(".backward() on mu itself, returning mu.grad (gradients pile up across calls)",
           lambda f, mu, ls, n, g: _accumulating_gradient(f, mu, ls, n, g), "pile up"),
), correct=(
    Answer("Normal(0, 1) noise via .sample-free randn and sum/n", lambda f, mu, ls, n, g: torch.autograd.grad(
        f(mu + ls.exp() * torch.randn(n, generator=g, dtype=mu.dtype)).sum() / n, [mu, ls])),
    Answer("backward() then .grad", lambda f, mu, ls, n, g: _backward_gradient(f, mu, ls, n, g)),
    Answer("clears mu.grad, then backward() and .grad", lambda f, mu, ls, n, g: _cleared_backward_gradient(
        f, mu, ls, n, g)),
))


def _cleared_backward_gradient(f, mu, log_sigma, n, generator):
    mu.grad, log_sigma.grad = None, None
    f(mu + torch.exp(log_sigma) * torch.randn(n, generator=generator, dtype=mu.dtype)).mean().backward()
    return mu.grad.clone(), log_sigma.grad.clone()


def _accumulating_gradient(f, mu, log_sigma, n, generator):
    f(mu + torch.exp(log_sigma) * torch.randn(n, generator=generator, dtype=mu.dtype)).mean().backward()
    return mu.grad.clone(), log_sigma.grad.clone()


def _backward_gradient(f, mu, log_sigma, n, generator):
    mu_leaf, log_sigma_leaf = mu.detach().requires_grad_(), log_sigma.detach().requires_grad_()
    f(mu_leaf + torch.exp(log_sigma_leaf) * torch.randn(n, generator=generator, dtype=mu.dtype)).mean().backward()
    return mu_leaf.grad, log_sigma_leaf.grad


EXERCISES = (GAUSSIAN_KL, REPARAM_GRADIENT)
