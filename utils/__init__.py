"""The course's package: what the lessons do not teach, and what they teach once they have built it.

Module map, by role (the lesson that builds each taught piece in brackets; its docstring says where):

* plumbing — ``settings`` (every shared value, once: the grid, the dataset, the solver, the training presets, the
  course's environment variables), ``paths``, ``device`` (:func:`get_device`, :func:`seed_everything`, the
  memory layout training uses on a device),
  ``threads`` (thread pools sized to the CPUs this process may use);
* physics — ``topopt`` (SIMP: the FE model, the adjoint sensitivity [6.1], the OC update [6.2], :func:`optimize`,
  the one SIMP entry point, and :func:`simp_iterations`, exactly n iterations from a start), ``metrics`` (IoU,
  compliance and volume errors [7.4],
  load disrespect, floating material, whether a design carries its load, the volume-preserving threshold);
* data — ``data`` (the verified dataset and the one batcher, ``DesignBatches``), ``integrity`` (SHA-256 records of
  the data, the checkpoints and the release);
* the ELBO's maths — ``elbo_terms`` (reparametrisation [3], Gaussian KLs [4.1, 8.1], Bernoulli likelihood [7.1]),
  ``toy_models`` (lesson 3's linear-Gaussian model in closed form);
* models — ``vae`` (lesson 7's convolutional VAE: loss [7.1], decoder [7.2], epoch [7.3]), ``cvae`` (lesson 8's
  conditional VAE, naive CVAE and baseline);
* training — ``training`` (the one schedule :func:`fit` and the one epoch loop :func:`run_epoch`);
* judging — ``judging`` (the one judge: a design against its problem's reference under its own problem,
  thresholded by a named rule — ``"at_reference_volume"``, ``"at_target_volume"`` or ``"at_0.5"`` —, best of k
  [8.3], TopoDiff's metrics adapted), ``evaluation`` (lesson 7's reconstructions, KL per unit, IWAE bounds),
  ``generation`` (designs for given problems, the swapped-condition test [8.2]);
* design in the learned space — ``design_space`` (compliance as a differentiable function [9.1], the volume
  projection [9.2], the latent search [9.3]);
  judged by ``judging``'s judge at the volume target);
* the prior — ``priors`` (lesson 10: ELBO surgery with log q(z) as a log-mean-exp [10.1], the VampPrior [10.2], a
  latent DDPM [10.3], judging generated latents like lesson 7's samples, the shipped priors' file);
* not here: the studies behind lessons 8 and 9's tables (the package ``studies``; nothing in ``utils`` imports it);
* widgets — ``elbo_explorer``, ``latent_explorer``, ``design_explorer`` (callbacks that only draw),
  ``plotting``, ``tables``;
* ``checks`` — the exercises' self-checks, one module per lesson.

Importing ``utils`` sizes PyTorch's and the BLAS's thread pools to the CPUs this process may use
(``utils.threads``; override with ``VAE_COURSE_THREADS``), so a shared server is not oversubscribed.
"""
import os

# PyTorch's CPU threads are GNU OpenMP threads that busy-wait for work before sleeping; processes sharing cores
# must not spin on each other's time, so the spin count is small (benchmarks/shared_machine.py measures both).
# libgomp reads it when torch is first imported: it helps only where utils comes first, so the Makefile and the
# JupyterHub setup set it for the kernels too. Child processes (dataset workers, graded kernels) inherit it.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from utils.device import get_device, seed_everything  # noqa: E402
from utils.paths import DATA_DIR, REPO_ROOT  # noqa: E402
from utils.threads import configure_threads, usable_cpus  # noqa: E402

configure_threads()

__all__ = ["get_device", "seed_everything", "DATA_DIR", "REPO_ROOT", "configure_threads", "usable_cpus"]
