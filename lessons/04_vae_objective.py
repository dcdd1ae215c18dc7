# %% [markdown]
# # Lesson 4 — The VAE objective
#
# **Time estimate:** 35 minutes. **You will:** derive the closed-form KL term, meet the Gaussian and Bernoulli
# log-likelihoods, compare the reparametrization gradient with the score-function (REINFORCE) gradient,
# and train a tiny VAE whose encoder *amortises* inference over a whole dataset.
#
# A VAE learns a decoder $p_\theta(x \mid z)$ and an encoder $q_\phi(z \mid x)$ together, by maximising the ELBO of
# lesson 3 for every data point, with one network $q_\phi$ that outputs the variational parameters:
#
# $$\text{ELBO}(x) = \underbrace{\mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x \mid z)\big]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)}_{\text{regulariser}} .$$
#
# (Expand $\log p(x, z) = \log p(x \mid z) + \log p(z)$ in lesson 3's ELBO to get this form.)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal

from utils import seed_everything
from utils.checks.lesson04 import check_gaussian_kl, check_reparam_gradient
from utils.plotting import use_course_style

use_course_style()
rng = seed_everything(0)

# %% [markdown]
# ## 1. The KL term in closed form
#
# With $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ and $p = \mathcal N(0, I)$ both factorise over the $d$ latent
# dimensions, so the KL is a sum of 1-D terms, each $\mathbb E_q[\log q(z) - \log p(z)]$ with
# $\log \mathcal N(z; m, s^2) = -\tfrac12 \log 2\pi s^2 - (z - m)^2 / 2s^2$.
#
# **Exercise 4.1** — derive the closed form of
# $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1)\big)$ in one dimension (you need only
# $\mathbb E_q[(z-\mu)^2]$ and $\mathbb E_q[z^2]$), sum it over the $d$ dimensions, and
# implement it for a batch: `mu` and `logvar` ($\log \sigma^2$, the quantity an encoder outputs) of shape `(B, d)`,
# result `(B,)`. The check compares with `torch.distributions.kl_divergence` and names the usual slips.

# %% [markdown]
# **Your derivation** of the one-dimensional KL (here or on paper), before you implement it:
#
# <!-- BEGIN ANSWER -->
# $$\mathrm{KL} = \mathbb E_q\!\left[\log q(z) - \log p(z)\right]
#   = \mathbb E_q\!\left[-\tfrac12 \log 2\pi\sigma^2 - \tfrac{(z-\mu)^2}{2\sigma^2}
#     + \tfrac12 \log 2\pi + \tfrac{z^2}{2}\right]
#   = -\tfrac12 \log \sigma^2 - \tfrac12 + \tfrac12(\sigma^2 + \mu^2),$$
#
# using $\mathbb E_q[(z-\mu)^2] = \sigma^2$ and $\mathbb E_q[z^2] = \sigma^2 + \mu^2$. Summing over dimensions:
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2) \,\|\, \mathcal N(0, I)\big)
#   = -\tfrac12 \sum_{j=1}^{d} \left(1 + \log \sigma_j^2 - \mu_j^2 - \sigma_j^2\right).$$
# <!-- END ANSWER -->

# %%
# EXERCISE: the closed-form Gaussian KL
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) ‖ N(0, I)) per row: (B, d) → (B,)."""
    # BEGIN SOLUTION
    return -0.5 * torch.sum(1 + logvar - mu**2 - torch.exp(logvar), dim=-1)
    # END SOLUTION


# %%
check_gaussian_kl(gaussian_kl)

# %% [markdown]
# The check compared your function with `torch.distributions.kl_divergence`. A Monte Carlo estimate
# $\frac1S\sum_s [\log q(z_s) - \log p(z_s)]$ must agree too, and its error shrinks like $1/\sqrt S$:

# %%
mu, logvar = torch.tensor([[0.8, -0.3, 1.5]]), torch.tensor([[-1.0, 0.4, -0.2]])
q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
exact_kl = gaussian_kl(mu, logvar).item()
sample_sizes = [10, 100, 1_000, 10_000, 100_000]
mc_errors = []
for S in sample_sizes:
    z = q.sample((S,))
    mc_errors.append(abs((q.log_prob(z) - p.log_prob(z)).sum(-1).mean().item() - exact_kl))
print(f"closed form: {exact_kl:.4f}; Monte Carlo with 10^5 samples is off by {mc_errors[-1]:.4f}")
assert mc_errors[-1] < 0.02
fig, ax = plt.subplots()
ax.loglog(sample_sizes, mc_errors, "o-", label="|MC − closed form|")
ax.loglog(sample_sizes, 2 / np.sqrt(sample_sizes), "k--", label="∝ 1/√S")
ax.set(xlabel="samples S", ylabel="absolute error (nats)", title="Monte Carlo KL converges to the closed form")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. The reconstruction term: Gaussian or Bernoulli likelihood
#
# For real-valued data, a Gaussian decoder $p_\theta(x \mid z) = \mathcal N(x;\ \mu_\theta(z),\ \sigma^2 I_D)$ gives
#
# $$\log p_\theta(x \mid z) = -\frac{\lVert x - \mu_\theta(z)\rVert^2}{2\sigma^2} - \frac D2 \log(2\pi\sigma^2),$$
#
# a scaled squared error plus a constant: with a fixed $\sigma$, $\sigma$ sets how much reconstruction weighs
# against the KL. In code, for a batch (`x` and `mean` of shape `(B, D)`), checked against `torch.distributions`:

# %%
def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; mean, sigma² I) per row: (B, D) → (B,)."""
    dim = x.shape[-1]
    return -((x - mean) ** 2).sum(-1) / (2 * sigma**2) - 0.5 * dim * np.log(2 * np.pi * sigma**2)


x_check, mean_check = torch.randn(5, 7), torch.randn(5, 7)
torch.testing.assert_close(gaussian_log_likelihood(x_check, mean_check, 0.3),
                           Normal(mean_check, 0.3).log_prob(x_check).sum(-1))

# %% [markdown]
# For images whose pixels are (nearly) 0 or 1 — like lesson 7's topology designs — a **Bernoulli**
# decoder fits better: the decoder outputs a probability $\pi_\theta(z)_i$ per pixel and
# $\log p_\theta(x \mid z) = \sum_i x_i \log \pi_i + (1 - x_i)\log(1 - \pi_i)$, which is minus the binary
# cross-entropy. The formula also accepts grey values $x_i \in [0, 1]$ (as a "soft" target), but then it is no
# longer a log-likelihood: its minimum is the target's entropy, not 0 (lesson 7 measures this). We check the
# identity against `torch.distributions.Bernoulli` on binary pixels:

# %%
logits = torch.randn(4, 10)
pixels = torch.bernoulli(torch.full((4, 10), 0.4))
bce = F.binary_cross_entropy_with_logits(logits, pixels, reduction="none").sum(-1)
bernoulli_log_likelihood = Bernoulli(logits=logits).log_prob(pixels).sum(-1)
torch.testing.assert_close(-bce, bernoulli_log_likelihood)
print("−BCE equals the Bernoulli log-likelihood:", (-bce).numpy().round(3))

# %% [markdown]
# **Question** — a Gaussian decoder with a small fixed $\sigma$ on near-binary images: what do its
# reconstructions look like, and what happens to the balance between the two ELBO terms if $\sigma$ is very
# large?
#
# <!-- BEGIN ANSWER -->
# The Gaussian decoder's mean minimises squared error, so where it is unsure it predicts the *average*
# (grey) rather than committing to 0 or 1, and it puts density outside [0, 1]. With a large $\sigma$ the
# reconstruction term $\lVert x-\mu\rVert^2 / 2\sigma^2$ becomes small compared to the KL, so the encoder is pushed
# towards the prior and the reconstructions become blurry averages: it is as if the KL term were multiplied by a
# weight growing as $\sigma^2$ (lesson 7 makes that weight explicit and calls it $\beta$).
# The Bernoulli likelihood has no such free scale and penalises confident mistakes strongly.
# <!-- END ANSWER -->

# %% [markdown]
# ## 3. The reparametrization trick against the score-function estimator
#
# Lesson 3 introduced the reparametrization trick to differentiate the ELBO through its samples. It is not the
# only way. We need $\nabla_\phi \mathbb E_{q_\phi(z)}[f(z)]$, and there are two unbiased estimators:
#
# * **score function (REINFORCE)**: $\mathbb E_q[f(z)\, \nabla_\phi \log q_\phi(z)]$ — needs only samples and $\log q$;
# * **reparametrization**: write $z = \mu + \sigma \varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$, then
#   $\nabla_\phi \mathbb E_\varepsilon[f(\mu + \sigma\varepsilon)]
#   = \mathbb E_\varepsilon[\nabla_\phi f(\mu + \sigma \varepsilon)]$
#   — needs $f$ to be differentiable.
#
# **Exercise 4.2** — return the reparametrization estimate of the gradient of $\mathbb E_q[f(z)]$ with
# respect to `mu` and `log_sigma` (scalar tensors with `requires_grad=True`), from `n_samples` draws of
# $\varepsilon$ made with `generator`. Use `torch.autograd.grad`.

# %%
# EXERCISE: the reparametrization gradient
def reparam_gradient(f, mu: torch.Tensor, log_sigma: torch.Tensor, n_samples: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate (d/dmu, d/dlog_sigma) of E_{z ~ N(mu, exp(log_sigma)²)}[f(z)]."""
    # BEGIN SOLUTION
    epsilon = torch.randn(n_samples, generator=generator, dtype=mu.dtype)
    z = mu + torch.exp(log_sigma) * epsilon
    grad_mu, grad_log_sigma = torch.autograd.grad(f(z).mean(), (mu, log_sigma))
    return grad_mu, grad_log_sigma
    # END SOLUTION


# %%
check_reparam_gradient(reparam_gradient)


# %% [markdown]
# Now the comparison, for $f(z) = (z - 2)^2$ with $q = \mathcal N(0.5, 1)$ (exact gradient with respect to $\mu$:
# $2(\mu - 2) = -3$). We repeat each estimator 300 times for several sample sizes and measure its variance.

# %%
def score_function_gradient(f, mu: torch.Tensor, log_sigma: torch.Tensor, n_samples: int,
                            generator: torch.Generator) -> torch.Tensor:
    """REINFORCE estimate of d/dmu E_q[f(z)] = E_q[f(z) · d/dmu log q(z)]."""
    sigma = torch.exp(log_sigma)
    z = (mu + sigma * torch.randn(n_samples, generator=generator, dtype=mu.dtype)).detach()
    log_q = Normal(mu, sigma).log_prob(z)
    return torch.autograd.grad((f(z) * log_q).mean(), mu)[0]


def f(z: torch.Tensor) -> torch.Tensor:
    return (z - 2.0) ** 2


mu0 = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
log_sigma0 = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
generator = torch.Generator().manual_seed(0)
sizes = [1, 4, 16, 64, 256]
variances = {"reparametrization": [], "score function": []}
for n in sizes:
    reparam = torch.stack([reparam_gradient(f, mu0, log_sigma0, n, generator)[0] for _ in range(300)])
    score = torch.stack([score_function_gradient(f, mu0, log_sigma0, n, generator) for _ in range(300)])
    variances["reparametrization"].append(reparam.var().item())
    variances["score function"].append(score.var().item())
    print(f"S = {n:3d}: mean reparam {reparam.mean():+.3f} (var {reparam.var():7.3f}), "
          f"mean score {score.mean():+.3f} (var {score.var():7.3f}); exact −3")
fig, ax = plt.subplots()
for name, values in variances.items():
    ax.loglog(sizes, values, "o-", label=name)
ax.set(xlabel="samples per estimate", ylabel="variance of the gradient estimate",
       title="reparametrization has far lower variance")
ax.legend()
plt.show()
assert all(r < s for r, s in zip(variances["reparametrization"], variances["score function"], strict=True))

# %% [markdown]
# Both are unbiased (their means approach −3), but for the same number of samples the score-function
# estimate is much noisier: it only uses the *value* of $f$, while the reparametrization uses its *slope*.
#
# ## 4. Amortized inference: a tiny VAE
#
# Lesson 3 optimised one $q$ per data point. A VAE trains an **encoder network** that maps any $x$ to its
# $(\mu, \log\sigma^2)$ in one pass — inference is *amortised* over the dataset. We train a small MLP VAE on 2-D
# points along a noisy spiral (a 1-D structure in 2-D) with a 2-D latent and a Gaussian decoder with fixed
# $\sigma = 0.1$, using your `gaussian_kl` and `gaussian_log_likelihood`.

# %%
t = rng.uniform(0.5, 3.0 * np.pi, 2000)
spiral = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5.0 + 0.05 * rng.standard_normal((2000, 2))
x_train = torch.tensor(spiral, dtype=torch.float32)


class TinyVAE(nn.Module):
    """MLP encoder 2 → (μ, log σ²) ∈ R^2 × R^2 and MLP decoder R^2 → mean in R^2."""

    def __init__(self, latent_dim: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder(z), mu, logvar


torch.manual_seed(0)
tiny_vae = TinyVAE()
optimizer = torch.optim.Adam(tiny_vae.parameters(), lr=3e-3)
curves = {"−ELBO": [], "reconstruction (−log p(x|z))": [], "KL": []}
for _ in range(1500):
    batch = x_train[torch.randint(0, len(x_train), (256,))]
    mean, mu, logvar = tiny_vae(batch)
    reconstruction = -gaussian_log_likelihood(batch, mean, 0.1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    loss = reconstruction + kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name, value in zip(curves, (loss, reconstruction, kl), strict=True):
        curves[name].append(value.item())

with torch.no_grad():
    samples = tiny_vae.decoder(torch.randn(2000, 2)).numpy()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for name, values in curves.items():
    axes[0].plot(np.convolve(values, np.ones(25) / 25, mode="valid"), label=name)
axes[0].set(xlabel="step", ylabel="nats per point", title="loss = reconstruction + KL", ylim=(-5, 20))
axes[0].legend()
axes[1].scatter(*spiral.T, s=3, alpha=0.4, label="data")
axes[1].scatter(*samples.T, s=3, alpha=0.4, color="C3", label="decoded z ~ p(z)")
axes[1].set(aspect="equal", title="samples from the prior")
axes[1].legend()
plt.tight_layout()
plt.show()
print(f"final −ELBO {np.mean(curves['−ELBO'][-100:]):.2f} nats per point "
      f"(reconstruction {np.mean(curves['reconstruction (−log p(x|z))'][-100:]):.2f}, "
      f"KL {np.mean(curves['KL'][-100:]):.2f})")
assert np.mean(curves["−ELBO"][-100:]) < np.mean(curves["−ELBO"][:100]) - 5, "training must lower −ELBO"
# −log N(x; m, σ²I) ≥ (D/2)·log(2πσ²): a 2-D Gaussian density with σ = 0.1 never exceeds 1/(2πσ²) ≈ 15.9.
reconstruction_floor = np.log(2 * np.pi * 0.1**2)
print(f"lowest possible reconstruction term (x exactly at the decoder's mean): {reconstruction_floor:.2f} nats")
assert min(curves["reconstruction (−log p(x|z))"]) > reconstruction_floor

# %% [markdown]
# **Why a "reconstruction" in nats can be negative.** The reconstruction term is $-\log p_\theta(x \mid z)$, minus
# the log of a *density*, not of a probability. A density can exceed 1: the 2-D Gaussian with $\sigma = 0.1$ peaks at
# $1 / (2\pi\sigma^2) \approx 15.9$, so $-\log p$ goes down to $\log(2\pi\sigma^2) \approx -2.77$ nats (the floor
# printed above) and below zero whenever the decoder's mean is close to $x$. Likewise $-\text{ELBO}$ bounds
# $-\log p(x)$ of a density and may be negative; only differences between models on the same data and in the
# same units mean anything.
# (A discrete likelihood such as the Bernoulli of lesson 7, on binary pixels, is a probability: there
# $-\log p \ge 0$.)
#
# The decoded prior samples follow the spiral, but some fall *between* its arms: regions of the latent
# space that the prior covers and that no data point's encoding uses decode to points off the data. Keep this
# in mind when judging lesson 7's prior samples.
#
# ## What you should take away
# - VAE loss per data point: $-\text{ELBO} = -\mathbb E_q[\log p(x\mid z)] + \mathrm{KL}(q(z\mid x)\,\|\,p(z))$,
#   minimised. (Erratum: the seed slides call the ELBO summed over the data a "loss" to be *maximised*; a loss is
#   minimised, and the VAE's loss is $-\text{ELBO}$.)
# - $\mathrm{KL}(\mathcal N(\mu,\mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0,I))
#   = -\tfrac12\sum(1+\log\sigma^2-\mu^2-\sigma^2)$, checked
#   against `torch.distributions` and Monte Carlo.
# - Gaussian likelihood = scaled squared error + constant; Bernoulli likelihood = −binary cross-entropy,
#   the better fit for near-binary images.
# - The reparametrization trick gives low-variance gradients; the score-function estimator is unbiased
#   but far noisier.
