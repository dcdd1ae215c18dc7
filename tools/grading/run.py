"""Running: each notebook's plan in a sandbox of its own, its verdicts read from the runner's signed records.

A notebook's verdicts come only from records on a pipe the grader opened for that run, each signed with a secret
the grader made for that run and sent on the runner's stdin: text the notebook prints is never read, and a record
the grader did not sign (a forgery written to the pipe) makes every exercise not yet judged ``tampered``.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import multiprocessing
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

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
from utils.threads import usable_cpus

DEFAULT_TIME_LIMIT_S = 300
# What the grader keeps of what the sandbox writes to its stdout and stderr (a crashed start's message); the
# rest is read and dropped, so a flood cannot grow the grader.
KEPT_OUTPUT = 8 * 1024
# The longest record a runner writes is a few messages of RUNNER_MESSAGE_LIMIT characters; longer is not ours.
RECORD_LIMIT = 256 * 1024
MISSING_NAME = re.compile(r"name '(\w+)' is not defined")
TAMPERED_MESSAGE = ("the checker, or a library function it relies on, was changed while your notebook ran ({}); "
                    "a verdict given after that cannot be trusted, so this exercise is not counted. Exercise cells "
                    "must not modify the course's checks or the libraries")
FORGED_MESSAGE = ("the grader received a verdict it did not write (the notebook's code wrote to the grader's "
                  "result channel); nothing judged after that is counted")
REFERENCE_MESSAGE = ("your exercise uses the course's own implementation ({}) instead of code of your own; the "
                     "check passed, but on the course's code: write the exercise yourself")


@dataclass(frozen=True)
class GradingOptions:
    """How notebooks are run: ``time_limit_s`` per notebook (sandbox start included), the sandbox's limits,
    and whether to sandbox at all (``sandboxed=False`` runs students' code with the grader's rights)."""

    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True


class ForgedRecord(RuntimeError):
    """A line on the result channel that the runner did not sign, or signed out of order."""


class ResultChannel:
    """The read end of a run's result pipe: yields the runner's records, verified, until a deadline."""

    def __init__(self, fd: int, key: bytes, deadline: float) -> None:
        self.fd, self.key, self.deadline = fd, key, deadline
        self.buffer = b""
        self.expected = 0
        self.closed = False

    def _verified(self, line: bytes) -> dict:
        payload, _, mac = line.rpartition(b"\t")
        expected_mac = hmac.new(self.key, payload, sha256).hexdigest().encode()
        if not hmac.compare_digest(mac, expected_mac):
            raise ForgedRecord("a record with a wrong signature")
        record = json.loads(payload)
        if record.get("seq") != self.expected:
            raise ForgedRecord("a record out of sequence (replayed)")
        self.expected += 1
        return record

    def next_record(self) -> dict | None:
        """The next record; None when the runner closed the channel; TimeoutError past the deadline."""
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self.fd], [], [], remaining)
            if not readable:
                raise TimeoutError
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.closed = True
                if self.buffer:
                    raise ForgedRecord("an unterminated record")
                return None
            self.buffer += chunk
            if len(self.buffer) > RECORD_LIMIT and b"\n" not in self.buffer:
                raise ForgedRecord("an overlong record")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return self._verified(line)


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


def _judge_check(result: ExerciseResult, record: dict, names: list[str], reference_uses: list[str]) -> None:
    """Set an exercise's result from its self-check's record: the checker returned, or how it raised."""
    if record.get("tampered"):
        result.status, result.message = "tampered", TAMPERED_MESSAGE.format("; ".join(record["tampered"]))
        return
    if result.status != "not graded":
        return
    raised = record.get("raised")
    if raised is None:
        if reference_uses:
            result.status, result.message = "fail", REFERENCE_MESSAGE.format(", ".join(reference_uses))
        else:
            result.status, result.message = "pass", "correct"
        return
    kind, ename, evalue = raised["kind"], raised["ename"], raised["evalue"]
    missing_name = MISSING_NAME.match(evalue) if ename == "NameError" else None
    if kind == "not_done":
        result.status, result.message = "not done", evalue
    elif kind == "code_raised":
        result.status, result.message = "error", evalue
    elif kind in ("failed", "assertion"):
        result.status, result.message = "fail", evalue
    elif missing_name and missing_name.group(1) in names:
        result.status = "missing"
        result.message = (f"the self-check calls `{missing_name.group(1)}`, which your notebook does not define "
                          "(renamed or deleted?)")
    else:
        hint = (" (only exercise cells are graded: define helpers inside the exercise cell)"
                if ename == "NameError" else "")
        result.status, result.message = "error", f"{ename}: {evalue}{_where(raised)}{hint}"


def _job(plan: GradingPlan, nonce: str, result_fd: int) -> bytes:
    cells = [{"source": c.source, "role": c.role, "exercise": c.exercise, "names": c.names} for c in plan.cells]
    return json.dumps({"nonce": nonce, "result_fd": result_fd, "checker_modules": plan.checker_modules,
                       "references": plan.references, "cells": cells}).encode()


def _start(plan: GradingPlan, options: GradingOptions, threads: int, stage: Path, scratch: Path, result_fd: int,
           nonce: str) -> subprocess.Popen:
    """Start the runner (in a sandbox unless told otherwise) and send it its job."""
    if options.sandboxed:
        command = sandbox_command(stage, [], threads, options.limits, os.getpid() % 100_000)
        environment, cwd = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, None
    else:
        command = unconfined_command(stage, [], options.limits)
        environment, cwd = unconfined_environment(stage, threads), str(scratch)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               pass_fds=(result_fd,), env=environment, cwd=cwd, start_new_session=True)
    try:
        process.stdin.write(_job(plan, nonce, result_fd))
        process.stdin.close()
    except BrokenPipeError:
        pass  # the sandbox did not start: its output says why
    return process


def run_plan(plan: GradingPlan, options: GradingOptions, threads: int, stage: Path) -> str:
    """Run a plan, filling its results from the runner's records; return the notebook-level problem ("" when
    the run went to its end)."""
    results = {result.number: result for result in plan.results}
    names = {cell.exercise: cell.names for cell in plan.cells if cell.role == "exercise"}
    uses = {number: list(used) for number, used in plan.reference_uses.items()}
    deadline = time.monotonic() + options.time_limit_s
    nonce = secrets.token_hex(32)
    read_fd, write_fd = os.pipe()
    kept = bytearray()
    problem, where, ready = "", None, False
    with tempfile.TemporaryDirectory(prefix="vae-course-grade-") as scratch:
        try:
            process = _start(plan, options, threads, stage, Path(scratch), write_fd, nonce)
        except OSError as error:  # prlimit, bwrap or Python missing or not executable
            os.close(read_fd)
            return f"the sandbox could not start: {error}"
        finally:
            os.close(write_fd)
        drain = threading.Thread(target=_drain, args=(process.stdout, kept), daemon=True)
        drain.start()
        channel = ResultChannel(read_fd, bytes.fromhex(nonce), deadline)
        try:
            while (record := channel.next_record()) is not None:
                event = record.get("event")
                if event == "ready":
                    ready = True
                elif event == "cell":
                    where = plan.cells[record["index"]].exercise
                elif event == "exercise":
                    if record.get("uses_reference"):
                        uses.setdefault(record["exercise"], []).append("a reference implementation")
                    _judge_exercise(results[record["exercise"]], record)
                elif event == "check":
                    used = uses.get(record["exercise"], []) + record.get("reference_called", [])
                    _judge_check(results[record["exercise"]], record, names.get(record["exercise"], []),
                                 sorted(set(used)))
                elif event == "done":
                    break
            else:
                problem = _died(process, where, ready, kept)
        except TimeoutError:
            place = f"at exercise {where}" if where else "before the first exercise"
            problem = f"time limit of {options.time_limit_s:g} s reached {place} (an endless loop?)"
        except ForgedRecord:
            problem = f"tampered: {FORGED_MESSAGE}"
            for result in results.values():
                if result.status == "not graded":
                    result.status, result.message = "tampered", FORGED_MESSAGE
        finally:
            _kill(process)
            os.close(read_fd)
            drain.join(timeout=5)
    if problem and where and results[where].status == "not graded":
        results[where].status, results[where].message = "error", problem
    return problem


def _kill(process: subprocess.Popen) -> None:
    """End a run: the sandbox's processes die with it (its PID namespace); an unconfined runner's process
    group is killed as well."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()


def _died(process: subprocess.Popen, where: str | None, ready: bool, kept: bytearray) -> str:
    """The problem of a runner that closed its channel before its last record."""
    status = process.wait()
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
        outcome.problem = run_plan(plan, options, threads, stage)
        for result in outcome.exercises:
            if result.status == "not graded" and not result.message:
                result.message = f"not graded: {outcome.problem}" if outcome.problem else "not graded"
    except NotGradable as error:
        outcome.problem = str(error)
    finally:
        if own_stage:
            remove_stage(stage)
    outcome.seconds = time.monotonic() - started
    return outcome


def grade_all(submissions: Path, expected_lesson: int | None = None, workers: int | None = None,
              options: GradingOptions | None = None, progress: bool = True) -> list[NotebookResult]:
    """Grade every submitted notebook on ``workers`` processes (default: the usable CPUs), with a progress
    bar; each sandbox gets an equal share of the CPUs. Results come back in submission order. Raises
    :class:`tools.grading.sandbox.SandboxUnavailable` when sandboxing is asked for and bwrap is missing."""
    options = options or GradingOptions()
    if options.sandboxed:
        probe_sandbox()
    found = find_submissions(submissions).notebooks
    if not found:
        return []
    workers = max(1, min(workers or usable_cpus(), len(found)))
    threads = max(1, usable_cpus() // workers)
    base = submissions if submissions.is_dir() else submissions.parent
    stage = make_stage(options.sandboxed)
    jobs = [(student, path, path.relative_to(base).as_posix(), expected_lesson, options, threads, stage)
            for student, path in found]
    results: list[NotebookResult | None] = [None] * len(jobs)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(grade_notebook, *job): position for position, job in enumerate(jobs)}
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                               disable=not progress, file=sys.stderr):
                results[futures[future]] = future.result()
    finally:
        remove_stage(stage)
    return [result for result in results if result is not None]
