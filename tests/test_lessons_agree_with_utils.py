"""Taught code and library code, related on purpose: where a lesson builds something that `utils` also holds (the
version the tools, the checkpoints and later lessons use), the lesson's solution and the `utils` version give the
same results on the same inputs. The lesson's code is taken from its generated solution notebook (the exercise
cells, found by their metadata), run after the lesson's import cell."""
from __future__ import annotations

import copy
from functools import cache
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tools.build_notebooks import CELL_METADATA_KEY, build_lesson, lesson_sources
from utils import elbo_terms, priors, topopt, vae


@cache
def lesson_namespace(number: int) -> SimpleNamespace:
    """The names a lesson's import cell and its exercise cells (solutions) define."""
    source = next(path for path in lesson_sources() if path.name.startswith(f"{number:02d}_"))
    cells = [cell for cell in build_lesson(source).solution.cells if cell.cell_type == "code"]
    namespace: dict = {}
    exec(compile(cells[0].source, f"{source.name}: import cell", "exec"), namespace)
    for cell in cells:
        if cell.metadata.get(CELL_METADATA_KEY, {}).get("role") == "exercise":
            exec(compile(cell.source, f"{source.name}: exercise {cell.metadata[CELL_METADATA_KEY]['exercise']}",
                         "exec"), namespace)
    return SimpleNamespace(**namespace)


def _gaussians(seed: int, batch: int, dim: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=generator, dtype=torch.float64) for _ in range(4)]


@pytest.mark.parametrize("batch, dim", [(1, 1), (5, 3), (3, 16)])
def test_lesson_4_kl_is_the_standard_normal_kl_of_utils(batch: int, dim: int) -> None:
    mu, logvar, _, _ = _gaussians(batch * dim, batch, dim)
    torch.testing.assert_close(lesson_namespace(4).gaussian_kl(mu, logvar),
                               elbo_terms.gaussian_kl_terms(mu, logvar).sum(-1))


@pytest.mark.parametrize("batch, dim", [(1, 1), (5, 3), (3, 16)])
def test_lesson_8_kl_is_the_kl_between_gaussians_of_utils(batch: int, dim: int) -> None:
    mu_q, logvar_q, mu_p, logvar_p = _gaussians(batch + dim, batch, dim)
    torch.testing.assert_close(lesson_namespace(8).gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p),
                               elbo_terms.gaussian_kl_terms(mu_q, logvar_q, mu_p, logvar_p).sum(-1))


@pytest.mark.parametrize("penal", [1.0, 3.0])
def test_lesson_6_sensitivity_and_oc_update_are_the_solvers(penal: float) -> None:
    rng = np.random.default_rng(int(penal))
    x, energies = rng.uniform(0.0, 1.0, 200), rng.uniform(0.0, 5.0, 200)
    lesson = lesson_namespace(6)
    dc = lesson.compliance_sensitivity(x, energies, penal)
    np.testing.assert_allclose(dc, topopt.compliance_sensitivity(x, energies, penal), rtol=1e-12, atol=0)
    # Where the volume target is reachable within the move limit, both updates bisect to the same design.
    x_new = lesson.oc_update(x, dc, np.ones_like(x), 0.5)
    library, _ = topopt.optimality_criteria_update(x, dc, np.ones_like(x), 0.5, lambda design: design)
    np.testing.assert_allclose(x_new, library, rtol=0, atol=1e-12)


def test_lesson_7_loss_decoder_and_epoch_are_the_utils_vae() -> None:
    lesson = lesson_namespace(7)
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 1, 32, 64, generator=generator)
    x = torch.rand(3, 1, 32, 64, generator=generator)
    mu, logvar = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    for beta in (0.5, 1.0):
        for ours, theirs in zip(lesson.vae_loss(logits, x, mu, logvar, beta), vae.vae_loss(logits, x, mu, logvar, beta),
                                strict=True):
            torch.testing.assert_close(ours, theirs)

    taught, library = lesson.Decoder(4, 8), vae.Decoder(4, 8)
    library.load_state_dict(taught.state_dict())  # the shipped weights' layout fits the taught decoder
    z = torch.randn(5, 4, generator=generator)
    torch.testing.assert_close(taught(z), library(z))

    model = vae.ConvVAE(4, 8)
    batches = [torch.rand(4, 1, 32, 64, generator=generator).round() for _ in range(3)]
    results = []
    for epoch_fn in (lesson.train_epoch, vae.train_epoch):
        trained = copy.deepcopy(model)
        torch.manual_seed(0)
        averages = epoch_fn(trained, batches, torch.optim.Adam(trained.parameters(), lr=1e-2), 0.7, vae.vae_loss)
        results.append((averages, torch.cat([p.detach().flatten() for p in trained.parameters()])))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1])


def test_lesson_10_functions_are_the_mixture_densities_and_the_loss_of_utils() -> None:
    lesson = lesson_namespace(10)
    generator = torch.Generator().manual_seed(10)
    mu, logvar = torch.randn(40, 16, generator=generator, dtype=torch.float64), \
        torch.randn(40, 16, generator=generator, dtype=torch.float64) - 1
    z = priors.sample_posteriors(mu, logvar, 300, generator)
    estimate, standard_error = lesson.aggregate_kl(z, mu, logvar)
    terms = priors.mixture_log_density(z, mu, logvar) - priors.standard_normal_log_density(z)
    assert estimate == pytest.approx(float(terms.mean()), rel=1e-9)
    assert standard_error == pytest.approx(float(terms.std() / 300**0.5), rel=1e-9)
    torch.manual_seed(11)
    model = vae.ConvVAE(latent_dim=16, width=4).double()
    vamp = priors.VampPrior(model.encoder, torch.rand(5, 1, 32, 64, dtype=torch.float64))
    torch.testing.assert_close(lesson.vamp_log_prior(z, model.encoder, torch.sigmoid(vamp.pseudo_logits)),
                               vamp.log_prob(z))
    denoiser = priors.Denoiser(16, 100, hidden=8).double()
    alpha_bar, t = priors.cosine_alpha_bar(100), torch.randint(100, (300,), generator=generator)
    noise = torch.randn(z.shape, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(lesson.ddpm_loss(denoiser, z, alpha_bar, t, noise),
                               priors.ddpm_loss(denoiser, z, alpha_bar, t, noise))
