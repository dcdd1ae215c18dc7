"""utils.design_space: the differentiable compliance against finite differences, gradcheck and the solver's own
sensitivity (and lesson 9's exercise 9.1 solution against it); the volume projection's volume and implicit gradient;
the search's budget; judging at the volume target (the one judge's rule, against its definition). The studies built
on them: tests/test_studies.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tools.build_notebooks import LESSONS_DIR, build_lesson
from utils.data import load_topology_dataset
from utils.design_space import (
    ComplianceFunction,
    constant_sharpness,
    fe_problems,
    gradient_search,
    project_to_volume,
)
from utils.judging import Judge
from utils.metrics import floating_material, threshold_at_volume
from utils.topopt import (
    FiniteElementModel,
    cantilever,
    compliance,
    compliance_sensitivity,
    mbb_beam,
    young_modulus,
)

CASES = [(cantilever(8, 4, 0.5, 1.0, -70.0), 1e-9), (mbb_beam(6, 3, 0.4), 1e-3), (cantilever(5, 5, 0.4, 5.0, -120.0),
                                                                                  1e-2)]


def _densities(case, rng: np.random.Generator, batch: int = 2) -> torch.Tensor:
    x = rng.uniform(0.0, 1.0, (batch, case.nely, case.nelx))
    x[:, 0, 0], x[:, -1, -1] = 0.0, 1.0
    return torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize(("case", "e_min"), CASES)
def test_compliance_forward_is_the_solvers_and_gradcheck_passes(case, e_min) -> None:
    rng = np.random.default_rng(1)
    problems = fe_problems([case, case], e_min=e_min)
    x = _densities(case, rng)
    values = ComplianceFunction.apply(x, problems)
    expected = [compliance(d, case, 3.0, e_min=e_min) for d in x.detach().numpy()]
    np.testing.assert_allclose(values.detach().numpy(), expected, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda d: ComplianceFunction.apply(d, problems), (x,), eps=1e-6, atol=1e-4,
                                    rtol=1e-3)
    assert all(p.solves > 1 for p in problems)  # one solve per forward pass: the first call and gradcheck's


@pytest.mark.parametrize(("case", "e_min"), CASES)
def test_compliance_gradient_matches_central_differences(case, e_min) -> None:
    rng = np.random.default_rng(2)
    problems = fe_problems([case], e_min=e_min)
    x = torch.tensor(rng.uniform(0.1, 0.95, (1, case.nely, case.nelx)), requires_grad=True)
    (grad,) = torch.autograd.grad(ComplianceFunction.apply(x, problems).sum(), x)
    h = 1e-6
    for row, col in [(0, 0), (case.nely - 1, case.nelx - 1), (1, 2)]:
        up, down = x.detach().numpy()[0].copy(), x.detach().numpy()[0].copy()
        up[row, col] += h
        down[row, col] -= h
        numeric = (compliance(up, case, 3.0, e_min=e_min) - compliance(down, case, 3.0, e_min=e_min)) / (2 * h)
        assert grad[0, row, col].item() == pytest.approx(numeric, rel=1e-5)


def test_compliance_gradient_is_the_solvers_sensitivity_times_the_incoming_gradient() -> None:
    case = cantilever(12, 6, 0.4, 2.0, -80.0)
    problems = fe_problems([case, case])
    x = _densities(case, np.random.default_rng(3))
    weights = torch.tensor([0.3, 2.5], dtype=torch.float64)
    (grad,) = torch.autograd.grad((weights * ComplianceFunction.apply(x, problems)).sum(), x)
    model = problems[0].model
    for b in range(2):
        design = x.detach().numpy()[b].ravel(order="F")
        energies = model.element_energies(model.solve(young_modulus(design, 3.0), case.force_vector()))
        # utils.topopt.optimize's line: dc = -penal * (E0 - E_MIN) * x_physical ** (penal - 1) * energies
        solver = -3.0 * (1.0 - 1e-9) * design ** 2.0 * energies
        np.testing.assert_array_equal(grad[b].numpy(), weights[b].item() * compliance_sensitivity(
            design, energies, 3.0).reshape(case.nely, case.nelx, order="F"))
        np.testing.assert_allclose(compliance_sensitivity(design, energies, 3.0), solver, rtol=1e-15)


def test_lesson_9s_exercise_solution_agrees_with_the_utils_version() -> None:
    lesson = build_lesson(LESSONS_DIR / "09_designing_in_latent_space.py")
    cells = [cell.source for cell in lesson.solution.cells if cell.cell_type == "code"]
    namespace: dict = {}
    exec(cells[0].split("use_course_style()")[0], namespace)  # the imports
    exec(next(source for source in cells if source.startswith("def as_image")), namespace)
    exec(next(source for source in cells if "class Compliance(torch.autograd.Function)" in source), namespace)
    rng = np.random.default_rng(4)
    for case, e_min in CASES:
        problems = fe_problems([case, case], e_min=e_min)
        x = _densities(case, rng)
        weights = torch.tensor(rng.uniform(0.5, 2.0, 2))
        lesson_value = namespace["Compliance"].apply(x, problems)
        utils_value = ComplianceFunction.apply(x, problems)
        np.testing.assert_allclose(lesson_value.detach().numpy(), utils_value.detach().numpy(), rtol=1e-13)
        (lesson_grad,) = torch.autograd.grad((weights * lesson_value).sum(), x)
        (utils_grad,) = torch.autograd.grad((weights * utils_value).sum(), x)
        np.testing.assert_allclose(lesson_grad.numpy(), utils_grad.numpy(), rtol=1e-10,
                                   atol=1e-12 * np.abs(utils_grad.numpy()).max())


@pytest.mark.parametrize("sharpness", [1.0, 4.0])
def test_projection_meets_the_volume_and_its_gradient_matches_finite_differences(sharpness) -> None:
    generator = torch.Generator().manual_seed(5)
    logits = (3 * torch.randn(3, 6, 7, generator=generator, dtype=torch.float64)).requires_grad_(True)
    volumes = torch.tensor([0.3, 0.45, 0.6], dtype=torch.float64)
    density = project_to_volume(logits, volumes, sharpness)
    assert (density.mean((1, 2)) - volumes).abs().max() < 1e-12
    assert torch.autograd.gradcheck(lambda v: project_to_volume(v, volumes, sharpness), (logits,), eps=1e-6,
                                    atol=1e-7, rtol=1e-5)
    (volume_gradient,) = torch.autograd.grad(project_to_volume(logits, volumes, sharpness).sum(), logits)
    assert volume_gradient.abs().max() < 1e-12  # the volume does not move, whatever the logits


def test_a_search_spends_exactly_its_budget_and_keeps_the_requested_designs() -> None:
    case = cantilever(10, 5, 0.4, 2.0, -90.0)
    problems = fe_problems([case, case])
    z = torch.zeros(2, 3, requires_grad=True)
    decoder = torch.nn.Linear(3, 50).double()
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    before = decoder.weight.clone()
    volumes = torch.tensor([0.4, 0.4], dtype=torch.float64)
    result = gradient_search([z], lambda: decoder(z.double()).reshape(2, 5, 10), problems, volumes, 7, 0.1,
                             keep=(0, 2, 7), sharpness=constant_sharpness(1.0))
    assert [p.solves for p in problems] == [7, 7]
    assert sorted(result.designs) == [0, 2, 7] and result.history.shape == (7, 2)
    assert torch.equal(decoder.weight, before)
    assert np.all(np.abs(result.designs[7].mean(axis=(1, 2)) - 0.4) < 1e-6)
    assert result.history[-1].sum() < result.history[0].sum()
    assert constant_sharpness(2.0)(99) == 2.0


def test_the_target_volume_rule_is_its_definition() -> None:
    few = load_topology_dataset().subset("validation").take(np.arange(3))
    judge = Judge(few)
    rng = np.random.default_rng(3)
    designs = np.clip(few.density + rng.normal(0.0, 0.25, few.density.shape), 0.0, 1.0)
    metrics = judge(designs, "at_target_volume")
    for i in range(len(few)):  # by hand: both thresholded at the target, a model of their own, the course's E_min
        case = few.load_case(i)
        model = FiniteElementModel(case.nelx, case.nely, case.fixed_dofs)
        mine = compliance(threshold_at_volume(designs[i], few.volfrac[i]), case, 3.0, model, 1e-9)
        simp = compliance(threshold_at_volume(few.density[i], few.volfrac[i]), case, 3.0, model, 1e-9)
        assert metrics.compliance_error[i] == pytest.approx(mine / simp - 1, rel=1e-10)
        assert metrics.floating_material[i] == floating_material(threshold_at_volume(designs[i], few.volfrac[i]))
    assert np.all(metrics.judged_volume_error <= 0.5 / (32 * 64) / few.volfrac)  # round(V·N) pixels: rounding only
    np.testing.assert_allclose(judge(few.density, "at_target_volume").compliance_error, 0.0, atol=1e-12)
    assert not np.allclose(metrics.compliance_error, judge(designs).compliance_error)  # another rule, other figures
