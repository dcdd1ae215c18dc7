"""The mistake catalogue (tests/mistakes/): every exercise's self-check rejects each plausible wrong answer with
a clear message (the diagnosis named in the catalogue, where there is one) and accepts each correct answer written
differently from the solution."""
from __future__ import annotations

import functools
import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.mistakes import lesson01 as mistakes01
from tests.mistakes import lesson03 as mistakes03
from tests.mistakes import lesson04 as mistakes04
from tests.mistakes.catalogue import Answer, Exercise
from tools.build_notebooks import build_lesson, lesson_number, lesson_sources
from utils.checks import ExerciseCheckFailed, ExerciseNotDone
from utils.checks import lesson01 as checks01

# Every lesson's checks, found from the lesson sources: a new lesson needs utils/checks/lessonNN.py and its catalogue
# tests/mistakes/lessonNN.py, or this module fails to import, naming the missing one.
LESSONS = tuple(f"lesson{lesson_number(source):02d}" for source in lesson_sources())
LESSON_SOURCES = Path(__file__).resolve().parents[1] / "lessons"
EXERCISES: list[Exercise] = [exercise for lesson in LESSONS
                             for exercise in importlib.import_module(f"tests.mistakes.{lesson}").EXERCISES]
WRONG = [(exercise, answer) for exercise in EXERCISES for answer in exercise.wrong]
CORRECT = [(exercise, answer) for exercise in EXERCISES for answer in exercise.correct]


def _case_id(case: tuple[Exercise, Answer]) -> str:
    return f"{case[0].number} {case[1].description}"


def test_every_check_has_a_catalogue_of_six_mistakes_and_two_correct_answers() -> None:
    checks = {exercise.check.__name__ for exercise in EXERCISES}
    modules = [importlib.import_module(f"utils.checks.{lesson}") for lesson in LESSONS]
    every_check = {name for module in modules for name, function in inspect.getmembers(module, inspect.isfunction)
                   if name.startswith("check_") and function.__module__ == module.__name__}
    assert checks == every_check
    for exercise in EXERCISES:
        assert len(exercise.wrong) >= 6 and len(exercise.correct) >= 2, exercise.number


def test_every_exercise_of_every_lesson_has_a_catalogue() -> None:
    exercises = {exercise.number for source in lesson_sources() for exercise in build_lesson(source).exercises}
    assert {exercise.number for exercise in EXERCISES} == exercises


@pytest.mark.parametrize("case", WRONG, ids=_case_id)
def test_the_check_rejects_the_mistake(case: tuple[Exercise, Answer], capsys: pytest.CaptureFixture) -> None:
    exercise, answer = case
    with pytest.raises(ExerciseCheckFailed) as failure:
        exercise.check(answer.function)
    assert "✅" not in capsys.readouterr().out
    message = str(failure.value)
    assert answer.message in message, f"expected the diagnosis {answer.message!r}, got {message!r}"
    assert "checking your result raised" not in message, "the checker itself failed on this answer"
    ours = re.sub(r"\(line \d+ of your code: `.*?`\)", "", message)  # the student's own line, quoted back
    handed_over = [piece for piece in answer.hands_over if piece in ours]
    handed_over += [line for line in _solution_lines(exercise.number.split(".")[0]) if line in ours]
    assert not handed_over, f"the message writes the answer's code: {handed_over}"


@functools.cache
def _solution_lines(lesson: str) -> tuple[str, ...]:
    """The code lines (30 characters or more, comments left out) between BEGIN SOLUTION and END SOLUTION in the
    lesson's source: no check's message may contain one."""
    source = next(LESSON_SOURCES.glob(f"{int(lesson):02d}_*.py")).read_text(encoding="utf-8")
    blocks = re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", source, flags=re.DOTALL)
    lines = (line.split("  #")[0].strip() for block in blocks for line in block.splitlines())
    return tuple(line for line in lines if len(line) >= 30 and not line.startswith("#"))


@pytest.mark.parametrize("case", CORRECT, ids=_case_id)
def test_the_check_accepts_the_correct_answer(case: tuple[Exercise, Answer], capsys: pytest.CaptureFixture) -> None:
    exercise, answer = case
    exercise.check(answer.function)
    assert "✅" in capsys.readouterr().out


def test_a_stub_is_not_done_whatever_the_check() -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError("ancestral_sample")

    with pytest.raises(ExerciseNotDone, match="ancestral_sample: not done yet"):
        checks01.check_ancestral_sample(stub)


def _reseeded_numpy(answer, offset: int):
    """The answer drawing from another stream: what a correct answer that consumes random numbers differently
    looks like to the check."""
    return lambda n, w, b, sigma, rng: answer(n, w, b, sigma, np.random.default_rng([int(rng.integers(2**32)), offset]))


def _reseeded_torch(answer, offset: int):
    return lambda *args: answer(*args[:-1], torch.Generator().manual_seed(args[-1].initial_seed() * 1000 + offset))


def _reseeded_loop(answer, offset: int):
    return lambda log_joint, x, d, steps, lr, n_samples, seed: answer(log_joint, x, d, steps=steps, lr=lr,
                                                                      n_samples=n_samples, seed=seed * 1000 + offset)


STATISTICAL = [(mistakes01.ANCESTRAL, _reseeded_numpy, 50), (mistakes03.ELBO_ESTIMATE, _reseeded_torch, 30),
               (mistakes03.MAXIMIZE, _reseeded_loop, 8), (mistakes04.REPARAM_GRADIENT, _reseeded_torch, 50)]


@pytest.mark.parametrize(("exercise", "reseed", "streams"), STATISTICAL, ids=lambda v: getattr(v, "number", ""))
def test_a_statistical_check_accepts_a_correct_answer_whatever_its_random_stream(exercise, reseed, streams) -> None:
    """Each statistical check refuses a correct answer with probability < 1e-6 by design; here every correct answer
    of the catalogue passes with many random streams."""
    for answer in exercise.correct:
        for offset in range(streams):
            exercise.check(reseed(answer.function, offset))


def test_a_backward_stub_is_not_done_though_pytorch_calls_it() -> None:
    """NotImplementedError is a RuntimeError, which the lesson 9 checks translate when PyTorch refuses a backward's
    result: a stub must still be 'not done yet'."""
    from tests.mistakes.lesson09 import _BrentProjection
    from utils.checks import lesson09 as checks09

    class BackwardNotDone(_BrentProjection):  # forward right, backward still the exercise's stub
        @staticmethod
        def backward(ctx, grad_output):
            raise NotImplementedError("volume projection")

    with pytest.raises(ExerciseNotDone, match="not done yet"):
        checks09.check_volume_projection(BackwardNotDone)
