"""The SIMP solver: top88 regression, the element matrix, the banded solve, load cases."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg

from utils.settings import DATASET_SOLVER
from utils.topopt import (
    FiniteElementModel,
    LoadCase,
    PointLoad,
    cantilever,
    compliance,
    element_stiffness,
    mbb_beam,
    optimality_criteria_update,
    optimize,
    simp_iterations,
    young_modulus,
)


@pytest.mark.parametrize("filter_kind, expected_compliance, expected_iterations",
                         [("sensitivity", 203.19, 94), ("density", 218.80, 127)])
def test_mbb_beam_reproduces_top88(filter_kind: str, expected_compliance: float, expected_iterations: int) -> None:
    result = optimize(mbb_beam(60, 20, 0.5), rmin=1.5, filter=filter_kind, max_iterations=1000)
    assert result.converged
    assert abs(result.iterations - expected_iterations) <= 2
    np.testing.assert_allclose(result.compliance_history[-1], expected_compliance, rtol=1e-3)
    np.testing.assert_allclose(result.density.mean(), 0.5, atol=1e-3)
    np.testing.assert_allclose(result.compliance, compliance(result.density, mbb_beam(60, 20, 0.5)), rtol=1e-12)


def test_element_stiffness_matches_top88_block_formula() -> None:
    nu = 0.3
    a11 = np.array([[12, 3, -6, -3], [3, 12, 3, 0], [-6, 3, 12, -3], [-3, 0, -3, 12]])
    a12 = np.array([[-6, -3, 0, 3], [-3, -6, -3, -6], [0, -3, -6, 3], [3, -6, 3, -6]])
    b11 = np.array([[-4, 3, -2, 9], [3, -4, -9, 4], [-2, -9, -4, -3], [9, 4, -3, -4]])
    b12 = np.array([[2, -3, 4, -9], [-3, 2, 9, -2], [4, 9, 2, 3], [-9, -2, 3, 2]])
    expected = (np.block([[a11, a12], [a12.T, a11]]) + nu * np.block([[b11, b12], [b12.T, b11]])) / (1 - nu**2) / 24
    np.testing.assert_allclose(element_stiffness(nu), expected, atol=1e-15)
    eigenvalues = np.linalg.eigvalsh(expected)
    assert np.sum(np.abs(eigenvalues) < 1e-12) == 3, "three rigid-body modes"


def test_banded_solve_matches_sparse_direct_solve() -> None:
    case = cantilever(12, 7, 0.4, load_y=2.5, angle_deg=-60.0)
    model = FiniteElementModel(case.nelx, case.nely, case.fixed_dofs)
    young = young_modulus(np.random.default_rng(0).uniform(0.05, 1.0, case.nelx * case.nely), 3.0)
    force = case.force_vector()
    expected = scipy.sparse.linalg.spsolve(model.sparse_stiffness(young), force[model.free_dofs])
    np.testing.assert_allclose(model.solve(young, force)[model.free_dofs], expected, rtol=1e-9, atol=1e-12)
    assert model.bandwidth <= 2 * case.nely + 5


def test_solid_cantilever_compliance_is_close_to_beam_theory() -> None:
    # A slender clamped beam (length 80, height 8, unit thickness, E = 1, tip load 1) bends with tip
    # deflection P L^3 / (3 E I) = 80^3 / (3 * 8^3 / 12) = 4000 (Euler-Bernoulli); Q4 elements with shear
    # deformation and Poisson effects land within a few per cent of it.
    case = cantilever(80, 8, 1.0, load_y=4.0, angle_deg=-90.0)
    value = compliance(np.ones((8, 80)), case)
    assert 0.90 * 4000 < value < 1.10 * 4000


def test_point_load_is_shared_between_nodes() -> None:
    case = cantilever(10, 4, 0.5, load_y=1.25, angle_deg=-90.0)
    force = case.force_vector()
    np.testing.assert_allclose(force.sum(), -1.0)
    assert np.count_nonzero(np.abs(force) > 1e-12) == 2


def test_load_case_round_trips_through_dict() -> None:
    case = cantilever(16, 8, 0.35, load_y=3.7, angle_deg=-120.0)
    assert LoadCase.from_dict(case.to_dict()) == case


def test_load_outside_domain_is_an_error() -> None:
    case = LoadCase(4, 4, (0, 1), (PointLoad(5.0, 0.0, 0.0),), 0.5)
    with pytest.raises(ValueError, match="outside"):
        case.force_vector()


def test_compliance_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        compliance(np.ones((4, 4)), mbb_beam(6, 2, 0.5))


def test_warm_start_from_an_optimum_stays_there() -> None:
    case = mbb_beam(30, 10, 0.5)
    first = optimize(case, rmin=1.5, max_iterations=1000)
    again = optimize(case, rmin=1.5, initial_density=first.density, max_iterations=5)
    assert again.iterations <= 5
    np.testing.assert_allclose(again.compliance, first.compliance, rtol=0.02)


def test_oc_step_from_far_below_the_target_grows_by_the_move_limit() -> None:
    """A warm start with too little material (here 0.1 against a target of 0.55) cannot reach the volume in one
    move-limited step: the step adds all the move limit allows (0.1 → 0.3 where the sensitivity is negative, an
    element at 0 stays at 0 as OC's multiplicative update leaves it) instead of dividing by a multiplier of zero."""
    x = np.full(200, 0.1)
    x[:20] = 0.0
    dc, dv = -np.linspace(1.0, 2.0, 200), np.ones(200)
    x_new, x_physical = optimality_criteria_update(x, dc, dv, 0.55, lambda v: v, move=0.2)
    np.testing.assert_allclose(x_new[20:], 0.3)
    np.testing.assert_array_equal(x_new[:20], 0.0)
    np.testing.assert_array_equal(x_physical, x_new)
    # A reachable target is still met by bisection, to its relative tolerance.
    x_new, _ = optimality_criteria_update(np.full(200, 0.5), dc, dv, 0.55, lambda v: v, move=0.2)
    assert abs(x_new.mean() / 0.55 - 1) < 2e-3


def test_simp_warm_started_far_below_a_large_volume_fraction_reaches_it() -> None:
    case = cantilever(32, 16, 0.55, 8.0, -90.0)
    result = optimize(case, rmin=1.5, initial_density=np.full((16, 32), 0.05), max_iterations=10)
    assert abs(result.density.mean() / 0.55 - 1) < 0.01 and np.isfinite(result.compliance)


def test_optimize_takes_the_dataset_settings_and_named_overrides() -> None:
    """One SIMP entry point: the dataset's settings by default, any field replaced by name, a typo refused."""
    case = cantilever(32, 16, 0.4, load_y=8.0, angle_deg=-90.0)
    default = optimize(case)
    explicit = optimize(case, DATASET_SOLVER, **DATASET_SOLVER.as_dict())
    np.testing.assert_array_equal(default.density, explicit.density)
    assert optimize(case, max_iterations=3).iterations == 3
    with pytest.raises(TypeError, match="filter_kind"):
        optimize(case, filter_kind="density")


def test_simp_iterations_spend_exactly_one_solve_per_iteration(monkeypatch) -> None:
    """n iterations are n solves even from a converged design (the tolerance would stop it at 1), and no more (no
    final solve), and the designs are optimize's own, iteration by iteration."""
    case = cantilever(32, 16, 0.4, load_y=8.0, angle_deg=-90.0)
    converged = optimize(case, max_iterations=1000)
    assert converged.converged
    solves = []
    original = FiniteElementModel.solve
    monkeypatch.setattr(FiniteElementModel, "solve", lambda self, *a: solves.append(1) or original(self, *a))
    designs = simp_iterations(case, 10, converged.density, keep=(0, 3, 10))
    assert len(solves) == 10 and sorted(designs) == [0, 3, 10]
    np.testing.assert_array_equal(designs[0], converged.density)
    monkeypatch.setattr(FiniteElementModel, "solve", original)
    reference = optimize(case, initial_density=converged.density, max_iterations=10, tolerance=0.0,
                         snapshot_every=1)
    np.testing.assert_array_equal(designs[3], reference.snapshots[2])
    np.testing.assert_array_equal(designs[10], reference.density)
    np.testing.assert_array_equal(simp_iterations(case, 4)[4], optimize(case, max_iterations=4, tolerance=0.0).density)
    with pytest.raises(ValueError, match="0 … 4"):
        simp_iterations(case, 4, keep=(5,))
