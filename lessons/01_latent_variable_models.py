# %% [markdown]
# # Lesson 1 — Latent variable models
#
# **Time estimate:** 25 minutes. **You will:** write down a latent variable model, compute its marginal
# likelihood three ways, sample from it, fit it by maximum likelihood, and see why naive Monte Carlo
# stops working as the latent space grows.
#
# *The course follows the arc of the slides "An introduction to Variational Autoencoders" by G. Catalani and
# J. Morlier (ISAE-Supaero; their notebooks are in the IA4SM repository), checks every step by numbers, and
# corrects the slides where they err (boxes marked "Erratum"; the course's errata page, `docs/errata.md`, linked
# from the README, lists them).*
#
# A *latent variable model* explains an observation $x$ by a hidden cause $z$ that we never observe:
#
# $$p_\theta(x, z) = p_\theta(x \mid z)\, p(z), \qquad p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz .$$
#
# Throughout lessons 1–4 we use a model where **everything is exact**, so that each approximation can be
# compared with the truth: the linear-Gaussian model (probabilistic PCA)
#
# $$z \sim \mathcal N(0, I_d), \qquad x \mid z \sim \mathcal N(W z + b,\ \sigma^2 I_D),
# \qquad\Rightarrow\qquad p(x) = \mathcal N\!\left(x;\ b,\ W W^\top + \sigma^2 I_D\right).$$

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import integrate, stats

from utils import seed_everything
from utils.checks.lesson01 import check_ancestral_sample, check_log_joint, check_log_marginal_quadrature
from utils.plotting import use_course_style

use_course_style()
rng = seed_everything(0)

# %% [markdown]
# ## 1. The joint $p(x, z) = p(x \mid z)\,p(z)$
#
# We start with a one-dimensional latent $z$ and two-dimensional observations $x \in \mathbb R^2$:
# every $x$ lies near the line $\{w z + b\}$, and $z$ says *where on the line*.

# %%
w_true = np.array([2.0, 1.0])
b_true = np.array([0.5, -0.5])
sigma_true = 0.3

# %% [markdown]
# **Exercise 1.1** — write $\log p(x, z) = \log \mathcal N(x;\ w z + b,\ \sigma^2 I_D) + \log \mathcal N(z; 0, 1)$
# for one observation `x` of shape `(D,)` and an array of latent values `z` of shape `(S,)`.
# Recall
# $\log \mathcal N(x; \mu, \sigma^2 I_D) = -\frac{\lVert x-\mu\rVert^2}{2\sigma^2} - \frac D2 \log(2\pi\sigma^2)$.

# %%
# EXERCISE: log p(x, z) of the linear-Gaussian model
def log_joint(x: np.ndarray, z: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """log p(x, z) for x: (D,), z: (S,), w: (D,), b: (D,); returns (S,)."""
    # BEGIN SOLUTION
    z = np.atleast_1d(z)
    mean = z[:, None] * w[None, :] + b[None, :]
    dim = x.shape[-1]
    log_likelihood = -0.5 * np.sum((x - mean) ** 2, axis=-1) / sigma**2 - 0.5 * dim * np.log(2 * np.pi * sigma**2)
    log_prior = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    return log_likelihood + log_prior
    # END SOLUTION


# %%
check_log_joint(log_joint)

# %% [markdown]
# ## 2. The marginal likelihood $p(x) = \int p(x \mid z)\, p(z)\, dz$, three ways
#
# 1. **Closed form**: for this model, $p(x) = \mathcal N(x; b, w w^\top + \sigma^2 I)$.
# 2. **Numerical integration** over the one latent dimension (`scipy.integrate.quad`).
# 3. **Naive Monte Carlo** from the prior: $p(x) \approx \frac1S \sum_s p(x \mid z_s)$ with $z_s \sim p(z)$.
#
# **Exercise 1.2** — compute $\log p(x)$ by numerical integration of $\exp \log p(x, z)$ over $z$,
# reusing your `log_joint`. Tip: the integrand is negligible outside $[-10, 10]$.

# %%
# EXERCISE: log p(x) by numerical integration
def log_marginal_quadrature(x: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """log p(x) = log ∫ p(x, z) dz for x: (D,) and a 1-D latent."""
    # BEGIN SOLUTION
    value, _ = integrate.quad(lambda z: float(np.exp(log_joint(x, np.array([z]), w, b, sigma))[0]),
                              -10.0, 10.0, limit=200, epsabs=0.0, epsrel=1e-10)
    return float(np.log(value))
    # END SOLUTION


# %%
check_log_marginal_quadrature(log_marginal_quadrature)


# %% [markdown]
# The other two estimates need no exercise: the closed form is one call, and naive Monte Carlo is an
# average of likelihoods, computed in log space with `logsumexp` so that small numbers do not underflow.

# %%
def log_marginal_exact(x: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """log N(x; b, w wᵀ + σ² I): the closed form."""
    covariance = np.outer(w, w) + sigma**2 * np.eye(len(b))
    return float(stats.multivariate_normal(mean=b, cov=covariance).logpdf(x))


def log_marginal_naive_mc(x: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float,
                          n_samples: int, rng: np.random.Generator) -> float:
    """log (1/S) Σ_s p(x | z_s), z_s ~ p(z) = N(0, 1)."""
    z = rng.standard_normal(n_samples)
    log_likelihood = log_joint(x, z, w, b, sigma) - stats.norm.logpdf(z)
    return float(np.logaddexp.reduce(log_likelihood) - np.log(n_samples))


test_points = np.array([[0.5, -0.5], [2.0, 0.4], [-1.5, -1.6]])
print(f"{'x':>14} | {'closed form':>11} | {'quadrature':>10} | {'naive MC (S=10^5)':>17}")
for x in test_points:
    exact = log_marginal_exact(x, w_true, b_true, sigma_true)
    quad = log_marginal_quadrature(x, w_true, b_true, sigma_true)
    mc = log_marginal_naive_mc(x, w_true, b_true, sigma_true, 100_000, rng)
    print(f"{np.array2string(x, precision=1):>14} | {exact:11.5f} | {quad:10.5f} | {mc:17.5f}")
    np.testing.assert_allclose(quad, exact, rtol=1e-8)
    np.testing.assert_allclose(mc, exact, atol=0.05)

# %% [markdown]
# The closed form and the quadrature agree to 8 digits; naive Monte Carlo agrees to about 2 decimals
# with $10^5$ samples. Here is the density $p(x)$ these numbers come from:

# %%
grid = np.linspace(-5, 6, 120), np.linspace(-4, 3.5, 100)
X1, X2 = np.meshgrid(*grid)
covariance_true = np.outer(w_true, w_true) + sigma_true**2 * np.eye(2)
density = stats.multivariate_normal(b_true, covariance_true).pdf(np.dstack([X1, X2]))
fig, ax = plt.subplots()
ax.contourf(X1, X2, density, levels=20, cmap="Blues")
ax.plot(*np.stack([b_true + t * w_true for t in (-2.5, 2.5)]).T, "k--", label="the line w z + b")
ax.set(xlabel="$x_1$", ylabel="$x_2$", title="the marginal $p(x)$", aspect="equal")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Ancestral sampling: first $z \sim p(z)$, then $x \sim p(x \mid z)$
#
# A generative model makes new data by following its arrows: draw the cause, then the effect.
# > **Erratum (seed slides).** The slides write "$z \sim p(x)$" at this step: that is a typo, the latent is drawn
# > from the **prior** $p(z)$.
#
# **Exercise 1.3** — draw `n` pairs $(z_i, x_i)$ from the model, using the generator `rng`
# (`rng.standard_normal`). Return `z` of shape `(n,)` and `x` of shape `(n, D)`.

# %%
# EXERCISE: ancestral sampling
def ancestral_sample(n: int, w: np.ndarray, b: np.ndarray, sigma: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw z_i ~ N(0, 1), then x_i ~ N(w z_i + b, σ² I); returns z: (n,), x: (n, D)."""
    # BEGIN SOLUTION
    z = rng.standard_normal(n)
    x = z[:, None] * w[None, :] + b[None, :] + sigma * rng.standard_normal((n, len(b)))
    return z, x
    # END SOLUTION


# %%
check_ancestral_sample(ancestral_sample)

# %%
z_data, x_data = ancestral_sample(500, w_true, b_true, sigma_true, rng)
fig, ax = plt.subplots()
points = ax.scatter(x_data[:, 0], x_data[:, 1], c=z_data, cmap="coolwarm", s=10)
fig.colorbar(points, label="the latent z that produced each x")
ax.set(xlabel="$x_1$", ylabel="$x_2$", title="500 ancestral samples", aspect="equal")
plt.show()

# %% [markdown]
# ## 4. Maximum likelihood: $\log p(X) = \sum_i \log p(x^{(i)})$
#
# Pretend we only see `x_data` and must find $\theta = (w, b, \sigma)$. Because $p(x)$ is a Gaussian in
# closed form, we can maximise the exact log-likelihood by gradient ascent with autograd.

# %%
x_tensor = torch.tensor(x_data, dtype=torch.float64)


def dataset_log_likelihood(w: torch.Tensor, b: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log p(X) = Σ_i log N(x_i; b, w wᵀ + σ² I), differentiable in the parameters."""
    covariance = torch.outer(w, w) + torch.exp(2 * log_sigma) * torch.eye(2, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, covariance).log_prob(x_tensor).sum()


torch.manual_seed(0)
w_fit = torch.randn(2, dtype=torch.float64, requires_grad=True)
b_fit = torch.zeros(2, dtype=torch.float64, requires_grad=True)
log_sigma_fit = torch.zeros((), dtype=torch.float64, requires_grad=True)
optimizer = torch.optim.Adam([w_fit, b_fit, log_sigma_fit], lr=0.05)
history = []
for _ in range(600):
    optimizer.zero_grad()
    loss = -dataset_log_likelihood(w_fit, b_fit, log_sigma_fit)
    loss.backward()
    optimizer.step()
    history.append(-loss.item())

# %% [markdown]
# Probabilistic PCA also has a closed-form maximum-likelihood solution (Tipping & Bishop, 1999):
# $b$ is the data mean, $w = u_1 \sqrt{\lambda_1 - \sigma^2}$ and $\sigma^2 = \lambda_2$, with $\lambda_1 \ge \lambda_2$
# the eigenvalues of the data covariance and $u_1$ the first eigenvector. Gradient ascent must reach it
# (up to the sign of $w$: $z$ and $-z$ explain the data equally well).

# %%
b_closed = x_data.mean(axis=0)
eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x_data.T, bias=True))
sigma2_closed = eigenvalues[0]
w_closed = eigenvectors[:, 1] * np.sqrt(eigenvalues[1] - sigma2_closed)
w_closed *= np.sign(w_closed @ w_fit.detach().numpy())
best = dataset_log_likelihood(torch.tensor(w_closed), torch.tensor(b_closed),
                              torch.tensor(0.5 * np.log(sigma2_closed))).item()
print(f"log p(X): gradient ascent {history[-1]:.4f}, closed form {best:.4f}")
print(f"w: fitted {w_fit.detach().numpy().round(3)}, closed form {w_closed.round(3)}, true {w_true}")
np.testing.assert_allclose(history[-1], best, rtol=1e-6)
np.testing.assert_allclose(w_fit.detach().numpy(), w_closed, atol=1e-2)

fig, ax = plt.subplots()
ax.plot(history)
ax.axhline(best, color="k", ls="--", label="closed-form maximum")
ax.set(xlabel="Adam step", ylabel="log p(X)", ylim=(best - 300, best + 20),
       title="maximum likelihood by gradient ascent")
ax.legend()
plt.show()

# %% [markdown]
# ### Dimensionality reduction
#
# The fitted model explains 2-D data by a 1-D latent. The best single number for each point is the
# posterior mean $\mathbb E[z \mid x] = \frac{w^\top (x - b)}{w^\top w + \sigma^2}$ (lesson 2 derives
# $p(z \mid x)$); mapping it back through $w z + b$ projects every point onto the learned line.

# %%
w_hat, b_hat = w_fit.detach().numpy(), b_fit.detach().numpy()
sigma2_hat = float(torch.exp(2 * log_sigma_fit.detach()))
z_mean = (x_data - b_hat) @ w_hat / (w_hat @ w_hat + sigma2_hat)
x_projected = z_mean[:, None] * w_hat + b_hat
fig, ax = plt.subplots()
ax.scatter(*x_data.T, s=8, alpha=0.5, label="data (2 numbers each)")
ax.scatter(*x_projected.T, s=8, color="C3", label="w E[z|x] + b (1 number each)")
ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title="2-D data through a 1-D latent")
ax.legend()
plt.show()
print(f"correlation between E[z|x] and the true z: {abs(np.corrcoef(z_mean, z_data)[0, 1]):.4f}")

# %% [markdown]
# ## 5. The cost of naive Monte Carlo as the latent dimension grows
#
# For one latent dimension, prior samples land near the posterior often enough. In $d$ dimensions the
# region of $z$ that explains a given $x$ is a tiny fraction of the prior's mass, and almost every sample
# contributes nothing. We measure the relative error of the naive estimate of $\log p(x)$ with a fixed
# budget of $S = 1000$ prior samples, on models with $D = 20$ observed and $d$ latent dimensions.

# %%
def naive_mc_relative_error(latent_dim: int, n_samples: int, n_repeats: int,
                            rng: np.random.Generator) -> float:
    """Mean |estimate − exact| / |exact| of the prior-sampling estimate of log p(x), x drawn from the model."""
    observed_dim, sigma = 20, 0.5
    w = rng.standard_normal((observed_dim, latent_dim)) / np.sqrt(latent_dim)
    b = np.zeros(observed_dim)
    x = w @ rng.standard_normal(latent_dim) + sigma * rng.standard_normal(observed_dim)
    exact = stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(observed_dim)).logpdf(x)
    errors = []
    for _ in range(n_repeats):
        z = rng.standard_normal((n_samples, latent_dim))
        log_likelihood = stats.norm.logpdf(x[None, :], loc=z @ w.T + b, scale=sigma).sum(axis=1)
        estimate = np.logaddexp.reduce(log_likelihood) - np.log(n_samples)
        errors.append(abs(estimate - exact) / abs(exact))
    return float(np.mean(errors))


latent_dims = [1, 2, 4, 8, 16]
relative_errors = [np.mean([naive_mc_relative_error(d, 1000, 10, rng) for _ in range(5)]) for d in latent_dims]
fig, ax = plt.subplots()
ax.semilogy(latent_dims, relative_errors, "o-")
ax.set(xlabel="latent dimension d", ylabel="relative error of log p(x)", xscale="log",
       title="naive Monte Carlo, S = 1000 prior samples")
ax.set_xticks(latent_dims, [str(d) for d in latent_dims])
plt.show()
for d, error in zip(latent_dims, relative_errors, strict=True):
    print(f"d = {d:2d}: relative error {error:.2%}")
assert relative_errors[-1] > 5 * relative_errors[0], "the error should grow with the latent dimension"

# %% [markdown]
# **Question** — the naive estimator is unbiased for $p(x)$, yet its estimate of $\log p(x)$ is almost
# always too *low* when $d$ is large. Why? (Two reasons. The second needs Jensen's inequality, which lesson 3
# introduces: for a concave function such as $\log$ and a positive random number $Y$,
# $\mathbb E[\log Y] \le \log \mathbb E[Y]$.)
#
# <!-- BEGIN ANSWER -->
# Almost all prior samples fall where $p(x \mid z)$ is negligible; the rare samples that land near the
# posterior carry nearly all of the mass. With a finite $S$ we usually miss them, so the average is too
# small, and $\log$ of an average is also pulled down by Jensen's inequality ($\mathbb E[\log \hat p] \le
# \log \mathbb E[\hat p] = \log p(x)$). The fix is to sample $z$ where the posterior $p(z \mid x)$ puts its mass:
# that is inference, the subject of lesson 2.
# <!-- END ANSWER -->
#
# ## What you should take away
# - A latent variable model is a joint $p(x, z) = p(x \mid z) p(z)$; data are explained by marginalising $z$.
# - $\log p(X) = \sum_i \log p(x^{(i)})$ is what maximum likelihood maximises; it is tractable here only
#   because the model is linear-Gaussian.
# - Ancestral sampling generates data: $z \sim p(z)$, then $x \sim p(x \mid z)$.
# - Naive Monte Carlo from the prior degrades quickly as the latent dimension grows: we need $p(z \mid x)$.
