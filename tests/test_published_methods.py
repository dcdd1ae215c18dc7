"""The cited methods of lesson 9 (studies/published_methods.py) against their authors' descriptions: Hoyer et al.'s
CNN stage by stage (shapes, parameter counts, initialisation, the order tanh → upsampling → normalisation →
convolution → offset), their cone filter's weights, the volume-constrained sigmoid, L-BFGS-B with their settings and
the best design over the trajectory; CMA-ES's defaults. Each control shares its method's projection, start and
budget, and a method given b solves spends exactly b (counted at the finite-element solver)."""
from __future__ import annotations

import math

import cma
import numpy as np
import pytest
import scipy.optimize
import torch

import studies.published_methods as published
from studies.harness import LABELS, StudyProblems
from studies.methods import LBFGS_OPTIONS, lbfgs_best_over_trajectory
from studies.published_methods import (
    CONE_RADIUS,
    ConeFilter,
    HoyerCNN,
    Stage,
    cmaes_methods,
    coarse_pixel_space,
    cone_filter_matrix,
    cvae_latent_space,
    hoyer_methods,
    hoyer_parameters,
    physical_density,
    thresholded_compliances,
)
from utils.cvae import ConditionalVAE
from utils.data import TopologyData, load_topology_dataset
from utils.design_space import fe_problems, frozen
from utils.metrics import threshold_at_volume
from utils.topopt import FiniteElementModel, compliance

NELY, NELX = 32, 64


@pytest.fixture(scope="module")
def one() -> TopologyData:
    return load_topology_dataset().subset("validation").take(np.arange(1))


@pytest.fixture(scope="module")
def cvae() -> ConditionalVAE:
    """A small untrained CVAE (the rules tested do not depend on training)."""
    torch.manual_seed(0)
    return frozen(ConditionalVAE(4, 4, "learned"))


def _stage_outputs(network: HoyerCNN) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for stage in network.stages]
    network()
    for hook in hooks:
        hook.remove()
    return outputs


def test_the_cnn_has_their_shapes_and_parameter_counts() -> None:
    """128-d input, a dense layer to 4 × 8 × 32 (their 32 channels at 1/8 of 32 × 64), then stages ending at
    128 × 4 × 8, 64 × 8 × 16, 32 × 16 × 32, 16 × 32 × 64, 1 × 32 × 64; every count by hand."""
    network = HoyerCNN(NELY, NELX, seed=0)
    assert network.z.shape == (1, 128) and network.grid == (4, 8)
    assert [tuple(o.shape) for o in _stage_outputs(network)] == [(1, 128, 4, 8), (1, 64, 8, 16), (1, 32, 16, 32),
                                                                (1, 16, 32, 64), (1, 1, 32, 64)]
    assert network().shape == (1, NELY, NELX)
    assert network.dense.weight.numel() + network.dense.bias.numel() == 128 * 1024 + 1024
    channels, sizes = (32, 128, 64, 32, 16, 1), ((4, 8), (8, 16), (16, 32), (32, 64), (32, 64))
    for k, stage in enumerate(network.stages):
        assert stage.conv.weight.shape == (channels[k + 1], channels[k], 5, 5)
        assert stage.conv.bias.numel() == channels[k + 1]
        assert stage.offset.shape == (1, channels[k + 1], *sizes[k])
    by_hand = 128 + 128 * 1024 + 1024 + sum(
        25 * channels[k] * channels[k + 1] + channels[k + 1] + channels[k + 1] * sizes[k][0] * sizes[k][1]
        for k in range(5))
    assert sum(p.numel() for p in network.parameters()) == by_hand == 567553
    assert all(p.requires_grad for p in network.parameters())
    with pytest.raises(ValueError, match="divisible by 8"):
        HoyerCNN(30, 64, seed=0)


def test_the_cnn_is_initialised_as_theirs() -> None:
    """z ~ N(0, 1); the dense kernel orthogonal with gain √8 (WᵀW = 8 I), zero biases; each convolution a fan-in
    truncated normal (|w| ≤ 2 standard deviations, spread √(1 / fan-in)); offsets zero. Seeded, and the global
    generator untouched."""
    state = torch.random.get_rng_state()
    network = HoyerCNN(NELY, NELX, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    weight = network.dense.weight.detach().double()
    np.testing.assert_allclose((weight.T @ weight).numpy(), 8 * np.eye(128), atol=1e-4)
    assert float(network.dense.bias.detach().abs().max()) == 0
    big = network.stages[1].conv.weight.detach()  # 204,800 weights, fan-in 128 · 25
    assert abs(float(big.std()) * math.sqrt(128 * 25) - 1) < 0.02
    assert float(big.abs().max()) <= 2 * math.sqrt(1 / (128 * 25)) / published.TRUNCATED_NORMAL_STD + 1e-7
    assert all(float(stage.offset.detach().abs().max()) == 0 for stage in network.stages)
    assert torch.equal(HoyerCNN(NELY, NELX, seed=3)(), network())
    assert not torch.equal(HoyerCNN(NELY, NELX, seed=4)(), network())


def test_a_stage_is_tanh_upsampling_normalisation_convolution_offset() -> None:
    """A stage by hand: bilinear upsampling by 2 with half-pixel centres ([a, b] → [a, ¾a + ¼b, ¼a + ¾b, b]), the
    normalisation over the whole tensor, the 5×5 convolution with 'same' padding, then 10 × the offset."""
    torch.manual_seed(0)
    stage = Stage(1, 1, resize=2, out_size=(2, 4))
    with torch.no_grad():
        stage.conv.weight.zero_()
        stage.conv.weight[0, 0, 2, 2] = 1.0  # the identity kernel
        stage.offset[0, 0, 1, 3] = 0.5
    x = torch.tensor([[[[0.3, -1.2]]]])
    a, b = math.tanh(0.3), math.tanh(-1.2)
    row = np.array([a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b])
    upsampled = np.stack([row, row])
    expected = (upsampled - upsampled.mean()) / np.sqrt(upsampled.var() + 1e-6)
    expected[1, 3] += 10 * 0.5
    np.testing.assert_allclose(stage(x).detach().numpy()[0, 0], expected, rtol=1e-5, atol=1e-6)


def test_the_cone_filter_has_their_weights() -> None:
    """Weight max(0, 2 − distance) to each in-grid element, normalised per output element: an impulse inside and
    one in the corner, by hand; constants pass unchanged; the backward pass is the transpose (gradcheck)."""
    impulse = torch.zeros(1, NELY, NELX, dtype=torch.float64)
    impulse[0, 10, 20] = 1.0
    out = ConeFilter.apply(impulse, CONE_RADIUS)[0].numpy()
    inside = 2 + 4 * 1 + 4 * (2 - math.sqrt(2))
    assert out[10, 20] == pytest.approx(2 / inside, rel=1e-12)
    assert out[10, 21] == pytest.approx(1 / inside, rel=1e-12)
    assert out[11, 21] == pytest.approx((2 - math.sqrt(2)) / inside, rel=1e-12)
    assert out[10, 22] == 0 and out[12, 20] == 0 and np.count_nonzero(out) == 9
    corner = torch.zeros(1, NELY, NELX, dtype=torch.float64)
    corner[0, 0, 0] = 1.0
    assert ConeFilter.apply(corner, CONE_RADIUS)[0, 0, 0] == pytest.approx(2 / (2 + 2 + 2 - math.sqrt(2)), rel=1e-12)
    np.testing.assert_allclose(ConeFilter.apply(torch.full((2, NELY, NELX), 0.4, dtype=torch.float64), 2.0), 0.4,
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(cone_filter_matrix(NELY, NELX).sum(axis=1)).ravel(), 1.0, rtol=1e-12)
    small = torch.rand(1, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ConeFilter.apply(x, CONE_RADIUS), (small,))


def test_the_physical_density_is_the_constrained_sigmoid_then_the_filter() -> None:
    """sigmoid(x + b) with b found independently (scipy's brentq) so its mean is the volume fraction, then the cone
    filter."""
    logits = torch.randn(1, NELY, NELX, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    x = logits.numpy().ravel()
    shift = scipy.optimize.brentq(lambda b: np.mean(1 / (1 + np.exp(-(x + b)))) - 0.37, -50, 50, xtol=1e-14)
    sigmoid = torch.as_tensor(1 / (1 + np.exp(-(logits.numpy() + shift))))
    np.testing.assert_allclose(physical_density(logits, 0.37).numpy(), ConeFilter.apply(sigmoid, 2.0).numpy(),
                               atol=1e-10)


def test_the_optimiser_is_their_lbfgs_b(monkeypatch) -> None:
    """scipy's L-BFGS-B with memory 10, factr = 1 (ftol = machine epsilon) and pgtol = 1e-14; on a quadratic it
    reaches the minimum."""
    calls = []
    original = scipy.optimize.minimize
    monkeypatch.setattr(published.scipy.optimize, "minimize",
                        lambda *a, **k: calls.append(k) or original(*a, **k))
    x = torch.tensor([3.0, -2.0, 1.0], dtype=torch.float64, requires_grad=True)
    scales = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    trajectory = lbfgs_best_over_trajectory([x], lambda: ((scales * (x - 1) ** 2).sum(), x.detach().clone()),
                                            lambda: x.detach().clone(), 40, (0, 40))
    assert calls and all(k["method"] == "L-BFGS-B" and k["jac"] is True for k in calls)
    assert calls[0]["options"]["maxcor"] == 10 and calls[0]["options"]["gtol"] == 1e-14
    assert calls[0]["options"]["ftol"] == np.finfo(float).eps == LBFGS_OPTIONS["ftol"]
    np.testing.assert_allclose(trajectory.designs[40], 1.0, atol=1e-6)
    np.testing.assert_array_equal(trajectory.designs[0], [3.0, -2.0, 1.0])
    assert len(trajectory.losses) == 40


def test_the_design_is_the_best_over_the_trajectory_not_the_last() -> None:
    """Losses that rise after their minimum (a flat objective makes L-BFGS-B stop and restart at every evaluation):
    the design at budget b is the one of the lowest loss among the first b evaluations."""
    losses = iter([5.0, 3.0, 4.0, 1.0, 2.0, 6.0, 7.0])
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    count = []

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        count.append(1)
        return x.sum() * 0 + next(losses), torch.tensor([float(len(count))])

    trajectory = lbfgs_best_over_trajectory([x], objective, lambda: torch.tensor([0.0]), 7, (1, 2, 3, 4, 5, 7))
    assert {b: float(d[0]) for b, d in trajectory.designs.items()} == {1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 7: 4}
    assert trajectory.restarts >= 6 and len(trajectory.losses) == 7


def _counted_solves(monkeypatch) -> list[int]:
    solves: list[int] = []
    original = FiniteElementModel.solve
    monkeypatch.setattr(FiniteElementModel, "solve", lambda self, *a: solves.append(1) or original(self, *a))
    return solves


def test_hoyer_and_its_controls_spend_exactly_b_and_share_projection_and_start(one, monkeypatch) -> None:
    """Each of the CNN and its two pixel controls: exactly the largest budget's solves (line-search evaluations
    counted), the physical density of every evaluation through the one projection and filter, the best grey
    compliance non-increasing in b; the CNN and the pixels from its start begin from one design, the other pixels
    from the uniform design."""
    solves = _counted_solves(monkeypatch)
    projected = []
    original = published.physical_density
    monkeypatch.setattr(published, "physical_density", lambda *a: projected.append(1) or original(*a))
    budgets = (0, 1, 4, 9)
    results = {}
    for method in hoyer_methods(seed=0):
        solves.clear()
        projected.clear()
        problems = StudyProblems.of(one, "at_target_volume")
        results[method.key] = result = method.run(problems, budgets)
        assert len(solves) == 9 and len(projected) >= 9, method.key
        assert all(np.all(result.solves[b] == b) for b in budgets)
        case = problems.judge.load_cases[0]
        grey = [compliance(result.designs[b][0], case) for b in budgets[1:]]
        assert all(later <= earlier * (1 + 1e-9) for earlier, later in zip(grey, grey[1:], strict=False)), method.key
        np.testing.assert_allclose(result.designs[9].mean(), case.volfrac, atol=0.02)  # the filter moves a little
    cnn, pixels, from_cnn = (results[k].designs[0] for k in ("hoyer_cnn_lbfgs", "hoyer_pixels_lbfgs",
                                                            "hoyer_pixels_lbfgs_cnn_start"))
    np.testing.assert_allclose(cnn, from_cnn, atol=1e-6)
    np.testing.assert_allclose(pixels, one.volfrac[0], atol=1e-12)
    parameters, logits = hoyer_parameters("pixels_from_cnn", NELY, NELX, 0.4, seed=5)
    np.testing.assert_allclose(logits().detach().numpy(), HoyerCNN(NELY, NELX, 5)().detach().numpy(), rtol=1e-6)
    assert len(parameters) == 1 and parameters[0].numel() == NELY * NELX
    assert all(key in LABELS for key in results)


def test_cmaes_uses_the_package_defaults() -> None:
    """The populations the results quote: 4 + ⌊3 ln d⌋, 12 in 16 dimensions and 18 in 128."""
    assert cma.CMAEvolutionStrategy(np.zeros(16), 1.0, {"verbose": -9}).popsize == 12
    assert cma.CMAEvolutionStrategy(np.zeros(128), 1.0, {"verbose": -9}).popsize == 18


def test_cmaes_and_its_controls_spend_exactly_b_on_the_judges_fitness(one, cvae, monkeypatch) -> None:
    """Each CMA-ES search: exactly the largest budget's solves, including a last partial generation; the design at
    b thresholded at the volume target has the lowest compliance of the candidates so far, non-increasing; the
    latent starts at μ_p(c) with spread σ_p(c), the coarse pixels at a uniform design or the CVAE's pooled."""
    solves = _counted_solves(monkeypatch)
    budgets = (0, 1, 13, 30)  # 30 is not a multiple of either population
    for method in cmaes_methods(cvae, seed=0):
        solves.clear()
        problems = StudyProblems.of(one, "at_target_volume")
        result = method.run(problems, budgets)
        assert len(solves) == 30 and all(np.all(result.solves[b] == b) for b in budgets), method.key
        costs = [problems.judge.compliances_at(result.designs[b], "at_target_volume")[0] for b in budgets[1:]]
        assert costs == sorted(costs, reverse=True), method.key
        assert method.restarts == [0]
        np.testing.assert_allclose(result.designs[30].mean(), one.volfrac[0], atol=1e-6)  # the projection
    problems = StudyProblems.of(one, "at_target_volume")
    latent = cvae_latent_space(cvae)(problems)(0)
    mu, logvar = cvae.prior_moments(problems.conditions)
    np.testing.assert_allclose(latent.x0, mu[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(latent.stds, torch.exp(0.5 * logvar[0]).numpy(), rtol=1e-6)
    uniform = coarse_pixel_space()(problems)(0)
    np.testing.assert_array_equal(uniform.x0, 0.0)
    np.testing.assert_allclose(uniform.logits(uniform.x0[None]).numpy(), 0.0)
    pooled = coarse_pixel_space(cvae)(problems)(0)
    decoded = cvae.decode(mu, problems.conditions)[0, 0].double().numpy()
    np.testing.assert_allclose(pooled.x0[0], decoded[:4, :4].mean(), rtol=1e-5)


def test_the_fitness_is_the_judges_compliance(one) -> None:
    """One solve per candidate, the design thresholded at the volume target (the judge's rule)."""
    problems = StudyProblems.of(one, "at_target_volume")
    problem = fe_problems(problems.judge.load_cases)[0]
    designs = np.random.default_rng(0).random((3, NELY, NELX))
    fitness = thresholded_compliances(designs, problem)
    assert problem.solves == 3
    judged = [problems.judge.compliances_at(design[None], "at_target_volume")[0] for design in designs]
    np.testing.assert_allclose(fitness, judged, rtol=1e-12)
    solid = threshold_at_volume(designs, np.full(3, one.volfrac[0]))
    np.testing.assert_allclose(fitness[0], compliance(solid[0], problems.judge.load_cases[0]), rtol=1e-12)


def test_an_unknown_parametrisation_is_named() -> None:
    with pytest.raises(ValueError, match="unknown parametrisation 'voxels'"):
        hoyer_parameters("voxels", NELY, NELX, 0.4, 0)


def test_the_tool_writes_both_studies_with_intervals_and_verdicts(tmp_path) -> None:
    """make evaluate-published on two problems and small budgets: both sections, the figure tables to the budget,
    the paired intervals against each control, the tenfold comparison and a verdict per claim."""
    from tools.evaluate_published import main

    out = tmp_path / "published.md"
    assert main(["--hoyer-problems", "2", "--cmaes-problems", "2", "--hoyer-budget", "10", "--cmaes-budget", "100",
                 "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Neural reparametrisation, adapted from Hoyer et al. (2019): 2 test problems" in text
    assert "## Gradient-free search in a pre-trained latent, Kus & Bessa's claim: 2 test problems" in text
    for key in ("hoyer_cnn_lbfgs", "hoyer_pixels_lbfgs", "hoyer_pixels_lbfgs_cnn_start", "cmaes_cvae_latent",
                "cmaes_coarse_pixels", "cmaes_coarse_pixels_cvae_start", "simp_uniform"):
        assert f"| {LABELS[key]} |" in text
    assert f"| {LABELS['hoyer_cnn_lbfgs']} − {LABELS['hoyer_pixels_lbfgs']}, 10 solves |" in text
    assert f"| {LABELS['cmaes_cvae_latent']} at 10 − {LABELS['cmaes_coarse_pixels']} at 100 |" in text
    assert text.count("**Verdict on") == 3 and "median CE (95 % interval)" in text
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 3 + 5  # one per method and chunk, reused by a rerun
