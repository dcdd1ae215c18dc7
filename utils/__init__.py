"""Shared helpers of the VAE course.

Students import what a lesson does not teach: the device, seeds, plotting, self-checks, the SIMP
solver and the topology dataset. Everything a lesson teaches is written in the lesson itself.

Importing ``utils`` sizes PyTorch's and the BLAS's thread pools to the CPUs this process may use
(``utils.threads``; override with ``VAE_COURSE_THREADS``), so a shared server is not oversubscribed.
"""
import os

# PyTorch's CPU threads are GNU OpenMP threads that busy-wait 300,000 spins for work. Two processes sharing
# two cores then burn each other's time: two concurrent trainings took 8× the time of one (4× the time of
# running them one after the other). 1,000 spins cost a single run nothing measurable (11.6 s vs 11.3–11.9 s)
# and two runs then take 0.99× the time of two in a row (benchmarks/shared_machine.py). libgomp reads the
# setting when torch is first imported, so this only helps where utils comes first; the Makefile and the
# README's JupyterHub setup set it for the kernels. Child processes (dataset workers, graded kernels) inherit it.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from utils.device import get_device, seed_everything  # noqa: E402
from utils.paths import DATA_DIR, REPO_ROOT  # noqa: E402
from utils.threads import configure_threads, usable_cpus  # noqa: E402

configure_threads()

__all__ = ["get_device", "seed_everything", "DATA_DIR", "REPO_ROOT", "configure_threads", "usable_cpus"]
