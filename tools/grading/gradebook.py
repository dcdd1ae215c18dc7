"""The gradebooks: one folder per lesson (``grades/lesson-01/``), merged by student across gradings, with points,
manual overrides, the written answers, LMS exports and the class summary; and the class table on request.

A lesson's folder holds

* ``gradebook.csv``: one row per student and notebook: each exercise's status and points, ``score``, ``max_score``,
  ``note``, ``review``, ``graded_at``. Grading again replaces the rows of the students graded again and keeps the
  others (the grader says how many of each): a late submission never erases the class, and nothing is lost silently;
* ``overrides.csv``: written by the instructor, never by the grader (created empty once): ``student, item, points,
  comment``; ``item`` is an exercise (``1.2``: its points replace the grader's) or a written answer (``1.Q1``: its
  points are added). Applied at every grading, so they survive regrades;
* ``answers.md`` (and ``answers.json``, what it is made from): every written answer, question by question;
* ``feedback/<student>.md``; ``summary.txt``: what the class found hard, over every row of the gradebook;
* ``moodle.csv``: Moodle's assignment grading worksheet (*Upload grading worksheet*: ``Identifier`` =
  ``Participant N``, ``Full name``, ``Grade``, ``Maximum grade``, ``Last modified (grade)``, ``Feedback comments``);
* ``canvas.csv``: Canvas's gradebook import (``Student, ID, SIS User ID, SIS Login ID, Section``, one assignment
  column, and the ``Points Possible`` row).

Moodle's *Download all submissions* names each student's folder ``Full Name_N_assignsubmission_file_`` and
Canvas's names each file ``name_N_M_file.ipynb`` (``name_LATE_N_M_…`` when late): the participant number N and the
Canvas user id N are read from there. Students whose submission names carry none are left out of that export, and
the grader says so.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from tools.build_notebooks import ANSWER_PROMPT, BuiltLesson, build_lesson
from tools.grading.plan import lessons_by_number
from tools.grading.report import capped, fenced, review_note, spreadsheet_safe, write_feedback
from tools.grading.results import STATUSES, NotebookResult

GRADEBOOK, OVERRIDES, ANSWERS, ANSWERS_DATA, SUMMARY = ("gradebook.csv", "overrides.csv", "answers.md",
                                                       "answers.json", "summary.txt")
MOODLE, CANVAS, CLASS_TABLE = "moodle.csv", "canvas.csv", "class.csv"
OVERRIDE_COLUMNS = ["student", "item", "points", "comment"]
UNIDENTIFIED = "unidentified"
MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_\w*?_?$")
CANVAS_FILE = re.compile(r"^(?P<name>[^_]+)(?:_LATE)?_(?P<id>\d+)_\d+_")
# The column names Moodle's grading worksheet importer looks for (mod/assign/feedback/offline/importgradeslib.php:
# get_string('recordid', 'assign'), get_string('grade'), get_string('lastmodifiedgrade', 'assign')), and its feedback
# plugin's column; the identifier is "Participant " followed by the participant number.
MOODLE_COLUMNS = ["Identifier", "Full name", "Grade", "Maximum grade", "Last modified (grade)", "Feedback comments"]
MOODLE_PARTICIPANT = "Participant "
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "Points Possible"


def lesson_folder(out: Path, lesson: int | None) -> Path:
    """Where a lesson's gradebook lives: ``out/lesson-01``; notebooks of no known lesson go to ``out/unidentified``."""
    return out / (f"lesson-{lesson:02d}" if lesson is not None else UNIDENTIFIED)


def lms_ids(student: str, notebook: str) -> tuple[str, str]:
    """(Moodle participant number, Canvas user id) read from the submission's names; "" where there is none."""
    moodle = MOODLE_FOLDER.match(student)
    canvas = CANVAS_FILE.match(Path(notebook).name)
    return (moodle.group("id") if moodle else ""), (canvas.group("id") if canvas else "")


def display_name(student: str) -> str:
    """The student's name without Moodle's folder suffix."""
    moodle = MOODLE_FOLDER.match(student)
    return moodle.group("name") if moodle else student


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _points_text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Override:
    """An instructor's decision: ``points`` for ``item`` (an exercise ``N.k`` or a written answer ``N.Qk``)."""

    points: float
    comment: str


def read_overrides(path: Path, built: BuiltLesson | None) -> dict[tuple[str, str], Override]:
    """The overrides of a lesson, checked: a bad line is an error naming it (nothing is written then)."""
    if not path.exists():
        return {}
    items = ({e.number for e in built.exercises} | {q.number for q in built.questions}) if built else set()
    overrides = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            student, item = (row.get("student") or "").strip(), (row.get("item") or "").strip()
            points = _number((row.get("points") or "").strip())
            if not student or item not in items or points != points or points < 0:
                raise ValueError(f"{path}:{line}: an override needs a student, an item of this lesson "
                                 f"({', '.join(sorted(items)) or 'none'}) and points ≥ 0; got {dict(row)}")
            overrides[(student, item)] = Override(points, (row.get("comment") or "").strip())
    return overrides


def gradebook_columns(built: BuiltLesson | None) -> list[str]:
    exercises = [e.number for e in built.exercises] if built else []
    return (["student", "notebook", *exercises, *(f"{n} points" for n in exercises), "score", "max_score", "note",
             "review", "graded_at"])


def max_score(built: BuiltLesson) -> float:
    """What a lesson is worth: its exercises' points and its written answers' points."""
    return sum(e.points for e in built.exercises) + sum(q.points for q in built.questions)


def gradebook_row(result: NotebookResult, built: BuiltLesson | None, overrides: dict[tuple[str, str], Override],
                  graded_at: str) -> dict[str, str]:
    """One gradebook row: statuses, points (a pass earns the exercise's points; an override replaces them), the
    score with the written answers' override points added, and the notes."""
    row = {"student": result.student, "notebook": result.notebook, "graded_at": graded_at,
           "note": capped(result.problem, 500), "review": capped(review_note(result), 1000)}
    if built is None:
        return row | {"score": "", "max_score": ""}
    status = {exercise.number: exercise.status for exercise in result.exercises}
    comments, score = [], 0.0
    for exercise in built.exercises:
        points = exercise.points if status.get(exercise.number) == "pass" else 0.0
        if (override := overrides.get((result.student, exercise.number))) is not None:
            points = override.points
            comments.append(f"{exercise.number} set to {_points_text(points)} by the instructor {override.comment}")
        row[exercise.number] = status.get(exercise.number, "")
        row[f"{exercise.number} points"] = _points_text(points)
        score += points
    for question in built.questions:
        if (override := overrides.get((result.student, question.number))) is not None:
            score += override.points
            comments.append(f"{question.number}: {_points_text(override.points)} {override.comment}")
    if comments:
        row["note"] = "; ".join([row["note"], *(c.strip() for c in comments)] if row["note"] else comments)
    return row | {"score": _points_text(score), "max_score": _points_text(max_score(built))}


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: _unsafe(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _unsafe(value: str) -> str:
    """A cell as it was before :func:`spreadsheet_safe` (the apostrophe it adds is dropped)."""
    return value[1:] if value.startswith("'") and value[1:2] in ("=", "+", "-", "@", "\t", "\r") else value


def write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([spreadsheet_safe(row.get(column, "")) for column in columns])


# ---------------------------------------------------------------------------------------------------- written answers

def student_answers(notebook: nbformat.NotebookNode, built: BuiltLesson) -> dict[str, str]:
    """A student's written answer to each question: the text of the question's cell (found by its generated id,
    else by the question's first line) after the question; "" where the prompt was left as it was. A malformed cell
    (no type, a source that is not text) is no answer."""
    markdown = [cell for cell in notebook.get("cells", []) if isinstance(cell, dict)
                and cell.get("cell_type") == "markdown" and isinstance(cell.get("source"), str)]
    answers = {}
    for question in built.questions:
        first_line = question.prompt.splitlines()[0] if question.prompt else ""
        cell = next((c for c in markdown if c.get("id") == question.cell_id), None) or next(
            (c for c in markdown if first_line and c.source.startswith(first_line)), None)
        text = cell.source if cell is not None else ""
        if text.startswith(question.prompt):
            text = text[len(question.prompt):]
        answers[question.number] = "" if text.strip() in ("", ANSWER_PROMPT) else text.strip()
    return answers


def answers_markdown(lesson: int, built: BuiltLesson, answers: dict[str, dict[str, str]]) -> str:
    """Every answer, question by question (students in order), quoted as untrusted text, with a line to score it."""
    lines = [f"# Written answers, lesson {lesson}", "",
             f"Score an answer by adding a line `student,item,points,comment` to `{OVERRIDES}` (item: the question's "
             "number); regrading keeps it.", ""]
    for question in built.questions:
        worth = f" ({_points_text(question.points)} points)" if question.points else ""
        lines += [f"## {question.number}{worth}", "", *(f"> {line}" for line in question.prompt.splitlines()), ""]
        for student in sorted(answers):
            text = answers[student].get(question.number, "")
            lines += [f"### {student}", ""]
            lines += [*fenced(capped(text)), ""] if text else ["*(no answer)*", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------------- exports

def moodle_rows(rows: list[dict[str, str]], graded_at: str) -> tuple[list[dict[str, str]], list[str]]:
    """Moodle's grading worksheet rows, and the students left out (no participant number in their names)."""
    kept, left_out = [], []
    for row in rows:
        moodle_id, _ = lms_ids(row["student"], row["notebook"])
        if not moodle_id or row.get("score", "") == "":
            left_out.append(row["student"])
            continue
        kept.append({"Identifier": f"{MOODLE_PARTICIPANT}{moodle_id}", "Full name": display_name(row["student"]),
                     "Grade": row["score"], "Maximum grade": row["max_score"], "Last modified (grade)": graded_at,
                     "Feedback comments": row.get("note", "")})
    return kept, left_out


def canvas_rows(rows: list[dict[str, str]], assignment: str) -> tuple[list[dict[str, str]], list[str]]:
    """Canvas's gradebook import rows (the ``Points Possible`` row first), and the students left out."""
    possible = next((row["max_score"] for row in rows if row.get("max_score")), "")
    kept = [{"Student": CANVAS_POINTS_ROW, assignment: possible}]
    left_out = []
    for row in rows:
        _, canvas_id = lms_ids(row["student"], row["notebook"])
        if not canvas_id or row.get("score", "") == "":
            left_out.append(row["student"])
            continue
        kept.append({"Student": display_name(row["student"]), "ID": canvas_id, assignment: row["score"]})
    return kept, left_out


# ----------------------------------------------------------------------------------------------------------- summary

def summary_from_rows(lesson: int | None, built: BuiltLesson | None, rows: list[dict[str, str]]) -> str:
    """What the class found hard, over every row of the lesson's gradebook: per exercise, each status's count;
    the mean score; the notebooks with a note or flagged for review."""
    lines = [f"Lesson {lesson}: {len(rows)} notebooks from {len({r['student'] for r in rows})} students"
             if lesson is not None else f"{len(rows)} notebooks of no known lesson"]
    if built is not None and built.exercises:
        lines.append(f"{'exercise':<10}" + "".join(f"{status:>12}" for status in STATUSES))
        for exercise in built.exercises:
            counts = Counter(row.get(exercise.number, "") for row in rows)
            lines.append(f"{exercise.number:<10}" + "".join(f"{counts[status]:>12}" for status in STATUSES))
        scores = [_number(row["score"]) for row in rows if row.get("score")]
        if scores:
            lines.append(f"mean score {sum(scores) / len(scores):.2f} of {_points_text(max_score(built))}")
    lines += [f"note: {r['student']!r} ({r['notebook']!r}): {capped(r['note'], 300)}" for r in rows if r.get("note")]
    lines += [f"review: {r['student']!r} ({r['notebook']!r}): {capped(r['review'], 300)}"
              for r in rows if r.get("review")]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------------ writing

@dataclass
class LessonReport:
    """What writing one lesson's gradebook did: the folder, the students (re)graded now and those kept."""

    folder: Path
    regraded: list[str]
    kept: list[str]
    left_out_of_moodle: list[str]
    left_out_of_canvas: list[str]

    def __str__(self) -> str:
        text = f"{self.folder}: {len(self.regraded)} {'student' if len(self.regraded) == 1 else 'students'} graded now"
        if self.kept:
            text += f", {len(self.kept)} kept from an earlier grading ({', '.join(self.kept[:5])}" \
                    f"{', …' if len(self.kept) > 5 else ''})"
        for name, left in ((MOODLE, self.left_out_of_moodle), (CANVAS, self.left_out_of_canvas)):
            if left:
                text += f"; {len(left)} left out of {name} (no id in their submission's names)"
        return text


def write_lesson_gradebook(results: list[NotebookResult], folder: Path, lesson: int | None,
                           submissions: dict[str, nbformat.NotebookNode], now: datetime | None = None) -> LessonReport:
    """Merge one grading of a lesson into its folder (see the module's docstring); ``submissions`` maps each
    result's notebook path to the notebook read (for the written answers; unreadable ones are absent)."""
    built = build_lesson(lessons_by_number()[lesson]) if lesson is not None else None
    graded_at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    folder.mkdir(parents=True, exist_ok=True)
    overrides = read_overrides(folder / OVERRIDES, built)
    if not (folder / OVERRIDES).exists():
        write_rows(folder / OVERRIDES, OVERRIDE_COLUMNS, [])
    regraded = sorted({result.student for result in results})
    earlier = [row for row in read_rows(folder / GRADEBOOK) if row["student"] not in regraded]
    kept = sorted({row["student"] for row in earlier})
    fresh = [gradebook_row(result, built, overrides, graded_at) for result in results]
    rows = sorted(earlier + fresh, key=lambda row: (row["student"], row["notebook"]))
    write_rows(folder / GRADEBOOK, gradebook_columns(built), rows)
    write_feedback(results, folder / "feedback")
    (folder / SUMMARY).write_text(summary_from_rows(lesson, built, rows), encoding="utf-8")
    left_moodle: list[str] = []
    left_canvas: list[str] = []
    if built is not None:
        answers = json.loads((folder / ANSWERS_DATA).read_text(encoding="utf-8")) \
            if (folder / ANSWERS_DATA).exists() else {}
        answers = {student: own for student, own in answers.items() if student not in regraded}
        for result in results:
            if (notebook := submissions.get(result.notebook)) is not None and result.exercises:
                answers[result.student] = student_answers(notebook, built)
        (folder / ANSWERS_DATA).write_text(json.dumps(answers, indent=1, sort_keys=True, ensure_ascii=False),
                                           encoding="utf-8")
        (folder / ANSWERS).write_text(answers_markdown(lesson, built, answers), encoding="utf-8")
        moodle, left_moodle = moodle_rows(rows, graded_at)
        write_rows(folder / MOODLE, MOODLE_COLUMNS, moodle)
        assignment = f"Lesson {lesson}"
        canvas, left_canvas = canvas_rows(rows, assignment)
        write_rows(folder / CANVAS, [*CANVAS_COLUMNS, assignment], canvas)
    return LessonReport(folder, regraded, kept, left_moodle, left_canvas)


def write_class_table(out: Path) -> Path:
    """``out/class.csv``: one row per student, each lesson's score (the best of the student's notebooks of that
    lesson), the total and the maximum, from every ``out/lesson-NN/gradebook.csv``. Rewritten from them each time."""
    scores: dict[str, dict[str, float]] = {}
    maxima: dict[str, float] = {}
    for book in sorted(out.glob("lesson-[0-9][0-9]/" + GRADEBOOK)):
        lesson = book.parent.name
        for row in read_rows(book):
            if row.get("score"):
                own = scores.setdefault(row["student"], {})
                own[lesson] = max(own.get(lesson, 0.0), _number(row["score"]))
                maxima[lesson] = _number(row["max_score"])
    lessons = sorted(maxima)
    rows = [{"student": student, **{lesson: _points_text(own[lesson]) for lesson in own},
             "total": _points_text(sum(own.values()))} for student, own in sorted(scores.items())]
    rows.insert(0, {"student": "(maximum)", **{lesson: _points_text(maxima[lesson]) for lesson in lessons},
                    "total": _points_text(sum(maxima.values()))})
    write_rows(out / CLASS_TABLE, ["student", *lessons, "total"], rows)
    return out / CLASS_TABLE
