"""Device choice and seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils import get_device, seed_everything
from utils.device import DEVICE_ENV_VAR


def test_environment_variable_overrides_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device() == torch.device("cpu")


def test_default_prefers_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected


def test_unavailable_cuda_request_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        get_device()


def test_seed_everything_makes_runs_repeatable() -> None:
    rng = seed_everything(3)
    first = (rng.normal(), np.random.rand(), torch.rand(1).item())
    rng = seed_everything(3)
    assert first == (rng.normal(), np.random.rand(), torch.rand(1).item())


def test_training_layout_follows_the_device_and_refuses_unknown_names() -> None:
    from utils.device import memory_format, preferred_layout
    from utils.settings import CPU_TRAINING_LAYOUT
    assert preferred_layout("cpu") == CPU_TRAINING_LAYOUT
    assert preferred_layout(torch.device("cuda", 0)) == "contiguous"  # a GPU keeps the default (not measured)
    assert memory_format("channels last") is torch.channels_last
    with pytest.raises(ValueError, match="memory layout"):
        memory_format("NHWC")
