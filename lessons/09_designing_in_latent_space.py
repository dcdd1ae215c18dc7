# %% [markdown]
# # Lesson 9 — Designing in the learned space: optimisation through the decoder, against SIMP at equal cost
#
# **Time estimate:** 45 minutes (the notebook itself needs about 80 s of CPU on 2 cores; longer on a shared machine).
# **You will:** make the compliance a differentiable PyTorch function with lesson 6's adjoint sensitivity; hold the
# volume exactly with a projection and its implicit gradient; search the latent space of lesson 8's CVAE (and of
# lesson 7's VAE, and of an untrained network) for the stiffest design; and judge every method against SIMP **at
# equal cost**, counted in finite-element solves.
#
# Lesson 8 ended where an engineer starts: a generated design is a guess, and a guess is worth what it saves in the
# optimisation that follows. Papers that optimise through a generative model report it in ways that cannot be
# compared: Hoyer, Sohl-Dickstein & Greydanus (2019) optimise the weights of an *untrained* CNN ("neural
# reparametrisation"); Kus & Bessa (2024) report that a pre-trained latent reaches minimum compliance "in at least an
# order of magnitude fewer iterations"; Guo et al. (2018) and Gladstone et al. (2021) search a VAE's latent space. Here
# we measure such claims on our own problems.
#
# **Equal cost.** One finite-element solve (about 5 ms on this mesh) dominates every method: one per SIMP iteration,
# one per gradient step of a latent search (the decoder's forward and backward passes cost less, measured in
# `benchmarks/latent_design_speed.py`), one per candidate that best-of-k judges. A *budget* of b solves gives each
# method b of them; the wall time is printed beside it.
#
# **How we judge** (the same for every method, every budget): the design is **thresholded at its problem's volume
# target** (`utils.metrics.threshold_at_volume`: the round(V·N) densest pixels solid), so no design wins by carrying
# more material, and compared with SIMP's design thresholded the same way, under the same problem. This is the
# course's one judge (`utils.judging.Judge`) under its rule `"at_target_volume"`; lesson 8's rule
# `"at_reference_volume"` thresholds at the volume of SIMP's design cut at 0.5 instead (the searches here hold the
# target exactly, so the target is their rule; section 3 compares the two):
#
# | metric | definition | unit |
# | --- | --- | --- |
# | CE | $C / C_\text{SIMP} - 1$, signed (negative: stiffer), at the target, $E_\text{min} = 10^{-9}$ | fraction |
# | tail | 90th and 95th percentile of CE; share of designs more than 10 % worse than SIMP's | fraction |
# | VFE | $\lvert \text{VF} / \text{VF}_\text{target} - 1 \rvert$ (at the target: rounding only) | fraction |
# | floating material, load disrespect | shares of designs with a loose solid piece / void under the load | fraction |

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from studies import harness
from studies.harness import LABELS, SUMMARY_COLUMNS, StudyProblems, budget_table, judge_results, run_methods
from studies.latent_study import RULE, choose_learning_rate, latent_methods
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
test, validation = data.subset("test"), data.subset("validation")
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
one_judge = Judge(one)  # the course's judge, here at the volume target (RULE): how lesson 9 scores designs
one_problem = fe_problems(one_judge.load_cases, models=one_judge.models)
one_condition, one_target = conditions[PROBLEM:PROBLEM + 1], targets[PROBLEM:PROBLEM + 1]


def one_design(z: torch.Tensor) -> torch.Tensor:
    """The CVAE's design for the watched problem, projected onto its volume (β = 1)."""
    return project_to_volume(cvae.decode(z, one_condition)[:, 0].double().cpu(), one_target)


z_start = cvae.prior_moments(one_condition)[0]
z_end, history = optimize_latent(one_design, z_start, lambda rho: ComplianceFunction.apply(rho, one_problem), STEPS,
                                 0.1)
reference_one = one_judge.reference_compliances(RULE)[0]
with torch.no_grad():
    before, after = one_design(z_start)[0].numpy(), one_design(z_end)[0].numpy()
fig, axes = plt.subplots(1, 4, figsize=(13, 2.6), gridspec_kw={"width_ratios": [1.3, 1, 1, 1]})
axes[0].plot(np.arange(1, STEPS + 1), [h.item() for h in history])
axes[0].set(xlabel="solves", ylabel="grey compliance", title="Adam on z, lr 0.1")
for ax, design, name in zip(axes[1:], (before, after, one.density[0]), ("decoded, z = μ_p(c)", f"after {STEPS} steps",
                                                                      "SIMP"), strict=True):
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
# solves, each method spending exactly $b$ solves per problem on its design (judging it is not counted):
#
# | method | what the b solves buy |
# | --- | --- |
# | SIMP, uniform start | b iterations of lesson 6's SIMP (the dataset's settings, no early stop) |
# | SIMP from the CVAE's / the baseline's design | b iterations warm-started from lesson 8's generated design |
# | best of b | b designs of the CVAE (μ_p(c) first, then draws from p(z \| c)) solved at the target; the stiffest |
# | CVAE latent | b Adam steps on z from μ_p(c), β = 1 |
# | CVAE latent, sharpening | the same with β doubling every 10 steps up to 8 (section 5) |
# | CVAE latent from best of 5 | 5 solves to pick the start among 5 designs, then b − 5 steps (sharpening) |
# | CVAE latent 5 → SIMP | 5 steps of the sharpening search, then b − 5 SIMP iterations from its design |
# | VAE latent from best of 5 | lesson 7's unconditional decoder: 5 prior draws (z = 0 first) judged, then steps |
# | neural reparametrisation | an untrained copy of the CVAE's decoder per problem, its weights optimised (sharpening) |
#
# The learning rate of the latent searches is chosen on validation problems, never on the test problems: a small sweep.

# %%
BUDGETS = tuple(b for b in harness.BUDGETS if b <= 50)  # the tables' columns
GRID = tuple(b for b in harness.FINE_BUDGETS if b <= 50)  # where CE is judged (the solves to come within 1 %)
vae, _ = load_checkpoint(CHECKPOINT_PATH, device)
vae = frozen(vae)
LR, sweep_scores = choose_learning_rate(StudyProblems.of(validation.take(np.arange(8)), RULE, device), cvae)
print("mean CE at the volume target on 8 validation problems, after 10 and 20 solves:")
print(format_table({f"lr {lr}": {"10": a, "20": b} for lr, (a, b) in sweep_scores.items()},
                   {"10": "10 solves", "20": "20 solves"}, "+.4f"))
print(f"chosen learning rate: {LR}")

# %%
SUBSET = 10
subset = test.take(np.arange(SUBSET))
study_problems = StudyProblems.of(subset, RULE, device)
subset_judge = study_problems.judge
runs = run_methods(latent_methods(cvae, baseline, vae, LR), study_problems, GRID)
judgements = judge_results(runs, study_problems)
budget_columns = {b: f"{b} solves" for b in BUDGETS}
for figure in ("CE median", "CE p90", "CE > 10 % share"):
    print(f"\n{figure} at the volume target, {SUBSET} test problems:")
    print(format_table(budget_table(judgements, figure, BUDGETS), budget_columns, "+.3f"))
print(f"\nat 20 solves ({SUBSET} test problems; seconds for all of them at {max(BUDGETS)} solves):")
print(format_table({LABELS[key]: {**per_budget[20].summary(), "seconds": runs[key].seconds[max(BUDGETS)]}
                    for key, per_budget in judgements.items()}, {**SUMMARY_COLUMNS, "seconds": "seconds"}, ".3f"))

# %% [markdown]
# **Does the choice of volume matter?** The same designs at 20 solves under lesson 8's rule (thresholded at the volume
# of SIMP's design cut at 0.5), beside the target-volume rule used everywhere in this lesson:

# %%
rule_rows = {}
for key, run in runs.items():
    at_target, at_simp = judgements[key][20].summary(), subset_judge(run.designs[20], "at_reference_volume").summary()
    rule_rows[LABELS[key]] = {"target median": at_target["CE median"], "simp median": at_simp["CE median"],
                       "target share": at_target["CE > 10 % share"], "simp share": at_simp["CE > 10 % share"]}
print(format_table(rule_rows, {"target median": "median CE, target", "simp median": "median CE, SIMP's volume",
                               "target share": "> 10 % worse, target", "simp share": "> 10 % worse, SIMP's volume"},
                   "+.3f"))
volume_gap = np.abs(subset_judge.reference_volumes / subset_judge.targets - 1)
print(f"SIMP's design cut at 0.5 lies {volume_gap.min():.2%}–{volume_gap.max():.2%} off its volume target here")
# The reading below, measured: the medians move by less than a per cent, the shares by at most one design in ten.
assert all(abs(r["target median"] - r["simp median"]) < 0.01 for n, r in rule_rows.items() if r["simp median"] < 0.5)
assert all(abs(r["target share"] - r["simp share"]) <= 1 / SUBSET + 1e-12 for r in rule_rows.values())

# %% [markdown]
# The two rules tell the same story: where a method is close to SIMP, its median CE moves by a few tenths of a per
# cent between them, and its share of designs more than 10 % worse by one design at most. What follows does not depend
# on which of the two volumes is held.

# %% [markdown]
# **Reading the tables.** Three groups of methods behave differently.
#
# - **SIMP from a uniform start** is hopeless at small budgets (its first iterations are grey and spread out;
#   thresholded at the volume target they are far from any structure) and good from about 20–50 solves.
# - **Warm starts** — SIMP from the CVAE's or the baseline's design — are good from the first solves: lesson 8's
#   designs are already within a few per cent, and SIMP's pixel updates remove what is left, tail included.
# - **Latent searches alone** improve the median quickly but keep a **tail**: a few designs whose thresholded version
#   is far worse than the grey one they optimised (section 5 shows why), and these dominate the mean and the 90th
#   percentile until the sharpening projection has grown (20–50 solves); a search can even *break* a design that was
#   fine a few steps before. The unconditional VAE's decoder does not know the problem: searched from the best of its
#   prior's draws it stays far above SIMP within the budget. The untrained network
#   (Hoyer et al.'s reparametrisation) starts from noise: 50 solves are far too few for it (their paper runs
#   hundreds to thousands of steps).
# - **A short latent search, then SIMP** (5 or 10 solves of the sharpening search, the rest SIMP) is as good as the
#   warm starts.

# %% [markdown]
# ## 4. Judged at equal cost
#
# The tables above, as a figure: CE against the budget for each method, the median (left) and the 90th percentile
# (right), on a logarithmic scale of $\max(\text{CE}, 10^{-4})$ (a CE at or below zero — as stiff as SIMP's or
# stiffer — sits on the floor; the dotted line is 1 %).

# %%
# One line style per family (solid: SIMP, dashed: a latent search, dotted: sampling or no latent), one colour each.
FAMILIES = {"simp_uniform": ("k", "-", "o"), "simp_from_cvae": ("tab:blue", "-", "s"),
            "simp_from_baseline": ("tab:cyan", "-", "^"), "best_of_cvae": ("tab:purple", ":", "D"),
            "cvae_latent": ("tab:orange", "--", "o"), "cvae_latent_sharpening": ("tab:red", "--", "s"),
            "cvae_latent_from_best": ("tab:brown", "--", "^"), "cvae_latent_5_then_simp": ("tab:green", "-.", "o"),
            "cvae_latent_10_then_simp": ("tab:olive", "-.", "s"), "vae_latent_from_best": ("tab:pink", "--", "v"),
            "reparametrisation": ("tab:gray", ":", "x")}
fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), sharey=True)
for ax, (figure, title) in zip(axes, (("CE median", "median CE"), ("CE p90", "90th percentile of CE")), strict=True):
    for key, per_budget in judgements.items():
        values = [max(per_budget[b].summary()[figure], 1e-4) for b in GRID]
        color, style, marker = FAMILIES.get(key, (None, "-", "o"))
        ax.loglog(GRID, values, ls=style, marker=marker, ms=4, color=color, label=LABELS[key])
    ax.axhline(0.01, color="k", lw=0.6, ls=":")
    ax.yaxis.set_major_formatter(lambda value, _: f"{100 * value:g} %")
    ax.set_ylim(top=BROKEN_RATIO)  # above: broken designs (C/C_ref > 10³), off the axis
    ax.set(xlabel="budget (finite-element solves)", title=title)
axes[0].set_ylabel("CE = C / C_ref − 1 (floor 0.01 %;\nabove 10⁵ %: broken, off the axis)")
fig.suptitle(f"{SUBSET} test problems, at the volume target", fontsize=10)
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.2, 1, 1))
plt.show()

# %% [markdown]
# And the designs themselves, at 10 solves, for four problems: the first row SIMP's converged design, then one row per
# method (each thresholded at its volume target, with its CE).

# %%
SHOWN = [0, 3, 6, 9]
rows = ["simp_uniform", "simp_from_cvae", "best_of_cvae", "cvae_latent_sharpening", "cvae_latent_5_then_simp",
        "vae_latent_from_best", "reparametrisation"]
fig, axes = plt.subplots(len(rows) + 1, len(SHOWN), figsize=(2.1 * len(SHOWN) + 1.9, 1.35 * (len(rows) + 1)))
for column, problem in enumerate(SHOWN):
    show_design(axes[0, column], threshold_at_volume(subset.density[problem], subset.volfrac[problem]),
                f"problem {problem}")
    for row, key in enumerate(rows, start=1):
        design = threshold_at_volume(runs[key].designs[10][problem], subset.volfrac[problem])
        show_design(axes[row, column], design, f"CE {judgements[key][10].compliance_error[problem]:+.1%}")
for row, name in enumerate(["SIMP converged", *(LABELS[key] for key in rows)]):  # names once, left of their row
    axes[row, 0].set_ylabel(name.replace(", ", ",\n").replace(" from ", "\nfrom "), rotation=0, ha="right",
                            va="center", fontsize=8)
fig.suptitle("designs at 10 solves, thresholded at the volume target (title: CE)", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# **How many solves to come within 1 % of SIMP?** Kus & Bessa report that a pre-trained latent reaches minimum
# compliance in "at least an order of magnitude fewer iterations" than optimising the pixels. On our problems: for each
# method, the first budget of the grid at which the design (thresholded at the volume target) is within 1 % of SIMP's
# converged design, or stiffer; the median over the problems, and how many never get there within 50 solves.

# %%
reach = {key: harness.solves_to_within(per_budget) for key, per_budget in judgements.items()}  # first GRID point ≤ 1 %
print(format_table({LABELS[key]: {"median": float(np.nanmedian(r)) if np.any(~np.isnan(r)) else float("nan"),
                                  "never": float(np.isnan(r).sum())} for key, r in reach.items()},
                   {"median": "solves to 1 % (median)", "never": f"never within 50 (of {SUBSET})"}, ".0f"))
pixels, latent, warm = reach["simp_uniform"], reach["cvae_latent_sharpening"], reach["simp_from_cvae"]
print(f"SIMP from a uniform start needs {np.nanmedian(pixels):.0f} solves (median); the CVAE's latent search "
      f"{np.nanmedian(latent):.0f} where it gets there ({int(np.isnan(latent).sum())} of {SUBSET} never do); SIMP "
      f"warm-started from the CVAE's design {np.nanmedian(warm):.0f} ({int(np.isnan(warm).sum())} never do)")
# The next cell's reading, measured: an order of magnitude against pixels from a uniform start, none against the
# warm start, which never-reaches no more often.
assert np.nanmedian(pixels) >= 10 * np.nanmedian(latent)
assert np.nanmedian(warm) <= np.nanmedian(latent) and np.isnan(warm).sum() <= np.isnan(latent).sum()

# %% [markdown]
# **The "order of magnitude".** Measured against SIMP from a *uniform* start, the CVAE's latent search comes within 1 %
# in an order of magnitude fewer solves (the medians above), as Kus & Bessa report. But SIMP warm-started from the
# *same* generated design gets there as fast, and more reliably (fewer problems that never reach 1 %): the saving
# comes from the pre-trained **start**, not from searching in the latent space. Searching the latent adds nothing a
# warm-started pixel optimisation lacks, on these problems, and loses the designs the decoder cannot draw.

# %% [markdown]
# ### Outside the training ranges
#
# Lesson 8's 24 out-of-distribution problems (volume fractions 0.25 and 0.55, near-horizontal and upward loads);
# here six of them (every fourth), without the slow reparametrisation (`make evaluate-latent` runs all 24). Can a search
# repair what generation got wrong there?

# %%
ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE).take(np.arange(0, 24, 4))
ood_problems = StudyProblems.of(ood, RULE, device, ids=np.arange(0, 24, 4))  # their numbers among the 24
ood_runs = run_methods(latent_methods(cvae, baseline, vae, LR, reparametrisation=False), ood_problems, BUDGETS)
ood_judgements = judge_results(ood_runs, ood_problems)
for figure in ("CE median", "CE max"):
    print(f"\n{figure} at the volume target, {len(ood)} out-of-distribution problems (volume fractions "
          f"{sorted({float(v) for v in ood.volfrac.round(2)})}, angles {sorted(float(a) for a in ood.angle_deg)}):")
    print(format_table(budget_table(ood_judgements, figure, BUDGETS), budget_columns, "+.3f"))

# %% [markdown]
# **Out of distribution**, generation is wrong more often (lesson 8) and best-of-k cannot help: its candidates are as
# lost as the mean. A latent search repairs part of it, slowly, because the decoder draws designs like its training
# data and the right design for a near-horizontal load (a straight bar) is unlike them; SIMP warm-started from the
# generated design, or after a few latent steps, repairs it within the budget (the largest CE shows the slowest case).

# %% [markdown]
# ## 5. What the learned space costs
#
# A latent search can only reach designs its decoder can draw. Two things keep it above SIMP, and both can be measured.
#
# **The proxy.** The search minimises the compliance of its *grey* design; we judge the design thresholded at equal
# volume. For SIMP's designs the two differ little (thresholding a SIMP design makes it *stiffer*: its grey pixels
# are penalised by $\rho^3$). A decoder's grey design can hide a member just below the threshold: the grey structure
# carries the load through it, the thresholded one is cut. Below, for each method at the largest budget: the
# thresholded compliance over the grey one, and the design where the two differ most.

# %%
largest = max(GRID)
gaps = {}
for key, run in runs.items():
    designs = run.designs[largest]
    grey = subset_judge.compliances(designs)  # the penalised compliance of the grey designs themselves
    gaps[key] = subset_judge.compliances_at(designs, RULE) / grey - 1
print(format_table({LABELS[key]: {"median": float(np.median(g)), "max": float(np.max(g))} for key, g in gaps.items()},
                   {"median": f"thresholded / grey − 1, median ({largest} solves)", "max": "largest"}, "+.3f"))
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
# **A threshold-aware map.** The sharpening projection $\rho = \sigma(\beta \ell + \eta)$ with $\beta$ doubling every
# 10 steps (1, 2, 4, 8) makes the grey design the search minimises nearly the thresholded one: the gap above shrinks
# from several per cent (β = 1) to a fraction of a per cent. It is a continuation, as in Heaviside projections of
# classical topology optimisation: a soft map first (gradients reach every pixel), a sharp one later (the objective
# is the design's). The tables show what it does to the tail: it repairs designs broken at the threshold once
# β has grown (after 20–30 solves), not before.
#
# **The floor.** Given 50 solves, how far above SIMP does each search stop? (`make evaluate-latent`: 100 solves on
# every test problem, quoted at the end.) The decoder can only draw what it learned: the latent has 16 numbers; near a
# design it learned well those suffice, elsewhere (a topology the data never held for this problem, an out-of-range
# problem) no latent may draw SIMP's optimum. SIMP's pixels have no such limit.

# %%
floor_rows = {LABELS[key]: {"median": judgements[key][largest].summary()["CE median"],
                            "p90": judgements[key][largest].summary()["CE p90"],
                            "ood median": ood_judgements[key][largest].summary()["CE median"] if key in ood_judgements
                            else float("nan")}
              for key in judgements}
print(format_table(floor_rows, {"median": f"median CE, {largest} solves", "p90": "p90 CE",
                                "ood median": "median CE, out of distribution"}, "+.4f"))

# %% [markdown]
# The latent searches stop above SIMP's median, and their 90th percentile is where the cost shows; SIMP and the
# warm starts end within a few tenths of a per cent of SIMP's converged design, some below it (that design is a local
# optimum, and a warm start sometimes finds a better one). Out of distribution the gap grows: what the decoder cannot
# draw, no latent finds. The pixels of SIMP have no such floor — which is why the methods that end with SIMP
# iterations from a generated start reach the goals below, and none that stays in the learned space does.

# %% [markdown]
# ## The goals, on this subset
#
# A target for the tail, set before the comparison: **at 20 solves**, at the volume target, no design more than 10 %
# worse than SIMP's, a 95th percentile of CE of at most 1 %, no floating material and no load disrespect; **at 10
# solves** a 95th percentile of at most 2 %. On 10 problems a 95th percentile is nearly the largest value;
# `docs/results/latent.md` (`make evaluate-latent`) has the same on all 150 test problems.

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
                   {"worse20": "> 10 % worse @20", "p95_20": "p95 @20 (≤ 0.01)", "floating20": "floating @20",
                    "load20": "load disr. @20", "p95_10": "p95 @10 (≤ 0.02)", "met": "all met"}, ".3f"))
meeting = {key for key, row in goal_rows.items() if row["met"]}
print("methods meeting every goal on this subset:", sorted(LABELS[key] for key in meeting) or "none")
# The reading below, measured: only methods that end in SIMP iterations meet the goals, and at least one does.
assert meeting and all(key.startswith("simp_from") or key.endswith("then_simp") for key in meeting)
assert not goal_rows["simp_uniform"]["met"] and goal_rows["simp_uniform"]["p95_10"] > 0.02

# %%
own_floating = np.mean([floating_material(threshold_at_volume(d, v)) for d, v in zip(test.density, test.volfrac,
                                                                                    strict=True)])
print(f"SIMP's designs themselves, thresholded at the volume target: floating material in {own_floating:.1%} of the "
      f"{len(test)} test problems")

# %% [markdown]
# On this subset the goals are met only by methods that **end in SIMP**: SIMP warm-started from the CVAE's or the
# baseline's design, and the 5-step latent search followed by SIMP (the table's last column; the 10-step one is still
# searching at 10 solves and misses there; with 10 problems one design decides a percentile, so
# `docs/results/latent.md` is the measurement that counts). No search that stays in the
# learned space meets them at 10 or 20 solves: its tail is the designs broken by the threshold, and with sharpening
# those are repaired only once β has grown. SIMP from a uniform start misses at 10 solves by far (its designs are still
# grey), and at 20 by its slowest problems.
#
# **On all 150 test problems** (`make evaluate-latent`, the tables in `docs/results/latent.md`: every method to 100
# solves, the reparametrisation on the first 50 problems; SIMP, the warm starts and the searches from μ_p(c) draw
# nothing, so the rows below do not depend on a seed) **no method meets every goal**, and the miss is small and of one
# kind:
#
# | at 20 solves (10 for the last column) | p95 CE | > 10 % worse | floating | load disrespect | p95 CE at 10 |
# | --- | --- | --- | --- | --- | --- |
# | goal | ≤ 1 % | 0 | 0 | 0 | ≤ 2 % |
# | SIMP, uniform start | +9.5 % | 5.3 % | 5.3 % | 0 | +146 % |
# | SIMP from the CVAE's design | +1.07 % | 1.3 % | 2.0 % | 0 | +2.1 % |
# | SIMP from the baseline's design | +0.69 % | 0 | 0.7 % | 0 | +1.06 % |
# | CVAE latent 5 → SIMP | +0.56 % | 0 | 1.3 % | 0 | +1.06 % |
# | CVAE latent 10 → SIMP | +0.70 % | 0 | 0.7 % | 0 | +35 % |
# | CVAE latent, sharpening (no SIMP) | +7.2 % | 4.0 % | 0.7 % | 0 | +35 % |
#
# SIMP warm-started from the baseline's design and a 5- or 10-step latent search followed by SIMP meet the tail, volume
# and load goals, and miss "no floating material" by one or two designs of 150 — as SIMP's own converged designs do
# (the line above: thresholded at the volume target, 2 of the 150 references have a loose piece themselves). The short
# latent pre-step earns its place on the problems whose generated topology was wrong (38 of 150 decoded more than
# 10 % worse than SIMP's): there, at 20 solves, its largest CE is +4 %, against +39 % for SIMP warm-started from the
# same CVAE design. Alone, the latent search keeps its tail until the projection has sharpened: at 50 solves its p95
# is +1.6 % (SIMP from a uniform start: +1.8 %), with no floating material. **The floor**, given 100 solves: the
# latent search with sharpening stops at a median CE of +0.12 % and a p95 of +1.25 %, where SIMP from a uniform start
# reaches 0.00 % and +0.26 % and the warm starts end below SIMP's converged design (median −0.08 % and −0.09 %);
# lesson 7's VAE stops at +4.4 % (38 % of its designs still more than 10 % worse), the reparametrisation at +6.8 %
# (34 %). The searches in a learned space stop above the pixels, as section 5 expects. Out of distribution
# (24 problems) every method misses: 4 % of designs stay more than 10 % worse after 20 solves even for the best
# (warm-started SIMP, and the latent pre-step then SIMP), 46 % for the latent search alone.
#
# **The methods that draw**, rerun with draw seeds 0, 1 and 2 on the same 150 problems (`python -m
# tools.evaluate_latent --seeds 0 1 2 --seed-problems 150 --reparametrised 25`, `docs/results/latent_seeds.md`):
# at 20 solves, best of b leaves 8.0–10.0 % of the designs more than 10 % worse than SIMP's, the latent search
# started from the best of 5 3.3–4.7 %, lesson 7's VAE 48–57 % and the reparametrisation (the first 25 problems)
# 100 %. Whatever the seed, none of them meets a goal.
#
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
# - Judge at equal cost (finite-element solves, with wall time beside) and at one volume for design and reference
#   (here the volume target), with the tail of the signed errors, not only the median: latent searches look good in
#   the median and fail in the tail.
# - The grey compliance a latent search minimises is a poor proxy for the thresholded design; a sharpening
#   projection narrows the gap, after enough steps.
# - A pre-trained generator saves solves by giving a good **start**; on these problems SIMP from that start is at
#   least as good as searching the latent, and a decoder's space has a floor that pixels do not.

# %%
print(f"notebook run time: {time.perf_counter() - notebook_start:.0f} s on {device}")
