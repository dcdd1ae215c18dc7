"""The methods of lessons 8 and 9's studies, each a :class:`studies.harness.Method`: it spends exactly b
finite-element solves per problem for its design at budget b and returns a :class:`studies.harness.MethodResult`
(the harness's docstring states the budget and timing rules)."""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import torch
from torch import nn

from studies.harness import MethodResult, Stopwatch, StudyProblems, exact_solves, linear_seconds
from utils.data import TopologyData
from utils.design_space import (
    SharpnessSchedule,
    constant_sharpness,
    differentiable_compliance,
    gradient_search,
    project_to_volume,
)
from utils.topopt import simp_iterations

# Hoyer et al.'s L-BFGS-B settings (train.train_lbfgs: fmin_l_bfgs_b(factr=1, pgtol=1e-14), scipy's defaults
# otherwise), in scipy.optimize.minimize's terms: ftol = factr · machine epsilon. Every L-BFGS of the studies uses them.
LBFGS_OPTIONS = {"maxcor": 10, "ftol": float(np.finfo(float).eps), "gtol": 1e-14, "maxls": 20, "maxiter": 15000}

# A start: the designs ``(N, nely, nelx)`` a method starts from (None: SIMP's uniform start) and the seconds it took.
Start = Callable[[StudyProblems], tuple[np.ndarray | None, float]]
# Candidates: the first k latents ``(k, N, d)`` for the problems (the first one the method's default start).
Latents = Callable[[StudyProblems, int], torch.Tensor]
# A decoder for the problems: latents ``(N, d)`` → logits ``(N, nely, nelx)`` in float64 on the CPU.
Decoder = Callable[[StudyProblems], Callable[[torch.Tensor], torch.Tensor]]


def uniform_start(problems: StudyProblems) -> tuple[None, float]:
    """SIMP's own start: uniform at each problem's volume fraction."""
    return None, 0.0


def decoded_start(model: nn.Module) -> Start:
    """A conditional model's design decoded at μ_p(c) (the baseline's: its only design)."""
    def start(problems: StudyProblems) -> tuple[np.ndarray, float]:
        with torch.no_grad(), Stopwatch(problems.device) as watch:
            designs = model.generate(problems.conditions)[0].double().cpu().numpy()
        return designs, watch.seconds
    return start


def blended_start(start: Start, alpha: float) -> Start:
    """α · ``start``'s design + (1 − α) · uniform at each problem's volume fraction: a start that keeps grey material
    everywhere, so that SIMP can grow a member the design lacks (α = 1: the design itself)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"a blend needs 0 ≤ α ≤ 1, got {alpha}")

    def start_blended(problems: StudyProblems) -> tuple[np.ndarray, float]:
        designs, seconds = start(problems)
        if designs is None:
            raise ValueError("a blend needs a start with designs (not SIMP's uniform start)")
        uniform = np.asarray(problems.judge.targets, dtype=float)[:, None, None]
        return alpha * designs + (1.0 - alpha) * uniform, seconds
    return start_blended


@dataclass(frozen=True)
class Retrieval:
    """The training designs nearest to a problem in condition space: volume fraction, load position and angle, each
    divided by its range over the training set, Euclidean distance (no training, no decoder)."""

    designs: np.ndarray
    conditions: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, training: TopologyData) -> Retrieval:
        conditions = cls.raw_conditions(training)
        spread = conditions.max(axis=0) - conditions.min(axis=0)
        return cls(training.density, conditions, np.where(spread > 0, spread, 1.0))

    @staticmethod
    def raw_conditions(problems: TopologyData) -> np.ndarray:
        """(N, 3): volume fraction, load position, angle in degrees."""
        return np.stack([problems.volfrac, problems.load_y, problems.angle_deg], axis=1).astype(float)

    def nearest(self, problems: TopologyData, k: int) -> np.ndarray:
        """The k nearest training designs of each problem, nearest first: (k, N, nely, nelx)."""
        query = self.raw_conditions(problems) / self.scale
        distances = np.linalg.norm(query[:, None] - (self.conditions / self.scale)[None], axis=2)  # (N, M)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]  # (N, k)
        return self.designs[order.T]


def retrieved_start(retrieval: Retrieval) -> Start:
    """The nearest training design of each problem, as is."""
    def start(problems: StudyProblems) -> tuple[np.ndarray, float]:
        with Stopwatch() as watch:
            designs = retrieval.nearest(problems.judge.problems, 1)[0].astype(float)
        return designs, watch.seconds
    return start


def prior_latents(model: nn.Module, seed: int) -> Latents:
    """The CVAE's μ_p(c) first, then draws z ~ p(z | c) from ``seed``."""
    def latents(problems: StudyProblems, k: int) -> torch.Tensor:
        with torch.no_grad():
            mu, logvar = model.prior_moments(problems.conditions)
            noise = problems.normal_draws(seed, k - 1, mu.shape[1]).to(mu.dtype)
            return torch.cat([mu[None], mu + torch.exp(0.5 * logvar) * noise])
    return latents


def standard_latents(latent_dim: int, seed: int) -> Latents:
    """An unconditional VAE's z = 0 first, then draws z ~ N(0, I) from ``seed``."""
    def latents(problems: StudyProblems, k: int) -> torch.Tensor:
        draws = problems.normal_draws(seed, k - 1, latent_dim)
        return torch.cat([torch.zeros((1, len(problems), latent_dim)).to(draws), draws])
    return latents


def decoded_logits(model: nn.Module) -> Latents:
    """The pixels' control of a latent search: the conditional model's logits at μ_p(c) ``(1, N, nely, nelx)`` as the
    variables themselves, so that a search on them starts from the latent search's design (one start only)."""
    def latents(problems: StudyProblems, k: int) -> torch.Tensor:
        if k != 1:
            raise ValueError(f"the pixels' start is one design per problem, not {k}")
        with torch.no_grad():
            mu = model.prior_moments(problems.conditions)[0]
            return model.decode(mu, problems.conditions)[:, 0].double().cpu()[None]
    return latents


def pixel_decoder(problems: StudyProblems) -> Callable[[torch.Tensor], torch.Tensor]:
    """The identity on logits ``(N, nely, nelx)``: a search whose variables are the pixels' logits."""
    return lambda logits: logits


def conditional_decoder(model: nn.Module) -> Decoder:
    """z ↦ the conditional model's logits for the problems' conditions."""
    return lambda problems: lambda z: model.decode(z, problems.conditions)[:, 0].double().cpu()


def unconditional_decoder(model: nn.Module) -> Decoder:
    """z ↦ an unconditional VAE's logits (the problems are not its input)."""
    return lambda problems: lambda z: model.decoder(z)[:, 0].double().cpu()


@dataclass
class SimpFrom:
    """b SIMP iterations (the dataset's settings, exactly b solves: :func:`utils.topopt.simp_iterations`) from
    ``start``."""

    key: str
    start: Start = uniform_start

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        starts, setup = self.start(problems)
        largest, cases = max(budgets), problems.judge.load_cases
        with Stopwatch() as watch:
            runs = [simp_iterations(case, largest, None if starts is None else starts[i], budgets,
                                    model=problems.judge.models(case)) for i, case in enumerate(cases)]
        return MethodResult({b: np.stack([run[b] for run in runs]) for b in budgets},
                            exact_solves(budgets, len(cases)), linear_seconds(budgets, largest, watch.seconds, setup),
                            starts)


def _best_of(problems: StudyProblems, candidates: np.ndarray, budgets: Sequence[int]
             ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], float]:
    """Best of the first b candidates ``(K, N, nely, nelx)`` for each budget b ≤ K: each candidate solved once,
    thresholded under the study's rule, the stiffest kept. The designs and chosen indices by budget, and the solves'
    seconds."""
    with Stopwatch() as watch:
        costs = np.stack([problems.judge.compliances_at(c, problems.rule) for c in candidates])  # (K, N)
    chosen = {b: costs[:b].argmin(axis=0) for b in budgets}
    columns = np.arange(candidates.shape[1])
    return {b: candidates[index, columns] for b, index in chosen.items()}, chosen, watch.seconds


def _decoded(decode: Callable[[torch.Tensor], torch.Tensor], latents: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.stack([torch.sigmoid(decode(z)).double().cpu().numpy() for z in latents])


@dataclass
class BestOf:
    """Best of b: b candidates decoded from ``latents`` through ``decoder``, each solved once (thresholded under the
    study's rule), the stiffest kept."""

    key: str
    latents: Latents
    decoder: Decoder

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        largest = max(budgets)
        with Stopwatch(problems.device) as watch:
            candidates = _decoded(self.decoder(problems), self.latents(problems, largest))
        designs, _, solve_seconds = _best_of(problems, candidates, budgets)
        return MethodResult(designs, exact_solves(budgets, len(problems)),
                            linear_seconds(budgets, largest, watch.seconds + solve_seconds), candidates[0])


@dataclass
class BestRetrieved:
    """Retrieval's best of b: the b training designs nearest in condition space, each solved once (thresholded under
    the study's rule), the stiffest kept; at b = 1 the nearest design as is."""

    key: str
    retrieval: Retrieval

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        largest = max(budgets)
        with Stopwatch() as watch:
            candidates = self.retrieval.nearest(problems.judge.problems, largest).astype(float)
        designs, _, solve_seconds = _best_of(problems, candidates, budgets)
        return MethodResult(designs, exact_solves(budgets, len(problems)),
                            linear_seconds(budgets, largest, watch.seconds + solve_seconds), candidates[0])


@dataclass
class LatentSearch:
    """Adam on the latents through a frozen decoder and the volume projection
    (:func:`utils.design_space.gradient_search`), one solve per step (with :func:`decoded_logits` and
    :func:`pixel_decoder`: Adam on the pixels' logits, the same projection and schedule). With ``from_best = k`` it
    first spends k solves on the best of its first k candidate latents (its designs at budgets up to k), then searches
    from the chosen latent; otherwise it starts from the first candidate. A run is remembered, so that a two-stage
    method on the same problems reuses it."""

    key: str
    latents: Latents
    decoder: Decoder
    lr: float
    sharpness: SharpnessSchedule | None = None
    from_best: int = 0
    _memo: tuple[StudyProblems, MethodResult] | None = field(default=None, init=False, repr=False)

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        if self._memo and self._memo[0] is problems and set(budgets) <= set(self._memo[1].designs):
            return self._memo[1].at(budgets)
        spent, n = min(self.from_best, max(budgets)), len(problems)  # a budget below k buys best of b only
        decode = self.decoder(problems)
        latents = self.latents(problems, max(spent, 1))
        designs, seconds, setup = {}, {}, 0.0
        start = latents[0]
        if spent:
            with Stopwatch(problems.device) as watch:
                candidates = _decoded(decode, latents)
            early = [b for b in budgets if b <= spent]
            chosen_designs, chosen, solve_seconds = _best_of(problems, candidates, sorted({*early, spent}))
            setup = watch.seconds + solve_seconds
            designs.update({b: chosen_designs[b] for b in early})
            seconds.update(linear_seconds(early, spent, setup))
            start = latents[torch.as_tensor(chosen[spent]), torch.arange(n)]
        z = start.detach().clone().requires_grad_(True)
        volumes = torch.tensor(problems.judge.targets, dtype=torch.float64)
        steps = [b - spent for b in budgets if b > spent]
        if steps:
            search = gradient_search([z], lambda: decode(z), problems.fe_problems(), volumes, max(steps), self.lr,
                                     steps, self.sharpness)
            designs.update({s + spent: search.designs[s] for s in steps})
            seconds.update({s + spent: setup + t for s, t in
                            linear_seconds(steps, max(steps), search.seconds).items()})
        result = MethodResult(designs, exact_solves(budgets, n), seconds, _decoded(decode, latents[:1])[0])
        self._memo = (problems, result)
        return result


class _BudgetSpent(Exception):
    """Raised inside the objective when the next evaluation would exceed the budget."""


class _StageEnd(Exception):
    """Raised inside the objective when the next evaluation belongs to the next stage of a continuation."""


@dataclass
class Trajectory:
    """One L-BFGS run: ``designs[b]`` the best design over the first b evaluations (b = 0: the start, unsolved),
    every evaluation's loss, the seconds elapsed at each kept budget, and how often L-BFGS-B stopped on its own and
    was restarted (a new stage of a continuation is not counted)."""

    designs: dict[int, np.ndarray]
    losses: list[float]
    seconds: dict[int, float]
    restarts: int = 0


def lbfgs_best_over_trajectory(parameters: Sequence[torch.Tensor],
                               objective: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                               start: Callable[[], torch.Tensor], budget: int, keep: Sequence[int],
                               stages: Sequence[int] = ()) -> Trajectory:
    """L-BFGS-B (:data:`LBFGS_OPTIONS`) on ``parameters`` for exactly ``budget`` evaluations of ``objective()`` →
    (scalar loss, design); one evaluation is one solve. Each design at a kept budget b ≥ 1 is the best of the first b
    evaluated (Hoyer et al.'s rule), at b = 0 ``start()`` (the design at the initial parameters, unsolved); a run
    that stops early restarts from its last iterate with an empty memory.

    ``stages``: evaluation counts after which the objective changes (a continuation, such as a sharper projection).
    There L-BFGS-B restarts with an empty memory from the best point of the stage that ended, and the best design
    restarts with it: a loss is compared with the losses of its own stage only. Without stages: Hoyer et al.'s rule."""
    parameters = list(parameters)
    sizes = [p.numel() for p in parameters]
    losses: list[float] = []
    trajectory = Trajectory({}, losses, {})
    ends = sorted(s for s in set(stages) if 0 < s < budget)
    best: tuple[float, np.ndarray | None, np.ndarray | None] = (math.inf, None, None)
    begin = time.perf_counter()

    def assign(x: np.ndarray) -> None:
        with torch.no_grad():
            for p, chunk in zip(parameters, np.split(x, np.cumsum(sizes)[:-1]), strict=True):
                p.copy_(torch.as_tensor(chunk.reshape(p.shape), dtype=p.dtype))

    def value_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best
        if len(losses) == budget:
            raise _BudgetSpent
        if ends and len(losses) == ends[0] and best[1] is not None:
            raise _StageEnd
        assign(x)
        for p in parameters:
            p.grad = None
        loss, design = objective()
        loss.backward()
        value = float(loss.detach())
        losses.append(value)
        if value < best[0] or best[1] is None:
            best = (value, design.detach().cpu().double().numpy(), x.copy())
        if len(losses) in keep:
            trajectory.designs[len(losses)] = best[1]
            trajectory.seconds[len(losses)] = time.perf_counter() - begin
        grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().double().reshape(-1)
                 for p in parameters]
        return value, torch.cat(grads).numpy().copy()

    x = torch.cat([p.detach().double().reshape(-1) for p in parameters]).numpy()
    if 0 in keep:
        with torch.no_grad():
            trajectory.designs[0] = start().detach().cpu().double().numpy()
        trajectory.seconds[0] = 0.0
    while len(losses) < budget:
        try:
            result = scipy.optimize.minimize(value_and_grad, x, jac=True, method="L-BFGS-B",
                                             options={**LBFGS_OPTIONS, "maxfun": budget + 1})
        except _BudgetSpent:
            break
        except _StageEnd:
            x, best = best[2], (math.inf, None, None)
            ends.pop(0)
            continue
        x = np.asarray(result.x, dtype=float)
        trajectory.restarts += 1
    return trajectory


def sharpness_stages(sharpness: SharpnessSchedule, budget: int) -> list[int]:
    """The evaluation counts k < ``budget`` at which the schedule's β changes (β(k) ≠ β(k − 1))."""
    return [k for k in range(1, budget) if sharpness(k) != sharpness(k - 1)]


@dataclass
class LBFGSSearch:
    """L-BFGS-B (:data:`LBFGS_OPTIONS`) where :class:`LatentSearch` has Adam: the same variables (the latents through
    a frozen decoder, or with :func:`decoded_logits` and :func:`pixel_decoder` the pixels' logits), the same first
    candidate as start, the same volume projection and sharpening schedule, one solve per evaluation (line-search
    evaluations included). One problem at a time (a line search belongs to one objective); β(k) for the k-th
    evaluation, the memory emptied where β changes (:func:`lbfgs_best_over_trajectory`'s stages); the design at
    budget b is the stiffest, in grey compliance, of the first b evaluations at the current β."""

    key: str
    latents: Latents
    decoder: Decoder
    sharpness: SharpnessSchedule | None = None

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        largest, sharpness = max(budgets), self.sharpness or constant_sharpness(1.0)
        runs, start_designs, total = [], [], 0.0
        for i in range(len(problems)):
            one = problems.take(np.array([i]))
            decode, (fe_problem,) = self.decoder(one), one.fe_problems()
            first = self.latents(one, 1)[0]
            with torch.no_grad():
                start_designs.append(torch.sigmoid(decode(first)).double().cpu().numpy()[0])
            z = first.detach().clone().requires_grad_(True)
            volume = torch.tensor(one.judge.targets, dtype=torch.float64)
            evaluations = [0]

            def objective(z: torch.Tensor = z, decode: Callable = decode, fe_problem: object = fe_problem,
                          volume: torch.Tensor = volume, evaluations: list[int] = evaluations
                          ) -> tuple[torch.Tensor, torch.Tensor]:
                density = project_to_volume(decode(z), volume, sharpness(evaluations[0]))
                evaluations[0] += 1
                return differentiable_compliance(density, [fe_problem]).sum(), density[0]

            def start(z: torch.Tensor = z, decode: Callable = decode, volume: torch.Tensor = volume) -> torch.Tensor:
                return project_to_volume(decode(z), volume, sharpness(0))[0]

            with Stopwatch(problems.device) as watch:
                runs.append(lbfgs_best_over_trajectory([z], objective, start, largest, budgets,
                                                       sharpness_stages(sharpness, largest)))
            if fe_problem.solves != largest:
                raise RuntimeError(f"{self.key}: {fe_problem.solves} solves for a budget of {largest}")
            total += watch.seconds
        return MethodResult({b: np.stack([run.designs[b] for run in runs]) for b in budgets},
                            exact_solves(budgets, len(problems)), linear_seconds(budgets, largest, total),
                            np.stack(start_designs))


@dataclass
class ThenSimp:
    """Two stages: ``first``'s design at budget ``after``, then SIMP from it for the remaining solves; at budgets up to
    ``after`` the first stage's designs."""

    key: str
    first: LatentSearch
    after: int

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        early = [b for b in budgets if b <= self.after]
        later = [b - self.after for b in budgets if b > self.after]
        first = self.first.run(problems, sorted({*early, *([self.after] if later else [])}))
        designs = {b: first.designs[b] for b in early}
        seconds = {b: first.seconds[b] for b in early}
        if later:
            second = SimpFrom(self.key, lambda _: (first.designs[self.after], 0.0)).run(problems, later)
            designs.update({b + self.after: second.designs[b] for b in later})
            seconds.update({b + self.after: first.seconds[self.after] + s for b, s in second.seconds.items()})
        return MethodResult(designs, exact_solves(budgets, len(problems)), seconds, first.decoded)


def untrained_copy(decoder: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised copy of ``decoder``'s architecture: the same layers, each re-drawn by PyTorch's default
    initialisation from ``seed``, every weight trainable."""
    fresh = copy.deepcopy(decoder)
    torch.manual_seed(seed)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    for parameter in fresh.parameters():
        parameter.requires_grad_(True)
    return fresh.train()


@dataclass
class Reparametrised:
    """An untrained decoder with Adam: per problem a fresh, untrained copy of the CVAE's decoder (seed ``seed`` + the
    problem's id), its fixed input (μ_p(c), c), and Adam on its weights through the volume projection. Not Hoyer et
    al.'s published method (architecture, filter and optimiser differ)."""

    key: str
    cvae: nn.Module
    lr: float
    sharpness: SharpnessSchedule | None = None
    seed: int = 0

    def run(self, problems: StudyProblems, budgets: Sequence[int]) -> MethodResult:
        largest = max(budgets)
        with torch.no_grad():
            inputs = torch.cat([self.cvae.prior_moments(problems.conditions)[0], problems.conditions], dim=1)
        per_problem, total = [], 0.0
        for i, problem in zip(problems.ids, problems.fe_problems(), strict=True):
            network = untrained_copy(self.cvae.decoder, self.seed + int(i))
            volume = torch.tensor([problem.case.volfrac], dtype=torch.float64)
            x = inputs[len(per_problem):len(per_problem) + 1]
            search = gradient_search(list(network.parameters()), lambda n=network, v=x: n(v)[:, 0].double().cpu(),
                                     [problem], volume, largest, self.lr, budgets, self.sharpness)
            per_problem.append(search.designs)
            total += search.seconds
        designs = {b: np.stack([d[b][0] for d in per_problem]) for b in budgets}
        return MethodResult(designs, exact_solves(budgets, len(problems)), linear_seconds(budgets, largest, total))
