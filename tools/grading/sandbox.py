"""The sandbox one notebook is graded in: bubblewrap (``bwrap``) namespaces, resource limits, a staged course.

Inside, the notebook sees the system (``/usr``), the base Python installation, and the virtual environment as
:mod:`tools.grading.environment` makes it (at ``/opt/venv``, naming no host folder), all read-only; a staged copy
of the course's ``utils``, ``studies`` and ``data`` at ``/course`` (read-only; ``utils.REPO_ROOT`` is ``/course``,
which holds no lessons, solutions, tools, ``.git``, submissions or grades); the runner at ``/grader``; and two
writable folders, ``/scratch`` (its HOME, working folder and ``TMPDIR``) and ``/tmp``, size-capped tmpfs that vanish
with the sandbox (the checkout and its environment may lie below /tmp). ``/proc`` holds only ``cpuinfo``: a procfs
would show the host folders behind every bound one in its mount table. It has its own network namespace (no
interface but a down loopback), PID namespace (it signals only its own processes, and all of them are killed when
its first process ends or the grader goes away), IPC and UTS namespaces, and an environment holding only what
the lesson needs.

Limits are set with ``prlimit`` on the sandbox: data segment and address space (memory), file size, CPU seconds, no
core dumps; and inside it the process limit, which counts that sandbox's processes only: as root (CI) the
sandbox's processes run under a user id of their own, as each Jobe job does, and as an ordinary user in a user
namespace of their own (Linux 5.14 or later). A seccomp filter (:mod:`tools.grading.seccomp`) refuses the system
calls that would get around them or reach beyond the network namespace (memfd_create, shmget, io_uring, socket
families other than Unix and IP, changing the CPU affinity).
"""
from __future__ import annotations

import compileall
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.grading.environment import ENVIRONMENT_MOUNT, environment_view
from tools.grading.seccomp import UnsupportedArchitecture, sandbox_filter
from utils.paths import DATA_DIR, REPO_ROOT, STUDENT_PACKAGES
from utils.settings import COURSE_ENVIRONMENT_PREFIX
from utils.threads import THREADS_ENV_VAR

GIB = 1024**3
MIB = 1024**2
COURSE_MOUNT = "/course"
GRADER_MOUNT = "/grader"
SCRATCH_MOUNT = "/scratch"
# /tmp inside is a tmpfs of its own (Python's tempfile uses TMPDIR, in /scratch): code that writes to /tmp by name
# gets this much.
TMP_BYTES = 16 * 1024**2
SHM_BYTES = 16 * 1024**2  # /dev/shm: multiprocessing's semaphores, nothing large
# The stage's link to the environment's view (tools.grading.environment), bound at ENVIRONMENT_MOUNT.
ENVIRONMENT_LINK = "environment"
# The first Linux release counting a user's processes per user namespace (a limit set in one counts its own).
NAMESPACED_PROCESS_COUNT = (5, 14)
RUNNER = Path(__file__).with_name("runner.py")
WIRE = Path(__file__).with_name("wire.py")
INSTALL_HINT = ("the grader runs each notebook in a bubblewrap sandbox and needs `bwrap` (Linux only): "
                "`sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora). "
                "On macOS or Windows grade in a Linux VM or container, or pass --no-sandbox to run students' "
                "code unconfined with your rights (trusted submissions only).")
# Lessons 7 and 8 train models between their exercises; no check depends on how well they are trained, so the
# grader trains each for one epoch (each lesson reads its own budget through utils.settings.course_environment_int).
GRADING_TRAINING = {f"{COURSE_ENVIRONMENT_PREFIX}{name}": "1" for name in ("LESSON7_EPOCHS", "LESSON8_EPOCHS")}
# Each sandbox's user id when the grader runs as root: this base plus a number unique among running sandboxes.
SANDBOX_UID_BASE = 200_000
# The address space a sandbox's process may map beyond its memory limit: Python with NumPy, SciPy, torch and
# matplotlib loaded maps about 0.9 GiB of code, thread stacks and allocator reservations before it computes.
ADDRESS_SPACE_HEADROOM = GIB


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or, as root, setpriv) is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Limits:
    """What one notebook's sandbox may use. ``memory_bytes`` bounds each process's data segment (the heap and
    every private mapping: what NumPy and torch allocate) and, with :data:`ADDRESS_SPACE_HEADROOM` added, its
    whole address space (shared mappings included); ``scratch_bytes`` bounds its writable folder."""

    memory_bytes: int = 2 * GIB
    processes: int = 32  # threads count too: the runner uses a few (torch, the BLAS)
    file_bytes: int = 64 * MIB
    cpu_seconds: int = 600
    scratch_bytes: int = 256 * MIB
    open_files: int = 512

    @property
    def address_space_bytes(self) -> int:
        return self.memory_bytes + ADDRESS_SPACE_HEADROOM

    @property
    def cgroup_bytes(self) -> int:
        """What all of one notebook's processes and its tmpfs folders may hold together, where the grader makes
        a memory cgroup (:mod:`tools.grading.memory_cgroup`): the memory limit plus the tmpfs folders' sizes."""
        return self.memory_bytes + self.scratch_bytes + TMP_BYTES + SHM_BYTES


def find_bwrap() -> str:
    """The path of ``bwrap``, or :class:`SandboxUnavailable` saying how to install it."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(INSTALL_HINT)
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        raise SandboxUnavailable("as root the grader drops each sandbox to a user of its own with `setpriv` "
                                 "(util-linux): `apt-get install util-linux`")
    return path


def probe_sandbox() -> None:
    """Start an empty sandbox with the namespaces grading uses; :class:`SandboxUnavailable` with bubblewrap's
    own message when this machine does not allow them (a container without user namespaces, say)."""
    bwrap = find_bwrap()
    try:
        program = sandbox_filter()
    except UnsupportedArchitecture as error:
        raise SandboxUnavailable(f"{error}: grade on one of those, or pass --no-sandbox for trusted submissions"
                                 ) from None
    read_end, write_end = os.pipe()
    os.write(write_end, program)
    os.close(write_end)
    try:
        probe = subprocess.run([bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                                "--proc", "/proc", "--dev", "/dev", "--seccomp", str(read_end), "true"],
                               capture_output=True, text=True, timeout=60, pass_fds=(read_end,))
    finally:
        os.close(read_end)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here ({probe.stderr.strip()[:300]}): in a "
                                 "container, allow user namespaces (or run it privileged); or pass --no-sandbox "
                                 "for trusted submissions")


def stage_course(destination: Path, sandboxed: bool = True) -> Path:
    """Copy what a sandbox may see (the course's student packages, compiled, and the runner) into ``destination``,
    readable by everyone and writable by no one; return it. The data folder is bound into a sandbox (here an
    empty mount point), linked for an unconfined run. A sandbox's stage also links to the virtual environment's
    :func:`view <tools.grading.environment.environment_view>` (built here when the environment has changed)."""
    course = destination / "course"
    for package in STUDENT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, course / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # compiled under the path a sandbox sees, so that no compiled file names the stage's host folder
        compileall.compile_dir(course / package, quiet=1, ddir=f"{COURSE_MOUNT}/{package}" if sandboxed else None)
    if sandboxed:
        (course / "data").mkdir()
        try:
            view = environment_view()
        except OSError as error:
            raise SandboxUnavailable(f"{error} (make one of them writable, or set XDG_CACHE_HOME)") from None
        if view is not None:
            (destination / ENVIRONMENT_LINK).symlink_to(view, target_is_directory=True)
    else:
        (course / "data").symlink_to(DATA_DIR, target_is_directory=True)
    (destination / "grader").mkdir()
    shutil.copy(RUNNER, destination / "grader" / "runner.py")
    shutil.copy(WIRE, destination / "grader" / "wire.py")
    for folder, _, files in os.walk(destination):
        os.chmod(folder, 0o555)
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
    return destination


def make_stage(sandboxed: bool = True) -> Path:
    """A fresh staged course in a temporary folder (remove it with :func:`remove_stage`)."""
    return stage_course(Path(tempfile.mkdtemp(prefix="vae-course-stage-")), sandboxed)


def remove_stage(stage: Path) -> None:
    """Delete a staged course (its folders are read-only)."""
    for folder, _, _ in os.walk(stage):
        os.chmod(folder, 0o755)
    shutil.rmtree(stage, ignore_errors=True)


def _ancestors(path: Path) -> list[str]:
    return [str(parent) for parent in reversed(path.parents) if str(parent) != "/"]


def _system_mounts() -> list[str]:
    """``/usr`` read-only, and ``/bin``, ``/lib``… as the host has them (symbolic links on merged-/usr systems)."""
    arguments = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            arguments += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            arguments += ["--ro-bind", str(host), f"/{name}"]
    for name in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        arguments += ["--ro-bind-try", name, name]
    return arguments


def _python_mounts(view: Path | None) -> list[str]:
    """The base interpreter read-only at its own path, with world-readable parent folders, and the virtual
    environment's :mod:`view <tools.grading.environment>` at :data:`ENVIRONMENT_MOUNT`; without a virtual
    environment (``view`` None), the installation at its own path."""
    roots = [Path(sys.base_prefix).resolve()] if view else sorted({Path(sys.base_prefix).resolve(),
                                                                   Path(sys.prefix).absolute(),
                                                                   Path(sys.prefix).resolve()})
    arguments: list[str] = []
    made: set[str] = set()
    for root in roots:
        for parent in _ancestors(root):
            if parent not in made and not parent.startswith("/usr") and parent != "/tmp":
                arguments += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        arguments += ["--ro-bind", str(root), str(root)]
    if view:
        arguments += ["--perms", "0755", "--dir", str(Path(ENVIRONMENT_MOUNT).parent),
                      "--ro-bind", str(view), ENVIRONMENT_MOUNT]
    return arguments


def sandbox_prefix(view: Path | None) -> str:
    """``sys.prefix`` inside a sandbox: the view's mount point, or the installation's own path."""
    return ENVIRONMENT_MOUNT if view else str(Path(sys.prefix).absolute())


def sandbox_environment(threads: int, prefix: str) -> dict[str, str]:
    """The whole environment inside: nothing of the grader's (no tokens, no keys), only what a lesson needs;
    ``prefix`` is the Python environment's path as the process sees it."""
    return {"HOME": SCRATCH_MOUNT, "PATH": f"{prefix}/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "USER": "student", "TMPDIR": f"{SCRATCH_MOUNT}/tmp", "PYTHONPATH": COURSE_MOUNT,
            "PYTHONIOENCODING": "utf-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{SCRATCH_MOUNT}/.matplotlib",
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "1000"), THREADS_ENV_VAR: str(threads),
            "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per arena otherwise
            **GRADING_TRAINING, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def limit_arguments(limits: Limits) -> list[str]:
    """``prlimit`` options setting each limit but the process limit (soft and hard) on the sandbox."""
    return ["prlimit", f"--data={limits.memory_bytes}", f"--as={limits.address_space_bytes}",
            f"--fsize={limits.file_bytes}",
            f"--cpu={limits.cpu_seconds}", "--core=0", f"--nofile={limits.open_files}", "--"]


def process_limit_counts_one_sandbox(as_root: bool, kernel_release: str | None = None) -> bool:
    """Whether a process limit set inside a sandbox counts that sandbox's processes only. The kernel counts a
    user's processes per user namespace since Linux 5.14: a sandbox (which an ordinary user's bwrap puts in a user
    namespace of its own) then counts its own. As root, each sandbox runs as a user of its own."""
    release = os.uname().release if kernel_release is None else kernel_release
    numbers = tuple(int(part) for part in re.findall(r"\d+", release)[:2])
    return as_root or numbers >= NAMESPACED_PROCESS_COUNT


def process_limit_arguments(limits: Limits, as_root: bool) -> list[str]:
    """``prlimit`` setting the process limit (threads count too) inside the sandbox, on the runner's own user,
    where :func:`process_limit_counts_one_sandbox`; nothing on an older kernel, where it would count all of an
    ordinary user's processes (the time limit and the CPU pin still bound a fork bomb there)."""
    if not process_limit_counts_one_sandbox(as_root):
        return []
    return ["prlimit", f"--nproc={limits.processes}", "--"]


def sandbox_command(stage: Path, runner_arguments: list[str], threads: int, limits: Limits, slot: int,
                    seccomp_fd: int) -> list[str]:
    """The command running ``python runner.py …`` in a fresh sandbox; ``slot`` tells concurrent sandboxes apart;
    ``seccomp_fd`` is a file descriptor (passed to the command) from which bwrap reads :func:`sandbox_filter`."""
    bwrap = find_bwrap()
    as_root = os.geteuid() == 0
    view = (stage / ENVIRONMENT_LINK).resolve() if (stage / ENVIRONMENT_LINK).is_symlink() else None
    command = [*limit_arguments(limits), bwrap,
               "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", "--clearenv", "--seccomp", str(seccomp_fd),
               *_system_mounts(),
               # /tmp before the Python mounts, which may lie below it (a checkout or environment under /tmp)
               "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
               *_python_mounts(view),
               "--ro-bind", str(stage / "course"), COURSE_MOUNT,
               "--ro-bind", str(DATA_DIR), f"{COURSE_MOUNT}/data",
               "--ro-bind", str(stage / "grader"), GRADER_MOUNT,
               # no procfs (its mount table names the host folders bound here); torch reads the CPU's features
               "--perms", "0555", "--size", str(MIB), "--tmpfs", "/proc",
               "--ro-bind-try", "/proc/cpuinfo", "/proc/cpuinfo", "--remount-ro", "/proc",
               "--dev", "/dev",
               "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
               "--perms", "0777", "--size", str(limits.scratch_bytes), "--tmpfs", SCRATCH_MOUNT,
               "--perms", "1777", "--dir", f"{SCRATCH_MOUNT}/tmp",
               "--chdir", SCRATCH_MOUNT]
    prefix = sandbox_prefix(view)
    for name, value in sandbox_environment(threads, prefix).items():
        command += ["--setenv", name, value]
    if as_root:
        uid = str(SANDBOX_UID_BASE + slot)
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "setpriv", "--reuid", uid, "--regid", uid,
                    "--clear-groups", "--"]
    return [*command, *process_limit_arguments(limits, as_root), f"{prefix}/bin/python", "-B", "-s",
            f"{GRADER_MOUNT}/runner.py", *runner_arguments]


def unconfined_command(stage: Path, runner_arguments: list[str], limits: Limits) -> list[str]:
    """The command running the runner with the grader's rights (``--no-sandbox``): only the limits apply."""
    return [*limit_arguments(limits), sys.executable, "-B", "-s",
            str(stage / "grader" / "runner.py"), *runner_arguments]


def unconfined_environment(stage: Path, threads: int) -> dict[str, str]:
    """Without a sandbox the staged course is found through PYTHONPATH; the rest is the sandbox's environment
    with real folders (the scratch folder is the working folder the grader makes)."""
    return {**sandbox_environment(threads, str(Path(sys.prefix).absolute())), "PYTHONPATH": str(stage / "course"),
            "HOME": os.environ.get("HOME", "/"),
            "TMPDIR": tempfile.gettempdir(), "MPLCONFIGDIR": tempfile.gettempdir()}
