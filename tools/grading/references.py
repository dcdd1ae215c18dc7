"""The course's own implementations of graded exercises, which live in ``utils`` for later lessons to use.

A submission whose exercise is, wraps, subclasses or calls one of these is not graded ``pass``: the feedback
says which one it used; a pasted copy of one is flagged for review (tools/grading/copies.py). Keys are exercise
numbers, values the implementations' dotted names: every function of ``utils`` that answers the exercise, helpers
included (tests/test_release.py finds any solution line of the release outside them).
"""
from __future__ import annotations

REFERENCE_IMPLEMENTATIONS: dict[str, tuple[str, ...]] = {
    "4.1": ("utils.elbo_terms.gaussian_kl_terms",),
    "6.1": ("utils.topopt.compliance_sensitivity",),
    "6.2": ("utils.topopt.optimality_criteria_update",),
    "7.1": ("utils.vae.vae_loss", "utils.cvae.cvae_loss"),
    "7.2": ("utils.vae.Decoder",),
    "7.3": ("utils.vae.train_epoch", "utils.vae._batch_losses", "utils.training.run_epoch"),
    "7.4": ("utils.metrics.compliance_error", "utils.metrics.volume_fraction_error"),
    "8.1": ("utils.elbo_terms.gaussian_kl_terms",),
    "8.2": ("utils.generation.swapped_designs",),
    "8.3": ("utils.judging.best_of_k", "studies.cvae_study.stiffest_admissible"),
    "9.1": ("utils.design_space.ComplianceFunction", "utils.design_space.differentiable_compliance"),
    "9.2": ("utils.design_space.VolumeProjection", "utils.design_space.project_to_volume",
            "utils.design_space.volume_shift"),
    "9.3": ("utils.design_space.gradient_search",),
    "10.1": ("utils.priors.mixture_log_density", "utils.priors.elbo_surgery"),
    "10.2": ("utils.priors.mixture_log_density", "utils.priors.VampPrior"),
    "10.3": ("utils.priors.ddpm_loss",),
}


def references_of(exercises: list[str]) -> dict[str, list[str]]:
    """The reference implementations of the given exercises (those that have one)."""
    return {number: list(REFERENCE_IMPLEMENTATIONS[number]) for number in exercises
            if number in REFERENCE_IMPLEMENTATIONS}
