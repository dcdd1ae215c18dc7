"""What every self-check promises, whatever the exercise: it leaves the global random state alone, a stub
gets a one-line "not done yet", a student's exception names the student's line, and no failure shows the
checker's source (where the reference answer is computed)."""
from __future__ import annotations

import inspect
import random
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.checks import (
    ExerciseCheckFailed,
    ExerciseCodeRaised,
    ExerciseNotDone,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
    lesson10,
)
from utils.vae import Decoder

CHECKS = [function for module in (lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07,
                                                 lesson08, lesson09, lesson10)
          for name, function in inspect.getmembers(module, inspect.isfunction)
          if name.startswith("check_") and function.__module__ == module.__name__]
CHECKS_DIR = Path(lesson01.__file__).parent


def _random_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def _assert_same_states(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's global generator changed"
    assert np.array_equal(before[1], after[1]), "NumPy's global generator changed"
    assert before[2] == after[2], "Python's random module changed"


def _checker_frames(error: BaseException) -> list[str]:
    return [frame.filename for frame in traceback.extract_tb(error.__traceback__)
            if Path(frame.filename).parent == CHECKS_DIR and not frame.filename.endswith("_core.py")]


def test_every_exercise_has_a_check() -> None:
    """One check function per exercise of the lessons (each exercise cell is followed by its check cell)."""
    from tools.build_notebooks import build_lesson, lesson_sources
    assert len(CHECKS) == sum(len(build_lesson(source).exercises) for source in lesson_sources())


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_a_check_leaves_the_global_random_state_alone(check) -> None:
    def draws_then_fails(*args, **kwargs):
        torch.rand(3), np.random.rand(3), random.random()
        raise ValueError("student bug")

    torch.manual_seed(12345)
    before = _random_states()
    with pytest.raises(ExerciseCodeRaised, match="student bug"):
        check(draws_then_fails)
    _assert_same_states(before, _random_states())


def test_a_passing_check_that_seeds_torch_restores_it(capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(7)
    before = _random_states()
    lesson07.check_decoder(Decoder)  # seeds torch's global generator to initialise the student's layers
    assert "✅" in capsys.readouterr().out
    _assert_same_states(before, _random_states())


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_a_stub_is_not_done_in_one_line_without_the_checkers_source(check) -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 9.9: the title")

    with pytest.raises(ExerciseNotDone) as error:
        check(stub)
    assert str(error.value).startswith("Exercise 9.9: the title: not done yet.")
    assert error.value.__suppress_context__ and error.value.__cause__ is None
    assert _checker_frames(error.value) == []


def test_a_students_exception_names_the_students_line() -> None:
    def log_joint(x, z, w, b, sigma):
        scale = sigma**2
        return np.sqrt(scale) + undefined_name  # noqa: F821

    with pytest.raises(ExerciseCodeRaised) as error:
        lesson01.check_log_joint(log_joint)
    message = str(error.value)
    assert message.startswith("log_joint: your code raised NameError: name 'undefined_name' is not defined")
    assert "of your code: `return np.sqrt(scale) + undefined_name  # noqa: F821`" in message
    assert _checker_frames(error.value) == []


def test_a_wrong_answer_keeps_the_checks_message_without_the_checkers_source() -> None:
    expected = r"log_joint \(D=1, σ=1.2, 7 values of z\): Your result is zero"
    with pytest.raises(ExerciseCheckFailed, match=expected) as error:
        lesson01.check_log_joint(lambda x, z, w, b, sigma: np.zeros(len(z)))
    assert not isinstance(error.value, ExerciseCodeRaised)
    assert _checker_frames(error.value) == []


def test_a_result_the_check_cannot_read_is_not_blamed_on_a_line() -> None:
    with pytest.raises(ExerciseCodeRaised, match=r"^log_joint: checking your result raised ValueError") as error:
        lesson01.check_log_joint(lambda x, z, w, b, sigma: "not a number")
    assert "of your code" not in str(error.value)


def test_a_function_without_a_return_is_told_it_returned_none() -> None:
    def log_joint_without_return(x, z, w, b, sigma):
        np.zeros(len(z))

    with pytest.raises(ExerciseCheckFailed, match=r"returned None: is its `return` line missing\?"):
        lesson01.check_log_joint(log_joint_without_return)


@pytest.mark.parametrize("check", [c for c in CHECKS if c.__name__ != "check_decoder"], ids=lambda c: c.__name__)
def test_a_result_never_returned_is_named(check) -> None:
    """A function that computes its answer but has no return line is told so, whatever the exercise (the decoder,
    a class, is told to keep its from_latent layer instead)."""
    with pytest.raises(ExerciseCheckFailed, match="returned None"):
        check(lambda *args, **kwargs: None)
