"""Lesson 8: the KL between two diagonal Gaussians (the conditional ELBO's regulariser), best-of-k selection, the
swapped-condition test."""
from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson08


def _kl(mu_q, lv_q, mu_p, lv_p, *, log_sigma=False, minus_one=True, divide_mean=True, reduce="sum"):
    var_q, var_p = (torch.exp(2 * lv_q), torch.exp(2 * lv_p)) if log_sigma else (lv_q.exp(), lv_p.exp())
    log_ratio = torch.log(var_p) - torch.log(var_q)
    mean_term = (mu_q - mu_p) ** 2 / (var_p if divide_mean else 1)
    terms = 0.5 * (log_ratio + var_q / var_p + mean_term - (1 if minus_one else 0))
    return {"sum": terms.sum(-1), "mean": terms.mean(-1), "all": terms.sum()}[reduce]


GAUSSIAN_KL_BETWEEN = Exercise("8.1", lesson08.check_gaussian_kl_between, wrong=(
    Answer("reversed KL(p ‖ q)", lambda mq, lq, mp, lp: _kl(mp, lp, mq, lq), "reversed"),
    Answer("logvar as log σ", lambda *a: _kl(*a, log_sigma=True), "log σ"),
    Answer("no −1", lambda *a: _kl(*a, minus_one=False), "without the −1"),
    Answer("mean term not divided by σ_p²", lambda *a: _kl(*a, divide_mean=False), "not divided by σ_p²"),
    Answer("lesson 4's KL, prior ignored", lambda mq, lq, mp, lp: -0.5 * (1 + lq - mq**2 - lq.exp()).sum(-1),
           "ignores the prior"),
    Answer("mean over latents", lambda *a: _kl(*a, reduce="mean"), "mean over latent"),
    Answer("sums the batch too", lambda *a: _kl(*a, reduce="all"), "batch too"),
    Answer("wrong sign", lambda *a: -_kl(*a), "wrong sign"),
    Answer("σ ratio inverted",
           lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lp.exp() + (mq - mp) ** 2) / lq.exp() - 1).sum(-1), ""),
    Answer("E_q[(z − μ_p)²] taken as (μ_q − μ_p)² (σ_q² left out)",
           lambda mq, lq, mp, lp: 0.5 * (lp - lq + (mq - mp) ** 2 / lp.exp() - 1).sum(-1), "Derive each dimension"),
), correct=(
    Answer("torch.distributions", lambda mq, lq, mp, lp: kl_divergence(Normal(mq, torch.exp(0.5 * lq)),
                                                                      Normal(mp, torch.exp(0.5 * lp))).sum(-1)),
    Answer("through the standard deviations", lambda mq, lq, mp, lp: (
        torch.log(torch.exp(0.5 * lp) / torch.exp(0.5 * lq))
        + (torch.exp(lq) + (mq - mp).pow(2)) / (2 * torch.exp(lp)) - 0.5).sum(dim=1)),
    Answer("E_q[log q − log p] with the entropy in closed form", lambda mq, lq, mp, lp: (
        -0.5 * (1 + lq) + 0.5 * lp + 0.5 * (lq.exp() + (mq - mp) ** 2) * torch.exp(-lp)).sum(-1)),
))


def _choose(compliances, volumes, targets, tolerance, *, absolute=False, two_sided=False, fallback="lightest",
            ignore_volume=False, axis=0, pick=np.argmin):
    limit = targets + tolerance if absolute else targets * (1 + tolerance)
    admissible = volumes <= limit
    if two_sided:
        admissible &= volumes >= targets * (1 - tolerance)
    if ignore_volume:
        admissible = np.ones_like(admissible)
    ranked = np.where(admissible, compliances, np.inf if pick is np.argmin else -np.inf)
    chosen = pick(ranked, axis=axis)
    none = ~admissible.any(axis=0)
    fallbacks = {"lightest": volumes.argmin(axis=0), "stiffest": compliances.argmin(axis=0),
                 "first": np.zeros(compliances.shape[1], dtype=int)}
    return np.where(none, fallbacks[fallback], chosen)


def _loop_choice(compliances, volumes, targets, tolerance=0.03):
    chosen = []
    for j in range(compliances.shape[1]):
        best, best_cost = None, float("inf")
        for k in range(compliances.shape[0]):
            if volumes[k, j] <= targets[j] * (1 + tolerance) and compliances[k, j] < best_cost:
                best, best_cost = k, compliances[k, j]
        chosen.append(int(np.argmin(volumes[:, j])) if best is None else best)
    return chosen


def _in_place_choice(compliances, volumes, targets, tolerance=0.03):
    admissible = volumes <= targets * (1 + tolerance)
    compliances[~admissible] = np.inf
    return np.where(admissible.any(0), compliances.argmin(0), volumes.argmin(0))


CHOOSE_BEST_OF_K = Exercise("8.3", lesson08.check_choose_best_of_k, wrong=(
    Answer("compliance alone (volume ignored)", lambda *a, **k: _choose(*a, **k, ignore_volume=True),
           "heavier than the tolerance"),
    Answer("absolute tolerance (target + 0.03)", lambda *a, **k: _choose(*a, **k, absolute=True),
           "heavier than the tolerance"),
    Answer("lighter designs excluded too", lambda *a, **k: _choose(*a, **k, two_sided=True), "lighter than the target"),
    Answer("highest compliance", lambda *a, **k: _choose(*a, **k, pick=np.argmax), "lowest compliance"),
    Answer("stiffest when none is admissible", lambda *a, **k: _choose(*a, **k, fallback="stiffest"), "least material"),
    Answer("first sample when none is admissible", lambda *a, **k: _choose(*a, **k, fallback="first"),
           "least material"),
    Answer("reduces over problems (axis 1)", lambda c, v, t, tolerance: np.argmin(
        np.where(v <= t * (1 + tolerance), c, np.inf), axis=1), "shape"),
    Answer("returns the chosen compliances", lambda c, v, t, tolerance: np.take_along_axis(
        c, _choose(c, v, t, tolerance)[None], 0)[0], "not sample indices"),
    Answer("−1 when no sample is admissible", lambda c, v, t, tolerance: np.where(
        (v <= t * (1 + tolerance)).any(0), _choose(c, v, t, tolerance), -1), "indices 0 to"),
    Answer("1-based indices", lambda *a, **k: _choose(*a, **k) + 1, "one too high"),
    # Accepted before, then broken by the cells that index the samples with the answer.
    Answer("float indices (right values)", lambda *a, **k: _choose(*a, **k).astype(float), "integer array"),
    Answer("a torch tensor of indices", lambda *a, **k: torch.as_tensor(_choose(*a, **k)), "return a NumPy array"),
    # The tolerance argument varied: a rule that always uses 3 %.
    Answer("tolerance fixed at 3 %", lambda c, v, t, tolerance: _choose(c, v, t, 0.03), "tolerance"),
    # The contract's names: the lesson's cells pass the tolerance by name.
    Answer("the tolerance argument under another name", lambda c, v, t, tol: _choose(c, v, t, tol), "tolerance"),
    Answer("marks inadmissible compliances in the caller's array", _in_place_choice, "changed the arrays it was given"),
), correct=(
    Answer("loop over problems", _loop_choice),
    Answer("masked array", lambda c, v, t, tolerance: np.where(
        (v <= t * (1 + tolerance)).any(0), np.ma.masked_array(c, mask=v > t * (1 + tolerance)).argmin(0), v.argmin(0))),
    Answer("a list of Python integers", lambda c, v, t, tolerance: [int(i) for i in _loop_choice(c, v, t, tolerance)]),
    Answer("torch, back to NumPy", lambda c, v, t, tolerance: torch.where(
        torch.as_tensor(v <= t * (1 + tolerance)).any(0),
        torch.as_tensor(np.where(v <= t * (1 + tolerance), c, np.inf)).argmin(0),
        torch.as_tensor(v).argmin(0)).numpy()),
))


def _swap(model, images, conditions, *, shift=-1, encode_with_new=False, prior_mean=False, logits=False,
          swap_latents=False, keep_channel=False):
    with torch.no_grad():
        new = conditions.roll(shift, dims=0)
        mu = model.encoder(images, new if encode_with_new else conditions)[0]
        if prior_mean:
            mu = model.prior_moments(new)[0]
        out = model.decode(mu.roll(-1, dims=0), conditions) if swap_latents else model.decode(mu, new)
        out = out if logits else torch.sigmoid(out)
        return out if keep_channel else out[:, 0]


def _swap_loop(model, images, conditions):
    designs = []
    with torch.no_grad():
        for i in range(len(images)):
            j = (i + 1) % len(images)
            z = model.encoder(images[i:i + 1], conditions[i:i + 1])[0]
            designs.append(torch.sigmoid(model.decoder(torch.cat([z, conditions[j:j + 1]], dim=1)))[0, 0])
    return torch.stack(designs)


def _swap_inference_mode(model, images, conditions):
    with torch.inference_mode():
        mu = model.encoder(images, conditions)[0]
        return torch.sigmoid(model.decode(mu, torch.cat([conditions[1:], conditions[:1]])))[:, 0]


SWAP_CONDITIONS = Exercise("8.2", lesson08.check_swap_conditions, wrong=(
    Answer("nothing swapped", lambda m, x, c: _swap(m, x, c, shift=0), "without swapping"),
    Answer("previous design's problem", lambda m, x, c: _swap(m, x, c, shift=1), "previous design"),
    Answer("encoded with the new problem", lambda m, x, c: _swap(m, x, c, encode_with_new=True), "encoding with"),
    Answer("prior mean instead of the encoding", lambda m, x, c: _swap(m, x, c, prior_mean=True), "prior's mean"),
    Answer("logits", lambda m, x, c: _swap(m, x, c, logits=True), "logits"),
    Answer("latents swapped", lambda m, x, c: _swap(m, x, c, swap_latents=True), "swapping the latents"),
    Answer("channel axis kept", lambda m, x, c: _swap(m, x, c, keep_channel=True), "channel axis"),
    Answer("a sample from q instead of its mean", lambda m, x, c: torch.sigmoid(m.decode(
        m.encoder(x, c)[0] + torch.exp(0.5 * m.encoder(x, c)[1]) * torch.randn(len(x), m.latent_dim),
        c.roll(-1, dims=0)))[:, 0].detach(), "", hands_over=("roll(-1", "sigmoid(", "[:, 0]", "encoder(images")),
    # Accepted before, then broken by the next cell's .cpu().numpy().
    Answer("densities that still require grad", lambda m, x, c: torch.sigmoid(
        m.decode(m.encoder(x, c)[0], c.roll(-1, dims=0)))[:, 0], "requires_grad=True"),
    Answer("a NumPy array", lambda m, x, c: _swap(m, x, c).numpy(), "not a torch tensor"),
    # The number of designs varied: an answer written for six.
    Answer("next condition by a fixed index list for six designs", lambda m, x, c: torch.sigmoid(m.decode(
        m.encoder(x, c)[0], c[[1, 2, 3, 4, 5, 0][:len(c)]])).detach()[:, 0], ""),
), correct=(
    Answer("design by design, through the decoder's input", _swap_loop),
    Answer("an index array", lambda m, x, c: torch.sigmoid(m.decode(
        m.encoder(x, c)[0], c[(torch.arange(len(c)) + 1) % len(c)])).squeeze(1).detach()),
    Answer("torch.cat of the shifted conditions, inference mode", _swap_inference_mode),
))

EXERCISES = (GAUSSIAN_KL_BETWEEN, SWAP_CONDITIONS, CHOOSE_BEST_OF_K)
