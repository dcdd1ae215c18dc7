"""`make release`: what a student needs and nothing else, installable from scratch, and lesson 1 runs up to
its first exercise from the unpacked copy. Refuses stale notebooks and damaged data."""
from __future__ import annotations

import shutil
import subprocess
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from tools import release
from tools.build_notebooks import EXERCISES_DIR
from utils.paths import DATA_DIR
from utils.settings import CHECKPOINT_FILE


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return release.write_release(tmp_path_factory.mktemp("dist"))


def test_release_holds_what_a_student_needs_and_nothing_else(released: tuple[Path, Path]) -> None:
    folder, archive = released
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    top = {name.split("/")[0] for name in names}
    assert top == {"notebooks", "utils", "studies", "data", "pyproject.toml", "requirements.txt", "README.md"}
    released_notebooks = {n for n in names if n.startswith("notebooks/")}
    assert {f"notebooks/{p.name}" for p in EXERCISES_DIR.glob("*.ipynb")} == released_notebooks
    assert {f"data/{p.name}" for p in DATA_DIR.iterdir()} <= names
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
    with (tmp_path / "data" / CHECKPOINT_FILE).open("ab") as handle:
        handle.write(b"tampered")
    assert any(CHECKPOINT_FILE in problem for problem in release.damaged_data(tmp_path / "data"))

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


def test_the_student_readme_lists_every_released_notebook_once() -> None:
    """The release's README is a real file (tools/release_files/README.md): it names each exercise notebook, and
    none that does not exist (a new lesson, or a renamed one, must be added there)."""
    import re
    listed = re.findall(r"`notebooks/([0-9]{2}_\w+\.ipynb)`", release.STUDENT_README.read_text(encoding="utf-8"))
    assert sorted(listed) == sorted(p.name for p in EXERCISES_DIR.glob("*.ipynb"))
    assert len(listed) == len(set(listed))
