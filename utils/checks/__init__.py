"""Self-checks that exercises call.

Each checker tests properties of a student's function on several cases (edge cases included) against an
independent reference (closed forms, ``torch.distributions``, ``torch.nn.functional``, ``scipy``, or the
contract an algorithm must meet), prints a clear pass line or raises an ``AssertionError`` that says what is
off: the known mistake the answer matches where there is one, else a hint that fits the failed property.
No checker contains the solution's code, and none changes the global random state.
"""
from utils.checks._core import (
                                ExerciseCheckFailed,
                                ExerciseCodeRaised,
                                ExerciseNotDone,
                                assert_close,
                                exercise_check,
                                gradients,
                                passed,
)

__all__ = ["ExerciseCheckFailed", "ExerciseCodeRaised", "ExerciseNotDone", "assert_close", "exercise_check",
           "gradients", "passed"]
