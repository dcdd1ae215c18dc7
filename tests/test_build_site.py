"""The course site's builder (tools/build_site.py) without executing anything: lesson pages with folded or absent
solutions, static explorers and progress bars, the execution cache's key, the staged pages."""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from tools import build_site
from tools.build_notebooks import build_lesson, lesson_sources

LESSON_1 = next(s for s in lesson_sources() if s.stem.startswith("01_"))


def _sources(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in notebook.cells)


def test_solutions_are_folded_behind_a_toggle_after_the_exercise_version() -> None:
    built = build_lesson(LESSON_1)
    page = build_site.lesson_page(built, built.solution, solutions=True, release_zip=False)
    folded = [c for c in page.cells if c.cell_type == "code" and "hide-input" in c.metadata.get("tags", [])]
    assert [c.metadata["mystnb"]["code_prompt_show"] for c in folded] == \
        [f"Show solution {e.number}" for e in built.exercises]
    for cell in folded:
        before = page.cells[page.cells.index(cell) - 1]
        assert before.cell_type == "markdown" and "NotImplementedError" in before.source
    assert "{download}`the solution notebook" in _sources(page)


@pytest.mark.parametrize("source", lesson_sources(), ids=lambda p: p.stem)
def test_a_page_without_solutions_shows_no_solution_line(source: Path) -> None:
    built = build_lesson(source)
    page = build_site.lesson_page(built, built.solution, solutions=False, release_zip=False)
    lines = {line.strip() for cell in page.cells for line in cell.source.splitlines()}
    leaked = (built.hidden_lines - built.public_lines) & lines
    assert not leaked, f"solution lines on the page: {sorted(leaked)[:5]}"
    assert "Show solution" not in _sources(page) and "solution notebook" not in _sources(page)
    exercise_cells = [c for c in page.cells if c.metadata.get("vae_course", {}).get("role") == "exercise"]
    assert len(exercise_cells) == len(built.exercises)
    assert all("NotImplementedError" in c.source and not c.outputs for c in exercise_cells)


def test_a_written_answer_is_folded_and_its_prompt_dropped() -> None:
    solution = "Why?\n\nBecause the KL is non-negative.\nSo the bound holds.\n\nNext."
    exercise = "Why?\n\n" + build_site.ANSWER_PROMPT + "\n\nNext."
    folded = build_site._folded_answers(solution, exercise)
    assert "::::{dropdown} Show answer\nBecause the KL is non-negative.\nSo the bound holds.\n::::" in folded
    assert build_site.ANSWER_PROMPT not in folded and folded.startswith("Why?") and folded.endswith("Next.")


def _widget_notebook() -> nbformat.NotebookNode:
    figure = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
              "metadata": {}}
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_slider", "IPY_MODEL_out"]}},
        "slider": {"model_name": "FloatSliderModel", "state": {"description": "q_mean", "min": -2, "max": 2}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [figure]}},
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_p", "IPY_MODEL_right"]}},
        "left": {"model_name": "HTMLModel", "state": {"value": "training: 100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 150, "max": 150}},
        "right": {"model_name": "HTMLModel", "state": {"value": " 150/150 [00:48&lt;00:00]"}},
    }
    view = {"output_type": "display_data", "metadata": {},
            "data": {build_site.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "interactive(...)"}}
    bar = {"output_type": "display_data", "metadata": {},
           "data": {build_site.WIDGET_VIEW: {"model_id": "bar"}, "text/plain": "  0%|"}}
    cells = [nbformat.v4.new_code_cell("widgets.interact(...)"), nbformat.v4.new_code_cell("train()")]
    cells[0].outputs = [nbformat.from_dict(view)]
    cells[1].outputs = [nbformat.from_dict(bar)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {build_site.WIDGET_STATE: {"state": state}}
    return notebook


def test_an_explorer_becomes_its_first_figure_and_a_note_and_a_bar_its_final_text() -> None:
    notebook = _widget_notebook()
    assert build_site.static_widgets(notebook) == 1
    explorer, note, training = notebook.cells
    assert [o["data"]["image/png"] for o in explorer.outputs] == ["iVBORw0KGgo="]
    assert "Interactive in JupyterLab" in note.source and "`q_mean` from -2 to 2" in note.source
    assert training.outputs[0]["text"] == "training: 100%|██████████| 150/150 [00:48<00:00]\n"
    assert "widgets" not in notebook.metadata


def test_the_cache_key_follows_the_cells_the_inputs_and_the_course_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = build_lesson(LESSON_1).solution
    key = build_site.cache_key(notebook, "inputs")
    assert build_site.cache_key(copy.deepcopy(notebook), "inputs") == key
    assert build_site.cache_key(notebook, "other inputs") != key
    changed = copy.deepcopy(notebook)
    changed.cells[-1].source += "\n# changed"
    assert build_site.cache_key(changed, "inputs") != key
    monkeypatch.setenv("VAE_COURSE_EPOCHS", "3")
    short = build_site.cache_key(notebook, "inputs")
    assert short != key
    monkeypatch.setenv("VAE_COURSE_SITE_SOLUTIONS", "0")  # the site's own switch does not change execution
    assert build_site.cache_key(notebook, "inputs") == short


def test_every_page_and_results_file_of_docs_is_staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    (docs / "results").mkdir(parents=True)
    for name in ("index", "results", "grading", "student-guide", "zebra"):
        (docs / f"{name}.md").write_text(f"# {name}\n\n<!-- lessons -->\n\n<!-- pages -->\n")
    (docs / "results" / "vae.md").write_text("# VAE\n")
    (docs / "results" / "cvae.md").write_text("# CVAE\n")
    monkeypatch.setattr(build_site, "RELEASE_ZIP", tmp_path / "missing.zip")
    staging = tmp_path / "staged"
    (staging / "stale.md").parent.mkdir(parents=True)
    (staging / "stale.md").write_text("gone")
    built = build_lesson(LESSON_1)
    pages = {LESSON_1.stem: build_site.lesson_page(built, built.solution, True, False)}
    build_site.stage(staging, pages, [built], True, {LESSON_1.stem: 1.5}, docs_dir=docs)
    index = (staging / "index.md").read_text()
    assert index.index("student-guide") < index.index("grading") < index.index("results") < index.index("zebra")
    assert f"lessons/{LESSON_1.stem}" in index and "Lesson 1" in index
    results = (staging / "results.md").read_text()
    assert "results/cvae.md" in results and "results/vae.md" in results and "lesson-times.md" in results
    times = (staging / "results-generated" / "lesson-times.md").read_text()
    assert "| 1 | `01_latent_variable_models` | 1.5 s |" in times
    assert (staging / "downloads" / f"{LESSON_1.stem}.ipynb").exists()
    assert not (staging / "stale.md").exists()


def test_an_executed_notebook_is_cached_and_not_executed_again(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\nprint(time.time_ns())")])
    first = build_site.execute_cached(notebook, "key", cache_dir=tmp_path)
    again = build_site.execute_cached(notebook, "key", cache_dir=tmp_path)
    assert not first.cached and again.cached and again.seconds == first.seconds
    assert first.notebook.cells[0].outputs[0]["text"] == again.notebook.cells[0].outputs[0]["text"]
    assert not notebook.cells[0].get("outputs"), "the notebook given is left as it was"


def test_refresh_executes_again_and_replaces_the_cached_result(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\nprint(time.time_ns())")])
    first = build_site.execute_cached(notebook, "key", cache_dir=tmp_path)
    refreshed = build_site.execute_cached(notebook, "key", cache_dir=tmp_path, refresh=True)
    again = build_site.execute_cached(notebook, "key", cache_dir=tmp_path)
    assert not refreshed.cached and again.cached
    printed = [run.notebook.cells[0].outputs[0]["text"] for run in (first, refreshed, again)]
    assert printed[0] != printed[1] == printed[2], "the refreshed execution is the one cached"


def test_a_failing_cell_fails_the_build_and_is_not_cached(tmp_path: Path) -> None:
    from nbclient.exceptions import CellExecutionError
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert False, 'budget missed'")])
    with pytest.raises(CellExecutionError, match="budget missed"):
        build_site.execute_cached(notebook, "failing", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_site_without_solutions_leaves_out_the_graders_attack_list(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/grading.md lists what still gets past the grader: the site published during term has no such page, no
    entry for it in the navigation and no link to it (a link becomes the page's title)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# home\n\n<!-- lessons -->\n\n<!-- pages -->\n")
    (docs / "grading.md").write_text("# Grading\n\nwhat gets past the grader\n")
    (docs / "instructor-guide.md").write_text("See [Grading untrusted notebooks](grading.md#limits) and "
                                              "[the grader](grading.md).\n")
    monkeypatch.setattr(build_site, "RELEASE_ZIP", tmp_path / "missing.zip")
    built = build_lesson(LESSON_1)
    pages = {LESSON_1.stem: build_site.lesson_page(built, built.solution, False, False)}
    staging = tmp_path / "staged"
    build_site.stage(staging, pages, [built], False, {LESSON_1.stem: 1.0}, docs_dir=docs)
    assert not (staging / "grading.md").exists()
    assert "grading" not in (staging / "index.md").read_text().split("Guides")[1]
    guide = (staging / "instructor-guide.md").read_text()
    assert "grading.md" not in guide and "*Grading untrusted notebooks* (for instructors)" in guide
    build_site.stage(staging, pages, [built], True, {LESSON_1.stem: 1.0}, docs_dir=docs)
    assert (staging / "grading.md").exists() and "(grading.md#limits)" in (staging / "instructor-guide.md").read_text()
