"""What the grader finds out: one result per exercise, one per notebook, and flags for the instructor."""
from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("pass", "fail", "not done", "error", "missing", "tampered", "not graded")


@dataclass
class ExerciseResult:
    """The grade of one exercise: ``number`` is ``"N.k"``, ``status`` one of :data:`STATUSES`."""

    number: str
    title: str
    status: str = "not graded"
    message: str = ""


@dataclass(frozen=True)
class Flag:
    """A line of a student's exercise cell that the instructor should read: ``what`` it reaches for."""

    exercise: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.exercise} line {self.line}: {self.what}"


@dataclass
class NotebookResult:
    """Everything the grader found out about one submitted notebook."""

    student: str
    notebook: str
    lesson: int | None = None
    exercises: list[ExerciseResult] = field(default_factory=list)
    problem: str = ""
    seconds: float = 0.0
    flags: list[Flag] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(result.status == "pass" for result in self.exercises)
