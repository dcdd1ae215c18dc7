"""Self-checks of lesson 9 (designing in the learned space). References: central finite differences of the
course's solver (utils.topopt.compliance) and torch.autograd.gradcheck for the compliance's backward pass; an
independent root-finder (scipy's brentq) and finite differences of it for the volume projection; Adam's update
rule written out in NumPy on problems with closed-form gradients for the search loop."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import optimize as scipy_optimize
from torch import nn

from utils.checks._core import ExerciseCheckFailed, assert_close, exercise_check, passed, returned, student_call
from utils.design_space import FEProblem, fe_problems
from utils.topopt import E0, LoadCase, cantilever, compliance, mbb_beam

# Central differences with step 1e-6 of a cubic in the density agree with the derivative to about 1e-8 relative.
FINITE_DIFFERENCE_STEP = 1e-6
# Central differences with step 1e-6 agree with the exact derivative to about 1e-8 relative where the derivative is
# large; small derivatives carry the compliance's rounding (≈ 1e-16 c / h). A relative 1e-4 plus 1e-6 of the largest
# entry keeps both inside, and still separates E0 from E0 − E_min where E_min ≥ 1e-3 (a 0.1 % difference).
GRADIENT_RTOL = 1e-4
GRADIENT_ATOL = 1e-6


def _compliance_cases(rng: np.random.Generator) -> list[tuple[str, list[FEProblem], np.ndarray]]:
    """(name, problems, densities (B, nely, nelx)): two meshes, E_min from 1e-9 to 1e-2, penalties 3, 2 and 4,
    densities at the bounds."""
    cases = []
    for name, load_cases, e_min, penal in (
            ("8×4 cantilevers, E_min = 1e-9, p = 3",
             [cantilever(8, 4, 0.5, 1.0, -70.0), cantilever(8, 4, 0.4, 3.0, -120.0)], 1e-9, 3.0),
            ("6×3 MBB beams, E_min = 1e-3, p = 2", [mbb_beam(6, 3, 0.4)] * 2, 1e-3, 2.0),
            ("5×4 cantilever, E_min = 1e-2, p = 4", [cantilever(5, 4, 0.5, 4.0, -90.0)], 1e-2, 4.0)):
        problems = fe_problems(load_cases, penal=penal, e_min=e_min)
        density = rng.uniform(0.05, 1.0, (len(problems), load_cases[0].nely, load_cases[0].nelx))
        density[:, 0, 0], density[:, -1, 1] = 1.0, 0.0  # the bounds: solid and void
        cases.append((name, problems, density))
    return cases


def _applied(function: type | Callable) -> Callable:
    """A ``torch.autograd.Function`` subclass's ``apply``; a plain callable as it is."""
    return getattr(function, "apply", function)


def _drive_apply(function: type | Callable, *args: object) -> object:
    """The student's part of :func:`check_volume_projection`, run where the class lives: its ``apply`` on the
    arguments (tensors the check differentiates through, across processes too)."""
    return _applied(function)(*args)


def _problem_data(problems: list[FEProblem]) -> list[dict]:
    """The problems as plain data: each load case (:meth:`LoadCase.to_dict`), penalty and void stiffness."""
    return [{"case": problem.case.to_dict(), "penal": problem.penal, "e_min": problem.e_min} for problem in problems]


def _drive_compliance(function: type | Callable, density: torch.Tensor, problems: list[dict]) -> object:
    """The student's part of :func:`check_compliance_backward`, run where the class lives: its ``apply`` on the
    densities and the problems rebuilt from :func:`_problem_data`."""
    rebuilt = [fe_problems([LoadCase.from_dict(data["case"])], penal=data["penal"], e_min=data["e_min"])[0]
               for data in problems]
    return _applied(function)(density, rebuilt)


def _finite_differences(density: np.ndarray, problem: FEProblem, elements: list[tuple[int, int]]) -> np.ndarray:
    """(c(ρ + h e_k) − c(ρ − h e_k)) / 2h with utils.topopt.compliance (no clipping needed: ρ ± h stays in [0, 1]
    except at the bounds, where the one-sided difference of the same order, (∓3c(ρ) ± 4c(ρ ± h) ∓ c(ρ ± 2h)) / 2h,
    is used: a first-order one would be off by h·c'' there, which p = 2 makes as large as the slope's tolerance)."""
    def shifted(row: int, col: int, step: float) -> float:
        moved = density.copy()
        moved[row, col] += step
        return compliance(moved, problem.case, problem.penal, problem.model, problem.e_min)

    h = FINITE_DIFFERENCE_STEP
    values = []
    for row, col in elements:
        if 0 < density[row, col] < 1:
            values.append((shifted(row, col, h) - shifted(row, col, -h)) / (2 * h))
        else:
            side = 1.0 if density[row, col] == 0 else -1.0
            values.append(side * (-3 * shifted(row, col, 0.0) + 4 * shifted(row, col, side * h)
                                  - shifted(row, col, 2 * side * h)) / (2 * h))
    return np.array(values)


def _backward_of(subject: str, x: torch.Tensor, output: torch.Tensor, expected: str) -> torch.Tensor:
    """∂ output / ∂ x through the student's backward; what PyTorch refuses in what it returned, or a change it made
    to the caller's x, is reported in the student's terms."""
    before = x.detach().clone()
    try:
        (got,) = torch.autograd.grad(output, x)
    except NotImplementedError:  # a RuntimeError too: the stub, not done yet
        raise
    except RuntimeError as error:
        raise ExerciseCheckFailed(f"{subject}: PyTorch refused what your backward returned ({error}). backward returns "
                                  f"one value per input of forward: {expected}.") from None
    if not torch.equal(x.detach(), before):
        raise ExerciseCheckFailed(f"{subject}: your backward changed the densities it was given (an in-place operation "
                                  "such as **=, *= or .pow_() on a saved tensor): the caller's designs are now wrong. "
                                  "Compute new tensors instead.")
    return got


def _energies(problem: FEProblem, density: np.ndarray) -> np.ndarray:
    x = density.ravel(order="F")
    young = problem.e_min + x**problem.penal * (E0 - problem.e_min)
    displacement = problem.model.solve(young, problem.force)
    return problem.model.element_energies(displacement).reshape(density.shape, order="F")


@exercise_check
def check_compliance_backward(compliance_function: type) -> None:
    """``compliance_function.apply(density (B, nely, nelx), problems)`` on two meshes and three void stiffnesses,
    with densities at the bounds: the compliances equal the solver's, the gradient of Σ_b w_b c_b (random weights
    w: the incoming gradient) equals central finite differences, and torch.autograd.gradcheck passes."""
    rng = np.random.default_rng(901)

    def apply(density: torch.Tensor, problems: list[FEProblem]) -> object:
        return student_call(_drive_compliance, compliance_function, density, _problem_data(problems))
    for name, problems, density in _compliance_cases(rng):
        x = torch.tensor(density, dtype=torch.float64, requires_grad=True)
        values = apply(x, problems)
        expected = np.array([compliance(d, p.case, p.penal, p.model, p.e_min) for d, p in zip(density, problems,
                                                                                             strict=True)])
        assert_close(f"the forward pass ({name})", values, expected, rtol=1e-9, atol=0,
                     hint="The forward pass is given: run its cell again unchanged.")
        weights = torch.tensor(rng.uniform(0.5, 2.0, len(problems)), dtype=torch.float64)
        got = _backward_of(f"compliance backward ({name})", x, (weights * values).sum(),
                           "one gradient shaped like density, then None for problems")
        elements = [(0, 0), (density.shape[1] - 1, 1), (1, density.shape[2] - 1), (density.shape[1] // 2, 2)]
        rows, cols = np.array(elements).T
        w = weights.numpy()[:, None]
        reference = np.stack([_finite_differences(d, p, elements) for d, p in zip(density, problems, strict=True)])
        energies = np.stack([_energies(p, d) for d, p in zip(density, problems, strict=True)])
        penal, e_min = problems[0].penal, problems[0].e_min
        slope = penal * density ** (penal - 1) * (E0 - e_min)
        right = -slope * energies
        at = (slice(None), rows, cols)
        mistakes = {
            "with the opposite sign (more material never makes a structure less stiff)": -w * right[at],
            "with x^p in place of its derivative p·x^(p−1)": -w * (density**penal * (E0 - e_min) * energies)[at],
            "without the incoming gradient (grad_output ignored)": right[at],
            "with the design's total energy Σ_e u_eᵀ k0 u_e in place of each element's own":
                -w * (slope * energies.sum(axis=(1, 2), keepdims=True))[at],
            "without the factor p": -w * (density ** (penal - 1) * (E0 - e_min) * energies)[at],
            "with the element values in row-major (C) order instead of the solver's column-major (Fortran) order":
                -w * (slope * np.stack([e.ravel(order="F").reshape(e.shape) for e in energies]))[at],
        }
        if e_min >= 1e-3:  # below, E0 and E0 − E_min cannot be told apart by numbers
            mistakes["with E0 in place of E0 − E_min"] = -w * (penal * density ** (penal - 1) * E0 * energies)[at]
        assert_close(f"the gradient ({name}) against finite differences of the solver's compliance",
                     got.detach().numpy()[at], w * reference, rtol=GRADIENT_RTOL,
                     atol=GRADIENT_ATOL * np.abs(reference).max(),
                     mistakes=mistakes,
                     hint="∂c/∂ρ_e = −p ρ_e^(p−1) (E0 − E_min) u_eᵀ k0 u_e for every element (summed over its 8 "
                          "degrees of freedom), times grad_output of its design.")
        # gradcheck's own differences (step 1e-6) on light elements carry a truncation error of up to 1e-3 relative
        # (c''' is large where ρ is small): its tolerances are the finite-difference comparison's above, widened.
        if not torch.autograd.gradcheck(lambda d, ps=problems: apply(d, ps), (x,),
                                        eps=FINITE_DIFFERENCE_STEP, atol=1e-4, rtol=1e-3, raise_exception=False):
            raise ExerciseCheckFailed(f"compliance backward ({name}): torch.autograd.gradcheck fails, although the "
                                      "gradient of a weighted sum matched: check every element, not a few.")
    passed("compliance backward")


def _exact_projection(logits: np.ndarray, volume: float) -> np.ndarray:
    """sigmoid(ℓ + η) with η found by brentq to rounding: the independent reference."""
    def excess(eta: float) -> float:
        return float(np.mean(1 / (1 + np.exp(-(logits + eta))))) - volume
    eta = scipy_optimize.brentq(excess, -logits.max() - 60, -logits.min() + 60, xtol=1e-14, rtol=1e-15)
    return 1 / (1 + np.exp(-(logits + eta)))


def _projection_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, logits (B, n), volume fractions (B,)): mild and saturated logits, ties, low and high volumes."""
    ties = np.repeat(rng.normal(0, 2, 6), 5)
    return [("3 designs of 40 pixels, logits of order 1", rng.normal(0, 1, (3, 40)), np.array([0.3, 0.4, 0.5])),
            ("2 designs, saturated logits (up to ±12)", rng.normal(0, 4, (2, 50)), np.array([0.25, 0.6])),
            ("1 design with tied logits", ties[None], np.array([0.45])),
            ("4 designs of 12 pixels, logits shifted by +5", rng.normal(5, 1, (4, 12)),
             np.array([0.2, 0.35, 0.5, 0.7])),
            # What section 4 feeds: a decoder's logits (shifted by a few units) times a sharpness of 8.
            ("2 designs of 60 pixels, decoder logits × sharpness 8 (−60 to +20)", 8 * rng.normal(-2.5, 1.5, (2, 60)),
             np.array([0.3, 0.5]))]


PROJECTION_VOLUME_TOLERANCE = 1e-6


@exercise_check
def check_volume_projection(projection: type) -> None:
    """``projection.apply(logits (B, n), volume_fractions (B,))`` on four cases: the mean density meets each target
    within 1e-6, the output is sigmoid(ℓ + η) with one η per design, and the gradient of a random linear function of
    the output equals central finite differences of an exact projection (brentq); gradcheck passes."""
    rng = np.random.default_rng(902)

    def apply(*args: torch.Tensor) -> object:
        return student_call(_drive_apply, projection, *args)
    for name, logits, volumes in _projection_cases(rng):
        ell = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        rho = returned(f"volume projection ({name})", apply(ell, torch.tensor(volumes, dtype=torch.float64)))
        if not isinstance(rho, torch.Tensor):
            raise ExerciseCheckFailed(f"volume projection ({name}): forward returned a {type(rho).__name__}, not a "
                                      "torch tensor.")
        if rho.dtype != torch.float64:
            raise ExerciseCheckFailed(f"volume projection ({name}): float64 logits gave {rho.dtype} densities: compute "
                                      "in the logits' dtype (float32 rounds at 1e-7, too coarse for a volume within "
                                      "1e-6 and for gradcheck).")
        if tuple(rho.shape) != logits.shape:
            raise ExerciseCheckFailed(f"volume projection ({name}): output shape {tuple(rho.shape)}, expected "
                                      f"{logits.shape}: one density per logit")
        density = rho.detach().numpy()
        if not np.all(np.isfinite(density)):
            worst = int(np.flatnonzero(~np.isfinite(density).all(axis=1))[0])
            raise ExerciseCheckFailed(
                f"volume projection ({name}): design {worst} has NaN or infinite densities: the search for η diverged. "
                "A Newton step divides by the slope of the mean, which vanishes where every pixel is saturated: keep "
                "η inside a bracket (one end all void, the other all solid) and bisect, or fall back to bisection "
                "when a step leaves it.")
        means = density.mean(axis=1)
        if np.any(np.abs(means - volumes) > PROJECTION_VOLUME_TOLERANCE):
            worst = int(np.argmax(np.abs(means - volumes)))
            raise ExerciseCheckFailed(
                f"volume projection ({name}): design {worst} has mean density {means[worst]:.7f}, its target "
                f"{volumes[worst]}: solve for η until the volume is met within 1e-6 (the mean grows with η; bisect "
                "between a value where every pixel is void and one where every pixel is solid, or use Newton).")
        inside = (density > 1e-9) & (density < 1 - 1e-9)
        with np.errstate(divide="ignore"):
            shift = np.log(density) - np.log1p(-density) - logits
        spread = [np.ptp(row[keep]) / (1 + np.abs(row[keep]).max()) if keep.any() else np.inf
                  for row, keep in zip(shift, inside, strict=True)]
        if max(spread) > 1e-6:
            precision = (f" It nearly is (to {max(spread):.0e}): is part of your computation in float32?"
                         if max(spread) < 1e-3 else "")
            raise ExerciseCheckFailed(f"volume projection ({name}): the output is not sigmoid(ℓ + η) with one η per "
                                      "design: add the same scalar to every logit of a design, then apply sigmoid."
                                      f"{precision}")
        weights = rng.normal(0, 1, logits.shape)
        got = _backward_of(f"volume projection ({name})", ell, (rho * torch.tensor(weights)).sum(),
                           "the gradient for the logits, then None for the volume fractions")
        reference = np.zeros_like(logits)
        for b in range(len(logits)):
            for j in range(logits.shape[1]):
                up, down = logits[b].copy(), logits[b].copy()
                up[j] += FINITE_DIFFERENCE_STEP
                down[j] -= FINITE_DIFFERENCE_STEP
                reference[b, j] = weights[b] @ (_exact_projection(up, volumes[b]) - _exact_projection(down, volumes[b])
                                                ) / (2 * FINITE_DIFFERENCE_STEP)
        slope = density * (1 - density)
        weighted_mean = (slope * weights).sum(axis=1, keepdims=True) / slope.sum(axis=1, keepdims=True)
        mistakes = {
            "with η held fixed (the plain sigmoid's gradient s ⊙ g): η moves with every logit to keep the volume":
                slope * weights,
            "with the plain mean of g subtracted: the implicit gradient weights it by s_i = ρ_i (1 − ρ_i)":
                slope * (weights - weights.mean(axis=1, keepdims=True)),
            "with the incoming gradient passed through unchanged": weights,
            "with s ⊙ g minus its mean (the volume's correction applied after the slope, unweighted)":
                slope * weights - (slope * weights).mean(axis=1, keepdims=True),
            "with the volume's correction added where it must be subtracted": slope * (weights + weighted_mean),
        }
        assert_close(f"the projection's gradient ({name}) against finite differences", got, reference, rtol=1e-5,
                     atol=1e-7, mistakes=mistakes,
                     hint="Differentiate Σ_i sigmoid(ℓ_i + η) = N V with respect to ℓ_j to get ∂η/∂ℓ_j, then apply "
                          "the chain rule through ρ_i = sigmoid(ℓ_i + η).")
        small = ell[:, :8].detach().clone().requires_grad_(True)
        if not torch.autograd.gradcheck(lambda v, vf=volumes: apply(v, torch.tensor(vf)), (small,),
                                        eps=1e-6, atol=1e-6, rtol=1e-4, raise_exception=False):
            raise ExerciseCheckFailed(f"volume projection ({name}): torch.autograd.gradcheck fails on the first 8 "
                                      "pixels, although a weighted sum matched: check the gradient of every pixel, "
                                      "and that forward and backward compute in float64 throughout (gradcheck's "
                                      "differences need its precision).")
    passed("volume projection")


class _CountingObjective:
    """Σ_i a_i (ρ_i − t_i)² + 1 per design, a stand-in for the compliance with a closed-form gradient; counts its
    calls (one solve per design each) and records what it returned."""

    def __init__(self, weights: np.ndarray, targets: np.ndarray) -> None:
        self.weights, self.targets = torch.tensor(weights), torch.tensor(targets)
        self.calls, self.returned = 0, []

    def __call__(self, density: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = (self.weights * (density - self.targets) ** 2).sum(dim=1) + 1.0
        self.returned.append(value.detach().numpy().copy())
        return value

    def gradient(self, density: np.ndarray) -> np.ndarray:
        return 2 * self.weights.numpy() * (density - self.targets.numpy())


class _ToyDecoder(nn.Module):
    """z ↦ sigmoid(W z + b), (B, d) → (B, n): a frozen decoder with trainable-looking weights."""

    def __init__(self, latent: int, pixels: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(latent, pixels).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(pixels, latent, generator=generator, dtype=torch.float64) * 0.5)
            self.linear.bias.copy_(torch.randn(pixels, generator=generator, dtype=torch.float64) * 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(z))


def _adam_reference(decoder: _ToyDecoder, objective: _CountingObjective, z0: np.ndarray, budget: int, lr: float,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, scale: float = 1.0
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Adam (Kingma & Ba 2015) written out in NumPy on the toy's closed-form gradient, times ``scale`` (1: the
    gradient of the sum of the designs' values): the latent after ``budget`` steps and the objective at each step."""
    weight, bias = decoder.linear.weight.detach().numpy(), decoder.linear.bias.detach().numpy()
    z, m, v, history = z0.copy(), np.zeros_like(z0), np.zeros_like(z0), []
    for step in range(1, budget + 1):
        density = 1 / (1 + np.exp(-(z @ weight.T + bias)))
        history.append((objective.weights.numpy() * (density - objective.targets.numpy()) ** 2).sum(axis=1) + 1.0)
        grad = scale * (objective.gradient(density) * density * (1 - density)) @ weight
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        z = z - lr * (m / (1 - betas[0] ** step)) / (np.sqrt(v / (1 - betas[1] ** step)) + eps)
    return z, history


def _search_cases() -> list[tuple[str, int, int, int, int, float]]:
    """(name, designs, latent size, pixels, budget, learning rate)."""
    return [("3 designs, 4 latents, 10 steps", 3, 4, 20, 10, 0.1), ("1 design, 2 latents, 1 step", 1, 2, 6, 1, 0.05),
            ("5 designs, 8 latents, 25 steps", 5, 8, 30, 25, 0.02)]


def _drive_optimize_latent(optimize_latent: Callable, toy: tuple[int, int, int], z0: torch.Tensor,
                           objective: Callable, budget: int, lr: float) -> dict:
    """The student's part of :func:`check_optimize_latent`, run where the function lives: its result with the toy
    decoder built from ``toy`` (latent size, pixels, seed), and the decoder's parameters after the search."""
    decoder = _ToyDecoder(*toy)
    result = optimize_latent(decoder, z0, objective, budget, lr)
    return {"result": result, "decoder": [p.detach().clone() for p in decoder.parameters()]}


@exercise_check
def check_optimize_latent(optimize_latent: Callable) -> None:
    """``optimize_latent(decoder, z0, objective, budget, lr)`` on three toy problems with closed-form gradients:
    exactly ``budget`` calls of the objective (solves), the decoder's weights and ``z0`` untouched, the history of
    the ``budget`` values the objective returned, and the latent Adam's update rule reaches after ``budget`` steps."""
    rng = np.random.default_rng(903)
    for index, (name, designs, latent, pixels, budget, lr) in enumerate(_search_cases()):
        decoder = _ToyDecoder(latent, pixels, seed=900 + index)
        weights_before = [p.detach().clone() for p in decoder.parameters()]
        objective = _CountingObjective(rng.uniform(0.5, 2.0, (designs, pixels)), rng.uniform(0, 1, (designs, pixels)))
        z0 = torch.tensor(rng.normal(0, 1, (designs, latent)))
        z0_before = z0.clone()
        run = student_call(_drive_optimize_latent, optimize_latent, (latent, pixels, 900 + index), z0, objective,
                           budget, lr)
        result = returned(f"optimize_latent ({name})", run["result"])
        if not isinstance(result, tuple) or len(result) != 2:
            raise ExerciseCheckFailed("optimize_latent: return a pair (the latent after the search, the history)")
        z, history = result
        if not torch.equal(z0, z0_before):
            raise ExerciseCheckFailed(f"optimize_latent ({name}): z0 was changed in place; optimise a copy "
                                      "(z0.detach().clone().requires_grad_(True)).")
        if any(not torch.equal(p.detach(), before) for p, before in zip(run["decoder"], weights_before,
                                                                         strict=True)):
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the decoder's weights changed; the decoder is "
                                      "frozen: give the optimiser the latent z only.")
        if objective.calls != budget:
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the objective ran {objective.calls} times for a "
                                      f"budget of {budget} solves: one evaluation per step, and none after the last "
                                      "step (its design is judged later, not solved here).")
        if not isinstance(z, torch.Tensor):
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the latent is a {type(z).__name__}, not a torch "
                                      "tensor: the cells after this one decode it.")
        steps = list(history)
        history = np.array([np.asarray(h.detach() if isinstance(h, torch.Tensor) else h, dtype=float)
                            for h in steps])
        if history.shape != (budget, designs):
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the history has shape {history.shape}, expected "
                                      f"({budget}, {designs}): one value per step and design (not their sum).")
        if not all(isinstance(h, torch.Tensor | np.ndarray) for h in steps):
            kind = type(next(h for h in steps if not isinstance(h, torch.Tensor | np.ndarray))).__name__
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the history holds a {kind}; keep each step's values "
                                      "as the tensor the objective returned (without its graph): the cells after "
                                      "this one read them with .item().")
        assert_close(f"optimize_latent ({name}): the history", history, np.array(objective.returned), rtol=1e-12,
                     atol=1e-12, hint="Record the objective's values at each step, in order, before the update.")
        z_reference, history_reference = _adam_reference(decoder, objective, z0.numpy(), budget, lr)
        z_np = (z.detach() if isinstance(z, torch.Tensor) else torch.as_tensor(z)).double().numpy()
        if z_np.shape != z_reference.shape:
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the latent has shape {z_np.shape}, expected "
                                      f"{z_reference.shape}")
        if history[-1].sum() > history[0].sum() * (1 + 1e-9) and budget > 3:
            raise ExerciseCheckFailed(f"optimize_latent ({name}): the objective grew from {history[0].sum():.4f} to "
                                      f"{history[-1].sum():.4f}: minimise it (step against the gradient).")
        z_of_mean, _ = _adam_reference(decoder, objective, z0.numpy(), budget, lr, scale=1 / designs)
        mistakes = {} if designs == 1 else {
            "with the gradient of the designs' mean value, not of their sum: Adam divides out most of that scale, "
            "not all of it (its ε), so the steps differ a little": z_of_mean}
        assert_close(f"optimize_latent ({name}): the latent after {budget} steps against Adam's update rule", z_np,
                     z_reference, rtol=1e-6, atol=1e-9, mistakes=mistakes,
                     hint="torch.optim.Adam([z], lr=lr); each step: zero the gradient, evaluate, backward, step.")
    passed("optimize_latent")
