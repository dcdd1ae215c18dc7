"""Comparison and reporting primitives shared by every lesson's checkers, and :func:`exercise_check`, the
decorator every ``check_…`` wears."""
from __future__ import annotations

import contextlib
import functools
import linecache
import random
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import torch

CheckFunction = TypeVar("CheckFunction", bound=Callable[..., None])
Result = TypeVar("Result")
_INSTALLED_CODE = ("stdlib", "platstdlib", "purelib", "platlib")
_NOT_STUDENT_CODE = tuple({str(Path(__file__).resolve().parents[1]),
                           *(sysconfig.get_paths()[key] for key in _INSTALLED_CODE)})


class ExerciseCheckFailed(AssertionError):
    """A student's answer differs from the reference; the message says how."""


class ExerciseNotDone(NotImplementedError):
    """The student's function still raises NotImplementedError."""


class ExerciseCodeRaised(ExerciseCheckFailed):
    """The student's code raised an exception while the check ran it; the message names the student's line."""


@contextlib.contextmanager
def _global_random_state_preserved() -> Iterator[None]:
    """Run the enclosed code and restore the global random state of torch (CPU), NumPy and Python after it,
    so a check never changes the random numbers of the cells that follow."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _where_in_student_code(trace: TracebackType | None) -> str:
    """`` (line N of your code: `…`)`` for the innermost frame outside the course's utils, the standard library
    and installed packages, or "" when the error did not come from the student's code."""
    where = ""
    for frame, line_number in traceback.walk_tb(trace):
        filename = frame.f_code.co_filename
        if filename.startswith(_NOT_STUDENT_CODE) or filename.startswith("<frozen"):
            continue
        code = linecache.getline(filename, line_number, frame.f_globals).strip()
        where = f" (line {line_number} of your code: `{code}`)" if code else f" (line {line_number} of your code)"
    return where


def exercise_check(check: CheckFunction) -> CheckFunction:
    """Make ``check`` safe to show a student: it runs with the global random state saved and restored; a stub
    still raising NotImplementedError becomes a one-line :class:`ExerciseNotDone`; an exception from the
    student's code becomes :class:`ExerciseCodeRaised` naming the student's line; and every failure is raised
    afresh, so the traceback never walks through the checker's source (where the reference answer is)."""
    subject = check.__name__.removeprefix("check_")

    @functools.wraps(check)
    def run_check(*args: Any, **kwargs: Any) -> None:
        # pytest leaves this frame out of its tracebacks; IPython shows it, but only the re-raise below, never
        # the checker's code.
        __tracebackhide__ = True  # noqa: F841
        with _global_random_state_preserved():
            try:
                check(*args, **kwargs)
                return
            except ExerciseCheckFailed as failure:
                problem: Exception = type(failure)(str(failure))
            except NotImplementedError as stub:
                problem = ExerciseNotDone(f"{stub or subject}: not done yet. Replace the `raise NotImplementedError` "
                                          "line with your code, run that cell, then this one.")
            except Exception as error:  # noqa: BLE001  (whatever the student's code raises is reported, not hidden)
                # An error the student's code raised in its own process (the grader's two-process mode) names
                # the student's line itself.
                from_student = hasattr(error, "student_where")  # raised in the student's process
                where = error.student_where if from_student else _where_in_student_code(error.__traceback__)
                cause = "your code raised" if where or from_student else "checking your result raised"
                problem = ExerciseCodeRaised(f"{subject}: {cause} {type(error).__name__}: {error}{where}")
        raise problem from None

    return run_check  # type: ignore[return-value]


class StandIn:
    """A stand-in for an object of the student's that lives in another process (in the grader, the notebook's
    sandbox): a check reaches such an object only through :func:`student_call`."""

    def drive(self, driver: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        raise NotImplementedError


def student_call(driver: Callable[..., Result], student: Any, *args: Any, **kwargs: Any) -> Result:
    """``driver(student, *args, **kwargs)``: the part of a check that must touch the student's object (build a
    class, call it, read its layers) and returns plain data (numbers, arrays, tensors, lists, dicts) for the
    verdict. In a notebook it runs here; in the grader ``student`` is a :class:`StandIn` and the driver runs in the
    student's process, so what comes back is data the verdict judges, never an object."""
    if isinstance(student, StandIn):
        return student.drive(driver, args, kwargs)
    return driver(student, *args, **kwargs)


def passed(name: str) -> None:
    """Print the line a student sees when an exercise is correct."""
    print(f"✅ {name}: correct")


def returned(subject: str, value: Result) -> Result:
    """``value`` itself, unless it is None: a function that computes its result but never returns it is told so,
    rather than that its result has the wrong shape."""
    if value is None:
        raise ExerciseCheckFailed(f"{subject}: your function returned None: is its `return` line missing?")
    return value


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _matches(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: np.ndarray | float) -> bool:
    return (actual.shape == expected.shape and bool(np.all(np.isfinite(actual)))
            and bool(np.all(np.abs(actual - expected) <= atol + rtol * np.abs(expected))))


def _pattern_of_error(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: np.ndarray) -> str:
    """A sentence naming a structured error (wrong sign, zero, a constant factor, a constant offset), or ""."""
    if actual.size < 2 and np.all(np.abs(expected) < 1e-12):
        return ""
    if _matches(-actual, expected, rtol, atol):
        return "Your result has the wrong sign."
    if np.all(actual == 0):
        return "Your result is zero everywhere."
    if actual.size < 2:
        return ""
    nonzero = np.abs(expected) > 1e-12
    if np.any(nonzero):
        ratio = float(np.median(actual[nonzero] / expected[nonzero]))
        if _matches(actual, ratio * expected, rtol, atol):
            return (f"Your result is {ratio:.4g} times the right one everywhere: a constant factor is wrong "
                    "(a missing ½, a mean taken for a sum, …).")
    offset = float(np.median(actual - expected))
    if _matches(actual, expected + offset, rtol, atol):
        return (f"Your result is off by the same amount ({offset:+.4g}) everywhere: a constant term "
                "(a normalising constant such as log 2π) is missing or wrong.")
    return ""


def assert_close(name: str, actual: Any, expected: Any, *, rtol: float, atol: Any, hint: str = "",
                 mistakes: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ExerciseCheckFailed` unless ``actual`` matches ``expected`` elementwise.

    The message names what is wrong, the most specific first: a known mistake (``mistakes`` maps a description
    such as "with σ in place of σ²" to the value that mistake gives), then a structured error (sign, constant
    factor, constant offset), then the worst mismatch with ``hint`` (what usually causes it).
    """
    returned(name, actual)
    actual_np, expected_np, atol = _to_numpy(actual), _to_numpy(expected), _to_numpy(atol)
    if _matches(actual_np, expected_np, rtol, atol):
        return
    for description, mistaken in (mistakes or {}).items():
        if _matches(actual_np, _to_numpy(mistaken), rtol, atol):
            raise ExerciseCheckFailed(f"{name}: your result equals what you get {description}.")
    if actual_np.shape != expected_np.shape:
        raise ExerciseCheckFailed(f"{name}: expected shape {expected_np.shape}, got {actual_np.shape}. {hint}".rstrip())
    if not np.all(np.isfinite(actual_np)):
        raise ExerciseCheckFailed(f"{name}: the result contains NaN or inf. {hint}".rstrip())
    pattern = _pattern_of_error(actual_np, expected_np, rtol, atol)
    if pattern:
        raise ExerciseCheckFailed(f"{name}: {pattern} {hint}".rstrip())
    error = np.abs(actual_np - expected_np)
    allowed = atol + rtol * np.abs(expected_np)
    allowed = np.broadcast_to(allowed, error.shape)
    worst = np.unravel_index(np.argmax(error - allowed), error.shape)
    raise ExerciseCheckFailed(
        f"{name}: mismatch at index {tuple(int(i) for i in worst)}: got {actual_np[worst]:.6g}, "
        f"expected {expected_np[worst]:.6g} (tolerance {allowed[worst]:.2g}). {hint}".rstrip())


def check_draws_from_generator(subject: str, estimate: Callable[[torch.Generator], float]) -> None:
    """Fail unless ``estimate`` (the student's function run with the given generator) repeats with the same seed
    and changes with another: every random number must come from the generator argument."""
    first, again, other = (estimate(torch.Generator().manual_seed(seed)) for seed in (5, 5, 6))
    if first != again:
        raise ExerciseCheckFailed(f"{subject}: two calls with the same seed gave different estimates; draw ε with the "
                                  "`generator` argument (torch.randn(..., generator=generator))")
    if first == other:
        raise ExerciseCheckFailed(f"{subject}: generators with different seeds gave the same estimate; draw ε from the "
                                  "`generator` argument, not from a seed of your own")


def gradients(subject: str, output: torch.Tensor, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gradients of ``output.sum()`` with respect to each named input; a result that is not differentiable,
    or that does not depend on one of the inputs, is reported by the input's name."""
    if not isinstance(output, torch.Tensor) or not output.requires_grad:
        raise ExerciseCheckFailed(f"{subject}: the result is not differentiable. Compute it with torch operations "
                                  "only (no .item(), .detach(), .numpy() or NumPy functions).")
    grads = torch.autograd.grad(output.sum(), tuple(inputs.values()), allow_unused=True)
    unused = [name for name, grad in zip(inputs, grads, strict=True) if grad is None]
    if unused:
        raise ExerciseCheckFailed(f"{subject}: no gradient reaches {', '.join(unused)}: the result must be computed "
                                  "from it with torch operations, without .detach(), .item() or NumPy.")
    return dict(zip(inputs, grads, strict=True))
