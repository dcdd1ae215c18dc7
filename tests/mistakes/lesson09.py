"""Lesson 9: the compliance's backward pass, the volume projection with its implicit gradient, the latent search."""
from __future__ import annotations

import numpy as np
import torch
from scipy import optimize as scipy_optimize

from tests.mistakes.catalogue import Answer, Exercise
from utils.checks import lesson09
from utils.topopt import E0, young_modulus


class _GivenForward(torch.autograd.Function):
    """The forward pass the lesson hands out: one solve per design, the displacements kept for the backward."""

    @staticmethod
    def forward(ctx, density, problems):
        displacements = [problem.model.solve(young_modulus(design.ravel(order="F"), problem.penal, problem.e_min),
                                             problem.force)
                         for design, problem in zip(density.detach().numpy(), problems, strict=True)]
        ctx.problems = problems
        ctx.save_for_backward(density, torch.as_tensor(np.stack(displacements)))
        return torch.as_tensor([p.force @ u for p, u in zip(problems, displacements, strict=True)],
                               dtype=density.dtype)


def _backward_class(*, sign=-1.0, power_shift=1, e0_only=False, use_grad=True, total_energy=False, factor=True,
                    order="F", penal=None, gradients="two", in_place=False):
    class Compliance(_GivenForward):
        @staticmethod
        def backward(ctx, grad_output):
            density, displacements = ctx.saved_tensors
            grads = []
            for b, problem in enumerate(ctx.problems):
                ue = displacements[b][torch.as_tensor(problem.model.edofs)]
                energies = torch.einsum("ei,ij,ej->e", ue, torch.as_tensor(problem.model.ke), ue)
                nely, nelx = density.shape[1:]
                image = energies.reshape(nelx, nely).T if order == "F" else energies.reshape(nely, nelx)
                if total_energy:
                    image = image.sum() * torch.ones_like(image)
                p = problem.penal if penal is None else penal
                stiffness = E0 if e0_only else E0 - problem.e_min
                if in_place:  # the slip: the power taken on the saved densities themselves
                    power = density[b]
                    power **= p - power_shift
                else:
                    power = density[b] ** (p - power_shift)
                slope = (p if factor else 1.0) * power * stiffness
                grads.append(sign * slope * image * (grad_output[b] if use_grad else 1.0))
            return (torch.stack(grads), None) if gradients == "two" else torch.stack(grads)
    return Compliance


class _ElementLoop(_GivenForward):
    """Correct: element by element, in NumPy, with the Fortran numbering spelled out."""

    @staticmethod
    def backward(ctx, grad_output):
        density, displacements = ctx.saved_tensors
        grad = np.zeros(density.shape)
        for b, problem in enumerate(ctx.problems):
            u = displacements[b].numpy()
            nely = density.shape[1]
            for e, dofs in enumerate(problem.model.edofs):
                row, col = e % nely, e // nely
                energy = u[dofs] @ problem.model.ke @ u[dofs]
                rho = float(density[b, row, col])
                grad[b, row, col] = -problem.penal * rho ** (problem.penal - 1) * (E0 - problem.e_min) * energy
            grad[b] *= float(grad_output[b])
        return torch.as_tensor(grad, dtype=density.dtype), None


class _YoungDerivative(_GivenForward):
    """Correct: the derivative of E(ρ) by autograd, the energies with the solver's own helper."""

    @staticmethod
    def backward(ctx, grad_output):
        density, displacements = ctx.saved_tensors
        grads = []
        for b, problem in enumerate(ctx.problems):
            energies = problem.model.element_energies(displacements[b].numpy())
            image = torch.as_tensor(energies.reshape(density.shape[1:], order="F"))
            with torch.enable_grad():
                rho = density[b].detach().clone().requires_grad_(True)
                young = problem.e_min + rho**problem.penal * (E0 - problem.e_min)
                (slope,) = torch.autograd.grad(young.sum(), rho)
            grads.append(-grad_output[b] * slope * image)
        return torch.stack(grads), None


COMPLIANCE_BACKWARD = Exercise("9.1", lesson09.check_compliance_backward, wrong=(
    Answer("positive sign", _backward_class(sign=1.0), "opposite sign"),
    Answer("x^p for p·x^(p−1)", _backward_class(power_shift=0, factor=False), "x^p in place of its derivative"),
    Answer("E0 for E0 − E_min", _backward_class(e0_only=True), "E0 in place of E0 − E_min"),
    Answer("incoming gradient ignored", _backward_class(use_grad=False), "grad_output ignored"),
    Answer("element energies summed over the design", _backward_class(total_energy=True), "total energy"),
    Answer("no factor p", _backward_class(factor=False), "without the factor p"),
    Answer("C order", _backward_class(order="C"), "row-major"),
    # The penalty argument varied: a backward with p = 3 written in.
    Answer("penalty 3 written in", _backward_class(penal=3.0), "p ρ_e^(p−1)"),
    # Misleading before: reported from inside PyTorch or the given forward, not as the student's slip.
    Answer("one gradient returned, no None for problems", _backward_class(gradients="one"), "one value per input"),
    Answer("the power taken in place on the saved densities", _backward_class(in_place=True),
           "changed the densities"),
), correct=(
    Answer("element by element in NumPy", _ElementLoop),
    Answer("E'(ρ) by autograd, energies by the solver", _YoungDerivative),
))


def _projection_class(*, bisection_steps=100, grad="implicit", shift="add", bracket=None, dtype=None,
                      gradients="two"):
    class Projection(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, volume_fractions):
            if dtype is not None:  # the slip: computing (and returning) in another precision
                logits, volume_fractions = logits.to(dtype), volume_fractions.to(dtype)
            low = torch.full((len(logits),), -50.0, dtype=logits.dtype) - logits.max()
            high = torch.full((len(logits),), 50.0, dtype=logits.dtype) - logits.min()
            if bracket is not None:  # the slip: one bracket for every design, whatever its logits
                low, high = (torch.full((len(logits),), end, dtype=logits.dtype) for end in bracket)
            for _ in range(bisection_steps):
                middle = (low + high) / 2
                if shift == "add":
                    density = torch.sigmoid(logits + middle[:, None])
                else:
                    density = (torch.sigmoid(logits) + middle[:, None] / 100).clamp(0, 1)
                over = density.mean(1) > volume_fractions
                high, low = torch.where(over, middle, high), torch.where(over, low, middle)
            middle = (low + high) / 2
            density = (torch.sigmoid(logits + middle[:, None]) if shift == "add"
                       else (torch.sigmoid(logits) + middle[:, None] / 100).clamp(0, 1))
            ctx.save_for_backward(density)
            return density

        @staticmethod
        def backward(ctx, grad_output):
            (density,) = ctx.saved_tensors
            s = density * (1 - density)
            g = grad_output
            results = {
                "implicit": s * (g - (s * g).sum(1, keepdim=True) / s.sum(1, keepdim=True)),
                "eta fixed": s * g,
                "plain mean": s * (g - g.mean(1, keepdim=True)),
                "passthrough": g,
                "wrong sign": s * (g + (s * g).sum(1, keepdim=True) / s.sum(1, keepdim=True)),
            }
            return (results[grad], None) if gradients == "two" else results[grad]
    return Projection


class _NewtonProjection(torch.autograd.Function):
    """Correct: Newton's method on η (the mean is convex-concave but monotone; started at the median's shift)."""

    @staticmethod
    def forward(ctx, logits, volume_fractions):
        eta = -logits.median(dim=1).values + torch.log(volume_fractions / (1 - volume_fractions))
        for _ in range(200):
            density = torch.sigmoid(logits + eta[:, None])
            slope = (density * (1 - density)).mean(1).clamp_min(1e-12)
            step = ((density.mean(1) - volume_fractions) / slope).clamp(-5, 5)
            eta = eta - step
        density = torch.sigmoid(logits + eta[:, None])
        ctx.save_for_backward(density)
        return density

    @staticmethod
    def backward(ctx, grad_output):
        (density,) = ctx.saved_tensors
        s = density * (1 - density)
        weights = s / s.sum(1, keepdim=True)
        return s * grad_output - s * (weights * grad_output).sum(1, keepdim=True), None


class _UnguardedNewton(torch.autograd.Function):
    """Wrong: Newton's method on η from η = 0 with no bracket: where the logits saturate the slope vanishes and the
    steps run away to NaN."""

    @staticmethod
    def forward(ctx, logits, volume_fractions):
        eta = torch.zeros(len(logits), dtype=logits.dtype)
        for _ in range(60):
            density = torch.sigmoid(logits + eta[:, None])
            eta = eta - (density.mean(1) - volume_fractions) / (density * (1 - density)).mean(1)
        density = torch.sigmoid(logits + eta[:, None])
        ctx.save_for_backward(density)
        return density

    backward = _NewtonProjection.backward


class _BrentProjection(torch.autograd.Function):
    """Correct: scipy's brentq per design; the gradient through ∂η/∂ℓ written as a matrix."""

    @staticmethod
    def forward(ctx, logits, volume_fractions):
        rows = []
        for row, volume in zip(logits.numpy(), volume_fractions.numpy(), strict=True):
            eta = scipy_optimize.brentq(lambda e, r=row, v=volume: np.mean(1 / (1 + np.exp(-(r + e)))) - v,
                                        -row.max() - 60, -row.min() + 60, xtol=1e-15)
            rows.append(1 / (1 + np.exp(-(row + eta))))
        density = torch.as_tensor(np.stack(rows), dtype=logits.dtype)
        ctx.save_for_backward(density)
        return density

    @staticmethod
    def backward(ctx, grad_output):
        (density,) = ctx.saved_tensors
        grads = []
        for rho, g in zip(density, grad_output, strict=True):
            s = rho * (1 - rho)
            d_eta = -s / s.sum()
            jacobian = torch.diag(s) + s[:, None] * d_eta[None, :]
            grads.append(jacobian.T @ g)
        return torch.stack(grads), None


VOLUME_PROJECTION = Exercise("9.2", lesson09.check_volume_projection, wrong=(
    Answer("η held fixed in the gradient", _projection_class(grad="eta fixed"), "η held fixed"),
    Answer("plain mean subtracted", _projection_class(grad="plain mean"), "plain mean"),
    Answer("gradient passed through", _projection_class(grad="passthrough"), "passed through unchanged"),
    Answer("wrong sign of the correction", _projection_class(grad="wrong sign"), "added where it must be subtracted",
           hands_over=("g + Σ", "g − Σ")),
    Answer("too few bisection steps", _projection_class(bisection_steps=8), "within 1e-6"),
    Answer("shifts the densities, not the logits", _projection_class(shift="scale"), "one η per design"),
    # The logits varied over the range the course feeds (a decoder's at sharpness 8): a bracket fixed at ±10.
    Answer("η bisected on a fixed bracket [−10, 10]", _projection_class(bracket=(-10.0, 10.0)), "within 1e-6"),
    # Misleading before: a diverging Newton was told its output had the wrong form; float32 to check every pixel.
    Answer("Newton without a bracket (diverges)", _UnguardedNewton, "diverged"),
    Answer("computed in float32", _projection_class(dtype=torch.float32), "float32"),
    Answer("backward returns the gradient alone", _projection_class(gradients="one"), "one value per input"),
), correct=(
    Answer("Newton on η", _NewtonProjection),
    Answer("brentq and an explicit Jacobian", _BrentProjection),
))


def _search(decoder, z0, objective, budget, lr, *, extra_call=False, train_decoder=False, history_sum=False,
            sgd=False, zero_grad=True, ascent=False, in_place=False, history_as="tensor", latent_as="tensor",
            reduce="sum", lr_used=None):
    z = z0 if in_place else z0.detach().clone()
    z.requires_grad_(True)
    parameters = list(decoder.parameters()) if train_decoder else [z]
    optimizer = (torch.optim.SGD if sgd else torch.optim.Adam)(parameters, lr=lr if lr_used is None else lr_used)
    history = []
    for _ in range(budget):
        values = objective(decoder(z))
        if zero_grad:
            optimizer.zero_grad()
        ((-1 if ascent else 1) * getattr(values, reduce)()).backward()
        optimizer.step()
        history.append(values.sum().item() if history_sum
                       else values.tolist() if history_as == "list" else values.detach())
    if extra_call:
        objective(decoder(z))
    return (z.detach() if latent_as == "tensor" else z.detach().numpy()), history


def _search_with_closure(decoder, z0, objective, budget, lr):
    z = torch.nn.Parameter(z0.detach().clone())
    optimizer = torch.optim.Adam([z], lr=lr)
    history = []

    def closure():
        optimizer.zero_grad()
        values = objective(decoder(z))
        history.append(values.detach().numpy())
        values.sum().backward()
        return values.sum()

    for _ in range(budget):
        optimizer.step(closure)
    return z.detach(), np.stack(history)


def _search_with_autograd_grad(decoder, z0, objective, budget, lr):
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam(params=[z], lr=lr)
    history = torch.empty(budget, len(z0), dtype=z0.dtype)
    step = 0
    while step < budget:
        values = objective(decoder(z))
        (z.grad,) = torch.autograd.grad(values.sum(), z)
        optimizer.step()
        history[step] = values.detach()
        step += 1
    return z.detach(), history


OPTIMIZE_LATENT = Exercise("9.3", lesson09.check_optimize_latent, wrong=(
    Answer("one solve too many (the final design evaluated)", lambda *a: _search(*a, extra_call=True), "budget"),
    Answer("the decoder's weights optimised", lambda *a: _search(*a, train_decoder=True), "decoder's weights changed"),
    Answer("the history sums the designs", lambda *a: _search(*a, history_sum=True), "not their sum"),
    Answer("SGD instead of Adam", lambda *a: _search(*a, sgd=True), "Adam's update rule"),
    Answer("no zero_grad: gradients accumulate", lambda *a: _search(*a, zero_grad=False), "zero the gradient"),
    Answer("gradient ascent", lambda *a: _search(*a, ascent=True), "minimise"),
    Answer("z0 optimised in place", lambda *a: _search(*a, in_place=True), "in place"),
    # Accepted before, then broken by the cells that read the history with .item() and decode the latent.
    Answer("a history of lists", lambda *a: _search(*a, history_as="list"), "the history holds a list"),
    Answer("the latent returned as NumPy", lambda *a: _search(*a, latent_as="numpy"), "not a torch tensor"),
    # Misleading before: two numbers at 1e-6 and no word of the sum.
    Answer("the gradient of the mean, not the sum", lambda *a: _search(*a, reduce="mean"), "mean value"),
    # The lr argument varied.
    Answer("lr fixed at 0.05", lambda *a: _search(*a, lr_used=0.05), "Adam's update rule"),
), correct=(
    Answer("Adam with a closure", _search_with_closure),
    Answer("autograd.grad into z.grad, a while loop", _search_with_autograd_grad),
    Answer("a list of NumPy rows", lambda *a: (lambda z, h: (z, [row.numpy() for row in h]))(*_search(*a))),
))

EXERCISES = (COMPLIANCE_BACKWARD, VOLUME_PROJECTION, OPTIMIZE_LATENT)
