"""The system calls a sandbox may not make: a seccomp filter (classic BPF) that bubblewrap installs with
``--seccomp FD`` before it runs the notebook's process.

The filter is small enough to read. It refuses, with an error number (the call fails, the process goes on):

- ``socket()`` of every family but ``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` (``EAFNOSUPPORT``): the sandbox's
  network namespace has only a down loopback for IP, and no other family (vsock, netlink, packet, bluetooth, …)
  may reach the host or its kernel;
- ``io_uring_setup`` (``ENOSYS``): io_uring can open sockets and files without passing through ``socket()``;
- ``memfd_create`` and ``shmget`` (``EPERM``): memory held in a memfd or a System V segment belongs to no
  process's address space and outlives its mappings, so no per-process limit would count it;
- ``sched_setaffinity`` (``EPERM``): each sandbox is pinned to its share of the CPUs (see ``run.py``), and may not
  spread to the others';
- ``listmount`` and ``statmount`` (``ENOSYS``, as on a kernel before 6.8): they report, without privileges, the
  host folder behind every mount the process sees, which the sandbox hides (its ``/proc`` has no mount table);
- every call of another architecture's ABI (x32 on x86-64, a 32-bit personality): the numbers above are the
  native ones.

Assembled with :mod:`struct` from the kernel's ABI (``linux/filter.h``, ``linux/seccomp.h``, ``linux/audit.h``).
"""
from __future__ import annotations

import errno
import platform
import socket
import struct

# struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }
_INSTRUCTION = struct.Struct("=HBBI")
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_IF_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_IF_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
_ERROR = 0x00050000  # SECCOMP_RET_ERRNO | errno
# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; } (little-endian: the low
# 32 bits of args[0], the socket family, an int, are at offset 16)
_NUMBER, _ARCHITECTURE, _FIRST_ARGUMENT = 0, 4, 16
_X32_SYSCALL_BIT = 0x40000000

# AUDIT_ARCH_* and the native system call numbers (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h).
ARCHITECTURES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {"socket": 41, "shmget": 29, "sched_setaffinity": 203, "memfd_create": 319,
                            "io_uring_setup": 425, "statmount": 457, "listmount": 458}),
    "aarch64": (0xC00000B7, {"socket": 198, "shmget": 194, "sched_setaffinity": 122, "memfd_create": 279,
                             "io_uring_setup": 425, "statmount": 457, "listmount": 458}),
}
ALLOWED_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)
REFUSED = {"io_uring_setup": errno.ENOSYS, "memfd_create": errno.EPERM, "shmget": errno.EPERM,
           "sched_setaffinity": errno.EPERM, "statmount": errno.ENOSYS, "listmount": errno.ENOSYS}


class UnsupportedArchitecture(RuntimeError):
    """No filter is written for this machine's architecture."""


def _instruction(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return _INSTRUCTION.pack(code, jump_true, jump_false, k)


def sandbox_filter(machine: str | None = None) -> bytes:
    """The filter's program (an array of ``struct sock_filter``) for ``machine`` (default: this one's)."""
    machine = machine or platform.machine()
    if machine not in ARCHITECTURES:
        raise UnsupportedArchitecture(f"no seccomp filter for the {machine} architecture (x86_64 and aarch64 only)")
    audit_arch, numbers = ARCHITECTURES[machine]
    refused = sorted(REFUSED.items())
    # Layout: 0 load arch; 1 arch? ; 2 load nr; [3 x32?]; socket?; refused calls…; allow; families…; refuse family;
    # then one return per refused call, and the wrong-ABI return last.
    body: list[tuple] = [("load", _NUMBER)]
    if machine == "x86_64":
        body.append(("x32",))
    body.append(("is_socket",))
    body += [("is", name) for name, _ in refused]
    body.append(("allow",))
    body.append(("load", _FIRST_ARGUMENT))
    body += [("family", family) for family in ALLOWED_FAMILIES]
    body.append(("refuse_family",))
    body.append(("allow_family",))
    returns = [name for name, _ in refused] + ["wrong_abi"]
    start = 2  # after the architecture check
    position = {kind: start + index for index, kind in enumerate(body)}
    return_at = {name: start + len(body) + index for index, name in enumerate(returns)}
    program = [_instruction(_LOAD_WORD, _ARCHITECTURE),
               _instruction(_JUMP_IF_EQUAL, audit_arch, 0, return_at["wrong_abi"] - 2)]
    for index, step in enumerate(body):
        here = start + index
        kind = step[0]
        if kind == "load":
            program.append(_instruction(_LOAD_WORD, step[1]))
        elif kind == "x32":
            program.append(_instruction(_JUMP_IF_AT_LEAST, _X32_SYSCALL_BIT, return_at["wrong_abi"] - here - 1, 0))
        elif kind == "is_socket":
            program.append(_instruction(_JUMP_IF_EQUAL, numbers["socket"], position[("load", _FIRST_ARGUMENT)]
                                        - here - 1, 0))
        elif kind == "is":
            program.append(_instruction(_JUMP_IF_EQUAL, numbers[step[1]], return_at[step[1]] - here - 1, 0))
        elif kind in ("allow", "allow_family"):
            program.append(_instruction(_RETURN, _ALLOW))
        elif kind == "family":
            program.append(_instruction(_JUMP_IF_EQUAL, step[1], position[("allow_family",)] - here - 1, 0))
        elif kind == "refuse_family":
            program.append(_instruction(_RETURN, _ERROR | errno.EAFNOSUPPORT))
    program += [_instruction(_RETURN, _ERROR | number) for _, number in refused]
    program.append(_instruction(_RETURN, _ERROR | errno.ENOSYS))
    return b"".join(program)
