"""Shared types of the mistake catalogue."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One answer to an exercise: what it does, the function (or class) a student would write, and for a wrong
    answer the words its check's message must contain (its diagnosis), or "" for any clear failure."""

    description: str
    function: Callable[..., Any]
    message: str = ""
    #: pieces of the solution's code the message must not contain: a message names the slip, it does not write the
    #: answer.
    hands_over: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exercise:
    """An exercise's check, the wrong answers it must reject and the correct ones it must accept."""

    number: str
    check: Callable[[Callable[..., Any]], None]
    wrong: tuple[Answer, ...]
    correct: tuple[Answer, ...]
