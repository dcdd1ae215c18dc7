"""Lesson 3: a Monte Carlo ELBO estimate, ELBO ascent with the reparametrization trick."""
from __future__ import annotations

import math

import torch
from torch.distributions import Independent, Normal

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson03


def _elbo(log_joint, x, mu, log_std, n_samples, generator, *, detach_z=False, log_q=True, std_of=torch.exp,
          reduce="mean", sum_log_q=True):
    epsilon = torch.randn(n_samples, mu.shape[-1], generator=generator, dtype=mu.dtype)
    z = mu + std_of(log_std) * epsilon
    if detach_z:
        z = z.detach()
    terms = log_joint(x, z)
    if log_q:
        log_q_terms = Normal(mu, std_of(log_std)).log_prob(z)
        terms = terms - (log_q_terms.sum(-1) if sum_log_q else log_q_terms)
    return terms.mean() if reduce == "mean" else terms.sum()


def _elbo_analytic_entropy(log_joint, x, mu, log_std, n_samples, generator):
    z = mu + torch.exp(log_std) * torch.randn(n_samples, mu.shape[-1], generator=generator, dtype=mu.dtype)
    entropy = (0.5 * (1 + math.log(2 * math.pi)) + log_std).sum()
    return log_joint(x, z).mean() + entropy


def _elbo_global_seed(log_joint, x, mu, log_std, n_samples, generator):
    torch.manual_seed(0)
    return _elbo(log_joint, x, mu, log_std, n_samples, None)


ELBO_ESTIMATE = Exercise("3.1", lesson03.check_elbo_estimate, wrong=(
    Answer("forgets − log q", lambda *a: _elbo(*a, log_q=False), "without the − log q(z)"),
    Answer("detached z", lambda *a: _elbo(*a, detach_z=True), "carries no gradient"),
    Answer("log_std used as σ", lambda *a: _elbo(*a, std_of=lambda s: s.abs()), ""),
    Answer("σ² for σ", lambda *a: _elbo(*a, std_of=lambda s: torch.exp(2 * s)), ""),
    Answer("sum over samples", lambda *a: _elbo(*a, reduce="sum"), ""),
    Answer("log q not summed over dimensions", lambda *a: _elbo(*a, sum_log_q=False), ""),
    Answer("its own seed", _elbo_global_seed, "seed"),
    Answer("q.sample() (no gradient path)", lambda log_joint, x, mu, log_std, n, g: (lambda q: (
        log_joint(x, q.sample((n,))) - q.log_prob(q.sample((n,)))).mean())(
        Independent(Normal(mu, torch.exp(log_std)), 1)), "q.sample()"),
), correct=(
    Answer("analytic entropy", _elbo_analytic_entropy),
    Answer("Independent(Normal) log_prob", lambda log_joint, x, mu, log_std, n, g: (lambda z: (
        log_joint(x, z) - Independent(Normal(mu, torch.exp(log_std)), 1).log_prob(z)).mean())(
        mu + torch.exp(log_std) * torch.randn(n, mu.shape[-1], generator=g, dtype=mu.dtype))),
    Answer("log q written out", lambda log_joint, x, mu, log_std, n, g: (lambda eps: (
        log_joint(x, mu + torch.exp(log_std) * eps)
        - (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)).mean())(
        torch.randn(n, mu.shape[-1], generator=g, dtype=mu.dtype))),
))


def _reference_elbo(log_joint, x, mu, log_std, n_samples, generator):
    return _elbo(log_joint, x, mu, log_std, n_samples, generator)


def _ascent(log_joint, x, latent_dim, steps=1500, lr=0.05, n_samples=64, seed=0, *, zero_grad=True, sign=-1.0,
            record=1.0, estimate=_reference_elbo, lr_used=None, optimise_mu=True, history_steps=None,
            maximize=False, same_noise=False):
    generator = torch.Generator().manual_seed(seed)
    mu = torch.zeros(latent_dim, dtype=torch.float64, requires_grad=True)
    log_std = torch.zeros(latent_dim, dtype=torch.float64, requires_grad=True)
    parameters = [mu, log_std] if optimise_mu else [log_std]
    optimizer = torch.optim.Adam(parameters, lr=lr if lr_used is None else lr_used, maximize=maximize)
    history = []
    for _ in range(steps if history_steps is None else history_steps):
        if zero_grad:
            optimizer.zero_grad()
        if same_noise:  # the slip: a fresh generator, hence the same ε, at every step
            generator = torch.Generator().manual_seed(seed)
        elbo = estimate(log_joint, x, mu, log_std, n_samples, generator)
        (sign * elbo).backward()
        optimizer.step()
        history.append(record * elbo.item())
    return mu.detach(), log_std.detach(), history


MAXIMIZE = Exercise("3.2", lesson03.check_maximize_elbo, wrong=(
    Answer("no zero_grad", lambda *a, **k: _ascent(*a, **k, zero_grad=False), "zero_grad"),
    Answer("minimises the ELBO", lambda *a, **k: _ascent(*a, **k, sign=1.0), "KL"),
    Answer("records the loss", lambda *a, **k: _ascent(*a, **k, record=-1.0), "history of −ELBO"),
    Answer("detached z in the estimate", lambda *a, **k: _ascent(
        *a, **k, estimate=lambda *b: _elbo(*b, detach_z=True)), "KL"),
    Answer("ignores lr (1e-3)", lambda *a, **k: _ascent(*a, **k, lr_used=1e-3), "KL"),
    Answer("only log_std optimised", lambda *a, **k: _ascent(*a, **k, optimise_mu=False), "KL"),
    Answer("one step short", lambda *a, **k: _ascent(*a, **k, history_steps=k["steps"] - 1), "one per step"),
    Answer("returns log σ² for log σ", lambda *a, **k: (lambda m, s, h: (m, 2 * s, h))(*_ascent(*a, **k)), "KL"),
    Answer("history reversed", lambda *a, **k: (lambda m, s, h: (m, s, h[::-1]))(*_ascent(*a, **k)), ""),
    Answer("a fresh generator at every step (the same ε each time)",
           lambda *a, **k: _ascent(*a, **k, same_noise=True), "same noise"),
    # The n_samples argument varied: a loop that always draws the default 64 (it still converges).
    Answer("ignores n_samples (always 64)", lambda *a, **k: _ascent(*a, **{**k, "n_samples": 64}), "n_samples"),
    Answer("one sample per step", lambda *a, **k: _ascent(*a, **{**k, "n_samples": 1}), "n_samples"),
), correct=(
    Answer("Adam(maximize=True) on the ELBO", lambda *a, **k: _ascent(*a, **k, sign=1.0, maximize=True)),
    Answer("analytic-entropy estimate", lambda *a, **k: _ascent(*a, **k, estimate=_elbo_analytic_entropy)),
    Answer("zero_grad after the step", lambda *a, **k: (lambda: _ascent_zero_after(*a, **k))()),
))


def _ascent_zero_after(log_joint, x, latent_dim, steps=1500, lr=0.05, n_samples=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    parameters = torch.zeros(2, latent_dim, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([parameters], lr=lr)
    history = []
    for _ in range(steps):
        elbo = _elbo_analytic_entropy(log_joint, x, parameters[0], parameters[1], n_samples, generator)
        (-elbo).backward()
        optimizer.step()
        optimizer.zero_grad()
        history.append(elbo.item())
    return parameters[0].detach(), parameters[1].detach(), history


EXERCISES = (ELBO_ESTIMATE, MAXIMIZE)
