"""The two cited methods of lesson 9, reproduced from their authors' descriptions, each beside the control that
separates its claim from everything else, as :class:`studies.harness.Method`s (exactly b finite-element solves per
problem for the design at budget b; ``make evaluate-published`` runs them, tools/evaluate_published.py).

**Neural reparametrisation**, adapted from Hoyer, Sohl-Dickstein & Greydanus (2019), "Neural reparameterization
improves structural optimization" (arXiv:1909.04240; the description in google-research/neural-structural-optimization,
``models.CNNModel``, ``train.train_lbfgs``, ``topo_physics.physical_density``), re-implemented in PyTorch:

- the design's logits are the output of a CNN: a trainable 128-d input z ~ N(0, I), a dense layer (orthogonal
  initialisation, gain √max(h·w·32 / 128, 1)) to an h × w × 32 map, then five stages of tanh → bilinear upsampling
  (factors 1, 2, 2, 2, 1) → normalisation over the whole tensor → 5×5 convolution (128, 64, 32, 16, 1 filters,
  fan-in truncated-normal initialisation) → a trainable offset per output element (initialised at 0, scaled by 10);
  every weight, z included, is optimised (:class:`HoyerCNN`);
- the physical density is the volume-constrained sigmoid (the offset η bisected so that the mean density equals the
  volume fraction: :func:`utils.design_space.project_to_volume` at sharpness 1) followed by a cone filter of radius 2
  elements (:class:`ConeFilter`): :func:`physical_density`;
- the loss is the compliance of that density (penalty 3, E_min = 1e-9, ν = 0.3), minimised by L-BFGS-B with their
  settings (scipy, memory 10, factr = 1, pgtol = 1e-14) for a number of *function evaluations*; the result is the
  best design over the whole trajectory (every evaluation, line-search ones included), not the last:
  :func:`lbfgs_best_over_trajectory`;
- the control is pixels under the same optimiser, projection, filter and trajectory rule: L-BFGS on a logit per
  element, from their constant start (logits = the volume fraction) and, second control, from the CNN's own
  initial logits (their seeded pixel runs), so that the start is shared too.

What differs from the publication: our problems (64 × 32 cantilevers with one load on the right edge, not their
problem suite; the grid divides by 8, so their default resizes end exactly at 32 × 64 and the dense map is 4 × 8 × 32);
our finite-element model (utils.topopt: the same Q4 element and SIMP interpolation, a banded Cholesky solve) and
compliance gradient (utils.design_space, the adjoint); PyTorch's initialisers drawn from our seeds, not TensorFlow's;
the bisection's bracket (the same root); the network in float32 and the physics in float64, as theirs. L-BFGS-B stops
on its own when a line search fails; to spend exactly b solves we then restart it from its last iterate with an
empty memory (they would stop): the restarts are counted (:attr:`Trajectory.restarts`) and reported.

**Gradient-free search in a pre-trained latent**, after Kus & Bessa (2024), "Gradient-free neural topology
optimization" (arXiv:2403.04937): CMA-ES (Hansen's ``cma`` package) on the CVAE's latent z for the problem's
condition (start μ_p(c), initial spread the prior's σ_p(c)), against CMA-ES on a coarse 16 × 8 grid of logits
upsampled bilinearly to 64 × 32 (from a uniform start and, second control, from the CVAE's design pooled to the coarse
grid), all through the same volume projection, each candidate solved once, thresholded at the volume target as the
judge does (its compliance is the fitness), the best candidate so far the design at budget b (:class:`CmaesSearch`).
Ours is their claim's test on our problems, not their networks or problems.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import cma
import numpy as np
import scipy.optimize
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import nn

from studies.harness import LABELS, MethodResult, StudyProblems, exact_solves
from studies.methods import lbfgs_best_over_trajectory
from utils.design_space import FEProblem, differentiable_compliance, project_to_volume
from utils.metrics import threshold_at_volume
from utils.topopt import DensityFilter, compliance

# The keys of this module's methods and their labels (registered in the harness's one table of names).
PUBLISHED_LABELS = {
    "hoyer_cnn_lbfgs": "CNN reparametrisation, L-BFGS (adapted from Hoyer et al. 2019)",
    "hoyer_pixels_lbfgs": "pixels, L-BFGS, uniform start (Hoyer et al.'s control)",
    "hoyer_pixels_lbfgs_cnn_start": "pixels, L-BFGS, from the CNN's initial design",
    "cmaes_cvae_latent": "CMA-ES on the CVAE's latent",
    "cmaes_coarse_pixels": "CMA-ES on 16 × 8 pixels, uniform start",
    "cmaes_coarse_pixels_cvae_start": "CMA-ES on 16 × 8 pixels, from the CVAE's design",
}
LABELS.update(PUBLISHED_LABELS)

# Hoyer et al.'s CNN (models.CNNModel's defaults).
LATENT_SIZE = 128
DENSE_CHANNELS = 32
RESIZES = (1, 2, 2, 2, 1)
CONV_FILTERS = (128, 64, 32, 16, 1)
KERNEL_SIZE = 5
OFFSET_SCALE = 10.0
NORMALISATION_EPSILON = 1e-6
# VarianceScaling's truncated normal: the standard deviation of a unit normal truncated at ±2 (TensorFlow's constant).
TRUNCATED_NORMAL_STD = 0.87962566103423978
# Their cone filter's radius in elements (topo_api.specified_task's filter_width).
CONE_RADIUS = 2.0
# Their budget: the pipeline's default number of function evaluations (pipeline.py, --optimization_steps).
HOYER_BUDGET = 1000
# The coarse pixel grid of the gradient-free control: (rows, columns), upsampled bilinearly to the design's grid.
COARSE_GRID = (8, 16)
# CMA-ES settings: the package's defaults (population 4 + ⌊3 ln d⌋) with its stopping rules off, so that a run spends
# its budget (a run that stops anyway restarts from its best point: CmaesSearch).
CMA_OPTIONS = {"verbose": -9, "tolfun": 0.0, "tolfunhist": 0.0, "tolx": 0.0, "tolstagnation": 10**9,
               "tolflatfitness": 10**9, "maxfevals": float("inf"), "maxiter": float("inf")}

Parametrisation = Literal["cnn", "pixels", "pixels_from_cnn"]


# ---------------------------------------------------------------------------------------------------------------
# Hoyer et al.: the physical density

@lru_cache(maxsize=8)
def cone_filter_matrix(nely: int, nelx: int, radius: float = CONE_RADIUS) -> scipy.sparse.csr_matrix:
    """Hoyer et al.'s normalised cone filter on Fortran-ordered element vectors: weight max(0, r − distance) to
    every element inside the grid, each row divided by its sum (the course's hat filter,
    :class:`utils.topopt.DensityFilter`, with its row sums)."""
    hat = DensityFilter(nelx, nely, radius)
    return (scipy.sparse.diags(1.0 / hat.row_sums) @ hat.matrix).tocsr()


def _apply_rows(matrix: scipy.sparse.csr_matrix, images: np.ndarray) -> np.ndarray:
    """``matrix`` applied to each image ``(B, nely, nelx)`` flattened in Fortran order."""
    batch, nely, nelx = images.shape
    columns = images.transpose(0, 2, 1).reshape(batch, -1).T
    return (matrix @ columns).T.reshape(batch, nelx, nely).transpose(0, 2, 1)


class ConeFilter(torch.autograd.Function):
    """ρ̃ = W ρ for densities ``(B, nely, nelx)``: :func:`cone_filter_matrix`; the backward pass is Wᵀ g."""

    @staticmethod
    def forward(ctx, density: torch.Tensor, radius: float = CONE_RADIUS) -> torch.Tensor:  # noqa: ANN001
        matrix = cone_filter_matrix(density.shape[-2], density.shape[-1], radius)
        ctx.matrix = matrix
        filtered = _apply_rows(matrix, density.detach().cpu().double().numpy())
        return torch.as_tensor(filtered, dtype=density.dtype, device=density.device)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        grad = _apply_rows(ctx.matrix.T.tocsr(), grad_output.detach().cpu().double().numpy())
        return torch.as_tensor(grad, dtype=grad_output.dtype, device=grad_output.device), None


def physical_density(logits: torch.Tensor, volume_fraction: float | torch.Tensor) -> torch.Tensor:
    """Hoyer et al.'s physical density of logits ``(B, nely, nelx)``: the volume-constrained sigmoid, then the cone
    filter (float64)."""
    return ConeFilter.apply(project_to_volume(logits.double(), volume_fraction, 1.0), CONE_RADIUS)


# ---------------------------------------------------------------------------------------------------------------
# Hoyer et al.: the network

def global_normalization(x: torch.Tensor, epsilon: float = NORMALISATION_EPSILON) -> torch.Tensor:
    """(x − mean) / √(variance + ε), mean and (biased) variance over the whole tensor."""
    return (x - x.mean()) * torch.rsqrt(x.var(unbiased=False) + epsilon)


class Stage(nn.Module):
    """One of the five stages: tanh → bilinear upsampling by ``resize`` → normalisation → ``kernel``² convolution →
    a trainable offset per output element, times :data:`OFFSET_SCALE`."""

    def __init__(self, in_channels: int, out_channels: int, resize: int, out_size: tuple[int, int],
                 kernel: int = KERNEL_SIZE) -> None:
        super().__init__()
        self.resize = resize
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        std = math.sqrt(1.0 / (in_channels * kernel * kernel)) / TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(self.conv.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.conv.bias)
        self.offset = nn.Parameter(torch.zeros(1, out_channels, *out_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(x)
        if self.resize != 1:
            x = F.interpolate(x, scale_factor=self.resize, mode="bilinear", align_corners=False)
        return self.conv(global_normalization(x)) + OFFSET_SCALE * self.offset


class HoyerCNN(nn.Module):
    """Hoyer et al.'s CNN parametrisation for an ``nely × nelx`` design (both divisible by the product of the
    resizes): ``forward()`` → logits ``(1, nely, nelx)``. Initialised from ``seed`` without touching the global
    generator."""

    def __init__(self, nely: int, nelx: int, seed: int, latent_size: int = LATENT_SIZE,
                 dense_channels: int = DENSE_CHANNELS, resizes: Sequence[int] = RESIZES,
                 conv_filters: Sequence[int] = CONV_FILTERS) -> None:
        super().__init__()
        total = math.prod(resizes)
        if nely % total or nelx % total or len(resizes) != len(conv_filters):
            raise ValueError(f"a {nely} × {nelx} grid needs both sides divisible by {total} (the resizes {resizes}) "
                             f"and one filter count per resize ({conv_filters})")
        self.grid = (nely // total, nelx // total)
        self.dense_channels = dense_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.z = nn.Parameter(torch.randn(1, latent_size))
            units = self.grid[0] * self.grid[1] * dense_channels
            self.dense = nn.Linear(latent_size, units)
            nn.init.orthogonal_(self.dense.weight, gain=math.sqrt(max(units / latent_size, 1.0)))
            nn.init.zeros_(self.dense.bias)
            stages, channels, size = [], dense_channels, self.grid
            for resize, filters in zip(resizes, conv_filters, strict=True):
                size = (size[0] * resize, size[1] * resize)
                stages.append(Stage(channels, filters, resize, size))
                channels = filters
            self.stages = nn.ModuleList(stages)

    def forward(self) -> torch.Tensor:
        h, w = self.grid
        x = self.dense(self.z).reshape(1, h, w, self.dense_channels).permute(0, 3, 1, 2)  # channels last, as theirs
        for stage in self.stages:
            x = stage(x)
        return x[:, 0]


# ---------------------------------------------------------------------------------------------------------------
# Hoyer et al.: the optimiser

class _Objective:
    """Compliance of the physical density of ``logits_of()`` for one problem (one solve per call);
    ``start()`` is the physical density at the current parameters without a solve."""

    def __init__(self, logits_of: Callable[[], torch.Tensor], problem: FEProblem) -> None:
        self.logits_of, self.problem = logits_of, problem

    def start(self) -> torch.Tensor:
        return physical_density(self.logits_of(), self.problem.case.volfrac)[0]

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        density = physical_density(self.logits_of(), self.problem.case.volfrac)
        return differentiable_compliance(density, [self.problem]).sum(), density[0]


def hoyer_parameters(parametrisation: Parametrisation, nely: int, nelx: int, volume_fraction: float, seed: int
                     ) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """The trainable tensors and the logits ``(1, nely, nelx)`` of one of Hoyer et al.'s parametrisations: their CNN
    (seed ``seed``), pixels from their constant start (logits = the volume fraction) or pixels from that CNN's
    initial logits."""
    if parametrisation == "cnn":
        network = HoyerCNN(nely, nelx, seed)
        return list(network.parameters()), network
    if parametrisation == "pixels":
        logits = torch.full((1, nely, nelx), float(volume_fraction), dtype=torch.float64, requires_grad=True)
    elif parametrisation == "pixels_from_cnn":
        with torch.no_grad():
            logits = HoyerCNN(nely, nelx, seed)().double().clone().requires_grad_(True)
    else:
        raise ValueError(f"unknown parametrisation {parametrisation!r}: 'cnn', 'pixels' or 'pixels_from_cnn'")
    return [logits], lambda: logits


@dataclass
class HoyerLBFGS:
    """Hoyer et al.'s method (``"cnn"``) or its pixel controls, one L-BFGS run per problem to the largest budget, the
    best design over the first b evaluations at budget b. Problem i's network is drawn from ``seed`` · 1000 + i."""

    key: str
    parametrisation: Parametrisation
    seed: int = 0
    restarts: list[int] = field(default_factory=list, init=False, repr=False)

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        largest = max(budgets)
        runs = []
        for i, problem in zip(problems.ids, problems.fe_problems(), strict=True):
            case = problem.case
            parameters, logits_of = hoyer_parameters(self.parametrisation, case.nely, case.nelx, case.volfrac,
                                                     1000 * self.seed + int(i))
            objective = _Objective(logits_of, problem)
            runs.append(lbfgs_best_over_trajectory(parameters, objective, objective.start, largest, budgets))
            if problem.solves != largest:
                raise RuntimeError(f"{self.key}: {problem.solves} solves for a budget of {largest}")
        self.restarts = [run.restarts for run in runs]
        return MethodResult({b: np.stack([run.designs[b] for run in runs]) for b in budgets},
                            exact_solves(budgets, len(runs)),
                            {b: float(sum(run.seconds[b] for run in runs)) for b in budgets})


def hoyer_methods(seed: int = 0) -> list[HoyerLBFGS]:
    """Hoyer et al.'s CNN and its two pixel controls, all under L-BFGS."""
    return [HoyerLBFGS("hoyer_cnn_lbfgs", "cnn", seed), HoyerLBFGS("hoyer_pixels_lbfgs", "pixels", seed),
            HoyerLBFGS("hoyer_pixels_lbfgs_cnn_start", "pixels_from_cnn", seed)]


# ---------------------------------------------------------------------------------------------------------------
# Kus & Bessa's claim: CMA-ES in a pre-trained latent against CMA-ES on coarse pixels

@dataclass
class SearchSpace:
    """One problem's search space for CMA-ES: the start ``x0: (d,)``, the initial spread per coordinate ``stds:
    (d,)`` and the logits ``(λ, nely, nelx)`` (float64) of λ points ``(λ, d)``."""

    x0: np.ndarray
    stds: np.ndarray
    logits: Callable[[np.ndarray], torch.Tensor]


# The search spaces of a set of problems: problem index → its space.
Spaces = Callable[[StudyProblems], Callable[[int], SearchSpace]]


def cvae_latent_space(cvae: nn.Module) -> Spaces:
    """The CVAE's latent for problem i's condition: start μ_p(c), spread σ_p(c), logits decoded from z."""
    def spaces(problems: StudyProblems) -> Callable[[int], SearchSpace]:
        with torch.no_grad():
            mu, logvar = cvae.prior_moments(problems.conditions)

        def space(i: int) -> SearchSpace:
            condition = problems.conditions[i:i + 1]

            def logits(points: np.ndarray) -> torch.Tensor:
                with torch.no_grad():
                    z = torch.as_tensor(points, dtype=mu.dtype, device=mu.device)
                    return cvae.decode(z, condition.expand(len(z), -1))[:, 0].double().cpu()
            return SearchSpace(mu[i].double().cpu().numpy(), torch.exp(0.5 * logvar[i]).double().cpu().numpy(),
                               logits)
        return space
    return spaces


def upsampled_logits(coarse: np.ndarray, shape: tuple[int, int], grid: tuple[int, int] = COARSE_GRID
                     ) -> torch.Tensor:
    """Coarse logits ``(λ, rows · columns)`` upsampled bilinearly to ``shape``: ``(λ, nely, nelx)`` in float64."""
    values = torch.as_tensor(np.asarray(coarse, dtype=float).reshape(-1, 1, *grid))
    return F.interpolate(values, size=shape, mode="bilinear", align_corners=False)[:, 0]


def coarse_pixel_space(cvae: nn.Module | None = None, grid: tuple[int, int] = COARSE_GRID) -> Spaces:
    """A coarse grid of logits upsampled to the design's grid: from zeros (a uniform design) with unit spread, or,
    given ``cvae``, from the CVAE's logits at μ_p(c) averaged over each coarse cell, with the spread of those coarse
    logits (the start's own contrast; CMA-ES on a uniform start is invariant to the spread's scale)."""
    def spaces(problems: StudyProblems) -> Callable[[int], SearchSpace]:
        shape = problems.judge.references.shape[-2:]
        starts = np.zeros((len(problems), grid[0] * grid[1]))
        if cvae is not None:
            with torch.no_grad():
                decoded = cvae.decode(cvae.prior_moments(problems.conditions)[0], problems.conditions)
                starts = F.adaptive_avg_pool2d(decoded.double().cpu(), grid).reshape(len(problems), -1).numpy()

        def space(i: int) -> SearchSpace:
            spread = float(starts[i].std()) if cvae is not None else 1.0
            return SearchSpace(starts[i], np.full(starts.shape[1], spread),
                               lambda points: upsampled_logits(points, shape, grid))
        return space
    return spaces


def thresholded_compliances(designs: np.ndarray, problem: FEProblem) -> np.ndarray:
    """The compliance of each design ``(λ, nely, nelx)`` thresholded at the problem's volume target (the judge's
    ``"at_target_volume"`` rule), one solve each (counted on ``problem``)."""
    solids = threshold_at_volume(designs, np.full(len(designs), problem.case.volfrac))
    problem.solves += len(designs)
    return np.array([compliance(s, problem.case, problem.penal, problem.model, problem.e_min) for s in solids])


@dataclass
class CmaesSearch:
    """CMA-ES (``cma``, :data:`CMA_OPTIONS`, initial step 1 times the space's spreads) in a search space, per
    problem: each candidate's logits projected to the volume fraction (sigmoid with the bisected offset), thresholded
    at the volume target and solved once (its compliance the fitness); the design at budget b is the best of the
    first b candidates. Problem i's run is seeded with ``seed`` · 1000 + i + 1. A run that stops on its own (it
    should not, its stopping rules off) restarts from its best point."""

    key: str
    spaces: Spaces
    seed: int = 0
    restarts: list[int] = field(default_factory=list, init=False, repr=False)

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        space_of = self.spaces(problems)
        runs = [self._search(space_of(index), problem, 1000 * self.seed + int(i) + 1, budgets)
                for index, (i, problem) in enumerate(zip(problems.ids, problems.fe_problems(), strict=True))]
        self.restarts = [restarts for _, _, restarts in runs]
        return MethodResult({b: np.stack([designs[b] for designs, _, _ in runs]) for b in budgets},
                            exact_solves(budgets, len(problems)),
                            {b: float(sum(seconds[b] for _, seconds, _ in runs)) for b in budgets})

    @staticmethod
    def _search(space: SearchSpace, problem: FEProblem, seed: int, budgets: Sequence[int]
                ) -> tuple[dict[int, np.ndarray], dict[int, float], int]:
        """One problem's run: the best design of the first b candidates and the seconds to it at each budget b, and
        the number of restarts."""
        largest, begin = max(budgets), time.perf_counter()

        def project(points: np.ndarray) -> np.ndarray:
            return project_to_volume(space.logits(points), problem.case.volfrac).numpy()

        best_value, best_design, x0 = math.inf, project(space.x0[None])[0], space.x0
        designs, seconds = {0: best_design}, {0: 0.0}
        restarts = -1
        while problem.solves < largest:
            restarts += 1
            strategy = cma.CMAEvolutionStrategy(x0, 1.0, {**CMA_OPTIONS, "CMA_stds": space.stds,
                                                          "seed": seed + 7919 * restarts})
            while problem.solves < largest and not strategy.stop():
                points = np.asarray(strategy.ask())
                candidates = project(points[:largest - problem.solves])
                spent = problem.solves
                fitness = thresholded_compliances(candidates, problem)
                for k, value in enumerate(fitness):
                    if value < best_value:
                        best_value, best_design, x0 = float(value), candidates[k], points[k]
                    designs[spent + k + 1], seconds[spent + k + 1] = best_design, time.perf_counter() - begin
                if len(fitness) == len(points):
                    strategy.tell(list(points), fitness.tolist())
        return {b: designs[b] for b in budgets}, {b: seconds[b] for b in budgets}, restarts


def cmaes_methods(cvae: nn.Module, seed: int = 0) -> list[CmaesSearch]:
    """CMA-ES in the CVAE's latent and its two coarse-pixel controls."""
    return [CmaesSearch("cmaes_cvae_latent", cvae_latent_space(cvae), seed),
            CmaesSearch("cmaes_coarse_pixels", coarse_pixel_space(), seed),
            CmaesSearch("cmaes_coarse_pixels_cvae_start", coarse_pixel_space(cvae), seed)]
