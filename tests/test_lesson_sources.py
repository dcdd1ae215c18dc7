"""The lesson sources as a student reads them: no markdown left inside a code cell (a heading or a paragraph of
prose that lost its ``# %% [markdown]`` marker shows as a grey comment, and the section numbering jumps), every
answer box with its question and in a cell of its own, and each lesson's training budget read from its own
environment variable."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import jupytext
import pytest

from utils.settings import COURSE_ENVIRONMENT_PREFIX, course_environment_flag, course_environment_int

# A markdown heading written as a comment ("# ## 3. Reconstructions") or left bare ("## 3. ...").
_HEADING = re.compile(r"^\s*(#\s*#{1,6}|#{2,6})\s+\S")
_COMMENT = re.compile(r"^\s*#(?P<text>.*)$")
# Prose: a comment of several words that reads as a sentence, not as code commented out or a short label.
_WORD = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
_CODE_LIKE = re.compile(r"(^\s*(def|class|import|from|return|for|if|print)\b)|[=\[\]{}]|\w\(|^\s*\w+\.\w+")


def _is_prose(text: str) -> bool:
    """True for comment text such as "The thresholded designs are what we judge, so we compare": four or more
    words and nothing that looks like code."""
    return len(_WORD.findall(text)) >= 4 and not _CODE_LIKE.search(text)


def markdown_in_code(source: str) -> list[str]:
    """What in one code cell's source reads as markdown: a heading in a comment, a bare ``#`` line (a markdown
    paragraph break), or a block of two or more comment lines of prose before the cell's first code line or after
    its last one. Comments between code lines (explaining the code around them) are allowed."""
    lines = source.splitlines()
    problems = [f"heading {line.strip()!r}" for line in lines if _HEADING.match(line)]
    problems += [f"a bare '#' line (line {number + 1})" for number, line in enumerate(lines) if line.strip() == "#"]
    code = [number for number, line in enumerate(lines) if line.strip() and not _COMMENT.match(line)]
    first, last = (code[0], code[-1]) if code else (len(lines), len(lines))
    for block in (lines[:first], lines[last + 1:]):
        prose = [line.strip() for line in block if (match := _COMMENT.match(line)) and _is_prose(match["text"])]
        if len(prose) >= 2:
            problems.append(f"a paragraph of prose in comments: {prose[0][:60]!r}…")
    return problems


def test_no_markdown_inside_a_code_cell(lesson_source: Path) -> None:
    notebook = jupytext.reads(lesson_source.read_text(encoding="utf-8"), fmt="py:percent")
    problems = [f"cell {index}: {problem}" for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
                for problem in markdown_in_code(cell.source)]
    assert problems == [], f"{lesson_source.name}: give these their own '# %% [markdown]' cell:\n" + "\n".join(problems)


_BEGIN_ANSWER, _END_ANSWER = "<!-- BEGIN ANSWER -->", "<!-- END ANSWER -->"
# A numbered section ("## 3. …") opens a new part of the lesson: it must not share a cell with the answer before it.
_SECTION = re.compile(r"^#{2,3}\s+\d", re.MULTILINE)


def answer_box_problems(markdown: str) -> list[str]:
    """An answer box (what the exercise version shows as "Your answer here") needs its question in the same cell,
    before it, and must not run into the next numbered section."""
    if _BEGIN_ANSWER not in markdown:
        return []
    before, rest = markdown.split(_BEGIN_ANSWER, 1)
    after = rest.split(_END_ANSWER, 1)[-1]
    problems = [] if before.strip() else ["an answer box with no question before it"]
    if _SECTION.search(after):
        problems.append("an answer box that runs into the next section")
    return problems


def test_every_answer_box_has_its_question_and_ends_its_cell(lesson_source: Path) -> None:
    notebook = jupytext.reads(lesson_source.read_text(encoding="utf-8"), fmt="py:percent")
    problems = [f"cell {index}: {problem}" for index, cell in enumerate(notebook.cells)
                if cell.cell_type == "markdown" for problem in answer_box_problems(cell.source)]
    assert problems == [], f"{lesson_source.name}:\n" + "\n".join(problems)


def test_the_answer_box_rule_both_ways() -> None:
    assert answer_box_problems(f"{_BEGIN_ANSWER}\nThe canvas has (n−1)s + k values.\n{_END_ANSWER}")
    assert answer_box_problems(f"**Question** — why?\n\n{_BEGIN_ANSWER}\nBecause.\n{_END_ANSWER}\n\n## 3. Next")
    assert answer_box_problems(f"**Question** — why?\n\n{_BEGIN_ANSWER}\nBecause.\n{_END_ANSWER}\n\n"
                               "## What you should take away\n- this") == []


@pytest.mark.parametrize("source", [
    "x = 1\n#\n# ## 3. Reconstructions of held-out designs",
    "## 2. Training\nmodel.train()",
    "assert ok\n#\n# The thresholded designs are what we judge in lesson 7, so we compare their compliance with\n"
    "# that of the grey SIMP result, and check that each is one connected structure:",
    "# The encoder is lesson 5's stride-2 stack followed by a linear layer whose outputs\n"
    "# are split into the mean and the log-variance of the posterior.\nencoder = make_encoder()",
], ids=["heading after code", "bare heading", "paragraph after code", "paragraph before code"])
def test_the_rule_finds_markdown_in_a_code_cell(source: str) -> None:
    assert markdown_in_code(source)


@pytest.mark.parametrize("source", [
    "# EXERCISE: the decoder\nclass Decoder(nn.Module):\n    pass",
    "rows = table()\n# Bounds these models meet over seeds 0–2: the CVAE carries every load and is within\n"
    "# 10–12 % of SIMP's compliance (median); the naive CVAE loses about 40 % of the loads.\nassert rows",
    "x = torch.zeros(3)  # the buffer of the loops below\ny = x + 1",
    "# BEGIN SOLUTION\nreturn x\n# END SOLUTION",
    "# x = old_value\n# y = x.mean()\nz = 2",
], ids=["exercise header", "comments between code", "inline comment", "solution markers", "code commented out"])
def test_the_rule_allows_comments_that_belong_to_the_code(source: str) -> None:
    assert markdown_in_code(source) == []


def test_course_environment_int_reads_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    variable = f"{COURSE_ENVIRONMENT_PREFIX}LESSON7_EPOCHS"
    monkeypatch.delenv(variable, raising=False)
    assert course_environment_int("LESSON7_EPOCHS", 150) == 150
    monkeypatch.setenv(variable, "")
    assert course_environment_int("LESSON7_EPOCHS", 150) == 150
    monkeypatch.setenv(variable, " 3 ")
    assert course_environment_int("LESSON7_EPOCHS", 150) == 3
    monkeypatch.setenv(f"{COURSE_ENVIRONMENT_PREFIX}LESSON8_EPOCHS", "7")
    assert course_environment_int("LESSON7_EPOCHS", 150) == 3


@pytest.mark.parametrize("value", ["three", "2.5", "0", "-4"])
def test_course_environment_int_names_the_variable_of_a_bad_value(monkeypatch: pytest.MonkeyPatch,
                                                                   value: str) -> None:
    monkeypatch.setenv(f"{COURSE_ENVIRONMENT_PREFIX}LESSON8_EPOCHS", value)
    with pytest.raises(ValueError, match="VAE_COURSE_LESSON8_EPOCHS"):
        course_environment_int("LESSON8_EPOCHS", 60)


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("0", False), ("1", True),
                                               (" 1 ", True)])
def test_course_environment_flag_reads_1_as_on(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                               expected: bool) -> None:
    variable = f"{COURSE_ENVIRONMENT_PREFIX}QUICK"
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    assert course_environment_flag("QUICK") is expected


@pytest.mark.parametrize("value", ["yes", "true", "2", "-1"])
def test_course_environment_flag_names_the_variable_of_a_bad_value(monkeypatch: pytest.MonkeyPatch,
                                                                   value: str) -> None:
    monkeypatch.setenv(f"{COURSE_ENVIRONMENT_PREFIX}QUICK", value)
    with pytest.raises(ValueError, match="VAE_COURSE_QUICK"):
        course_environment_flag("QUICK")


def test_the_heavy_lessons_have_one_quick_switch() -> None:
    """Lessons 7 and 8 read QUICK from the environment once, in their first code cell."""
    for source in ("07_convolutional_vae_topology.py", "08_conditional_vae_design.py"):
        text = (Path(__file__).resolve().parents[1] / "lessons" / source).read_text(encoding="utf-8")
        first_code_cell = text.split("# %%\n", 1)[1].split("# %%", 1)[0]
        assert text.count('QUICK = course_environment_flag("QUICK")') == 1, source
        assert 'QUICK = course_environment_flag("QUICK")' in first_code_cell, source


def test_lessons_read_their_own_budget() -> None:
    """Lessons 7 and 8 share no setting: each reads its own variables, none the old shared VAE_COURSE_EPOCHS."""
    for number, source in ((7, "07_convolutional_vae_topology.py"), (8, "08_conditional_vae_design.py")):
        text = (Path(__file__).resolve().parents[1] / "lessons" / source).read_text(encoding="utf-8")
        assert f'course_environment_int("LESSON{number}_EPOCHS", LESSON{number}_EPOCHS)' in text
        assert "VAE_COURSE_EPOCHS" not in text and 'os.environ.get("VAE_COURSE' not in text


def test_settings_stays_a_leaf_module() -> None:
    """utils.settings, which every tool and lesson imports, imports only the standard library and utils.paths."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "utils" / "settings.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    outside = sorted(name for name in imported
                     if name != "utils.paths" and name.split(".")[0] not in sys.stdlib_module_names | {"__future__"})
    assert outside == []


def test_every_erratum_box_of_a_lesson_has_its_row_on_the_errata_page(lesson_source: Path) -> None:
    """A lesson that corrects the seed slides ("Erratum") is linked from a row of docs/errata.md."""
    boxes = re.findall(r"Erratum[ :(]", lesson_source.read_text(encoding="utf-8"))
    errata = (Path(__file__).resolve().parents[1] / "docs" / "errata.md").read_text(encoding="utf-8")
    link = f"(lessons/{lesson_source.stem}.ipynb)"
    rows = [line for line in errata.splitlines() if line.startswith("|") and link in line]
    assert not boxes or rows, f"{lesson_source.name} corrects the slides but docs/errata.md has no row linking {link}"


# Words of the people who made the course, not of a student's course: each one appeared in a lesson and told a student
# nothing they could act on (an issue they never saw, a machine they do not have, a record that does not exist).
INTERNAL_WORDS = ("the issue", "issue's", "tail target", "that was aimed for", "we aimed for", "the part not re-run",
                  "rests on these", "rest on these", "reference machine", "the readme records", "the readme lists")
# Files of the repositories a lesson cites (not of this course).
CITED_FILES = {"topodiff/topodiff_analysis.py"}
_NUMBER_WORDS = {word: number for number, word in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"))}
# A file named in a lesson's text: a path with an extension, in backticks or as a link target.
_NAMED_FILE = re.compile(r"(?:`|\]\()(?P<path>(?:\.\./)?[\w.-]+(?:/[\w.-]+)*\.(?:md|pt|npz|npy|json|py|ipynb|csv|"
                         r"txt|png|toml|yml|yaml|html))(?:`|\))")
# A name of the course's package in a lesson's text: `utils.module` or `utils.module.name`.
_NAMED_OBJECT = re.compile(r"`(?P<name>utils(?:\.\w+)+)`")
REPO_ROOT = Path(__file__).resolve().parents[1]


def _text_of(lesson_source: Path) -> list[tuple[int, str]]:
    """(cell index, text a student reads) for each cell: markdown cells whole, code cells' comments."""
    notebook = jupytext.read(lesson_source)
    texts = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            texts.append((index, cell.source))
        else:
            texts.append((index, "\n".join(m.group("text") for line in cell.source.splitlines()
                                           if (m := _COMMENT.match(line)))))
    return texts


def test_no_lesson_speaks_in_internal_words(lesson_source: Path) -> None:
    found = [f"cell {index}: {word!r}" for index, text in _text_of(lesson_source)
             for word in INTERNAL_WORDS if word in " ".join(text.lower().split())]
    assert not found, f"{lesson_source.name} uses words a student cannot act on: {found}"


def test_every_file_and_name_a_lesson_mentions_exists(lesson_source: Path) -> None:
    import importlib

    missing = []
    for index, text in _text_of(lesson_source):
        for match in _NAMED_FILE.finditer(text):
            path = match.group("path").removeprefix("../")
            if not (REPO_ROOT / path).exists() and path not in CITED_FILES:
                missing.append(f"cell {index}: file {path}")
        for match in _NAMED_OBJECT.finditer(text):
            parts = match.group("name").split(".")
            for split in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    target = importlib.import_module(".".join(parts[:split]))
                except ModuleNotFoundError:
                    continue
                for attribute in parts[split:]:
                    target = getattr(target, attribute, None)
                if target is None:
                    missing.append(f"cell {index}: {match.group('name')}")
                break
    assert not missing, f"{lesson_source.name} names what the course does not have: {missing}"


def test_the_number_of_sections_a_lesson_announces_is_its_own(lesson_source: Path) -> None:
    texts = _text_of(lesson_source)
    sections = sum(len(re.findall(r"^## \d+\.", text, flags=re.MULTILINE)) for _, text in texts)
    announced = [(index, _NUMBER_WORDS.get(word, word)) for index, text in texts
                 for word in re.findall(r"the (\w+) sections", " ".join(text.lower().split()))
                 if word in _NUMBER_WORDS or word.isdigit()]
    assert all(int(number) == sections for _, number in announced), (lesson_source.name, sections, announced)


@pytest.mark.parametrize(("text", "found"), [("the README lists them", True), ("the errata page lists them", False),
                                             ("on the reference\nmachine", True), ("on an idle machine", False)])
def test_the_internal_words_rule_both_ways(text: str, found: bool) -> None:
    assert any(word in " ".join(text.lower().split()) for word in INTERNAL_WORDS) is found
