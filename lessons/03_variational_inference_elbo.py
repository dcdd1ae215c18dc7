# %% [markdown]
# # Lesson 3 — Variational inference and the ELBO
#
# **Time estimate:** 30 minutes. **You will:** see Jensen's inequality, derive the evidence lower bound
# (ELBO), verify $\text{ELBO} = \log p(x) - \mathrm{KL}(q \,\|\, p(z \mid x))$ on many random $q$, explore
# it with sliders, and maximise it by gradient ascent with the reparametrization trick.
#
# Lesson 2 ended with a posterior we cannot compute. Variational inference replaces it by the best member
# $q(z)$ of a simple family (here: Gaussians), where "best" is defined by a quantity we *can* compute.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from utils import seed_everything
from utils.checks.lesson03 import check_elbo_estimate, check_maximize_elbo
from utils.elbo_explorer import draw_elbo_explorer
from utils.plotting import use_course_style
from utils.toy_models import LinearGaussian1D

use_course_style()
rng = seed_everything(0)
torch.set_default_dtype(torch.float64)

# %% [markdown]
# ## 1. Jensen's inequality
#
# For a concave function such as $\log$, the function of an average is at least the average of the
# function: $\log \mathbb E[Y] \ge \mathbb E[\log Y]$. Geometrically, every chord lies below the curve.

# %%
y = np.linspace(0.05, 4, 200)
a, b_point, weight = 0.3, 3.5, 0.4
mix = weight * a + (1 - weight) * b_point
fig, ax = plt.subplots()
ax.plot(y, np.log(y), label="log y (concave)")
ax.plot([a, b_point], np.log([a, b_point]), "k--", label="chord")
ax.plot(mix, np.log(mix), "o", color="C0", label="log(E[Y])")
ax.plot(mix, weight * np.log(a) + (1 - weight) * np.log(b_point), "o", color="C3", label="E[log Y]")
ax.set(xlabel="y", ylabel="log y", title="Jensen: log E[Y] ≥ E[log Y]")
ax.legend()
plt.show()

samples = rng.gamma(shape=2.0, scale=1.5, size=100_000)
print(f"log E[Y] = {np.log(samples.mean()):.4f}  ≥  E[log Y] = {np.log(samples).mean():.4f}")
assert np.log(samples.mean()) >= np.log(samples).mean()

# %% [markdown]
# ## 2. The Kullback–Leibler divergence
#
# The gap of the bound below is a KL divergence, so we define it first. For two densities $q$ and $p$ with
# $p > 0$ wherever $q > 0$,
#
# $$\mathrm{KL}(q \,\|\, p) = \mathbb E_{q}\!\left[\log \frac{q(z)}{p(z)}\right]
#   = \int q(z) \log \frac{q(z)}{p(z)}\, dz .$$
#
# Three properties carry everything that follows:
# - **non-negative**: by Jensen,
#   $-\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log \tfrac{p}{q}] \le \log \mathbb E_q[\tfrac{p}{q}] = \log \int p = 0$;
# - **zero only at $q = p$** (almost everywhere): Jensen's inequality is an equality only when $p/q$ is constant,
#   and two densities that are proportional are equal;
# - **not symmetric**: $\mathrm{KL}(q \,\|\, p) \ne \mathrm{KL}(p \,\|\, q)$ in general, so it is not a distance.
#   $\mathrm{KL}(q \,\|\, p)$ weighs the log-ratio by $q$: it punishes $q$ for putting mass where $p$ has little.
#
# We check all three on random pairs of 2-D Gaussians: a Monte Carlo estimate of the definition against the
# closed form of `torch.distributions.kl_divergence` (within 5 standard errors), the sign, the value at
# $q = p$, and the two directions.

# %%
def random_gaussian(generator: np.random.Generator, dim: int = 2) -> MultivariateNormal:
    """A Gaussian with a random mean and a random positive-definite covariance."""
    factor = torch.tensor(generator.normal(size=(dim, dim)))
    return MultivariateNormal(torch.tensor(generator.normal(size=dim)), factor @ factor.T + 0.3 * torch.eye(dim))


kl_rows = []
for _ in range(20):
    q_pair, p_pair = random_gaussian(rng), random_gaussian(rng)
    samples_q = q_pair.sample((200_000,))
    log_ratio = q_pair.log_prob(samples_q) - p_pair.log_prob(samples_q)
    kl_rows.append((log_ratio.mean().item(), log_ratio.std().item() / np.sqrt(len(log_ratio)),
                    kl_divergence(q_pair, p_pair).item(), kl_divergence(p_pair, q_pair).item()))
kl_table = np.array(kl_rows)
assert np.all(np.abs(kl_table[:, 0] - kl_table[:, 2]) < 5 * kl_table[:, 1]), "Monte Carlo and closed form disagree"
assert np.all(kl_table[:, 2] > 0) and kl_divergence(q_pair, q_pair).abs().item() < 1e-12
print(f"Monte Carlo vs closed form: largest gap {np.max(np.abs(kl_table[:, 0] - kl_table[:, 2]) / kl_table[:, 1]):.1f} "
      f"standard errors over 20 pairs; every KL > 0 (smallest {kl_table[:, 2].min():.3f}); KL(q ‖ q) = 0")
print(f"asymmetry: KL(q ‖ p) / KL(p ‖ q) ranges from {np.min(kl_table[:, 2] / kl_table[:, 3]):.2f} "
      f"to {np.max(kl_table[:, 2] / kl_table[:, 3]):.2f} over the same pairs")

# %% [markdown]
# ## 3. The ELBO
#
# For any density $q(z)$ that is positive where $p(x, z)$ is,
#
# $$\log p(x) = \log \int p(x, z)\, dz = \log \int q(z) \frac{p(x, z)}{q(z)}\, dz
#   = \log \mathbb E_{q}\!\left[\frac{p(x, z)}{q(z)}\right]
#   \;\ge\; \mathbb E_{q}\!\left[\log \frac{p(x, z)}{q(z)}\right] =: \text{ELBO}(q).$$
#
# The gap is exactly a KL divergence: writing $p(x, z) = p(z \mid x) p(x)$,
#
# $$\text{ELBO}(q) = \mathbb E_q[\log p(z \mid x) + \log p(x) - \log q(z)]
#   = \log p(x) - \mathrm{KL}\big(q(z) \,\|\, p(z \mid x)\big).$$
#
# Since $\log p(x)$ does not depend on $q$, **maximising the ELBO over $q$ minimises the KL to the
# posterior**, and the bound is tight exactly when $q = p(z \mid x)$: the KL is non-negative and zero only there
# (section 2).
#
# **The reparametrization trick.** To maximise the ELBO by gradient ascent we need its gradient with respect to
# the parameters of $q$, here $\mu$ and log_std. The ELBO is an expectation under $q$ itself, so a plain Monte Carlo
# estimate whose samples come from `q.sample()` is a number that gradients cannot flow through: the samples are
# constants as far as autograd knows. Sampling from a Gaussian is easy; *differentiating through the sample* is the
# problem. The trick writes the sample as a differentiable function of the parameters and of noise that does not
# depend on them:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), \qquad \sigma = e^{\text{log\_std}},$$
#
# so that $\mathbb E_q[f(z)] = \mathbb E_\varepsilon[f(\mu + \sigma \odot \varepsilon)]$ and the gradient moves
# inside the expectation. Lesson 4 compares it with the other estimator of such gradients (the score function).
#
# > **Erratum (seed slides).** The slides justify the trick by "it is not possible to sample directly from $q$".
# > That is not the reason: `torch.distributions.Normal(mu, sigma).sample()` samples $q$ directly and cheaply.
# > What is not possible is to backpropagate through that sample to $\mu$ and $\sigma$; the trick fixes exactly
# > that.
#
# **Exercise 3.1** — estimate the ELBO by Monte Carlo for a diagonal Gaussian
# $q = \mathcal N(\mu, \mathrm{diag}(e^{2\,\text{log\_std}}))$. Draw the samples as
# $z = \mu + e^{\text{log\_std}} \odot \varepsilon$,
# $\varepsilon \sim \mathcal N(0, I)$ drawn with `generator` (the reparametrization trick above: the estimate stays
# differentiable in $\mu$ and log_std), and average $\log p(x, z) - \log q(z)$.

# %%
# EXERCISE: a Monte Carlo estimate of the ELBO
def elbo_estimate(log_joint, x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor, n_samples: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Mean over n_samples of log p(x, z) − log q(z), z ~ q; log_joint(x, z) takes z: (S, d)."""
    # BEGIN SOLUTION
    epsilon = torch.randn(n_samples, mu.shape[-1], generator=generator, dtype=mu.dtype)
    z = mu + torch.exp(log_std) * epsilon
    log_q = Normal(mu, torch.exp(log_std)).log_prob(z).sum(-1)
    return (log_joint(x, z) - log_q).mean()
    # END SOLUTION


# %%
check_elbo_estimate(elbo_estimate)

# %% [markdown]
# ### Checking ELBO = log p(x) − KL(q ‖ p(z|x)) for many random q
#
# On the linear-Gaussian model every term is known: $\log p(x)$ and the posterior in closed form (lesson 2),
# and the KL between two Gaussians from `torch.distributions.kl_divergence`. We compare for 40 random $q$.

# %%
D, d = 4, 2
W = torch.tensor(rng.normal(size=(D, d)))
b = torch.tensor(rng.normal(size=D))
sigma = 0.6
x = torch.tensor(rng.normal(size=D))


def log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x, z) of the linear-Gaussian model above; z: (S, d)."""
    return Normal(z @ W.T + b, sigma).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)


log_evidence = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D)).log_prob(x)
M = W.T @ W + sigma**2 * torch.eye(d)
posterior = MultivariateNormal(torch.linalg.solve(M, W.T @ (x - b)), sigma**2 * torch.linalg.inv(M))

generator = torch.Generator().manual_seed(0)
rows = []
for _ in range(40):
    mu, log_std = torch.randn(d), 0.5 * torch.randn(d) - 0.5
    q = MultivariateNormal(mu, torch.diag(torch.exp(2 * log_std)))
    batches = torch.stack([elbo_estimate(log_joint, x, mu, log_std, 10_000, generator) for _ in range(20)])
    standard_error = (batches.std() / np.sqrt(len(batches))).item()
    rows.append((batches.mean().item(), standard_error, (log_evidence - kl_divergence(q, posterior)).item()))
elbo_mc, elbo_se, elbo_closed = np.array(rows).T
z_scores = (elbo_mc - elbo_closed) / elbo_se
print(f"largest |ELBO − (log p(x) − KL)| over 40 random q: {np.abs(elbo_mc - elbo_closed).max():.4f} nats, "
      f"largest |z-score| {np.abs(z_scores).max():.2f}")
print(f"every ELBO ≤ log p(x) = {log_evidence:.4f}: {bool(np.all(elbo_closed <= log_evidence.item()))}")
assert np.all(np.abs(z_scores) < 5), "every estimate must agree within 5 standard errors"
fig, ax = plt.subplots()
ax.errorbar(elbo_closed, elbo_mc, yerr=2 * elbo_se, fmt="o", ms=3)
ax.plot(elbo_closed, elbo_closed, "k-", lw=0.8)
ax.axvline(log_evidence, color="C3", ls="--", label="log p(x)")
ax.set(xlabel="log p(x) − KL(q ‖ p(z|x))  (closed form)", ylabel="ELBO (Monte Carlo, ±2 s.e.)", title="40 random q")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Explore the bound
#
# Move the sliders: $q$'s mean and log standard deviation, for a 1-D latent (the model of lesson 1). The
# bars show $\log p(x)$ and the ELBO; the gap between them is $\mathrm{KL}(q \,\|\, p(z \mid x))$. Try to close it.
# (Without a running kernel the figure shows the starting point only.)

# %%
model_1d = LinearGaussian1D(w=np.array([2.0, 1.0]), b=np.array([0.5, -0.5]), sigma=0.3)
x_1d = np.array([1.5, 0.2])


def explore_elbo(q_mean: float, q_log_std: float) -> None:
    """Redraw the explorer (its numbers are in the figure) and return nothing for the widget to print."""
    draw_elbo_explorer(model_1d, x_1d, q_mean, q_log_std)


widgets.interact(explore_elbo,
                 q_mean=widgets.FloatSlider(value=0.0, min=-2.0, max=2.0, step=0.02),
                 q_log_std=widgets.FloatSlider(value=0.0, min=-3.0, max=1.0, step=0.02));

# %% [markdown]
# ## 5. Maximise the ELBO by gradient ascent
#
# Because `elbo_estimate` is differentiable in $\mu$ and log_std through $z = \mu + \sigma \odot \varepsilon$, we can
# follow its gradient with Adam. To see $q$ reach the *exact* posterior, we give the model orthogonal
# columns of $W$: then the posterior covariance $\sigma^2 (W^\top W + \sigma^2 I)^{-1}$ is diagonal, which a
# diagonal $q$ can match.
#
# **Exercise 3.2** — write the optimisation loop: start from $\mu = 0$, log_std $= 0$ (tensors with
# `requires_grad=True`), and for `steps` steps maximise `elbo_estimate(..., n_samples, generator)` with
# `torch.optim.Adam(lr=lr)`. Return the final `mu`, `log_std` (detached) and the list of ELBO values.

# %%
# EXERCISE: maximise the ELBO with the reparametrization trick
def maximize_elbo(log_joint, x: torch.Tensor, latent_dim: int, steps: int = 1500, lr: float = 0.05,
                  n_samples: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Gradient ascent on the ELBO of a diagonal Gaussian q; returns (mu, log_std, elbo_history)."""
    generator = torch.Generator().manual_seed(seed)
    # BEGIN SOLUTION
    mu = torch.zeros(latent_dim, requires_grad=True)
    log_std = torch.zeros(latent_dim, requires_grad=True)
    optimizer = torch.optim.Adam([mu, log_std], lr=lr)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -elbo_estimate(log_joint, x, mu, log_std, n_samples, generator)
        loss.backward()
        optimizer.step()
        history.append(-loss.item())
    return mu.detach(), log_std.detach(), history
    # END SOLUTION


# %%
check_maximize_elbo(maximize_elbo)

# %%
W_orthogonal = torch.linalg.qr(torch.tensor(rng.normal(size=(D, d))))[0] * torch.tensor([2.0, 0.7])
W = W_orthogonal  # log_joint reads W
log_evidence = MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D)).log_prob(x)
M = W.T @ W + sigma**2 * torch.eye(d)
posterior = MultivariateNormal(torch.linalg.solve(M, W.T @ (x - b)), sigma**2 * torch.linalg.inv(M))

mu_fit, log_std_fit, history = maximize_elbo(log_joint, x, d, steps=2000, lr=0.02, n_samples=512)
q_fit = MultivariateNormal(mu_fit, torch.diag(torch.exp(2 * log_std_fit)))
final_kl = kl_divergence(q_fit, posterior).item()
print(f"q mean {mu_fit.numpy().round(4)}  vs posterior mean {posterior.mean.numpy().round(4)}")
print(f"q std  {torch.exp(log_std_fit).numpy().round(4)}  "
      f"vs posterior std  {posterior.variance.sqrt().numpy().round(4)}")
print(f"final KL(q ‖ p(z|x)) = {final_kl:.2e}")
assert final_kl < 5e-3
fig, ax = plt.subplots()
ax.plot(history, lw=0.6, label="ELBO (512-sample estimate per step)")
ax.axhline(log_evidence, color="k", ls="--", label="log p(x)")
ax.set(xlabel="Adam step", ylabel="nats", ylim=(log_evidence.item() - 10, log_evidence.item() + 1),
       title="the ELBO climbs to log p(x)")
ax.legend()
plt.show()

# %% [markdown]
# **Question** — with the correlated $W$ of section 3 instead, the best diagonal $q$ cannot reach KL = 0.
# Which part of the posterior does it miss, and does it then over- or under-estimate the posterior's spread?
#
# <!-- BEGIN ANSWER -->
# It misses the correlation between $z_1$ and $z_2$ (the off-diagonal of the posterior covariance).
# $\mathrm{KL}(q \,\|\, p)$ heavily penalises $q$ putting mass where $p$ has little, so the best
# factorised $q$ matches the posterior's *conditional* widths, which are narrower than its marginals: mean-field
# variational inference under-estimates the posterior variance.
# <!-- END ANSWER -->
#
# ## What you should take away
# - $\mathrm{KL}(q \,\|\, p) \ge 0$, zero only at $q = p$, and not symmetric: checked on 20 random pairs of Gaussians.
# - Jensen's inequality turns $\log p(x) = \log \mathbb E_q[p(x,z)/q(z)]$ into a lower bound, the ELBO.
# - $\text{ELBO}(q) = \log p(x) - \mathrm{KL}(q \,\|\, p(z\mid x))$: checked numerically for 40 random $q$.
# - The reparametrization $z = \mu + \sigma \odot \varepsilon$ makes the ELBO differentiable; gradient ascent
#   drives $q$ to the exact posterior when the family contains it (final KL near 0).
