"""The gradebooks: one folder per lesson, merged by student, points from the lesson sources, overrides kept across
regrades, written answers collected, LMS exports read back by the rules of Moodle's and Canvas's importers, the class
table; and one real grading of lessons 1 and 2 into one folder (both gradebooks kept)."""
from __future__ import annotations

import copy
import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from tools.build_notebooks import ANSWER_PROMPT, EXERCISES_DIR, SOLUTIONS_DIR, build_lesson
from tools.grade import main
from tools.grading import gradebook
from tools.grading.gradebook import (
    CANVAS,
    CANVAS_COLUMNS,
    CANVAS_POINTS_ROW,
    MOODLE,
    MOODLE_COLUMNS,
    MOODLE_PARTICIPANT,
    lms_ids,
    write_class_table,
    write_lesson_gradebook,
)
from tools.grading.plan import lessons_by_number
from tools.grading.report import inline
from tools.grading.results import ExerciseResult, NotebookResult

NOW = datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)
LESSON_1 = "01_latent_variable_models.ipynb"
MOODLE_STUDENT = "Jane Doe_1234_assignsubmission_file_"
CANVAS_FILE = "doejohn_LATE_5678_91011_01_latent_variable_models.ipynb"


def _result(student: str, statuses: list[str], notebook: str = "x.ipynb", lesson: int = 1) -> NotebookResult:
    built = build_lesson(lessons_by_number()[lesson])
    return NotebookResult(student, notebook, lesson, [ExerciseResult(e.number, e.title, status)
                                                      for e, status in zip(built.exercises, statuses, strict=True)])


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_points_come_from_the_lesson_source_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (Path(lessons_by_number()[1])).read_text(encoding="utf-8")
    first_exercise = source.index("# EXERCISE:")
    header = source.rindex("# %%", 0, first_exercise)
    lesson = tmp_path / "lessons" / "01_latent_variable_models.py"
    lesson.parent.mkdir()
    lesson.write_text(source[:header] + "# %% points=3" + source[header + 4:], encoding="utf-8")
    assert [e.points for e in build_lesson(lesson).exercises] == [3.0, 1.0, 1.0]
    monkeypatch.setattr(gradebook, "lessons_by_number", lambda: {1: lesson})
    write_lesson_gradebook([_result("ann", ["pass", "fail", "pass"])], tmp_path / "g", 1, {}, NOW)
    row = _rows(tmp_path / "g" / "gradebook.csv")["ann"]
    assert (row["1.1 points"], row["1.2 points"], row["score"], row["max_score"]) == ("3", "0", "4", "5")


def test_regrading_keeps_other_students_and_the_overrides(tmp_path: Path) -> None:
    folder = tmp_path / "lesson-01"
    write_lesson_gradebook([_result("ann", ["pass"] * 3), _result("bob", ["fail", "pass", "pass"])], folder, 1, {},
                           NOW)
    overrides = folder / "overrides.csv"
    assert overrides.read_text(encoding="utf-8").strip() == "student,item,points,comment"
    overrides.write_text("student,item,points,comment\nbob,1.1,0.5,partly right\nbob,1.Q1,2,good answer\n",
                         encoding="utf-8")
    before = overrides.read_bytes()
    report = write_lesson_gradebook([_result("bob", ["fail", "fail", "pass"])], folder, 1, {}, NOW)
    rows = _rows(folder / "gradebook.csv")
    assert report.kept == ["ann"] and report.regraded == ["bob"] and "1 kept from an earlier grading" in str(report)
    assert rows["ann"]["score"] == "3"
    assert (rows["bob"]["1.2"], rows["bob"]["1.1 points"], rows["bob"]["score"]) == ("fail", "0.5", "3.5")
    assert "partly right" in rows["bob"]["note"]
    assert overrides.read_bytes() == before
    assert sorted(p.name for p in (folder / "feedback").iterdir()) == ["ann.md", "bob.md"]


def test_a_bad_override_is_an_error_naming_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "lesson-01"
    folder.mkdir()
    (folder / "overrides.csv").write_text("student,item,points,comment\nbob,7.1,1,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="overrides.csv:2: .*item of this lesson"):
        write_lesson_gradebook([_result("bob", ["pass"] * 3)], folder, 1, {}, NOW)
    assert not (folder / "gradebook.csv").exists()


def test_written_answers_are_collected_question_by_question(tmp_path: Path) -> None:
    built = build_lesson(lessons_by_number()[4])
    assert len(built.questions) >= 2
    exercise = nbformat.read(EXERCISES_DIR / "04_vae_objective.ipynb", as_version=4)
    answered = copy.deepcopy(exercise)
    cell = next(c for c in answered.cells if c.id == built.questions[1].cell_id)
    assert ANSWER_PROMPT in cell.source
    cell.source = cell.source.replace(ANSWER_PROMPT, "Because the variance ```collapses``` to zero.")
    no_ids = copy.deepcopy(answered)
    for c in no_ids.cells:
        c.id = f"other-{id(c)}"
    notebooks = {"ann.ipynb": answered, "bob.ipynb": exercise, "cy.ipynb": no_ids}
    results = [_result(name.split(".")[0], ["not done"] * len(built.exercises), name, 4) for name in notebooks]
    write_lesson_gradebook(results, tmp_path, 4, notebooks, NOW)
    data = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    number = built.questions[1].number
    assert data["ann"][number] == data["cy"][number] == "Because the variance ```collapses``` to zero."
    assert data["bob"][number] == "" and data["ann"][built.questions[0].number] == ""
    text = (tmp_path / "answers.md").read_text(encoding="utf-8")
    assert text.count(f"## {number}") == 1 and "````text\nBecause the variance" in text
    assert text.count("*(no answer)*") == 3 * len(built.questions) - 2  # ann and cy answered one question


def _moodle_import(path: Path) -> dict[str, str]:
    """What Moodle's grading worksheet importer (assignfeedback_offline) reads: the columns named Identifier, Grade
    and Last modified (grade) must exist; an identifier is 'Participant ' and the number; a grade a number."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        indexes = {name: header.index(name) for name in ("Identifier", "Grade", "Last modified (grade)")}
        grades = {}
        for record in reader:
            identifier = record[indexes["Identifier"]]
            assert identifier.startswith(MOODLE_PARTICIPANT) and identifier[len(MOODLE_PARTICIPANT):].isdigit()
            assert datetime.strptime(record[indexes["Last modified (grade)"]], "%Y-%m-%d %H:%M UTC")
            grades[identifier[len(MOODLE_PARTICIPANT):]] = str(float(record[indexes["Grade"]]))
    return grades


def _canvas_import(path: Path) -> dict[str, str]:
    """What Canvas's gradebook importer requires: a student column (Student, ID or SIS User ID), SIS Login ID,
    Section, then assignment columns; an optional 'Points Possible' row; scores numbers."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[:5] == CANVAS_COLUMNS and len(header) == 6
    assignment = header[5]
    assert rows[0]["Student"] == CANVAS_POINTS_ROW and float(rows[0][assignment]) > 0
    return {row["ID"]: str(float(row[assignment])) for row in rows[1:] if row["ID"].isdigit()}


def test_moodle_and_canvas_exports_follow_their_importers(tmp_path: Path) -> None:
    assert lms_ids(MOODLE_STUDENT, f"{MOODLE_STUDENT}/lesson1.ipynb") == ("1234", "")
    assert lms_ids("doejohn_LATE_5678_91011_01_latent_variable_models", CANVAS_FILE) == ("", "5678")
    results = [_result(MOODLE_STUDENT, ["pass", "pass", "fail"], f"{MOODLE_STUDENT}/lesson1.ipynb"),
               _result(CANVAS_FILE[:-6], ["pass", "fail", "fail"], CANVAS_FILE),
               _result("=cmd|' /C calc'!A0", ["pass"] * 3, "evil.ipynb")]
    report = write_lesson_gradebook(results, tmp_path, 1, {}, NOW)
    assert _moodle_import(tmp_path / MOODLE) == {"1234": "2.0"}
    assert _canvas_import(tmp_path / CANVAS) == {"5678": "1.0"}
    header = (tmp_path / MOODLE).read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(MOODLE_COLUMNS)
    assert "Jane Doe," in (tmp_path / MOODLE).read_text(encoding="utf-8")
    assert len(report.left_out_of_moodle) == 2 and len(report.left_out_of_canvas) == 2
    assert "'=cmd" in (tmp_path / "gradebook.csv").read_text(encoding="utf-8")


def test_the_class_table_merges_every_lesson(tmp_path: Path) -> None:
    write_lesson_gradebook([_result("ann", ["pass"] * 3), _result("bob", ["fail"] * 3)], tmp_path / "lesson-01", 1,
                           {}, NOW)
    write_lesson_gradebook([_result("ann", ["pass", "fail", "pass"], lesson=2)], tmp_path / "lesson-02", 2, {}, NOW)
    rows = _rows(write_class_table(tmp_path))
    assert (rows["ann"]["lesson-01"], rows["ann"]["lesson-02"], rows["ann"]["total"]) == ("3", "2", "5")
    assert (rows["bob"]["lesson-02"], rows["bob"]["total"]) == ("", "0")
    assert rows["(maximum)"]["total"] == "6"


def test_headings_keep_what_the_lesson_wrote() -> None:
    assert inline("p(z | x)") == "p(z \\| x)"
    assert inline("a_b *c* <img src=x>\n# h") == "a\\_b \\*c\\* \\<img src=x\\> \\# h"


def test_grading_lessons_1_and_2_into_one_folder_keeps_both(tmp_path: Path) -> None:
    """Two gradings into the default layout, as an instructor runs them week after week (trusted notebooks, so
    without the sandbox: the sandbox is tested in test_grade.py); then the class table on request."""
    week1, week2, out = tmp_path / "week1", tmp_path / "week2", tmp_path / "grades"
    (week1 / MOODLE_STUDENT).mkdir(parents=True)
    (week1 / MOODLE_STUDENT / "lesson1.ipynb").write_bytes((SOLUTIONS_DIR / LESSON_1).read_bytes())
    (week1 / "bob.ipynb").write_text("{\n \"cells\": [", encoding="utf-8")
    week2.mkdir()
    (week2 / "ann.ipynb").write_bytes((SOLUTIONS_DIR / "02_posterior_inference.ipynb").read_bytes())
    assert main([str(week1), "--out", str(out), "--no-sandbox", "--workers", "1"]) == 0
    first = (out / "lesson-01" / "gradebook.csv").read_bytes()
    assert main([str(week2), "--out", str(out), "--no-sandbox", "--workers", "1", "--class-table"]) == 0
    assert (out / "lesson-01" / "gradebook.csv").read_bytes() == first
    assert _rows(out / "lesson-02" / "gradebook.csv")["ann"]["score"] == "3"
    assert _moodle_import(out / "lesson-01" / MOODLE) == {"1234": "3.0"}
    feedback = (out / "unidentified" / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert "save it (File → Save Notebook) and hand in that .ipynb file again" in feedback
    assert "1.1" in (out / "lesson-01" / "summary.txt").read_text(encoding="utf-8")
    classes = _rows(out / "class.csv")
    assert classes["ann"]["lesson-02"] == "3" and classes[MOODLE_STUDENT]["lesson-01"] == "3"
