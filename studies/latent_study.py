"""Lesson 9's study: what a search in a learned space is worth at equal budgets of finite-element solves. Its
methods and their controls (:func:`latent_methods`), judged at each problem's volume target (:data:`RULE`: the
searches hold it exactly), and every hyperparameter chosen on validation problems (:func:`choose`), the choices
recorded in :data:`CHOICES` and in docs/results/latent.md. Lesson 9 runs them on a subset; ``make evaluate-latent``
(tools/evaluate_latent.py) on every problem."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from studies.cvae_study import cvae_methods
from studies.harness import Method, StudyProblems
from studies.methods import (
    BestRetrieved,
    LatentSearch,
    LBFGSSearch,
    Reparametrised,
    Retrieval,
    SimpFrom,
    ThenSimp,
    blended_start,
    conditional_decoder,
    decoded_logits,
    decoded_start,
    pixel_decoder,
    prior_latents,
    retrieved_start,
    standard_latents,
    unconditional_decoder,
)
from utils.design_space import SharpnessSchedule
from utils.judging import ThresholdRule

RULE: ThresholdRule = "at_target_volume"
# The keys of the methods whose designs depend on the draw seed.
SEEDED_METHODS = ("best_of_cvae", "cvae_latent_from_best", "vae_latent_from_best", "untrained_decoder")
# The keys of the methods whose designs depend on lesson 8's trained CVAE or baseline: rerun with each training seed's
# models for the seed ranges. The untrained decoder also reads the CVAE (its input is μ_p(c)), but its weights are
# drawn afresh and it costs the most: it is not rerun.
TRAINED_METHODS = ("simp_from_cvae", "simp_from_baseline", "best_of_cvae", "simp_from_cvae_blend", "cvae_latent",
                   "cvae_latent_sharpening", "pixel_adam_sharpening", "cvae_latent_lbfgs", "pixel_lbfgs_sharpening",
                   "cvae_latent_from_best", "cvae_latent_then_simp")
# Each method's control: the method differs from it in one thing only (the start, the parametrisation, the blend).
CONTROLS = {"cvae_latent_sharpening": "pixel_adam_sharpening", "simp_from_cvae": "simp_from_retrieval",
            "best_of_cvae": "retrieval", "simp_from_cvae_blend": "simp_from_cvae",
            "cvae_latent_then_simp": "simp_from_cvae", "simp_from_baseline": "simp_from_cvae",
            "cvae_latent_lbfgs": "pixel_lbfgs_sharpening"}
# The optimiser's control: the same variables, start, projection and schedule under the other optimiser.
OPTIMISER_CONTROLS = {"cvae_latent_lbfgs": "cvae_latent_sharpening", "pixel_lbfgs_sharpening": "pixel_adam_sharpening"}


def doubling_sharpness(start: float = 1.0, every: int = 10, limit: float = 8.0) -> SharpnessSchedule:
    """β = start · 2^(step // every), capped at ``limit``: a continuation towards a threshold that depends on the
    step only, so the design at budget b does not depend on the largest budget."""
    return lambda step: min(limit, start * 2.0 ** (step // every))


@dataclass(frozen=True)
class Choices:
    """The study's hyperparameters. The defaults are the values before any sweep (where :func:`choose` starts);
    :data:`CHOICES` holds the values it picked."""

    latent_lr: float = 0.1  # Adam on the CVAE's latent
    sharpening_every: int = 10  # β doubles every this many steps (1, 2, 4, 8)
    start_candidates: int = 5  # a search from the best of k spends k solves choosing its start
    switch: int = 5  # the two-stage method's latent steps before SIMP
    vae_lr: float = 0.1  # Adam on the unconditional VAE's latent
    pixel_lr: float = 0.3  # Adam on the pixels' logits (the latent search's control)
    untrained_lr: float = 3e-3  # Adam on an untrained decoder's weights
    blend: float = 0.5  # α of the blended warm start α · design + (1 − α) · uniform

    def sharpening(self) -> SharpnessSchedule:
        return doubling_sharpness(1.0, self.sharpening_every, 8.0)


# What :func:`choose` picked on the first 24 validation problems (`make evaluate-latent`; docs/results/latent.md
# records each sweep, and tests/test_results_bound.py checks that the two agree). Five of them lie at an end of their
# grid (k, the switch, the rates of the VAE, the pixels and the untrained decoder): a wider sweep may move them.
CHOICES = Choices(latent_lr=0.1, sharpening_every=5, start_candidates=10, switch=2, vae_lr=0.3, pixel_lr=1.0,
                  untrained_lr=0.01, blend=0.5)
# The values each sweep tries, in the order :func:`choose` sweeps them (each with the values chosen before it).
CANDIDATES: dict[str, tuple[float, ...]] = {
    "latent_lr": (0.03, 0.1, 0.3), "sharpening_every": (5, 10, 20), "start_candidates": (2, 5, 10),
    "switch": (2, 5, 10), "vae_lr": (0.03, 0.1, 0.3), "pixel_lr": (0.1, 0.3, 1.0),
    "untrained_lr": (1e-3, 3e-3, 1e-2), "blend": (0.25, 0.5, 0.75)}
# Which method each sweep scores.
SWEPT_METHOD = {"latent_lr": "cvae_latent_sharpening", "sharpening_every": "cvae_latent_sharpening",
                "start_candidates": "cvae_latent_from_best", "switch": "cvae_latent_then_simp",
                "vae_lr": "vae_latent_from_best", "pixel_lr": "pixel_adam_sharpening",
                "untrained_lr": "untrained_decoder", "blend": "simp_from_cvae_blend"}
# The sweeps' budgets and score: the mean CE with each CE capped at 100 % (a broken design counts as 100 % worse,
# not as 10⁷ %), summed over these budgets; the lowest wins, the first value on a tie.
SWEEP_BUDGETS = (10, 20)
CE_CAP = 1.0


def latent_methods(cvae: nn.Module, baseline: nn.Module, vae: nn.Module, retrieval: Retrieval,
                   choices: Choices = CHOICES, seed: int = 0, untrained: bool = True,
                   seeded_only: bool = False, keys: Sequence[str] | None = None) -> list[Method]:
    """Every method of lesson 9 and its control (frozen models; ``retrieval`` over the training designs). ``seed``
    draws the prior samples of best of b and of the searches started from the best of k, and (times 1,000, plus the
    problem's index) the untrained decoders' initialisations; ``seeded_only`` keeps the methods that depend on it,
    ``keys`` the methods it names."""
    k, sharpening = choices.start_candidates, choices.sharpening()
    cvae_decoder, cvae_latents = conditional_decoder(cvae), prior_latents(cvae, seed)
    search = LatentSearch("cvae_latent_sharpening", cvae_latents, cvae_decoder, choices.latent_lr, sharpening)
    methods = [*cvae_methods(cvae, baseline, seed),
               BestRetrieved("retrieval", retrieval),
               SimpFrom("simp_from_retrieval", retrieved_start(retrieval)),
               SimpFrom("simp_from_cvae_blend", blended_start(decoded_start(cvae), choices.blend)),
               LatentSearch("cvae_latent", cvae_latents, cvae_decoder, choices.latent_lr),
               search,
               LatentSearch("pixel_adam_sharpening", decoded_logits(cvae), pixel_decoder, choices.pixel_lr,
                            sharpening),
               LBFGSSearch("cvae_latent_lbfgs", cvae_latents, cvae_decoder, sharpening),
               LBFGSSearch("pixel_lbfgs_sharpening", decoded_logits(cvae), pixel_decoder, sharpening),
               LatentSearch("cvae_latent_from_best", cvae_latents, cvae_decoder, choices.latent_lr, sharpening,
                            from_best=k),
               ThenSimp("cvae_latent_then_simp", search, choices.switch),
               LatentSearch("vae_latent_from_best", standard_latents(vae.latent_dim, seed),
                            unconditional_decoder(vae), choices.vae_lr, sharpening, from_best=k)]
    if untrained:
        methods.append(Reparametrised("untrained_decoder", cvae, choices.untrained_lr, sharpening, 1000 * seed))
    if seeded_only:
        methods = [m for m in methods if m.key in SEEDED_METHODS]
    return methods if keys is None else [m for m in methods if m.key in keys]


def choose(problems: StudyProblems, cvae: nn.Module, baseline: nn.Module, vae: nn.Module, retrieval: Retrieval,
           names: Sequence[str] = tuple(CANDIDATES), start: Choices = Choices(),
           progress: Callable[[str], None] | None = None) -> tuple[Choices, dict[str, dict[float, list[float]]]]:
    """Each hyperparameter of ``names`` in turn (the others as chosen so far, from ``start``): its method
    (:data:`SWEPT_METHOD`) run with every value of :data:`CANDIDATES` on ``problems`` (validation ones) to
    :data:`SWEEP_BUDGETS`, the value of the lowest :func:`sweep_score` kept. Returns the choices and, per
    hyperparameter and value, the capped mean CE at each budget."""
    chosen, record = start, {}
    for name in names:
        (progress or (lambda _: None))(name)
        scores = {}
        for value in CANDIDATES[name]:
            trial = replace(chosen, **{name: type(getattr(chosen, name))(value)})
            method = next(m for m in latent_methods(cvae, baseline, vae, retrieval, trial)
                          if m.key == SWEPT_METHOD[name])
            designs = method.run(problems, SWEEP_BUDGETS).designs
            scores[value] = [float(np.mean(np.minimum(problems.judge(designs[b], problems.rule).compliance_error,
                                                      CE_CAP))) for b in SWEEP_BUDGETS]
        best = min(scores, key=lambda value: sum(scores[value]))
        chosen = replace(chosen, **{name: type(getattr(chosen, name))(best)})
        record[name] = scores
    return chosen, record
