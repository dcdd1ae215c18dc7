"""Run one graded notebook's cells in order, inside the sandbox; serve the grader's calls at each self-check.

This file is copied into the sandbox with ``wire.py`` and run there as a script (``python -B -s runner.py``); it
imports nothing from ``tools``. The grader sends the job (cells, roles, the lesson's checker modules, a per-run
secret) as the first frame on stdin, which stays open as the grader's side of the wire; the runner writes its
events (signed with HMAC-SHA256 under that secret, numbered) and its answers to the file descriptor the job names.

Cells run with ``exec`` in one namespace, the notebook's ``__main__``: no Jupyter kernel and no IPython. At a
self-check cell of an exercise in ``remote_checks`` the runner sends "serve" and answers the grader's calls of the
notebook's functions (arguments and results as plain data, :mod:`wire`) until the grader says "release": the
check itself runs in the grader's process, which alone decides the verdict. While it calls, the course's own
implementations of the lesson's exercises are guards that raise :class:`ReferenceUsed`. The checks of the other
exercises (objects handed to the student: models, classes) still run here, with the snapshot comparison after
each that makes a changed checker or library ``tampered``.
"""
from __future__ import annotations

import builtins
import hashlib
import hmac
import io
import json
import linecache
import sys
import sysconfig
import traceback
import types
from collections.abc import Callable
from typing import Any

# What a record may quote of a message: feedback is for people, not for megabytes of text.
MESSAGE_LIMIT = 4000
# What a cell's printed output may hold in memory; the rest is counted and dropped.
OUTPUT_LIMIT = 64 * 1024
# Library modules the checkers call into; the course's own ``utils`` modules are watched as well.
WATCHED_LIBRARIES = ("builtins", "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "scipy", "scipy.stats",
                     "torch", "torch.nn", "torch.nn.functional", "torch.autograd", "torch.distributions", "math",
                     "random", "functools", "contextlib", "traceback", "linecache", "copy", "importlib", "json",
                     "hmac", "hashlib", "os", "sys", "types")
WATCHED_CLASSES = ("torch.Tensor", "torch.nn.Module", "torch.distributions.Normal", "torch.Generator")
# Names a library rebinds itself as part of its state (torch.set_default_dtype rebinds torch.Storage).
LIBRARY_STATE = frozenset({"torch.Storage"})
# Where installed code lives: a wrapper whose code is there was made by a library, not by the student.
INSTALLED_CODE = tuple(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))


class CappedOutput(io.TextIOBase):
    """A text stream keeping the first :data:`OUTPUT_LIMIT` characters written to it and counting the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.size < OUTPUT_LIMIT:
            self.kept.append(text[: OUTPUT_LIMIT - self.size])
        self.size += len(text)
        return len(text)


def _watched(value: Any) -> bool:
    return callable(value) or isinstance(value, types.ModuleType)


def _same_or_wrapped(now: Any, then: Any) -> bool:
    """Whether ``now`` is ``then``, or a library's wrapper of it (``functools.wraps``, ``__wrapped__``), as
    torch wraps ``torch.manual_seed`` when it first imports its compiler; a student's wrapper does not count."""
    for _ in range(8):
        if now is then:
            return True
        code = getattr(now, "__code__", None)
        if code is None or not code.co_filename.startswith(INSTALLED_CODE):
            return False
        now = getattr(now, "__wrapped__", None)
    return False


def _function_parts(function: Any) -> tuple:
    """What makes a Python function behave as it does: its code, defaults, globals and closure contents."""
    cells = tuple(cell.cell_contents for cell in (function.__closure__ or ()) if _cell_filled(cell))
    return (function.__code__, function.__defaults__, function.__kwdefaults__, function.__globals__, cells)


def _same_parts(now: tuple, then: tuple) -> bool:
    """Whether two :func:`_function_parts` hold the very same objects (identity, never ``==``)."""
    return len(now) == len(then) and all(a is b for a, b in zip(now[:4], then[:4], strict=True)) \
        and len(now[4]) == len(then[4]) and all(a is b for a, b in zip(now[4], then[4], strict=True))


def _cell_filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018  (an empty cell raises ValueError)
    except ValueError:
        return False
    return True


HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, whose namespace can be rewritten


def _method_like(value: Any) -> bool:
    return callable(value) or isinstance(value, (classmethod, staticmethod, property))


def _python_classes_and_instances(modules: list[types.ModuleType], classes: list[type]) -> tuple[list[type], list]:
    """The classes defined in Python that the modules' namespaces hold (with their bases, and the classes of the
    objects they hold), and those objects that have a namespace of their own (``scipy.stats.norm``)."""
    found: dict[int, type] = {}
    instances: dict[int, Any] = {}
    for value in [*classes, *(v for module in modules for v in vars(module).values())]:
        if isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            continue
        if not isinstance(value, type):
            if isinstance(getattr(value, "__dict__", None), dict):
                instances[id(value)] = value
            value = type(value)
        for cls in value.__mro__:
            if cls.__flags__ & HEAP_TYPE:
                found[id(cls)] = cls
    return list(found.values()), list(instances.values())


def _inherited(classes: tuple[type, ...], key: str) -> bool:
    """Whether one of ``classes`` defines ``key`` (so that setting it lower down hides that definition)."""
    return any(key in vars(cls) for cls in classes if cls is not object)


class Snapshot:
    """The objects the checks rely on, as imported before any student code ran."""

    def __init__(self, modules: list[types.ModuleType], classes: list[type]) -> None:
        self.modules = {module.__name__: module for module in modules}
        self.entries = {module.__name__: {k: v for k, v in vars(module).items() if _watched(v)} for module in modules}
        python_classes, instances = _python_classes_and_instances(modules, classes)
        self.class_entries = {cls: {k: v for k, v in vars(cls).items() if _method_like(v)} for cls in python_classes}
        self.instance_entries = [(obj, {k: v for k, v in vars(obj).items() if callable(v)}) for obj in instances]
        self.functions: dict[str, tuple[Any, tuple]] = {}
        for module in modules:
            if module.__name__.startswith("utils"):
                for name, value in vars(module).items():
                    if isinstance(value, types.FunctionType):
                        self._add_function(f"{module.__name__}.{name}", value)
        self.profile, self.trace = sys.getprofile(), sys.gettrace()

    def _add_function(self, label: str, function: types.FunctionType) -> None:
        self.functions[label] = (function, _function_parts(function))
        for cell in function.__closure__ or ():
            if _cell_filled(cell) and isinstance(cell.cell_contents, types.FunctionType):
                self.functions[f"{label} (wrapped)"] = (cell.cell_contents, _function_parts(cell.cell_contents))

    def changes(self, limit: int = 5) -> list[str]:
        """What differs from the snapshot (at most ``limit`` names), empty when nothing does."""
        changed: list[str] = []
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                changed.append(f"sys.modules[{name!r}] was replaced")
            namespace = vars(module)
            changed += [f"{name}.{key} was replaced" for key, value in self.entries[name].items()
                        if not _same_or_wrapped(namespace.get(key), value) and f"{name}.{key}" not in LIBRARY_STATE]
        # A method added later to a class or an object counts where it hides one of a base or of the class.
        for cls, entries in self.class_entries.items():
            namespace = vars(cls)
            changed += [f"{cls.__module__}.{cls.__qualname__}.{key} was replaced" for key, value in entries.items()
                        if not _same_or_wrapped(namespace.get(key), value)]
            changed += [f"{cls.__module__}.{cls.__qualname__}.{key} was added" for key, value in namespace.items()
                        if key not in entries and _method_like(value) and _inherited(cls.__mro__[1:], key)]
        for obj, entries in self.instance_entries:
            namespace = vars(obj)
            changed += [f"{type(obj).__qualname__} object's {key} was replaced" for key, value in namespace.items()
                        if callable(value) and entries.get(key, ...) is not value
                        and (key in entries or _inherited(type(obj).__mro__, key))]
        changed += [f"{label} was modified" for label, (function, parts) in self.functions.items()
                    if not _same_parts(_function_parts(function), parts)]
        if (sys.getprofile(), sys.gettrace()) != (self.profile, self.trace):
            changed.append("a profiling or tracing hook was installed or removed")
        return changed[:limit]


def _resolve(dotted: str) -> Any:
    """The object a dotted name names, its module imported if it was not."""
    import importlib
    module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _capped(text: str) -> str:
    if len(text) <= MESSAGE_LIMIT:
        return text
    return f"{text[:MESSAGE_LIMIT]} … ({len(text) - MESSAGE_LIMIT} more characters)"


def _student_line(error: BaseException, student_files: dict[str, str]) -> dict | None:
    """The innermost place in the student's own cells where ``error`` was raised: exercise, line, code."""
    where = None
    if isinstance(error, SyntaxError) and error.filename in student_files and error.lineno:
        where = (error.filename, error.lineno)
    for frame, line in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename in student_files:
            where = (frame.f_code.co_filename, line)
    if where is None:
        return None
    filename, line = where
    return {"exercise": student_files[filename], "line": line, "code": linecache.getline(filename, line).strip()}


def _describe(error: BaseException, student_files: dict[str, str], kinds: dict[str, type]) -> dict:
    """A record of an exception: its kind for grading, its type's name, its message, the student's line."""
    kind = next((name for name, cls in kinds.items() if isinstance(error, cls)), "other")
    message = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    return {"kind": kind, "ename": type(error).__name__, "evalue": _capped(message),
            "where": _student_line(error, student_files)}


def _uses_reference(value: Any, references: list[Any]) -> bool:
    """Whether ``value`` is one of the course's reference implementations, a subclass or a copy of one."""
    for reference in references:
        if value is reference or getattr(value, "__wrapped__", None) is reference:
            return True
        if isinstance(value, type) and isinstance(reference, type) and issubclass(value, reference):
            return True
        if getattr(value, "__code__", None) is not None and getattr(value, "__code__", None) is getattr(
                reference, "__code__", ...):
            return True
        if getattr(value, "func", None) is reference:  # functools.partial
            return True
    return False


def _reference_codes(references: list[Any]) -> set[types.CodeType]:
    codes = set()
    for reference in references:
        functions = vars(reference).values() if isinstance(reference, type) else [reference]
        codes |= {f.__code__ for f in functions if isinstance(f, types.FunctionType)}
    return codes


def _caller_watch(codes: set[types.CodeType], student_files: dict[str, str], seen: list[str]
                  ) -> Callable[[types.FrameType, str, Any], None]:
    """A profile hook noting when the student's own code calls one of ``codes`` (a reference implementation)."""
    def watch(frame: types.FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in codes and frame.f_back is not None \
                and frame.f_back.f_code.co_filename in student_files:
            seen.append(frame.f_code.co_qualname)
    return watch


class MissingName(NameError):
    """The grader called a function the notebook does not define."""


class ReferenceUsed(RuntimeError):
    """A graded function ran the course's own implementation of its exercise while the grader called it."""


def _guard_references(references: dict[str, list[str]], calling: list[bool]) -> None:
    """Replace each reference implementation, wherever a loaded ``utils`` module holds it, by a guard that raises
    :class:`ReferenceUsed` while the grader is calling the notebook's functions (``calling[0]``) and runs it
    otherwise (the lesson's own cells use it). However the student reaches it (an import, ``getattr`` on a
    string, ``functools.partial``), what runs during a check is the guard."""
    originals = {id(_resolve(dotted)): dotted for names in references.values() for dotted in names}
    guards: dict[int, Any] = {}
    for module in [m for name, m in list(sys.modules.items()) if name == "utils" or name.startswith("utils.")]:
        for key, value in list(vars(module).items()):
            if id(value) in originals and isinstance(value, types.FunctionType):
                if id(value) not in guards:
                    guards[id(value)] = _guard(value, originals[id(value)], calling)
                setattr(module, key, guards[id(value)])


def _guard(function: Callable, dotted: str, calling: list[bool]) -> Callable:
    def guard(*args: Any, **kwargs: Any) -> Any:
        if calling[0]:
            raise ReferenceUsed(dotted)
        return function(*args, **kwargs)
    guard.__name__, guard.__qualname__, guard.__doc__ = function.__name__, function.__qualname__, function.__doc__
    return guard


def _raise_fields(error: BaseException, student_files: dict[str, str]) -> dict:
    """What the grader is told of an exception raised by the notebook's function it called."""
    if isinstance(error, ReferenceUsed):
        return {"reference": _capped(str(error))}
    if isinstance(error, MissingName):
        return {"missing": _capped(str(error))}
    message = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    return {"ename": type(error).__name__[:100], "evalue": _capped(message),
            "not_done": isinstance(error, NotImplementedError), "where": _student_line(error, student_files)}


def _rebuilt(header: dict) -> Exception:
    """The exception a grader's function raised, rebuilt by name for the student's code that called it."""
    name = "".join(c for c in str(header.get("ename", "Exception")) if c.isalnum() or c == "_")[:100] or "Exception"
    return type(name, (Exception,), {})(str(header.get("evalue", ""))[:MESSAGE_LIMIT])


def main() -> None:
    import wire  # beside this file in the sandbox
    channel = wire.Channel(0, -1)
    job = channel.receive()[0]["job"]
    signer = hmac.new(bytes.fromhex(job.pop("nonce")), digestmod=hashlib.sha256)
    channel.write_fd = job["result_fd"]
    sequence = [0]
    dumps = json.dumps

    def emit(record: dict) -> None:
        line = dumps({"seq": sequence[0], **record}, ensure_ascii=True)
        mac = signer.copy()
        mac.update(line.encode())
        channel.send({"op": "event", "record": line, "mac": mac.hexdigest()})
        sequence[0] += 1

    for name in job["checker_modules"]:
        _resolve(f"{name}.__name__")
    core = sys.modules["utils.checks._core"]
    kinds = {"not_done": core.ExerciseNotDone, "code_raised": core.ExerciseCodeRaised,
             "failed": core.ExerciseCheckFailed, "assertion": AssertionError}
    checkers = {name: value for module_name in job["checker_modules"]
                for name, value in vars(sys.modules[module_name]).items() if name.startswith("check_")}
    references = {number: [_resolve(dotted) for dotted in names] for number, names in job["references"].items()}
    remote = set(job["remote_checks"])
    calling = [False]
    _guard_references({number: names for number, names in job["references"].items() if number in remote}, calling)
    watched = [sys.modules[name] for name in sorted(sys.modules) if name == "utils" or name.startswith("utils.")]
    watched += [sys.modules[name] for name in WATCHED_LIBRARIES if name in sys.modules]
    snapshot = Snapshot(watched, [_resolve(name) for name in WATCHED_CLASSES])
    real_stdout, real_stderr = sys.stdout, sys.stderr

    main_module = types.ModuleType("__main__")
    main_module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main_module
    namespace = vars(main_module)
    student_files: dict[str, str] = {}

    def resolve(header: dict) -> Callable:
        name = header.get("name")
        if not isinstance(name, str) or name not in namespace:
            raise MissingName(str(name))
        function = namespace[name]

        def called_by_the_grader(*args: Any, **kwargs: Any) -> Any:
            calling[0] = True
            try:
                return function(*args, **kwargs)
            finally:
                calling[0] = False
        return called_by_the_grader

    peer = wire.Peer(channel, resolve, lambda error: _raise_fields(error, student_files), _rebuilt)
    emit({"event": "ready"})

    for index, cell in enumerate(job["cells"]):
        role, number, source = cell["role"], cell["exercise"], cell["source"]
        filename = f"<{role} {number or 'setup'} cell {index}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        if role == "exercise":
            student_files[filename] = number
        emit({"event": "cell", "index": index})
        if role == "check" and number in remote:
            emit({"event": "serve", "index": index, "exercise": number})
            output = CappedOutput()
            sys.stdout = sys.stderr = output
            try:
                while True:
                    header, blobs = channel.receive()
                    if header.get("op") == "release":
                        break
                    peer.serve(header, blobs)
            finally:
                sys.stdout, sys.stderr = real_stdout, real_stderr
                peer.reset()
            continue
        output = CappedOutput()
        sys.stdout = sys.stderr = output
        record: dict[str, Any] = {"event": role, "index": index, "exercise": number}
        seen: list[str] = []
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
            if role == "check":
                check_namespace = {**namespace, **checkers}
                hook = _caller_watch(_reference_codes(references.get(number, [])), student_files, seen)
                sys.setprofile(hook if references.get(number) else None)
                try:
                    exec(code, check_namespace)  # noqa: S102  (the lesson's own check cell)
                finally:
                    sys.setprofile(None)
            else:
                exec(code, namespace)  # noqa: S102  (the student's or the lesson's cell, inside the sandbox)
            record["raised"] = None
        except BaseException as error:  # noqa: BLE001  (SystemExit and KeyboardInterrupt included: reported)
            record["raised"] = _describe(error, student_files, kinds)
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        record["output_size"] = output.size
        if role == "exercise" and references.get(number):
            record["uses_reference"] = any(_uses_reference(namespace.get(name), references[number])
                                           for name in cell["names"])
        if role == "check":
            record["tampered"] = snapshot.changes()
            record["reference_called"] = sorted(set(seen))
        emit(record)
    emit({"event": "done"})


if __name__ == "__main__":
    main()
