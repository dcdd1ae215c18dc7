"""The virtual environment as a sandbox sees it: at a neutral path (:data:`ENVIRONMENT_MOUNT`), holding nothing
that names where the grader's checkout or environment lie on the host.

The grader's own environment names its host location in several places a student's code can read: ``pyvenv.cfg``
(``command = … -m venv /home/…/.venv``), the scripts' first lines in ``bin/``, every compiled file (a ``.pyc``
holds the path its source had when it was compiled), an editable install's finder and ``direct_url.json`` (the
checkout), and path lines of ``.pth`` files. The view built here is a copy of the environment's ``site-packages``
(hard links where the file system allows, so it costs no space; otherwise copies), without those files, compiled
again under the neutral path, with a ``bin/`` of interpreter links only and a ``pyvenv.cfg`` naming only the base
interpreter. It is built once per state of the environment (a fingerprint of ``site-packages`` names it) and
reused by every sandbox until the environment changes.

The base interpreter (``sys.base_prefix``) stays bound at its own path: its binary, its standard library's
compiled files and its ``sysconfig`` data name that path at build time, so a copy could not hide it.
"""
from __future__ import annotations

import compileall
import contextlib
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from utils.paths import REPO_ROOT
from utils.threads import usable_cpus

ENVIRONMENT_MOUNT = "/opt/venv"
# Where views are kept: the checkout's build folder, or, where the checkout is read-only (a shared install), the
# grader's own cache folder (never a shared one such as /tmp, where another user could plant a view).
VIEW_CACHES = (REPO_ROOT / "build" / "grading-environment",
               Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vae-course" / "grading-environment")
# Files that name the host: an editable install's import hook (setuptools' ``__editable__…`` finder and .pth) and
# the source a distribution was installed from (PEP 610's direct_url.json: the checkout, for an editable install).
_LEFT_OUT_PREFIXES = ("__editable__",)
_LEFT_OUT_NAMES = ("direct_url.json",)
_LEFT_OUT_SUFFIXES = (".pyc", ".egg-link")


def is_virtual_environment(prefix: str = sys.prefix, base_prefix: str = sys.base_prefix) -> bool:
    """Whether the running Python is a virtual environment (a ``pyvenv.cfg`` over a base interpreter)."""
    return Path(prefix).resolve() != Path(base_prefix).resolve() and (Path(prefix) / "pyvenv.cfg").is_file()


def site_packages_folders(prefix: Path) -> list[Path]:
    """The environment's ``site-packages`` folders (pure and platform-specific), relative to ``prefix``, as
    ``venv`` lays them out for this interpreter."""
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
    variables = {"base": str(prefix), "platbase": str(prefix)}
    return sorted({Path(sysconfig.get_path(name, scheme, variables)).relative_to(prefix)
                   for name in ("purelib", "platlib")})


def fingerprint(prefix: Path, folders: list[Path]) -> str:
    """A name for the environment's state: its path, the interpreter, and every entry of its ``site-packages``
    folders with its modification time (installing, upgrading or removing a package changes one)."""
    digest = hashlib.sha256(f"{prefix.resolve()}\0{sys.version}\0{sys.base_prefix}".encode())
    for folder in folders:
        root = prefix / folder
        digest.update(f"{folder}\0{root.stat().st_mtime_ns}\0".encode())
        for entry in sorted(os.scandir(root), key=lambda item: item.name):
            digest.update(f"{entry.name}\0{entry.stat(follow_symlinks=False).st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _left_out(name: str) -> bool:
    return name.startswith(_LEFT_OUT_PREFIXES) or name in _LEFT_OUT_NAMES or name.endswith(_LEFT_OUT_SUFFIXES)


def _import_lines_only(source: Path, destination: Path) -> None:
    """A ``.pth`` file without its path lines (host folders, not mounted in a sandbox); its ``import`` lines run
    at start-up as they do for the grader."""
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    destination.write_text("".join(line for line in lines if line.startswith(("import ", "import\t"))),
                           encoding="utf-8")


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system, or a file of another user's (protected hard links): a copy
        shutil.copy2(source, destination)


def copy_site_packages(source: Path, destination: Path) -> None:
    """Copy one ``site-packages`` folder into the view, leaving out compiled files and what names the host. A
    symbolic link is kept where it points inside the folder (relative), and left out otherwise (it would name a
    host path)."""
    for folder, folders, files in os.walk(source):
        folders[:] = [name for name in folders if name != "__pycache__"]
        target = destination / Path(folder).relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copymode(folder, target)
        for name in [*files, *(name for name in folders if (Path(folder) / name).is_symlink())]:
            path = Path(folder) / name
            if _left_out(name):
                continue
            if path.is_symlink():
                link = os.readlink(path)
                if not os.path.isabs(link):
                    os.symlink(link, target / name)
                continue
            if name.endswith(".pth"):
                _import_lines_only(path, target / name)
            else:
                _link_or_copy(path, target / name)


def _interpreter_links(base_executable: Path, view: Path) -> None:
    """``bin/python``, ``bin/python3`` and ``bin/python3.X`` linking to the base interpreter, as ``venv`` makes."""
    (view / "bin").mkdir()
    for name in ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        os.symlink(base_executable, view / "bin" / name)


def _configuration(view: Path, base_executable: Path) -> None:
    """A ``pyvenv.cfg`` with what the interpreter reads (``home``) and nothing of how the environment was made."""
    version = ".".join(map(str, sys.version_info[:3]))
    (view / "pyvenv.cfg").write_text(f"home = {base_executable.parent}\ninclude-system-site-packages = false\n"
                                     f"version = {version}\n", encoding="utf-8")


def base_executable() -> Path:
    """The base interpreter the environment runs (``python3.X`` in ``sys.base_prefix``)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Path(sys.base_prefix) / "bin" / f"python{version}"


def _compile(source_and_shown_folder: tuple[Path, str]) -> None:
    source, shown_folder = source_and_shown_folder
    compileall.compile_file(source, ddir=shown_folder, quiet=2)


def compile_view(view: Path, folder: Path, workers: int) -> None:
    """Compile every module of one ``site-packages`` folder of the view, each under the path a sandbox sees it
    at (``/opt/venv/…``), with a progress bar (the longest step: about 15 s for the course's 11 555 modules)."""
    sources = sorted((view / folder).rglob("*.py"))
    shown = [(source, f"{ENVIRONMENT_MOUNT}/{source.parent.relative_to(view).as_posix()}") for source in sources]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(pool.map(_compile, shown, chunksize=64), total=len(shown), desc="sandbox environment",
                      unit="module", leave=False):
            pass


def build_view(prefix: Path, destination: Path, interpreter: Path, workers: int = 1) -> Path:
    """Build the environment's view into ``destination`` (which must not exist); return it."""
    destination.mkdir()
    for folder in site_packages_folders(prefix):
        copy_site_packages(prefix / folder, destination / folder)
        compile_view(destination, folder, workers)
    _interpreter_links(interpreter, destination)
    _configuration(destination, interpreter)
    return destination


def _is_complete(view: Path) -> bool:
    """Whether ``view`` holds what every view has last: its configuration and interpreter link."""
    return (view / "pyvenv.cfg").is_file() and (view / "bin" / "python").is_symlink()


def writable_cache(candidates: tuple[Path, ...] = VIEW_CACHES) -> Path:
    """The first of ``candidates`` that exists or can be made, and that this process may write; ``OSError``
    naming them all when none can be."""
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    tried = ", ".join(map(str, candidates))
    raise PermissionError(f"no writable folder for the sandbox's environment view: tried {tried}")


def environment_view(prefix: Path | None = None, caches: tuple[Path, ...] = VIEW_CACHES) -> Path | None:
    """The view of the running environment (built on first use, kept in the first writable of ``caches`` for as
    long as the environment is unchanged, older views removed); ``None`` when Python does not run in a virtual
    environment."""
    prefix = Path(sys.prefix).absolute() if prefix is None else prefix
    if not is_virtual_environment(str(prefix)):
        return None
    name = fingerprint(prefix, site_packages_folders(prefix))
    for cache in caches:
        if _is_complete(cache / name):
            return cache / name
    cache = writable_cache(caches)
    view = cache / name
    shutil.rmtree(view, ignore_errors=True)  # a damaged view (built views appear whole, by a rename)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    os.chmod(building, 0o755)
    build_view(prefix, building / "view", base_executable(), usable_cpus())
    with contextlib.suppress(OSError):  # another grader built the same view meanwhile: use theirs
        os.rename(building / "view", view)
    shutil.rmtree(building, ignore_errors=True)
    for stale in cache.iterdir():
        if stale != view and not stale.name.startswith(".building-"):
            shutil.rmtree(stale, ignore_errors=True)
    return view
