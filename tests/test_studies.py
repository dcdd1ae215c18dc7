"""The studies' harness (studies/): a method given b solves spends exactly b finite-element solves per problem
(counted at the solver itself); each method against an independent construction (optimize, the judge by hand, the
search by hand); a subset of the problems gives the same figures as the whole set, so the lessons (a subset) and the
tools (every problem) agree; the tools write every table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from studies.cvae_study import RULE as CVAE_RULE
from studies.cvae_study import break_even_designs, run_cvae_study, stiffest_admissible
from studies.harness import LABELS, StudyProblems, judge_results, run_methods, solves_to_within
from studies.latent_study import (
    CONTROLS,
    OPTIMISER_CONTROLS,
    RULE,
    SEEDED_METHODS,
    TRAINED_METHODS,
    Choices,
    doubling_sharpness,
    latent_methods,
)
from studies.methods import Retrieval, SimpFrom, lbfgs_best_over_trajectory, sharpness_stages, untrained_copy
from utils.cvae import ConditionalVAE
from utils.data import TopologyData, load_topology_dataset
from utils.design_space import frozen, project_to_volume
from utils.metrics import DesignMetrics
from utils.topopt import FiniteElementModel, optimize
from utils.vae import ConvVAE, Decoder


@pytest.fixture(scope="module")
def few() -> TopologyData:
    return load_topology_dataset().subset("test").take(np.arange(3))


@pytest.fixture(scope="module")
def models() -> tuple[ConditionalVAE, ConditionalVAE, ConvVAE]:
    """Small untrained models (the harness's rules do not depend on training)."""
    torch.manual_seed(0)
    return (frozen(ConditionalVAE(4, 4, "learned")), frozen(ConditionalVAE(0, 4)), frozen(ConvVAE(4, 4)))


SMALL_CHOICES = Choices(switch=5)


def _methods(models, seed: int = 0, seeded_only: bool = False, choices: Choices = SMALL_CHOICES) -> list:
    cvae, baseline, vae = models
    training = load_topology_dataset().subset("train").take(np.arange(40))
    return latent_methods(cvae, baseline, vae, Retrieval.of(training), choices, seed, seeded_only=seeded_only)


@pytest.mark.parametrize("budgets", [(1,), (6,), (3, 12)])
def test_a_method_given_b_solves_spends_exactly_b(few, models, budgets, monkeypatch) -> None:
    """Every method of both studies, counted at the finite-element solver: b solves per problem for the largest
    budget asked (the smaller ones are on the way), the same in its result, and no solve for judging."""
    solves = []
    original = FiniteElementModel.solve
    monkeypatch.setattr(FiniteElementModel, "solve", lambda self, *a: solves.append(1) or original(self, *a))
    for method in _methods(models):
        problems = StudyProblems.of(few, RULE)
        solves.clear()
        result = method.run(problems, budgets)
        assert len(solves) == max(budgets) * len(few), method.key
        assert sorted(result.designs) == sorted(budgets) == sorted(result.seconds), method.key
        for b in budgets:
            np.testing.assert_array_equal(result.solves[b], b)
            assert result.designs[b].shape == few.density.shape and result.seconds[b] >= 0
        assert all(result.seconds[a] <= result.seconds[b] for a, b in zip(budgets[:-1], budgets[1:], strict=True)), \
            method.key


def test_simp_from_a_start_is_optimize_iteration_by_iteration(few, models) -> None:
    problems = StudyProblems.of(few, CVAE_RULE)
    uniform = SimpFrom("simp_uniform").run(problems, (1, 4))
    warm = [m for m in _methods(models) if m.key == "simp_from_cvae"][0].run(problems, (3,))
    for i in range(len(few)):
        case = few.load_case(i)
        np.testing.assert_allclose(uniform.designs[4][i], optimize(case, max_iterations=4, tolerance=0.0).density,
                                   rtol=1e-12)
        direct = optimize(case, initial_density=warm.decoded[i], max_iterations=3, tolerance=0.0).density
        np.testing.assert_allclose(warm.designs[3][i], direct, rtol=1e-12)


def test_best_of_b_keeps_the_stiffest_of_its_first_b_candidates_under_the_studys_rule(few, models) -> None:
    cvae = models[0]
    problems = StudyProblems.of(few, RULE)
    best = [m for m in _methods(models) if m.key == "best_of_cvae"][0].run(problems, (1, 3))
    with torch.no_grad():  # by hand: μ_p(c) first, then draws from the seed, each judged at the target
        mu, logvar = cvae.prior_moments(problems.conditions)
        noise = torch.as_tensor(np.stack([np.random.default_rng([0, i]).standard_normal((2, mu.shape[1]))
                                          for i in range(len(few))], axis=1), dtype=mu.dtype)
        latents = torch.cat([mu[None], mu + torch.exp(0.5 * logvar) * noise])
        candidates = np.stack([torch.sigmoid(cvae.decode(z, problems.conditions))[:, 0].double().numpy()
                               for z in latents])
    np.testing.assert_allclose(best.designs[1], candidates[0], atol=1e-6)
    errors = np.stack([problems.judge(c, RULE).compliance_error for c in candidates])
    np.testing.assert_allclose(problems.judge(best.designs[3], RULE).compliance_error, errors.min(axis=0), rtol=1e-9)


def test_two_stage_methods_are_their_first_stage_then_simp(few, models) -> None:
    problems = StudyProblems.of(few, RULE)
    methods = {m.key: m for m in _methods(models)}
    results = run_methods([methods["cvae_latent_sharpening"], methods["cvae_latent_then_simp"],
                           methods["cvae_latent_from_best"], methods["best_of_cvae"]], problems, (2, 5, 8))
    then_simp, sharpening = results["cvae_latent_then_simp"], results["cvae_latent_sharpening"]
    np.testing.assert_array_equal(then_simp.designs[5], sharpening.designs[5])
    for i in range(len(few)):
        direct = optimize(few.load_case(i), initial_density=sharpening.designs[5][i], max_iterations=3,
                          tolerance=0.0).density
        np.testing.assert_allclose(then_simp.designs[8][i], direct, rtol=1e-12)
    # A search from the best of 5: its designs up to 5 solves are best of b's.
    for b in (2, 5):
        np.testing.assert_array_equal(results["cvae_latent_from_best"].designs[b], results["best_of_cvae"].designs[b])


def test_each_control_shares_its_methods_start_projection_schedule_and_budget(few, models, monkeypatch) -> None:
    """Adam on the pixels against the latent search: with a learning rate of 0 (neither moves) both give the same
    designs at every budget, so they share the start (the CVAE's logits at μ_p(c)), the projection and the
    sharpening schedule, and differ in the variables only; both call the one search loop with the same budget and
    schedule. The SIMP controls start from what they name and run the same SIMP."""
    import studies.methods as methods_module
    problems = StudyProblems.of(few, RULE)
    frozen_choices = Choices(latent_lr=0.0, pixel_lr=0.0, sharpening_every=2)
    still = {m.key: m for m in _methods(models, choices=frozen_choices)}
    searched = run_methods([still["cvae_latent_sharpening"], still["pixel_adam_sharpening"]], problems, (1, 3, 6))
    for b in (1, 3, 6):
        np.testing.assert_allclose(searched["pixel_adam_sharpening"].designs[b],
                                   searched["cvae_latent_sharpening"].designs[b], atol=1e-6)
    assert not np.allclose(searched["cvae_latent_sharpening"].designs[1], searched["cvae_latent_sharpening"].designs[6])
    calls = []
    original = methods_module.gradient_search
    monkeypatch.setattr(methods_module, "gradient_search",
                        lambda *args: calls.append((args[4], args[5], args[7])) or original(*args))
    methods = {m.key: m for m in _methods(models)}
    for key in ("cvae_latent_sharpening", "pixel_adam_sharpening"):
        methods[key].run(StudyProblems.of(few, RULE), (2, 7))
    (budget, lr, schedule), (pixel_budget, pixel_lr, pixel_schedule) = calls
    assert budget == pixel_budget == 7 and (lr, pixel_lr) == (Choices().latent_lr, Choices().pixel_lr)
    assert [schedule(s) for s in range(40)] == [pixel_schedule(s) for s in range(40)]
    assert set(CONTROLS) | set(CONTROLS.values()) <= {m.key for m in _methods(models)}
    # The SIMP controls: SIMP from the nearest training design, and the blend at α = 1 is SIMP from the design.
    cvae, baseline, vae = models
    training = load_topology_dataset().subset("train").take(np.arange(40))
    nearest = Retrieval.of(training).nearest(few, 1)[0]
    conditions = np.stack([training.volfrac, training.load_y, training.angle_deg], axis=1)
    spread = conditions.max(axis=0) - conditions.min(axis=0)
    for i in range(len(few)):  # by hand: the scaled Euclidean distance
        query = np.array([few.volfrac[i], few.load_y[i], few.angle_deg[i]])
        np.testing.assert_array_equal(nearest[i], training.density[np.argmin(
            np.linalg.norm((conditions - query) / spread, axis=1))])
    retrieved = methods["simp_from_retrieval"].run(StudyProblems.of(few, RULE), (3,))
    np.testing.assert_array_equal(retrieved.decoded, nearest)
    whole = latent_methods(cvae, baseline, vae, Retrieval.of(training), Choices(blend=1.0))
    blend, warm = (next(m for m in whole if m.key == key) for key in ("simp_from_cvae_blend", "simp_from_cvae"))
    np.testing.assert_allclose(blend.run(StudyProblems.of(few, RULE), (3,)).designs[3],
                               warm.run(StudyProblems.of(few, RULE), (3,)).designs[3], rtol=1e-12)
    half = latent_methods(cvae, baseline, vae, Retrieval.of(training), Choices(blend=0.25))
    started = next(m for m in half if m.key == "simp_from_cvae_blend").run(StudyProblems.of(few, RULE), (1,))
    decoded = warm.run(StudyProblems.of(few, RULE), (1,)).decoded
    np.testing.assert_allclose(started.decoded, 0.25 * decoded + 0.75 * few.volfrac[:, None, None], rtol=1e-12)


def test_the_lbfgs_controls_share_the_start_projection_and_schedule_of_the_adam_searches(few, models,
                                                                                          monkeypatch) -> None:
    """L-BFGS on the latent and on the pixels: the design at 1 solve is the first evaluation, the CVAE's logits at
    μ_p(c) projected at β(0), the same for both (they share the start and the projection); every evaluation k of a
    run uses the schedule's β(k), the one Adam's search uses at step k; each method's optimiser control is in the
    study."""
    import studies.methods as methods_module
    cvae = models[0]
    problems = StudyProblems.of(few, RULE)
    methods = {m.key: m for m in _methods(models, choices=Choices(sharpening_every=2))}
    betas: list[float] = []
    original = methods_module.project_to_volume
    monkeypatch.setattr(methods_module, "project_to_volume",
                        lambda logits, volume, beta: betas.append(beta) or original(logits, volume, beta))
    latent = methods["cvae_latent_lbfgs"].run(problems, (1, 7))
    evaluations = betas[:]  # per problem: the start (budget 0's design is not kept, so none), then 7 evaluations
    pixels = methods["pixel_lbfgs_sharpening"].run(problems, (1, 7))
    with torch.no_grad():
        mu = cvae.prior_moments(problems.conditions)[0]
        start = project_to_volume(cvae.decode(mu, problems.conditions)[:, 0].double(),
                                  torch.as_tensor(few.volfrac), 1.0).numpy()
    np.testing.assert_allclose(latent.designs[1], start, atol=1e-6)
    np.testing.assert_allclose(pixels.designs[1], start, atol=1e-6)
    schedule = Choices(sharpening_every=2).sharpening()
    assert evaluations == [schedule(k) for k in range(7)] * len(few)
    assert betas[len(evaluations):] == evaluations
    assert sharpness_stages(schedule, 7) == [2, 4, 6]
    keys = {m.key for m in _methods(models)}
    assert set(OPTIMISER_CONTROLS) | set(OPTIMISER_CONTROLS.values()) <= keys


def test_lbfgs_restarts_at_each_stage_from_the_stages_best_point_and_compares_losses_within_a_stage() -> None:
    """A continuation: Rosenbrock's function for 4 evaluations, then 10 + the same function about (−1, 1) (worse
    than every first-stage loss near the start). The first evaluation of the second stage is at the first stage's
    best point; the design after 4 evaluations is the first stage's best, after 5 or more the second stage's best
    (although a first-stage loss is lower); a stage end is not counted as a restart (neither stage converges in its
    evaluations); the budget is spent exactly."""
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    points: list[np.ndarray] = []

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        points.append(x.detach().numpy().copy())
        a = 1.0 if len(points) <= 4 else -1.0
        loss = (a - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2 + (0.0 if len(points) <= 4 else 10.0)
        return loss, x.detach().clone()

    trajectory = lbfgs_best_over_trajectory([x], objective, lambda: x.detach().clone(), 12, (4, 5, 12), stages=(4,))
    first, second = np.array(trajectory.losses[:4]), np.array(trajectory.losses[4:])
    best_first = points[int(np.argmin(first))]
    assert len(points) == len(trajectory.losses) == 12
    np.testing.assert_array_equal(points[4], best_first)
    np.testing.assert_array_equal(trajectory.designs[4], best_first)
    np.testing.assert_array_equal(trajectory.designs[5], best_first)  # the second stage's only point so far
    np.testing.assert_array_equal(trajectory.designs[12], points[4 + int(np.argmin(second))])
    assert second.min() < second[0] and first.min() < second.min()
    assert trajectory.restarts == 0


def test_the_trained_methods_are_those_whose_designs_change_with_the_trained_models(few) -> None:
    """Two sets of conditional models drawn from different seeds, the VAE and everything else alike: the methods
    whose designs differ are TRAINED_METHODS and the untrained decoder (which reads μ_p(c) but is not rerun)."""
    problems = StudyProblems.of(few.take(np.arange(2)), RULE)
    designs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cvae, baseline = frozen(ConditionalVAE(4, 4, "learned")), frozen(ConditionalVAE(0, 4))
        torch.manual_seed(7)
        vae = frozen(ConvVAE(4, 4))
        results = run_methods(_methods((cvae, baseline, vae)), problems, (3,))
        designs.append({key: result.designs[3] for key, result in results.items()})
    changed = {key for key in designs[0] if not np.array_equal(designs[0][key], designs[1][key])}
    assert changed == set(TRAINED_METHODS) | {"untrained_decoder"}

def test_the_seeded_methods_alone_are_the_full_comparisons_and_depend_on_the_seed(few, models) -> None:
    problems = StudyProblems.of(few.take(np.arange(2)), RULE)
    full = run_methods(_methods(models), problems, (1, 5, 7))
    alone = run_methods(_methods(models, seeded_only=True), problems, (1, 5, 7))
    other = run_methods(_methods(models, seed=1, seeded_only=True), problems, (1, 5, 7))
    assert set(alone) == set(SEEDED_METHODS) < set(full) and set(full) <= set(LABELS)
    for key in SEEDED_METHODS:
        for b, design in full[key].designs.items():
            np.testing.assert_array_equal(alone[key].designs[b], design)
        assert not np.array_equal(other[key].designs[7], full[key].designs[7])


def test_a_subset_of_the_problems_gives_the_same_figures_as_the_whole_set(few, models) -> None:
    """The lessons run the studies on the first problems, the tools on all of them (lesson 9's tool in chunks):
    every method's judged CE on the shared problems agrees."""
    whole, part = StudyProblems.of(few, RULE), StudyProblems.of(few.take(np.arange(2)), RULE)
    budgets = (1, 5, 7)
    whole_judged = judge_results(run_methods(_methods(models), whole, budgets), whole)
    part_judged = judge_results(run_methods(_methods(models), part, budgets), part)
    for key, per_budget in part_judged.items():
        for b, metrics in per_budget.items():
            np.testing.assert_allclose(metrics.compliance_error, whole_judged[key][b].compliance_error[:2],
                                       rtol=1e-6, err_msg=f"{key} at {b}")
    cvae, baseline, _ = models
    lesson = run_cvae_study(cvae, baseline, StudyProblems.of(few.take(np.arange(2)), CVAE_RULE), (1, 3))
    tool = run_cvae_study(cvae, baseline, StudyProblems.of(few, CVAE_RULE), (1, 3))
    for key in lesson.judgements:
        np.testing.assert_allclose(lesson.judgements[key][3].compliance_error,
                                   tool.judgements[key][3].compliance_error[:2], rtol=1e-6)
    assert set(lesson.rows((1, 3))) == set(tool.rows((1, 3)))


def test_solves_to_within_reads_the_first_budget_of_the_grid() -> None:
    def metrics(errors: list[float]) -> DesignMetrics:
        zeros = np.zeros(len(errors))
        return DesignMetrics(np.array(errors), zeros, zeros, zeros.astype(bool), zeros.astype(bool), zeros)
    per_budget = {5: metrics([0.005, 0.02, 0.3]), 1: metrics([0.5, 0.02, 0.3]), 20: metrics([0.0, -0.1, 0.2])}
    np.testing.assert_array_equal(solves_to_within(per_budget), [5.0, 20.0, np.nan])


def test_exercise_8_3s_rule_break_even_and_the_sharpening_schedule() -> None:
    compliances = np.array([[2.0, 5.0], [1.0, 1.0], [0.5, 3.0]])
    volumes = np.array([[0.40, 0.50], [0.41, 0.60], [0.45, 0.70]])
    np.testing.assert_array_equal(stiffest_admissible(compliances, volumes, np.array([0.40, 0.40]), 0.03), [1, 0])
    assert break_even_designs(600.0, 0.5, 0.1) == pytest.approx(1500.0)
    assert break_even_designs(600.0, 0.1, 0.2) == float("inf")
    schedule = doubling_sharpness(1.0, 10, 8.0)
    assert [schedule(s) for s in (0, 9, 10, 25, 45)] == [1.0, 1.0, 2.0, 4.0, 8.0]


def test_an_untrained_copy_has_the_architecture_and_fresh_trainable_weights() -> None:
    decoder = Decoder(4, 8)
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    fresh, again = untrained_copy(decoder, 0), untrained_copy(decoder, 0)
    assert [p.shape for p in fresh.parameters()] == [p.shape for p in decoder.parameters()]
    assert all(p.requires_grad for p in fresh.parameters())
    assert not torch.equal(fresh.from_latent.weight, decoder.from_latent.weight)
    assert torch.equal(fresh.from_latent.weight, again.from_latent.weight)


def test_nothing_in_utils_imports_a_study() -> None:
    from utils.paths import REPO_ROOT
    offenders = [path.name for path in (REPO_ROOT / "utils").rglob("*.py")
                 if "studies" in "".join(line for line in path.read_text().splitlines()
                                         if line.startswith(("import ", "from ")))]
    assert offenders == []


def test_evaluate_latent_writes_every_table(tmp_path) -> None:
    from tools import evaluate_latent

    out = tmp_path / "latent.md"
    assert evaluate_latent.main(["--problems", "2", "--validation", "2", "--largest", "5", "--out", str(out),
                                 "--cache", str(tmp_path / "cache")]) == 0
    text = out.read_text()
    for heading in ("median signed CE", "95th percentile of CE", "share with floating material", "At 5 solves",
                    "2 test problems", "2 out-of-distribution problems", "Grey against thresholded"):
        assert heading in text
    assert "--largest 5" in text.splitlines()[2]


def test_the_seed_study_writes_a_range_per_seeded_method_and_budget(tmp_path) -> None:
    from tools import evaluate_latent

    out = tmp_path / "latent_seeds.md"
    assert evaluate_latent.main(["--seeds", "0", "1", "--problems", "2", "--validation", "2", "--untrained", "1",
                                 "--seed-out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ") and " – " in line]
    assert len(rows) == 2 * len(SEEDED_METHODS) * len(evaluate_latent.SEED_BUDGETS)  # test and out of distribution
    for row in rows:
        for cell in row[2:]:
            low, high = (np.inf if v.startswith(">") else float(v.rstrip("%"))
                         for v in cell.strip(" |").split(" – "))
            assert low <= high
    assert any(cell.split(" – ")[0] != cell.split(" – ")[1] for row in rows for cell in row[2:])  # seeds matter


def test_the_paired_bootstrap_of_a_mean_matches_the_normal_interval_and_covers_the_truth() -> None:
    """Against the closed form: for a mean difference of paired normal data, the percentile interval is close to
    d̄ ± 1.96 s / √N; and over repeated data sets the 95 % interval covers the true difference about 95 % of the
    time (the paired design cancels what A and B share)."""
    from studies.uncertainty import paired_bootstrap
    mean = lambda x, axis: np.mean(x, axis=axis)  # noqa: E731
    rng = np.random.default_rng(1)
    shared = rng.normal(0.0, 5.0, 400)
    a, b = shared + rng.normal(0.3, 1.0, 400), shared + rng.normal(0.0, 1.0, 400)
    interval = paired_bootstrap(a, b, mean, resamples=4000)
    d = a - b
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert interval.estimate == pytest.approx(d.mean())
    assert interval.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert interval.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    covered = 0
    for trial in range(200):
        noise = np.random.default_rng(100 + trial)
        common = noise.normal(0.0, 5.0, 60)
        x, y = common + noise.normal(0.3, 1.0, 60), common + noise.normal(0.0, 1.0, 60)
        result = paired_bootstrap(x, y, mean, resamples=500, seed=trial)
        covered += result.low <= 0.3 <= result.high
    assert 0.88 <= covered / 200 <= 0.99
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap(a, b[:-1], mean)


def test_the_seed_verdict_reads_every_seeds_interval() -> None:
    from studies.uncertainty import Interval, seed_verdict
    below, above, across = Interval(-0.02, -0.03, -0.01), Interval(0.02, 0.01, 0.03), Interval(0.0, -0.01, 0.01)
    assert seed_verdict([below, below, below]) == "lower on every seed"
    assert seed_verdict([above, above]) == "higher on every seed"
    assert seed_verdict([across, across, across]) == "no seed excludes 0"
    assert seed_verdict([below, across, below]) == seed_verdict([below, above]) == "seed-dependent"


def test_the_training_seed_study_writes_each_trained_methods_range_and_each_conclusion_seed_by_seed(tmp_path) -> None:
    from tools import evaluate_latent

    out = tmp_path / "latent_training_seeds.md"
    assert evaluate_latent.main(["--training-seeds", "0", "1", "--problems", "2", "--validation", "2", "--largest",
                                 "10", "--untrained", "1", "--training-seed-out", str(out), "--cache",
                                 str(tmp_path / "cache")]) == 0
    text = out.read_text()
    assert "--training-seeds 0 1 --problems 2 --largest 10" in text.splitlines()[2]
    ranges = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and " – " in line]
    assert len(ranges) == 2 * len(TRAINED_METHODS)  # test and out of distribution, at 10 solves
    assert {row[0].strip("| ") for row in ranges} == {LABELS[m] for m in TRAINED_METHODS}
    assert any(cell.split(" – ")[0] != cell.split(" – ")[1] for row in ranges for cell in row[2:])  # seeds matter
    verdicts = [line.rsplit(" | ", 1)[1].strip(" |") for line in text.splitlines()
                if line.startswith("| ") and "seed 0" not in line and " − " in line]
    assert len(verdicts) == 2 * 2 * len(evaluate_latent.CONCLUSION_PAIRS)  # two sets, two statistics
    assert set(verdicts) <= {"lower on every seed", "higher on every seed", "no seed excludes 0", "seed-dependent"}


def test_lesson8s_training_seed_study_writes_each_designs_range_and_each_conclusion_seed_by_seed(tmp_path) -> None:
    from tools import evaluate_cvae

    out = tmp_path / "cvae_training_seeds.md"
    assert evaluate_cvae.main(["--training-seeds", "0", "1", "--problems", "2", "--training-seed-out",
                               str(out)]) == 0
    lines = out.read_text().splitlines()
    ranges = [line.strip("| ").split(" | ") for line in lines if line.startswith("| ") and " – " in line]
    designs = [row for row in ranges if row[0] in evaluate_cvae.TRAINING_SEED_ROWS]
    assert len(designs) == len(evaluate_cvae.TRAINING_SEED_ROWS)
    assert len(ranges) - len(designs) == 4 * len(evaluate_cvae.TABLE_BUDGETS)  # the four methods of the harness
    assert any(cell.split(" – ")[0] != cell.split(" – ")[1] for row in designs for cell in row[1:])  # seeds matter
    verdicts = [line.rsplit(" | ", 1)[1].strip(" |") for line in lines
                if line.startswith("| ") and " − " in line and "seed 0" not in line]
    assert len(verdicts) == 3 * len(evaluate_cvae.CONCLUSION_PAIRS) * len(evaluate_cvae.CONCLUSION_BUDGETS)
    assert set(verdicts) <= {"lower on every seed", "higher on every seed", "no seed excludes 0", "seed-dependent"}
