"""Shared helpers of the VAE course.

Students import what a lesson does not teach: the device, seeds, plotting, self-checks, the SIMP
solver and the topology dataset. Everything a lesson teaches is written in the lesson itself.

Importing ``utils`` sizes PyTorch's and the BLAS's thread pools to the CPUs this process may use
(``utils.threads``; override with ``VAE_COURSE_THREADS``), so a shared server is not oversubscribed.
"""
from utils.device import get_device, seed_everything
from utils.paths import DATA_DIR, REPO_ROOT
from utils.threads import configure_threads, usable_cpus

configure_threads()

__all__ = ["get_device", "seed_everything", "DATA_DIR", "REPO_ROOT", "configure_threads", "usable_cpus"]
