"""Device selection and seeding."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from utils.settings import CPU_TRAINING_LAYOUT, MemoryLayout

DEVICE_ENV_VAR = "VAE_COURSE_DEVICE"
MEMORY_FORMATS: dict[MemoryLayout, torch.memory_format] = {"contiguous": torch.contiguous_format,
                                                           "channels last": torch.channels_last}


def get_device(preferred: str | None = None) -> torch.device:
    """Return the device lessons compute on.

    Order: ``preferred`` if given, else the environment variable ``VAE_COURSE_DEVICE`` (e.g. ``cpu``,
    ``cuda``, ``cuda:1``, ``mps``), else CUDA when available, then Apple MPS, then the CPU.
    """
    choice = preferred or os.environ.get(DEVICE_ENV_VAR)
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV_VAR}={choice!r} asks for CUDA, but torch sees no CUDA device.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"{DEVICE_ENV_VAR}={choice!r} asks for MPS, but torch sees no MPS device.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def preferred_layout(device: torch.device | str) -> MemoryLayout:
    """The memory layout training uses on ``device`` by default: ``utils.settings.CPU_TRAINING_LAYOUT`` on a CPU,
    PyTorch's default elsewhere."""
    return CPU_TRAINING_LAYOUT if torch.device(device).type == "cpu" else "contiguous"


def memory_format(layout: MemoryLayout) -> torch.memory_format:
    """The ``torch.memory_format`` of a layout's name."""
    if layout not in MEMORY_FORMATS:
        raise ValueError(f"unknown memory layout {layout!r}: one of {', '.join(map(repr, MEMORY_FORMATS))}")
    return MEMORY_FORMATS[layout]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a fresh NumPy generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
