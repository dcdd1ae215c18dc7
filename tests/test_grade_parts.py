"""The grader's parts that run no notebook: safe output, the static scan, cell matching, the signed events,
the wire between the checking process and the notebook's (values, gradients, deadlines, malformed frames)."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import threading
import time
from unittest import mock

import nbformat
import numpy as np
import pytest
import torch

from tools.build_notebooks import CELL_METADATA_KEY, SOLUTIONS_DIR
from tools.grading import wire
from tools.grading.plan import find_student_cell, find_submissions
from tools.grading.report import capped, feedback_file_names, fenced, spreadsheet_safe
from tools.grading.run import EventVerifier, ForgedRecord, grade_notebook
from tools.grading.sandbox import SandboxUnavailable, probe_sandbox
from tools.grading.scan import flag_lines, reference_uses


def test_a_fence_is_longer_than_any_backtick_run_inside() -> None:
    assert fenced("plain") == ["```text", "plain", "```"]
    opening, _, closing = fenced("a ````` b ``` c")
    assert opening == "``````text" and closing == "``````"


def test_quotes_are_capped_and_say_so() -> None:
    assert capped("short") == "short"
    assert capped("x" * 50, limit=10) == "x" * 10 + " … (40 more characters not shown)"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_starts_are_neutralised(value: str) -> None:
    assert spreadsheet_safe(value) in (f"'{value}", "\\r=1")  # a carriage return is written as its escape
    assert not spreadsheet_safe(value).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_ordinary_cells_are_left_alone() -> None:
    assert [spreadsheet_safe(v) for v in ("alice", 3, "1.5", "")] == ["alice", "3", "1.5", ""]


def test_feedback_file_names_are_distinct_also_without_case() -> None:
    names = feedback_file_names(["a b", "a_b", "Ann", "ann", "../etc/passwd", ""])
    assert len({name.lower() for name in names.values()}) == 6
    assert names["a_b"] == "a_b.md" and names["a b"].startswith("a_b-")
    assert all("/" not in name and not name.startswith(".") for name in names.values())


def test_the_scan_flags_introspection_and_the_operating_system_by_line() -> None:
    source = ("import numpy as np\n"
              "import inspect\n"
              "frame = __import__('sys')._getframe(1)\n"
              "os.kill(1, 9)\n"
              "open('/proc/self/fd/4')\n"
              "model.eval()\n")
    flags = [str(flag) for flag in flag_lines("1.1", source)]
    assert flags == ["1.1 line 2: import inspect", "1.1 line 3: ._getframe", "1.1 line 3: __import__",
                     "1.1 line 4: .kill", "1.1 line 5: the path '/proc'"]
    assert flag_lines("1.1", "def broken(:\n") == []


def test_the_scan_finds_reference_implementations_by_import_or_attribute() -> None:
    references = ["utils.vae.vae_loss"]
    assert reference_uses("from utils.vae import vae_loss as f", references) == references
    assert reference_uses("import utils.vae\nloss = utils.vae.vae_loss", references) == references
    assert reference_uses("def vae_loss(logits, x, mu, logvar, beta=1.0):\n    return vae_loss", references) == []


def _cell(source: str, marker: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if marker:
        cell.metadata[CELL_METADATA_KEY] = marker
    return cell


def test_a_students_cell_is_found_by_metadata_first_then_header_then_definition() -> None:
    by_metadata = _cell("# Exercise 1.2: renamed header\ndef f(): ...", {"exercise": "1.1", "role": "exercise"})
    by_header = _cell("# Exercise 1.1: title\ndef g(): ...")
    notebook = nbformat.v4.new_notebook(cells=[by_header, by_metadata])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == by_metadata.source
    notebook = nbformat.v4.new_notebook(cells=[by_header, _cell("def f(): return 1")])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == by_header.source
    notebook = nbformat.v4.new_notebook(cells=[_cell("def f(): return 1"), _cell("def f(): return 2")])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == "def f(): return 2"
    assert find_student_cell(nbformat.v4.new_notebook(cells=[]), "1.1", "def f(): ...") is None


def _signed(key: bytes, record: dict) -> dict:
    line = json.dumps(record)
    return {"op": "event", "record": line, "mac": hmac.new(key, line.encode(), hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(("header", "error"), [
    ({"op": "event", "record": '{"seq": 0, "event": "done"}', "mac": "f00d"}, "wrong signature"),
    ("signed seq 1", "out of sequence"), ({"op": "event", "record": 3}, "without a signature")])
def test_the_event_verifier_refuses_what_the_runner_did_not_sign(header: dict | str, error: str) -> None:
    key = os.urandom(32)
    verifier = EventVerifier(key)
    with pytest.raises(ForgedRecord, match=error):
        verifier.verified(_signed(key, {"seq": 1, "event": "done"}) if header == "signed seq 1" else header)
    assert verifier.verified(_signed(key, {"seq": 0, "event": "ready"})) == {"seq": 0, "event": "ready"}


def _peers(deadline_s: float = 20) -> tuple[wire.Peer, wire.Peer, threading.Thread, dict]:
    """A caller and a server joined by two pipes; the server (a thread) serves ``functions`` until told to
    stop, as the sandbox's runner does during a check."""
    to_server, to_caller = os.pipe(), os.pipe()
    functions: dict = {}

    def raised(header: dict) -> BaseException:
        return RuntimeError(header.get("evalue"))

    server = wire.Peer(wire.Channel(to_server[0], to_caller[1]), lambda header: functions[header["name"]],
                       lambda error: {"ename": type(error).__name__, "evalue": str(error)}, raised)
    caller = wire.Peer(wire.Channel(to_caller[0], to_server[1], time.monotonic() + deadline_s),
                       lambda header: None, lambda error: {"evalue": str(error)}, raised)

    def serve() -> None:
        with contextlib.suppress(wire.PeerGone):
            while True:
                header, blobs = server.channel.receive()
                if header.get("op") == "release":
                    return
                server.serve(header, blobs)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return caller, server, thread, functions


def test_values_cross_the_wire_as_plain_data() -> None:
    caller, _, thread, functions = _peers()
    functions["echo"] = lambda *args, **kwargs: (args, kwargs)
    values = (None, True, 3, 2.5, float("nan"), "é", [1, (2, 3)], {"a": np.arange(6).reshape(2, 3)},
              np.float32(1.5), torch.arange(4.0, dtype=torch.float64).reshape(2, 2)[:, 0], torch.tensor(7))
    (args, kwargs) = caller.call({"op": "call", "name": "echo"}, values, {"key": np.eye(2)})
    assert args[:4] == values[:4] and np.isnan(args[4]) and args[5:7] == values[5:7]
    assert np.array_equal(args[7]["a"], values[7]["a"]) and args[8] == np.float32(1.5)
    assert torch.equal(args[9], torch.tensor([0.0, 2.0], dtype=torch.float64)) and args[10].shape == ()
    assert np.array_equal(kwargs["key"], np.eye(2))
    generators = caller.call({"op": "call", "name": "echo"}, (np.random.default_rng(3),
                                                              torch.Generator().manual_seed(4)), {})[0]
    assert generators[0].normal() == np.random.default_rng(3).normal()
    again = torch.Generator().manual_seed(4)
    assert torch.equal(torch.randn(3, generator=generators[1]), torch.randn(3, generator=again))
    with pytest.raises(wire.Uncarriable):
        caller.call({"op": "call", "name": "echo"}, (object(),), {})
    caller.channel.send({"op": "release"})
    thread.join(5)


def test_gradients_cross_the_wire_both_ways() -> None:
    """The check's tensors get the gradients of the student's result, and the student's code gets the gradients
    of a check's function it calls, as finite differences say they are."""
    caller, _, thread, functions = _peers()
    functions["quadratic"] = lambda w, f: (f(w) * w).sum()  # calls back into the caller's function f
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    value = caller.call({"op": "call", "name": "quadratic"}, (w, torch.sin), {})
    (gradient,) = torch.autograd.grad(value, w)
    assert torch.allclose(gradient, torch.sin(w) + w * torch.cos(w))
    callback = caller.call({"op": "call", "name": "quadratic"}, (w, lambda v: v.exp()), {})
    (gradient,) = torch.autograd.grad(callback, w)
    step = 1e-6
    numeric = [(((w + step * e).exp() * (w + step * e)).sum() - ((w - step * e).exp() * (w - step * e)).sum())
               / (2 * step) for e in torch.eye(3, dtype=torch.float64)]
    assert torch.allclose(gradient, torch.stack(numeric).detach(), rtol=1e-6)
    functions["detached"] = lambda w: w.detach() * 2
    assert not caller.call({"op": "call", "name": "detached"}, (w,), {}).requires_grad
    caller.channel.send({"op": "release"})
    thread.join(5)


def test_changes_in_place_and_requires_grad_cross_as_in_one_process() -> None:
    """An argument the called code changes in place is changed for the caller too (the checks look for such
    changes); a result that takes part in autograd arrives as a tensor that does."""
    caller, _, thread, functions = _peers()

    def changes(array: np.ndarray, tensor: torch.Tensor, untouched: np.ndarray) -> None:
        array[0] = -1.0
        tensor.mul_(3)

    functions["changes"] = changes
    array, tensor, untouched = np.zeros(3), torch.ones(2), np.arange(4.0)
    caller.call({"op": "call", "name": "changes"}, (array, tensor, untouched), {})
    assert array.tolist() == [-1.0, 0.0, 0.0] and tensor.tolist() == [3.0, 3.0]
    assert untouched.tolist() == [0.0, 1.0, 2.0, 3.0]
    functions["parameter"] = lambda: torch.nn.Parameter(torch.ones(2))
    assert caller.call({"op": "call", "name": "parameter"}, (), {}).requires_grad
    caller.channel.send({"op": "release"})
    thread.join(5)


def test_a_students_exception_is_the_builtin_of_its_name_and_never_more() -> None:
    from tools.grading.run import StudentRaised, _student_exception
    runtime = _student_exception({"ename": "RuntimeError", "evalue": "backward returned 1 gradient"})
    assert isinstance(runtime, RuntimeError) and isinstance(runtime, StudentRaised)
    for name in ("ExerciseCheckFailed", "SystemExit", "KeyboardInterrupt", "UnicodeDecodeError"):
        error = _student_exception({"ename": name, "evalue": "x"})
        assert type(error).__name__ == name and isinstance(error, StudentRaised)
        assert not isinstance(error, (AssertionError, SystemExit, KeyboardInterrupt, UnicodeDecodeError))


def test_the_seccomp_filter_refuses_other_socket_families_memfds_and_affinity() -> None:
    """Issue #32: a vsock socket could be made in the sandbox. Under the filter, in bubblewrap as the grader
    starts it, Unix and IP sockets open; vsock, netlink and packet sockets, memfd_create, shmget,
    sched_setaffinity, statmount and listmount fail."""
    from tools.grading.seccomp import UnsupportedArchitecture, sandbox_filter
    with pytest.raises(UnsupportedArchitecture):
        sandbox_filter("riscv64")
    probe_sandbox()
    code = ("import ctypes, os, socket\nresults = []\n"
            "for family, kind in ((1, 1), (2, 1), (10, 2), (40, 1), (16, 2), (17, 3)):\n"
            "    try:\n        socket.socket(family, kind).close()\n        results.append('open')\n"
            "    except OSError as error:\n        results.append(os.strerror(error.errno))\n"
            "for call in (lambda: os.memfd_create('m'), lambda: os.sched_setaffinity(0, {0})):\n"
            "    try:\n        call()\n        results.append('done')\n"
            "    except OSError as error:\n        results.append(os.strerror(error.errno))\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "results.append('done' if libc.shmget(0, 4096, 0o1600) >= 0 else os.strerror(ctypes.get_errno()))\n"
            + _MOUNT_QUERIES + "print(results)")
    read_end, write_end = os.pipe()
    os.write(write_end, sandbox_filter())
    os.close(write_end)
    try:
        run = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-net",
                              "--unshare-ipc", "--seccomp", str(read_end), sys.executable, "-c", code],
                             pass_fds=(read_end,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(read_end)
    refused_family, refused = os.strerror(errno.EAFNOSUPPORT), os.strerror(errno.EPERM)
    assert run.stdout.strip() == str(["open"] * 3 + [refused_family] * 3 + [refused] * 3
                                     + [os.strerror(errno.ENOSYS)] * 2), run.stderr


# statmount (457) and listmount (458) with no request: a kernel that has them answers EFAULT, the filter ENOSYS.
_MOUNT_QUERIES = ("libc.syscall.restype = ctypes.c_long\n"
                  "for number in (457, 458):\n"
                  "    results.append('done' if libc.syscall(number, 0, 0, 0, 0) >= 0 "
                  "else os.strerror(ctypes.get_errno()))\n")


@pytest.mark.skipif(tuple(int(part) for part in os.uname().release.split(".")[:2]) < (6, 8),
                    reason="listmount and statmount exist since Linux 6.8")
def test_without_the_filter_the_mount_queries_exist() -> None:
    """The control of the filter's listmount and statmount: unfiltered, the kernel has them (the red team read
    every bound folder's host path with them)."""
    code = "import ctypes, os\nresults = []\nlibc = ctypes.CDLL(None, use_errno=True)\n" + _MOUNT_QUERIES + \
        "print(results)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == str([os.strerror(errno.EFAULT)] * 2), run.stderr


def test_a_silent_peer_hits_the_deadline_and_a_malformed_frame_is_refused() -> None:
    read_fd, write_fd = os.pipe()
    with pytest.raises(wire.DeadlineReached):
        wire.Channel(read_fd, write_fd, time.monotonic() + 0.2).receive()
    os.write(write_fd, struct.pack("!I", 2**31))
    with pytest.raises(wire.ProtocolError, match="larger"):
        wire.Channel(read_fd, write_fd, time.monotonic() + 2).receive()
    header = json.dumps({"op": "return", "value": {"t": "ndarray", "dtype": "object", "shape": [1], "blob": 0},
                         "blobs": 0}).encode()
    os.write(write_fd, struct.pack("!I", len(header)) + header)
    received, blobs = wire.Channel(read_fd, write_fd, time.monotonic() + 2).receive()
    with pytest.raises(wire.ProtocolError, match="malformed array"):
        wire.Decoder(blobs).decode(received["value"])
    os.close(read_fd)
    os.close(write_fd)


def test_only_regular_files_inside_the_folder_are_submissions(tmp_path) -> None:
    (tmp_path / "real.ipynb").write_text("{}")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "real.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")
    found = find_submissions(tmp_path)
    assert [student for student, _ in found.notebooks] == ["real"]
    assert {student: reason.split(" (")[0] for student, _, reason in found.refused} == {
        "link": "a symbolic link", "fifo": "not a regular file"}


def test_a_machine_without_namespaces_is_refused_with_bubblewraps_reason(monkeypatch) -> None:
    refused = subprocess.CompletedProcess([], 1, "", "bwrap: No permissions to creating new namespace")
    monkeypatch.setattr("tools.grading.sandbox.subprocess.run", lambda *args, **kwargs: refused)
    with pytest.raises(SandboxUnavailable, match="No permissions to creating new namespace.*--no-sandbox"):
        probe_sandbox()


def test_a_sandbox_that_cannot_start_is_a_note_and_nothing_is_graded(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("tools.grading.run._start", mock.Mock(side_effect=FileNotFoundError("no prlimit")))
    result = grade_notebook("zoe", SOLUTIONS_DIR / "01_latent_variable_models.ipynb", "zoe.ipynb")
    assert result.problem == "the sandbox could not start: no prlimit"
    assert [(e.status, e.message) for e in result.exercises] == [
        ("not graded", "not graded: the sandbox could not start: no prlimit")] * 3


def test_every_reference_implementation_exists_and_names_a_graded_exercise() -> None:
    """A reference moved or renamed in utils must fail here, not inside every student's sandbox."""
    import importlib

    from tools.build_notebooks import build_lesson, lesson_sources
    from tools.grading.references import REFERENCE_IMPLEMENTATIONS
    exercises = {exercise.number for source in lesson_sources() for exercise in build_lesson(source).exercises}
    for number, names in REFERENCE_IMPLEMENTATIONS.items():
        assert number in exercises, f"exercise {number} does not exist"
        for dotted in names:
            module, _, attribute = dotted.rpartition(".")
            assert callable(getattr(importlib.import_module(module), attribute)), dotted
