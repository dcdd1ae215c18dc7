"""Comparison and reporting primitives shared by every lesson's checkers."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ExerciseCheckFailed(AssertionError):
    """A student's answer differs from the reference; the message says how."""


def passed(name: str) -> None:
    """Print the line a student sees when an exercise is correct."""
    print(f"✅ {name}: correct")


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def assert_close(name: str, actual: Any, expected: Any, *, rtol: float, atol: float, hint: str = "") -> None:
    """Raise :class:`ExerciseCheckFailed` unless ``actual`` matches ``expected`` elementwise.

    The message gives the shapes or the worst mismatch, and ``hint`` (what is usually wrong).
    """
    actual_np, expected_np = _to_numpy(actual), _to_numpy(expected)
    if actual_np.shape != expected_np.shape:
        raise ExerciseCheckFailed(f"{name}: expected shape {expected_np.shape}, got {actual_np.shape}. {hint}".rstrip())
    if not np.all(np.isfinite(actual_np)):
        raise ExerciseCheckFailed(f"{name}: the result contains NaN or inf. {hint}".rstrip())
    error = np.abs(actual_np - expected_np)
    allowed = atol + rtol * np.abs(expected_np)
    if np.any(error > allowed):
        worst = np.unravel_index(np.argmax(error - allowed), error.shape)
        raise ExerciseCheckFailed(
            f"{name}: mismatch at index {tuple(int(i) for i in worst)}: got {actual_np[worst]:.6g}, "
            f"expected {expected_np[worst]:.6g} (tolerance {allowed[worst]:.2g}). {hint}".rstrip())
