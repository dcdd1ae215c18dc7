"""The exercise generator on small lessons built here, including every malformed case."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tools.build_notebooks import (
    CELL_METADATA_KEY,
    HandEditError,
    MarkerError,
    build_lesson,
    main,
    notebook_text,
    out_of_sync,
    planned_outputs,
    write_outputs,
)

VALID = '''# %% [markdown]
# # Tiny lesson
# Why is the sky blue?
# <!-- BEGIN ANSWER -->
# Rayleigh scattering.
# <!-- END ANSWER -->

# %%
from utils.checks import passed

# %%
# EXERCISE: double a number
def double(x: float) -> float:
    """Return 2x."""
    # BEGIN SOLUTION
    secret_result = 2 * x
    return secret_result
    # END SOLUTION


# %%
def check_double(fn):
    assert fn(3) == 6
    passed("double")
check_double(double)

# %% tags=["solution"]
print("a worked solution cell")

# %%
# EXERCISE: triple a number
# BEGIN SOLUTION
tripled = 3 * 3
# END SOLUTION

# %%
check_double(double)
'''


def write_lesson(tmp_path: Path, text: str, name: str = "09_tiny.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_lesson_builds_both_versions(tmp_path: Path) -> None:
    built = build_lesson(write_lesson(tmp_path, VALID))
    assert [e.label for e in built.exercises] == ["Exercise 9.1: double a number", "Exercise 9.2: triple a number"]
    exercise_text = notebook_text(built.exercise)
    solution_text = notebook_text(built.solution)
    assert 'raise NotImplementedError(\\"Exercise 9.1: double a number\\")' in exercise_text
    assert 'raise NotImplementedError(\\"Exercise 9.2: triple a number\\")' in exercise_text
    for hidden in ("secret_result", "Rayleigh", "a worked solution cell", "tripled"):
        assert hidden not in exercise_text
        assert hidden in solution_text
    assert "*Your answer here.*" in exercise_text
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN ANSWER", "EXERCISE:"):
        assert marker not in exercise_text and marker not in solution_text
    assert '\\"\\"\\"Return 2x.\\"\\"\\"' in exercise_text, "the docstring stays for the student"
    assert len(built.solution.cells) == len(built.exercise.cells) + 1
    assert all(not c.get("outputs") for c in built.exercise.cells if c.cell_type == "code")


def test_exercise_stub_raises_named_error(tmp_path: Path) -> None:
    built = build_lesson(write_lesson(tmp_path, VALID))
    namespace: dict = {}
    exec(built.exercise.cells[2].source, namespace)
    with pytest.raises(NotImplementedError, match="Exercise 9.1: double a number"):
        namespace["double"](1.0)


def test_generation_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    source = write_lesson(tmp_path, VALID)
    first = planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    assert first == planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    assert len(write_outputs(first)) == 2
    assert write_outputs(first) == []
    assert out_of_sync(first, (tmp_path / "solutions", tmp_path / "notebooks")) == []


def test_hand_edit_is_refused_and_kept(tmp_path: Path) -> None:
    source = write_lesson(tmp_path, VALID)
    outputs = planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    write_outputs(outputs)
    target = tmp_path / "notebooks" / "09_tiny.ipynb"
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[0].source += "\nAn instructor's note."
    nbformat.write(notebook, target)
    edited = target.read_text(encoding="utf-8")
    source.write_text(VALID.replace("Tiny lesson", "Tiny lesson, revised"), encoding="utf-8")
    new_outputs = planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    with pytest.raises(HandEditError, match="09_tiny.ipynb"):
        write_outputs(new_outputs)
    assert target.read_text(encoding="utf-8") == edited, "the hand edit must survive"
    assert "revised" not in (tmp_path / "solutions" / "09_tiny.ipynb").read_text(), "nothing is written"
    write_outputs(new_outputs, force=True)
    assert "An instructor's note." not in target.read_text(encoding="utf-8")


def test_a_notebook_that_is_no_longer_json_is_refused_not_crashed_on(tmp_path: Path) -> None:
    """A merge that left conflict markers in a generated notebook: a clear refusal, then --force regenerates."""
    source = write_lesson(tmp_path, VALID)
    outputs = planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    write_outputs(outputs)
    target = tmp_path / "notebooks" / "09_tiny.ipynb"
    broken = "<<<<<<< HEAD\n" + target.read_text(encoding="utf-8") + "=======\n>>>>>>> branch\n"
    target.write_text(broken, encoding="utf-8")
    with pytest.raises(HandEditError, match="09_tiny.ipynb"):
        write_outputs(outputs)
    assert target.read_text(encoding="utf-8") == broken
    write_outputs(outputs, force=True)
    assert target.read_text(encoding="utf-8") == outputs[target]


def test_out_of_sync_reports_stale_and_orphan_notebooks(tmp_path: Path) -> None:
    source = write_lesson(tmp_path, VALID)
    outputs = planned_outputs([source], tmp_path / "solutions", tmp_path / "notebooks")
    write_outputs(outputs)
    (tmp_path / "notebooks" / "08_orphan.ipynb").write_text("{}")
    stale = dict(outputs)
    stale[tmp_path / "solutions" / "09_tiny.ipynb"] += " "
    problems = out_of_sync(stale, (tmp_path / "solutions", tmp_path / "notebooks"))
    assert any("09_tiny.ipynb: differs" in p for p in problems)
    assert any("08_orphan.ipynb: no lesson source" in p for p in problems)


MALFORMED = {
    "unclosed solution": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n\n# %%\ncheck_x(x)\n", 4, "never closed"),
    "nested solution": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", 4, "nested"),
    "end without begin": ("# %%\nx = 1\n# END SOLUTION\n", 3, "without"),
    "solution outside exercise": ("# %%\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", 2, "outside an exercise"),
    "solution marker in markdown": ("# %% [markdown]\n# Text\n# # BEGIN SOLUTION\n", 3, "markdown cell"),
    "answer marker in code": ("# %%\nx = 1\n<!-- BEGIN ANSWER -->\n", 3, "answer marker in a code cell"),
    "unclosed answer": ("# %% [markdown]\n# Q\n# <!-- BEGIN ANSWER -->\n# A\n", 4, "never closed"),
    "exercise without block": ("# %%\n# EXERCISE: t\nx = 1\n\n# %%\ncheck_x(x)\n", 2, "no '# BEGIN SOLUTION' block"),
    "exercise header not first": ("# %%\nx = 1\n# EXERCISE: t\n", 3, "first line"),
    "exercise without self-check": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n\n# %%\nprint(x)\n", 8, "self-check"),
    "last exercise without self-check": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", 2, "no self-check"),
    "two exercises in a row": (
        "# %%\n# EXERCISE: a\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n\n"
        "# %%\n# EXERCISE: b\n# BEGIN SOLUTION\ny = 1\n# END SOLUTION\n", 8, "no self-check"),
    "uncommented markdown line": ("# %% [markdown]\n# Text\nstray line\n", 3, "does not start with '#'"),
    "solution marker with trailing text": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# BEGIN SOLUTION.\ny = 2\n# END SOLUTION\n",
        6, "malformed solution marker"),
    "end marker with trailing text": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION: done\n", 5, "malformed solution marker"),
    "solution marker without its space": ("# %%\n# EXERCISE: t\n#BEGIN SOLUTION\nx = 1\n", 3, "malformed"),
    "commented answer marker in code": ("# %%\nx = 1\n# <!-- BEGIN ANSWER -->\n", 3, "answer marker in a code cell"),
    "answer marker with trailing text": (
        "# %% [markdown]\n# Q\n# <!-- BEGIN ANSWER --> here\n# A\n", 3, "malformed answer marker"),
    "misspelt checker": (
        "# %%\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n\n# %%\ncheck_vae_los(x)\n", 8,
        "did you mean check_vae_loss?"),
    "exercise tagged solution": (
        '# %% tags=["solution"]\n# EXERCISE: t\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n', 2, "cannot be tagged"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_markers_name_file_cell_and_line(tmp_path: Path, case: str) -> None:
    text, line, message = MALFORMED[case]
    source = write_lesson(tmp_path, text)
    with pytest.raises(MarkerError) as error:
        build_lesson(source)
    assert f"{source}:{line}: cell " in str(error.value)
    assert message in str(error.value)


def test_source_must_start_with_a_cell_marker(tmp_path: Path) -> None:
    with pytest.raises(MarkerError, match=":1: every cell"):
        build_lesson(write_lesson(tmp_path, "x = 1\n\n# %%\ny = 2\n"))


def test_source_needs_a_lesson_number(tmp_path: Path) -> None:
    with pytest.raises(MarkerError, match="NN_name.py"):
        build_lesson(write_lesson(tmp_path, "# %%\nx = 1\n", name="tiny.py"))


def test_command_line_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = write_lesson(tmp_path, MALFORMED["nested solution"][0])
    assert main(["--check", str(source)]) == 2
    assert "nested" in capsys.readouterr().err


def test_generated_notebook_records_its_source_and_checksum(tmp_path: Path) -> None:
    built = build_lesson(write_lesson(tmp_path, VALID))
    metadata = json.loads(notebook_text(built.exercise))["metadata"]
    assert metadata["vae_course"]["version"] == "exercise"
    assert len(metadata["vae_course"]["cells_sha256"]) == 64
    assert metadata["kernelspec"]["name"] == "python3"


def test_language_info_is_what_ipykernel_reports() -> None:
    """JupyterLab marks a notebook modified when the kernel's language_info differs from the file's."""
    from ipykernel.ipkernel import IPythonKernel

    from tools.build_notebooks import LANGUAGE_INFO
    reported = dict(IPythonKernel.language_info)
    def without_version(info: dict) -> dict:
        return {k: v for k, v in info.items() if k != "version"}

    assert without_version(LANGUAGE_INFO) == without_version(reported)


def test_exercise_and_check_cells_carry_their_exercise_number(lesson_source: Path) -> None:
    """The grader and the site find an exercise's cells by generated metadata: one exercise cell and one check
    cell per exercise, in both versions, the check cell right after the exercise cell (among code cells)."""
    built = build_lesson(lesson_source)
    numbers = [exercise.number for exercise in built.exercises]
    for notebook in (built.solution, built.exercise):
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        roles = [(cell.metadata.get(CELL_METADATA_KEY, {}).get("exercise"),
                  cell.metadata.get(CELL_METADATA_KEY, {}).get("role")) for cell in code]
        tagged = [pair for pair in roles if pair[1] in ("exercise", "check")]
        assert tagged == [(n, role) for n in numbers for role in ("exercise", "check")]
        for position, (number, role) in enumerate(roles):
            if role == "exercise":
                following = [r for r in roles[position + 1:] if r[1] != "solution"]
                assert following[0] == (number, "check")
    solution_only = [c for c in built.solution.cells if c.metadata.get(CELL_METADATA_KEY, {}).get("role") == "solution"]
    assert not [c for c in built.exercise.cells if c.metadata.get(CELL_METADATA_KEY, {}).get("role") == "solution"]
    assert len(built.solution.cells) - len(built.exercise.cells) == len(solution_only)


def test_a_marker_with_trailing_text_never_reaches_the_student(tmp_path: Path) -> None:
    """The case the issue found: a second block opened by '# BEGIN SOLUTION.' was copied to students silently."""
    text = VALID.replace("    return secret_result\n    # END SOLUTION", "    # END SOLUTION\n    # BEGIN SOLUTION.\n"
                         "    return secret_result\n    # END SOLUTION")
    assert "# BEGIN SOLUTION." in text
    with pytest.raises(MarkerError, match="malformed solution marker"):
        build_lesson(write_lesson(tmp_path, text))


def test_two_lessons_with_one_number_are_refused(tmp_path: Path) -> None:
    from tools.build_notebooks import lesson_sources
    write_lesson(tmp_path, VALID, "11_first.py")
    write_lesson(tmp_path, VALID, "11_second.py")
    with pytest.raises(MarkerError, match="11_first.py and .*11_second.py"):
        lesson_sources(tmp_path)
    (tmp_path / "11_second.py").rename(tmp_path / "12_second.py")
    assert [p.name for p in lesson_sources(tmp_path)] == ["11_first.py", "12_second.py"]


KEY_LINE = "doubled_value_of_the_input"
LATER_LESSON = f"""# %%
def helper(x):
    {KEY_LINE} = 2 * x
    return {KEY_LINE}
"""


def test_a_key_line_shown_in_a_later_or_the_same_lesson_is_refused(tmp_path: Path) -> None:
    """Exercise 9.1's two solution lines shown in an ordinary cell of a later lesson are refused, each named;
    the same lines shown in an earlier lesson were taught there and are not; short generic lines never count."""
    from tools.build_notebooks import exposed_key_lines, key_form
    assert key_form("    return x") == "" and key_form("# a long comment that is not code at all") == ""
    text = VALID.replace("secret_result", KEY_LINE)
    lesson = build_lesson(write_lesson(tmp_path, text, "09_tiny.py"))
    later = build_lesson(write_lesson(tmp_path, LATER_LESSON, "10_later.py"))
    earlier = build_lesson(write_lesson(tmp_path, LATER_LESSON, "08_earlier.py"))
    assert exposed_key_lines([lesson]) == []
    problems = exposed_key_lines([lesson, later])
    assert [p.split(" shows")[0] for p in problems] == ["10_later.py: cell 0, line 2", "10_later.py: cell 0, line 3"]
    assert all("exercise 9.1" in p for p in problems)
    assert exposed_key_lines([earlier, lesson]) == []
    with pytest.raises(MarkerError, match="shows a key line of exercise 9.1"):
        planned_outputs([tmp_path / "09_tiny.py", tmp_path / "10_later.py"], tmp_path / "s", tmp_path / "n")


def test_no_lesson_shows_an_exercises_key_line_to_students() -> None:
    """The course itself: 7.1's loss lines once appeared in ordinary cells of lessons 7 and 8."""
    from tools.build_notebooks import exposed_key_lines, lesson_sources
    assert exposed_key_lines([build_lesson(source) for source in lesson_sources()]) == []


def test_exercise_numbers_in_prose_are_generated_and_checked(tmp_path: Path) -> None:
    """``{{exercise:NAME}}`` becomes the number of the exercise defining NAME, in its lesson or another; inserting an
    exercise before it renumbers the prose with it. A typed number naming no exercise, an unknown NAME and a bold
    introduction naming another exercise than the next are errors."""
    write_lesson(tmp_path, VALID, "09_tiny.py")
    later = write_lesson(tmp_path, "# %% [markdown]\n# Reuse exercise {{exercise:double}}'s `double`.\n", "10_later.py")
    assert "Reuse exercise 9.1's" in build_lesson(later).exercise.cells[0].source
    inserted = VALID.replace("# %%\n# EXERCISE: double a number", "# %%\n# EXERCISE: first\n# BEGIN SOLUTION\n"
                             "first = 1\n# END SOLUTION\n\n# %%\ncheck_double(double)\n\n# %%\n"
                             "# EXERCISE: double a number")
    write_lesson(tmp_path, inserted, "09_tiny.py")
    assert "Reuse exercise 9.2's" in build_lesson(later).exercise.cells[0].source
    for text, message in (("Exercise 9.7 shows it", "names no exercise"),
                          ("{{exercise:triple}}", "names no exercise's function")):
        with pytest.raises(MarkerError, match=message):
            build_lesson(write_lesson(tmp_path, f"# %% [markdown]\n# {text}\n", "11_bad.py"))
    (tmp_path / "11_bad.py").unlink()
    introduced = VALID.replace("# %%\n# EXERCISE: double a number",
                               "# %% [markdown]\n# **Exercise 9.2** — double it\n\n# %%\n# EXERCISE: double a number")
    with pytest.raises(MarkerError, match="introduces Exercise 9.2, but the next exercise is 9.1"):
        build_lesson(write_lesson(tmp_path, introduced, "09_tiny.py"))
