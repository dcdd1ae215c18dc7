"""Thread pools sized by the CPUs this process may really use, not by the machine's cores.

PyTorch and OpenBLAS size their pools by the machine's core count. On a shared server (a JupyterHub user
limit, a container's CPU quota, ``taskset``) that oversubscribes the CPUs the process is given, and threads
spin on cores they do not have (benchmarks/shared_machine.py measures it). :func:`configure_threads` runs when
``utils`` is imported (by a lesson, a tool or a test) and sets both pools to :func:`usable_cpus`, or to
``VAE_COURSE_THREADS`` when that is set.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy  # noqa: F401  (loads numpy's BLAS, so that its pool is sized below)
import scipy.linalg  # noqa: F401  (scipy ships a BLAS of its own; load it too before sizing the pools)
import torch
from threadpoolctl import ThreadpoolController

THREADS_ENV_VAR = "VAE_COURSE_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_v2_quota(cgroup_root: Path, self_cgroup: str) -> float | None:
    """The smallest ``cpu.max`` quota (in CPUs) on the process's cgroup-v2 path, or None if unlimited.

    ``self_cgroup`` is the text of ``/proc/self/cgroup``; cgroup v2 writes one line ``0::/path``.
    A quota of a parent cgroup limits its children too, so every level of the path counts.
    """
    paths = [line[3:] for line in self_cgroup.splitlines() if line.startswith("0::")]
    relative = Path(paths[0].lstrip("/")) if paths else Path()
    quotas = []
    for level in [relative, *relative.parents]:
        cpu_max = cgroup_root / level / "cpu.max"
        try:
            quota, period = cpu_max.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and float(period) > 0:
            quotas.append(float(quota) / float(period))
    return min(quotas) if quotas else None


def _cgroup_v1_quota(cgroup_root: Path) -> float | None:
    """The ``cpu.cfs_quota_us / cpu.cfs_period_us`` quota of cgroup v1 (in CPUs), or None if unlimited."""
    try:
        quota = float((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = float((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT,
                     self_cgroup_file: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU time this process's cgroup may use, in CPUs (1.5 = one and a half cores), or None if unlimited."""
    try:
        self_cgroup = self_cgroup_file.read_text()
    except OSError:
        self_cgroup = ""
    quota = _cgroup_v2_quota(cgroup_root, self_cgroup)
    return quota if quota is not None else _cgroup_v1_quota(cgroup_root)


def usable_cpus() -> int:
    """How many CPUs this process may use: its affinity mask, capped by its cgroup CPU quota (at least 1)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        affinity = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        affinity = min(affinity, math.ceil(quota))
    return max(1, affinity)


def thread_count() -> int:
    """The thread count the course uses: ``VAE_COURSE_THREADS`` if set (a positive integer), else
    :func:`usable_cpus`."""
    value = os.environ.get(THREADS_ENV_VAR, "").strip()
    if not value:
        return usable_cpus()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV_VAR}={value!r}: expected a positive whole number of threads")
    return int(value)


def configure_threads(threads: int | None = None) -> int:
    """Set PyTorch's and the BLAS's (numpy, scipy) thread pools to ``threads`` (default :func:`thread_count`).

    Returns the count applied. PyTorch's inter-op pool can only be sized before its first parallel work;
    if that has happened already, it is left as it is.
    """
    threads = threads or thread_count()
    torch.set_num_threads(threads)
    # PyTorch allows this call only once, before any inter-op work; later calls raise RuntimeError.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
    _blas_controller().limit(limits=threads, user_api="blas")
    return threads


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """One controller for the BLAS libraries loaded with numpy and scipy, built once (listing them is not free)."""
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the enclosed code with one BLAS thread, then restore the pool.

    Rule: the SIMP solver's banded Cholesky solves are too small to share between threads, so the solver runs
    them single-threaded (``make benchmark``, benchmarks/solver_speed.py, measures the solver's speed).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
