"""File integrity: every file the course ships or packs (the dataset, the checkpoints, the student release) is
recorded with its SHA-256, and read only after its bytes match the record.

A record is a JSON file beside the data: ``<file>.sha256.json`` for a checkpoint (``{"file", "sha256", …}``), the
dataset's manifest for the dataset. A mismatch or a missing file is an :class:`IntegrityError` that says how to
restore or rebuild the file; nothing is downloaded or rewritten.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

CHUNK_BYTES = 1 << 20


class IntegrityError(RuntimeError):
    """A recorded file is missing, unreadable, or its bytes differ from its record."""


class DataIntegrityError(IntegrityError):
    """The dataset is missing, unreadable, or differs from its manifest."""


class CheckpointError(IntegrityError):
    """A checkpoint is missing, or its bytes do not match the recorded SHA-256."""


def bytes_sha256(data: bytes) -> str:
    """SHA-256 of some bytes, as 64 hexadecimal digits."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (a large file is never held in memory whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_archive(path: Path, arrays: dict) -> str:
    """Write ``arrays`` as a compressed ``.npz`` at ``path`` (via a temporary name, so a reader never sees half a
    file); return its SHA-256 for the manifest."""
    temporary = Path(path).with_suffix(".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, path)
    return file_sha256(path)


def record_path(path: Path) -> Path:
    """Where the record of ``path`` lives: ``<path>.sha256.json``."""
    return Path(f"{path}.sha256.json")


def prepare_output(path: Path) -> Path:
    """Create the folder of ``path`` and check that it can be written, so that a long training fails at its start,
    not after its last epoch; returns the path."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create {folder} for {Path(path).name}: {error.strerror}; choose another "
                      "--out") from error
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {Path(path).name} in {folder}: the folder is read-only; choose another "
                              "--out")
    return Path(path)


def write_recorded(payload: dict, path: Path, metadata: dict) -> str:
    """``torch.save`` the payload to ``path``; write its record (the file's SHA-256 and ``metadata``); return the
    SHA-256."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    prepare_output(path).write_bytes(data)
    digest = bytes_sha256(data)
    record_path(path).write_text(json.dumps({"file": Path(path).name, "sha256": digest, **metadata}, indent=2) + "\n")
    return digest


def read_verified(path: Path, retrain_command: str) -> tuple[bytes, dict]:
    """The bytes of a recorded file and its record, after checking the bytes' SHA-256 against the record; a
    :class:`CheckpointError` naming ``retrain_command`` if either is missing or they disagree."""
    path = Path(path)
    hint = ("Students: unpack data/ again from the course zip you were given. Instructors, in the course repository: "
            f"restore them with `git checkout -- data/` or retrain with `{retrain_command}`.")
    if not path.exists() or not record_path(path).exists():
        raise CheckpointError(f"Checkpoint {path} or its checksum record is missing. {hint}")
    record = json.loads(record_path(path).read_text())
    data = path.read_bytes()
    digest = bytes_sha256(data)
    if digest != record["sha256"]:
        raise CheckpointError(f"Checkpoint {path} does not match its recorded SHA-256 ({digest[:12]}… instead of "
                              f"{record['sha256'][:12]}…): it is corrupted or was replaced. {hint}")
    return data, record


def matches_record(path: Path, sha256: str) -> bool:
    """True when ``path`` exists and its bytes have the recorded SHA-256."""
    return Path(path).exists() and file_sha256(path) == sha256


def matches_own_record(path: Path) -> bool:
    """True when ``path`` and its record (``<path>.sha256.json``) exist and agree; a damaged or unreadable record is
    a mismatch, not an error."""
    try:
        return matches_record(path, json.loads(record_path(path).read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
