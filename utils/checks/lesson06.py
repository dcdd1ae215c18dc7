"""Self-checks of lesson 6 (topology optimization). References: finite differences of the solver's compliance
(utils.topopt) for the sensitivity, and the contract of the optimality-criteria step (box and move limits, the
volume, one Lagrange multiplier for every element) for the update: any exact root-finder meets it."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from utils.checks._core import (
    ExerciseCheckFailed,
    _where_in_student_code,
    assert_close,
    exercise_check,
    passed,
    returned,
)
from utils.topopt import E0, E_MIN, FiniteElementModel, LoadCase, cantilever, compliance, mbb_beam, young_modulus

# Central differences with step 1e-6 on densities in [0.2, 0.9] agree with the exact derivative to about 1e-8
# relative (the truncation error is O(h²), the rounding error O(1e-16 / h)); 1e-5 leaves a wide margin.
FINITE_DIFFERENCE_STEP = 1e-6
SENSITIVITY_RTOL = 1e-5


def _finite_difference(x: np.ndarray, element: int, case: LoadCase, model: FiniteElementModel, penal: float) -> float:
    """(c(x + h e_k) − c(x − h e_k)) / 2h for element ``element``: the independent reference."""
    shifted = [x.copy(), x.copy()]
    shifted[0][element] += FINITE_DIFFERENCE_STEP
    shifted[1][element] -= FINITE_DIFFERENCE_STEP
    plus, minus = (compliance(design.reshape(case.nely, case.nelx, order="F"), case, penal, model)
                   for design in shifted)
    return (plus - minus) / (2 * FINITE_DIFFERENCE_STEP)


@exercise_check
def check_compliance_sensitivity(sensitivity: Callable) -> None:
    """On a cantilever and an MBB beam with random densities and penalties 3 and 2: the sensitivity of every
    tenth element equals central finite differences of the compliance (the course's solver), and no entry is
    positive."""
    rng = np.random.default_rng(601)
    for case, penal in ((cantilever(12, 6, 0.5, load_y=2.0, angle_deg=-70.0), 3.0), (mbb_beam(10, 5, 0.4), 2.0)):
        model = FiniteElementModel(case.nelx, case.nely, case.fixed_dofs)
        x = rng.uniform(0.2, 0.9, case.nelx * case.nely)
        energies = model.element_energies(model.solve(young_modulus(x, penal), case.force_vector()))
        got = np.asarray(returned("compliance_sensitivity", sensitivity(x.copy(), energies.copy(), penal)),
                         dtype=float)
        if got.shape != x.shape:
            raise ExerciseCheckFailed(f"compliance_sensitivity: expected one value per element, shape {x.shape}, "
                                      f"got {got.shape}")
        elements = np.arange(0, x.size, 10)
        expected = np.array([_finite_difference(x, element, case, model, penal) for element in elements])
        young_slope = penal * x ** (penal - 1) * (E0 - E_MIN)
        mistakes = {
            "with the opposite sign: differentiating Uᵀ K U with U held fixed (U changes with x too)":
                (young_slope * energies)[elements],
            "without the exponent's factor p (x^(p−1) alone)": (-x ** (penal - 1) * energies)[elements],
            "from E(x_e) ≈ x_e^p instead of its derivative E'(x_e) = p·x_e^(p−1)·(E0 − E_min)":
                (-young_modulus(x, penal) * energies)[elements],
            "without the energies u_eᵀ k0 u_e": -young_slope[elements],
        }
        assert_close(f"compliance_sensitivity ({case.nelx}×{case.nely} mesh, p = {penal:g}) against finite "
                     "differences", got[elements], expected, rtol=SENSITIVITY_RTOL, atol=0, mistakes=mistakes,
                     hint="Differentiate K(x) U = F, use c = Fᵀ U and the symmetry of K, then E(x) = E_min + "
                          "x^p (E0 − E_min).")
        if np.any(got > 0):
            raise ExerciseCheckFailed("compliance_sensitivity: some values are positive; adding material never "
                                      "makes a structure less stiff.")
    passed("compliance_sensitivity")


# The bisection stops when the multiplier's interval is 1e-3 of its size, which leaves the volume within about
# 5e-4 of its target; an exact root-finder meets it to rounding.
VOLUME_TOLERANCE = 1e-3
# One multiplier for every element: an exact step gives the same implied λ to rounding.
MULTIPLIER_SPREAD = 1e-6


def _implied_multipliers(x: np.ndarray, x_new: np.ndarray, ratio: np.ndarray, power: float) -> np.ndarray:
    """λ_e such that x_new_e = x_e·(ratio_e / λ_e)^power, for elements strictly inside their bounds."""
    return ratio * (x / x_new) ** (1 / power)


def _consistent(multipliers: np.ndarray) -> bool:
    return multipliers.size > 0 and np.ptp(multipliers) <= MULTIPLIER_SPREAD * np.median(multipliers)


def _oc_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float, float]]:
    """(name, x, dc, dv, volfrac, move): uniform and non-uniform dv, designs at the [0, 1] bounds, an odd size
    and a smaller move limit."""
    near_bounds = np.concatenate([rng.uniform(0.0, 0.05, 100), rng.uniform(0.95, 1.0, 100)])
    return [
        ("uniform dv, volume fraction 0.3", rng.uniform(0.15, 0.45, 200), -rng.exponential(1.0, 200), np.ones(200),
         0.3, 0.2),
        ("non-uniform dv, volume fraction 0.5", rng.uniform(0.35, 0.65, 200), -rng.exponential(1.0, 200),
         rng.uniform(0.5, 2.0, 200), 0.5, 0.2),
        ("a design at the bounds 0 and 1", near_bounds, -rng.exponential(1.0, 200), rng.uniform(0.5, 2.0, 200),
         0.45, 0.2),
        ("37 elements, move limit 0.1", rng.uniform(0.2, 0.6, 37), -rng.exponential(2.0, 37),
         rng.uniform(0.8, 1.2, 37), 0.4, 0.1),
    ]


def _check_oc_contract(name: str, x: np.ndarray, dc: np.ndarray, dv: np.ndarray, volfrac: float, move: float,
                       x_new: np.ndarray) -> None:
    if x_new.shape != x.shape or not np.all(np.isfinite(x_new)):
        raise ExerciseCheckFailed(f"oc_update ({name}): expected {x.shape[0]} finite values, got shape {x_new.shape}")
    lower, upper = np.maximum(0.0, x - move), np.minimum(1.0, x + move)
    if np.any(x_new < -1e-12) or np.any(x_new > 1 + 1e-12):
        raise ExerciseCheckFailed(f"oc_update ({name}): values outside [0, 1] (from {x_new.min():.3g} to "
                                  f"{x_new.max():.3g}); clip to [max(0, x − move), min(1, x + move)].")
    if np.any(np.abs(x_new - x) > move + 1e-12):
        raise ExerciseCheckFailed(f"oc_update ({name}): an element moved by {np.abs(x_new - x).max():.3g}, more than "
                                  f"the move limit {move}; clip to [max(0, x − move), min(1, x + move)].")
    volume = x_new.mean()
    if abs(volume - volfrac) > VOLUME_TOLERANCE:
        raise ExerciseCheckFailed(
            f"oc_update ({name}): the new design's volume fraction is {volume:.4f}, the target {volfrac}. Search the "
            "multiplier λ until the volume is met: a volume above the target needs a larger λ (lower = middle).")
    inside = (x_new > lower + 1e-9) & (x_new < upper - 1e-9) & (x > 0)
    ratio = np.maximum(-dc / dv, 0.0)
    multipliers = _implied_multipliers(x[inside], x_new[inside], ratio[inside], 0.5)
    if not _consistent(multipliers):
        for description, other_ratio, power in (("leaves dv out (uses −dc alone)", -dc, 0.5),
                                                ("multiplies by dv instead of dividing", -dc * dv, 0.5),
                                                ("has no square root", ratio, 1.0)):
            if _consistent(_implied_multipliers(x[inside], x_new[inside], other_ratio[inside], power)):
                raise ExerciseCheckFailed(f"oc_update ({name}): your update {description}: "
                                          "x_new = x·sqrt(−dc / (λ·dv)).")
        raise ExerciseCheckFailed(f"oc_update ({name}): the elements that are not at a bound must all satisfy "
                                  "x_new = x·sqrt(−dc / (λ·dv)) with one λ for the whole design.")
    unclipped = x * np.sqrt(ratio / np.median(multipliers))
    at_upper, at_lower = ~inside & (x_new >= upper - 1e-9), ~inside & (x_new <= lower + 1e-9)
    if np.any(unclipped[at_upper] < upper[at_upper] * (1 - 1e-6)) or \
            np.any(unclipped[at_lower] > lower[at_lower] * (1 + 1e-6) + 1e-12):
        raise ExerciseCheckFailed(f"oc_update ({name}): an element sits at a bound that the OC formula with the "
                                  "design's λ does not reach; clip the formula's value, not the old design.")


@exercise_check
def check_oc_update(oc_update: Callable) -> None:
    """The optimality-criteria step's contract on four cases: values in [0, 1] and within the move limit, the
    volume fraction met, and x_new = clip(x·sqrt(−dc / (λ·dv))) with one multiplier λ for every element."""
    rng = np.random.default_rng(602)
    for name, x, dc, dv, volfrac, move in _oc_cases(rng):
        try:
            x_new = np.asarray(returned("oc_update", oc_update(x.copy(), dc.copy(), dv.copy(), volfrac, move)),
                               dtype=float)
        except ZeroDivisionError as error:
            raise ExerciseCheckFailed(
                f"oc_update ({name}): your bisection divided by zero{_where_in_student_code(error.__traceback__)}: "
                "its bracket for λ shrank to 0, which happens when the volume test never finds too much material. "
                "Compare like with like: the total material of x_new with volfrac times the number of elements, or "
                "the mean with volfrac.") from None
        _check_oc_contract(name, x, dc, dv, volfrac, move, x_new)
    passed("oc_update")
