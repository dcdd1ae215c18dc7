"""`make release`: what a student needs and nothing else, installable from scratch, and lesson 1 runs up to
its first exercise from the unpacked copy. Refuses stale notebooks and damaged data."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import textwrap
import venv
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools import release
from tools.build_notebooks import (
    CELL_METADATA_KEY,
    EXERCISES_DIR,
    build_lesson,
    key_form,
    lesson_number,
    lesson_sources,
)
from tools.grading.copies import pasted_references
from tools.grading.references import REFERENCE_IMPLEMENTATIONS
from utils.paths import DATA_DIR, REPO_ROOT
from utils.settings import CHECKPOINT_FILE, PRIORS_FILE


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return release.write_release(tmp_path_factory.mktemp("dist"))


def test_release_holds_what_a_student_needs_and_nothing_else(released: tuple[Path, Path]) -> None:
    folder, archive = released
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    top = {name.split("/")[0] for name in names}
    assert top == {"notebooks", "utils", "studies", "data", "pyproject.toml", "requirements.txt", "README.md",
                   "LICENSE", "LICENSE-TEXT.md"}
    released_notebooks = {n for n in names if n.startswith("notebooks/")}
    assert {f"notebooks/{p.name}" for p in EXERCISES_DIR.glob("*.ipynb")} == released_notebooks
    instructors = {f"data/{p.name}" for p in DATA_DIR.glob("cvae_topology_seed*")}
    assert {f"data/{p.name}" for p in DATA_DIR.iterdir()} - instructors <= names
    assert not instructors & names
    for notebook in EXERCISES_DIR.glob("*.ipynb"):
        assert (folder / "notebooks" / notebook.name).read_bytes() == notebook.read_bytes()
    requirements = (folder / "requirements.txt").read_text()
    assert "torch==" in requirements and "threadpoolctl==" in requirements
    assert "pytest" not in requirements and "nbval" not in requirements
    with zipfile.ZipFile(archive) as bundle:
        assert {n.split("/", 1)[1] for n in bundle.namelist()} == names


def test_release_is_reproducible(released: tuple[Path, Path], tmp_path: Path) -> None:
    _, again = release.write_release(tmp_path)
    assert again.read_bytes() == released[1].read_bytes()


def test_release_refuses_damaged_data_and_stale_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(DATA_DIR, tmp_path / "data")
    assert release.damaged_data(tmp_path / "data") == []
    # Every recorded file is checked, those added after the release tool was written (lesson 10's priors) too.
    for name in (CHECKPOINT_FILE, PRIORS_FILE):
        with (tmp_path / "data" / name).open("ab") as handle:
            handle.write(b"tampered")
    problems = release.damaged_data(tmp_path / "data")
    assert all(any(name in problem for problem in problems) for name in (CHECKPOINT_FILE, PRIORS_FILE)), problems

    monkeypatch.setattr(release, "stale_notebooks", lambda: ["notebooks/01_x.ipynb: differs from its source"])
    with pytest.raises(SystemExit, match="refusing to release"):
        release.write_release(tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_unpacked_release_installs_and_stops_at_exercise_1_1(released: tuple[Path, Path], tmp_path: Path) -> None:
    """A fresh folder, a fresh virtual environment, the student README's install commands (about a minute)."""
    with zipfile.ZipFile(released[1]) as bundle:
        bundle.extractall(tmp_path)
    root = tmp_path / release.RELEASE_NAME
    venv.create(root / ".venv", with_pip=True)
    python = root / ".venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["-r", "requirements.txt"], cwd=root, check=True)
    subprocess.run(pip + ["--no-deps", "-e", "."], cwd=root, check=True)
    script = textwrap.dedent(f"""
        import nbformat, utils
        from pathlib import Path
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        assert Path(utils.__file__).resolve().is_relative_to(Path({str(root)!r}).resolve()), utils.__file__
        notebook = nbformat.read("notebooks/01_latent_variable_models.ipynb", as_version=4)
        client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={{"metadata": {{"path": "notebooks"}}}})
        try:
            client.execute()
        except CellExecutionError as error:
            print(error.ename, error.evalue)
    """)
    result = subprocess.run([str(python), "-c", script], cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("ExerciseNotDone Exercise 1.1:")


def test_the_student_readme_lists_every_released_notebook_once(released: tuple[Path, Path]) -> None:
    """The release's README (tools/release_files/README.md, its lesson table generated from the notebooks it packs:
    a new lesson is listed by itself) names each exercise notebook once, with the title of its first heading."""
    folder, _ = released
    readme = (folder / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"`notebooks/([0-9]{2}_\w+\.ipynb)`", readme)
    assert sorted(listed) == sorted(p.name for p in EXERCISES_DIR.glob("*.ipynb"))
    assert len(listed) == len(set(listed))
    assert "| 1. Latent variable models | `notebooks/01_latent_variable_models.ipynb` |" in readme


def _line_exercises() -> tuple[dict[str, str], dict[str, int]]:
    """Every solution line (key form, see tools.build_notebooks.key_form) → its exercise (or the lesson of a cell
    tagged solution), and the first lesson whose student notebook shows each line in an ordinary cell."""
    keys: dict[str, str] = {}
    first_public: dict[str, int] = {}
    for source in lesson_sources():
        built = build_lesson(source)
        keys |= built.key_lines
        number = lesson_number(source)
        for line in built.hidden_lines - built.public_lines:
            if key_form(line):
                keys.setdefault(key_form(line), f"{number}.solution")
        for line in built.public_lines:
            if key_form(line):
                first_public[key_form(line)] = min(number, first_public.get(key_form(line), number))
    return keys, first_public


def _reference_spans() -> dict[str, list[tuple[str, int, int]]]:
    """Exercise → (file in the release, first line, last line) of each reference implementation answering it."""
    spans: dict[str, list[tuple[str, int, int]]] = {}
    for number, dotted_names in REFERENCE_IMPLEMENTATIONS.items():
        for dotted in dotted_names:
            module, _, name = dotted.rpartition(".")
            relative = module.replace(".", "/") + ".py"
            tree = ast.parse((REPO_ROOT / relative).read_text(encoding="utf-8"))
            node = next(n for n in tree.body if getattr(n, "name", None) == name)
            spans.setdefault(number, []).append((relative, node.lineno, node.end_lineno or node.lineno))
    return spans


# Lines of the self-checks that coincide with an exercise's solution: a check computes what it expects with code of
# its own (docs/instructor-guide.md, "What students can read"). Listed so that a new one fails this test.
KNOWN_IN_CHECKS = {("utils/checks/lesson07.py", "7.3", "logits,mu,logvar=model(x)"),
                   ("utils/checks/lesson08.py", "8.2", "mu,_=model.encoder(images,conditions)")}


def test_no_file_of_the_release_contains_a_solution_line(released: tuple[Path, Path]) -> None:
    """Every text file of the release (the JupyterHub hand-out is the same folder): no line of an exercise's solution,
    unless an earlier lesson taught it, or it sits in the reference implementation that answers that exercise (whose
    pasted copy the grader flags: test_a_pasted_reference_is_flagged_renamed_and_reformatted)."""
    folder, _ = released
    keys, first_public = _line_exercises()
    spans = _reference_spans()
    found = set()
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".py", ".ipynb", ".md", ".txt", ".toml"):
            continue
        relative = path.relative_to(folder).as_posix()
        if path.suffix == ".ipynb":
            lines = [(0, line) for cell in nbformat.read(path, as_version=4).cells for line in cell.source.splitlines()]
        else:
            lines = list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))
        for number, line in lines:
            exercise = keys.get(key_form(line))
            if exercise is None or first_public.get(key_form(line), 99) < int(exercise.split(".")[0]):
                continue
            if any(relative == file and first <= number <= last for file, first, last in spans.get(exercise, [])):
                continue
            found.add((relative, exercise, key_form(line)))
    assert found == KNOWN_IN_CHECKS


def _pasted(dotted: str) -> str:
    """The reference implementation as a student would paste it: renamed (the definition, its arguments and every
    variable), without its docstring and comments, reformatted (ast.unparse), inside an exercise cell."""
    module, _, name = dotted.rpartition(".")
    tree = ast.parse((REPO_ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    node = next(n for n in tree.body if getattr(n, "name", None) == name)
    keep = {"torch", "F", "nn", "np", "self", "ctx", "super", "len", "range", "float", "int", "math", "tuple"}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, n: ast.Name) -> ast.Name:
            return ast.copy_location(ast.Name(n.id if n.id in keep or n.id[0].isupper() else f"my_{n.id}", n.ctx), n)

        def visit_arg(self, n: ast.arg) -> ast.arg:
            n.arg = n.arg if n.arg in keep else f"my_{n.arg}"
            n.annotation = None
            return n

    node = Rename().visit(node)
    node.name = f"my_{node.name}"
    if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
        node.body = node.body[1:] or [ast.Pass()]
    return f"# Exercise N.k: pasted\n{ast.unparse(node)}\n"


@pytest.mark.parametrize(("exercise", "dotted"), [(number, dotted) for number, names in
                                                  REFERENCE_IMPLEMENTATIONS.items() for dotted in names])
def test_a_pasted_reference_is_flagged_renamed_and_reformatted(exercise: str, dotted: str) -> None:
    pasted = _pasted(dotted)
    name = dotted.rpartition(".")[2]
    assert f"my_{name}" in pasted and f"def {name}(" not in pasted and f"class {name}" not in pasted
    flags = pasted_references(exercise, pasted)
    assert any(dotted in flag.what and "near copy" in flag.what for flag in flags), flags


def test_the_model_solutions_are_not_all_flagged() -> None:
    """The comparison tells copies from answers: of the lessons' own solutions to the exercises that have a
    reference, at most a quarter are flagged (those whose exercise fixes the code's shape: 7.2's decoder)."""
    flagged, total = [], 0
    for source in lesson_sources():
        built = build_lesson(source)
        for cell in built.solution.cells:
            role = cell.metadata.get(CELL_METADATA_KEY, {})
            if role.get("role") == "exercise" and role["exercise"] in REFERENCE_IMPLEMENTATIONS:
                total += 1
                if pasted_references(role["exercise"], cell.source):
                    flagged.append(role["exercise"])
    assert total >= 12 and len(flagged) <= total // 4, flagged


def test_a_release_by_week_holds_only_its_lessons(tmp_path: Path) -> None:
    folder, _ = release.write_release(tmp_path, lessons=release.parse_lessons("1-3", [1, 2, 3, 4, 5]))
    assert sorted(p.name for p in (folder / "notebooks").iterdir()) == sorted(
        p.name for p in EXERCISES_DIR.glob("0[1-3]_*.ipynb"))
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "`notebooks/03_" in readme and "`notebooks/04_" not in readme and release.LESSONS_MARKER not in readme
    assert release.parse_lessons("2-4,7", [1, 2, 3, 4, 5, 6, 7]) == [2, 3, 4, 7]
    with pytest.raises(SystemExit, match="no lesson 12"):
        release.parse_lessons("11-12", list(range(1, 12)))


def test_the_release_carries_both_licences_and_credits_the_slides(released: tuple[Path, Path]) -> None:
    folder, _ = released
    assert "MIT License" in (folder / "LICENSE").read_text(encoding="utf-8")
    text = (folder / "LICENSE-TEXT.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "Giovanni Catalani" in text and "Joseph Morlier" in text
    assert "Giovanni Catalani" in (folder / "README.md").read_text(encoding="utf-8")


# What a student's files may name that the release does not hold: the course repository's, and the README says so.
INSTRUCTOR_KINDS = {"make": "`make` commands", "tools": "`tools/…`", "benchmarks": "`benchmarks/…`",
                    "docs": "`docs/…`", "lessons": "`lessons/…`", "solutions": "`solutions/…`"}
NAMED_PATH = re.compile(r"(?<![\w./-])((?:tools|benchmarks|docs|lessons|solutions|data|notebooks|utils)/[\w./-]*\w)")
NAMED_MODULE = re.compile(r"(?<![\w.])(?:python -m )?((?:tools|benchmarks)\.\w+)")
MAKE_TARGET = re.compile(r"`make ([a-z][\w-]*)")


def test_everything_a_student_file_names_exists_in_the_zip_or_is_the_instructors(
        released: tuple[Path, Path]) -> None:
    """Every path, module and `make` target that a notebook, `utils` or the README names is in the zip; or it is of a
    kind the README says is the instructor's (and then it exists in the course repository: the wording is true)."""
    folder, _ = released
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert all(kind in readme for kind in INSTRUCTOR_KINDS.values())
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE))
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".py", ".ipynb", ".md"):
            continue
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(folder).as_posix()
        for target in MAKE_TARGET.findall(text):
            if target not in targets:
                problems.append(f"{where}: `make {target}` is no target of the course's Makefile")
        named = set(NAMED_PATH.findall(text)) | {m.replace(".", "/") + ".py" for m in NAMED_MODULE.findall(text)}
        for name in sorted(named):
            if any(ch in name for ch in "*…") or name.endswith("/"):
                continue
            if (folder / name).exists() or (folder / name).with_suffix(".py").exists():
                continue
            if name.split("/")[0] in INSTRUCTOR_KINDS and ((REPO_ROOT / name).exists()
                                                          or (REPO_ROOT / name).with_suffix(".py").exists()):
                continue
            problems.append(f"{where}: names {name}, which is neither in the zip nor in the course repository")
    assert problems == []
