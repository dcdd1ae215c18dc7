"""Shared fixtures: the lesson sources and their generated notebooks."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.build_notebooks import lesson_sources

LESSON_SOURCES = lesson_sources()


@pytest.fixture(params=LESSON_SOURCES, ids=lambda p: p.stem)
def lesson_source(request: pytest.FixtureRequest) -> Path:
    return request.param
