"""Running: each notebook's plan in a sandbox of its own, its self-checks here, in the grading worker.

Every verdict is decided in this process: the check cells run here on stand-ins for the notebook's functions and
classes, which call them (or a driver of the check on them) in the sandbox across a pipe of plain data
(:mod:`tools.grading.wire`). The runner's own records (a cell started, an exercise cell raised), each signed with a
secret the grader made for that run, can only lower a grade; text the notebook prints is never read, and a record
the grader did not sign, or one out of place, makes every exercise not yet judged ``tampered``.
"""
from __future__ import annotations

import builtins
import contextlib
import hmac
import importlib
import io
import json
import multiprocessing
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import IO, Any

import torch
from tqdm.auto import tqdm

from tools.grading import wire
from tools.grading.memory_cgroup import enter_command, memory_cgroup
from tools.grading.plan import (
    GradingPlan,
    NotGradable,
    find_submissions,
    identify_lesson,
    lessons_by_number,
    plan_grading,
    read_submission,
)
from tools.grading.results import ExerciseResult, NotebookResult
from tools.grading.sandbox import (
    Limits,
    make_stage,
    probe_sandbox,
    remove_stage,
    sandbox_command,
    unconfined_command,
    unconfined_environment,
)
from tools.grading.seccomp import sandbox_filter
from utils.checks._core import StandIn
from utils.threads import usable_cpus

DEFAULT_TIME_LIMIT_S = 300
# What the grader keeps of what the sandbox writes to its stdout and stderr (a crashed start's message); the
# rest is read and dropped, so a flood cannot grow the grader.
KEPT_OUTPUT = 8 * 1024
# What the grader quotes of a message from the notebook's process (the runner caps its own at the same).
RUNNER_MESSAGE_LIMIT = 4000
# How long a notebook's process that closed the grader's channel may take to exit before it is killed.
EXIT_GRACE_S = 5.0
FORGED_MESSAGE = ("the grader received a verdict it did not write (the notebook's code wrote to the grader's "
                  "result channel); nothing judged after that is counted")
REFERENCE_MESSAGE = ("your exercise uses the course's own implementation ({}) instead of code of your own; the "
                     "check passed, but on the course's code: write the exercise yourself")


@dataclass(frozen=True)
class GradingOptions:
    """How notebooks are run: ``time_limit_s`` per notebook (sandbox start included), the sandbox's limits,
    whether to sandbox at all (``sandboxed=False`` runs students' code with the grader's rights), and whether to
    bound each notebook's processes together in a memory cgroup (:mod:`tools.grading.memory_cgroup`)."""

    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True
    memory_cgroup: bool = True  # one memory cgroup per notebook, where the grader can make one


class ForgedRecord(RuntimeError):
    """An event on the result channel that the runner did not sign, signed out of order, or that names nothing
    of this notebook."""


class EventVerifier:
    """Checks the runner's events: each signed with the run's key, numbered in order."""

    def __init__(self, key: bytes) -> None:
        self.key, self.expected = key, 0

    def verified(self, header: dict) -> dict:
        line, mac = header.get("record"), header.get("mac")
        if not isinstance(line, str) or not isinstance(mac, str):
            raise ForgedRecord("an event without a signature")
        expected_mac = hmac.new(self.key, line.encode(), sha256).hexdigest()
        if not hmac.compare_digest(mac.encode(), expected_mac.encode()):
            raise ForgedRecord("an event with a wrong signature")
        try:
            record = json.loads(line)
        except ValueError:
            raise ForgedRecord("an event that is not JSON") from None
        if not isinstance(record, dict) or record.get("seq") != self.expected:
            raise ForgedRecord("an event out of sequence (replayed)")
        self.expected += 1
        return record


def _drain(stream: IO[bytes], kept: bytearray) -> None:
    """Read ``stream`` to its end, keeping its first :data:`KEPT_OUTPUT` bytes."""
    while chunk := stream.read(65536):
        if len(kept) < KEPT_OUTPUT:
            kept += chunk[: KEPT_OUTPUT - len(kept)]


def _where(raised: dict) -> str:
    where = raised.get("where")
    if not where:
        return ""
    return f" at line {where['line']} of your exercise {where['exercise']} cell: `{where['code']}`"


def _judge_exercise(result: ExerciseResult, record: dict) -> None:
    """Note an error the student's exercise cell raised when it ran."""
    raised = record.get("raised")
    if raised and result.status != "missing":
        result.status = "error"
        result.message = f"your exercise cell raised {raised['ename']}: {raised['evalue']}{_where(raised)}"


def _job(plan: GradingPlan, nonce: str, result_fd: int) -> dict:
    cells = [{"source": c.source, "role": c.role, "exercise": c.exercise, "names": c.names} for c in plan.cells]
    return {"nonce": nonce, "result_fd": result_fd, "checker_modules": plan.checker_modules,
            "references": plan.references, "cells": cells}


def _start(plan: GradingPlan, options: GradingOptions, threads: int, stage: Path, scratch: Path, result_fd: int,
           group: Path | None) -> subprocess.Popen:
    """Start the runner (in a sandbox unless told otherwise, in the memory cgroup ``group`` where there is one);
    its stdin is the grader's side of the wire."""
    enter = enter_command(group) if group else []
    if not options.sandboxed:
        return subprocess.Popen([*enter, *unconfined_command(stage, [], options.limits)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(result_fd,),
                                env=unconfined_environment(stage, threads), cwd=str(scratch), start_new_session=True)
    filter_fd, write_end = os.pipe()  # the seccomp program, read by bwrap at its start (a few hundred bytes)
    try:
        os.write(write_end, sandbox_filter())
        os.close(write_end)
        command = sandbox_command(stage, [], threads, options.limits, os.getpid() % 100_000, filter_fd)
        return subprocess.Popen([*enter, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, pass_fds=(result_fd, filter_fd),
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, start_new_session=True)
    finally:
        os.close(filter_fd)


class StudentRaised(Exception):  # noqa: N818  (named by the student's exception, which it stands for)
    """An exception the notebook's function raised when the check called it, rebuilt from its name and message;
    ``student_where`` names the student's line for :func:`utils.checks._core.exercise_check`."""

    student_where = ""


class ReferenceCalled(BaseException):  # noqa: N818
    """The notebook's function ran the course's own implementation of its exercise during the check."""


class MissingFunction(BaseException):  # noqa: N818
    """The check called a function the notebook does not define."""


def _safe_name(text: object) -> str:
    return "".join(c for c in str(text) if c.isalnum() or c == "_")[:100] or "Exception"


def _student_exception(header: dict) -> BaseException:
    """The exception to raise in the check for a "raise" answer from the notebook's process."""
    if "reference" in header:
        return ReferenceCalled(str(header["reference"])[:200])
    if "missing" in header:
        return MissingFunction(str(header["missing"])[:200])
    message = str(header.get("evalue", ""))[:RUNNER_MESSAGE_LIMIT]
    if header.get("not_done") is True:
        return NotImplementedError(message)
    error = _rebuilt_exception(_safe_name(header.get("ename")), message)
    where = header.get("where")
    if isinstance(where, dict) and {"line", "code"} <= where.keys():
        error.student_where = f" (line {where['line']} of your code: `{str(where['code'])[:300]}`)"
    return error


def _rebuilt_exception(name: str, message: str) -> StudentRaised:
    """A :class:`StudentRaised` named ``name`` that is also the built-in exception of that name where there is
    one (a RuntimeError PyTorch raised on the student's backward is a RuntimeError to the check, as in one
    process); never a BaseException that is not an Exception."""
    builtin = getattr(builtins, name, None)
    bases: tuple[type, ...] = (StudentRaised,)
    if isinstance(builtin, type) and issubclass(builtin, Exception) and builtin is not Exception:
        bases = (StudentRaised, builtin)
    try:
        return type(name, bases, {})(message)
    except TypeError:  # a layout or constructor of its own (UnicodeDecodeError, …): the name alone
        return type(name, (StudentRaised,), {})(message)


def _describe_for_student(error: BaseException) -> dict:
    """What the notebook's code is told when a function of the check it called raises."""
    return {"ename": type(error).__name__, "evalue": str(error)[:RUNNER_MESSAGE_LIMIT], "not_done": False,
            "where": None}


class StudentFunction(StandIn):
    """The check's stand-in for a function or class the notebook defines: calling it calls that function in the
    notebook's process, and :func:`utils.checks._core.student_call` runs one of the check's drivers there on it,
    with the arguments and the result carried as plain data (:mod:`tools.grading.wire`)."""

    def __init__(self, peer: wire.Peer, name: str) -> None:
        self.peer, self.name, self.__name__ = peer, name, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.peer.call({"op": "call", "name": self.name}, args, kwargs)

    def drive(self, driver: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        return self.peer.call({"op": "call", "name": self.name, "driver": f"{driver.__module__}.{driver.__name__}"},
                              args, kwargs)


def _checkers(modules: list[str]) -> dict[str, Any]:
    """The lesson's ``check_…`` functions, imported in this (the checking) process."""
    return {name: value for module in modules for name, value in vars(importlib.import_module(module)).items()
            if name.startswith("check_")}


def run_check(source: str, result: ExerciseResult, peer: wire.Peer, student_names: list[str],
              checkers: dict[str, Any], reference_uses: list[str]) -> None:
    """Run one self-check cell here, in the checking process, on the notebook's functions (called across the
    wire); set the exercise's result from how the checker ended. The verdict is this process's alone."""
    from utils.checks._core import ExerciseCheckFailed, ExerciseCodeRaised, ExerciseNotDone
    namespace = {**checkers, **{name: StudentFunction(peer, name) for name in student_names}}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            exec(compile(source, f"<self-check {result.number}>", "exec"), namespace)  # noqa: S102  (ours)
    except ReferenceCalled as used:
        result.status, result.message = "fail", REFERENCE_MESSAGE.format(used)
        return
    except MissingFunction as missing:
        result.status = "missing"
        result.message = (f"the self-check calls `{missing}`, which your notebook does not define (renamed or "
                          "deleted?)")
        return
    except ExerciseNotDone as error:
        result.status, result.message = "not done", str(error)
        return
    except ExerciseCodeRaised as error:
        result.status, result.message = "error", str(error)
        return
    except (ExerciseCheckFailed, AssertionError) as error:
        result.status, result.message = "fail", str(error)
        return
    except Exception as error:  # noqa: BLE001  (a check cell that raised outside the checker)
        result.status, result.message = "error", f"{type(error).__name__}: {error}"
        return
    finally:
        peer.reset()
    if reference_uses:
        result.status, result.message = "fail", REFERENCE_MESSAGE.format(", ".join(reference_uses))
    else:
        result.status, result.message = "pass", "correct"


def _judge_event(record: dict, results: dict[str, ExerciseResult], uses: dict[str, list[str]]) -> None:
    """Note an event of the notebook's process, which can only lower a grade: an exercise cell's error, or an
    exercise that is (or subclasses) a reference implementation; a lesson cell's event is nothing to judge."""
    event, number = record.get("event"), record.get("exercise")
    if event == "lesson":
        return
    if event != "exercise":
        raise ForgedRecord("an event of no kind the runner sends here")
    if number not in results:
        raise ForgedRecord("an event naming no exercise of this notebook")
    if record.get("uses_reference"):
        uses.setdefault(number, []).append("a reference implementation")
    _judge_exercise(results[number], record)


def run_plan(plan: GradingPlan, options: GradingOptions, threads: int, stage: Path) -> str:
    """Run a plan, filling its results: the notebook's cells in the sandbox, its self-checks here; return the
    notebook-level problem ("" when the run went to its end)."""
    results = {result.number: result for result in plan.results}
    uses = {number: list(used) for number, used in plan.reference_uses.items()}
    deadline = time.monotonic() + options.time_limit_s
    nonce = secrets.token_hex(32)
    checkers = _checkers(plan.checker_modules)
    read_fd, write_fd = os.pipe()
    kept = bytearray()
    problem, where, ready = "", None, False
    with tempfile.TemporaryDirectory(prefix="vae-course-grade-") as scratch, \
            memory_cgroup(options.limits.cgroup_bytes, options.memory_cgroup) as group:
        try:
            process = _start(plan, options, threads, stage, Path(scratch), write_fd, group)
        except OSError as error:  # prlimit, bwrap or Python missing or not executable
            os.close(read_fd)
            return f"the sandbox could not start: {error}"
        finally:
            os.close(write_fd)
        drain = threading.Thread(target=_drain, args=(process.stdout, kept), daemon=True)
        drain.start()
        os.set_blocking(read_fd, False)
        os.set_blocking(process.stdin.fileno(), False)
        channel = wire.Channel(read_fd, process.stdin.fileno(), deadline)
        peer = wire.Peer(channel, _no_named_functions, _describe_for_student, _student_exception)
        verifier = EventVerifier(bytes.fromhex(nonce))
        student_names = [name for cell in plan.cells if cell.role == "exercise" for name in cell.names]
        try:
            channel.send({"op": "job", "job": _job(plan, nonce, write_fd)})
            while True:
                header, _ = channel.receive()
                if header.get("op") != "event":
                    raise ForgedRecord("a message outside a call")
                record = verifier.verified(header)
                event = record.get("event")
                if event == "ready":
                    ready = True
                elif event == "cell":
                    index = record.get("index")
                    if type(index) is not int or not 0 <= index < len(plan.cells):
                        raise ForgedRecord("an event naming no cell of this notebook")
                    where = plan.cells[index].exercise
                elif event == "serve":
                    number = record.get("exercise")
                    if number not in results:
                        raise ForgedRecord("a check this notebook does not have")
                    cell = plan.cells[record["index"]] if type(record.get("index")) is int \
                        and 0 <= record["index"] < len(plan.cells) else None
                    if cell is None or cell.role != "check" or cell.exercise != number:
                        raise ForgedRecord("a check this notebook does not have")
                    if results[number].status == "not graded":
                        run_check(cell.source, results[number], peer, student_names, checkers,
                                  sorted(set(uses.get(number, []))))
                    channel.send({"op": "release"})
                elif event == "done":
                    break
                else:
                    _judge_event(record, results, uses)
        except wire.PeerGone:
            problem = _died(process, where, ready, kept, deadline)
        except wire.DeadlineReached:
            place = f"at exercise {where}" if where else "before the first exercise"
            problem = f"time limit of {options.time_limit_s:g} s reached {place} (an endless loop?)"
        except (ForgedRecord, wire.ProtocolError) as error:
            problem = f"tampered: {FORGED_MESSAGE} ({error})"
            for result in results.values():
                if result.status == "not graded":
                    result.status, result.message = "tampered", f"{FORGED_MESSAGE} ({error})"
        finally:
            _kill(process)
            os.close(read_fd)
            drain.join(timeout=5)
    if problem and where and results[where].status == "not graded":
        results[where].status, results[where].message = "error", problem
    unchecked = [number for number in results if results[number].status == "not graded"]
    if not problem and unchecked:
        problem = (f"not graded: the notebook's process reported its end before exercise {unchecked[0]}'s check "
                   "ran")
    return problem


def _no_named_functions(header: dict) -> Any:
    raise wire.ProtocolError("the notebook's process called the grader by name")


def _kill(process: subprocess.Popen) -> None:
    """End a run: the sandbox's processes die with it (its PID namespace); an unconfined runner's process
    group is killed as well."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()


def _died(process: subprocess.Popen, where: str | None, ready: bool, kept: bytearray, deadline: float) -> str:
    """The problem of a runner that closed its channel before its last record (waiting for its exit no longer
    than the run's deadline: a process that closed the channel and sleeps is killed)."""
    try:
        status = process.wait(timeout=max(0.0, min(EXIT_GRACE_S, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        return "the notebook's process closed the grader's channel and did not exit: it was stopped"
    if not ready:
        tail = kept.decode("utf-8", "replace").strip()[-1500:]
        return f"the sandbox did not start (exit status {status}): {tail}"
    place = f"at exercise {where}" if where else "before the first exercise"
    return f"Python died {place} (the code exited Python, was killed, or ran out of memory; exit status {status})"


def grade_notebook(student: str, path: Path, display_path: str, expected_lesson: int | None = None,
                   options: GradingOptions | None = None, threads: int = 1, stage: Path | None = None
                   ) -> NotebookResult:
    """Grade one submitted notebook; every failure is a result, never an exception. ``stage`` is a staged
    course (:func:`tools.grading.sandbox.make_stage`); one is made and removed when it is not given."""
    options = options or GradingOptions()
    started = time.monotonic()
    outcome = NotebookResult(student=student, notebook=display_path)
    own_stage = stage is None
    stage = make_stage(options.sandboxed) if stage is None else stage
    try:
        submission = read_submission(path)
        lesson = identify_lesson(submission)
        lessons = lessons_by_number()
        if lesson is None or lesson not in lessons:
            raise NotGradable("not a notebook of this course (no lesson metadata and no exercise headers)")
        if expected_lesson is not None and lesson != expected_lesson:
            raise NotGradable(f"not a notebook of lesson {expected_lesson} (it is lesson {lesson}'s)")
        outcome.lesson = lesson
        plan = plan_grading(lessons[lesson], submission)
        outcome.exercises, outcome.flags = plan.results, plan.flags
        torch.set_num_threads(threads)  # the checks run here
        outcome.problem = run_plan(plan, options, threads, stage)
        for result in outcome.exercises:
            if result.status == "not graded" and not result.message:
                result.message = outcome.problem if outcome.problem.startswith("not graded") else \
                    f"not graded: {outcome.problem}" if outcome.problem else "not graded"
    except NotGradable as error:
        outcome.problem = f"not graded: {error}"
    except Exception as error:  # noqa: BLE001  (one notebook never stops the class: its failure is its result)
        outcome.problem = f"not graded: the grader could not grade this notebook ({type(error).__name__})"
        for result in outcome.exercises:
            if result.status == "not graded":
                result.message = outcome.problem
    finally:
        if own_stage:
            remove_stage(stage)
    outcome.seconds = time.monotonic() - started
    return outcome


def cpu_shares(workers: int) -> list[set[int]]:
    """Each worker's share of the CPUs this process may use: equal, disjoint where there are enough."""
    cpus = sorted(os.sched_getaffinity(0))
    size = max(1, len(cpus) // workers)
    return [set(cpus[(index * size) % len(cpus):][:size]) for index in range(workers)]


def _take_cpu_share(shares: Any) -> None:
    """A grading worker's start: pin it to one share of the CPUs (a queue's next), which the sandboxes it starts
    inherit and cannot leave (the seccomp filter refuses sched_setaffinity): a notebook that forks to its process
    limit slows its own share, not the other workers'."""
    with contextlib.suppress(queue.Empty, OSError):
        os.sched_setaffinity(0, shares.get(timeout=30))


def grade_all(submissions: Path, expected_lesson: int | None = None, workers: int | None = None,
              options: GradingOptions | None = None, progress: bool = True) -> list[NotebookResult]:
    """Grade every submitted notebook on ``workers`` processes (default: the usable CPUs), with a progress
    bar; each worker and its sandboxes are pinned to an equal share of the CPUs. Results come back in submission
    order. Raises :class:`tools.grading.sandbox.SandboxUnavailable` when sandboxing is asked for and bwrap is
    missing."""
    options = options or GradingOptions()
    if options.sandboxed:
        probe_sandbox()
    submitted = find_submissions(submissions)
    found = submitted.notebooks
    base = submissions if submissions.is_dir() else submissions.parent
    refused = [NotebookResult(student=student, notebook=_shown(path, base), problem=f"not graded: {reason}")
               for student, path, reason in submitted.refused]
    if not found:
        return refused
    workers = max(1, min(workers or usable_cpus(), len(found)))
    threads = max(1, usable_cpus() // workers)
    stage = make_stage(options.sandboxed)
    jobs = [(student, path, path.relative_to(base).as_posix(), expected_lesson, options, threads, stage)
            for student, path in found]
    results: list[NotebookResult | None] = [None] * len(jobs)
    try:
        context = multiprocessing.get_context("spawn")
        shares = context.Queue()
        for share in cpu_shares(workers) if hasattr(os, "sched_setaffinity") else []:
            shares.put(share)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_take_cpu_share,
                                 initargs=(shares,)) as pool:
            futures = {pool.submit(grade_notebook, *job): position for position, job in enumerate(jobs)}
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                               disable=not progress, file=sys.stderr):
                position = futures[future]
                try:
                    results[position] = future.result()
                except Exception as error:  # noqa: BLE001  (a worker that died: that notebook's result, not ours)
                    student, _, shown = jobs[position][:3]
                    results[position] = NotebookResult(student=student, notebook=shown, problem=(
                        f"not graded: the grading worker failed ({type(error).__name__})"))
    finally:
        remove_stage(stage)
    return [result for result in results if result is not None] + refused


def _shown(path: Path, base: Path) -> str:
    """A submission's path as the gradebook shows it: relative to the submissions folder where it is inside."""
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
