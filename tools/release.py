#!/usr/bin/env python3
"""Pack what a student needs, and nothing else, into one folder and one zip (instructor tool).

``python -m tools.release [--out dist]`` (``make release``) writes ``dist/vae-course-student/`` and
``dist/vae-course-student.zip`` holding the exercise notebooks, the ``utils`` package and the ``studies`` package
lessons 8 and 9 run their tables with (with ``pyproject.toml`` to install both), the data and the checkpoint with
their checksum records, the student's requirements (the course's pins less the instructors' test tools) and a
student README. Solutions, lesson sources, tools and tests stay out.

It refuses to pack a release whose notebooks are out of sync with the lesson sources, or whose data do not
match their recorded SHA-256: a class must never receive stale exercises or a damaged dataset.
The zip is reproducible: the same repository gives the same bytes.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from pathlib import Path

from tools.build_notebooks import EXERCISES_DIR, SOLUTIONS_DIR, lesson_sources, out_of_sync, planned_outputs
from utils.integrity import matches_record
from utils.paths import DATA_DIR, REPO_ROOT
from utils.settings import CHECKPOINT_RECORD_FILE, CVAE_CHECKPOINT_RECORD_FILE, MANIFEST_FILE, OOD_MANIFEST_FILE

RELEASE_NAME = "vae-course-student"
INSTRUCTOR_ONLY_REQUIREMENTS = ("pytest", "nbval", "jupytext", "ruff")
CHECKSUM_RECORDS = (MANIFEST_FILE, OOD_MANIFEST_FILE, CHECKPOINT_RECORD_FILE, CVAE_CHECKPOINT_RECORD_FILE)
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)

# The README a student finds in the release: a real file, so that it is reviewed like any page.
STUDENT_README = Path(__file__).resolve().parent / "release_files" / "README.md"


def student_requirements(text: str) -> str:
    """The course's pinned requirements without the instructors' test tools (comments dropped too)."""
    keep = [line for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
            and line.split("==")[0].strip().lower() not in INSTRUCTOR_ONLY_REQUIREMENTS]
    return "# The course's pinned packages (see the course repository's requirements.txt).\n" + "\n".join(keep) + "\n"


def stale_notebooks() -> list[str]:
    """Generated notebooks that differ from what the lesson sources produce now."""
    sources = lesson_sources()
    return out_of_sync(planned_outputs(sources), (SOLUTIONS_DIR, EXERCISES_DIR))


def damaged_data(data_dir: Path = DATA_DIR) -> list[str]:
    """Data files that are missing or do not match the SHA-256 of their checksum record."""
    problems = []
    for record_name in CHECKSUM_RECORDS:
        record = json.loads((data_dir / record_name).read_text())
        path = data_dir / record["file"]
        if not matches_record(path, record["sha256"]):
            problems.append(f"{path}: missing or does not match the SHA-256 in {record_name}")
    return problems


def release_files(repo: Path = REPO_ROOT) -> dict[str, bytes]:
    """Every file of the release, by its path inside the release folder."""
    files = {f"notebooks/{p.name}": p.read_bytes() for p in sorted((repo / EXERCISES_DIR.name).glob("*.ipynb"))}
    files |= {p.relative_to(repo).as_posix(): p.read_bytes()
              for package in ("utils", "studies") for p in sorted((repo / package).rglob("*.py"))}
    files |= {f"data/{p.name}": p.read_bytes() for p in sorted((repo / DATA_DIR.name).iterdir()) if p.is_file()}
    files["pyproject.toml"] = (repo / "pyproject.toml").read_bytes()
    files["requirements.txt"] = student_requirements((repo / "requirements.txt").read_text()).encode()
    files["README.md"] = STUDENT_README.read_bytes()
    return files


def write_release(out: Path, repo: Path = REPO_ROOT) -> tuple[Path, Path]:
    """Write the release folder and zip under ``out`` (replacing an older release); return both paths."""
    problems = stale_notebooks() + damaged_data(repo / DATA_DIR.name)
    if problems:
        raise SystemExit("refusing to release (nothing written):\n  " + "\n  ".join(problems))
    files = release_files(repo)
    folder, archive = out / RELEASE_NAME, out / f"{RELEASE_NAME}.zip"
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, content in sorted(files.items()):
            entry = zipfile.ZipInfo(f"{RELEASE_NAME}/{name}", date_time=ZIP_TIMESTAMP)
            entry.external_attr = 0o644 << 16
            bundle.writestr(entry, content, compress_type=zipfile.ZIP_DEFLATED)
    return folder, archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="where to write (default: dist/)")
    args = parser.parse_args(argv)
    folder, archive = write_release(args.out)
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder} ({count} files) and {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
