"""Self-checks that exercises call.

Each checker compares a student's function with an independent reference (closed forms,
``torch.distributions``, ``torch.nn.functional``, ``scipy``), prints a clear pass line or raises an
``AssertionError`` that says what is off. No checker contains the solution's code.
"""
from utils.checks._core import (ExerciseCheckFailed, ExerciseCodeRaised, ExerciseNotDone, assert_close,
                                exercise_check, passed)

__all__ = ["ExerciseCheckFailed", "ExerciseCodeRaised", "ExerciseNotDone", "assert_close", "exercise_check", "passed"]
