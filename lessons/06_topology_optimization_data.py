# %% [markdown]
# # Lesson 6 — The data: structures from SIMP topology optimization
#
# **Time estimate:** 30 minutes. **You will:** see what the course's images are — optimal material layouts
# that minimise compliance — compute compliance yourself, write the volume-constrained optimality-criteria
# update, watch one optimisation converge, and explore the dataset that lesson 7's VAE learns from.
#
# ## 1. The compliance problem
#
# Divide a rectangle into $n_x \times n_y$ square finite elements, each with a density $x_e \in [0, 1]$
# (1: solid, 0: void). Supports fix some nodes, a force $F$ pushes on others. The structure deforms by
# the displacements $U$ that solve $K(x)\,U = F$; its **compliance** is $c = F^\top U = U^\top K U$. That is *twice*
# the strain energy $\tfrac12 U^\top K U$ stored in the structure, and twice the work of the load when it is applied
# quasi-statically (growing from 0 to $F$, the work is $\tfrac12 F^\top U$). Small compliance means a stiff
# structure. We look for the stiffest layout using a given fraction $V^*$ of the material:
#
# $$\min_x\ c(x) = U^\top K(x)\, U = \sum_e E(x_e)\, u_e^\top k_0\, u_e \quad\text{s.t.}\quad K(x) U = F,\quad
#   \frac1N\sum_e x_e = V^*,\quad 0 \le x_e \le 1 .$$
#
# **SIMP** (solid isotropic material with penalisation) makes the stiffness of an element
# $E(x_e) = E_{\min} + x_e^{\,p}(E_0 - E_{\min})$ with $p = 3$: grey material costs volume but gives little stiffness,
# so optimal designs become nearly black and white. The course's solver (`utils.topopt`) is equivalent to
# the classic 88-line code of Andreassen et al. (2011); its tests reproduce that code's MBB beam exactly.

# %%
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from utils import seed_everything
from utils.checks.lesson06 import check_compliance_sensitivity, check_oc_update
from utils.data import load_topology_dataset, read_manifest
from utils.metrics import solid_components
from utils.plotting import draw_problem, plot_designs, show_design, use_course_style
from utils.settings import SolverSettings
from utils.topopt import E0, E_MIN, cantilever, compliance, mbb_beam, optimize

use_course_style()
rng = seed_everything(0)

# %% [markdown]
# **How does the compliance change when one element gets denser?** The optimiser of section 2 needs
# $\partial c / \partial x_e$ for every element, and it gets all of them from the single solve $K U = F$ it has
# already done. Differentiate $K(x)\,U(x) = F$ (the load does not depend on $x$):
# $\frac{\partial K}{\partial x_e} U + K \frac{\partial U}{\partial x_e} = 0$. Then use $c = F^\top U$, the symmetry of
# $K$, and $K = \sum_e E(x_e)\, K_e$, where $K_e$ is element $e$'s unit-stiffness matrix placed in the global one, so
# that $U^\top K_e U = u_e^\top k_0\, u_e$ (the element's displacements $u_e$ and its 8×8 matrix $k_0$).
#
# **The solver's two pieces you meet here.** `utils.topopt` keeps a mesh and its supports in a
# `FiniteElementModel(nelx, nely, fixed_dofs)`. Its `solve(young, force)` assembles $K$ from the elements' moduli
# $E(x_e)$ and returns the displacements $U$ of every node; its `element_energies(U)` then returns, for every
# element, the number $u_e^\top k_0\, u_e$ (twice the strain energy the element would store with unit modulus).
# You do not call them yourself: the optimiser and the check pass you their result as `energies`.
#
# **Exercise 6.1** — derive $\partial c / \partial x_e$ and implement it for every element at once, from the
# densities `x`, the element energies `energies` $= u_e^\top k_0 u_e$ and the penalty `penal`; `E0` and `E_MIN`
# are imported above. The check compares with finite differences of the compliance, one element at a time.

# %%
# EXERCISE: the compliance sensitivity
def compliance_sensitivity(x: np.ndarray, energies: np.ndarray, penal: float) -> np.ndarray:
    """∂c/∂x_e for every element: x and energies (u_eᵀ k0 u_e) of shape (n_elements,)."""
    # BEGIN SOLUTION
    return -penal * x ** (penal - 1) * (E0 - E_MIN) * energies
    # END SOLUTION


# %%
check_compliance_sensitivity(compliance_sensitivity)

# %% [markdown]
# **Your derivation** of $\partial c / \partial x_e$ (here or on paper): which sign does it have, and why?
#
# <!-- BEGIN ANSWER -->
# $K \frac{\partial U}{\partial x_e} = -\frac{\partial K}{\partial x_e} U$ gives
# $\frac{\partial c}{\partial x_e} = F^\top \frac{\partial U}{\partial x_e} = U^\top K \frac{\partial U}{\partial x_e}
# = -U^\top \frac{\partial K}{\partial x_e} U = -E'(x_e)\, u_e^\top k_0\, u_e$ (using $F = KU$ and $K = K^\top$), with
# $E'(x_e) = p\, x_e^{p-1} (E_0 - E_{\min})$. The sensitivity is never positive: more material never makes the
# structure less stiff. Differentiating $U^\top K U$ while holding $U$ fixed gives the opposite sign, because
# $U$ changes too.
# <!-- END ANSWER -->

# %% [markdown]
# ## 2. The optimality-criteria update
#
# Each iteration solves $KU = F$, computes the sensitivities $\partial c / \partial x_e$ of exercise 6.1 (your
# `compliance_sensitivity`), filters them, then updates every element by
#
# $$x_e^{\text{new}} = \operatorname{clip}\!\Big(
#   x_e \sqrt{\tfrac{-\partial c/\partial x_e}{\lambda\ \partial V/\partial x_e}},\
#   \max(0, x_e - m),\ \min(1, x_e + m)\Big),$$
#
# with move limit $m = 0.2$. The Lagrange multiplier $\lambda$ is whatever makes the volume right: the volume
# of $x^{\text{new}}$ decreases with $\lambda$, so we find it by **bisection** between $\lambda_1 = 0$ and
# $\lambda_2 = 10^9$ until $(\lambda_2 - \lambda_1)/(\lambda_1 + \lambda_2) < 10^{-3}$.
#
# **The sensitivity filter.** Left alone, this update produces *checkerboards* (alternating solid and void
# elements, which the bilinear elements rate as falsely stiff) and *mesh-dependent* designs (a finer mesh gives
# finer and finer members, with no limit). The course's data uses top88's sensitivity filter: before the update,
# each sensitivity is replaced by a weighted average over the elements $i$ within a radius $r_{\min}$ of $e$,
#
# $$\widehat{\frac{\partial c}{\partial x_e}} = \frac{1}{\max(10^{-3}, x_e)\,\sum_i H_{ei}}\ \sum_i H_{ei}\, x_i\,
#   \frac{\partial c}{\partial x_i}, \qquad H_{ei} = \max\big(0,\ r_{\min} - \operatorname{dist}(e, i)\big),$$
#
# with $r_{\min} = 2$ elements for the dataset (1.5 for the MBB beam below). Members thinner than about $2 r_{\min}$
# cannot form and checkerboards average out. (The radius is counted in elements here, so a finer mesh would allow
# thinner members; a design independent of the mesh needs $r_{\min}$ fixed as a physical length.) The price: the blurred
# sensitivities leave a band of **grey** elements along every boundary — the grey pixels of section 5.
#
# **Exercise 6.2** — write the update for the sensitivity-filter variant (physical densities = design
# variables). Take `x`, `dc`, `dv` as 1-D arrays, return `x_new`; move the bound that keeps the volume
# right: if `x_new.sum() > volfrac * x.size`, $\lambda$ must grow (`lower = middle`), else shrink.

# %%
# EXERCISE: the optimality-criteria update with bisection
def oc_update(x: np.ndarray, dc: np.ndarray, dv: np.ndarray, volfrac: float, move: float = 0.2) -> np.ndarray:
    """New design variables with mean volfrac (within the bisection tolerance)."""
    # BEGIN SOLUTION
    lower, upper = 0.0, 1e9
    while (upper - lower) / (lower + upper) > 1e-3:
        middle = 0.5 * (lower + upper)
        x_new = np.clip(x * np.sqrt(np.maximum(-dc / dv, 0.0) / middle), np.maximum(0.0, x - move),
                        np.minimum(1.0, x + move))
        if x_new.sum() > volfrac * x.size:
            lower = middle
        else:
            upper = middle
    return x_new
    # END SOLUTION


# %%
check_oc_update(oc_update)

# %% [markdown]
# ## 3. One optimisation, iteration by iteration: the MBB beam
#
# The half MBB beam (symmetry on the left edge, a roller at the bottom right, a load at the top left),
# 60×20 elements, $V^* = 0.5$, $p = 3$, filter radius 1.5: the classic benchmark. Our solver needs 94 iterations
# and reaches compliance 203.19, as the 88-line code does.

# %%
result = optimize(mbb_beam(60, 20, 0.5), rmin=1.5, max_iterations=1000, snapshot_every=10)
print(f"{result.iterations} iterations, converged: {result.converged}, compliance {result.compliance_history[-1]:.2f}")
assert result.iterations == 94 and abs(result.compliance_history[-1] - 203.19) < 0.01
steps = [1] + list(range(10, result.iterations + 1, 10))
plot_designs(result.snapshots, titles=[f"iteration {k}" for k in steps], ncols=5, panel_width=2.4)
plt.show()
fig, ax = plt.subplots()
ax.semilogy(range(1, result.iterations + 1), result.compliance_history)
ax.set(xlabel="iteration", ylabel="compliance c", title="MBB beam: compliance during the optimisation")
plt.show()

# %% [markdown]
# The mirror image of the half beam about its left edge is the full MBB beam:

# %%
full_beam = np.hstack([result.density[:, ::-1], result.density])
plot_designs([full_beam], ncols=1, panel_width=8, suptitle="the full MBB beam (two mirrored halves)")
plt.show()

# %% [markdown]
# ## 4. Break a design, and its compliance jumps
#
# Compliance judges a design by physics. Remove a vertical strip of material from the beam's bottom chord:
# the load must now take a detour, or finds no path at all (the remaining material then floats, held
# only by the tiny $E_{\min}$).

# %%
broken = result.density.copy()
broken[12:, 30:32] = 0.0
before, after = compliance(result.density, mbb_beam()), compliance(broken, mbb_beam())
print(f"compliance: intact {before:.1f}, with a 2-element cut in the bottom chord {after:.1f} ({after / before:.1f}×)")
fig, axes = plt.subplots(1, 2, figsize=(9, 1.9))
show_design(axes[0], result.density, f"intact: c = {before:.0f}")
show_design(axes[1], broken, f"cut: c = {after:.0f}")
plt.show()
assert after > 2 * before

# %% [markdown]
# ## 5. The course's dataset
#
# The dataset holds SIMP designs of a **64×32 cantilever** clamped on its left edge, with a unit point load
# on its right edge. Three parameters vary continuously: the load's height, its angle and the volume
# fraction. The figure below labels them: the height $y$ is counted in elements from the top edge (0 to 32), and
# the angle from the $+x$ axis (pointing right, away from the support), counter-clockwise positive, so every load
# of the dataset, from −30° to −150°, points downwards: −90° straight down, −30° down and away from the support,
# −150° down and back towards it. Every sample stores its full problem, its compliance and its iteration count, so
# a design can be re-solved and judged later. `make data` regenerates it (a few minutes on 2 cores); this lesson
# only loads it.

# %%
data = load_topology_dataset()
manifest = read_manifest()
print(f"{len(data)} designs, split {manifest['split_counts']}, generated with seed {manifest['seed']}")
print(f"parameter ranges: {manifest['parameter_ranges']}")
print(f"solver: {manifest['solver']}")
print(f"converged within {manifest['solver']['max_iterations']} iterations: {data.converged.mean():.1%}")

# %%
example = int(np.argmin(np.abs(data.angle_deg + 60) + np.abs(data.load_y - 10)))
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
show_design(left, data.density[example], f"design {example}: VF {data.volfrac[example]:.2f}, "
            f"y = {data.load_y[example]:.1f}, angle {data.angle_deg[example]:.0f}° (the load: red arrow)")
draw_problem(left, data.load_case(example))
left.annotate("support: the left edge is clamped (blue)", xy=(-0.5, 28), xytext=(2, 38), color="tab:blue",
              annotation_clip=False, arrowprops={"arrowstyle": "->", "color": "tab:blue"})
left.annotate("", xy=(66, data.load_y[example] - 0.5), xytext=(66, -0.5), annotation_clip=False,
              arrowprops={"arrowstyle": "<->", "color": "k"})
left.text(67, data.load_y[example] / 2, "load height y\n(from the top)", va="center", fontsize=8)
show_design(right, np.zeros((32, 64)), "the load angles of the dataset, at the right edge")
for angle in (-30.0, -90.0, -150.0):
    draw_problem(right, cantilever(64, 32, 0.4, load_y=8.0, angle_deg=angle), arrow_length=14.0)
    dx, dy = 17 * np.cos(np.radians(angle)), -17 * np.sin(np.radians(angle))
    right.text(63.5 + dx, 7.5 + dy, f"{angle:.0f}°", color="tab:red", ha="center", va="center")
right.annotate("", xy=(63.5 + 14, 7.5), xytext=(63.5, 7.5), annotation_clip=False,
               arrowprops={"arrowstyle": "-", "ls": ":"})
right.text(63.5 + 15, 7.5, "0° (+x)", va="center", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# About a third of the designs stopped at the 100-iteration cap with a largest element change still above the
# tolerance 0.01. Are they unfinished? We continue the first eight of them to 300 iterations with the dataset's
# solver settings and compare the compliance at iteration 100 with the final one.

# %%
unfinished = np.flatnonzero(~data.converged)[:8]
continued = [optimize(data.load_case(int(i)), SolverSettings(**manifest["solver"]), max_iterations=300)
             for i in tqdm(unfinished, desc="continuing SIMP")]
drift = np.array([(run.compliance_history[99] - run.compliance_history[-1]) / run.compliance_history[-1]
                  for run in continued])
print(f"all {len(continued)} converge within {max(run.iterations for run in continued)} iterations "
      f"(converged: {all(run.converged for run in continued)}); compliance change after iteration 100: "
      f"{drift.min():+.2%} to {drift.max():+.2%}")
assert all(run.converged for run in continued) and np.all(np.abs(drift) < 0.02)

# %% [markdown]
# For training a generative model they are finished enough: the stopping rule (largest change of *one* element
# below 0.01) is strict, the last iterations move a few boundary elements back and forth, and the grey design's
# compliance moves by the range printed above. They are not references, though: thresholded, a design can move more
# than its grey compliance does, so lessons 8 and 9 judge every method against reference designs computed to a
# tighter tolerance. The dataset keeps the capped designs, with their `converged` flag, rather than bias it towards
# the easy problems.

# %% [markdown]
# ### A gallery: load height (columns) against volume fraction (rows)
#
# For each cell of a 4×6 grid of the two parameters we show the sample closest to its centre.

# %%
vf_centres = np.linspace(0.325, 0.475, 4)
y_centres = np.linspace(2.5, 29.5, 6)
chosen, titles = [], []
for vf in vf_centres[::-1]:
    for y in y_centres:
        index = int(np.argmin(((data.volfrac - vf) / 0.2) ** 2 + ((data.load_y - y) / 32) ** 2))
        chosen.append(data.density[index])
        titles.append(f"VF {data.volfrac[index]:.2f}, y {data.load_y[index]:.0f}, {data.angle_deg[index]:.0f}°")
plot_designs(chosen, titles=titles, ncols=6, panel_width=2.2)
plt.show()

# %% [markdown]
# Each design is a truss-like structure from the clamped edge to the load; more volume means thicker and
# more members; the load's angle decides which members are in tension and which in compression.
#
# ### Distributions: parameters, compliance and greyness

# %%
grey = ((data.density > 0.1) & (data.density < 0.9)).mean(axis=(1, 2))
fig, axes = plt.subplots(2, 3, figsize=(12, 6))
panels = [(data.volfrac, "volume fraction"), (data.load_y, "load height y (elements, from the top)"),
          (data.angle_deg, "load angle (degrees)"), (np.log10(data.compliance), "log10 compliance"),
          (data.iterations, "SIMP iterations (cap 100)"), (grey, "share of grey pixels (0.1 < x < 0.9)")]
for ax, (values, label) in zip(axes.flat, panels, strict=True):
    ax.hist(values, bins=30)
    ax.set(xlabel=label, ylabel="designs")
plt.tight_layout()
plt.show()
print(f"median share of grey pixels: {np.median(grey):.1%}; pixels above 0.9: {(data.density > 0.9).mean():.1%}, "
      f"below 0.1: {(data.density < 0.1).mean():.1%}")

# %% [markdown]
# Compliance spans more than a decade (about 10 to 140). What makes a problem cheap is how *vertical* its load is:
# loads near −150° (pointing back towards the clamped edge) and near −30° (pulling away from it) are both carried
# mostly along the beam's axis by one or two struts, while a vertical load (−90°) must be carried in bending by a
# deep truss. The median compliance by angle, printed below, is symmetric about −90°. About a fifth of the pixels are
# grey (mostly the filter's smooth edges), which is why lesson 7 thresholds designs at 0.5 before judging them.

# %%
angle_bands = [(-150, -130), (-130, -110), (-110, -70), (-70, -50), (-50, -30)]
band_medians = [float(np.median(data.compliance[(data.angle_deg >= low) & (data.angle_deg < high)]))
                for low, high in angle_bands]
print("median compliance by load angle: " + ", ".join(
    f"[{low}°, {high}°): {median:.0f}" for (low, high), median in zip(angle_bands, band_medians, strict=True)))
verticality = np.abs(np.sin(np.radians(data.angle_deg)))
log_compliance = np.log(data.compliance)
print(f"correlation of log compliance with |sin(angle)|: {np.corrcoef(log_compliance, verticality)[0, 1]:.2f}, "
      f"with the angle itself: {np.corrcoef(log_compliance, data.angle_deg)[0, 1]:.2f}")
assert band_medians[2] > max(band_medians[0], band_medians[4]) * 1.5

# %% [markdown]
# The thresholded designs are what we judge in lesson 7, so we compare their compliance with that of the
# grey SIMP result, and check that each is one connected structure:

# %%
ratio = data.compliance_thresholded / data.compliance - 1
components = np.array([solid_components(d) for d in data.density])
print(f"thresholding changes compliance by {np.median(ratio):+.1%} "
      f"(median; range {ratio.min():+.1%} to {ratio.max():+.1%})")
volume_change = (data.density > 0.5).mean(axis=(1, 2)) / data.volfrac - 1
print(f"thresholding changes the volume fraction by {np.median(volume_change):+.1%} (median); "
      f"{np.mean(volume_change < 0):.0%} of the designs lose volume")
print(f"designs with floating material after thresholding: {np.mean(components > 1):.1%}")
fig, ax = plt.subplots()
ax.scatter(data.volfrac, ratio, s=4, alpha=0.5)
ax.set(xlabel="volume fraction", ylabel="C(thresholded) / C(SIMP) − 1", title="thresholding makes designs stiffer")
plt.show()

# %% [markdown]
# Thresholding at 0.5 turns grey elements fully solid or void; since SIMP penalises grey ($0.5^3 = 0.125$
# stiffness for half the volume), most thresholded designs are stiffer (by about 8 % in the median); a few
# lose a thin grey member and become less stiff. The volume moves too, nearly always down: the filter's grey
# edges are mostly below 0.5, so thresholded designs miss their volume target by about 1.5 %. Lesson 7
# therefore compares a VAE's thresholded reconstruction with the **thresholded** original, like with like.
#
# **Question** — why does a SIMP design's volume fraction match its target almost exactly, while nothing in
# a VAE forces its outputs to?
#
# <!-- BEGIN ANSWER -->
# In SIMP the volume is a hard constraint: the bisection on $\lambda$ enforces $\frac1N\sum x_e = V^*$ at every
# iteration. A VAE only imitates the training designs pixel by pixel; its outputs respect the volume only as
# well as they reconstruct, and nothing stops a blurry output from gaining or losing material. That is why
# lesson 7 measures the volume-fraction error.
# <!-- END ANSWER -->
#
# ## What you should take away
# - The images are optimal layouts for compliance $c = F^\top U$ under a volume constraint; SIMP's penalty
#   $p = 3$ drives them to black and white.
# - The OC update scales each element by the square root of its sensitivity ratio; bisection on $\lambda$
#   enforces the volume.
# - Every design in the dataset carries its problem, so compliance, volume and connectivity of any
#   generated design can be checked by physics.
