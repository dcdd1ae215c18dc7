"""Shared helpers of the VAE course.

Students import what a lesson does not teach: the device, seeds, plotting, self-checks, the SIMP
solver and the topology dataset. Everything a lesson teaches is written in the lesson itself.
"""
from utils.device import get_device, seed_everything
from utils.paths import DATA_DIR, REPO_ROOT

__all__ = ["get_device", "seed_everything", "DATA_DIR", "REPO_ROOT"]
