"""Lesson 6: the compliance sensitivity, the optimality-criteria update."""
from __future__ import annotations

import numpy as np
from scipy import optimize

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson06
from utils.topopt import E0, E_MIN, young_modulus


def _sensitivity(x, energies, penal, *, sign=-1.0, factor=True, power=None, young=False, with_energies=True):
    slope = (penal if factor else 1.0) * x ** (penal - 1 if power is None else power) * (E0 - E_MIN)
    if young:
        slope = young_modulus(x, penal)
    return sign * slope * (energies if with_energies else 1.0)


SENSITIVITY = Exercise("6.1", lesson06.check_compliance_sensitivity, wrong=(
    Answer("U held fixed (positive)", lambda *a: _sensitivity(*a, sign=1.0), "opposite sign"),
    Answer("no factor p", lambda *a: _sensitivity(*a, factor=False), "factor p"),
    Answer("E instead of E'", lambda *a: _sensitivity(*a, young=True), "instead of its derivative"),
    Answer("x^p", lambda x, e, p: _sensitivity(x, e, p, factor=False, power=p), "instead of its derivative"),
    Answer("no energies", lambda *a: _sensitivity(*a, with_energies=False), "without the energies"),
    Answer("F·U sum (a scalar)", lambda x, e, p: float(-(p * x ** (p - 1) * e).sum()), "one value per element"),
    Answer("½ of it (strain energy)", lambda *a: 0.5 * _sensitivity(*a), "times the right one"),
    Answer("zero (FᵀU with U treated as constant)", lambda x, e, p: np.zeros_like(x), "zero"),
), correct=(
    Answer("E'(x) written out with E_MIN", lambda x, e, p: -(p * x ** (p - 1) * E0 - p * x ** (p - 1) * E_MIN) * e),
    Answer("derivative by complex step of E(x)", lambda x, e, p: -np.imag(young_modulus(x + 1e-30j, p)) / 1e-30 * e),
    Answer("the solver's own formula in a loop", lambda x, e, p: np.array(
        [-p * xi ** (p - 1) * (E0 - E_MIN) * ei for xi, ei in zip(x, e, strict=True)])),
))


def _oc(x, dc, dv, volfrac, move=0.2, *, use_dv="divide", power=0.5, clip_box=True, clip_move=True,
        direction=1, max_iterations=10_000, material="sum"):
    lower, upper = 0.0, 1e9
    ratio = {"divide": -dc / dv, "ignore": -dc, "multiply": -dc * dv}[use_dv]
    low_bound = np.maximum(0.0, x - move) if clip_box else x - move
    high_bound = np.minimum(1.0, x + move) if clip_box else x + move
    for _ in range(max_iterations):
        if (upper - lower) / (lower + upper) <= 1e-3:
            break
        middle = 0.5 * (lower + upper)
        candidate = x * (np.maximum(ratio, 0.0) / middle) ** power
        x_new = np.clip(candidate, low_bound, high_bound) if clip_move else np.clip(candidate, 0.0, 1.0)
        if (getattr(x_new, material)() > volfrac * x.size) == (direction > 0):
            lower = middle
        else:
            upper = middle
    return x_new


def _oc_brentq(x, dc, dv, volfrac, move=0.2):
    def step(multiplier):
        return np.clip(x * np.sqrt(np.maximum(-dc / dv, 0.0) / multiplier), np.maximum(0.0, x - move),
                       np.minimum(1.0, x + move))
    multiplier = optimize.brentq(lambda lam: step(lam).mean() - volfrac, 1e-12, 1e12, xtol=1e-300, rtol=1e-14)
    return step(multiplier)


def _oc_log_bisection(x, dc, dv, volfrac, move=0.2):
    log_low, log_high = -30.0, 30.0
    while log_high - log_low > 1e-10:
        log_mid = 0.5 * (log_low + log_high)
        x_new = np.clip(x * np.sqrt(np.maximum(-dc / dv, 0.0) * np.exp(-log_mid)), np.maximum(0.0, x - move),
                        np.minimum(1.0, x + move))
        log_low, log_high = (log_mid, log_high) if x_new.mean() > volfrac else (log_low, log_mid)
    return x_new


OC_UPDATE = Exercise("6.2", lesson06.check_oc_update, wrong=(
    Answer("ignores dv", lambda *a: _oc(*a, use_dv="ignore"), "leaves dv out"),
    Answer("multiplies by dv", lambda *a: _oc(*a, use_dv="multiply"), "multiplies by dv"),
    Answer("no square root", lambda *a: _oc(*a, power=1.0), "no square root"),
    Answer("no [0, 1] clip", lambda *a: _oc(*a, clip_box=False), "outside [0, 1]"),
    Answer("no move limit", lambda *a: _oc(*a, clip_move=False), "move limit"),
    Answer("bisection the wrong way", lambda *a: _oc(*a, direction=-1), "volume fraction"),
    Answer("returns x unchanged", lambda x, dc, dv, vf, move=0.2: x, ""),
    Answer("ignores the move argument", lambda x, dc, dv, vf, move=0.2: _oc(x, dc, dv, vf), "move limit"),
    Answer("clips the old design", lambda x, dc, dv, vf, move=0.2: np.clip(
        x * 0 + vf, np.maximum(0, x - move), np.minimum(1, x + move)), ""),
    # Misleading before: a bare ZeroDivisionError from the student's own loop.
    Answer("the mean compared with the total (mean() for sum())", lambda *a: _oc(*a, material="mean"),
           "Compare like with like"),
), correct=(
    Answer("brentq on λ", _oc_brentq),
    Answer("bisection in log λ", _oc_log_bisection),
    Answer("the lesson's bisection, written with a for loop", lambda *a: _oc(*a)),
))

EXERCISES = (SENSITIVITY, OC_UPDATE)
