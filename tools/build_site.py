#!/usr/bin/env python3
"""Build the course website into ``site/`` (``make site``; instructor tool).

1. Every lesson source (``lessons/NN_name.py``, found by :func:`tools.build_notebooks.lesson_sources`, so a new
   lesson appears by itself) is turned into its solution notebook in memory and **executed** with nbclient in
   ``solutions/``. Executed notebooks are cached in ``build/site-cache/``, keyed by the notebook's cells, every
   file under ``utils/``, ``studies/`` and ``data/`` and the ``VAE_COURSE_*`` settings: a rebuild with nothing
   changed executes nothing. ``make test`` executes every lesson through the same function and fills the same
   cache (``tests/test_lesson_execution.py``), so a CI run executes each lesson once, and ``make site`` after it
   none.
2. Each executed notebook becomes a page: an exercise shows its exercise version (what the student gets) with the
   solution folded behind "Show solution" and its outputs; a written answer is folded behind "Show answer"; each
   ipywidgets explorer is replaced by the figure it drew first and a note that it is interactive in JupyterLab;
   a tqdm bar by its final text. With ``--no-solutions`` exercise cells keep only their exercise version, cells
   tagged ``solution`` and written answers are left out, and no solution notebook is offered.
3. ``docs/`` is staged with the lesson pages, the exercise notebooks and the student release zip (``make release``
   writes it) in ``build/site-src/``, and Sphinx builds the site from there (``docs/conf.py``). Nothing is fetched.

Usage: ``python -m tools.build_site [--no-solutions] [--out site] [--lessons 1 3]``
"""
from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tools.build_notebooks import (
    ANSWER_PROMPT,
    CELL_METADATA_KEY,
    REPO_ROOT,
    SOLUTIONS_DIR,
    BuiltLesson,
    build_lesson,
    lesson_number,
    lesson_sources,
    notebook_text,
)

DOCS_DIR = REPO_ROOT / "docs"
BUILD_DIR = REPO_ROOT / "build"
CACHE_DIR = BUILD_DIR / "site-cache"
RELEASE_ZIP = REPO_ROOT / "dist" / "vae-course-student.zip"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CELL_TIMEOUT_S = 900  # a lesson's longest cell takes about 3 minutes on 2 cores
# Files whose change changes what a lesson prints or draws; the cache key covers all of them.
CACHE_INPUTS = ("utils", "studies", "data")
# Pages for instructors' eyes only: the site without solutions (published during term) leaves them out, and a link to
# one from another page becomes its plain title. grading.md lists what still gets past the grader.
INSTRUCTOR_ONLY_PAGES = ("grading",)
GUIDE_ORDER = ("student-guide", "instructor-guide", "grading", "results", "errata", "references", "layout")
LESSONS_MARKER = "<!-- lessons -->"
PAGES_MARKER = "<!-- pages -->"


@dataclass
class Executed:
    """A lesson's executed solution notebook, how long it took, and whether it came from the cache."""

    notebook: nbformat.NotebookNode
    seconds: float
    cached: bool


def _tree_digest(paths: tuple[str, ...]) -> str:
    """SHA-256 over the names and bytes of every file under ``paths`` (``__pycache__`` excluded)."""
    digest = hashlib.sha256()
    for name in paths:
        # A folder the repository does not have contributes nothing (rglob of a missing folder yields nothing).
        for path in sorted((REPO_ROOT / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(notebook: nbformat.NotebookNode, digest: str) -> str:
    """The key of one executed notebook: its cells, the course's code and data, the ``VAE_COURSE_*`` settings."""
    settings = {k: v for k, v in sorted(os.environ.items())
                if k.startswith("VAE_COURSE_") and not k.startswith("VAE_COURSE_SITE")}
    payload = json.dumps({"cells": [(c.cell_type, c.source) for c in notebook.cells], "inputs": digest,
                          "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def inputs_digest() -> str:
    """The digest of everything besides a notebook's cells that changes what a lesson prints or draws."""
    return _tree_digest(CACHE_INPUTS)


def execute_cached(notebook: nbformat.NotebookNode, key: str, cache_dir: Path = CACHE_DIR,
                   refresh: bool = False) -> Executed:
    """Execute ``notebook`` in ``solutions/`` (a failing cell fails the build), or return its cached result.
    ``refresh`` executes even when a result is cached (the tests do: every run executes every lesson) and caches
    the new result."""
    cached = cache_dir / f"{key}.ipynb"
    if cached.exists() and not refresh:
        record = json.loads(cached.with_suffix(".json").read_text(encoding="utf-8"))
        return Executed(nbformat.read(cached, as_version=4), record["seconds"], cached=True)
    executed = copy.deepcopy(notebook)
    start = time.perf_counter()
    client = NotebookClient(executed, timeout=CELL_TIMEOUT_S, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(SOLUTIONS_DIR)}})
    # The kernel's own stderr (start-up warnings) would drown the progress; a failing cell still fails the build.
    with client.setup_kernel(stderr=subprocess.DEVNULL):
        code_cells = [i for i, cell in enumerate(executed.cells) if cell.cell_type == "code"]
        for done, index in enumerate(code_cells, start=1):
            client.execute_cell(executed.cells[index], index)
            print(f"\r  cell {done}/{len(code_cells)} ({time.perf_counter() - start:.0f} s)", end="", file=sys.stderr,
                  flush=True)
        client.set_widgets_metadata()
    print(file=sys.stderr)
    seconds = time.perf_counter() - start
    cache_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, cached)
    cached.with_suffix(".json").write_text(json.dumps({"seconds": seconds}), encoding="utf-8")
    return Executed(executed, seconds, cached=False)


# --- widgets: a static page has no kernel ---------------------------------------------------------------------

def _widget_models(notebook: nbformat.NotebookNode) -> dict[str, dict]:
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return state.get("state", {})


def _children(model: dict) -> list[str]:
    return [child.removeprefix("IPY_MODEL_") for child in model.get("state", {}).get("children", [])]


def _descendants(models: dict[str, dict], model_id: str) -> list[dict]:
    """The model and every model below it, depth first."""
    model = models.get(model_id)
    if model is None:
        return []
    found = [model]
    for child in _children(model):
        found.extend(_descendants(models, child))
    return found


def _progress_text(tree: list[dict]) -> str | None:
    """A tqdm bar's final text ("label: 100%|██████████| 150/150 [00:48<00:00]"), or None if not a bar."""
    names = [m.get("model_name") for m in tree]
    if not names or names[0] != "HBoxModel" or not any(n in ("FloatProgressModel", "IntProgressModel")
                                                        for n in names):
        return None
    texts = [html.unescape(m["state"].get("value", "")) for m in tree if m.get("model_name") == "HTMLModel"]
    bar = next(m["state"] for m in tree if m.get("model_name") in ("FloatProgressModel", "IntProgressModel"))
    filled = int(round(10 * bar.get("value", 0) / bar["max"])) if bar.get("max") else 0
    left, right = (texts + ["", ""])[:2]
    return f"{left}|{'█' * filled}{' ' * (10 - filled)}|{right}"


def _slider_summary(tree: list[dict]) -> str:
    sliders = [m["state"] for m in tree if m.get("model_name", "").endswith("SliderModel")]
    return ", ".join(f"`{s.get('description', '')}` from {s.get('min')} to {s.get('max')}" for s in sliders)


def static_widgets(notebook: nbformat.NotebookNode) -> int:
    """Replace every widget view by what a page without kernel can show: an explorer (a widget tree holding an
    Output widget) by the outputs it drew first, followed by a note; a progress bar by its final text. Removes the
    widget state from the metadata. Returns the number of explorers found."""
    models = _widget_models(notebook)
    explorers = 0
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW) if output.get("output_type") == "display_data" else None
            if view is None:
                outputs.append(output)
                continue
            tree = _descendants(models, view["model_id"])
            drawn = [o for m in tree if m.get("model_name") == "OutputModel" for o in m["state"].get("outputs", [])]
            progress = _progress_text(tree)
            if drawn:
                explorers += 1
                outputs.extend(nbformat.from_dict(o) for o in drawn)
                sliders = _slider_summary(tree)
                cells.append(nbformat.v4.new_markdown_cell(
                    ":::{note}\n:class: explorer-note\n**Interactive in JupyterLab.** This explorer needs a running "
                    "kernel: the figure above is its starting point. Open the notebook (`make lab`) and move its "
                    f"sliders{' (' + sliders + ')' if sliders else ''}.\n:::"))
            elif progress is not None:
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=progress + "\n"))
        cell.outputs = outputs
    notebook.cells = cells
    notebook.metadata.pop("widgets", None)
    return explorers


# --- exercises: folded solutions, or none ---------------------------------------------------------------------

def _role(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get(CELL_METADATA_KEY, {})


def _folded_answers(solution: str, exercise: str) -> str:
    """The solution markdown with each written answer (the lines the exercise version shows as a prompt) folded
    into a "Show answer" dropdown."""
    solution_lines, exercise_lines = solution.splitlines(), exercise.splitlines()
    result: list[str] = []
    matcher = difflib.SequenceMatcher(a=exercise_lines, b=solution_lines, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            result.extend(solution_lines[b0:b1])
            continue
        answer = solution_lines[b0:b1]
        kept = [line for line in exercise_lines[a0:a1] if line.strip() != ANSWER_PROMPT]
        result.extend(kept)
        if answer:
            result.extend(["", "::::{dropdown} Show answer", *answer, "::::", ""])
    return "\n".join(result)


def _exercise_source_cell(number: str, source: str) -> nbformat.NotebookNode:
    fence = "````" if "```" in source else "```"
    return nbformat.v4.new_markdown_cell(
        f"*Exercise {number}, as the exercise notebook gives it:*\n\n{fence}python\n{source}\n{fence}")


def lesson_page(built: BuiltLesson, executed: nbformat.NotebookNode, solutions: bool,
                release_zip: bool) -> nbformat.NotebookNode:
    """The page of one lesson, from its executed solution notebook and its exercise version (see the module)."""
    page = copy.deepcopy(executed)
    exercise_cells = iter(built.exercise.cells)
    cells = []
    for cell in page.cells:
        role = _role(cell)
        if role.get("role") == "solution":
            if solutions:
                cell.metadata.setdefault("tags", []).append("hide-input")
                cell.metadata["mystnb"] = {"code_prompt_show": "Show solution", "code_prompt_hide": "Hide solution"}
                cells.append(cell)
            continue
        twin = next(exercise_cells)
        if role.get("role") == "exercise":
            number = role["exercise"]
            if solutions:
                cells.append(_exercise_source_cell(number, twin.source))
                cell.metadata.setdefault("tags", []).append("hide-input")
                cell.metadata["mystnb"] = {"code_prompt_show": f"Show solution {number}",
                                           "code_prompt_hide": f"Hide solution {number}"}
            else:
                cell.source, cell.outputs = twin.source, []
        elif cell.cell_type == "markdown" and cell.source != twin.source:
            cell.source = _folded_answers(cell.source, twin.source) if solutions else twin.source
        cells.append(cell)
    name = built.source.stem
    links = [f"{{download}}`the exercise notebook <../downloads/{name}.ipynb>` (work in it: `make lab`)"]
    if solutions:
        links.append(f"{{download}}`the solution notebook <../downloads/solutions/{name}.ipynb>`")
    if release_zip:
        links.append(f"{{download}}`the whole course for students <../downloads/{RELEASE_ZIP.name}>` "
                     "(`make release`)")
    cells.insert(1, nbformat.v4.new_markdown_cell("**Download:** " + " · ".join(links) + "."))
    page.cells = cells
    static_widgets(page)
    page.metadata.pop(CELL_METADATA_KEY, None)
    return page


# --- staging and Sphinx ---------------------------------------------------------------------------------------

def write_if_changed(path: Path, content: bytes) -> None:
    """Write ``content`` unless the file already holds it (Sphinx rebuilds by modification time)."""
    if path.exists() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def lesson_title(notebook: nbformat.NotebookNode) -> str:
    """The first heading of the notebook's first markdown cell."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return "Lesson"


def guide_pages(docs_dir: Path, solutions: bool = True) -> list[str]:
    """Every top-level page of ``docs/`` but the landing page (and, without solutions, the instructors' pages):
    known ones in reading order, then any other."""
    left_out = ("index", "README") + (() if solutions else INSTRUCTOR_ONLY_PAGES)
    found = {path.stem for path in docs_dir.glob("*.md") if path.stem not in left_out}
    return [name for name in GUIDE_ORDER if name in found] + sorted(found - set(GUIDE_ORDER))


def without_instructor_links(text: str) -> str:
    """``text`` with every Markdown link to an instructors' page replaced by its title (the page is not published)."""
    pages = "|".join(re.escape(page) for page in INSTRUCTOR_ONLY_PAGES)
    return re.sub(rf"\[([^\]]+)\]\((?:\.\./)?(?:{pages})\.md(?:#[^)]*)?\)", r"*\1* (for instructors)", text)


def lesson_times(built: list[BuiltLesson], seconds: dict[str, float]) -> str:
    """The results section on how long each lesson took to execute in the build of this site."""
    rows = [f"| {lesson_number(b.source)} | `{b.source.stem}` | {seconds[b.source.stem]:.1f} s |" for b in built]
    return "\n".join([
        "# Lesson execution times", "",
        "Measured by `make site` (`tools/build_site.py`) while it executed each solution notebook top to bottom for "
        "this site, kernel start included, on the machine that built it (a cached lesson shows the time of the run "
        "that filled the cache; `make test` fills it, and prints the same table at its end).", "",
        "| lesson | notebook | execution |", "| --- | --- | --- |", *rows, ""])


def stage(staging: Path, pages: dict[str, nbformat.NotebookNode], built: list[BuiltLesson], solutions: bool,
          seconds: dict[str, float], docs_dir: Path = DOCS_DIR) -> None:
    """Lay out Sphinx's source folder: docs/ (with the lesson list, page list and results filled in), the lesson
    pages, and the downloads. Files are written only when they change; stale ones are removed."""
    wanted: set[Path] = set()

    def put(relative: str, content: bytes) -> None:
        write_if_changed(staging / relative, content)
        wanted.add(staging / relative)

    for path in sorted(docs_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if not solutions and path.parent == docs_dir and path.stem in INSTRUCTOR_ONLY_PAGES:
            continue
        content = path.read_bytes()
        if not solutions and path.suffix == ".md":
            content = without_instructor_links(content.decode("utf-8")).encode()
        put(path.relative_to(docs_dir).as_posix(), content)
    lesson_list = "\n".join(f"{lesson_number(b.source)}. [{lesson_title(pages[b.source.stem])}]"
                            f"(lessons/{b.source.stem}.ipynb)" for b in built)
    index = (docs_dir / "index.md").read_text(encoding="utf-8").replace(LESSONS_MARKER, lesson_list)
    # The lessons are listed above (with their titles); the navigation lists them and every page of docs/.
    toctree = ["```{toctree}", ":caption: Lessons", ":maxdepth: 1", ":hidden:", "",
               *(f"lessons/{b.source.stem}" for b in built), "```", "",
               "```{toctree}", ":caption: Guides", ":maxdepth: 1", "", *guide_pages(docs_dir, solutions), "```"]
    put("index.md", index.replace(PAGES_MARKER, "\n".join(toctree)).encode())
    results = sorted((docs_dir / "results").glob("*.md"))
    if (docs_dir / "results.md").exists():
        text = (docs_dir / "results.md").read_text(encoding="utf-8")
        text += "".join(f"\n\n```{{include}} results/{p.name}\n:heading-offset: 1\n```\n" for p in results)
        text += "\n\n```{include} results-generated/lesson-times.md\n:heading-offset: 1\n```\n"
        put("results.md", text.encode())
        put("results-generated/lesson-times.md", lesson_times(built, seconds).encode())
    for lesson in built:
        name = lesson.source.stem
        put(f"lessons/{name}.ipynb", nbformat.writes(pages[name]).encode())
        put(f"downloads/{name}.ipynb", notebook_text(lesson.exercise).encode())
        if solutions:
            put(f"downloads/solutions/{name}.ipynb", notebook_text(lesson.solution).encode())
    if RELEASE_ZIP.exists():
        put(f"downloads/{RELEASE_ZIP.name}", RELEASE_ZIP.read_bytes())
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-solutions", action="store_true", help="leave the exercises' solutions out")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "site", help="the built site (default: site/)")
    parser.add_argument("--lessons", type=int, nargs="*", help="only these lesson numbers (while writing)")
    args = parser.parse_args(argv)
    solutions = not args.no_solutions
    sources = [s for s in lesson_sources() if not args.lessons or lesson_number(s) in args.lessons]
    digest = inputs_digest()
    built, pages, seconds = [], {}, {}
    for source in sources:
        lesson = build_lesson(source)
        result = execute_cached(lesson.solution, cache_key(lesson.solution, digest))
        print(f"{source.stem}: {'cached' if result.cached else 'executed'} ({result.seconds:.1f} s)", flush=True)
        built.append(lesson)
        seconds[source.stem] = result.seconds
        pages[source.stem] = lesson_page(lesson, result.notebook, solutions, RELEASE_ZIP.exists())
    if not RELEASE_ZIP.exists():
        print(f"note: {RELEASE_ZIP.relative_to(REPO_ROOT)} is missing (make release): no download link to it")
    edition = "with-solutions" if solutions else "no-solutions"
    staging = BUILD_DIR / f"site-src-{edition}"
    stage(staging, pages, built, solutions, seconds)
    # Sphinx builds in build/ (myst-nb writes its jupyter_execute/ beside the output folder), then the site is copied.
    html = BUILD_DIR / f"site-html-{edition}" / "html"
    environment = dict(os.environ, VAE_COURSE_SITE_SOLUTIONS="1" if solutions else "0")
    # The whole site is built strictly: a broken reference, a missing download or a bad include fails the build.
    strict = [] if args.lessons else ["-W", "--keep-going"]
    # Sphinx re-reads only changed pages: a page linking to a lesson that was missing last time would keep its
    # dead link, so another set of lessons than last time re-reads everything.
    lesson_set = html.parent / "lessons.txt"
    names = "\n".join(b.source.stem for b in built)
    fresh = ["-E"] if not lesson_set.exists() or lesson_set.read_text(encoding="utf-8") != names else []
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", *strict, *fresh, "-d",
               str(html.parent / "doctrees"), str(staging), str(html)]
    if subprocess.run(command, env=environment, check=False).returncode != 0:
        return 1
    lesson_set.write_text(names, encoding="utf-8")
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(html, out)
    print(f"site written to {out} ({edition}); open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
