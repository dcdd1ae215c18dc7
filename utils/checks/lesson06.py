"""Self-checks of lesson 6 (topology optimization). References: the course's solver (utils.topopt)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from utils.checks._core import assert_close, exercise_check, passed
from utils.topopt import FiniteElementModel, cantilever, optimality_criteria_update, young_modulus


@exercise_check
def check_compliance_from_stiffness(compliance_fn: Callable) -> None:
    """Uᵀ K U must equal Fᵀ U (the work of the load) for random designs of a small cantilever."""
    rng = np.random.default_rng(601)
    case = cantilever(12, 6, 0.5, load_y=2.0, angle_deg=-70.0)
    model = FiniteElementModel(case.nelx, case.nely, case.fixed_dofs)
    force = case.force_vector()
    for _ in range(3):
        young = young_modulus(rng.uniform(0.1, 1.0, case.nelx * case.nely), 3.0)
        displacement = model.solve(young, force)
        free = model.free_dofs
        got = compliance_fn(model.sparse_stiffness(young), displacement[free])
        assert_close("compliance", got, force[free] @ displacement[free], rtol=1e-9, atol=0,
                     hint="Compute U @ (K @ U).")
    passed("compliance_from_stiffness")


@exercise_check
def check_oc_update(oc_update: Callable) -> None:
    """Against the solver's own OC step on random sensitivities; the volume must match the target."""
    rng = np.random.default_rng(602)
    for volfrac in (0.3, 0.5):
        x = rng.uniform(volfrac - 0.15, volfrac + 0.15, 200)
        dc = -rng.exponential(1.0, 200)
        dv = np.ones(200)
        expected, _ = optimality_criteria_update(x, dc, dv, volfrac, lambda design: design)
        got = oc_update(x, dc, dv, volfrac)
        assert_close(f"oc_update (volfrac {volfrac})", got, expected, rtol=0, atol=1e-9,
                     hint="Clip to [max(0, x − move), min(1, x + move)] and bisect until the relative gap < 1e-3.")
        assert_close("volume of the update", np.mean(got), volfrac, rtol=0, atol=2e-3)
    passed("oc_update")
