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
