"""The grader's parts that run no notebook: safe output, the static scan, cell matching, the signed result channel."""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from unittest import mock

import nbformat
import pytest

from tools.build_notebooks import CELL_METADATA_KEY, SOLUTIONS_DIR
from tools.grading.plan import find_student_cell
from tools.grading.report import capped, feedback_file_names, fenced, spreadsheet_safe
from tools.grading.run import ForgedRecord, ResultChannel, grade_notebook
from tools.grading.sandbox import SandboxUnavailable, probe_sandbox
from tools.grading.scan import flag_lines, reference_uses


def test_a_fence_is_longer_than_any_backtick_run_inside() -> None:
    assert fenced("plain") == ["```text", "plain", "```"]
    opening, _, closing = fenced("a ````` b ``` c")
    assert opening == "``````text" and closing == "``````"


def test_quotes_are_capped_and_say_so() -> None:
    assert capped("short") == "short"
    assert capped("x" * 50, limit=10) == "x" * 10 + " … (40 more characters not shown)"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_starts_are_neutralised(value: str) -> None:
    assert spreadsheet_safe(value) == f"'{value}"


def test_ordinary_cells_are_left_alone() -> None:
    assert [spreadsheet_safe(v) for v in ("alice", 3, "1.5", "")] == ["alice", "3", "1.5", ""]


def test_feedback_file_names_are_distinct_also_without_case() -> None:
    names = feedback_file_names(["a b", "a_b", "Ann", "ann", "../etc/passwd", ""])
    assert len({name.lower() for name in names.values()}) == 6
    assert names["a_b"] == "a_b.md" and names["a b"].startswith("a_b-")
    assert all("/" not in name and not name.startswith(".") for name in names.values())


def test_the_scan_flags_introspection_and_the_operating_system_by_line() -> None:
    source = ("import numpy as np\n"
              "import inspect\n"
              "frame = __import__('sys')._getframe(1)\n"
              "os.kill(1, 9)\n"
              "open('/proc/self/fd/4')\n"
              "model.eval()\n")
    flags = [str(flag) for flag in flag_lines("1.1", source)]
    assert flags == ["1.1 line 2: import inspect", "1.1 line 3: ._getframe", "1.1 line 3: __import__",
                     "1.1 line 4: .kill", "1.1 line 5: the path '/proc'"]
    assert flag_lines("1.1", "def broken(:\n") == []


def test_the_scan_finds_reference_implementations_by_import_or_attribute() -> None:
    references = ["utils.vae.vae_loss"]
    assert reference_uses("from utils.vae import vae_loss as f", references) == references
    assert reference_uses("import utils.vae\nloss = utils.vae.vae_loss", references) == references
    assert reference_uses("def vae_loss(logits, x, mu, logvar, beta=1.0):\n    return vae_loss", references) == []


def _cell(source: str, marker: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if marker:
        cell.metadata[CELL_METADATA_KEY] = marker
    return cell


def test_a_students_cell_is_found_by_metadata_first_then_header_then_definition() -> None:
    by_metadata = _cell("# Exercise 1.2: renamed header\ndef f(): ...", {"exercise": "1.1", "role": "exercise"})
    by_header = _cell("# Exercise 1.1: title\ndef g(): ...")
    notebook = nbformat.v4.new_notebook(cells=[by_header, by_metadata])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == by_metadata.source
    notebook = nbformat.v4.new_notebook(cells=[by_header, _cell("def f(): return 1")])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == by_header.source
    notebook = nbformat.v4.new_notebook(cells=[_cell("def f(): return 1"), _cell("def f(): return 2")])
    assert find_student_cell(notebook, "1.1", "def f(): ...") == "def f(): return 2"
    assert find_student_cell(nbformat.v4.new_notebook(cells=[]), "1.1", "def f(): ...") is None


def _signed(key: bytes, record: dict) -> bytes:
    line = json.dumps(record)
    return f"{line}\t{hmac.new(key, line.encode(), hashlib.sha256).hexdigest()}\n".encode()


@pytest.mark.parametrize(("lines", "error"), [
    ([b'{"seq": 0, "event": "done"}\tf00d\n'], "wrong signature"),
    (["signed seq 1"], "out of sequence"),
    ([b"x" * 300_000], "overlong"),
    ([b'{"seq": 0}'], "unterminated")])
def test_the_result_channel_refuses_what_the_runner_did_not_sign(lines: list, error: str) -> None:
    key = os.urandom(32)
    read_fd, write_fd = os.pipe()
    data = b"".join(_signed(key, {"seq": 1, "event": "done"}) if line == "signed seq 1" else line for line in lines)

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), os.fdopen(write_fd, "wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    channel = ResultChannel(read_fd, key, time.monotonic() + 5)
    with pytest.raises(ForgedRecord, match=error):
        while channel.next_record() is not None:
            pass
    os.close(read_fd)
    writer.join()


def test_the_result_channel_yields_signed_records_in_order_then_none() -> None:
    key = os.urandom(32)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, _signed(key, {"seq": 0, "event": "ready"}) + _signed(key, {"seq": 1, "event": "done"}))
    os.close(write_fd)
    channel = ResultChannel(read_fd, key, time.monotonic() + 5)
    assert [channel.next_record(), channel.next_record(), channel.next_record()] == [
        {"seq": 0, "event": "ready"}, {"seq": 1, "event": "done"}, None]
    os.close(read_fd)


def test_the_result_channel_times_out() -> None:
    read_fd, write_fd = os.pipe()
    channel = ResultChannel(read_fd, b"key", time.monotonic() + 0.2)
    with pytest.raises(TimeoutError):
        channel.next_record()
    os.close(read_fd)
    os.close(write_fd)


def test_a_machine_without_namespaces_is_refused_with_bubblewraps_reason(monkeypatch) -> None:
    refused = subprocess.CompletedProcess([], 1, "", "bwrap: No permissions to creating new namespace")
    monkeypatch.setattr("tools.grading.sandbox.subprocess.run", lambda *args, **kwargs: refused)
    with pytest.raises(SandboxUnavailable, match="No permissions to creating new namespace.*--no-sandbox"):
        probe_sandbox()


def test_a_sandbox_that_cannot_start_is_a_note_and_nothing_is_graded(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("tools.grading.run._start", mock.Mock(side_effect=FileNotFoundError("no prlimit")))
    result = grade_notebook("zoe", SOLUTIONS_DIR / "01_latent_variable_models.ipynb", "zoe.ipynb")
    assert result.problem == "the sandbox could not start: no prlimit"
    assert [(e.status, e.message) for e in result.exercises] == [
        ("not graded", "not graded: the sandbox could not start: no prlimit")] * 3


def test_every_reference_implementation_exists_and_names_a_graded_exercise() -> None:
    """A reference moved or renamed in utils must fail here, not inside every student's sandbox."""
    import importlib

    from tools.build_notebooks import build_lesson, lesson_sources
    from tools.grading.references import REFERENCE_IMPLEMENTATIONS
    exercises = {exercise.number for source in lesson_sources() for exercise in build_lesson(source).exercises}
    for number, names in REFERENCE_IMPLEMENTATIONS.items():
        assert number in exercises, f"exercise {number} does not exist"
        for dotted in names:
            module, _, attribute = dotted.rpartition(".")
            assert callable(getattr(importlib.import_module(module), attribute)), dotted
