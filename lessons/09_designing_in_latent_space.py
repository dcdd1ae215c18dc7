# %% [markdown]
# # Lesson 9 — Designing in the learned space: optimisation through the decoder, against SIMP at equal cost
#
# **Time estimate:** 45 minutes (the notebook itself needs about 80 s of CPU on 2 cores; longer on a shared machine).
# **You will:** make the compliance a differentiable PyTorch function with lesson 6's adjoint sensitivity; hold the
# volume exactly with a projection and its implicit gradient; search the latent space of lesson 8's CVAE (and of
# lesson 7's VAE, and of an untrained network) for the stiffest design; and judge every method, beside a control
# that differs from it in one thing only, **at equal cost**, counted in finite-element solves, against a reference
# design that none of the methods is.
#
# Lesson 8 ended where an engineer starts: a generated design is a guess, and a guess is worth what it saves in the
# optimisation that follows. Papers that optimise through a generative model report it in ways that cannot be
# compared: Hoyer, Sohl-Dickstein & Greydanus (2019) optimise the weights of an *untrained* CNN ("neural
# reparametrisation"); Kus & Bessa (2024) report that a pre-trained latent makes gradient-free optimisation faster;
# Guo et al. (2018) and Gladstone et al. (2021) search a VAE's latent space. Here we ask the question under them on
# our own problems — what does a search in a learned space buy, at equal solves? — with methods of our own; section 6
# says where the cited methods, reproduced as published, are compared.
#
# **Equal cost.** A *budget* of b finite-element solves (a few ms each on this mesh) gives each method b of them:
# one per SIMP iteration, one per gradient step of a search, one per candidate that best of b judges. Solves are the
# common currency, not the whole cost: a latent step adds the decoder's forward and backward passes, and a step of the
# untrained decoder costs a few SIMP iterations of wall time (printed beside the tables).
#
# **How we judge** (the same for every method, every budget): the design is **thresholded at its problem's volume
# target** (`utils.metrics.threshold_at_volume`: the round(V·N) densest pixels solid), so no design wins by carrying
# more material, and compared with the problem's **reference design** thresholded the same way, under the same
# problem. The reference is not one of the compared methods: it is the stiffer of two SIMP runs to a tight tolerance
# (`make references`, `studies.references`: SIMP continued from the dataset's design, and an independent SIMP run
# with a density filter), so a method may beat it (a negative CE). This is the course's one judge
# (`utils.judging.Judge`) under its rule `"at_target_volume"`; lesson 8's rule `"at_reference_volume"` thresholds
# at the volume of the reference cut at 0.5 instead (the searches here hold the target exactly, so the target is
# their rule; section 3 compares the two):
#
# | metric | definition | unit |
# | --- | --- | --- |
# | CE | $C / C_\text{ref} - 1$, signed (negative: stiffer), at the target, $E_\text{min} = 10^{-9}$ | per cent |
# | tail | 90th and 95th percentile of CE; share of designs more than 10 % worse than the reference | per cent |
# | broken | share of designs with $C / C_\text{ref} > 10^3$ (a load path cut by the threshold) | per cent |
# | VFE | $\lvert \text{VF} / \text{VF}_\text{target} - 1 \rvert$ (at the target: rounding only) | fraction |
# | floating material, load disrespect | shares of designs with a loose solid piece / void under the load | fraction |

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from studies import harness
from studies.harness import LABELS, SUMMARY_COLUMNS, StudyProblems, budget_table, judge_results, run_methods
from studies.latent_study import CHOICES, CONTROLS, RULE, latent_methods
from studies.methods import Retrieval
from studies.references import load_references
from utils import get_device, seed_everything
from utils.checks.lesson09 import check_compliance_backward, check_optimize_latent, check_volume_projection
from utils.cvae import load_models, problem_conditions
from utils.data import load_topology_dataset
from utils.design_space import ComplianceFunction, fe_problems, frozen, project_to_volume
from utils.judging import Judge
from utils.metrics import floating_material, threshold_at_volume
from utils.plotting import BROKEN_RATIO, draw_problem, show_design, use_course_style
from utils.settings import CHECKPOINT_PATH, CVAE_CHECKPOINT_PATH, OOD_MANIFEST_FILE
from utils.tables import format_table
from utils.topopt import E0, cantilever, compliance_sensitivity, mbb_beam, young_modulus
from utils.vae import load_checkpoint

use_course_style()
seed_everything(0)
device = get_device()
print(f"decoders on {device}; the finite-element solver on the CPU")
notebook_start = time.perf_counter()

# %% [markdown]
# ## 1. Compliance as a differentiable function
#
# To optimise *through* a decoder, the compliance must be a PyTorch function: autograd then carries its gradient
# back through the decoder to the latent. Autograd cannot see inside the banded Cholesky solver, so we tell it the
# derivative ourselves, with a `torch.autograd.Function`: its `forward` solves $K(\rho)\,U = F$ once (float64, the
# course's solver) and returns $c = F^\top U$; its `backward` receives $\bar c = \partial L / \partial c$ (the
# *incoming gradient*: how much the final loss cares about this compliance) and returns $\partial L / \partial \rho
# = \bar c \; \partial c / \partial \rho$, with lesson 6's **adjoint sensitivity**
#
# $$\frac{\partial c}{\partial \rho_e} = -p\,\rho_e^{\,p-1}\,(E_0 - E_\text{min})\; u_e^\top k_0\, u_e ,$$
#
# which needs no further solve: the displacements of the forward pass suffice. A batch of $B$ designs
# `(B, nely, nelx)` gives $B$ compliances, one solve each. Each design comes with its `FEProblem`, `problem`
# (`ctx.problems[b]` in `backward`): `problem.case` the load case, `problem.penal` the penalty $p$, `problem.e_min` the
# void stiffness, and `problem.model` its finite-element model, with `problem.model.edofs` `(n_elements, 8)` — the 8
# degrees of freedom of each element, elements numbered column by column — and `problem.model.ke` $= k_0$ `(8, 8)`.
#
# **Exercise 9.1** — write the backward pass. `ctx.saved_tensors` holds the densities `(B, nely, nelx)` and the
# displacements `(B, n_dofs)`. For each design: gather $u_e$ with `problem.model.edofs`, form $u_e^\top k_0 u_e$ for
# every element, turn the element values into an image with `as_image` (the solver numbers elements column by
# column), and multiply by the incoming gradient of that design. Return one gradient per input of `forward` (`None`
# for `problems`).

# %%
def as_image(values: torch.Tensor, nely: int, nelx: int) -> torch.Tensor:
    """Element values in the solver's order (column by column, ``e = ix · nely + iy``) as an image (nely, nelx)."""
    return values.reshape(nelx, nely).T


# %%
# EXERCISE: the backward pass of the compliance
class Compliance(torch.autograd.Function):
    """c = Fᵀ U, K(ρ) U = F, for densities (B, nely, nelx) and one FEProblem per design → (B,)."""

    @staticmethod
    def forward(ctx, density: torch.Tensor, problems: list) -> torch.Tensor:
        displacements = []
        for design, problem in zip(density.detach().cpu().double().numpy(), problems, strict=True):
            young = young_modulus(design.ravel(order="F"), problem.penal, problem.e_min)
            displacements.append(problem.model.solve(young, problem.force))
        ctx.problems = problems
        ctx.save_for_backward(density, torch.as_tensor(np.stack(displacements), dtype=density.dtype))
        return torch.as_tensor([p.force @ u for p, u in zip(problems, displacements, strict=True)], dtype=density.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        density, displacements = ctx.saved_tensors
        # BEGIN SOLUTION
        gradients = []
        for b, problem in enumerate(ctx.problems):
            ue = displacements[b][torch.as_tensor(problem.model.edofs)]  # (n_elements, 8)
            energies = torch.einsum("ei,ij,ej->e", ue, torch.as_tensor(problem.model.ke, dtype=ue.dtype), ue)
            energy_image = as_image(energies, *density.shape[1:])
            slope = problem.penal * density[b] ** (problem.penal - 1) * (E0 - problem.e_min)
            gradients.append(-grad_output[b] * slope * energy_image)
        return torch.stack(gradients), None
        # END SOLUTION


# %%
check_compliance_backward(Compliance)

# %% [markdown]
# **Question** — once your backward passes, say in a sentence each: where does `grad_output` enter, why is the
# sign negative, and why does the slope carry $E_0 - E_\text{min}$ rather than $E_0$?
#
# <!-- BEGIN ANSWER -->
# The chain rule for a scalar function of a vector: $\partial L / \partial \rho_e = \bar c \,\partial c /
# \partial \rho_e$, with $\bar c$ = `grad_output[b]`, one number per design. $u_e^\top k_0 u_e$ is a sum over the
# element's 8 degrees of freedom (the einsum sums both indices); the sign is negative because material never makes a
# structure less stiff; $E'(\rho) = p\rho^{p-1}(E_0 - E_\text{min})$, and with $E_\text{min} = 10^{-9}$ the difference
# between $E_0$ and $E_0 - E_\text{min}$ is invisible — the check uses $E_\text{min}$ up to $10^{-2}$ to see it.
# <!-- END ANSWER -->

# %% [markdown]
# ### The same function, checked by numbers, and promoted to `utils`
#
# `torch.autograd.gradcheck` compares the backward pass with finite differences of the forward pass for every
# element; we run it on three meshes, densities including the bounds 0 and 1, and three void stiffnesses. Then we set
# your class beside `utils.design_space.ComplianceFunction` (the same function, promoted to `utils` for the rest of the
# course; it keeps the element energies from the forward pass) and beside the sensitivity that `utils.topopt.optimize`
# uses in every SIMP iteration (`compliance_sensitivity` is its formula, applied to the solver's element energies).

# %%
rng = np.random.default_rng(9)
for case, e_min in ((cantilever(10, 5, 0.4, 2.0, -60.0), 1e-9), (mbb_beam(8, 4, 0.5), 1e-3),
                    (cantilever(6, 6, 0.5, 6.0, -120.0), 1e-2)):
    problems = fe_problems([case, case], e_min=e_min)
    x = torch.tensor(rng.uniform(0.0, 1.0, (2, case.nely, case.nelx)), requires_grad=True)
    with torch.no_grad():
        x[:, 0, 0], x[:, -1, -1] = 0.0, 1.0
    passes = torch.autograd.gradcheck(lambda d, ps=problems: Compliance.apply(d, ps), (x,), eps=1e-6, atol=1e-4,
                                      rtol=1e-3)
    weights = torch.tensor([0.7, 1.9], dtype=torch.float64)
    (mine,) = torch.autograd.grad((weights * Compliance.apply(x, problems)).sum(), x)
    (promoted,) = torch.autograd.grad((weights * ComplianceFunction.apply(x, problems)).sum(), x)
    model = problems[0].model
    solver_side = np.stack([w * compliance_sensitivity(d.ravel(order="F"), model.element_energies(model.solve(
        young_modulus(d.ravel(order="F"), 3.0, e_min), case.force_vector())), 3.0, e_min).reshape(d.shape, order="F")
        for w, d in zip(weights.numpy(), x.detach().numpy(), strict=True)])
    gap = np.abs(mine.numpy() - promoted.numpy()).max() / np.abs(promoted.numpy()).max()
    print(f"{case.nelx}×{case.nely}, E_min = {e_min:g}: gradcheck {passes}; yours against utils: {gap:.1e} (relative); "
          f"utils against the solver's sensitivity: {np.abs(promoted.numpy() - solver_side).max():.1e}")
    assert passes and gap < 1e-12 and np.array_equal(promoted.numpy(), solver_side)

# %% [markdown]
# The promoted function and the solver's sensitivity agree bit for bit; yours agrees to rounding (a different order of
# the sums). From here on the lesson uses `utils.design_space.ComplianceFunction`.
#
# ## 2. Volume without a penalty
#
# A decoder returns logits $\ell$; its densities $\sigma(\ell)$ carry whatever volume they happen to. SIMP holds the
# volume exactly (the bisection on $\lambda$ in lesson 6); a latent search must too, or it would buy stiffness with
# material. A penalty term would hold it only approximately and needs a weight. Instead: **project**,
#
# $$\rho_i = \sigma(\ell_i + \eta), \qquad \eta \text{ such that } \tfrac1N \textstyle\sum_i \rho_i = V ,$$
#
# one scalar $\eta$ per design. The mean is increasing in $\eta$, so bisection (or Newton) finds it. Its gradient
# comes from **implicit differentiation**: $\eta$ is a function of all the logits, defined by the constraint.
# Differentiate $\sum_i \sigma(\ell_i + \eta(\ell)) = N V$ with respect to $\ell_j$ to find
# $\partial \eta / \partial \ell_j$; then the vector-Jacobian product
# $\partial L / \partial \ell_j = \sum_i g_i\, \partial \rho_i / \partial \ell_j$ with $g = \partial L / \partial \rho$
# follows. (Write $s_i = \rho_i(1-\rho_i) = \sigma'(\ell_i + \eta)$.)
#
# **Exercise 9.2** — write the projection for logits `(B, n)` and volume fractions `(B,)`: `forward` solves for $\eta$
# (to a volume error below $10^{-6}$), `backward` returns the implicit gradient. A bracket for $\eta$ that holds
# whatever the logits: at $\eta = -\max_i \ell_i - 40$ every pixel is below $\sigma(-40)$ (too little material), at
# $\eta = -\min_i \ell_i + 40$ every pixel is above $\sigma(40)$ (too much); the logits the course feeds reach tens of
# units, so a fixed bracket such as $[-10, 10]$ misses. Keep the logits' dtype (float64) throughout.

# %%
# EXERCISE: the volume projection and its implicit gradient
class VolumeProjection(torch.autograd.Function):
    """ρ = sigmoid(ℓ + η) with one η per row so that each row's mean is its volume fraction: (B, n), (B,) → (B, n)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, volume_fractions: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        low = -logits.max(dim=1).values - 40.0  # every pixel below sigmoid(−40): too little material
        high = -logits.min(dim=1).values + 40.0  # every pixel above sigmoid(40): too much
        for _ in range(100):
            middle = 0.5 * (low + high)
            too_much = torch.sigmoid(logits + middle[:, None]).mean(dim=1) > volume_fractions
            low, high = torch.where(too_much, low, middle), torch.where(too_much, middle, high)
        density = torch.sigmoid(logits + 0.5 * (low + high)[:, None])
        ctx.save_for_backward(density)
        return density
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        # BEGIN SOLUTION
        (density,) = ctx.saved_tensors
        s = density * (1 - density)
        correction = (s * grad_output).sum(dim=1, keepdim=True) / s.sum(dim=1, keepdim=True)
        return s * (grad_output - correction), None
        # END SOLUTION


# %%
check_volume_projection(VolumeProjection)

# %% [markdown]
# **Question** — derive the gradient your backward returns: differentiate the constraint
# $\frac1n\sum_i \sigma(\ell_i + \eta) = V$ to get $\partial\eta/\partial\ell_j$, then the chain rule for
# $\partial L/\partial\ell_j$. Which direction of $g$ gives a zero gradient, and why must it?
#
# <!-- BEGIN ANSWER -->
# $\sum_i s_i (\delta_{ij} + \partial\eta/\partial\ell_j) = 0$ gives
# $\partial \eta / \partial \ell_j = -s_j / \sum_i s_i$; then
# $\partial L/\partial \ell_j = \sum_i g_i s_i(\delta_{ij} + \partial\eta/\partial\ell_j)
# = s_j\,\big(g_j - \sum_i s_i g_i / \sum_i s_i\big)$: the plain sigmoid's gradient minus an $s$-weighted mean of
# $g$. It is orthogonal to what would change the volume: with $g = 1$ (the volume itself) the gradient is zero.
# <!-- END ANSWER -->

# %% [markdown]
# `utils.design_space.project_to_volume` is the same projection with one more parameter, a **sharpness** $\beta$:
# $\rho = \sigma(\beta\ell + \eta)$ (gradient $\beta s \odot (g - \dots)$). $\beta = 1$ is the decoder's own sigmoid; a
# larger $\beta$ pushes the densities towards 0 and 1, nearer the thresholded design we judge (section 5 says why that
# matters). Here it is on the decoded designs of lesson 8's CVAE: the volume after the projection, and the gradient
# against finite differences in a random direction.

# %%
models, record = load_models(CVAE_CHECKPOINT_PATH, device)
cvae, baseline = frozen(models["cvae"]), frozen(models["baseline"])
data = load_topology_dataset()
test = data.subset("test")
test_references = load_references("test").density  # the independent references (make references)
conditions = problem_conditions(test).to(device)
with torch.no_grad():
    logits = cvae.decode(cvae.prior_moments(conditions)[0], conditions)[:, 0].double().cpu()
targets = torch.tensor(test.volfrac, dtype=torch.float64)
for sharpness in (1.0, 4.0):
    projected = project_to_volume(logits, targets, sharpness)
    error = (projected.mean((1, 2)) - targets).abs().max()
    print(f"β = {sharpness:g}: largest volume error after the projection {error:.1e} "
          f"(before: {(torch.sigmoid(logits).mean((1, 2)) - targets).abs().max():.3f})")
    assert (projected.mean((1, 2)) - targets).abs().max() < 1e-6
few = logits[:3].clone().requires_grad_(True)
direction, weights = torch.randn_like(few), torch.randn_like(few)
(analytic,) = torch.autograd.grad((project_to_volume(few, targets[:3], 4.0) * weights).sum(), few)
step = 1e-6
numeric = ((project_to_volume(few + step * direction, targets[:3], 4.0)
            - project_to_volume(few - step * direction, targets[:3], 4.0)) * weights).sum() / (2 * step)
print(f"directional derivative: implicit gradient {(analytic * direction).sum():.8f}, finite differences {numeric:.8f}")
assert abs((analytic * direction).sum() - numeric) < 1e-6 * abs(numeric)

# %% [markdown]
# ## 3. Optimising the latent
#
# Now the search itself: the decoder **frozen** (its weights are what it learned; only $z$ moves), the design
# $\rho = \text{project}(\text{decoder}(z, c))$, and Adam on $z$ to minimise $c(\rho)$. Each step costs one solve per
# design. A batch of problems searches at once: each $z_b$ gets the gradient of its own compliance only, and Adam
# scales each coordinate's step by its own gradient's size, so the batch changes next to nothing (only through Adam's
# small $\epsilon$: the gradient of the sum and of the mean give slightly different steps; the exercise asks for the
# sum).
#
# **Exercise 9.3** — write the loop: Adam (`torch.optim.Adam`, learning rate `lr`) on a copy of `z0`, `budget` steps,
# each one evaluation of `objective(decoder(z))` (one compliance per design, `(B,)`), the gradient of their sum, one
# update. Return the latent after the last update and the history: the `budget` vectors of values the objective
# returned. The budget counts solves: evaluate nothing after the last step (its design is judged later, apart).

# %%
# EXERCISE: the latent-optimisation loop
def optimize_latent(decoder: torch.nn.Module, z0: torch.Tensor, objective, budget: int, lr: float
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Adam on z (decoder frozen) for `budget` evaluations of objective(decoder(z)) → (z after the search, history)."""
    # BEGIN SOLUTION
    z = z0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    history = []
    for _ in range(budget):
        values = objective(decoder(z))
        optimizer.zero_grad()
        values.sum().backward()
        optimizer.step()
        history.append(values.detach())
    return z.detach(), history
    # END SOLUTION


# %%
check_optimize_latent(optimize_latent)

# %% [markdown]
# ### One search, watched
#
# Your loop on one test problem, from the CVAE's generated design ($z = \mu_p(c)$): the grey compliance it minimises,
# step by step, and the design before and after 30 steps. (`studies.methods.LatentSearch`, the study's method, is the
# same loop, keeping the designs at every budget of the comparison.)

# %%
PROBLEM, STEPS = 4, 30
one = test.take(np.array([PROBLEM]))
one_judge = Judge(one, references=test_references[PROBLEM:PROBLEM + 1])  # at the volume target (RULE) below
one_problem = fe_problems(one_judge.load_cases, models=one_judge.models)
one_condition, one_target = conditions[PROBLEM:PROBLEM + 1], targets[PROBLEM:PROBLEM + 1]


def one_design(z: torch.Tensor) -> torch.Tensor:
    """The CVAE's design for the watched problem, projected onto its volume (β = 1)."""
    return project_to_volume(cvae.decode(z, one_condition)[:, 0].double().cpu(), one_target)


z_start = cvae.prior_moments(one_condition)[0]
z_end, history = optimize_latent(one_design, z_start, lambda rho: ComplianceFunction.apply(rho, one_problem), STEPS,
                                 CHOICES.latent_lr)
reference_one = one_judge.reference_compliances(RULE)[0]
with torch.no_grad():
    before, after = one_design(z_start)[0].numpy(), one_design(z_end)[0].numpy()
fig, axes = plt.subplots(1, 4, figsize=(13, 2.6), gridspec_kw={"width_ratios": [1.3, 1, 1, 1]})
axes[0].plot(np.arange(1, STEPS + 1), [h.item() for h in history])
axes[0].set(xlabel="solves", ylabel="grey compliance", title=f"Adam on z, lr {CHOICES.latent_lr:g}")
for ax, design, name in zip(axes[1:], (before, after, test_references[PROBLEM]),
                            ("decoded, z = μ_p(c)", f"after {STEPS} steps", "reference"), strict=True):
    value = one_judge.compliances_at(design[None], RULE)[0]
    show_design(ax, design, f"{name}\nCE {value / reference_one - 1:+.1%} at the target")
    draw_problem(ax, one.load_case(0))
plt.show()
assert history[-1].item() < history[0].item()

# %% [markdown]
# ### The methods, at equal budgets
#
# On a subset of the test problems (the notebook's budget; `make evaluate-latent` runs the same functions,
# `studies.latent_study`, on all 150 and writes `docs/results/latent.md`), at budgets $b \in \{1, 2, 5, 10, 20, 50\}$
# solves, each method spending exactly $b$ solves per problem on its design (judging it is not counted). Each method
# has a **control** beside it, a method that differs from it in one thing only, so that what the thing is worth is
# measured rather than inferred:
#
# | method | what the b solves buy |
# | --- | --- |
# | SIMP, uniform start | b iterations of lesson 6's SIMP (the dataset's settings, no early stop) |
# | SIMP from the CVAE's / the baseline's design | b iterations warm-started from lesson 8's generated design |
# | SIMP from the nearest training design | b iterations from the retrieved design (below) |
# | SIMP from the CVAE's design blended with uniform | b iterations from α · design + (1 − α) · uniform |
# | best of b (CVAE) | b designs of the CVAE (μ_p(c) first, then draws from p(z \| c)) solved at the target |
# | best of the b nearest training designs | the b retrieved designs nearest first, each solved; the stiffest |
# | CVAE latent, β = 1 | b Adam steps on z from μ_p(c) |
# | CVAE latent, sharpening | the same with β doubling every few steps up to 8 (section 5) |
# | Adam on the pixels, sharpening | b Adam steps on the pixels' logits from the CVAE's logits at μ_p(c) |
# | CVAE latent, L-BFGS, sharpening | L-BFGS on z from μ_p(c), β as above; b evaluations, line searches included |
# | L-BFGS on the pixels, sharpening | the same L-BFGS on the pixels' logits from the CVAE's logits at μ_p(c) |
# | CVAE latent from best of k | k solves to pick the start among k designs, then b − k steps (sharpening) |
# | CVAE latent, then SIMP | a few steps of the sharpening search, then SIMP from its design |
# | VAE latent from best of k | lesson 7's unconditional decoder: k prior draws (z = 0 first) judged, then steps |
# | an untrained decoder with Adam | per problem an untrained copy of the CVAE's decoder, Adam on its weights |
#
# | method | its control | what differs |
# | --- | --- | --- |
# | SIMP from the CVAE's design | SIMP from the nearest training design | the start: generated or retrieved |
# | best of b (CVAE) | best of the b nearest training designs | the candidates: generated or retrieved |
# | CVAE latent, sharpening | Adam on the pixels, sharpening | the variables: z or the pixels (same start, β) |
# | CVAE latent, L-BFGS | L-BFGS on the pixels | the variables, under the other optimiser |
# | CVAE latent, then SIMP | SIMP from the CVAE's design | the latent pre-step |
# | SIMP from the blend | SIMP from the CVAE's design | the blend with uniform |
# | SIMP from the baseline's design | SIMP from the CVAE's design | the model that generates the start |
#
# And each L-BFGS search has Adam on the same variables beside it (the optimiser is the one thing that differs).
# L-BFGS (scipy's L-BFGS-B, memory 10) has no learning rate to tune; it runs one problem at a time, since its line
# search belongs to one objective, and counts every evaluation as a solve. The sharpening schedule's β changes the
# objective, so L-BFGS starts afresh (empty memory, from the best point so far) wherever β changes, and its design at
# b solves is the stiffest, in grey compliance, of its first b evaluations at the current β.
#
# Retrieval needs no training at all: the training design nearest to the problem in condition space (volume, load
# position, angle, each scaled by its training range) is the first baseline of data-driven topology optimisation,
# and a generator must beat it to earn its offline cost. The blend keeps grey material everywhere: SIMP grows
# material only near material (its filter), so a member missing from a near-binary start can only grow from an edge.
# "An untrained decoder with Adam" is ours, not Hoyer et al.'s published method (their network, filter and optimiser
# differ).
#
# Every hyperparameter — the learning rates, the sharpening schedule, k, the switch to SIMP, α — was chosen on 24
# validation problems by `make evaluate-latent`, never on the test problems; `docs/results/latent.md` records each
# sweep, and a test checks that the values below are the ones recorded there.

# %%
BUDGETS = tuple(b for b in harness.BUDGETS if b <= 50)  # the tables' columns
GRID = tuple(b for b in harness.FINE_BUDGETS if b <= 50)  # where CE is judged (the solves to come within 1 %)
vae, _ = load_checkpoint(CHECKPOINT_PATH, device)
vae = frozen(vae)
retrieval = Retrieval.of(data.subset("train"))
print("chosen on validation:", CHOICES)

# %%
SUBSET = 10
subset = test.take(np.arange(SUBSET))
study_problems = StudyProblems.of(subset, RULE, device, test_references[:SUBSET])
subset_judge = study_problems.judge
runs = run_methods(latent_methods(cvae, baseline, vae, retrieval), study_problems, GRID)
judgements = judge_results(runs, study_problems)
budget_columns = {b: f"{b} solves" for b in BUDGETS}


def broken_share(metrics) -> float:
    """The share of broken designs: C / C_ref above BROKEN_RATIO (a load path cut by the threshold)."""
    return float(np.mean(metrics.compliance_error > BROKEN_RATIO - 1))


for figure, number_format in (("CE median", "+.1%"), ("CE p90", "+.1%"), ("CE > 10 % share", ".0%")):
    print(f"\n{figure} at the volume target, {SUBSET} test problems:")
    print(format_table(budget_table(judgements, figure, BUDGETS), budget_columns, number_format))
print(f"\nshare of broken designs (C / C_ref > {BROKEN_RATIO:g}), {SUBSET} test problems:")
print(format_table({LABELS[key]: {b: broken_share(per_budget[b]) for b in BUDGETS}
                    for key, per_budget in judgements.items()}, budget_columns, ".0%"))
seconds_per_solve = {key: run.seconds[max(BUDGETS)] / (SUBSET * max(BUDGETS)) for key, run in runs.items()}
print(f"\nat 20 solves ({SUBSET} test problems; ms per solve and problem, the method's own work included):")
print(format_table({LABELS[key]: {**per_budget[20].summary(), "ms": 1e3 * seconds_per_solve[key]}
                    for key, per_budget in judgements.items()}, {**SUMMARY_COLUMNS, "ms": "ms per solve"},
                   {**{k: "+.1%" for k in SUMMARY_COLUMNS if k.startswith("CE")}, "ms": ".1f",
                    **{k: ".0%" for k in SUMMARY_COLUMNS if k.endswith("share")}, "judged VFE max": ".2%"}))
step_cost = seconds_per_solve["untrained_decoder"] / seconds_per_solve["simp_uniform"]
print(f"a step of the untrained decoder costs {step_cost:.1f} SIMP iterations of wall time here")

# %% [markdown]
# **Does the choice of volume matter?** The same designs at 20 solves under lesson 8's rule (thresholded at the volume
# of the reference cut at 0.5), beside the target-volume rule used everywhere in this lesson:

# %%
rule_rows = {}
for key, run in runs.items():
    at_target = judgements[key][20].summary()
    at_reference = subset_judge(run.designs[20], "at_reference_volume").summary()
    rule_rows[LABELS[key]] = {"target median": at_target["CE median"], "reference median": at_reference["CE median"],
                              "target share": at_target["CE > 10 % share"],
                              "reference share": at_reference["CE > 10 % share"]}
print(format_table(rule_rows, {"target median": "median CE, target", "reference median": "median CE, ref. volume",
                               "target share": "> 10 % worse, target", "reference share": "> 10 % worse, ref. volume"},
                   {"target median": "+.1%", "reference median": "+.1%", "target share": ".0%",
                    "reference share": ".0%"}))
volume_gap = np.abs(subset_judge.reference_volumes / subset_judge.targets - 1)
print(f"the reference cut at 0.5 lies {volume_gap.min():.2%}–{volume_gap.max():.2%} off its volume target here")
median_moves = [abs(r["target median"] - r["reference median"]) for r in rule_rows.values()
                if r["reference median"] < 0.5]
share_moves = [abs(r["target share"] - r["reference share"]) for r in rule_rows.values()]
print(f"largest change of a median CE below 50 %: {max(median_moves):.2%}; of a share: {max(share_moves):.0%}")

# %% [markdown]
# Where a method is close to the reference, the two rules move its median CE by the amount printed above, and its
# share of designs more than 10 % worse by at most the share printed (one design in ten is 10 %). The reading below
# holds under either volume.

# %% [markdown]
# **Reading the tables.** Five groups of methods behave differently.
#
# - **SIMP from a uniform start** is hopeless at small budgets (its first iterations are grey and spread out;
#   thresholded at the volume target they are far from any structure) and catches up between 20 and 50 solves.
# - **Warm starts** — SIMP from the CVAE's, the baseline's or the nearest training design — begin where their start
#   is, within a few per cent of the reference in the median, and SIMP's pixel updates close most of the rest within
#   10–20 solves; their tail at 1 or 2 solves is the starts whose topology is wrong, which SIMP repairs slowly.
# - **Searches in a learned space alone** keep a tail: designs whose thresholded version is far worse than the grey
#   one they optimised (section 5 shows why), until the sharpening projection has grown; a search can even *break* a
#   design that was fine a few steps before. Its median need not fall either: the search minimises the grey
#   compliance, which is not what is judged. The unconditional VAE's decoder does not know the problem, and the
#   untrained decoder starts from noise: neither is near the reference within 50 solves.
# - **Adam on the pixels from the same start** is the latent search's control: the same start, projection and
#   schedule, only the variables differ. Whatever the latent search does better or worse than it is what the latent
#   space is worth to a gradient search.
# - **L-BFGS on the latent and on the pixels** repeat that pair under another optimiser, one without a learning rate:
#   if the two optimisers disagree about the pixels, the control was limited by its optimiser, not by its variables.

# %% [markdown]
# ## 4. Judged at equal cost
#
# The tables above as a figure: CE against the budget, each panel a method (colour) beside its control (black) and
# SIMP from a uniform start (grey), the median (solid) and the 90th percentile (dashed), in per cent: linear between
# −1 % and +1 %, logarithmic beyond, up to the broken designs ($C / C_\text{ref} > 10^3$, off the axis).

# %%
PANELS = list(CONTROLS.items())
fig, axes = plt.subplots(2, 4, figsize=(12, 7.4), sharex=True, sharey=True)
axes.flat[-1].set_axis_off()  # seven pairs, eight places: the panel above the empty one keeps its budget axis
axes[0, -1].xaxis.set_tick_params(labelbottom=True)
axes[0, -1].set_xlabel("budget (finite-element solves)")
for ax, (key, control) in zip(axes.flat[:len(PANELS)], PANELS, strict=True):
    for name, color in (("simp_uniform", "0.65"), (control, "k"), (key, "tab:red")):
        for figure, style in (("CE median", "-"), ("CE p90", "--")):
            ax.plot(GRID, [judgements[name][b].summary()[figure] for b in GRID], ls=style, marker="o", ms=3,
                    color=color)
    ax.set_xscale("log")
    ax.set_xticks(BUDGETS, [str(b) for b in BUDGETS])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(-0.05, BROKEN_RATIO)  # above: broken designs (C/C_ref > 10³), off the axis
    ax.axhline(0.0, color="k", lw=0.5)
    ax.yaxis.set_major_formatter(lambda value, _: f"{100 * value:g} %")
    ax.set_title("\n".join(textwrap.wrap(LABELS[key], 32) + textwrap.wrap(f"against {LABELS[control]}", 32)),
                 fontsize=8)
for ax in axes[-1]:
    ax.set_xlabel("budget (finite-element solves)")
for ax in axes[:, 0]:
    ax.set_ylabel("CE = C / C_ref − 1")
legend = [plt.Line2D([], [], color="tab:red", label="the method (first in the title)"),
          plt.Line2D([], [], color="k", label="its control (second)"),
          plt.Line2D([], [], color="0.65", label=LABELS["simp_uniform"]),
          plt.Line2D([], [], color="k", ls="-", label="median"),
          plt.Line2D([], [], color="k", ls="--", label="90th percentile")]
fig.legend(handles=legend, loc="lower center", ncol=5, fontsize=8.5, frameon=False)
fig.suptitle(f"{SUBSET} test problems, at the volume target", fontsize=10)
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# And the designs themselves, at 10 solves, for four problems: the first row the reference, then one row per
# method (each thresholded at its volume target, with its CE).

# %%
SHOWN = [0, 3, 6, 9]
rows = ["simp_uniform", "simp_from_cvae", "simp_from_retrieval", "best_of_cvae", "cvae_latent_sharpening",
        "pixel_adam_sharpening", "cvae_latent_then_simp", "vae_latent_from_best", "untrained_decoder"]
fig, axes = plt.subplots(len(rows) + 1, len(SHOWN), figsize=(2.1 * len(SHOWN) + 2.2, 1.3 * (len(rows) + 1)))
for column, problem in enumerate(SHOWN):
    show_design(axes[0, column], test_references[problem], f"problem {problem}")
    for row, key in enumerate(rows, start=1):
        design = threshold_at_volume(runs[key].designs[10][problem], subset.volfrac[problem])
        show_design(axes[row, column], design, f"CE {judgements[key][10].compliance_error[problem]:+.1%}")
for row, name in enumerate(["reference", *(LABELS[key] for key in rows)]):  # names once, left of their row
    axes[row, 0].set_ylabel(name.replace(", ", ",\n").replace(" from ", "\nfrom ").replace(" with ", "\nwith "),
                            rotation=0, ha="right", va="center", fontsize=8)
fig.suptitle("designs at 10 solves, thresholded at the volume target (title: CE)", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# **How many solves to come within 1 % of the reference?** For each method, the first budget of the grid at which the
# design (thresholded at the volume target) is within 1 % of the reference, or stiffer; the median over the problems,
# and how many never get there within 50 solves. The comparison that isolates the latent space is the search on z
# against Adam on the pixels from the same start; the one that isolates the start is SIMP from the CVAE's design
# against SIMP from a uniform start and from the nearest training design.

# %%
reach = {key: harness.solves_to_within(per_budget) for key, per_budget in judgements.items()}  # first GRID point ≤ 1 %
print(format_table({LABELS[key]: {"median": float(np.nanmedian(r)) if np.any(~np.isnan(r)) else float("nan"),
                                  "never": float(np.isnan(r).sum())} for key, r in reach.items()},
                   {"median": "solves to 1 % (median)", "never": f"never within 50 (of {SUBSET})"}, ".0f"))

# %% [markdown]
# On ten problems these counts move by a grid point with one design; the intervals on all 150 problems, at the end of
# the lesson, say which differences hold.

# %% [markdown]
# ### Outside the training ranges
#
# Lesson 8's 24 out-of-distribution problems (volume fractions 0.25 and 0.55, near-horizontal and upward loads);
# here six of them (every fourth), without the slow untrained decoder (`make evaluate-latent` runs all 24). Can a
# search repair what generation got wrong there?

# %%
OOD_SHOWN = np.arange(0, 24, 4)
ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE).take(OOD_SHOWN)
ood_problems = StudyProblems.of(ood, RULE, device, load_references("ood").density[OOD_SHOWN], ids=OOD_SHOWN)
ood_runs = run_methods(latent_methods(cvae, baseline, vae, retrieval, untrained=False), ood_problems, BUDGETS)
ood_judgements = judge_results(ood_runs, ood_problems)
for figure in ("CE median", "CE max"):
    print(f"\n{figure} at the volume target, {len(ood)} out-of-distribution problems (volume fractions "
          f"{sorted({float(v) for v in ood.volfrac.round(2)})}, angles {sorted(float(a) for a in ood.angle_deg)}):")
    print(format_table(budget_table(ood_judgements, figure, BUDGETS), budget_columns, "+.1%"))

# %% [markdown]
# **Out of distribution**, generation is wrong more often (lesson 8), and best of b cannot help much: its candidates
# are as lost as the mean. A search in the latent space repairs part of it, slowly, because the decoder draws designs
# like its training data and the right design for a near-horizontal load (a straight bar) is unlike them. SIMP
# warm-started from the generated design repairs more of it, but not all within the budget (the largest CE shows the
# slowest case). On all 24 problems (`docs/results/latent.md`) only SIMP from the blended start leaves no design more
# than 10 % worse at 10 and at 20 solves: its grey material lets SIMP grow the member the generated design lacks.

# %% [markdown]
# ## 5. What the learned space costs
#
# A search in a learned space can only reach designs its decoder can draw. Two things keep it above the reference,
# and both can be measured.
#
# **The proxy.** The search minimises the compliance of its *grey* design; we judge the design thresholded at the
# volume target. A decoder's grey design can hide a member just below the threshold: the grey structure carries the
# load through it, the thresholded one is cut. Below, for each method at the largest budget: the thresholded
# compliance over the grey one, and the design where the two differ most; first, the same ratio for the dataset's
# SIMP designs of these problems.

# %%
largest = max(GRID)
simp_gap = subset_judge.compliances_at(subset.density, RULE) / subset_judge.compliances(subset.density) - 1
print(f"the dataset's SIMP designs: thresholded / grey − 1 = {np.median(simp_gap):+.1%} in the median "
      f"({simp_gap.min():+.1%} … {simp_gap.max():+.1%})")
gaps = {}
for key, run in runs.items():
    designs = run.designs[largest]
    grey = subset_judge.compliances(designs)  # the penalised compliance of the grey designs themselves
    gaps[key] = subset_judge.compliances_at(designs, RULE) / grey - 1
print(format_table({LABELS[key]: {"median": float(np.median(g)), "max": float(np.max(g))} for key, g in gaps.items()},
                   {"median": f"thresholded / grey − 1, median ({largest} solves)", "max": "largest"}, "+.1%"))
worst = int(np.argmax(gaps["cvae_latent"]))
grey_design = runs["cvae_latent"].designs[largest][worst]
fig, axes = plt.subplots(1, 3, figsize=(11, 2.0))
show_design(axes[0], grey_design, f"CVAE latent, β = 1, {largest} solves: grey")
show_design(axes[1], threshold_at_volume(grey_design, subset.volfrac[worst]),
            f"thresholded at the target: ×{1 + gaps['cvae_latent'][worst]:.3g} the grey compliance")
sharp_design = runs["cvae_latent_sharpening"].designs[largest][worst]
show_design(axes[2], sharp_design, f"with sharpening: ×{1 + gaps['cvae_latent_sharpening'][worst]:.3g}")
plt.show()

# %% [markdown]
# Thresholding a SIMP design makes it *stiffer* (the first line: its grey pixels are penalised by $\rho^3$, and
# making the densest of them solid adds stiffness); thresholding a decoder's design can make it far less stiff.
#
# **A threshold-aware map.** The sharpening projection $\rho = \sigma(\beta \ell + \eta)$ with $\beta$ doubling every
# few steps (1, 2, 4, 8; the interval chosen on validation) makes the grey design the search minimises nearly the
# thresholded one: compare the gaps of β = 1 and sharpening above. It is a continuation, as in Heaviside projections of
# classical topology optimisation: a soft map first (gradients reach every pixel), a sharp one later (the objective
# is the design's). It repairs designs broken at the threshold once β has grown, not before.
#
# **Where the searches stand after 50 solves.** The decoder can only draw what it learned: the latent has 16 numbers;
# near a design it learned well those suffice, elsewhere (a topology the data never held for this problem, an
# out-of-range problem) no latent may draw the reference. How far that limits a search is not measured here (the
# sharpening search still improves between 50 and 100 solves on all test problems), so the table says where each
# method stands at the largest budget, not where it would stop.

# %%
stand_rows = {LABELS[key]: {"median": judgements[key][largest].summary()["CE median"],
                            "p90": judgements[key][largest].summary()["CE p90"],
                            "ood median": ood_judgements[key][largest].summary()["CE median"] if key in ood_judgements
                            else float("nan")}
              for key in judgements}
print(format_table(stand_rows, {"median": f"median CE, {largest} solves", "p90": "p90 CE",
                                "ood median": "median CE, out of distribution"}, "+.1%"))

# %% [markdown]
# ## The goals, on this subset
#
# A target for the tail, set before the comparison, for a designer who would take a design without checking each
# one: **at 20 solves**, at the volume target, no design more than 10 % worse than the reference, a 95th percentile of
# CE of at most 1 %, no floating material and no load disrespect; **at 10 solves** a 95th percentile of at most 2 %.
# The median alone would hide the designs that fail, and those are what a designer pays for. On 10 problems a 95th
# percentile is nearly the largest value: the table below describes this subset only, and the full comparison
# follows it.

# %%
def goals(per_budget: dict) -> dict[str, float]:
    """The figures of the tail target (fractions; "met" 1.0 when all four hold at 20 solves and p95 ≤ 2 % at 10)."""
    at20, at10 = per_budget[20].summary(), per_budget[10].summary()
    met = (at20["CE > 10 % share"] == 0 and at20["CE p95"] <= 0.01 and at20["floating material share"] == 0
           and at20["load disrespect share"] == 0 and at10["CE p95"] <= 0.02)
    return {"worse20": at20["CE > 10 % share"], "p95_20": at20["CE p95"],
            "floating20": at20["floating material share"], "load20": at20["load disrespect share"],
            "p95_10": at10["CE p95"], "met": float(met)}


goal_rows = {key: goals(per_budget) for key, per_budget in judgements.items()}
print(format_table({LABELS[key]: row for key, row in goal_rows.items()},
                   {"worse20": "> 10 % worse @20", "p95_20": "p95 @20 (≤ 1 %)", "floating20": "floating @20",
                    "load20": "load disr. @20", "p95_10": "p95 @10 (≤ 2 %)", "met": "all met"},
                   {"worse20": ".0%", "p95_20": "+.1%", "floating20": ".0%", "load20": ".0%", "p95_10": "+.1%",
                    "met": ".0f"}))
meeting = {key for key, row in goal_rows.items() if row["met"]}
print("methods meeting every goal on this subset:", sorted(LABELS[key] for key in meeting) or "none")

# %%
own_floating = np.mean([floating_material(threshold_at_volume(d, v)) for d, v in zip(test_references, test.volfrac,
                                                                                    strict=True)])
print(f"the references themselves, thresholded at the volume target: floating material in {own_floating:.1%} of the "
      f"{len(test)} test problems")

# %% [markdown]
# ## On all 150 test problems
#
# `make evaluate-latent` runs every method above on all 150 test problems to 100 solves (the untrained decoder on the
# first 50) and writes `docs/results/latent.md`; SIMP, the warm starts, retrieval, the pixel search and the searches
# from μ_p(c) draw nothing, so their rows do not depend on a seed. Every CE there is against the independent
# reference, and the reference has a noise of its own: **the dataset's SIMP run** (the dataset's own designs, SIMP
# stopped at 100 iterations or a change of 0.01) lies from it at median CE +0.34 %, p95 +3.08 %, with 3.33 % of its
# designs more than 10 % worse. Differences between methods of a few tenths of a per cent in the median are
# differences between near-optimal designs, of the size of that noise.
#
# The goals on all test problems:
#
# | at 20 solves (10 for the last column) | p95 CE | > 10 % worse | floating | load disrespect | p95 CE at 10 |
# | --- | --- | --- | --- | --- | --- |
# | goal | ≤ 1 % | 0 | 0 | 0 | ≤ 2 % |
# | SIMP, uniform start | +13.43 % | 6.0 % | 5.3 % | 0.0 % | +152.81 % |
# | SIMP from the CVAE's design | +3.62 % | 2.7 % | 2.0 % | 0.0 % | +4.70 % |
# | SIMP from the baseline's design | +3.50 % | 0.7 % | 0.7 % | 0.0 % | +4.54 % |
# | SIMP from the nearest training design | +6.17 % | 3.3 % | 1.3 % | 0.0 % | +8.30 % |
# | SIMP from the CVAE's design blended with uniform | +3.18 % | 2.0 % | 2.0 % | 0.0 % | +4.06 % |
# | CVAE latent, then SIMP | +2.93 % | 1.3 % | 0.7 % | 0.0 % | +3.17 % |
# | CVAE latent, sharpening (no SIMP) | +5.44 % | 3.3 % | 0.7 % | 0.0 % | +15.04 % |
# | Adam on the pixels, sharpening (no SIMP) | +5.81 % | 1.3 % | 1.3 % | 0.0 % | +5.84 % |
# | CVAE latent, L-BFGS, sharpening (no SIMP) | +3.71 % | 1.3 % | 0.7 % | 0.0 % | +4.72 % |
# | L-BFGS on the pixels, sharpening (no SIMP) | +6.40 % | 2.0 % | 0.0 % | 0.0 % | +10.96 % |
# | best of the b nearest training designs (no SIMP) | +3.76 % | 0.0 % | 0.0 % | 0.0 % | +5.48 % |
#
# **No method meets the goals**, and the p95 goals cannot be met against this reference: the dataset's own SIMP
# designs have a p95 of +3.08 % against it. The goals were set against the dataset's designs, which the reference
# shows to be a few per cent off in their tail. What the table still separates is the share of designs more than 10 %
# worse: a few per cent or fewer for every method that starts from a design, more for SIMP from a uniform start. The
# b nearest training designs, without SIMP, leave none more than 10 % worse at 20 solves on these problems.
#
# **Each method against its control**, A − B on the same 150 problems (negative: A is stiffer, or has fewer designs
# more than 10 % worse), with paired bootstrap 95 % intervals (4,000 resamplings of the problems,
# `studies.uncertainty`); a star marks an interval that excludes zero, and only those support a conclusion. The rows:
# z − pixels = CVAE latent, sharpening − Adam on the pixels, sharpening (same start, projection and β), and the same
# pair under L-BFGS; L-BFGS − Adam = the L-BFGS search − the Adam search on the same variables (same start,
# projection and β); CVAE start − retrieved start = SIMP from the CVAE's design − SIMP from the nearest training
# design; sampled − retrieved = best of b (CVAE) − best of the b nearest training designs; blend, pre-step (CVAE
# latent, then SIMP), baseline and z search (CVAE latent, sharpening) each − SIMP from the CVAE's design; CVAE start −
# uniform = SIMP from the CVAE's design − SIMP from a uniform start; the number after the comma is the budget in
# solves.
#
# | A − B, b solves | median CE (95 % interval) | p95 CE (95 % interval) | share > 10 % worse (95 % interval) |
# | --- | --- | --- | --- |
# | z − pixels, 10 | +0.24% [-0.01%, +0.51%] | +9.20% [-2.41%, +38.94%] | +5.33% [+1.33%, +9.33%] * |
# | z − pixels, 20 | -0.17% [-0.38%, +0.10%] | -0.37% [-5.10%, +4.79%] | +2.00% [-0.67%, +5.33%] |
# | z − pixels, 100 | -0.46% [-0.71%, -0.15%] * | -2.82% [-6.12%, -0.45%] * | +0.00% [-2.67%, +2.67%] |
# | z − pixels (L-BFGS), 10 | +0.84% [+0.58%, +1.06%] * | -6.24% [-23.53%, +6.18%] | -2.67% [-6.00%, +0.67%] |
# | z − pixels (L-BFGS), 20 | +0.53% [+0.33%, +0.69%] * | -2.69% [-5.74%, +0.07%] | -0.67% [-2.67%, +1.33%] |
# | z − pixels (L-BFGS), 100 | +0.25% [+0.06%, +0.44%] * | -5.66% [-14.49%, -0.90%] * | -2.67% [-5.33%, -0.67%] * |
# | L-BFGS − Adam (z), 10 | -0.05% [-0.34%, +0.09%] | -10.32% [-40.00%, +2.08%] | -3.33% [-6.67%, +0.00%] |
# | L-BFGS − Adam (z), 20 | +0.00% [-0.23%, +0.12%] | -1.73% [-6.32%, +0.25%] | -2.00% [-4.67%, +0.00%] |
# | L-BFGS − Adam (z), 100 | +0.03% [-0.07%, +0.17%] | +0.27% [-1.30%, +1.25%] | +0.00% [-2.67%, +2.67%] |
# | L-BFGS − Adam (pixels), 10 | -0.65% [-0.92%, -0.42%] * | +5.13% [-0.25%, +22.09%] | +4.67% [+1.33%, +8.00%] * |
# | L-BFGS − Adam (pixels), 20 | -0.70% [-0.94%, -0.43%] * | +0.59% [-1.00%, +1.50%] | +0.67% [+0.00%, +2.00%] |
# | L-BFGS − Adam (pixels), 100 | -0.69% [-0.92%, -0.43%] * | +3.12% [-0.65%, +10.93%] | +2.67% [+0.67%, +5.33%] * |
# | CVAE start − retrieved start, 10 | +0.01% [-0.14%, +0.12%] | -3.59% [-8.17%, +4.22%] | -1.33% [-4.67%, +2.00%] |
# | CVAE start − retrieved start, 20 | -0.01% [-0.13%, +0.09%] | -2.55% [-6.39%, +3.56%] | -0.67% [-4.00%, +2.00%] |
# | sampled − retrieved, 10 | +0.42% [+0.18%, +0.85%] * | +37.31% [+17.92%, +131.44%] * | +13.33% [+8.00%, +19.33%] * |
# | sampled − retrieved, 20 | +0.37% [+0.20%, +0.64%] * | +31.83% [+7.67%, +57.45%] * | +10.00% [+5.33%, +14.67%] * |
# | blend − CVAE start, 20 | -0.03% [-0.09%, +0.06%] | -0.43% [-6.48%, +0.70%] | -0.67% [-2.00%, +0.00%] |
# | pre-step − CVAE start, 10 | -0.06% [-0.16%, +0.05%] | -1.54% [-9.31%, +0.62%] | -0.67% [-2.67%, +1.33%] |
# | pre-step − CVAE start, 20 | -0.00% [-0.13%, +0.08%] | -0.69% [-7.54%, +0.40%] | -1.33% [-4.00%, +1.33%] |
# | baseline − CVAE start, 20 | -0.06% [-0.14%, +0.04%] | -0.12% [-6.47%, +1.11%] | -2.00% [-4.67%, +0.00%] |
# | z search − CVAE start, 20 | +0.36% [+0.25%, +0.60%] * | +1.83% [-1.57%, +5.65%] | +0.67% [+0.00%, +2.00%] |
# | z search − CVAE start, 100 | +0.21% [+0.12%, +0.34%] * | +0.09% [-0.87%, +1.90%] | +0.67% [-1.33%, +3.33%] |
# | CVAE start − uniform, 20 | -1.31% [-1.76%, -1.07%] * | -9.82% [-17.00%, -1.47%] * | -3.33% [-8.00%, +0.67%] |
# | CVAE start − uniform, 100 | -0.10% [-0.25%, +0.00%] | -0.55% [-12.11%, +0.64%] | -3.33% [-6.67%, -0.67%] * |
#
# What the intervals support, and what they do not:
#
# - **The latent space against the pixels**, the same start, projection and schedule under each optimiser. Under
#   Adam: at 10 solves the search on z leaves more designs more than 10 % worse; at 20 solves no interval excludes
#   zero; at 100 solves z is stiffer in the median and the p95. But the pixels' learning rate was chosen at 10 and 20
#   solves, and from 10 solves on their median barely moves (`docs/results/latent.md`): at 100 solves a tuned search
#   meets a stalled one. L-BFGS has no learning rate to choose, and under it the reading turns: **the pixels are
#   stiffer in the median at 10, 20 and 100 solves**, and only at 100 solves does z keep the thinner tail (a lower p95
#   and fewer designs more than 10 % worse). The optimiser makes no measurable difference on z (L-BFGS − Adam on z:
#   no interval excludes zero at any budget) and a large one on the pixels: L-BFGS is stiffer in the median at every
#   budget, at the price of more designs more than 10 % worse at 10 and 100 solves. What the intervals support: a
#   learned space does not give a gradient search a better median than the pixels under a good optimiser; at most it
#   keeps the tail thinner after many solves.
# - **A generated start against a retrieved one**: SIMP from the CVAE's design and SIMP from the nearest training
#   design do not differ measurably on the test problems (no interval excludes zero). As candidates without SIMP, the
#   b nearest training designs beat the CVAE's b samples on every figure. On these in-distribution problems the CVAE
#   has not earned its offline cost against a lookup in its own training set. Out of distribution it has: on the 24
#   problems of `docs/results/latent.md`, SIMP from the CVAE's design beats SIMP from the nearest training design on
#   every figure at 20 solves.
# - **The blend, the latent pre-step and the baseline's start** do not differ measurably from SIMP from the CVAE's
#   design at 20 solves on the test problems. Out of distribution the blend has fewer designs more than 10 % worse at
#   10 solves (that interval excludes zero), which is what it was built for: SIMP from a grey start can grow a member
#   that a near-binary start lacks.
# - **A search in the latent space against SIMP from the same generated design**: SIMP is stiffer in the median at 20
#   and 100 solves; their tails do not differ measurably there. The saving over SIMP from a uniform start comes from
#   the start (CVAE start − uniform: large at 20 solves), not from searching in the latent space.

#
# **And with another training seed?** Everything above uses the shipped CVAE and baseline, trained with seed 0.
# `make training-seeds` trains both again with seeds 1 and 2 (same settings) and reruns every method that uses them
# on the first 50 test problems and the 24 out-of-distribution ones, to 50 solves
# (`docs/results/latent_training_seeds.md`, each difference with its interval seed by seed). On every seed:
#
# - SIMP from the CVAE's design and SIMP from the nearest training design do not differ measurably on the test
#   problems (no seed's interval excludes zero, median or share, at 10, 20 or 50 solves); out of distribution the
#   CVAE's start is stiffer in the median at 20 solves;
# - SIMP from the CVAE's design is stiffer in the median than SIMP from a uniform start at 10 and 20 solves;
# - L-BFGS against Adam makes no measurable difference on z, and gives a stiffer median on the pixels.
#
# Two readings hold for the shipped models only: the CVAE's samples against the nearest training designs (the
# median), and the pixels against z under L-BFGS. With seeds 1 and 2 their estimates point the same way at 10 and 20
# solves, but on these 50 problems their intervals hold zero. A conclusion from one trained model is a conclusion
# about that model; these two are leads, not results.

# %% [markdown]
# ## 6. The cited methods, reproduced
#
# The methods above are ours. Two published claims sit close to them, and `make evaluate-published`
# (`studies/published_methods.py`) tests each on a subset of the same test problems, against the same reference,
# with the same paired intervals; `docs/results/published.md` has every table and says what differs from each paper.
#
# - **Hoyer et al. (2019)** report that a CNN reparametrisation (a trainable 128-d input, a dense layer, five stages of
#   tanh → upsampling → normalisation → 5×5 convolution, a cone filter after the volume-constrained sigmoid, L-BFGS,
#   the best design over the run) finds better designs than pixels under the same optimiser. Adapted to our problems
#   (first 6 test problems, their 1,000 evaluations): median CE +5.79 % for the CNN and +3.84 % for pixels under the
#   same L-BFGS from a uniform start; CNN − pixels +1.95 % [−2.08 %, +10.82 %]. **Not supported here**: six problems
#   cannot tell the two apart, and nothing points the CNN's way. Each CNN run took about 74 s per problem against
#   about 5.6 s for the pixels.
# - **Kus & Bessa (2024)** report that a pre-trained latent makes *gradient-free* search at least an order of
#   magnitude faster than gradient-free search without one, and that gradient-based optimisation stays more efficient
#   for compliance. CMA-ES on the CVAE's latent against CMA-ES on 16 × 8 coarse pixels (first 12 test problems): the
#   latent at 100 solves has median CE +0.64 %, the coarse pixels at 1,000 solves +306.08 %; at every tenfold pair
#   the interval lies below zero: **supported on these problems**. Their second claim too: SIMP from the CVAE's
#   design is stiffer in the median than CMA-ES in the same CVAE's latent at 10, 50 and 100 solves.
#
# Neither reproduction changes this lesson's reading: the latent gives a good start; what searches it best at
# equal solves is SIMP from that start.

# %% [markdown]
# **Question** — the latent search of a design whose thresholded version is broken minimised its grey compliance
# without trouble. Why does a penalised grey design hide the break, and why does SIMP's own grey design not?
#
# <!-- BEGIN ANSWER -->
# The grey design carries load through pixels near 0.5: stiffness $0.5^3 = 1/8$ of solid, a weak but continuous
# member. Thresholding at the volume target keeps the densest round(V·N) pixels; if the member's pixels rank just below
# the cut, the member vanishes and the load path with it (compliance of order $1/E_\text{min}$). SIMP's grey pixels are
# a thin band along boundaries of members that are solid in their core, so the threshold moves boundaries by a pixel
# and breaks nothing; a decoder can draw a whole member grey. A sharper projection makes the optimised design the
# thresholded one.
# <!-- END ANSWER -->

# %% [markdown]
# ## What you should take away
# - Any solver can join autograd through a `torch.autograd.Function`: a forward that solves once and a backward that
#   is the adjoint sensitivity times the incoming gradient — checked by `gradcheck` and finite differences.
# - A volume constraint needs no penalty: a projection with one scalar shift per design, solved by bisection, holds it
#   to rounding; its gradient follows by implicit differentiation (the sigmoid's, minus a weighted mean).
# - Judge at equal cost (finite-element solves, with wall time beside), at one volume for design and reference (here
#   the volume target), against a reference that none of the methods is, with the tail of the signed errors and not
#   only the median, and with an interval before a conclusion.
# - Put a control beside every method, differing in one thing: Adam on the pixels from the same start separates the
#   latent space from the search, L-BFGS beside Adam separates the optimiser from the variables, retrieval separates
#   the generator from its training data. A control whose optimiser stalls flatters the method beside it.
# - The grey compliance a latent search minimises is a poor proxy for the thresholded design; a sharpening
#   projection narrows the gap, after enough steps.
# - On these problems a pre-trained generator saves solves by giving a good **start**, and on the test problems a
#   retrieved training design is as good a start; SIMP from that start is stiffer in the median than searching the
#   latent at 20 and 100 solves, and L-BFGS on the pixels from that start is stiffer in the median than L-BFGS on the
#   latent. Out of the training ranges the generated start is the better one.

# %%
print(f"notebook run time: {time.perf_counter() - notebook_start:.0f} s on {device}")
