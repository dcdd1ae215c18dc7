# %% [markdown]
# # Lesson 2 — Why maximum likelihood needs the posterior
#
# **Time estimate:** 25 minutes. **You will:** derive and check numerically that the gradient of the
# log-likelihood is an expectation under the posterior $p_\theta(z \mid x)$, compute that posterior in
# closed form and on a grid, and see why a grid cannot scale.
#
# ## 1. The gradient of $\log p_\theta(x)$ is a posterior expectation
#
# $$\nabla_\theta \log p_\theta(x) = \frac{\nabla_\theta p_\theta(x)}{p_\theta(x)}
#   = \frac{1}{p_\theta(x)} \int \nabla_\theta p_\theta(x, z)\, dz
#   = \int \frac{p_\theta(x, z)}{p_\theta(x)} \nabla_\theta \log p_\theta(x, z)\, dz
#   = \mathbb E_{p_\theta(z \mid x)}\!\left[\nabla_\theta \log p_\theta(x, z)\right].$$
#
# The first step is the chain rule for $\log$, the second swaps gradient and integral, the third writes
# $\nabla p = p \nabla \log p$, and the last recognises Bayes' rule $p(z \mid x) = p(x, z) / p(x)$.
# So to learn $\theta$ by maximum likelihood we need samples from, or expectations under, the **posterior**.
#
# We check the identity on the linear-Gaussian model of lesson 1, now with a $d$-dimensional latent:
# $z \sim \mathcal N(0, I_d)$, $x \mid z \sim \mathcal N(Wz + b, \sigma^2 I_D)$.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from utils import seed_everything
from utils.checks.lesson02 import check_grid_posterior, check_log_joint_torch, check_posterior_params
from utils.plotting import use_course_style

use_course_style()
rng = seed_everything(0)
torch.set_default_dtype(torch.float64)

# %% [markdown]
# **Exercise 2.1** — write $\log p_\theta(x, z)$ in torch, for a batch of latents `z: (S, d)` and one
# observation `x: (D,)`, with parameters `W: (D, d)`, `b: (D,)` and `log_sigma` (a scalar tensor;
# $\sigma = e^{\text{log\_sigma}}$).
# It must be differentiable in the parameters (use torch operations only).

# %%
# EXERCISE: log p(x, z) in torch
def log_joint_torch(x: torch.Tensor, z: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                    log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; W z + b, σ² I) + log N(z; 0, I) for x: (D,), z: (S, d); returns (S,)."""
    # BEGIN SOLUTION
    mean = z @ W.T + b
    dim_x, dim_z = x.shape[-1], z.shape[-1]
    log_likelihood = (-0.5 * ((x - mean) ** 2).sum(-1) * torch.exp(-2 * log_sigma)
                      - dim_x * log_sigma - 0.5 * dim_x * np.log(2 * np.pi))
    log_prior = -0.5 * (z**2).sum(-1) - 0.5 * dim_z * np.log(2 * np.pi)
    return log_likelihood + log_prior
    # END SOLUTION


# %%
check_log_joint_torch(log_joint_torch)

# %% [markdown]
# ## 2. The exact posterior of the linear-Gaussian model
#
# Completing the square in $z$ gives a Gaussian posterior:
#
# $$p(z \mid x) = \mathcal N\!\left(z;\ M^{-1} W^\top (x - b),\ \sigma^2 M^{-1}\right),
#   \qquad M = W^\top W + \sigma^2 I_d .$$
#
# **Exercise 2.2** — return the posterior mean `(d,)` and covariance `(d, d)` (numpy). Use
# `np.linalg.solve` rather than an explicit inverse (for the covariance, solve $M C = \sigma^2 I$): it is cheaper
# and more accurate.

# %%
# EXERCISE: the exact posterior p(z | x)
def posterior_params(x: np.ndarray, W: np.ndarray, b: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of p(z | x) for the linear-Gaussian model."""
    # BEGIN SOLUTION
    M = W.T @ W + sigma**2 * np.eye(W.shape[1])
    mean = np.linalg.solve(M, W.T @ (x - b))
    covariance = np.linalg.solve(M, sigma**2 * np.eye(W.shape[1]))
    return mean, covariance
    # END SOLUTION


# %%
check_posterior_params(posterior_params)

# %% [markdown]
# ## 3. Checking $\nabla_\theta \log p_\theta(x) = \mathbb E_{p_\theta(z \mid x)}[\nabla_\theta \log p_\theta(x, z)]$
#
# * Left: autograd through the closed form $\log \mathcal N(x; b, WW^\top + \sigma^2 I)$.
# * Right: draw $S$ samples from the exact posterior (treated as constants), average
#   $\log p_\theta(x, z_s)$ and differentiate; report the Monte Carlo standard error of every entry.

# %%
D, d = 5, 2
W = torch.tensor(rng.normal(size=(D, d)), requires_grad=True)
b = torch.tensor(rng.normal(size=D), requires_grad=True)
log_sigma = torch.tensor(np.log(0.7), requires_grad=True)
params = [W, b, log_sigma]
x = torch.tensor(rng.normal(size=D))

covariance_x = W @ W.T + torch.exp(2 * log_sigma) * torch.eye(D)
log_px = torch.distributions.MultivariateNormal(b, covariance_x).log_prob(x)
grad_exact = torch.autograd.grad(log_px, params)

mean_post, cov_post = posterior_params(x.numpy(), W.detach().numpy(), b.detach().numpy(),
                                      float(torch.exp(log_sigma.detach())))
S = 20_000
z_post = torch.tensor(rng.multivariate_normal(mean_post, cov_post, size=S))
# per-sample gradients (for the standard error), vectorised over the samples with torch.func
per_sample_grads = torch.func.vmap(
    torch.func.grad(lambda p, z_one: log_joint_torch(x, z_one[None], *p).sum()), in_dims=(None, 0)
)(tuple(p.detach() for p in params), z_post)
per_sample = torch.cat([g.reshape(S, -1) for g in per_sample_grads], dim=1)  # (S, n_params)
grad_mc = torch.autograd.grad(log_joint_torch(x, z_post, *params).mean(), params)

flat_exact = torch.cat([g.flatten() for g in grad_exact])
flat_mc = torch.cat([g.flatten() for g in grad_mc])
standard_error = per_sample.std(0) / np.sqrt(S)
print(f"{'parameter':>12} {'∇ log p(x)':>12} {'E_post[∇ log p(x,z)]':>22} {'MC std. error':>14}")
names = [f"W[{i},{j}]" for i in range(D) for j in range(d)] + [f"b[{i}]" for i in range(D)] + ["log σ"]
for name, e, m, s in zip(names, flat_exact, flat_mc, standard_error, strict=True):
    print(f"{name:>12} {e.item():12.4f} {m.item():22.4f} {s.item():14.4f}")
assert torch.all((flat_exact - flat_mc).abs() < 5 * standard_error + 1e-9), \
    "the identity must hold within 5 standard errors"
print("identity verified: every entry agrees within 5 Monte Carlo standard errors")

# %% [markdown]
# Sampling from the **prior** instead would give a different (wrong) number: the identity needs the
# posterior. Here is the same estimate with $z \sim p(z)$:

# %%
z_prior = torch.randn(S, d)
grad_prior = torch.cat([g.flatten() for g in torch.autograd.grad(log_joint_torch(x, z_prior, *params).mean(), params)])
print(f"largest |error| with posterior samples: {(flat_mc - flat_exact).abs().max():.4f}, "
      f"with prior samples: {(grad_prior - flat_exact).abs().max():.4f}")

# %% [markdown]
# ## 4. When there is no closed form: the posterior on a grid
#
# Change the decoder to a nonlinear one: $x \mid z \sim \mathcal N(f(z), \sigma^2 I_2)$ with
# $f(z) = (z_1^2,\ z_2 + \tfrac12 z_1^2)$. Now $p(x) = \int p(x \mid z) p(z) dz$ has no closed form, and the
# posterior $p(z \mid x) = p(x, z) / \int p(x, z) dz$ can only be computed numerically. With a
# 2-dimensional latent, a grid does it: evaluate $\log p(x, z)$ at every grid node, then normalise.
#
# **Exercise 2.3** — given `log_joint_values` on a regular grid with cell volume `cell_volume`, return
# $\log p(x) \approx \log \sum_k p(x, z_k)\, \Delta$ and the normalised posterior density at the nodes.
# Use `torch.logsumexp` to avoid underflow.

# %%
# EXERCISE: normalise on a grid
def grid_posterior(log_joint_values: torch.Tensor, cell_volume: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) (scalar) and the posterior density p(z_k | x) at every node (same shape as the input)."""
    # BEGIN SOLUTION
    log_evidence = torch.logsumexp(log_joint_values.flatten(), 0) + np.log(cell_volume)
    return log_evidence, torch.exp(log_joint_values - log_evidence)
    # END SOLUTION


# %%
check_grid_posterior(grid_posterior)


# %%
def nonlinear_log_joint(x: torch.Tensor, z: torch.Tensor, sigma: float = 0.3) -> torch.Tensor:
    """log p(x, z) for the nonlinear decoder f(z) = (z1², z2 + z1²/2); z: (..., 2)."""
    f = torch.stack([z[..., 0] ** 2, z[..., 1] + 0.5 * z[..., 0] ** 2], dim=-1)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    return torch.distributions.Normal(f, sigma).log_prob(x).sum(-1) + prior


axis = torch.linspace(-3, 3, 241)
Z1, Z2 = torch.meshgrid(axis, axis, indexing="ij")
grid_points = torch.stack([Z1, Z2], dim=-1)
cell = float((axis[1] - axis[0]) ** 2)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
modes_per_panel = []
for ax, x_obs in zip(axes, [torch.tensor([1.0, 0.2]), torch.tensor([0.05, -0.5])], strict=True):
    log_evidence, posterior = grid_posterior(nonlinear_log_joint(x_obs, grid_points), cell)
    ax.contourf(Z1, Z2, posterior, levels=20, cmap="Purples")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", aspect="equal",
           title=f"p(z | x = {x_obs.tolist()}),  log p(x) ≈ {log_evidence:.3f}")
    marginal_z1 = posterior.sum(dim=1)
    modes = int(((marginal_z1[1:-1] > marginal_z1[:-2]) & (marginal_z1[1:-1] > marginal_z1[2:])).sum())
    modes_per_panel.append(modes)
    print(f"x = {x_obs.tolist()}: posterior mass on the grid = {(posterior.sum() * cell).item():.6f}, "
          f"modes of p(z1 | x): {modes}")
plt.tight_layout()
plt.show()
assert modes_per_panel == [2, 1]

# %% [markdown]
# For $x = (1.0, 0.2)$ the posterior has **two modes**: the decoder sees $z_1$ only through $z_1^2$, so $z_1 \approx 1$
# and $z_1 \approx -1$ explain $x$ equally well, and no single Gaussian describes it. For $x = (0.05, -0.5)$ the two
# candidates $z_1 = \pm\sqrt{0.05} \approx \pm 0.22$ lie closer together than the posterior's width (the noise
# $\sigma = 0.3$ on $x_1$ allows $z_1^2$ anywhere up to about 0.35), so they merge into **one** mode, at $z_1 = 0$: the
# posterior is unimodal but not Gaussian (flat-topped in $z_1$, curved in $z_2$), as the marginal's single peak
# printed above shows. Remember both pictures in lesson 3, when we approximate posteriors by Gaussians.
#
# ## 5. Why grids explode
#
# With $n$ nodes per axis, a $d$-dimensional latent needs $n^d$ evaluations of $p(x, z)$. We time the grid
# for small $d$ (with $n = 30$ and the linear-Gaussian model, $D = 10$) and extrapolate.

# %%
def time_grid(latent_dim: int, nodes_per_axis: int = 30) -> float:
    """Seconds to evaluate log p(x, z) on a full grid of nodes_per_axis^latent_dim points."""
    W_d = torch.randn(10, latent_dim)
    x_d = torch.randn(10)
    axis_d = torch.linspace(-4, 4, nodes_per_axis)
    start = time.perf_counter()
    points = torch.cartesian_prod(*[axis_d] * latent_dim).reshape(-1, latent_dim)
    log_joint_torch(x_d, points, W_d, torch.zeros(10), torch.tensor(0.0))
    return time.perf_counter() - start


n = 30
measured = {dim: time_grid(dim, n) for dim in (1, 2, 3, 4)}
seconds_per_point = measured[4] / n**4
dims = np.arange(1, 11)
evaluations = n ** dims.astype(float)
print(f"{'d':>3} {'evaluations':>14} {'time':>22}")
for dim, count in zip(dims, evaluations, strict=True):
    seconds = measured.get(dim, count * seconds_per_point)
    label = "measured" if dim in measured else "extrapolated"
    pretty = f"{seconds:.3g} s" if seconds < 3600 * 24 * 365 else f"{seconds / (3600 * 24 * 365):.3g} years"
    print(f"{dim:>3} {count:14.3g} {pretty:>14} ({label})")
fig, ax = plt.subplots()
ax.semilogy(dims, evaluations * seconds_per_point, "o-")
ax.axhline(3600 * 24 * 365, color="k", ls="--", label="one year")
ax.set(xlabel="latent dimension d", ylabel="seconds for one posterior (n = 30 per axis)",
       title="grid inference grows as $n^d$")
ax.legend()
plt.show()

# %% [markdown]
# Lesson 7's VAE has a latent of dimension 16 or more: $30^{16} \approx 4 \cdot 10^{23}$ evaluations for a single
# image. We need an approximation that scales — variational inference.
#
# **Question** — why not sample from $p(z \mid x)$ directly, as we did for the linear-Gaussian model?
#
# <!-- BEGIN ANSWER -->
# Sampling from $p(z \mid x) = p(x, z)/p(x)$ requires either its closed form (only for conjugate models like
# the linear-Gaussian one) or its normaliser $p(x)$, which is the very integral we cannot compute. MCMC can
# sample without $p(x)$, but it needs many sequential steps per data point and per gradient step, which is
# far too slow inside a training loop over thousands of images.
# <!-- END ANSWER -->
#
# ## What you should take away
# - $\nabla_\theta \log p_\theta(x) = \mathbb E_{p_\theta(z\mid x)}[\nabla_\theta \log p_\theta(x, z)]$: learning
#   needs the posterior (checked above to within Monte Carlo error; prior samples give a wrong answer).
# - The posterior is Gaussian in closed form only for linear-Gaussian models; nonlinear decoders give
#   multimodal, curved posteriors.
# - A grid computes any low-dimensional posterior, but its cost grows as $n^d$.
