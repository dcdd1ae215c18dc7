"""The sandbox's view of the virtual environment (no file in it names a host folder), the process limit an
ordinary user's sandbox gets, and where a notebook's memory cgroup is made (issue #32)."""
from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.grade import memory_bound_text
from tools.grading.environment import ENVIRONMENT_MOUNT, build_view, environment_view, site_packages_folders
from tools.grading.memory_cgroup import own_memory_cgroup
from tools.grading.sandbox import Limits, process_limit_arguments, process_limit_counts_one_sandbox

NOBODY = 65534


def _fake_environment(root: Path) -> Path:
    """A virtual environment in ``root`` with every kind of file that names its host folder."""
    prefix = root / "venv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "tool").write_text(f"#!{prefix}/bin/python\n")
    (prefix / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\ncommand = python -m venv {prefix}\n")
    (site,) = site_packages_folders(prefix)
    packages = prefix / site
    (packages / "pkg" / "__pycache__").mkdir(parents=True)
    (packages / "pkg" / "__init__.py").write_text("def where():\n    return __file__\n")
    (packages / "pkg" / "__pycache__" / "__init__.cpython-39.pyc").write_bytes(str(prefix).encode())
    (packages / "pkg" / "stray.pyc").write_bytes(str(prefix).encode())
    (packages / "__editable___course_finder.py").write_text(f"MAPPING = {{'utils': '{root}/checkout/utils'}}\n")
    (packages / "__editable__.course.pth").write_text("import __editable___course_finder\n")
    (packages / "paths.pth").write_text(f"{root}/checkout\nimport os\n")
    (packages / "course-0.1.dist-info").mkdir()
    (packages / "course-0.1.dist-info" / "direct_url.json").write_text(f'{{"url": "file://{root}/checkout"}}')
    (packages / "course-0.1.dist-info" / "RECORD").write_text("pkg/__init__.py,,\n")
    (packages / "inside").symlink_to("pkg", target_is_directory=True)
    (packages / "outside").symlink_to(root / "checkout")
    return prefix


def _files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def test_the_view_keeps_the_packages_and_nothing_that_names_the_host(tmp_path: Path) -> None:
    prefix = _fake_environment(tmp_path)
    (site,) = site_packages_folders(prefix)
    view = build_view(prefix, tmp_path / "view", Path(sys.executable))
    assert _files(view) - _files(prefix) == {"bin/python", "bin/python3", f"bin/python3.{sys.version_info.minor}",
                                              f"{site}/pkg/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"}
    assert _files(prefix) - _files(view) == {
        "bin/tool", f"{site}/pkg/__pycache__/__init__.cpython-39.pyc", f"{site}/pkg/stray.pyc", f"{site}/outside",
        f"{site}/__editable___course_finder.py", f"{site}/__editable__.course.pth",
        f"{site}/course-0.1.dist-info/direct_url.json"}
    assert (view / site / "paths.pth").read_text() == "import os\n"
    assert os.readlink(view / site / "inside") == "pkg"
    assert (view / "pyvenv.cfg").read_text().startswith(f"home = {Path(sys.executable).parent}\n")
    for path in view.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert str(tmp_path).encode() not in path.read_bytes(), path
    compiled = next((view / site / "pkg" / "__pycache__").iterdir()).read_bytes()
    assert marshal.loads(compiled[16:]).co_filename == f"{ENVIRONMENT_MOUNT}/{site}/pkg/__init__.py"
    source, copy = prefix / site / "pkg" / "__init__.py", view / site / "pkg" / "__init__.py"
    if source.stat().st_dev == copy.stat().st_dev:
        assert source.stat().st_ino == copy.stat().st_ino, "a file on the same file system is hard-linked"


def test_the_view_is_built_once_per_state_of_the_environment(tmp_path: Path) -> None:
    prefix = _fake_environment(tmp_path)
    (site,) = site_packages_folders(prefix)
    cache = tmp_path / "cache"
    first = environment_view(prefix, (cache,))
    assert first is not None and environment_view(prefix, (cache,)) == first
    time.sleep(0.01)
    (prefix / site / "newpkg").mkdir()  # a package installed
    second = environment_view(prefix, (cache,))
    assert second != first and (second / site / "newpkg").is_dir()
    assert sorted(cache.iterdir()) == [second], "the older view is removed"
    assert environment_view(Path(sys.base_prefix), (cache,)) is None  # not a virtual environment
    (second / "pyvenv.cfg").unlink()  # damaged by hand
    assert (environment_view(prefix, (cache,)) / "pyvenv.cfg").is_file()


def test_a_read_only_checkout_keeps_its_view_in_the_next_cache_or_says_where_it_tried(tmp_path: Path) -> None:
    """A shared, read-only checkout: the view goes to the grader's own cache folder; with no writable folder at
    all, the error names every folder tried."""
    prefix = _fake_environment(tmp_path)
    read_only, own = tmp_path / "checkout-build", tmp_path / "home-cache"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        if os.access(read_only, os.W_OK):  # root writes anyway: make it a file instead, which no one can enter
            read_only.chmod(0o755)
            read_only.rmdir()
            read_only.write_text("")
        view = environment_view(prefix, (read_only / "grading-environment", own))
        assert view is not None and view.parent == own
        with pytest.raises(PermissionError, match="checkout-build/grading-environment, .*elsewhere"):
            environment_view(prefix, (read_only / "grading-environment", read_only / "elsewhere"))
    finally:
        if read_only.is_dir():
            read_only.chmod(0o755)


@pytest.mark.parametrize(("as_root", "release", "counts"), [
    (False, "5.13.19-generic", False), (False, "5.14.0", True), (False, "6.18.44-fc-v1300", True),
    (True, "4.19.0", True)])
def test_the_process_limit_is_set_where_it_counts_one_sandbox(as_root: bool, release: str, counts: bool) -> None:
    assert process_limit_counts_one_sandbox(as_root, release) is counts


@pytest.mark.skipif(os.geteuid() != 0 or not process_limit_counts_one_sandbox(False),
                    reason="needs root (to act as another user) and Linux 5.14 or later")
def test_an_ordinary_users_sandbox_counts_its_own_processes(tmp_path: Path) -> None:
    """As an ordinary user with ten processes already running, a sandbox with a limit of 6 processes still forks
    (its own count: bwrap's init, the shell and 4 children), and stops at the limit; the same limit set outside a
    sandbox counts the user's other processes and refuses the first fork."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    fork_eight = "n=0; for i in 1 2 3 4 5 6 7 8; do sleep 5 & n=$((n+1)); echo $n; done; wait"
    limit = process_limit_arguments(Limits(processes=6), as_root=False)
    sleepers = [subprocess.Popen([*as_nobody, "sleep", "30"]) for _ in range(10)]
    try:
        inside = subprocess.run([*as_nobody, shutil.which("bwrap"), "--unshare-pid", "--ro-bind", "/", "/", "--dev",
                                 "/dev", "--tmpfs", "/proc", *limit, "sh", "-c", fork_eight],
                                capture_output=True, text=True, timeout=60)
        outside = subprocess.run([*as_nobody, *limit, "sh", "-c", fork_eight], capture_output=True, text=True,
                                 timeout=60)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
    assert inside.stdout.split() == ["1", "2", "3", "4"] and "fork" in inside.stderr, (inside.stdout, inside.stderr)
    assert outside.stdout.split() == [] and "fork" in outside.stderr, (outside.stdout, outside.stderr)


@pytest.mark.parametrize(("text", "found"), [
    ("9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n", "memory/process_api/abc"),
    ("12:cpu,cpuacct:/x\n5:memory,hugetlb:/y/z\n", "memory/y/z"),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/grader.scope\n", None),
    ("3:cpu:/only-cpu\n", None)])
def test_the_graders_own_memory_cgroup_is_read_from_proc(tmp_path: Path, text: str, found: str | None) -> None:
    """cgroup v1's memory hierarchy where there is one; none on a cgroup v2 system (not used, see the module)."""
    assert own_memory_cgroup(text, tmp_path) == (None if found is None else tmp_path / found)


def test_the_grader_says_which_memory_bound_applies() -> None:
    assert memory_bound_text(Limits(), cgroup=True) == (
        "memory: each notebook's processes and its tmpfs folders together hold at most 2.28 GiB (a memory cgroup "
        "each)")
    assert memory_bound_text(Limits(memory_bytes=2**30), cgroup=False).startswith("memory: 1 GiB per process")
