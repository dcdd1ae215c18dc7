"""One memory cgroup per graded notebook, where the grader may create one: every process of the notebook's
sandbox and every page its tmpfs folders hold count together against one limit, so forking does not multiply
the per-process limits and a full ``/scratch`` is not memory outside every limit.

The cgroup is made below the grader's own in cgroup v1's ``memory`` hierarchy, which root may write (CI, a
grading service). cgroup v2 is not used: the grader's own cgroup holds the grader, and v2 gives a cgroup's
children a controller only when it holds no process itself, so the grader would first have to move into a leaf
of its own, which an ordinary user may do only in a subtree systemd delegates. Elsewhere :func:`memory_cgroup`
yields ``None`` and only the per-process limits of :mod:`tools.grading.sandbox` apply.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# How long a cgroup whose processes were just killed may take to empty before it is removed anyway.
EMPTY_WAIT_S = 5.0


def own_memory_cgroup(self_cgroup: str, root: Path = CGROUP_ROOT) -> Path | None:
    """The folder of this process's cgroup in the v1 ``memory`` hierarchy, from ``/proc/self/cgroup``'s text
    (``4:memory:/path``); ``None`` without one."""
    for line in self_cgroup.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if "memory" in controllers.split(","):
            return root / "memory" / path.lstrip("/")
    return None


def create_memory_cgroup(limit_bytes: int, self_cgroup_file: Path = Path("/proc/self/cgroup"),
                         root: Path = CGROUP_ROOT) -> Path | None:
    """A new cgroup below this process's own whose memory (swap included where it is accounted) is capped at
    ``limit_bytes``; ``None`` where none can be made (no v1 memory hierarchy, or not allowed to write it)."""
    try:
        parent = own_memory_cgroup(self_cgroup_file.read_text(), root)
    except OSError:
        return None
    if parent is None:
        return None
    group = parent / f"vae-course-grading-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        group.mkdir()
    except OSError:  # no v1 memory hierarchy, or not root
        return None
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
    except OSError:
        group.rmdir()  # just made, holding no process
        return None
    with contextlib.suppress(OSError):  # swap not accounted: no such file
        (group / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
    return group


def enter_command(group: Path) -> list[str]:
    """A command prefix that moves itself into ``group`` and then runs the rest (so every process the command
    starts is in it from its first instruction)."""
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(group)]


def remove_memory_cgroup(group: Path) -> None:
    """Remove a cgroup once its processes have exited (killing any left after :data:`EMPTY_WAIT_S`)."""
    give_up = time.monotonic() + EMPTY_WAIT_S
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > give_up:
                break
            time.sleep(0.05)
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.2)
    with contextlib.suppress(OSError):
        group.rmdir()


def memory_cgroups_available() -> bool:
    """Whether the grader can make a memory cgroup here (one is made and removed)."""
    group = create_memory_cgroup(2**30)
    if group is not None:
        remove_memory_cgroup(group)
    return group is not None


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int, wanted: bool = True) -> Iterator[Path | None]:
    """A memory cgroup for one notebook's processes (``None`` where none can be made or none is ``wanted``),
    removed afterwards."""
    group = create_memory_cgroup(limit_bytes) if wanted else None
    try:
        yield group
    finally:
        if group is not None:
            remove_memory_cgroup(group)
