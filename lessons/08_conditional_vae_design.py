# %% [markdown]
# # Lesson 8 — A design for a given problem: a conditional VAE judged against SIMP
#
# **Time estimate:** about 1 h 30 min: 30–40 minutes for the exercises, about 50 for reading the twelve sections
# and their tables; the notebook itself runs in 2.3–4.0 min on 2 CPU cores (trained: idle to beside three busy
# processes, as on a shared JupyterHub), about 1.0 min with `QUICK = True`.
# **You will:** derive the conditional VAE and check its bound by numbers; encode a cantilever problem for a
# network; see a conditional VAE generate poorly for its condition, and fix it; then ask of the generated designs
# what an engineer asks of a method — at the same volume as SIMP's, at the same cost, and how bad the worst tenth
# is — beside a deterministic baseline, SIMP itself, and problems outside the training ranges.
#
# **If you have only 20 minutes:** do exercise 8.1 (section 1), read sections 3 and 4 (why a CVAE with the standard
# prior ignores its condition, exercise 8.2's swapped-condition test, and the learned prior that fixes it), then do
# exercise 8.3 (section 6) and read section 11 (the test split judged at equal volume and equal compute). Run every
# cell in order all the same (later cells need the earlier ones); the other sections can wait for a second sitting.
#
# **Short of time, or on a busy server?** Set `QUICK = True` in the first code cell. The notebook then trains
# nothing: the shipped models of section 6 (`data/cvae_topology.pt`, checked against its recorded SHA-256) stand in
# for the three small models that sections 3–5 would train, and their rows say "shipped". Every exercise and every
# later cell runs the same; what you lose is seeing one-minute models trained with your own KL, and the bounds
# checked on them at the end. Your instructor may have made `QUICK` the default on your server (the environment
# variable `VAE_COURSE_QUICK=1`); the first code cell prints which path you are on.
#
# Lesson 7's VAE draws designs, but not *for* anything: a prior sample is judged under the problem of its nearest
# training design. An engineer asks "a structure for *this* load and *this* volume fraction, now". That is a
# **conditional** generative model $p(x \mid c)$, with $c$ the problem.
#
# **How we judge a design for problem $c$** (adapted from TopoDiff, Mazé & Ahmed 2023; section 8 lists the
# differences): under the problem's own load, against the SIMP design of the *same* problem (lesson 6's solver,
# thresholded at 0.5), by one judge, `utils.judging.Judge`.
#
# | metric | definition | unit |
# | --- | --- | --- |
# | CE | $C / C_\text{SIMP} - 1$, **signed** (+: less stiff), design thresholded at **SIMP's volume** | fraction |
# | ΔV | $\text{VF} / \text{VF}_\text{SIMP} - 1$, the design thresholded at 0.5: its own volume | fraction |
# | VFE (target) | $\lvert \text{VF} / \text{VF}_\text{target} - 1 \rvert$, that volume against the target | fraction |
# | floating material | share of designs with more than one 8-connected solid piece | fraction of designs |
# | load disrespect | share of designs void at every element touching the load's node | fraction of designs |
#
# **Equal volume.** More material always lowers compliance, so a CE computed at the design's own volume rewards
# a heavy design. The judge thresholds each design at the volume of the thresholded SIMP design instead
# (`utils.metrics.threshold_at_volume`: the densest pixels, as many as SIMP's design has), so every CE below
# compares two structures of the same weight; rows that threshold at 0.5 say so. **Distributions.** A median
# hides the tail: every table gives the mean, median and 90th percentile of the signed CE and the share of
# designs more than 10 % less stiff than SIMP. **Selection.** Every choice this notebook makes is made on the
# validation split, and the test split is read once, in section 11. Two choices made earlier, when the shipped
# models were built, were not: the shipped decoder's refinement stage (section 7) and the bounds asserted at the
# end were set from test-split figures; each place says so.
#
# **Void stiffness.** Our compliances give void elements $E_\text{min} = 10^{-9}$ (lessons 6–7). TopoDiff's
# evaluation uses $10^{-3}$, which props up broken designs: a load that reaches the supports only through void
# costs a compliance $10^{6}$ times smaller there. Every figure below uses $10^{-9}$ unless it says otherwise.

# %%
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from studies.cvae_study import (
    MAKE_DATA_SECONDS,
    RULE,
    VERIFIED_AT,
    break_even_designs,
    own_volume_rule,
    run_cvae_study,
    simp_seconds,
)
from studies.harness import LABELS, Stopwatch, StudyProblems
from utils import get_device, seed_everything
from utils.checks.lesson08 import check_choose_best_of_k, check_gaussian_kl_between, check_swap_conditions
from utils.cvae import (
    ConditionalVAE,
    condition_vector,
    load_models,
    problem_conditions,
    train_conditional,
)
from utils.data import DesignBatches, load_topology_dataset
from utils.design_explorer import draw_design_explorer
from utils.elbo_terms import bernoulli_log_likelihood
from utils.generation import shortcut_test, smoothed, swapped_designs
from utils.judging import Judge, inside_training_ranges, topodiff_summary
from utils.metrics import floating_material, threshold
from utils.plotting import (
    BROKEN_RATIO,
    draw_problem,
    plot_designs,
    plot_error_distributions,
    show_design,
    use_course_style,
)
from utils.settings import (
    CVAE_CHECKPOINT_PATH,
    LESSON8_EPOCHS,
    LESSON8_WIDTH,
    NELX,
    NELY,
    OOD_MANIFEST_FILE,
    TOPODIFF_E_MIN,
    course_environment_flag,
    course_environment_int,
)
from utils.tables import JUDGE_COLUMNS, TOPODIFF_COLUMNS, format_table, in_topodiff_columns, table_row
from utils.topopt import cantilever, optimize

# The switch: False trains this notebook's own small models (sections 3–5); True loads the shipped ones instead.
# The times of both paths are at the top of the lesson. Write QUICK = True to take the quick path.
QUICK = course_environment_flag("QUICK")

use_course_style()
seed_everything(0)
device = get_device()
OWN = "shipped" if QUICK else "notebook"  # the name this notebook's models go by in its tables
print(f"computing on {device}; {'QUICK: the shipped models, no training' if QUICK else 'training the notebook models'}")
notebook_start = time.perf_counter()

# %% [markdown]
# ## 1. The conditional VAE
#
# Everything of lessons 3–4 carries over with $c$ written beside every distribution. The model:
# a prior over the latent **given the problem**, $p(z \mid c)$, and a decoder $p(x \mid z, c)$, so that
# $p(x \mid c) = \int p(x \mid z, c)\, p(z \mid c)\, dz$. For any distribution $q(z \mid x, c)$ (our encoder, which
# sees the design *and* its problem), lesson 3's argument, line by line with $c$ added:
#
# $$\log p(x \mid c) = \underbrace{\mathbb E_{q}\big[\log p(x \mid z, c)\big]
#   - \mathrm{KL}\big(q(z \mid x, c)\,\|\,p(z \mid c)\big)}_{\text{conditional ELBO}}
#   \; + \; \mathrm{KL}\big(q(z \mid x, c)\,\|\,p(z \mid x, c)\big),$$
#
# so the conditional ELBO is a lower bound on $\log p(x \mid c)$, tight when $q$ is the exact posterior
# $p(z \mid x, c)$. Two choices of prior:
# - $p(z \mid c) = \mathcal N(0, I)$, whatever the problem: the **naive CVAE**; the KL is lesson 4's formula.
# - $p(z \mid c) = \mathcal N(\mu_p(c), \operatorname{diag}\sigma_p^2(c))$, a small network of $c$ (Sohn et al. 2015,
#   the "prior network"): the **learned prior**. The KL is then between two Gaussians, and you derive it.
#
# **Exercise 8.1** — the KL between two diagonal Gaussians, $\mathrm{KL}\big(\mathcal N(\mu_q, \sigma_q^2)\,\|\,
# \mathcal N(\mu_p, \sigma_p^2)\big)$, summed over the latent dimensions (the last axis), one value per row.
# Derive it as lesson 4 did, from $\mathbb E_q[\log q - \log p]$ with $\mathbb E_q[(z - \mu_p)^2] = \sigma_q^2 +
# (\mu_q - \mu_p)^2$. Inputs are $\mu$ and $\log\sigma^2$ of each.

# %%
# EXERCISE: the KL between two diagonal Gaussians
def gaussian_kl_between(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                        logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, exp(logvar_q)) ‖ N(mu_p, exp(logvar_p))) summed over the last axis: (B, d) each → (B,)."""
    # BEGIN SOLUTION
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)
    # END SOLUTION


# %%
check_gaussian_kl_between(gaussian_kl_between)

# %% [markdown]
# ### The conditional ELBO, checked by numbers
#
# On a linear-Gaussian toy every term is exact. A scalar problem $c$; $z \in \mathbb R^2$ with the conditional
# prior $p(z \mid c) = \mathcal N(a c, \operatorname{diag} s^2)$; $x \in \mathbb R^3$ with
# $p(x \mid z, c) = \mathcal N(W z + b c, \sigma^2 I)$. Then
# $p(x \mid c) = \mathcal N\big((W a + b) c,\; W \operatorname{diag}(s^2) W^\top + \sigma^2 I\big)$ and the posterior
# $p(z \mid x, c)$ is Gaussian with precision $\operatorname{diag}(s^{-2}) + W^\top W / \sigma^2$. For a diagonal
# Gaussian $q = \mathcal N(m, \operatorname{diag} v)$ the expected log-likelihood has a closed form,
# $\mathbb E_q \log p(x \mid z, c) = \log \mathcal N(x; W m + b c, \sigma^2 I) -
# \operatorname{tr}(W \operatorname{diag}(v) W^\top) / (2\sigma^2)$, so the conditional ELBO (with your KL) can be set
# against $\log p(x \mid c) - \mathrm{KL}(q \,\|\, p(z \mid x, c))$, computed by `torch.distributions` alone, and
# against a Monte Carlo average of
# $\log p(x \mid z, c) + \log p(z \mid c) - \log q(z \mid x, c)$ over $z \sim q$.

# %%
toy = torch.Generator().manual_seed(8)
a, s2 = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.8, 1.5], dtype=torch.float64)
W = torch.randn(3, 2, generator=toy, dtype=torch.float64)
b, noise_var = torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64), 0.4


def toy_log_evidence(x: torch.Tensor, c: float) -> torch.Tensor:
    """log p(x | c), the exact marginal of the toy."""
    covariance = W @ torch.diag(s2) @ W.T + noise_var * torch.eye(3, dtype=torch.float64)
    return MultivariateNormal((W @ a + b) * c, covariance).log_prob(x)


def toy_posterior(x: torch.Tensor, c: float) -> MultivariateNormal:
    """p(z | x, c), exact."""
    covariance = torch.linalg.inv(torch.diag(1 / s2) + W.T @ W / noise_var)
    return MultivariateNormal(covariance @ (a * c / s2 + W.T @ (x - b * c) / noise_var), covariance)


def toy_elbo(x: torch.Tensor, c: float, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The conditional ELBO of q = N(m, diag v), in closed form, with the KL of exercise 8.1."""
    expected_log_likelihood = (Normal(W @ m + b * c, noise_var**0.5).log_prob(x).sum()
                               - torch.trace(W @ torch.diag(v) @ W.T) / (2 * noise_var))
    return expected_log_likelihood - gaussian_kl_between(m[None], v.log()[None], (a * c)[None], s2.log()[None])[0]


print(f"{'c':>5} {'ELBO':>10} {'log p(x|c) − KL(q‖post)':>25} {'Monte Carlo (±1 s.e.)':>24} {'log p(x|c)':>11}")
for c in (-1.0, 0.3, 2.0):
    x = (W @ a + b) * c + torch.randn(3, generator=toy, dtype=torch.float64)
    m, v = torch.randn(2, generator=toy, dtype=torch.float64), torch.rand(2, generator=toy, dtype=torch.float64) + 0.2
    q = Normal(m, v.sqrt())
    elbo = toy_elbo(x, c, m, v)
    identity = toy_log_evidence(x, c) - kl_divergence(MultivariateNormal(m, torch.diag(v)), toy_posterior(x, c))
    z = q.sample((200_000,))
    terms = (Normal(z @ W.T + b * c, noise_var**0.5).log_prob(x).sum(-1)
             + Normal(a * c, s2.sqrt()).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
    standard_error = terms.std() / len(terms) ** 0.5
    print(f"{c:>5} {elbo:>10.5f} {identity:>25.5f} {terms.mean():>15.5f} ± {standard_error:.5f} "
          f"{toy_log_evidence(x, c):>11.5f}")
    assert torch.isclose(elbo, identity, rtol=0, atol=1e-10)
    assert abs(terms.mean() - elbo) < 5 * standard_error
    assert elbo < toy_log_evidence(x, c)

# %% [markdown]
# The three columns agree: the closed form with your KL equals
# $\log p(x \mid c) - \mathrm{KL}(q\,\|\,p(z \mid x, c))$ to ten decimals, and the Monte Carlo average of the
# definition falls within five standard errors of it. The bound sits below $\log p(x \mid c)$ by exactly the KL to
# the posterior. Is it tight at the posterior? Our encoder's $q$ is a *diagonal* Gaussian, and the toy's posterior
# is not diagonal, so the best $q$ of our family — the posterior's mean, variances $1/\Lambda_{jj}$ from its
# precision $\Lambda$, which minimises $\mathrm{KL}(q\,\|\,p(z \mid x, c))$ over diagonal Gaussians — still leaves
# a gap:

# %%
x, c = (W @ a + b) * 0.3, 0.3
posterior = toy_posterior(x, c)
best_diagonal = 1 / torch.diagonal(torch.linalg.inv(posterior.covariance_matrix))
remaining = toy_log_evidence(x, c) - toy_elbo(x, c, posterior.mean, best_diagonal)
print(f"ELBO gap at the best diagonal q: {remaining:.4f} nats (zero only for the full-covariance posterior)")
assert remaining > 1e-3

# %% [markdown]
# ## 2. Telling the network the problem
#
# Every problem of lesson 6's dataset is a 64×32 cantilever clamped on its left edge with one unit load on its
# right edge; three numbers set it: the volume fraction target (0.30–0.50), the load's height (0–32 elements from
# the top) and its angle (−150° to −30°). `condition_vector` turns them into the four numbers $c$ the networks see:
#
# - the volume fraction, mapped linearly so that the dataset's range becomes $[-1, 1]$; the load's height, likewise;
#   networks train best on inputs of order one;
# - the load's **line of action** as $(\cos 2\theta, \sin 2\theta)$. Why the doubled angle? Compliance $F^\top U =
#   F^\top K^{-1} F$ is quadratic in the load, so a load and its opposite ($\theta$ and $\theta + 180°$) have the
#   same compliance for every design, hence the same optimal design. The raw angle would tell the network two
#   problems apart that physics does not, and $(\cos\theta, \sin\theta)$ would too; the doubled angle gives both the
#   same $c$ (and, like any cosine–sine pair, is continuous where the angle wraps around).
#
# The claim is checked with the solver: SIMP for a load and for its opposite.

# %%
def simp_design(volfrac: float, load_y: float, angle_deg: float) -> np.ndarray:
    """Lesson 6's SIMP design (the dataset's settings) for one cantilever problem."""
    return optimize(cantilever(NELX, NELY, volfrac, load_y, angle_deg)).density


downwards, upwards = simp_design(0.4, 10.0, -70.0), simp_design(0.4, 10.0, 110.0)
print(f"largest density difference between the designs for θ = −70° and θ = 110°: "
      f"{np.abs(downwards - upwards).max():.1e}")
print("conditions:\n", condition_vector([0.4, 0.4], [10.0, 10.0], [-70.0, 110.0]).numpy().round(4))
assert np.abs(downwards - upwards).max() < 1e-6
assert torch.allclose(*condition_vector([0.4, 0.4], [10.0, 10.0], [-70.0, 110.0]), atol=1e-6)

# %% [markdown]
# **Where $c$ enters.** The encoder $q(z \mid x, c)$ is lesson 7's, with four more input channels: each number of
# $c$ spread over the image as a constant channel, so every filter of the first layer sees the problem beside the
# pixels. The decoder $p(x \mid z, c)$ is lesson 7's, with $c$ concatenated to $z$ before its first linear layer;
# from there on, every feature map can depend on the problem. (A richer choice feeds physical fields, such as a
# map of the load's position or a first finite-element strain-energy field; four numbers suffice for a family
# of problems that four numbers describe.) The learned prior is a network with two hidden layers (128 units, ReLU)
# $c \mapsto (\mu_p, \log\sigma_p^2)$.
# The shipped models of section 6 add one stage at the end of the decoder (`refined=True`), for a reason that
# section 7 shows; this notebook's own small models do without it.

# %%
data = load_topology_dataset()
train, validation, test = data.subset("train"), data.subset("validation"), data.subset("test")
validation_batches = DesignBatches(validation.density, batch_size=256, shuffle=False, device=device,
                                   conditions=problem_conditions(validation))
validation_conditions, test_conditions = problem_conditions(validation).to(device), problem_conditions(test).to(device)
# One judge per split: load cases and the finite-element model built once, SIMP's compliances and volumes read.
judges = {"validation": Judge(validation), "test": Judge(test)}
print(f"{len(train)} training designs, each with its condition, e.g. c = "
      f"{problem_conditions(train)[0].numpy().round(3)}")
print(ConditionalVAE(latent_dim=16, width=16, prior="learned"))

# %% [markdown]
# ## 3. The naive CVAE, and the latent shortcut
#
# First the obvious model: the prior stays $\mathcal N(0, I)$, the condition goes to the encoder and the decoder.
# It trains on the negative conditional ELBO exactly as lesson 7's VAE did (same warm-up, same optimiser); the loss
# uses your KL. The environment variable `VAE_COURSE_LESSON8_EPOCHS` sets the number
# of epochs (default 60, `LESSON8_EPOCHS` in `utils/settings.py`) and `VAE_COURSE_LESSON8_WIDTH` the width (default 16).
# With `QUICK = True` nothing is trained here: the shipped naive CVAE stands in (wider, trained longer, with the
# refinement stage of section 7), and so do the shipped learned-prior CVAE and baseline in sections 4 and 5.
#
# To generate a design for problem $c$ we decode $z$ at the prior's mean — here $z = 0$ — with $c$.

# %%
def conditional_loss(logits: torch.Tensor, x: torch.Tensor, posterior: tuple[torch.Tensor, torch.Tensor],
                     prior: tuple[torch.Tensor, torch.Tensor], beta: float = 1.0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(−conditional ELBO_β, reconstruction, KL(q(z|x,c) ‖ p(z|c))), each a batch mean of per-design sums (nats)."""
    reconstruction = -bernoulli_log_likelihood(logits, x).mean()
    kl = gaussian_kl_between(*posterior, *prior).mean()
    negative_elbo = reconstruction + beta * kl
    return negative_elbo, reconstruction, kl


EPOCHS = course_environment_int("LESSON8_EPOCHS", LESSON8_EPOCHS)
WIDTH, LATENT = course_environment_int("LESSON8_WIDTH", LESSON8_WIDTH), 16


def train_small(prior: str, latent_dim: int = LATENT) -> ConditionalVAE:
    """A width-16 conditional model trained for EPOCHS epochs from seed 0 (prior: "standard" or "learned";
    latent_dim=0: the deterministic baseline)."""
    seed_everything(0)
    train_batches = DesignBatches(train.density, batch_size=64, shuffle=True, seed=0, device=device,
                                  conditions=problem_conditions(train))
    model = ConditionalVAE(latent_dim, WIDTH, prior).to(device)
    start = time.perf_counter()
    history = train_conditional(model, train_batches, validation_batches, EPOCHS, beta=1.0, warmup_epochs=10,
                                lr=2e-3, loss_fn=conditional_loss)
    last = history.validation[-1]
    print(f"{prior if latent_dim else 'no latent'}: {EPOCHS} epochs in {time.perf_counter() - start:.0f} s; "
          f"validation reconstruction {last['reconstruction']:.1f} + KL {last['kl']:.1f} nats per design")
    return model.eval()


# QUICK: the shipped models (section 6) stand in for the three this notebook would train.
shipped_models = load_models(CVAE_CHECKPOINT_PATH, device)[0] if QUICK else {}
naive = shipped_models["naive"] if QUICK else train_small("standard")

# %%
def decoded_rows(model: ConditionalVAE, name: str, split: str = "validation") -> dict[str, dict[str, float]]:
    """The designs decoded at the prior's mean, each judged under its own problem: at equal volume and at 0.5."""
    designs = model.generate(problem_conditions(judges[split].problems).to(device))[0].cpu().numpy()
    return {name: table_row(judges[split](designs)),
            f"{name}, at 0.5": table_row(judges[split](designs, "at_0.5"))}


rows = {"SIMP itself (the reference)": table_row(judges["validation"](validation.density))}
rows.update(decoded_rows(naive, f"{OWN} naive CVAE, z = 0"))
print(f"{len(validation)} validation problems:")
print(format_table(rows, JUDGE_COLUMNS, ".1%"))
plot_designs(naive.generate(validation_conditions[:6])[0].cpu().numpy(),
             [f"validation problem {i}" for i in range(6)], suptitle="naive CVAE, decoded at z = 0")
plot_designs(validation.density[:6], [f"SIMP, validation problem {i}" for i in range(6)]);

# %% [markdown]
# The designs decoded at $z = 0$ are poor for their problems (the table; SIMP's own designs score 0 on CE and ΔV
# but miss their volume target a little: thresholding at 0.5 moves them off it, lesson 6). Yet the same decoder
# reproduces a design closely when $z$ comes from the encoder. So $z$ carries the design, and $z = 0$ is not where
# the designs of problem $c$ live.
#
# **Two measurements.** (1) *Does generation decode the right latent?* The distance $\lVert \mu_q(x_i, c_i) - \mu_p(c_i)
# \rVert$ between each validation design's encoding and the point generation decodes for its problem (here $\mu_p = 0$),
# relative to the distance between the encodings of two different designs: about 1 means generation decodes a latent as
# far from the right one as another design's. (2) *How much does the decoder listen to $c$?* The shortcut test
# (`utils.generation.shortcut_test`, and exercise 8.2 below): encode each design with its own problem,
# $z_i = \mu_q(x_i, c_i)$, then decode
# that $z_i$ with the *next* design's problem $c_j$. A decoder that uses $c$ draws a structure for problem $j$: it
# carries $j$'s load and looks like $j$'s SIMP design. A decoder that reads the design from $z$ redraws design $i$.

# %%
@torch.no_grad()
def generation_miss(model: ConditionalVAE, problems) -> float:
    """Median over designs of ‖μ_q(x_i, c_i) − μ_p(c_i)‖ (the encoding against the latent generation decodes),
    divided by the median distance ‖μ_q(x_i, c_i) − μ_q(x_j, c_j)‖ between the encodings of two designs."""
    images = torch.as_tensor(problems.density, dtype=torch.float32)[:, None].to(device)
    conditions = problem_conditions(problems).to(device)
    mu_q, _ = model.encoder(images, conditions)
    mu_p, _ = model.prior_moments(conditions)
    between_designs = (mu_q - mu_q.roll(1, dims=0)).norm(dim=1).median()
    return float((mu_q - mu_p).norm(dim=1).median() / between_designs)


print(f"naive CVAE: generation misses the design's encoding by {generation_miss(naive, validation):.2f} × the "
      "distance between two designs' encodings")

# %% [markdown]
# **Why generation fails.** The encoder sees $x$, and $x$ shows its problem (where the load sits, how much material
# there is). Putting the design into $z$ costs a KL of some nats per design and spares the decoder the hard map
# problem → design: that is the **latent shortcut**. The KL to $\mathcal N(0, I)$ makes the encodings of all
# designs *together* look like $\mathcal N(0, I)$, but the encodings of the designs of *one* problem $c$ — the
# aggregate posterior $q(z \mid c) = \mathbb E_{x \mid c}\,q(z \mid x, c)$ — sit somewhere in it, a different place
# for each problem (generation misses by a good fraction of the distance between two designs, above). Generation decodes
# $z = 0$ or $z \sim \mathcal N(0, I)$ with $c$: a latent that during training went with *other* problems, so what
# comes out is a compromise between problems. (How much the decoder still listens to $c$ is exercise 8.2's test,
# after the fix.)
#
# ## 4. The fix: a prior that knows the problem
#
# Make the prior a network of $c$ and train it with the rest: the KL term $\mathrm{KL}(q(z \mid x, c)\,\|\,
# p(z \mid c))$ pulls $p(z \mid c)$ onto the region where the encoder puts the designs of problem $c$. Generation
# then decodes the prior's mean $\mu_p(c)$, or samples $z \sim p(z \mid c)$. Same architecture, same training, one
# small network more.

# %%
cvae = shipped_models["cvae"] if QUICK else train_small("learned")
rows.update(decoded_rows(cvae, f"{OWN} CVAE, z = μ_p(c)"))
print(format_table(rows, JUDGE_COLUMNS, ".1%"))
print(f"learned prior: generation misses the design's encoding by {generation_miss(cvae, validation):.2f} × the "
      "distance between two designs' encodings")

# %% [markdown]
# Generation now lands where the designs of each problem are encoded, and the designs are far closer to SIMP's
# (the table: the whole distribution moves, not only the median). Did the fix make the *decoder* listen to $c$?
# With a learned prior, information about the problem in $z$ is free — the KL charges only what $z$ says beyond
# what $\mu_p(c)$ predicts — so nothing forces the decoder to read $c$ rather than $z$. Measure it.
#
# **Exercise 8.2** — the swapped-condition test. Given a conditional model, designs `images: (N, 1, 32, 64)` and
# their conditions `conditions: (N, 4)`, return the densities `(N, 32, 64)` in $[0, 1]$ that the decoder draws from
# each design's encoding $z_i = \mu_q(x_i, c_i)$ (`model.encoder(images, conditions)` returns $(\mu_q, \log\sigma_q^2)$)
# with the **next** design's condition $c_{i+1}$ (the last design takes the first one's): `model.decode(z, c)`
# returns logits `(N, 1, 32, 64)`.

# %%
# EXERCISE: the swapped-condition test
def swap_conditions(model: ConditionalVAE, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """Densities (N, 32, 64) decoded from μ_q(x_i, c_i) with c_{i+1}, cyclically."""
    # BEGIN SOLUTION
    with torch.no_grad():
        mu, _ = model.encoder(images, conditions)
        return torch.sigmoid(model.decode(mu, conditions.roll(-1, dims=0)))[:, 0]
    # END SOLUTION


# %%
check_swap_conditions(swap_conditions)

# %% [markdown]
# Your function gives the course's `swapped_designs` (checked below on the validation designs); `shortcut_test`
# judges the swapped designs under the *new* problem: do they carry its load, how far is their compliance from its
# SIMP design's, and do they look like the encoded design or like the new problem's SIMP design (solid IoU)?

# %%
validation_images = torch.as_tensor(validation.density, dtype=torch.float32)[:, None].to(device)
yours = swap_conditions(naive, validation_images, validation_conditions).cpu().numpy()
assert np.allclose(yours, swapped_designs(naive, validation, device)[0], atol=1e-5)
shortcut_rows = {name: shortcut_test(model, judges["validation"], device)
                 for name, model in ((f"{OWN} naive CVAE", naive), (f"{OWN} CVAE (learned prior)", cvae))}
# The IoUs as fractions; load disrespect and |CE| in per cent (a broken design's as "> 10,000%").
SHORTCUT_FORMATS = {"IoU with the encoded design": ".3f", "IoU with the new problem's SIMP design": ".3f"}
print(format_table(shortcut_rows, {key: key.replace(" under the new problem", "") for key in
                                   next(iter(shortcut_rows.values()))}, SHORTCUT_FORMATS))
for figure in next(iter(shortcut_rows.values())):
    before, after = (shortcut_rows[name][figure] for name in shortcut_rows)
    print(f"{figure}: {'higher' if after > before else 'lower' if after < before else 'the same'} with the "
          "learned prior")

# %% [markdown]
# The lines under the table (printed, validation split, this notebook's one-minute models; with `QUICK`, the shipped
# ones) say which way the learned prior moved each figure on this run; that depends on the training seed and length.
# On the shipped models, trained longer, section 6 measures the same. Either way, the prior network is what carries
# $c$ to the right place in latent space; other fixes aim at the *decoder* (a larger KL weight, dropping the
# encoder's view of $c$, a smaller latent).

# %% [markdown]
# ## 5. The deterministic baseline
#
# Does the latent earn its keep? Take the same decoder, give it $c$ alone (`latent_dim=0`: no encoder, no prior,
# no KL) and train it on the same designs with the same loss: a regression of the design on the problem. Every
# figure of the CVAE must be set beside this one.

# %%
baseline = shipped_models["baseline"] if QUICK else train_small("standard", latent_dim=0)
rows.update(decoded_rows(baseline, f"{OWN} baseline (no latent)"))
print(format_table(rows, JUDGE_COLUMNS, ".1%"))

# %% [markdown]
# ## 6. The shipped models, and what sampling buys
#
# `data/cvae_topology.pt` holds the same three models trained longer and wider (`make cvae-checkpoint`: width 32,
# 300 epochs each), with one change to the decoder, a refinement stage at full resolution that this section explains
# with the floating material; its SHA-256 is checked on every load. The figures that follow use them.
#
# A CVAE can do what the baseline cannot: draw *several* designs for one problem, $z \sim p(z \mid c)$. The finite-
# element solver can then pick the best — a few milliseconds per candidate. But "best" needs care.
#
# **Exercise 8.3** — best-of-$k$. Given the compliances `(k, N)` of $k$ thresholded candidates for each of $N$
# problems, their volume fractions `(k, N)` and the problems' targets `(N,)`, return for each problem the index of
# the chosen candidate `(N,)`: the lowest compliance among the candidates whose volume fraction is at most
# target $\cdot (1 + \text{tolerance})$; if no candidate qualifies, the one with the least material.
# (Why not simply the lowest compliance? Think about what more material does to compliance.)

# %%
# EXERCISE: best-of-k selection
def choose_best_of_k(compliances: np.ndarray, volume_fractions: np.ndarray, targets: np.ndarray,
                     tolerance: float = 0.03) -> np.ndarray:
    """Index of the chosen candidate for each problem: (k, N), (k, N), (N,) → (N,) integers."""
    # BEGIN SOLUTION
    admissible = volume_fractions <= targets * (1 + tolerance)
    stiffest_admissible = np.where(admissible, compliances, np.inf).argmin(axis=0)
    return np.where(admissible.any(axis=0), stiffest_admissible, volume_fractions.argmin(axis=0))
    # END SOLUTION


# %%
check_choose_best_of_k(choose_best_of_k)

# %%
models, record = load_models(CVAE_CHECKPOINT_PATH, device)
print(f"loaded the shipped models ({record['settings']['epochs']} epochs, width {record['settings']['width']}, "
      f"refined decoder: {record['settings']['refined']}, trained on {record['device']}), "
      f"SHA-256 {record['sha256'][:12]}…")
SAMPLES = 16


def decoded_designs(model: ConditionalVAE, split: str) -> np.ndarray:
    """The model's designs for a split's problems, decoded at the prior's mean: (N, 32, 64)."""
    return model.generate(problem_conditions(judges[split].problems).to(device))[0].cpu().numpy()


def best_of_k_designs(model: ConditionalVAE, split: str, samples: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """k draws z ~ p(z | c) per problem, each solved at equal volume; your rule picks one: (N, 32, 64).

    At equal volume every draw has the reference's volume, so the volume rule admits all of them and the rule
    reduces to the stiffest draw."""
    judge = judges[split]
    conditions = problem_conditions(judge.problems).to(device)
    drawn = model.generate(conditions, samples, torch.Generator().manual_seed(seed)).cpu().numpy()
    solids = np.stack([judge.solid(draw) for draw in drawn])
    compliances = np.stack([judge.compliances(solid) for solid in solids])
    chosen = choose_best_of_k(compliances, solids.mean(axis=(-2, -1)), judge.reference_volumes, tolerance=0.0)
    return drawn[chosen, np.arange(len(judge))]


shipped_designs = {f"shipped {name}, as decoded": decoded_designs(models[name], "validation")
                   for name in ("naive", "cvae", "baseline")}
shipped_designs["shipped cvae, as decoded, smoothed"] = smoothed(shipped_designs["shipped cvae, as decoded"])
shipped_designs[f"shipped cvae, best of {SAMPLES}"] = best_of_k_designs(models["cvae"], "validation")
shipped_metrics = {name: judges["validation"](d) for name, d in shipped_designs.items()}
shipped_rows = {name: table_row(m) for name, m in shipped_metrics.items()}
for name in ("shipped cvae, as decoded", "shipped baseline, as decoded"):
    shipped_rows[f"{name}, at 0.5"] = table_row(judges["validation"](shipped_designs[name], "at_0.5"))
print(f"{len(validation)} validation problems (E_min = 1e-9; equal volume unless 'at 0.5'):")
print(format_table({**rows, **shipped_rows}, JUDGE_COLUMNS, ".1%"))

# %% [markdown]
# **Reading the table** (validation split; this notebook's own one-minute models above the shipped ones; with
# `QUICK`, the shipped models twice, under both names).
#
# - The naive CVAE's designs are far off their problems; the learned prior fixes that.
# - **The shipped CVAE and the shipped baseline, as decoded, are close** in median and in the share of designs more
#   than 10 % off; their tails differ both ways (compare the p90 and the mean), and the CVAE has less floating
#   material. Why close? Lesson 6's SIMP is deterministic, each problem has exactly one design in the data, so
#   $p(x \mid c)$ is a single point and a regression can represent it. The latent has no genuine variety to model,
#   only what the decoder cannot yet predict from $c$.
# - **The tail is the figure to read.** Medians of a few per cent sit beside a 90th percentile of tens of per cent
#   and a mean pulled up by a few broken designs; a design more than 10 % less stiff than SIMP's is no rare event.
#   No model here makes "good designs for their problems" without a check.
# - **At 0.5 against at equal volume.** Thresholded pixel by pixel, a design has its own volume (ΔV): the rows
#   "at 0.5" mix stiffness with material. Equal volume removes that.
#
# Best of 16, at equal volume, moves the median and the tail (the table). Why judge the draws at equal volume?
# With exercise 8.3's rule at the draws' own volumes and a 3 % tolerance, the stiffest admissible draw tends to be
# the heaviest one — measured here on the first 50 validation problems:

# %%
# studies.cvae_study.own_volume_rule: the draws judged at their own volume, picked by your rule (the tool: all test
# problems, the same function).
own = own_volume_rule(models["cvae"], judges["validation"].take(np.arange(50)), device, select=choose_best_of_k,
                      samples=SAMPLES)
print(f"own-volume rule (≤ target + 3 %): the heaviest admissible draw chosen in {own['heaviest chosen share']:.0%} "
      f"of problems; chosen designs above the target in {own['above target share']:.0%}, "
      f"median ΔV against SIMP's design {own['median ΔV']:+.2%}")
print(f"their median CE: {own['median CE at own volume']:+.2%} at their own volume, "
      f"{own['median CE at reference volume']:+.2%} at SIMP's volume")

# %% [markdown]
# The selection buys stiffness with material: at their own volume the chosen designs look better than they are
# (the two medians above). So every best of $k$ in this notebook ranks the draws at equal volume.
#
# **Does the shipped learned prior make the decoder listen?** Exercise 8.2's test on the shipped models
# (validation):

# %%
shipped_shortcut = {name: shortcut_test(models[name], judges["validation"], device) for name in ("naive", "cvae")}
print(format_table(shipped_shortcut, {key: key.replace(" under the new problem", "") for key in
                                      shipped_shortcut["naive"]}, SHORTCUT_FORMATS))
# Measured on the shipped models: with the learned prior the swapped designs carry the new load more often and sit
# closer to its SIMP design's compliance; the text after this cell claims no more than these two asserts check.
assert (shipped_shortcut["cvae"]["load disrespect under the new problem"]
        < shipped_shortcut["naive"]["load disrespect under the new problem"])
assert (shipped_shortcut["cvae"]["median |CE| under the new problem"]
        < shipped_shortcut["naive"]["median |CE| under the new problem"])

# %% [markdown]
# On the shipped models the learned prior's decoder listens to $c$ *more* than the naive one's (fewer swapped
# designs miss the new load, and their compliance under the new problem is closer to SIMP's). That is one training
# run of each model: section 4's one-minute models can move the same figures the other way, so the evidence that a
# learned prior makes the decoder listen is mixed, and the course draws no general conclusion from it. The naive
# decoder does not ignore $c$ either: most of its swapped designs carry the new load. What the naive model gets
# wrong is generation — it decodes latents that belong to other problems — not the decoder's use of $c$.
#
# ## 7. Floating material, and the refined decoder

# %%
decoded = shipped_designs["shipped cvae, as decoded"]
decoded_solid = judges["validation"].solid(decoded)
fragmented = [i for i in range(len(validation)) if floating_material(decoded_solid[i])][:4]
plot_designs([*decoded[fragmented], *decoded_solid[fragmented], *validation.density[fragmented]],
             [f"CVAE, problem {i}" for i in fragmented] + ["thresholded at SIMP's volume"] * len(fragmented)
             + ["SIMP"] * len(fragmented), ncols=len(fragmented),
             suptitle="floating material: the CVAE's design, thresholded, and SIMP's design (validation)");

# %% [markdown]
# The fragments are thin members that the decoder draws **near 0.5** — members whose place or presence it is unsure
# of, often ones that SIMP itself leaves grey. Thresholding decides each pixel alone, so such a member comes out in
# dashes. Three remedies were tried when the shipped models were made; their figures below come from those runs
# (test split, thresholded at 0.5, as the lesson then judged; **not rerun here**: retraining the three variants
# takes about 31 minutes on 2 cores) and, being chosen on test, they are a choice made on the test split:
#
# | remedy (command, not rerun here) | floating material, test, at 0.5 |
# | --- | --- |
# | lesson 7's decoder (`python -m tools.train_cvae --plain-decoder --out <file>`) | 15–17 % (150–300 ep.), 18 % (600) |
# | black-and-white targets, lesson 7's decoder (`--thresholded-targets`), 600 epochs | 20 % |
# | a refinement stage at full resolution (`refined=True`; shipped, 300 epochs) | 12 % (11 %: 150 epochs, seeds 0, 1) |
#
# The refinement stage (`utils.cvae.RefinedDecoder`: the last layer gives 16 feature maps at 32×64, then two 3×3
# convolutions with a ReLU before each) removes a fifth to a third of the fragments, not most of them. Sharp targets
# do not make the model surer of where a thin member goes. **Re-examined on validation** (computed below): what can
# be checked without retraining is the shipped refined CVAE against a target of at most 15 % of designs with
# floating material (set when the shipped models were made), against the shipped
# baseline (same refined decoder, no latent) and against this notebook's own CVAE with lesson 7's decoder (one
# minute of training, so not a like-for-like comparison). Smoothing before thresholding
# (`utils.generation.smoothed`, averaging over the solver's filter radius $r_\text{min} = 2$) is a post-processing of
# ours, so the tables name it.

# %%
floating = {name: shipped_rows[name]["floating material share"] for name in
            ("shipped cvae, as decoded", "shipped cvae, as decoded, at 0.5", "shipped baseline, as decoded",
             "shipped cvae, as decoded, smoothed")}
if not QUICK:  # the quick path trained no model of its own
    floating["notebook CVAE (lesson 7's decoder, one minute)"] = rows["notebook CVAE, z = μ_p(c)"][
        "floating material share"]
for name, share in floating.items():
    print(f"floating material, validation, {name}: {share:.1%}")
smoothed_designs = shipped_designs["shipped cvae, as decoded, smoothed"]
smoothed_solid = judges["validation"].solid(smoothed_designs)[fragmented]
plot_designs(smoothed_solid, [f"smoothed: {'still in pieces' if floating_material(s) else 'one piece'}"
                              for s in smoothed_solid], ncols=len(fragmented),
             suptitle="the same designs, smoothed over the filter radius, then thresholded at SIMP's volume");

# %% [markdown]
# On validation the refined CVAE's share (printed) is what the choice rests on now; whether the plain decoder would
# do worse *on validation* would take a retraining, which this notebook does not do.
#
# **Question** — the best-of-16 designs have less floating material than the designs decoded at $\mu_p(c)$, although
# the selection looked only at compliance at equal volume. Why?
#
# <!-- BEGIN ANSWER -->
# Floating material is solid that carries no load: at the same volume, a design with a disconnected piece has less
# material in its load path, so it is less stiff. Ranking by compliance at equal volume therefore penalises
# floating pieces without being told about them. The physics-based selection does the connectivity check for free.
# <!-- END ANSWER -->

# %%
assert (shipped_rows[f"shipped cvae, best of {SAMPLES}"]["floating material share"]
        < shipped_rows["shipped cvae, as decoded"]["floating material share"]), "the question's premise"

# %% [markdown]
# ## 8. TopoDiff's metrics, adapted, and the void stiffness
#
# Our metrics are *adapted from* TopoDiff's (francoismaze/topodiff, `topodiff/topodiff_analysis.py`), and differ on
# every one of them:
#
# | | TopoDiff | this course |
# | --- | --- | --- |
# | reported | average CE, average VFE | distribution of signed CE (mean, median, p90, share > 10 %), ΔV |
# | threshold | 127/255 on a 0–255 image | at SIMP's volume (or 0.5, named) |
# | compliance | nodal strain × stress, SolidsPy, $E_\text{void} = 10^{-3}$, 64×64 | $F^\top U$, $10^{-9}$, 64×32 |
# | load disrespect | the single pixel at the load is void | every element at the load's node is void |
# | floating material | solid pieces ≠ 1 (an empty design counts) | more than one solid piece |
#
# `utils.judging.topodiff_summary` computes their four figures on our grid (binarised at 127/255, average signed
# CE with $E_\text{void} = 10^{-3}$ from $F^\top U$ — not SolidsPy's nodal product —, the single element at the
# load, pieces ≠ 1), beside ours:

# %%
decoded_by_model = {name: shipped_designs[f"shipped {name}, as decoded"] for name in ("naive", "cvae", "baseline")}
side_by_side = {}
stiff_judge = Judge(validation, TOPODIFF_E_MIN)
stiff_metrics = {name: stiff_judge(designs) for name, designs in decoded_by_model.items()}
for name, designs in decoded_by_model.items():
    side_by_side[f"{name}: TopoDiff's, adapted"] = topodiff_summary(designs, judges["validation"])
    side_by_side[f"{name}: ours (E_min = 1e-9)"] = in_topodiff_columns(shipped_metrics[f"shipped {name}, as decoded"])
    side_by_side[f"{name}: ours with E_min = 1e-3"] = in_topodiff_columns(stiff_metrics[name])
print(format_table(side_by_side, TOPODIFF_COLUMNS, ".1%"))
for name in decoded_by_model:
    ours, stiff = shipped_metrics[f"shipped {name}, as decoded"], stiff_metrics[name]
    assert np.array_equal(ours.floating_material, stiff.floating_material)
    assert np.array_equal(ours.load_disrespect, stiff.load_disrespect)
    assert np.array_equal(ours.target_volume_error, stiff.target_volume_error)

# %% [markdown]
# **What $E_\text{min}$ changes: compliance, and nothing else** (the asserts: floating material, load disrespect and
# volume errors are identical under $10^{-9}$ and $10^{-3}$). It matters for *broken* designs: a load path closed only
# through void costs a compliance of order $1/E_\text{min}$, so $10^{-3}$ shrinks such an error by orders of
# magnitude — the *means* (printed) move far more than the medians. The other columns differ by the definitions
# (the table of differences), not by $E_\text{min}$.
#
# ## 9. Outside the training ranges
#
# "Out of distribution" here means a problem whose **condition** lies outside the training set's ranges
# (volume fraction 0.30–0.50, load height 0–32, load angle −150° to −30°, the angle read through the doubled-angle
# encoding of section 2, so that θ and θ + 180° are one problem). 24 such problems by their raw parameters
# (`make data` writes them; `data/topology_64x32_ood.npz`), each solved by SIMP for the reference: 12 with a
# volume fraction of 0.25 or 0.55, 4 with near-horizontal loads (−175°, −5°), 4 with both, and 4 with *upward*
# loads (60°, 120°). By the encoding the upward ones are **in range**: 60° is the opposite of −120°. They are
# judged apart below.

# %%
ood = load_topology_dataset(manifest_file=OOD_MANIFEST_FILE)
ood_conditions = problem_conditions(ood).to(device)
inside = inside_training_ranges(ood.volfrac, ood.load_y, ood.angle_deg)
print(f"inside the training ranges by the condition: {inside.sum()} of {len(ood)}")
ood_judge = Judge(ood)
ood_designs = {name: models[name].generate(ood_conditions)[0].cpu().numpy() for name in ("cvae", "baseline")}
ood_rows = {}
for name, designs in ood_designs.items():
    for label, mask in (("in range by the condition", inside), ("outside", ~inside)):
        ood_rows[f"shipped {name}, {label} ({mask.sum()})"] = table_row(
            ood_judge.take(np.flatnonzero(mask))(designs[mask]))
print(format_table(ood_rows, JUDGE_COLUMNS, ".1%"))
twin_conditions = condition_vector(ood.volfrac, ood.load_y, ood.angle_deg - 180.0).to(device)
twin_designs = models["cvae"].generate(twin_conditions)[0].cpu().numpy()
upward = ood.angle_deg > 0
print(f"upward loads: largest difference to the design for the opposite (downward, in-range) load "
      f"{np.abs(twin_designs[upward] - ood_designs['cvae'][upward]).max():.1e}")
assert np.array_equal(upward, inside)
assert np.abs(twin_designs[upward] - ood_designs["cvae"][upward]).max() < 1e-4
cvae_ood = ood_judge(ood_designs["cvae"])
order = np.argsort(ood.angle_deg)[::6]  # four problems: titles legible at the site's width
plot_designs(np.concatenate([ood.density[order], ood_judge.solid(ood_designs["cvae"])[order]]),
             [f"SIMP {v:.2f}, {a:.0f}°" for v, a in zip(ood.volfrac[order], ood.angle_deg[order], strict=True)]
             + [f"CVAE, CE {cvae_ood.compliance_error[i]:+.0%}" for i in order], ncols=len(order),
             suptitle="out of distribution: SIMP (top) and the shipped CVAE at SIMP's volume (bottom)");

# %% [markdown]
# The four in-range problems are the upward loads, design for design their downward twins (the check above): the
# doubled angle made them in-distribution. The 20 truly outside ones are where both models degrade (the table):
# a generative model extrapolates poorly, and so does the regression. What SIMP iterations repair, and at what
# cost, is measured on the in-range test problems in section 11; `make evaluate-cvae` reports the same tables for
# all 24 (docs/results/cvae.md).
#
# ## 10. Several designs for one problem
#
# Draws from $p(z \mid c)$ for one validation problem, each with its compliance at SIMP's volume relative to SIMP's.
# How different are they? The spread of the prior, $\sigma_p(c)$, is what the model learned about the designs of one
# problem — and our dataset holds exactly one design per problem.

# %%
problem = 3
single = judges["validation"].take(np.array([problem] * 8))
draws = models["cvae"].generate(validation_conditions[problem:problem + 1], 8, torch.Generator().manual_seed(2))[:, 0]
draws = draws.cpu().numpy()
draw_errors = single(draws).compliance_error
fig, axes = plt.subplots(3, 3, figsize=(10, 4.4))
show_design(axes[0, 0], validation.density[problem], f"SIMP: C = {validation.compliance_thresholded[problem]:.1f}")
for ax, draw, error in zip(axes.flat[1:], draws, draw_errors, strict=True):
    show_design(ax, draw, f"CE {error:+.1%} at SIMP's volume, own VF {threshold(draw).mean():.3f}")
for ax in axes.flat:
    draw_problem(ax, validation.load_case(problem))
fig.tight_layout()
prior_std = torch.exp(0.5 * models["cvae"].prior_moments(validation_conditions)[1]).mean().item()
print(f"CE of the 8 draws: {draw_errors.min():+.1%} … {draw_errors.max():+.1%}; mean prior standard deviation "
      f"σ_p(c) over the validation problems: {prior_std:.3f}; pixel spread between draws: "
      f"{draws.std(axis=0).mean():.3f}")

# %% [markdown]
# The draws differ where the model is unsure — whether a thin member is there, where it meets the others — and
# their compliances spread over the range printed above: a missing member costs stiffness. Best-of-$k$ exploits
# exactly that spread. The draws are variations on one design, not alternative *concepts* of a structure: the data
# hold one SIMP design per problem, so the prior's spread is the model's uncertainty about that design. Variety of
# concepts would need data with several good designs per problem (SIMP from several starts, filters or penalties).
#
# ## 11. The test split, read once: distributions, equal compute, cost
#
# Every choice this notebook made above was made on validation (the two set from test figures when the shipped
# models were built are named in section 7 and at the end). Now the test problems, once: the methods side by side at
# equal volume, then the question an engineer asks first — **at the same cost?** A finite-element solve is the unit:
# a method given $b$ solves per problem spends exactly $b$ solves producing its design (decoding costs none; judging
# the result is the judge's, not the method's). At each budget $b$, compare
# - SIMP itself, $b$ iterations from its uniform start;
# - SIMP from the CVAE's design (decoded at $\mu_p(c)$): $b$ iterations, one solve each;
# - SIMP from the baseline's design: $b$ iterations;
# - best of $b$ (CVAE): $\mu_p(c)$'s design and $b - 1$ draws, each solved once at SIMP's volume, the stiffest kept.
#
# The notebook runs this study (`studies.cvae_study`, the course's harness for lessons 8 and 9) on the first 20 test
# problems up to 50 solves; `make evaluate-cvae` runs the same functions on all 150, up to 50 solves
# (docs/results/cvae.md). Wall time counts decoding and solves (CUDA synchronised), not judging.

# %%
test_designs = {"shipped cvae, as decoded": decoded_designs(models["cvae"], "test"),
                "shipped baseline, as decoded": decoded_designs(models["baseline"], "test"),
                "shipped naive, as decoded": decoded_designs(models["naive"], "test"),
                f"shipped cvae, best of {SAMPLES}": best_of_k_designs(models["cvae"], "test")}
if not QUICK:  # with QUICK these are the shipped models' rows again
    test_designs.update({"notebook CVAE, z = μ_p(c)": decoded_designs(cvae, "test"),
                         "notebook baseline (no latent)": decoded_designs(baseline, "test")})
test_metrics = {name: judges["test"](d) for name, d in test_designs.items()}
test_rows = {name: table_row(m) for name, m in test_metrics.items()}
print(f"{len(test)} test problems, equal volume, E_min = 1e-9:")
print(format_table(test_rows, JUDGE_COLUMNS, ".1%"))
fig, ax = plt.subplots(figsize=(7, 4.2))
plot_error_distributions(ax, {name: m.compliance_error for name, m in test_metrics.items()},
                         population="test problems")
ax.set_title("the whole distribution: CE of every test design, at SIMP's volume")
ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
fig.tight_layout();

# %%
BUDGETS = (1, 2, 5, 10, 20, 30, 50)
study = run_cvae_study(models["cvae"], models["baseline"], StudyProblems.of(test.take(np.arange(20)), RULE, device),
                       BUDGETS)
figures = {"CE median": "median CE", "CE p90": "90th percentile of CE", "floating material share": "floating material"}
fig, axes = plt.subplots(2, 2, figsize=(10, 6.8), sharex=True)  # two by two: legible at the site's width
axes = axes.ravel()
for key, per_budget in study.judgements.items():
    for ax, figure in zip(axes[:3], figures, strict=True):
        ax.plot(BUDGETS, [per_budget[b].summary()[figure] for b in BUDGETS], "o-", label=LABELS[key])
    axes[3].plot(BUDGETS, [1e3 * study.results[key].seconds[b] / 20 for b in BUDGETS], "o-", label=LABELS[key])
TICKS = (1, 2, 5, 10, 20, 50)
for ax, title in zip(axes, [*figures.values(), "ms per design"], strict=True):
    ax.set(xscale="log", title=title, xticks=TICKS, xticklabels=[str(b) for b in TICKS])
for ax in axes[2:]:
    ax.set_xlabel("finite-element solves per problem, b")
for ax in axes[:2]:  # linear within ±10 %, logarithmic beyond, up to the broken designs (C/C_ref > 10³)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(-0.1, BROKEN_RATIO)
    ax.yaxis.set_major_formatter(lambda value, _: f"{100 * value:g} %")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2)
fig.suptitle("equal compute: 20 test problems, at SIMP's volume")
fig.tight_layout(rect=(0, 0.08, 1, 1))
print(format_table(study.rows((1, 5, 20)), {"CE median": "median CE", "CE p90": "p90 CE", "floating material share":
                                            "floating", "ms": "ms/design"},
                   {"ms": ".0f", "CE median": ".1%", "CE p90": ".1%", "floating material share": ".0%"}))
winners = {b: LABELS[min(study.judgements, key=lambda key: study.judgements[key][b].summary()["CE p90"])]
           for b in BUDGETS}
print("lowest 90th percentile of CE at each budget:", winners)

# %% [markdown]
# **What the figure shows** (20 test problems here; all 150 in docs/results/cvae.md): SIMP from a uniform start is
# nowhere near its design after a few iterations — a generated start is worth many iterations. Among the generated
# starts, spending the solves on **SIMP iterations** beats spending them on **more draws**: from two to five solves
# on, the warm-started designs (the CVAE's and the baseline's alike) have closed most of the tail that best of $b$
# keeps, and carry less floating material. The baseline's deterministic design, which has no latent at all, is as
# good a start as the CVAE's. So at equal compute the latent does not pay through sampling here; what it buys is a
# distribution of draws, which this data (one design per problem) does not need. (The printed winners above say
# which line has the lowest 90th percentile at each budget on this subset.) Best of $b$ draws, so its line depends on
# the sampling seed; SIMP and the decoded designs draw nothing. `python -m tools.evaluate_cvae --seeds 0 1 2 3 4`
# reruns best of $b$ on all 150 test problems once per seed (`docs/results/cvae_seeds.md`): the tail it keeps is not
# one seed's draw.
#
# **How sure is that?** On all 150 test problems, against an independent reference that none of these methods is
# (`make references`: SIMP continued from the dataset's design to a tight tolerance, and SIMP from a uniform start
# with another filter, the stiffer kept), `docs/results/cvae.md` gives each difference with a paired bootstrap 95 %
# interval. SIMP from the CVAE's design beats best of $b$ at 5 and at 20 solves in the median, the 95th percentile
# and the share of designs more than 10 % worse: every interval excludes zero. Between the CVAE's start and the
# baseline's, no interval at 20 solves excludes zero: the data support "as good", not "better" either way. And the
# dataset's own SIMP designs are not the optimum: judged against the independent reference, they are a few tenths of
# a per cent less stiff in the median and a few per cent in their tail — the scale below which no difference between
# methods here means anything.
#
# **And with another training seed?** Those intervals are about the shipped models, trained with seed 0. `make
# training-seeds` trains the CVAE and the baseline again with seeds 1 and 2 (same settings) and repeats the
# comparison on all 150 test problems (`docs/results/cvae_training_seeds.md`, each difference seed by seed). SIMP
# from the CVAE's design beats best of $b$ at 5 solves on every figure with every seed; at 20 solves it does so with
# the shipped models only: with seeds 1 and 2 it is still ahead in every estimate, but their intervals hold zero. And
# the baseline's start is never behind the CVAE's: at 20 solves its median estimate is the lower with every seed, and
# with seed 1 its intervals exclude zero on every figure. So "as good, not better" is the shipped models' reading;
# over three training seeds, the model without a latent is at least as good a start.

# %%
with Stopwatch(device) as watch:
    models["cvae"].generate(test_conditions)[0].cpu().numpy()
unverified_seconds = watch.seconds / len(test)
dataset_simp_seconds = simp_seconds(study.problems.judge, 5)
verified_seconds = study.results["simp_from_cvae"].seconds[VERIFIED_AT] / len(study.problems)
training_seconds = record["models"]["cvae"]["training_seconds"]
break_even = break_even_designs(MAKE_DATA_SECONDS + training_seconds, dataset_simp_seconds, verified_seconds)
print(f"per design: unverified CVAE {1e3 * unverified_seconds:.2f} ms (decode only, batch of {len(test)} on "
      f"{device}); verified CVAE (decoded, then {VERIFIED_AT} SIMP iterations) {1e3 * verified_seconds:.0f} ms; the "
      f"dataset's SIMP run {dataset_simp_seconds:.2f} s (its settings, mean of 5): "
      f"{dataset_simp_seconds / verified_seconds:.1f}× for a verified design")
# SIMP stopped as soon as it is good enough: from a uniform start, the first budget within 1 % of the dataset's design.
uniform_reach = study.solves_to_within()["simp_uniform"]
reach_median = float(np.nanmedian(uniform_reach))
seconds_per_solve = study.results["simp_uniform"].seconds[BUDGETS[-1]] / (BUDGETS[-1] * len(study.problems))
good_enough_seconds = reach_median * seconds_per_solve
verified_errors = study.judgements["simp_from_cvae"][VERIFIED_AT].compliance_error
assert 20 <= reach_median <= 50, "the text below says a median of a few tens of solves"
print(f"SIMP from a uniform start, stopped within 1 % of the dataset's design: median {reach_median:.0f} solves "
      f"({np.mean(np.isnan(uniform_reach)):.0%} of these {len(study.problems)} problems not within 1 % by "
      f"{BUDGETS[-1]}), {1e3 * good_enough_seconds:.0f} ms: {good_enough_seconds / verified_seconds:.1f}× a "
      f"verified design, of which {np.mean(verified_errors > 0.01):.0%} are not within 1 % either")
print(f"offline: data {MAKE_DATA_SECONDS / 60:.1f} min (`make data` on 2 cores), the CVAE's training "
      f"{training_seconds / 60:.1f} min (recorded in data/cvae_topology.pt.sha256.json; "
      f"{sum(m['training_seconds'] for m in record['models'].values()) / 60:.0f} min for all three models); "
      f"break-even after about {break_even:,.0f} designs against the dataset's SIMP run, "
      f"{break_even_designs(MAKE_DATA_SECONDS + training_seconds, good_enough_seconds, verified_seconds):,.0f} "
      "against SIMP stopped within 1 %")

# %% [markdown]
# **The speed claim, honestly.** An *unverified* design costs a fraction of a millisecond, but nobody builds an
# unverified design: one that has been repaired by 20 SIMP iterations costs tens of milliseconds. How much cheaper
# that is than SIMP depends on which SIMP run it replaces (both printed). The dataset's run (to its tolerance or
# 100 iterations) costs several times more, but it goes further than anyone needs. SIMP from a uniform start,
# stopped as soon as it is within 1 % of the dataset's design, needs a median of a few tens of solves: a verified
# design's 20 save only a part of that (the ratio printed, on these 20 problems), and it is not always within 1 %
# itself. The offline cost of the data and the training then pays back only after the numbers of designs printed,
# thousands against the first comparison and several times more against the second. `make evaluate-cvae` reports the
# solves each method needs to come within 1 % of the independent reference on all 150 test problems
# (docs/results/cvae.md).
#
# ## 12. Design explorer
#
# Choose a problem and compare the CVAE's design (milliseconds) with SIMP's (the dataset's settings, a fraction of a
# second to a second). The sliders reach beyond the training ranges (volume fraction 0.30–0.50, angle −150° to −30°
# up to a line of action); the explorer says when a query lies outside them. The callback is
# `utils.design_explorer.draw_design_explorer`, a plain function (unit-tested).

# %%
explorer_model = models["cvae"]
widgets.interact(lambda load_y, angle_deg, volfrac: draw_design_explorer(explorer_model, load_y, angle_deg, volfrac,
                                                                         device),
                 load_y=widgets.FloatSlider(value=16.0, min=0.0, max=32.0, step=1.0, continuous_update=False),
                 angle_deg=widgets.FloatSlider(value=-90.0, min=-180.0, max=180.0, step=5.0, continuous_update=False),
                 volfrac=widgets.FloatSlider(value=0.4, min=0.2, max=0.6, step=0.01, continuous_update=False));

# %% [markdown]
# ## This notebook's models, checked
#
# Bounds this notebook's one-minute models meet, on the validation split (the figures of seeds 0–2 were measured at
# 0.5 on the test split when the bounds were set), asserted here, at the end, so that a
# shorter training (`VAE_COURSE_LESSON8_EPOCHS`) still reaches the explorer above. With `QUICK` no model of this
# notebook was trained, and there is nothing to check.

# %%
if QUICK:
    print("QUICK: this notebook trained no models, so their bounds are not checked")
else:
    notebook_cvae = rows["notebook CVAE, z = μ_p(c), at 0.5"]
    notebook_naive = rows["notebook naive CVAE, z = 0, at 0.5"]
    assert notebook_cvae["load disrespect share"] <= 0.02 and notebook_cvae["CE median"] <= 0.15
    assert notebook_cvae["VFE vs target median"] <= 0.03
    assert notebook_naive["load disrespect share"] >= 0.2
    assert notebook_naive["CE median"] >= 10 * abs(notebook_cvae["CE median"])
    assert rows["notebook baseline (no latent), at 0.5"]["CE median"] > notebook_cvae["CE median"]
    assert shipped_rows["shipped cvae, as decoded"]["CE median"] < rows["notebook CVAE, z = μ_p(c)"]["CE median"]
# Section 7: smoothing before thresholding trades floating material for compliance (validation, equal volume).
shipped_decoded = shipped_rows["shipped cvae, as decoded"]
shipped_smoothed = shipped_rows["shipped cvae, as decoded, smoothed"]
assert shipped_smoothed["floating material share"] < shipped_decoded["floating material share"]

# %% [markdown]
# ## What you should take away
# - A conditional VAE puts $c$ beside every distribution: $q(z \mid x, c)$, $p(z \mid c)$, $p(x \mid z, c)$; its
#   ELBO bounds $\log p(x \mid c)$, tight only at the exact posterior, which a diagonal $q$ cannot reach (checked on
#   a linear-Gaussian toy).
# - Encode the problem for the physics: a load and its opposite give the same optimal design, so the condition
#   uses the doubled angle.
# - With a fixed prior $\mathcal N(0, I)$ generation decodes latents that belong to other problems (the latent
#   shortcut). A learned prior $p(z \mid c)$ fixes generation; whether its decoder also listens to $c$ more
#   depends on the training run (the shipped models: yes; short runs can say no; exercise 8.2's test).
# - Judge designs as a method: under their own problem, against SIMP **at the same volume**, the whole distribution
#   of signed CE (its tail above all), at **equal compute**, and every choice on validation with test read once.
#   Name the void stiffness (it changes compliance only) and any post-processing.
# - A threshold decides pixel by pixel: unsure thin members come out in dashes (floating material); a nonlinear
#   stage at full resolution removed a fifth to a third of them.
# - Against a deterministic baseline, the latent does not earn its keep here: at equal compute, SIMP iterations
#   from either model's design beat more draws, on data with one design per problem. Out of distribution both
#   degrade; a generated design is a good *start* for SIMP, and a verified design costs tens of milliseconds, not
#   a fraction of one.

# %%
print(f"notebook run time: {time.perf_counter() - notebook_start:.0f} s on {device}")
