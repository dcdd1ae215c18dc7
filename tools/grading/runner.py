"""Run one graded notebook's cells in order, inside the sandbox; serve the grader's calls at each self-check.

This file is copied into the sandbox with ``wire.py`` and run there as a script (``python -B -s runner.py``); it
imports nothing from ``tools``. The grader sends the job (cells, roles, the lesson's checker modules, a per-run
secret) as the first frame on stdin, which stays open as the grader's side of the wire; the runner writes its
events (signed with HMAC-SHA256 under that secret, numbered) and its answers to the file descriptor the job names.

Cells run with ``exec`` in one namespace, the notebook's ``__main__``: no Jupyter kernel and no IPython. At a
self-check cell the runner sends "serve" and answers the grader's calls of the notebook's functions (arguments and
results as plain data, :mod:`wire`) until the grader says "release": the check itself runs in the grader's
process, which alone decides the verdict. Where a check must build or read the student's object (a module class,
an ``autograd.Function``, a model handed to a function), the grader names one of the check's drivers
(``utils.checks.lessonNN._drive_…``), which runs here on that object and answers with plain data; whatever runs
here, its answer is data the grader judges. While the grader calls, the course's own implementations of the
lesson's exercises are guards that raise :class:`ReferenceUsed`.
"""
from __future__ import annotations

import builtins
import hashlib
import hmac
import io
import json
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

# What a record may quote of a message: feedback is for people, not for megabytes of text.
MESSAGE_LIMIT = 4000
# What a cell's printed output may hold in memory; the rest is counted and dropped.
OUTPUT_LIMIT = 64 * 1024
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


def _describe(error: BaseException, student_files: dict[str, str]) -> dict:
    """A record of an exception an exercise cell raised: its type's name, its message, the student's line."""
    message = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    return {"ename": type(error).__name__, "evalue": _capped(message), "where": _student_line(error, student_files)}


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


def served(student: Any, header: dict, checker_modules: list[str]) -> Callable:
    """What a call of the grader runs: the student's function itself, or, when the call names a driver, that
    driver of the check on the student's object (a class, a function handed a model), with the global random
    state kept."""
    if "driver" not in header:
        return student
    driver = _driver(header["driver"], checker_modules)

    def driven(*args: Any, **kwargs: Any) -> Any:
        return _random_state_kept(lambda: driver(student, *args, **kwargs))
    return driven


def _driver(dotted: object, checker_modules: list[str]) -> Callable:
    """The check's driver the grader names: a ``_drive_…`` function of one of the lesson's checker modules."""
    module_name, _, attribute = str(dotted).rpartition(".")
    if module_name not in checker_modules or not attribute.startswith("_drive_"):
        raise LookupError(f"no driver {str(dotted)[:100]!r} among the lesson's checks")
    return getattr(sys.modules[module_name], attribute)


def _random_state_kept(function: Callable[[], Any]) -> Any:
    """``function()`` with the global random state of torch, NumPy and Python restored after it, as the
    notebook's self-check keeps it (a driver seeds the student's model from the global generator)."""
    import random

    import numpy
    import torch
    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            return function()
        finally:
            random.setstate(python_state)
            numpy.random.set_state(numpy_state)


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

    for name in job["checker_modules"]:  # the checks' drivers, and the utils modules whose references are guarded
        _resolve(f"{name}.__name__")
    references = {number: [_resolve(dotted) for dotted in names] for number, names in job["references"].items()}
    calling = [False]
    _guard_references(job["references"], calling)
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
        function = served(namespace[name], header, job["checker_modules"])

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
        output = CappedOutput()
        sys.stdout = sys.stderr = output
        if role == "check":
            emit({"event": "serve", "index": index, "exercise": number})
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
        record: dict[str, Any] = {"event": role, "index": index, "exercise": number}
        try:
            exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102  (in the sandbox)
            record["raised"] = None
        except BaseException as error:  # noqa: BLE001  (SystemExit and KeyboardInterrupt included: reported)
            record["raised"] = _describe(error, student_files)
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        record["output_size"] = output.size
        if role == "exercise" and references.get(number):
            record["uses_reference"] = any(_uses_reference(namespace.get(name), references[number])
                                           for name in cell["names"])
        emit(record)
    emit({"event": "done"})


if __name__ == "__main__":
    main()
