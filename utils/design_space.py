"""Designing in a learned space (lesson 9): compliance as a differentiable function, a projection that holds the
volume exactly, and gradient searches through a frozen decoder, judged against SIMP at equal cost.

Conventions: designs are densities ``(B, nely, nelx)`` in [0, 1] (row 0 at the top, as in :mod:`utils.topopt`);
compliances use the course's void stiffness ``E_min = 1e-9`` unless said otherwise. A *budget* counts
finite-element solves: one solve per design and gradient step, one per iteration of SIMP, one per candidate of
best-of-k. The design "at budget b" is the one the b-th solve's update produced (as for SIMP: after b iterations).

Judging is the course's one judge, :class:`utils.judging.Judge`, under its ``"target volume"`` rule
(:data:`JUDGED_AT`): every design is thresholded at its problem's volume target (the ``round(V·N)`` densest pixels
solid, :func:`utils.metrics.threshold_at_volume`) and its compliance compared with that of SIMP's converged design
thresholded the same way, under the same problem.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from utils.judging import Judge, ThresholdRule, best_of_k
from utils.metrics import DesignMetrics
from utils.settings import DATASET_SOLVER
from utils.topopt import (
    E_MIN,
    FiniteElementModel,
    LoadCase,
    SharedModels,
    compliance_sensitivity,
    optimize,
    young_modulus,
)

# The budgets (finite-element solves) the lesson and tools/evaluate_latent.py compare methods at.
BUDGETS = (1, 2, 5, 10, 20, 50, 100)
# Lesson 9's threshold rule: its searches hold each problem's volume target exactly, so designs are judged there.
JUDGED_AT: ThresholdRule = "target volume"


@dataclass
class FEProblem:
    """One compliance problem as the differentiable function sees it: the load case, its finite-element model
    (shared between problems on the same mesh and supports), the load vector, the SIMP penalty and the void's
    stiffness; ``solves`` counts the finite-element solves done for it (the budget)."""

    case: LoadCase
    model: FiniteElementModel
    penal: float = DATASET_SOLVER.penal
    e_min: float = E_MIN
    force: np.ndarray = field(init=False)
    solves: int = 0

    def __post_init__(self) -> None:
        self.force = self.case.force_vector()


def fe_problems(cases: Sequence[LoadCase], penal: float = DATASET_SOLVER.penal, e_min: float = E_MIN,
                models: SharedModels | None = None) -> list[FEProblem]:
    """An :class:`FEProblem` per load case; cases on the same mesh with the same supports share one model (from
    ``models``, a judge's for instance, when given)."""
    models = models or SharedModels()
    return [FEProblem(case, models(case), penal, e_min) for case in cases]


class ComplianceFunction(torch.autograd.Function):
    """Compliance c = Fᵀ U with K(ρ) U = F, as a differentiable function of the densities: built in lesson 9,
    exercise 9.1.

    ``apply(density, problems)``: ``density: (B, nely, nelx)`` (any floating dtype, values in [0, 1]) and one
    :class:`FEProblem` per design → compliances ``(B,)`` in the density's dtype. The forward pass solves each
    design once with the course's banded solver in float64 (one factorisation per design) and keeps the element
    energies u_eᵀ k0 u_e; the backward pass is the adjoint sensitivity (lesson 6) times the incoming gradient,
    without another solve. Each forward pass adds one to every problem's ``solves``."""

    @staticmethod
    def forward(ctx, density: torch.Tensor, problems: Sequence[FEProblem]) -> torch.Tensor:  # noqa: ANN001
        values = density.detach().cpu().double().numpy()
        compliances, sensitivities = [], []
        for design, problem in zip(values, problems, strict=True):
            x = design.ravel(order="F")
            displacement = problem.model.solve(young_modulus(x, problem.penal, problem.e_min), problem.force)
            energies = problem.model.element_energies(displacement)
            problem.solves += 1
            compliances.append(float(problem.force @ displacement))
            sensitivity = compliance_sensitivity(x, energies, problem.penal, problem.e_min)
            sensitivities.append(sensitivity.reshape(design.shape, order="F"))
        ctx.save_for_backward(torch.as_tensor(np.stack(sensitivities), dtype=density.dtype, device=density.device))
        return torch.as_tensor(compliances, dtype=density.dtype, device=density.device)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        (sensitivity,) = ctx.saved_tensors
        return grad_output[:, None, None] * sensitivity, None


def differentiable_compliance(density: torch.Tensor, problems: Sequence[FEProblem]) -> torch.Tensor:
    """:class:`ComplianceFunction` applied to ``density: (B, nely, nelx)`` → ``(B,)``."""
    return ComplianceFunction.apply(density, problems)


# Bisection on η between all-void and all-solid: 64 halvings of an interval of width < 1e3 (β·ℓ within ±500) leave
# it below 1e-16, so the volume is met to rounding (far inside the 1e-6 the lesson asks for). The projection is a
# quarter of a search step's time at 200 halvings (benchmarks/latent_design_speed.py).
BISECTION_STEPS = 64
VOLUME_TOLERANCE = 1e-6
SATURATION = 40.0


def volume_shift(logits: torch.Tensor, volume_fraction: torch.Tensor, sharpness: float = 1.0) -> torch.Tensor:
    """The η ``(B,)`` with mean(sigmoid(sharpness·logits + η)) = volume fraction for each row of ``logits: (B, n)``
    (bisection in float64; the mean is increasing in η)."""
    scaled = sharpness * logits.detach().double()
    target = volume_fraction.detach().double().expand(len(scaled))
    low = -scaled.max(dim=1).values - SATURATION
    high = -scaled.min(dim=1).values + SATURATION
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        too_much = torch.sigmoid(scaled + middle[:, None]).mean(dim=1) > target
        low, high = torch.where(too_much, low, middle), torch.where(too_much, middle, high)
    return 0.5 * (low + high)


class VolumeProjection(torch.autograd.Function):
    """ρ = sigmoid(β ℓ + η(ℓ)) with the scalar η of each design solved so that the mean density equals the volume
    fraction (exercise 9.2). Gradient by implicit differentiation of Σ_i ρ_i = N V: with s_i = ρ_i (1 − ρ_i),
    ∂η/∂ℓ_j = −β s_j / Σ_i s_i, so the vector-Jacobian product is β s ⊙ (g − Σ_i s_i g_i / Σ_i s_i).

    ``apply(logits, volume_fraction, sharpness)``: ``logits: (B, ...)``, ``volume_fraction``: a tensor broadcast to
    ``(B,)``, ``sharpness`` β > 0 (1: the decoder's own sigmoid; larger: nearer a threshold)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, volume_fraction: torch.Tensor, sharpness: float = 1.0  # noqa: ANN001
                ) -> torch.Tensor:
        flat = logits.reshape(len(logits), -1)
        eta = volume_shift(flat, torch.as_tensor(volume_fraction, dtype=torch.float64, device=logits.device),
                           sharpness)
        density = torch.sigmoid(sharpness * flat.double() + eta[:, None]).to(logits.dtype)
        ctx.save_for_backward(density)
        ctx.sharpness = sharpness
        return density.reshape(logits.shape)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (density,) = ctx.saved_tensors
        slope = density * (1 - density)
        grad = grad_output.reshape(slope.shape)
        mean_grad = (slope * grad).sum(dim=1, keepdim=True) / slope.sum(dim=1, keepdim=True).clamp_min(1e-300)
        return (ctx.sharpness * slope * (grad - mean_grad)).reshape(grad_output.shape), None, None


def project_to_volume(logits: torch.Tensor, volume_fraction: torch.Tensor | float, sharpness: float = 1.0
                      ) -> torch.Tensor:
    """:class:`VolumeProjection` applied to ``logits: (B, nely, nelx)`` → densities of the same shape."""
    return VolumeProjection.apply(logits, torch.as_tensor(volume_fraction, dtype=torch.float64), sharpness)


@dataclass
class SearchResult:
    """A gradient search's record: ``designs[b]`` the densities ``(B, nely, nelx)`` after b solves (and updates)
    for each b of the requested budgets; ``history[k]`` the grey compliances ``(B,)`` evaluated at step k; the
    wall time in seconds of the whole search (decoder, projection and solves)."""

    designs: dict[int, np.ndarray]
    history: np.ndarray
    seconds: float


SharpnessSchedule = Callable[[int], float]


def constant_sharpness(value: float = 1.0) -> SharpnessSchedule:
    """β = ``value`` at every step."""
    return lambda step: value


def doubling_sharpness(start: float = 1.0, every: int = 10, limit: float = 8.0) -> SharpnessSchedule:
    """β = start · 2^(step // every), capped at ``limit``: a continuation towards a threshold that depends on the
    step only, so the design at budget b does not depend on the largest budget."""
    return lambda step: min(limit, start * 2.0 ** (step // every))


def gradient_search(parameters: Sequence[torch.Tensor], logits_of: Callable[[], torch.Tensor],
                    problems: Sequence[FEProblem], volume_fractions: torch.Tensor, budget: int, lr: float,
                    keep: Sequence[int] = BUDGETS, sharpness: SharpnessSchedule | None = None,
                    ) -> SearchResult:
    """Adam on ``parameters`` (the latents, or an untrained network's weights) for ``budget`` steps, minimising the
    sum of the compliances of ``project_to_volume(logits_of(), V, β_step)``: one solve per design and step.
    Nothing else is optimised (a decoder's weights stay as they are unless they are ``parameters``). Adam's step is
    invariant to each design's compliance scale, so the designs of a batch are searched as if alone. ``sharpness``
    gives β at each step (default 1)."""
    sharpness = sharpness or constant_sharpness(1.0)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    designs: dict[int, np.ndarray] = {}
    history = []
    start = time.perf_counter()
    for step in range(budget + 1):
        with torch.set_grad_enabled(step < budget):
            density = project_to_volume(logits_of(), volume_fractions, sharpness(step))
        volume_error = float((density.detach().mean(dim=(1, 2)) - volume_fractions).abs().max())
        if volume_error > VOLUME_TOLERANCE:  # the projection's promise, kept at every step
            raise RuntimeError(f"step {step}: the projected designs miss their volume by {volume_error:.1e}")
        if step in keep:
            designs[step] = density.detach().double().cpu().numpy()
        if step == budget:
            break
        compliances = differentiable_compliance(density, problems)
        optimizer.zero_grad()
        compliances.sum().backward()
        optimizer.step()
        history.append(compliances.detach().cpu().numpy())
    return SearchResult(designs, np.array(history), time.perf_counter() - start)


def frozen(module: nn.Module) -> nn.Module:
    """The module in evaluation mode with every parameter's ``requires_grad`` off: searches move its inputs only."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def untrained_copy(decoder: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised copy of ``decoder``'s architecture (the neural reparametrisation of Hoyer et al. 2019):
    the same layers, each re-drawn by PyTorch's default initialisation from ``seed``, every weight trainable."""
    fresh = copy.deepcopy(decoder)
    torch.manual_seed(seed)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    for parameter in fresh.parameters():
        parameter.requires_grad_(True)
    return fresh.train()


# SIMP at a budget ---------------------------------------------------------------------------------------------

def simp_designs(case: LoadCase, budget: int, keep: Sequence[int] = BUDGETS,
                 initial_density: np.ndarray | None = None) -> tuple[dict[int, np.ndarray], float]:
    """SIMP (the dataset's settings, the tolerance off so that b iterations cost b solves) from a uniform start or
    from ``initial_density``: the physical densities after b iterations for each b in ``keep`` (b = 0: the start
    itself, uniform or the given design), and the wall time in seconds."""
    start = time.perf_counter()
    run = optimize(case, initial_density=initial_density, max_iterations=budget, tolerance=0.0, snapshot_every=1)
    seconds = time.perf_counter() - start
    first = (np.full((case.nely, case.nelx), case.volfrac) if initial_density is None
             else np.clip(initial_density, 0.0, 1.0))
    return {b: (first if b == 0 else run.snapshots[b - 1]) for b in keep if b <= budget}, seconds


# Judging at equal volume --------------------------------------------------------------------------------------

# Lesson 9's tables: DesignMetrics.summary() keys and their column headings.
SUMMARY_COLUMNS = {"CE mean": "mean CE", "CE median": "median CE", "CE p90": "p90 CE", "CE p95": "p95 CE",
                   "CE > 10 % share": "> 10 % worse", "floating material share": "floating",
                   "load disrespect share": "load disr.", "judged VFE max": "max VFE"}


def first_within(errors: np.ndarray, tolerance: float = 0.01) -> np.ndarray:
    """For ``errors: (steps, N)`` (CE after 1, 2, … solves), the first step count (1-based) at which each design is
    within ``tolerance`` of the reference or better; NaN where none is."""
    reached = errors <= tolerance
    return np.where(reached.any(axis=0), reached.argmax(axis=0) + 1.0, np.nan)


# The methods compared at equal budgets (lesson 9, tools/evaluate_latent.py) ------------------------------------

@dataclass
class MethodRun:
    """One method's designs ``designs[b]: (N, nely, nelx)`` at each budget b (finite-element solves) and its wall time
    in seconds for all N problems at the largest budget (decoder, projection and solves included)."""

    designs: dict[int, np.ndarray]
    seconds: float


def _stacked(per_problem: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    return {b: np.stack([designs[b] for designs in per_problem]) for b in per_problem[0]}


def simp_method(cases: Sequence[LoadCase], budget: int, keep: Sequence[int] = BUDGETS,
                starts: np.ndarray | None = None) -> MethodRun:
    """SIMP for each problem, from a uniform start or from ``starts: (N, nely, nelx)`` (a warm start)."""
    runs = [simp_designs(case, budget, keep, None if starts is None else starts[i]) for i, case in enumerate(cases)]
    return MethodRun(_stacked([designs for designs, _ in runs]), float(sum(seconds for _, seconds in runs)))


def best_of_k_method(candidates: np.ndarray, judge: Judge, keep: Sequence[int] = BUDGETS
                     ) -> tuple[MethodRun, dict[int, np.ndarray]]:
    """Best of the first k candidates ``(K, N, nely, nelx)`` for each budget k ≤ K: the one whose design thresholded at
    the volume target is stiffest (:func:`utils.judging.best_of_k`; one solve per candidate). Returns the run and,
    per budget, the chosen indices."""
    start = time.perf_counter()
    _, _, costs = best_of_k(candidates, judge, JUDGED_AT)  # (K, N)
    seconds = time.perf_counter() - start
    designs, chosen = {}, {}
    for k in keep:
        if k <= len(candidates):
            chosen[k] = costs[:k].argmin(axis=0)
            designs[k] = candidates[chosen[k], np.arange(candidates.shape[1])]
    return MethodRun(designs, seconds), chosen


def latent_method(decode: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, problems: Sequence[FEProblem],
                  budget: int, lr: float, keep: Sequence[int] = BUDGETS,
                  sharpness: SharpnessSchedule | None = None, spent: int = 0,
                  spent_designs: dict[int, np.ndarray] | None = None, spent_seconds: float = 0.0) -> MethodRun:
    """Adam on the latents ``z0: (N, d)`` through ``decode`` (z → logits ``(N, nely, nelx)``, frozen) and the volume
    projection. ``spent`` solves already went into choosing ``z0`` (best of k): their designs ``spent_designs``
    stand for the budgets up to ``spent``, and the search gets the rest."""
    z = z0.detach().clone().requires_grad_(True)
    volumes = torch.tensor([p.case.volfrac for p in problems], dtype=torch.float64)
    shifted = [b - spent for b in keep if b >= spent]
    result = gradient_search([z], lambda: decode(z).double().cpu(), problems, volumes, budget - spent, lr, shifted,
                             sharpness)
    designs = {b: result.designs[b - spent] for b in keep if b >= spent and b - spent in result.designs}
    designs.update({b: d for b, d in (spent_designs or {}).items() if b < spent or b not in designs})
    return MethodRun(dict(sorted(designs.items())), result.seconds + spent_seconds)


def then_simp(run: MethodRun, cases: Sequence[LoadCase], after: int, budget: int, keep: Sequence[int] = BUDGETS
              ) -> MethodRun:
    """A two-stage method: ``run``'s design at budget ``after``, then SIMP warm-started from it for the rest; at
    budgets up to ``after`` the first stage's designs; the first stage's time is its run's, scaled to ``after`` solves
    (its cost is linear in the solves)."""
    second = simp_method(cases, budget - after, [b - after for b in keep if b > after], run.designs[after])
    designs = {b: d for b, d in run.designs.items() if b <= after and b in keep}
    designs.update({b: second.designs[b - after] for b in keep if b > after})
    return MethodRun(designs, run.seconds * after / max(run.designs) + second.seconds)


def reparametrised_method(decoder: nn.Module, inputs: torch.Tensor, problems: Sequence[FEProblem], budget: int,
                          lr: float, keep: Sequence[int] = BUDGETS, sharpness: SharpnessSchedule | None = None,
                          seed: int = 0) -> MethodRun:
    """Hoyer et al.'s neural reparametrisation: for each problem a fresh, untrained copy of ``decoder``'s architecture
    (seed ``seed + i``), its fixed input ``inputs[i]``, and Adam on its weights."""
    per_problem, seconds = [], 0.0
    for i, problem in enumerate(problems):
        network = untrained_copy(decoder, seed + i)
        volume = torch.tensor([problem.case.volfrac], dtype=torch.float64)
        x = inputs[i:i + 1]
        result = gradient_search(list(network.parameters()), lambda n=network, v=x: n(v)[:, 0].double().cpu(),
                                 [problem], volume, budget, lr, keep, sharpness)
        per_problem.append({b: d[0] for b, d in result.designs.items()})
        seconds += result.seconds
    return MethodRun(_stacked(per_problem), seconds)


# Reparametrisation's learning rate (Adam on the untrained decoder's weights), chosen on validation problems by
# tools/evaluate_latent.py's sweep; a ten times larger one diverges on some problems.
REPARAMETRISATION_LR = 3e-3
# Latent searches started from the best of this many designs spend these solves first.
START_CANDIDATES = 5
# The methods whose designs depend on compare_methods' draw seed.
SEEDED_METHODS = ("best of b (CVAE)", f"CVAE latent from best of {START_CANDIDATES}",
                  f"VAE latent from best of {START_CANDIDATES}", "neural reparametrisation")
SHARPENING = doubling_sharpness(1.0, every=10, limit=8.0)


def _prior_draws(model: nn.Module, c: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """μ_p(c) followed by ``draws`` latents z ~ p(z | c): (draws + 1, N, d)."""
    mu, logvar = model.prior_moments(c)
    noise = torch.randn((draws, *mu.shape), generator=torch.Generator().manual_seed(seed)).to(mu.device)
    return torch.cat([mu[None], mu + torch.exp(0.5 * logvar) * noise])


@torch.no_grad()
def _decoded(decode: Callable[[torch.Tensor], torch.Tensor], latents: torch.Tensor) -> np.ndarray:
    return np.stack([torch.sigmoid(decode(z)).double().cpu().numpy() for z in latents])


def _view(run: MethodRun, keep: Sequence[int]) -> MethodRun:
    return MethodRun({b: d for b, d in run.designs.items() if b in keep}, run.seconds)


def compare_methods(judge: Judge, conditions: torch.Tensor, cvae: nn.Module, baseline: nn.Module,
                    vae: nn.Module, lr: float, budgets: Sequence[int] = BUDGETS, seed: int = 0,
                    reparametrisation: bool = True, progress: Callable[[str], None] | None = None,
                    seeded_only: bool = False) -> dict[str, MethodRun]:
    """Every method of lesson 9 on the judge's problems (conditions ``(N, 4)`` on the decoders' device), at each
    budget in ``budgets`` (the largest one is every run's length). The models are used frozen; ``lr`` is the latent
    searches' learning rate (chosen on validation problems). ``progress`` is told each method's name as it starts.

    ``seed`` draws the prior samples of best of b and of the searches started from the best of k, and (times 1,000,
    plus the problem's index) the reparametrisation's initialisations; ``seeded_only`` runs only the methods that
    depend on it (:data:`SEEDED_METHODS`): SIMP, the warm starts and the searches from μ_p(c) draw nothing."""
    largest, k = max(budgets), START_CANDIDATES
    with_start = sorted({*budgets, k})
    cases = judge.load_cases
    problems = fe_problems(cases, models=judge.models)
    tell = progress or (lambda name: None)

    def cvae_logits(z: torch.Tensor) -> torch.Tensor:
        return cvae.decode(z, conditions)[:, 0].double().cpu()

    def vae_logits(z: torch.Tensor) -> torch.Tensor:
        return vae.decoder(z)[:, 0].double().cpu()

    latents = _prior_draws(cvae, conditions, largest - 1, seed)
    candidates = _decoded(cvae_logits, latents)
    with torch.no_grad():
        baseline_design = baseline.generate(conditions)[0].double().cpu().numpy()
    runs: dict[str, MethodRun] = {}
    if not seeded_only:
        tell("SIMP")
        runs["SIMP, uniform start"] = simp_method(cases, largest, budgets)
        runs["SIMP from the CVAE's design"] = simp_method(cases, largest, budgets, candidates[0])
        runs["SIMP from the baseline's design"] = simp_method(cases, largest, budgets, baseline_design)
    tell("best of b")
    best, chosen = best_of_k_method(candidates, judge, with_start)
    runs["best of b (CVAE)"] = _view(best, budgets)
    tell("CVAE latent")
    if not seeded_only:
        runs["CVAE latent, β = 1"] = latent_method(cvae_logits, latents[0], problems, largest, lr, budgets)
        sharp = latent_method(cvae_logits, latents[0], problems, largest, lr, with_start, SHARPENING)
        runs["CVAE latent, sharpening"] = _view(sharp, budgets)
    start = latents[torch.as_tensor(chosen[k]), torch.arange(len(cases))]
    runs[f"CVAE latent from best of {k}"] = latent_method(
        cvae_logits, start, problems, largest, lr, budgets, SHARPENING, spent=k, spent_designs=best.designs,
        spent_seconds=best.seconds * k / largest)
    if not seeded_only:
        runs[f"CVAE latent {k} → SIMP"] = then_simp(sharp, cases, k, largest, budgets)
        if 2 * k in sharp.designs and 2 * k < largest:
            runs[f"CVAE latent {2 * k} → SIMP"] = then_simp(sharp, cases, 2 * k, largest, budgets)
    tell("VAE latent")
    vae_latents = torch.cat([torch.zeros(1, len(cases), vae.latent_dim),
                             torch.randn(k - 1, len(cases), vae.latent_dim,
                                         generator=torch.Generator().manual_seed(seed))]).to(conditions.device)
    vae_best, vae_chosen = best_of_k_method(_decoded(vae_logits, vae_latents), judge, with_start)
    runs[f"VAE latent from best of {k}"] = latent_method(
        vae_logits, vae_latents[torch.as_tensor(vae_chosen[k]), torch.arange(len(cases))], problems, largest, lr,
        budgets, SHARPENING, spent=k, spent_designs=vae_best.designs, spent_seconds=vae_best.seconds)
    if reparametrisation:
        tell("neural reparametrisation")
        inputs = torch.cat([latents[0], conditions], dim=1).detach()
        runs["neural reparametrisation"] = reparametrised_method(cvae.decoder, inputs, problems, largest,
                                                                 REPARAMETRISATION_LR, budgets, SHARPENING,
                                                                 1000 * seed)
    return runs


def judge_runs(runs: dict[str, MethodRun], judge: Judge) -> dict[str, dict[int, DesignMetrics]]:
    """Every method at every budget, judged at the volume target (:data:`JUDGED_AT`)."""
    return {name: {b: judge(d, JUDGED_AT) for b, d in run.designs.items()} for name, run in runs.items()}
