"""The grader's verdict equals the notebook's: every answer of the mistake catalogue (tests/mistakes/) is checked
twice, once as a student's notebook runs the self-check (in one process) and once as the grader does (the check in
this process, the answer in another, called across the wire of plain data: tools/grading/wire.py, with the
checks' drivers for the exercises that hand the student's code a model or a class), and both must give the same
verdict class; a wrong answer's message keeps its diagnosis."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mistakes.catalogue import Answer, Exercise
from tools.build_notebooks import lesson_number, lesson_sources
from tools.grading import runner, wire
from tools.grading.results import ExerciseResult
from tools.grading.run import _describe_for_student, _no_named_functions, _student_exception, run_check
from utils.checks import ExerciseCheckFailed, ExerciseCodeRaised, ExerciseNotDone

REPO = Path(__file__).resolve().parents[1]
LESSONS = tuple(f"lesson{lesson_number(source):02d}" for source in lesson_sources())
CHECKER_MODULES = [f"utils.checks.{lesson}" for lesson in LESSONS]
EXERCISES: dict[str, Exercise] = {exercise.number: exercise for lesson in LESSONS
                                  for exercise in importlib.import_module(f"tests.mistakes.{lesson}").EXERCISES}
# The exercises whose checks hand the student's code objects (a module class, a model, an optimizer, an
# autograd.Function, a load case): their checks reach the student's code through drivers.
DRIVEN = ("7.2", "7.3", "7.4", "8.2", "9.1", "9.2", "9.3")
# Lessons 1-6 and 10 are checked across the wire in tests/test_grade.py's graded notebooks; here every answer of
# the driven exercises, and of 8.3, whose check looks for changes to its arguments.
ACROSS = (*DRIVEN, "8.3")
CASES = [(number, kind, index) for number in ACROSS for kind in ("wrong", "correct")
         for index in range(len(getattr(EXERCISES[number], kind)))]
NAME = re.compile(r"answer_(\d+)_(\d+)_(wrong|correct)_(\d+)")


def _answer(number: str, kind: str, index: int) -> Answer:
    return getattr(EXERCISES[number], kind)[index]


def _name(number: str, kind: str, index: int) -> str:
    return f"answer_{number.replace('.', '_')}_{kind}_{index}"


def serve() -> None:
    """The notebook's side, run in a process of its own: serve the grader's calls of catalogue answers (named by
    :func:`_name`) on stdin and stdout, as the sandbox's runner serves a notebook's functions."""
    channel = wire.Channel(0, 1)
    sys.stdout = sys.stderr  # fd 1 is the wire: what the answers print goes to stderr

    def resolve(header: dict) -> object:
        number_major, number_minor, kind, index = NAME.fullmatch(str(header.get("name"))).groups()
        student = _answer(f"{number_major}.{number_minor}", kind, int(index)).function
        return runner.served(student, header, CHECKER_MODULES)

    peer = wire.Peer(channel, resolve, lambda error: runner._raise_fields(error, {}), runner._rebuilt)
    while True:
        header, blobs = channel.receive()
        if header.get("op") == "release":  # the end of a check, as in the runner
            peer.reset()
            continue
        peer.serve(header, blobs)


@pytest.fixture(scope="module")
def notebook_side() -> Iterator[wire.Peer]:
    process = subprocess.Popen([sys.executable, "-c", "from tests.test_checks_across_the_wire import serve; serve()"],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    channel = wire.Channel(process.stdout.fileno(), process.stdin.fileno(), time.monotonic() + 1800)
    yield wire.Peer(channel, _no_named_functions, _describe_for_student, _student_exception)
    process.kill()
    process.wait()


def _local_status(exercise: Exercise, answer: Answer) -> str:
    """The verdict class of the self-check as a notebook runs it."""
    try:
        exercise.check(answer.function)
    except ExerciseNotDone:
        return "not done"
    except ExerciseCodeRaised:
        return "error"
    except ExerciseCheckFailed:
        return "fail"
    return "pass"


@pytest.mark.parametrize(("number", "kind", "index"), CASES, ids=lambda v: str(v))
def test_the_grader_gives_the_notebooks_verdict(notebook_side: wire.Peer, number: str, kind: str, index: int,
                                                capsys: pytest.CaptureFixture) -> None:
    exercise, answer = EXERCISES[number], _answer(number, kind, index)
    name = _name(number, kind, index)
    result = ExerciseResult(number, "")
    run_check(f"check({name})", result, notebook_side, [name], {"check": exercise.check}, [])
    notebook_side.channel.send({"op": "release"})
    local = _local_status(exercise, answer)
    capsys.readouterr()
    assert result.status == local, (answer.description, result.message)
    assert result.status == "pass" if kind == "correct" else result.status in ("fail", "error"), result.message
    if kind == "wrong":
        assert answer.message in result.message, (answer.description, result.message)
