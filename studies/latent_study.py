"""Lesson 9's study: what a search in a learned space is worth at equal budgets of finite-element solves. Its
methods (:func:`latent_methods`), judged at each problem's volume target (:data:`RULE`: the searches hold it
exactly), and the latent searches' learning rate, chosen on validation problems (:func:`choose_learning_rate`).
Lesson 9 runs them on a subset; ``make evaluate-latent`` (tools/evaluate_latent.py) on every problem."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from studies.cvae_study import cvae_methods
from studies.harness import Method, StudyProblems
from studies.methods import (
    LatentSearch,
    Reparametrised,
    ThenSimp,
    conditional_decoder,
    prior_latents,
    standard_latents,
    unconditional_decoder,
)
from utils.design_space import SharpnessSchedule
from utils.judging import ThresholdRule

RULE: ThresholdRule = "at_target_volume"
# Latent searches started from the best of this many designs spend these solves first.
START_CANDIDATES = 5
# The two-stage methods switch from the latent search to SIMP after these many solves.
SWITCH_POINTS = (5, 10)
# The learning rates the validation sweep tries (Adam on the latents).
LEARNING_RATES = (0.03, 0.1, 0.3)
# Reparametrisation's learning rate (Adam on the untrained decoder's weights); a ten times larger one diverges on
# some problems. Not swept: issue #31 records the sweep that chooses it.
REPARAMETRISATION_LR = 3e-3
# The keys of the methods whose designs depend on the draw seed.
SEEDED_METHODS = ("best_of_cvae", "cvae_latent_from_best", "vae_latent_from_best", "reparametrisation")


def doubling_sharpness(start: float = 1.0, every: int = 10, limit: float = 8.0) -> SharpnessSchedule:
    """β = start · 2^(step // every), capped at ``limit``: a continuation towards a threshold that depends on the
    step only, so the design at budget b does not depend on the largest budget."""
    return lambda step: min(limit, start * 2.0 ** (step // every))


SHARPENING = doubling_sharpness(1.0, every=10, limit=8.0)


def latent_methods(cvae: nn.Module, baseline: nn.Module, vae: nn.Module, lr: float, seed: int = 0,
                   reparametrisation: bool = True, seeded_only: bool = False) -> list[Method]:
    """Every method of lesson 9 (frozen models; ``lr`` the latent searches' learning rate). ``seed`` draws the prior
    samples of best of b and of the searches started from the best of k, and (times 1,000, plus the problem's
    index) the reparametrisation's initialisations; ``seeded_only`` keeps the methods that depend on it."""
    k = START_CANDIDATES
    cvae_decoder, cvae_latents = conditional_decoder(cvae), prior_latents(cvae, seed)
    sharpening = LatentSearch("cvae_latent_sharpening", cvae_latents, cvae_decoder, lr, SHARPENING)
    methods = [*cvae_methods(cvae, baseline, seed),
               LatentSearch("cvae_latent", cvae_latents, cvae_decoder, lr),
               sharpening,
               LatentSearch("cvae_latent_from_best", cvae_latents, cvae_decoder, lr, SHARPENING, from_best=k),
               *(ThenSimp(f"cvae_latent_{after}_then_simp", sharpening, after) for after in SWITCH_POINTS),
               LatentSearch("vae_latent_from_best", standard_latents(vae.latent_dim, seed),
                            unconditional_decoder(vae), lr, SHARPENING, from_best=k)]
    if reparametrisation:
        methods.append(Reparametrised("reparametrisation", cvae, REPARAMETRISATION_LR, SHARPENING, 1000 * seed))
    return [m for m in methods if m.key in SEEDED_METHODS] if seeded_only else methods


def choose_learning_rate(problems: StudyProblems, cvae: nn.Module, rates: Sequence[float] = LEARNING_RATES,
                         budgets: Sequence[int] = (10, 20)) -> tuple[float, dict[float, list[float]]]:
    """The latent searches' learning rate: the lowest sum of mean CEs after ``budgets`` solves of the CVAE's
    sharpening search from μ_p(c), on ``problems`` (validation ones). Returns it and every rate's mean CEs."""
    scores = {}
    for lr in rates:
        search = LatentSearch("cvae_latent_sharpening", prior_latents(cvae, 0), conditional_decoder(cvae), lr,
                              SHARPENING)
        designs = search.run(problems, budgets).designs
        scores[lr] = [problems.judge(designs[b], problems.rule).summary()["CE mean"] for b in budgets]
    return min(scores, key=lambda lr: sum(scores[lr])), scores
