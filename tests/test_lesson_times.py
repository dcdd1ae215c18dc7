"""The run times that lessons 7 and 8 and the README state are the measured ones: read from
docs/results/lesson_times.md (written by ``benchmarks/lesson_times.py``, idle and beside three busy processes on two
cores), and the test fails when a sentence and the file disagree (to the minute's tenth that they quote)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.lesson_times import RESULTS_FILE, Timing, read_timings, stated_range
from utils.paths import REPO_ROOT
from utils.settings import QUICK_LESSONS

LESSONS = {7: "07_convolutional_vae_topology.py", 8: "08_conditional_vae_design.py"}
README = REPO_ROOT / "README.md"
# What a loaded shared server is, for the course: three busy processes beside the lesson on two cores.
LOADED = 3


def prose(path: Path) -> str:
    """A file's text with the comment markers of a lesson's markdown removed and whitespace collapsed, so that a
    sentence wrapped over two lines reads as one."""
    lines = (line.removeprefix("#").strip() for line in path.read_text(encoding="utf-8").splitlines())
    return re.sub(r"\s+", " ", " ".join(lines))


def lesson_sentence(timings: dict[tuple[int, str, int], Timing], lesson: int) -> tuple[str, str]:
    """The two phrases a lesson's header states: its training path's time and its quick path's."""
    return (f"runs in {stated_range(timings, lesson, 'full')} on 2 CPU cores",
            f"{stated_range(timings, lesson, 'quick')} with `QUICK = True`")


def readme_sentence(timings: dict[tuple[int, str, int], Timing], lesson: int) -> str:
    return (f"lesson {lesson} takes {stated_range(timings, lesson, 'full')} to run, or "
            f"{stated_range(timings, lesson, 'quick')} with `QUICK = True`")


@pytest.fixture(scope="module")
def timings() -> dict[tuple[int, str, int], Timing]:
    return read_timings(RESULTS_FILE.read_text(encoding="utf-8"))


def test_every_lesson_and_both_paths_were_measured(timings: dict[tuple[int, str, int], Timing]) -> None:
    lessons = sorted(int(p.name[:2]) for p in (REPO_ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    for lesson in lessons:
        assert (lesson, "full", 0) in timings, f"lesson {lesson}: no idle run in {RESULTS_FILE.name}"
    for lesson in QUICK_LESSONS:
        for path in ("full", "quick"):
            for busy in (0, LOADED):
                assert (lesson, path, busy) in timings, f"lesson {lesson}, {path} path, {busy} busy: not measured"
        assert timings[lesson, "quick", 0].seconds < timings[lesson, "full", 0].seconds, "the quick path is slower"


@pytest.mark.parametrize("lesson", QUICK_LESSONS)
def test_the_lesson_states_its_measured_times(timings: dict[tuple[int, str, int], Timing], lesson: int) -> None:
    text = prose(REPO_ROOT / "lessons" / LESSONS[lesson])
    for phrase in lesson_sentence(timings, lesson):
        assert phrase in text, f"lesson {lesson} should say '{phrase}' (docs/results/lesson_times.md)"


@pytest.mark.parametrize("lesson", QUICK_LESSONS)
def test_the_readme_states_the_measured_times(timings: dict[tuple[int, str, int], Timing], lesson: int) -> None:
    assert readme_sentence(timings, lesson) in prose(README), \
        f"the README should say '{readme_sentence(timings, lesson)}' (docs/results/lesson_times.md)"


def test_a_changed_time_is_caught(timings: dict[tuple[int, str, int], Timing]) -> None:
    """The check can fail: a loaded run 30 s slower changes the sentence it expects."""
    key = (7, "full", LOADED)
    slower = {**timings, key: Timing(*key, timings[key].load_average, timings[key].seconds + 30)}
    assert lesson_sentence(slower, 7)[0] not in prose(REPO_ROOT / "lessons" / LESSONS[7])
    assert readme_sentence(slower, 7) not in prose(README)


def test_lessons_without_a_quick_path_state_their_measured_times(
        timings: dict[tuple[int, str, int], Timing]) -> None:
    """Lesson 9 quotes its idle time to the nearest 10 s; lesson 10 says it runs in under a minute."""
    lesson9 = timings[9, "full", 0].seconds
    phrase = f"needs about {10 * round(lesson9 / 10):.0f} s of CPU on 2 cores"
    assert phrase in prose(REPO_ROOT / "lessons" / "09_designing_in_latent_space.py"), f"lesson 9 should say '{phrase}'"
    assert timings[10, "full", 0].seconds < 60
    assert "runs in under a minute on 2 CPU cores" in prose(REPO_ROOT / "lessons" / "10_the_prior.py")
