"""Reporting: one feedback file per student (Markdown), the summary printed at the end, and the helpers the
gradebooks (tools/grading/gradebook.py) share.

Everything quoted from a student's run is untrusted text: it is capped in length, shown in a code fence longer
than any run of backticks inside it (so it cannot close the fence and write Markdown of its own), and a CSV cell
starting like a formula is prefixed with an apostrophe. Feedback file names are unique per student.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from tools.grading.results import STATUSES, NotebookResult

QUOTE_LIMIT = 2000
# Spreadsheets run a cell starting with one of these as a formula (CSV injection); tab and carriage return too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STATUS_MARK = {"pass": "✅ correct", "fail": "❌ the check failed", "not done": "⏳ not done yet",
               "error": "⚠️ your code raised an error", "missing": "❓ missing",
               "tampered": "🚫 tampered: not counted", "not graded": "⏹ not graded"}


# Characters a terminal or an editor acts on (escape sequences, carriage returns, bidirectional overrides): shown
# as escapes in every report, never written raw. Newlines and tabs are kept.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escaped(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``)."""
    return CONTROL_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def capped(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut, its control characters escaped."""
    text = escaped(text)
    return text if len(text) <= limit else f"{text[:limit]} … ({len(text) - limit} more characters not shown)"


def fenced(text: str) -> list[str]:
    """Lines showing ``text`` verbatim in a code block it cannot close (the fence is longer than any backtick
    run in it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text, fence]


def inline(text: str) -> str:
    """``text`` on one line, every character Markdown acts on escaped with a backslash (so ``p(z | x)`` reads as
    written): for names and titles in headings. Control characters become spaces."""
    return re.sub(r"([`*_#<>\[\]|\\!~])", r"\\\1", re.sub(r"[\x00-\x1f\x7f]", " ", text))


def spreadsheet_safe(value: object) -> str:
    """A CSV cell that no spreadsheet runs as a formula."""
    text = escaped(str(value))
    return f"'{text}" if text.startswith(FORMULA_START) else text


def exercise_columns(results: list[NotebookResult]) -> list[str]:
    """Every exercise number seen, in lesson order (1.1, 1.2, …, 2.1, …)."""
    numbers = {exercise.number for result in results for exercise in result.exercises}
    return sorted(numbers, key=lambda n: tuple(int(part) for part in n.split(".")))


def review_note(result: NotebookResult) -> str:
    """What the instructor should read in a notebook: flagged lines, a hidden folder."""
    notes = [str(flag) for flag in result.flags]
    if any(part.startswith(".") for part in Path(result.notebook).parts):
        notes.insert(0, "graded from a hidden file or folder")
    return "; ".join(notes)


# Grading notes a student can act on, by how the grader's note begins; the grader's own words follow, quoted.
STUDENT_NOTES = {
    "not a readable notebook": "Your file could not be read as a notebook: it is damaged or was saved in another "
                               "format. Open it in JupyterLab, check that your work is there, save it (File → Save "
                               "Notebook) and hand in that .ipynb file again.",
    "not a notebook: the file is not text": "Your file is not a notebook (.ipynb): hand in the notebook file itself, "
                                            "saved from JupyterLab (File → Save Notebook).",
}


def student_note(problem: str) -> list[str]:
    """Feedback lines for a grading note: what to do, where the grader knows it, then its words quoted."""
    reason = problem.removeprefix("not graded: ")
    advice = next((text for start, text in STUDENT_NOTES.items() if reason.startswith(start)), None)
    quoted = fenced(capped(problem))
    return [advice, "", "The grader's message:", "", *quoted] if advice else quoted


def feedback_markdown(student: str, results: list[NotebookResult]) -> str:
    """A student's feedback: per notebook, per exercise, the result and what the check or the code said."""
    lines = [f"# Feedback for {inline(student)}", ""]
    for result in results:
        heading = f"Lesson {result.lesson}" if result.lesson else "Notebook"
        lines += [f"## {heading}: {inline(result.notebook)}", ""]
        if result.exercises:
            lines += [f"**{result.passed} of {len(result.exercises)} exercises correct.**", ""]
        if result.problem:
            lines += ["**Grading note:**", "", *student_note(result.problem), ""]
        for exercise in result.exercises:
            lines += [f"### Exercise {exercise.number}: {inline(exercise.title)} — {STATUS_MARK[exercise.status]}", ""]
            if exercise.status != "pass" and exercise.message:
                lines += [*fenced(capped(exercise.message.strip())), ""]
    return "\n".join(lines).rstrip() + "\n"


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "student"


def feedback_file_names(students: list[str]) -> dict[str, str]:
    """A distinct file name per student: the name made safe, with a digest of the real name where making it
    safe changed it or two names would collide (also on case-insensitive file systems)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for student in sorted(students):
        safe = _safe_file_name(student)
        digest = hashlib.sha256(student.encode()).hexdigest()[:8]
        candidate = safe if safe == student else f"{safe}-{digest}"
        if candidate.lower() in taken:
            candidate = f"{safe}-{digest}"
        counter = 2
        while candidate.lower() in taken:
            candidate, counter = f"{safe}-{digest}-{counter}", counter + 1
        taken.add(candidate.lower())
        names[student] = f"{candidate}.md"
    return names


def write_feedback(results: list[NotebookResult], folder: Path) -> list[Path]:
    """One Markdown file per student in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[NotebookResult]] = {}
    for result in results:
        by_student.setdefault(result.student, []).append(result)
    file_names = feedback_file_names(list(by_student))
    written = []
    for student, own in sorted(by_student.items()):
        path = folder / file_names[student]
        path.write_text(feedback_markdown(student, own), encoding="utf-8")
        written.append(path)
    return written


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def summary_text(results: list[NotebookResult], skipped: list[Path] | None = None) -> str:
    """Per exercise, how many notebooks passed it and how the others ended: what the class found hard; then
    the notebooks with a grading note, those flagged for review, and the checkpoint copies left out."""
    students = len({r.student for r in results})
    lines = [f"{len(results)} {_plural(len(results), 'notebook')} from {students} {_plural(students, 'student')}"]
    columns = exercise_columns(results)
    if columns:
        lines.append(f"{'exercise':<10}" + "".join(f"{status:>12}" for status in STATUSES))
        for number in columns:
            counts = Counter(e.status for r in results for e in r.exercises if e.number == number)
            lines.append(f"{number:<10}" + "".join(f"{counts[status]:>12}" for status in STATUSES))
    problems = [r for r in results if r.problem]
    if problems:
        lines.append(f"{len(problems)} {_plural(len(problems), 'notebook')} with a grading note:")
        lines += [f"  {escaped(repr(r.student))} ({escaped(repr(r.notebook))}): {capped(r.problem, 300)}"
                  for r in problems]
    reviews = [r for r in results if review_note(r)]
    if reviews:
        lines.append(f"{len(reviews)} {_plural(len(reviews), 'notebook')} to review (the gradebook's review column):")
        lines += [f"  {escaped(repr(r.student))} ({escaped(repr(r.notebook))}): {capped(review_note(r), 300)}"
                  for r in reviews]
    if skipped:
        lines.append(f"Jupyter checkpoint copies not graded: {len(skipped)} "
                     "(.ipynb_checkpoints: the notebook beside each is)")
    return "\n".join(lines)
