"""The grader, on synthetic submissions built from the course itself: one sandboxed run over 30 notebooks holding
every honest failure mode (endless loop, crashed Python, invalid JSON, another lesson, renamed function, deleted
cell, lost metadata), then its gradebook, feedback and summary, and the submissions left untouched. Attacks by
hostile students are in test_grade_hostile.py."""
from __future__ import annotations

import copy
import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools.build_notebooks import CELL_METADATA_KEY, EXERCISES_DIR, REPO_ROOT, SOLUTIONS_DIR
from tools.grade import main
from tools.grading.gradebook import write_lesson_gradebook
from tools.grading.plan import find_submissions, identify_lesson
from tools.grading.report import summary_text, write_feedback
from tools.grading.results import NotebookResult
from tools.grading.run import GradingOptions, grade_all

LESSON_1 = "01_latent_variable_models.ipynb"
TIME_LIMIT_S = 30  # every lesson-1 notebook grades in about 3 s; only the endless loop reaches this


def _notebook(directory: Path, name: str = LESSON_1) -> nbformat.NotebookNode:
    return nbformat.read(directory / name, as_version=4)


def _exercise_cell(notebook: nbformat.NotebookNode, number: str) -> nbformat.NotebookNode:
    return next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(f"# Exercise {number}:"))


def _check_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.lstrip().startswith("check_")]


def _with_cell(notebook: nbformat.NotebookNode, number: str, edit) -> nbformat.NotebookNode:
    changed = copy.deepcopy(notebook)
    cell = _exercise_cell(changed, number)
    cell.source = edit(cell.source)
    return changed


def _insert_line(source: str, line_number: int, text: str) -> str:
    lines = source.splitlines()
    return "\n".join(lines[: line_number - 1] + [text] + lines[line_number - 1:])


def _synthetic_submissions() -> dict[str, nbformat.NotebookNode | str]:
    solution, exercise = _notebook(SOLUTIONS_DIR), _notebook(EXERCISES_DIR)
    solved_1_1 = _exercise_cell(solution, "1.1").source

    tampered = _with_cell(exercise, "1.1", lambda s: s + (
        "\ncheck_log_joint = lambda *args, **kwargs: print('✅ log_joint: correct')"
        "\nimport utils.checks.lesson01 as _checks"
        "\n_checks.check_log_marginal_quadrature = lambda *args: print('✅ log_marginal_quadrature: correct')"))
    check_cells = _check_cells(tampered)
    for cell in check_cells:
        cell.source = "print('✅ correct')"
    tampered.cells.remove(check_cells[-1])

    no_metadata = copy.deepcopy(solution)
    no_metadata.metadata.pop("vae_course")
    no_headers = copy.deepcopy(solution)
    for cell in no_headers.cells:
        if cell.cell_type == "code" and cell.source.startswith("# Exercise"):
            cell.source = "\n".join(cell.source.splitlines()[1:])
    deleted = copy.deepcopy(solution)
    deleted.cells.remove(_exercise_cell(deleted, "1.2"))
    no_cell_metadata = copy.deepcopy(solution)
    for cell in no_cell_metadata.cells:
        cell.metadata.pop(CELL_METADATA_KEY, None)

    cases: dict[str, nbformat.NotebookNode | str] = {
        "all_pass": solution,
        "none_done": exercise,
        "mixed": _with_cell(exercise, "1.1", lambda s: solved_1_1),
        "wrong_answer": _with_cell(solution, "1.1", lambda s: s.replace("return log_likelihood + log_prior",
                                                                         "return log_likelihood")),
        "tampered": tampered,
        "raises": _with_cell(solution, "1.1", lambda s: _insert_line(s, 4, '    raise ValueError("my bug")')),
        "syntax_error": _with_cell(solution, "1.3", lambda s: s.replace("return z, x", "return z, x)")),
        "renamed": _with_cell(solution, "1.3", lambda s: s.replace("def ancestral_sample(", "def my_sample(")),
        "deleted_cell": deleted,
        "endless": _with_cell(solution, "1.3", lambda s: _insert_line(s, 5, "    while True: pass")),
        "crash": _with_cell(solution, "1.2", lambda s: s + "\nimport os\nos._exit(1)"),
        "no_metadata": no_metadata,
        "no_headers": no_headers,
        "no_cell_metadata": no_cell_metadata,
        "invalid_json": "{ this is not a notebook",
        "other_lesson": _notebook(EXERCISES_DIR, "05_convolutions_and_pooling.ipynb"),
    }
    for index in range(30 - len(cases) - 1):
        cases[f"copy_{index:02d}"] = solution
    return cases


def _write(path: Path, content: nbformat.NotebookNode | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else nbformat.writes(content), encoding="utf-8")


def _fingerprint(folder: Path) -> dict[str, str]:
    digests = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(folder.rglob("*")) if p.is_file()}
    return digests | {"(names)": ",".join(sorted(str(p) for p in folder.rglob("*")))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, NotebookResult], dict, dict]:
    folder = tmp_path_factory.mktemp("submissions")
    for student, content in _synthetic_submissions().items():
        _write(folder / f"{student}.ipynb", content)
    _write(folder / "erin" / "any name, lesson one.ipynb", _notebook(SOLUTIONS_DIR))  # a student's folder
    before = _fingerprint(folder)
    results = grade_all(folder, expected_lesson=1, workers=2, options=GradingOptions(time_limit_s=TIME_LIMIT_S),
                        progress=False)
    after = _fingerprint(folder)
    return folder, {r.student: r for r in results}, before, after


def _statuses(result: NotebookResult) -> list[str]:
    return [exercise.status for exercise in result.exercises]


def _message(result: NotebookResult, number: str) -> str:
    return next(e.message for e in result.exercises if e.number == number)


def test_thirty_notebooks_graded_and_submissions_untouched(graded) -> None:
    folder, results, before, after = graded
    assert len(results) == 30
    assert before == after, "the grader modified the submissions folder"


def test_solution_passes_and_exercise_version_is_not_done(graded) -> None:
    _, results, _, _ = graded
    for student in ["all_pass", "erin", "no_metadata", "no_headers", "no_cell_metadata"] + [
            s for s in results if s.startswith("copy_")]:
        assert _statuses(results[student]) == ["pass"] * 3, (student, results[student])
        assert results[student].problem == ""
    assert _statuses(results["none_done"]) == ["not done"] * 3
    assert "not done yet" in _message(results["none_done"], "1.1")
    assert _statuses(results["mixed"]) == ["pass", "not done", "not done"]
    assert results["erin"].notebook == "erin/any name, lesson one.ipynb"


def test_wrong_answer_gets_the_checks_message(graded) -> None:
    result = graded[1]["wrong_answer"]
    assert _statuses(result)[0] == "fail"
    assert "log_joint" in _message(result, "1.1")


def test_tampered_check_cells_gain_nothing(graded) -> None:
    """Edited and deleted check cells change nothing (the lesson's run); the checker module patched from the
    exercise cell is the sandbox's copy, while the checks run in the grader's process: the stubs stay 'not done'."""
    result = graded[1]["tampered"]
    assert _statuses(result) == ["not done"] * 3


def test_students_exception_names_their_line(graded) -> None:
    message = _message(graded[1]["raises"], "1.1")
    assert graded[1]["raises"].exercises[0].status == "error"
    assert "ValueError: my bug" in message and "line 4 of your code" in message
    assert 'raise ValueError("my bug")' in message
    assert "stats." not in message, "the checker's reference code leaked into the feedback"
    syntax = graded[1]["syntax_error"]
    assert _statuses(syntax) == ["pass", "pass", "error"]
    assert _message(syntax, "1.3") == ("your exercise cell raised SyntaxError: unmatched ')' "
                                       "at line 7 of your exercise 1.3 cell: `return z, x)`")


def test_renamed_function_and_deleted_cell_are_missing(graded) -> None:
    renamed = graded[1]["renamed"]
    assert _statuses(renamed) == ["pass", "pass", "missing"]
    assert "`ancestral_sample`" in _message(renamed, "1.3") and "renamed" in _message(renamed, "1.3")
    deleted = graded[1]["deleted_cell"]
    assert _statuses(deleted) == ["pass", "missing", "pass"]


def test_endless_loop_hits_the_time_limit_and_grading_goes_on(graded) -> None:
    endless = graded[1]["endless"]
    assert _statuses(endless) == ["pass", "pass", "error"]
    assert endless.problem.startswith(f"time limit of {TIME_LIMIT_S} s reached at exercise 1.3")
    assert TIME_LIMIT_S <= endless.seconds < TIME_LIMIT_S + 30


def test_crashed_kernel_is_reported_where_it_died(graded) -> None:
    crash = graded[1]["crash"]
    assert crash.problem.startswith("Python died at exercise 1.2")
    assert _statuses(crash) == ["pass", "error", "not graded"]


def test_unreadable_and_other_lesson_notebooks_get_a_note(graded) -> None:
    assert graded[1]["invalid_json"].problem.startswith("not graded: not a readable notebook")
    assert graded[1]["other_lesson"].problem == "not graded: not a notebook of lesson 1 (it is lesson 5's)"
    assert graded[1]["other_lesson"].exercises == []


def test_gradebook_feedback_and_summary(graded, tmp_path: Path) -> None:
    _, results, _, _ = graded
    write_lesson_gradebook([r for r in results.values() if r.lesson == 1], tmp_path, 1, {})
    by_student = {row["student"]: row for row in csv.DictReader((tmp_path / "gradebook.csv").open(encoding="utf-8"))}
    mixed = by_student["mixed"]
    assert (mixed["1.1"], mixed["1.1 points"], mixed["score"], mixed["max_score"]) == ("pass", "1", "1", "3")
    assert "invalid_json" not in by_student  # a notebook of no lesson goes to grades/unidentified (test_gradebook.py)

    written = write_feedback(list(results.values()), tmp_path / "feedback")
    assert len(written) == 30
    feedback = (tmp_path / "feedback" / "raises.md").read_text(encoding="utf-8")
    assert "# Feedback for raises" in feedback and "1 of 3 exercises correct" in feedback
    assert "line 4 of your code" in feedback

    summary = summary_text(list(results.values()))
    passed_1_1 = sum(r.exercises[0].status == "pass" for r in results.values() if r.exercises)
    assert f"{'1.1':<10}{passed_1_1:>12}" in summary.splitlines()[2]
    assert "not a notebook of lesson 1" in summary


def test_find_submissions_and_lesson_identification(tmp_path: Path) -> None:
    _write(tmp_path / "zoe.ipynb", _notebook(EXERCISES_DIR))
    _write(tmp_path / "yan" / "a.ipynb", _notebook(EXERCISES_DIR))
    _write(tmp_path / "yan" / ".ipynb_checkpoints" / "a-checkpoint.ipynb", _notebook(EXERCISES_DIR))
    found = find_submissions(tmp_path)
    assert [(s, p.name) for s, p in found.notebooks] == [("zoe", "zoe.ipynb"), ("yan", "a.ipynb")]
    assert [p.name for p in found.skipped] == ["a-checkpoint.ipynb"]
    assert identify_lesson(_notebook(EXERCISES_DIR, "05_convolutions_and_pooling.ipynb")) == 5


def test_cli_refuses_to_write_inside_the_submissions(tmp_path: Path) -> None:
    _write(tmp_path / "zoe.ipynb", "{}")
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "grades")])
    assert not (tmp_path / "grades").exists()


@pytest.mark.parametrize(("notebook_name", "lesson", "exercises"), [
    ("07_convolutional_vae_topology.ipynb", 7, 4), ("08_conditional_vae_design.ipynb", 8, 3),
    ("09_designing_in_latent_space.ipynb", 9, 3)])
def test_the_training_lessons_grade_every_exercise_with_one_training_epoch(tmp_path: Path, notebook_name: str,
                                                                          lesson: int, exercises: int) -> None:
    """Lessons 7 and 8 check exercises after their trainings: the grader trains one epoch, so a full solution grades
    in seconds, and the exercise version is 'not done' throughout (lesson 7's stub epoch stops its training cell).
    Every check of lessons 7-9 hands the student's code a model or a class, driven across the wire."""
    _write(tmp_path / "submissions" / "solution.ipynb", _notebook(SOLUTIONS_DIR, notebook_name))
    _write(tmp_path / "submissions" / "exercise.ipynb", _notebook(EXERCISES_DIR, notebook_name))
    results = {r.student: r for r in grade_all(tmp_path / "submissions", expected_lesson=lesson, workers=2,
                                              options=GradingOptions(time_limit_s=120), progress=False)}
    assert _statuses(results["solution"]) == ["pass"] * exercises
    assert _statuses(results["exercise"]) == ["not done"] * exercises


def test_a_checkout_and_its_environment_under_tmp_grade(tmp_path: Path) -> None:
    """Issue #32: with the environment below /tmp the sandbox made /tmp a folder and failed to link it ("Can't
    make symlink at /tmp"). A copy of the checkout (its tracked files, its environment hard-linked) in a
    temporary folder grades a solution in the sandbox."""
    if not str(tmp_path).startswith("/tmp/"):
        pytest.skip("the temporary folder is not below /tmp here")
    checkout = tmp_path / "checkout"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, checkout / name)
    environment = Path(sys.prefix)
    copy = subprocess.run(["cp", "-al", str(environment), str(checkout / ".venv")], capture_output=True)
    if copy.returncode != 0:  # another file system: hard links are impossible, and a copy too big for a test
        pytest.skip(f"cannot hard-link the environment: {copy.stderr.decode()[:200]}")
    submissions = tmp_path / "subs"
    submissions.mkdir()
    shutil.copy(SOLUTIONS_DIR / "01_latent_variable_models.ipynb", submissions / "zoe.ipynb")
    run = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-m", "tools.grade", str(submissions), "--out",
                          str(tmp_path / "grades")], cwd=checkout, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "grades" / "lesson-01" / "gradebook.csv").open(encoding="utf-8")))
    assert [(row["student"], row["1.1"], row["1.2"], row["1.3"], row["note"]) for row in rows] == [
        ("zoe", "pass", "pass", "pass", "")]
