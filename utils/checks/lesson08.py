"""Self-checks of lesson 8 (the conditional VAE). References: torch.distributions for the KL between two Gaussians,
and a per-problem loop over the selection rule for best-of-k."""
from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed, returned, student_call


def _normal(mu: torch.Tensor, logvar: torch.Tensor) -> Normal:
    return Normal(mu, torch.exp(0.5 * logvar))


@exercise_check
def check_gaussian_kl_between(gaussian_kl_between: Callable) -> None:
    """Against ``kl_divergence(Normal(μ_q, σ_q), Normal(μ_p, σ_p))`` summed over dimensions, for d ∈ {1, 4, 8}, a
    batch of one, q = p (KL = 0) and the standard prior (lesson 4's formula)."""
    generator = torch.Generator().manual_seed(801)
    for batch, dim in ((5, 1), (1, 4), (3, 8)):
        mu_q, mu_p = (2 * torch.randn(batch, dim, generator=generator, dtype=torch.float64) for _ in range(2))
        logvar_q, logvar_p = (1.5 * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
                              for _ in range(2))
        q, p = _normal(mu_q, logvar_q), _normal(mu_p, logvar_p)
        terms = kl_divergence(q, p)
        var_q, var_p = logvar_q.exp(), logvar_p.exp()
        mistakes = {
            "for the reversed divergence KL(p ‖ q)": kl_divergence(p, q).sum(-1),
            "with logvar taken for log σ": kl_divergence(Normal(mu_q, var_q), Normal(mu_p, var_p)).sum(-1),
            "without the −1 inside the sum": (terms + 0.5).sum(-1),
            "with (μ_q − μ_p)² not divided by σ_p²":
                0.5 * (logvar_p - logvar_q + var_q / var_p + (mu_q - mu_p) ** 2 - 1).sum(-1),
            "for lesson 4's KL to N(0, I), which ignores the prior's μ_p and σ_p":
                kl_divergence(q, Normal(0.0, 1.0)).sum(-1),
            "for a mean over latent dimensions instead of a sum": terms.mean(-1),
            "for a sum over the batch too (one number, not one per row)": terms.sum(),
        }
        assert_close(f"gaussian_kl_between (batch {batch}, d={dim})",
                     gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p), terms.sum(-1), rtol=1e-9, atol=1e-9,
                     mistakes=mistakes,
                     hint="Derive each dimension's KL from E_q[log q(z) − log p(z)], with E_q[(z − μ_q)²] = σ_q² and "
                          "E_q[(z − μ_p)²] = σ_q² + (μ_q − μ_p)²; then sum over the last dimension, one value per "
                          "row; logvar is log σ², so σ² = exp(logvar).")
    mu, logvar = torch.randn(2, 3, generator=generator), torch.randn(2, 3, generator=generator)
    assert_close("gaussian_kl_between(q, q)", gaussian_kl_between(mu, logvar, mu, logvar), torch.zeros(2), rtol=0,
                 atol=1e-6, hint="KL(q ‖ p) is zero when q = p.")
    zeros = torch.zeros_like(mu)
    assert_close("gaussian_kl_between(q, N(0, I))", gaussian_kl_between(mu, logvar, zeros, zeros),
                 kl_divergence(_normal(mu, logvar), Normal(0.0, 1.0)).sum(-1), rtol=1e-5, atol=1e-6,
                 hint="With μ_p = 0 and log σ_p² = 0 the formula must reduce to lesson 4's KL to N(0, I).")
    passed("gaussian_kl_between")


def _selection_by_rule(compliances: np.ndarray, volumes: np.ndarray, targets: np.ndarray,
                       tolerance: float) -> list[int]:
    """The selection rule, problem by problem: the stiffest admissible sample, else the lightest sample."""
    chosen = []
    for problem in range(compliances.shape[1]):
        limit = targets[problem] * (1 + tolerance)
        admissible = [k for k in range(compliances.shape[0]) if volumes[k, problem] <= limit]
        ranking = compliances[:, problem] if admissible else volumes[:, problem]
        chosen.append(min(admissible or range(compliances.shape[0]), key=ranking.__getitem__))
    return chosen


def _selection_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]]:
    """(name, compliances (k, N), volumes (k, N), targets (N,), tolerance): random problems, then edge cases."""
    rng = np.random.default_rng(802)
    cases = []
    for k, n in ((16, 12), (5, 40), (1, 3)):
        targets = rng.uniform(0.3, 0.5, n)
        volumes = targets * (1 + rng.uniform(-0.06, 0.08, (k, n)))
        # Heavier designs are stiffer, as in the real problem; noise keeps the ranking from being volume alone.
        compliances = 80 * (targets / volumes) ** 3 * rng.lognormal(0.0, 0.1, (k, n))
        cases.append((f"{k} samples for {n} problems", compliances, volumes, targets, 0.03))
    targets = np.array([0.4, 0.3])
    volumes = np.array([[0.45, 0.36], [0.43, 0.33], [0.44, 0.35]])
    compliances = np.array([[50.0, 60.0], [70.0, 90.0], [60.0, 70.0]])
    cases.append(("no sample within the volume tolerance", compliances, volumes, targets, 0.03))
    volumes = np.array([[0.38, 0.30], [0.46, 0.355], [0.40, 0.29]])
    compliances = np.array([[90.0, 80.0], [40.0, 30.0], [70.0, 85.0]])
    cases.append(("the stiffest sample is far too heavy", compliances, volumes, targets, 0.03))
    cases.append(("a wider tolerance admits it", compliances, volumes, targets, 0.2))
    return cases


def _drive_takes_tolerance(choose_best_of_k: Callable) -> bool:
    """Whether the student's function takes three arrays and ``tolerance`` by name (run where it lives)."""
    try:
        inspect.signature(choose_best_of_k).bind(None, None, None, tolerance=0.03)
    except TypeError:
        return False
    return True


@exercise_check
def check_choose_best_of_k(choose_best_of_k: Callable) -> None:
    """On random problems (16, 5 and 1 samples) and three hand-made ones (no admissible sample, a too heavy
    stiffest sample, a wider tolerance), the chosen indices must follow the rule sample by sample; indices
    outside 0..k−1 (or all one too high) are reported as such."""
    if not student_call(_drive_takes_tolerance, choose_best_of_k):
        raise ExerciseCheckFailed("choose_best_of_k: keep the exercise's signature (compliances, volume_fractions, "
                                  "targets, tolerance=0.03): the lesson's cells pass `tolerance` by name.")
    for name, compliances, volumes, targets, tolerance in _selection_cases():
        given = (compliances.copy(), volumes.copy(), targets.copy())
        # The tolerance by name, as the lesson's cells pass it.
        result = returned("choose_best_of_k", choose_best_of_k(*given, tolerance=tolerance))
        if any(not np.array_equal(after, before) for after, before in zip(given, (compliances, volumes, targets),
                                                                           strict=True)):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): your function changed the arrays it was given (an "
                                      "assignment into compliances or volume_fractions): the caller still needs them; "
                                      "build new arrays instead.")
        if isinstance(result, torch.Tensor):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): returned a torch tensor; the cells that use your "
                                      "indices work with NumPy (np.mean, fancy indexing): return a NumPy array.")
        answer = np.asarray(result)
        expected = np.array(_selection_by_rule(compliances, volumes, targets, tolerance))
        if answer.shape != expected.shape:
            raise ExerciseCheckFailed(
                f"choose_best_of_k ({name}): returned shape {answer.shape}, expected {expected.shape}: one sample "
                "index per problem (the arrays are (k samples, N problems); reduce over axis 0).")
        if not (np.issubdtype(answer.dtype, np.integer) or np.issubdtype(answer.dtype, np.floating)):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): returned values of type {answer.dtype}, not sample "
                                      "indices: return one integer index per problem.")
        if np.issubdtype(answer.dtype, np.floating) and not np.allclose(answer, np.round(answer)):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): returned {answer[:4]}…, not sample indices: "
                                      "return the index k of the chosen sample for each problem, not its compliance.")
        if np.issubdtype(answer.dtype, np.floating):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): the indices are floating-point numbers "
                                      f"({answer.dtype}); the cells that pick the chosen designs index with them, and "
                                      "NumPy indexes with integers only: return an integer array.")
        n_samples = compliances.shape[0]
        outside = np.flatnonzero((answer < 0) | (answer >= n_samples))
        if outside.size:
            j = int(outside[0])
            raise ExerciseCheckFailed(
                f"choose_best_of_k ({name}): for problem {j} you returned index {answer[j]:g}, but there are "
                f"{n_samples} samples (indices 0 to {n_samples - 1}). Return the position of the chosen sample along "
                "axis 0 (the samples), for each problem.")
        wrong = np.flatnonzero(answer != expected)
        if wrong.size and np.array_equal(answer - 1, expected):
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}): every index is one too high: Python counts the "
                                      "samples from 0.")
        if wrong.size:
            j = int(wrong[0])
            picked, right = int(answer[j]), int(expected[j])
            limit = targets[j] * (1 + tolerance)
            detail = (f"problem {j} (target {targets[j]:.3f}, admissible up to {limit:.4f}): you chose sample {picked} "
                      f"(volume {volumes[picked, j]:.4f}, compliance {compliances[picked, j]:.1f}); the rule chooses "
                      f"sample {right} (volume {volumes[right, j]:.4f}, compliance {compliances[right, j]:.1f}).")
            admissible = volumes[:, j] <= limit
            if not admissible.any():
                why = "No sample is within the tolerance here: then take the one with the least material."
            elif not admissible[picked]:
                why = ("Your choice is heavier than the tolerance allows: more material always lowers compliance, so "
                       "compliance alone rewards the heaviest design. Only samples with volume ≤ target·(1 + "
                       "tolerance) compete.")
            elif compliances[picked, j] > compliances[right, j]:
                why = ("Among the admissible samples, take the one with the lowest compliance (the stiffest); samples "
                       "lighter than the target are admissible too.")
            else:
                why = "Check which samples are admissible and which is the stiffest of them."
            raise ExerciseCheckFailed(f"choose_best_of_k ({name}), {len(wrong)} of {len(expected)} problems wrong; "
                                      f"{detail} {why}")
    passed("choose_best_of_k")


def _swap_model(n_designs: int, latent_dim: int, prior: str) -> torch.nn.Module:
    """A small conditional VAE with seeded random weights, in eval mode."""
    from utils.cvae import ConditionalVAE  # the check needs the model only here

    with torch.random.fork_rng():
        torch.manual_seed(803 + n_designs)
        return ConditionalVAE(latent_dim=latent_dim, width=8, prior=prior).eval()


def _swap_test_cases() -> list[tuple[str, tuple[int, int, str], torch.Tensor, torch.Tensor]]:
    """(name, the model's arguments to :func:`_swap_model`, images, conditions): small conditional VAEs (a learned
    prior and lesson 8's naive standard prior, two latent sizes) and their binary designs (six, then three)."""
    generator = torch.Generator().manual_seed(803)
    cases = []
    for name, n_designs, latent_dim, prior in (("6 designs, learned prior", 6, 4, "learned"),
                                               ("3 designs, standard prior", 3, 2, "standard")):
        images = (torch.rand(n_designs, 1, 32, 64, generator=generator) > 0.6).float()
        conditions = 2 * torch.rand(n_designs, 4, generator=generator) - 1
        cases.append((name, (n_designs, latent_dim, prior), images, conditions))
    return cases


def _drive_swap_conditions(swap_conditions: Callable, model: tuple[int, int, str], images: torch.Tensor,
                           conditions: torch.Tensor) -> object:
    """The student's part of :func:`check_swap_conditions`, run where the function lives: its result on the model
    built from ``model`` (the arguments of :func:`_swap_model`), the images and the conditions."""
    return swap_conditions(_swap_model(*model), images, conditions)


@exercise_check
def check_swap_conditions(swap_conditions: Callable) -> None:
    """On two small conditional VAEs with random weights (6 and 3 designs, learned and standard prior): the densities
    decoded from μ_q(x_i, c_i) with c_{i+1} (cyclically) must match a reference computed with the model's own encoder
    and decoder, as a tensor the next cell can turn into NumPy (no autograd graph)."""
    for name, arguments, images, conditions in _swap_test_cases():
        subject = f"swap_conditions ({name})"
        model = _swap_model(*arguments)
        with torch.no_grad():
            mu, _ = model.encoder(images, conditions)
            after = conditions.roll(-1, dims=0)
            reference = torch.sigmoid(model.decode(mu, after))[:, 0]
            mu_new, _ = model.encoder(images, after)
            mistakes = {
                "without swapping (each design decoded with its own problem)":
                    torch.sigmoid(model.decode(mu, conditions))[:, 0],
                "with the previous design's problem c_{i−1} (design i must get the next one, c_{i+1})":
                    torch.sigmoid(model.decode(mu, conditions.roll(1, dims=0)))[:, 0],
                "encoding with the new problem too: z must be μ_q(x_i, c_i), encoded with the design's own problem":
                    torch.sigmoid(model.decode(mu_new, after))[:, 0],
                "decoding the prior's mean μ_p(c_j): the test decodes the design's encoding μ_q(x_i, c_i)":
                    torch.sigmoid(model.decode(model.prior_moments(after)[0], after))[:, 0],
                "as logits: the densities must lie in [0, 1]": model.decode(mu, after)[:, 0],
                "by swapping the latents instead of the conditions (z_{i+1} with c_i)":
                    torch.sigmoid(model.decode(mu.roll(-1, dims=0), conditions))[:, 0],
                "with the channel axis kept: return (N, 32, 64)": torch.sigmoid(model.decode(mu, after)),
            }
        answer = returned(subject, student_call(_drive_swap_conditions, swap_conditions, arguments, images.clone(),
                                                conditions.clone()))
        if not isinstance(answer, torch.Tensor):
            raise ExerciseCheckFailed(f"{subject}: returned a {type(answer).__name__}, not a torch tensor: the cell "
                                      "after this one moves your densities with .cpu() before .numpy().")
        if answer.requires_grad:
            raise ExerciseCheckFailed(f"{subject}: your densities still carry autograd's graph (requires_grad=True), "
                                      "so the next cell cannot turn them into NumPy: this test needs no gradient, "
                                      "compute it without one.")
        assert_close(subject, answer, reference, rtol=1e-5, atol=1e-6, mistakes=mistakes,
                     hint="Encode each design with its own condition and keep the mean of q (no sample), decode it "
                          "with the next design's condition (the last design takes the first one's), turn the "
                          "decoder's logits into densities and leave out the channel axis.")
    passed("swap_conditions")
