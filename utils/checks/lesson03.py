"""Self-checks of lesson 3 (variational inference). Reference: ELBO = log p(x) − KL(q ‖ p(z|x)) in closed
form, from torch.distributions."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from utils.checks._core import (
    ExerciseCheckFailed,
    assert_close,
    check_draws_from_generator,
    exercise_check,
    gradients,
    passed,
    returned,
)


def _linear_gaussian(seed: int, dim_x: int = 4, dim_z: int = 2, orthogonal: bool = False):
    """A random linear-Gaussian model: (log_joint, x, log p(x), exact posterior)."""
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(dim_x, dim_z, generator=generator, dtype=torch.float64)
    if orthogonal:
        W = torch.linalg.qr(W)[0] * torch.linspace(1.5, 0.8, dim_z, dtype=torch.float64)
    b = torch.randn(dim_x, generator=generator, dtype=torch.float64)
    x = torch.randn(dim_x, generator=generator, dtype=torch.float64)
    sigma = 0.5

    def log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return Normal(z @ W.T + b, sigma).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)

    eye_x, eye_z = torch.eye(dim_x, dtype=torch.float64), torch.eye(dim_z, dtype=torch.float64)
    log_evidence = MultivariateNormal(b, W @ W.T + sigma**2 * eye_x).log_prob(x)
    M = W.T @ W + sigma**2 * eye_z
    posterior = MultivariateNormal(torch.linalg.solve(M, W.T @ (x - b)), sigma**2 * torch.linalg.inv(M))
    return log_joint, x, log_evidence, posterior


# Statistical checks allow 6 standard errors: a correct answer fails one such test with probability 2e-9 (normal
# approximation), and a check makes fewer than 20 of them, so it refuses a correct answer with probability < 1e-6.
STANDARD_ERRORS = 6.0


def _exact_elbo(log_evidence: torch.Tensor, posterior: MultivariateNormal, mu: torch.Tensor,
                log_std: torch.Tensor) -> torch.Tensor:
    """ELBO(q) = log p(x) − KL(q ‖ p(z | x)) for q = N(mu, diag exp(2 log_std)), differentiable in both."""
    q = MultivariateNormal(mu, torch.diag(torch.exp(2 * log_std)))
    return log_evidence - kl_divergence(q, posterior)


def _standard_errors(log_joint: Callable, x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor,
                     n_samples: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Standard errors of an n_samples reparametrized estimate of the ELBO and of its gradients with respect to
    mu and log_std, from the spread of the per-sample terms (200 000 draws of the check's own generator)."""
    epsilon = torch.randn(200_000, mu.shape[-1], generator=torch.Generator().manual_seed(300), dtype=mu.dtype)
    std = torch.exp(log_std.detach())
    z = (mu.detach() + std * epsilon).requires_grad_()
    log_p = log_joint(x, z)
    score = torch.autograd.grad(log_p.sum(), z)[0]
    per_sample_elbo = log_p.detach() - Normal(mu.detach(), std).log_prob(z.detach()).sum(-1)
    scale = n_samples ** -0.5
    return (float(per_sample_elbo.std()) * scale, score.std(0) * scale,
            (score * std * epsilon + 1).std(0) * scale)


def _recording(log_joint: Callable, carries_gradient: list[bool]) -> Callable:
    """log_joint that appends to ``carries_gradient`` whether each z it receives is part of the autograd graph."""
    def recording_log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        carries_gradient.append(isinstance(z, torch.Tensor) and z.requires_grad)
        return log_joint(x, z)
    return recording_log_joint


def _standardized_noise(log_joint: Callable, noises: list[torch.Tensor],
                        sample_counts: list[int] | None = None) -> Callable:
    """log_joint that keeps, for its first three calls, each z standardised per latent dimension over the samples:
    z = μ + σ·ε gives back ε up to its own mean and spread, whatever μ and σ the step has reached; and the number of
    samples (rows of z) of every call in ``sample_counts``."""
    def recording_log_joint(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if sample_counts is not None and isinstance(z, torch.Tensor):
            sample_counts.append(z.shape[0] if z.ndim == 2 else 1)
        if len(noises) < 3 and isinstance(z, torch.Tensor) and z.ndim == 2 and z.shape[0] > 1:
            values = z.detach().double()
            noises.append((values - values.mean(0)) / values.std(0).clamp_min(1e-300))
        return log_joint(x, z)
    return recording_log_joint


@exercise_check
def check_elbo_estimate(elbo_estimate: Callable) -> None:
    """For two linear-Gaussian models: the estimate is a scalar, matches log p(x) − KL(q ‖ p(z|x)) within its
    Monte Carlo error, its gradients match the exact gradient of that closed form within theirs, and it is
    drawn from the `generator` argument (the same seed repeats, another seed differs); the z it passes to
    log_joint must carry the gradient (not q.sample() or a detached z)."""
    n = 200_000
    for seed, dim_x, dim_z, mu_values, log_std_values in ((301, 4, 2, [0.3, -0.2], [-0.7, -0.3]),
                                                          (303, 3, 1, [-1.0], [0.4])):
        log_joint, x, log_evidence, posterior = _linear_gaussian(seed, dim_x, dim_z)
        mu = torch.tensor(mu_values, dtype=torch.float64, requires_grad=True)
        log_std = torch.tensor(log_std_values, dtype=torch.float64, requires_grad=True)
        samples_carry_gradient: list[bool] = []
        estimate = returned("elbo_estimate", elbo_estimate(_recording(log_joint, samples_carry_gradient), x, mu,
                                                           log_std, n, torch.Generator().manual_seed(1)))
        if samples_carry_gradient and not all(samples_carry_gradient):
            raise ExerciseCheckFailed(
                "elbo_estimate: the z you pass to log_joint carries no gradient (it was drawn with q.sample(), "
                "detached, or built with torch.no_grad()), so the estimate's gradient misses the path through z. "
                "Build z = mu + exp(log_std)·ε from ε drawn with the generator (or use q.rsample()).")
        if not isinstance(estimate, torch.Tensor) or estimate.shape != ():
            shape = tuple(estimate.shape) if isinstance(estimate, torch.Tensor) else type(estimate).__name__
            raise ExerciseCheckFailed(f"elbo_estimate: expected a scalar tensor (the mean over samples), got {shape}")
        exact = _exact_elbo(log_evidence, posterior, mu, log_std)
        value_error, mu_error, log_std_error = _standard_errors(log_joint, x, mu, log_std, n)
        case = f"d={dim_z}"
        assert_close(f"ELBO estimate ({case})", estimate, exact, rtol=0, atol=STANDARD_ERRORS * value_error,
                     mistakes={"without the − log q(z) term (that is E_q[log p(x, z)] alone)":
                                   exact - 0.5 * dim_z * (1 + torch.log(torch.tensor(2 * torch.pi))) - log_std.sum()},
                     hint="Average log p(x, z) − log q(z) over z = μ + exp(log_std)·ε, with log q the log-density "
                          "of N(μ, diag exp(2·log_std)) summed over the latent dimensions.")
        got = gradients("elbo_estimate", estimate, {"mu": mu, "log_std": log_std})
        exact_mu, exact_log_std = torch.autograd.grad(exact, (mu, log_std))
        sample_hint = ("z must be built as mu + exp(log_std)·ε so that the gradient flows through the sample (do not "
                       "detach z or draw it from q with .sample()).")
        assert_close(f"gradient of the ELBO estimate with respect to mu ({case})", got["mu"], exact_mu, rtol=0,
                     atol=STANDARD_ERRORS * mu_error, hint=sample_hint)
        assert_close(f"gradient of the ELBO estimate with respect to log_std ({case})", got["log_std"],
                     exact_log_std, rtol=0, atol=STANDARD_ERRORS * log_std_error, hint=sample_hint)
        with torch.no_grad():
            check_draws_from_generator("elbo_estimate", lambda generator: float(
                elbo_estimate(log_joint, x, mu, log_std, 1000, generator)))  # noqa: B023  (called right here)
    passed("elbo_estimate")


# Over 40 seeds a correct loop (Adam, lr 0.02, 256 samples, 800 steps) ends with KL(q ‖ p(z|x)) ≤ 0.0021
# (median 0.0006). The KL of a converged q fluctuates like a scaled χ² with a few degrees of freedom, so ten
# times the largest value seen is far beyond any seed's reach; a loop that does not converge stays above 0.1.
KL_PASS_MARK = 0.02
# The last 100 recorded values average the ELBO of nearly the final q; their spread is a few hundredths of a nat.
HISTORY_TOLERANCE = 0.1


@exercise_check
def check_maximize_elbo(maximize_elbo: Callable) -> None:
    """On a model whose posterior is diagonal: q must reach it (KL below KL_PASS_MARK), and the history must hold
    one ELBO value per step that rises from the start and ends at the ELBO of the returned q; successive steps
    must draw fresh noise (the same ε at every step fits q to one fixed sample)."""
    log_joint, x, log_evidence, posterior = _linear_gaussian(302, orthogonal=True)
    steps = 800
    noises: list[torch.Tensor] = []
    sample_counts: list[int] = []
    n_samples = 256  # the KL_PASS_MARK above was measured with 256
    mu, log_std, history = returned("maximize_elbo", maximize_elbo(
        _standardized_noise(log_joint, noises, sample_counts), x, 2, steps=steps, lr=0.02, n_samples=n_samples,
        seed=1))
    other_counts = sorted(set(sample_counts) - {n_samples})
    if other_counts:
        raise ExerciseCheckFailed(
            f"maximize_elbo: called with n_samples={n_samples}, your loop evaluated log_joint on batches of "
            f"{', '.join(map(str, other_counts))} samples: each step's ELBO estimate must use the n_samples "
            "draws the caller asks for (pass the argument on to elbo_estimate).")
    if len(noises) >= 2 and all(noise.shape == noises[0].shape and torch.allclose(noise, noises[0], atol=1e-4)
                                for noise in noises[1:]):
        raise ExerciseCheckFailed(
            "maximize_elbo: every step draws the same noise ε (the z of successive steps are the same draws, only "
            "shifted and scaled), so Adam fits q to one fixed set of samples. Create the generator once, before the "
            "loop, and pass that same generator to elbo_estimate at every step: each call then draws fresh ε.")
    mu, log_std = torch.as_tensor(mu).detach().double(), torch.as_tensor(log_std).detach().double()
    if mu.shape != (2,) or log_std.shape != (2,):
        raise ExerciseCheckFailed(f"maximize_elbo: expected mu and log_std of shape (2,), got {tuple(mu.shape)} and "
                                  f"{tuple(log_std.shape)}")
    history = [float(value) for value in history]
    if len(history) != steps:
        raise ExerciseCheckFailed(f"maximize_elbo: expected {steps} ELBO values in the history (one per step), "
                                  f"got {len(history)}")
    kl = kl_divergence(MultivariateNormal(mu, torch.diag(torch.exp(2 * log_std))), posterior).item()
    if not kl < KL_PASS_MARK:
        raise ExerciseCheckFailed(
            f"maximize_elbo: after {steps} steps KL(q ‖ p(z|x)) = {kl:.3g}, but a correct loop reaches "
            f"< {KL_PASS_MARK} from any seed. Each step must clear the old gradients (optimizer.zero_grad()), "
            "compute the loss −ELBO (minus: Adam minimises), call backward() and optimizer.step(), with mu and "
            "log_std both given to Adam.")
    final_elbo = float(_exact_elbo(log_evidence, posterior, mu, log_std))
    recorded = sum(history[-100:]) / 100
    assert_close("the mean of the last 100 values of the history", recorded, final_elbo, rtol=0,
                 atol=HISTORY_TOLERANCE, mistakes={"for a history of −ELBO (the loss): record the ELBO itself":
                                                   -final_elbo},
                 hint="Append the ELBO estimate of each step (a float, e.g. elbo.item()) to the history.")
    if not sum(history[:10]) / 10 < recorded - 1.0:
        raise ExerciseCheckFailed("maximize_elbo: the history does not rise from its start: record the ELBO of each "
                                  "step, from the first one, in order.")
    passed("maximize_elbo")
