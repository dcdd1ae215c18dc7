#!/usr/bin/env python3
"""Pack what a student needs, and nothing else, into one folder and one zip (instructor tool).

``python -m tools.release [--out dist] [--lessons 1-3]`` (``make release [LESSONS=1-3]``) writes
``dist/vae-course-student/`` and ``dist/vae-course-student.zip`` holding the exercise notebooks (all, or the lessons
named: a release by week), the ``utils`` package and the ``studies`` package lessons 8 and 9 run their tables with
(with ``pyproject.toml`` to install both), the data and the checkpoints with their checksum records, the student's
requirements (the course's pins less the instructors' test tools), the licences and a student README listing the
lessons it holds. Solutions, lesson sources, tools, tests and
docs stay out. The same folder, pushed as a repository of its own, is the JupyterHub hand-out
(docs/instructor-guide.md).

It refuses to pack a release whose notebooks are out of sync with the lesson sources, or whose data do not
match their recorded SHA-256: a class must never receive stale exercises or a damaged dataset.
The zip is reproducible: the same repository gives the same bytes.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat

from tools.build_notebooks import (
    EXERCISES_DIR,
    SOLUTIONS_DIR,
    lesson_number,
    lesson_sources,
    out_of_sync,
    planned_outputs,
)
from utils.integrity import matches_record
from utils.paths import DATA_DIR, REPO_ROOT, STUDENT_PACKAGES

RELEASE_NAME = "vae-course-student"
INSTRUCTOR_ONLY_REQUIREMENTS = ("pytest", "nbval", "jupytext", "ruff")
# Every file of data/ that a record (a dataset manifest, a model's SHA-256 record) names is checked before packing.
CHECKSUM_RECORD_PATTERNS = ("*.manifest.json", "*.sha256.json")
# Files of data/ that only the instructor's tools read (the other training seeds' models behind the benchmark's seed
# ranges): checked like the others, not packed.
INSTRUCTOR_ONLY_DATA = ("cvae_topology_seed*",)
ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)

# The README a student finds in the release: a real file, so that it is reviewed like any page.
STUDENT_README = Path(__file__).resolve().parent / "release_files" / "README.md"
LESSONS_MARKER = "<!-- LESSONS -->"
LICENCES = ("LICENSE", "LICENSE-TEXT.md")


def parse_lessons(spec: str, available: list[int]) -> list[int]:
    """``"1-3"``, ``"1,2,5"`` or ``"2-4,7"`` → the lesson numbers; a lesson that does not exist is an error."""
    chosen: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise SystemExit(f"--lessons {spec!r}: write lesson numbers and ranges, e.g. 1-3 or 1,2,5")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        chosen |= set(range(first, last + 1))
    missing = sorted(chosen - set(available))
    if missing or not chosen:
        raise SystemExit(f"--lessons {spec!r}: no lesson {', '.join(map(str, missing))} (the course has "
                         f"{', '.join(map(str, available))})")
    return sorted(chosen)


def lesson_title(notebook: Path) -> str:
    """The lesson's title: its notebook's first Markdown heading, without the "Lesson N —" it starts with."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown" and (match := re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)):
            return re.sub(r"^Lesson\s+\d+\s*[—:-]\s*", "", match.group(1).strip())
    return notebook.stem


def student_readme(notebooks: list[Path]) -> bytes:
    """The student README with the table of the lessons this release holds."""
    rows = ["| lesson | notebook |", "| --- | --- |"]
    rows += [f"| {lesson_number(p)}. {lesson_title(p)} | `notebooks/{p.name}` |" for p in notebooks]
    return STUDENT_README.read_text(encoding="utf-8").replace(LESSONS_MARKER, "\n".join(rows)).encode()


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
    records = sorted(path for pattern in CHECKSUM_RECORD_PATTERNS for path in data_dir.glob(pattern))
    for record_path in records:
        record = json.loads(record_path.read_text())
        path = data_dir / record["file"]
        if not matches_record(path, record["sha256"]):
            problems.append(f"{path}: missing or does not match the SHA-256 in {record_path.name}")
    return problems


def release_files(repo: Path = REPO_ROOT, lessons: list[int] | None = None) -> dict[str, bytes]:
    """Every file of the release, by its path inside the release folder: every lesson, or those in ``lessons``."""
    notebooks = [p for p in sorted((repo / EXERCISES_DIR.name).glob("*.ipynb"))
                 if lessons is None or lesson_number(p) in lessons]
    files = {f"notebooks/{p.name}": p.read_bytes() for p in notebooks}
    files |= {p.relative_to(repo).as_posix(): p.read_bytes()
              for package in STUDENT_PACKAGES for p in sorted((repo / package).rglob("*.py"))}
    files |= {f"data/{p.name}": p.read_bytes() for p in sorted((repo / DATA_DIR.name).iterdir())
              if p.is_file() and not any(p.match(pattern) for pattern in INSTRUCTOR_ONLY_DATA)}
    files["pyproject.toml"] = (repo / "pyproject.toml").read_bytes()
    files["requirements.txt"] = student_requirements((repo / "requirements.txt").read_text()).encode()
    files["README.md"] = student_readme(notebooks)
    files |= {name: (repo / name).read_bytes() for name in LICENCES}
    return files


def write_release(out: Path, repo: Path = REPO_ROOT, lessons: list[int] | None = None) -> tuple[Path, Path]:
    """Write the release folder and zip under ``out`` (replacing an older release); return both paths."""
    problems = stale_notebooks() + damaged_data(repo / DATA_DIR.name)
    if problems:
        raise SystemExit("refusing to release (nothing written):\n  " + "\n  ".join(problems))
    files = release_files(repo, lessons)
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
    parser.add_argument("--lessons", help="only these lessons' notebooks, e.g. 1-3 or 1,2,5 (default: every lesson)")
    args = parser.parse_args(argv)
    available = [lesson_number(source) for source in lesson_sources()]
    lessons = parse_lessons(args.lessons, available) if args.lessons else None
    folder, archive = write_release(args.out, lessons=lessons)
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder} ({count} files) and {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
