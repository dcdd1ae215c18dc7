"""Thread pools follow the CPUs the process may use: affinity, cgroup quota, and the override."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import threads
from utils.threads import (
    THREADS_ENV_VAR,
    _blas_controller,
    cgroup_cpu_quota,
    configure_threads,
    single_threaded_blas,
    thread_count,
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_takes_the_tightest_level(tmp_path: Path) -> None:
    _write(tmp_path / "cpu.max", "max 100000\n")
    _write(tmp_path / "hub" / "cpu.max", "300000 100000\n")
    _write(tmp_path / "hub" / "alice" / "cpu.max", "150000 100000\n")
    _write(tmp_path / "self", "0::/hub/alice\n")
    assert cgroup_cpu_quota(tmp_path, tmp_path / "self") == pytest.approx(1.5)


def test_cgroup_v2_without_quota_is_unlimited(tmp_path: Path) -> None:
    _write(tmp_path / "cpu.max", "max 100000\n")
    _write(tmp_path / "self", "0::/\n")
    assert cgroup_cpu_quota(tmp_path, tmp_path / "self") is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "50000\n")
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "self", "1:cpu:/\n")
    assert cgroup_cpu_quota(tmp_path, tmp_path / "self") == pytest.approx(0.5)
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_quota(tmp_path, tmp_path / "self") is None


def test_usable_cpus_is_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 1.5)
    assert threads.usable_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert threads.usable_cpus() == 4
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 0.2)
    assert threads.usable_cpus() == 1


def test_environment_variable_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV_VAR, "3")
    assert thread_count() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(THREADS_ENV_VAR, bad)
        with pytest.raises(ValueError, match=THREADS_ENV_VAR):
            thread_count()


def test_configure_threads_sets_torch_and_blas() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1
        assert torch.get_num_threads() == 1
        assert all(info["num_threads"] == 1 for info in _blas_controller().info() if info["user_api"] == "blas")
    finally:
        configure_threads(before)


def test_single_threaded_blas_restores_the_pool() -> None:
    configure_threads(2)
    blas = [info for info in _blas_controller().info() if info["user_api"] == "blas"]
    assert blas, "threadpoolctl found no BLAS library"
    with single_threaded_blas():
        assert all(info["num_threads"] == 1 for info in _blas_controller().info() if info["user_api"] == "blas")
    assert [info["num_threads"] for info in _blas_controller().info() if info["user_api"] == "blas"] == \
        [info["num_threads"] for info in blas]


def test_importing_utils_applies_the_limit_in_a_fresh_process() -> None:
    code = ("import utils, torch\nfrom utils.threads import _blas_controller\n"
            "print(torch.get_num_threads(), sorted({i['num_threads'] for i in _blas_controller().info()}))")
    env = {**os.environ, THREADS_ENV_VAR: "1"}
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert output.stdout.split(maxsplit=1) == ["1", "[1]\n"]


@pytest.mark.parametrize("preset, expected", [(None, "1000"), ("250", "250")])
def test_importing_utils_bounds_openmp_spinning_unless_set(preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset:
        env["GOMP_SPINCOUNT"] = preset
    code = "import os, utils\nprint(os.environ['GOMP_SPINCOUNT'])"
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == expected
