"""environment.yml and requirements.txt pin the same packages."""
from __future__ import annotations

import re

from utils import REPO_ROOT

PIN = re.compile(r"^\s*(?:-\s*)?([A-Za-z0-9_.\-]+)==([^\s#]+)\s*$")


def pins(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for line in text.splitlines() if (m := PIN.match(line))}


def test_environment_yml_matches_requirements() -> None:
    requirements = pins((REPO_ROOT / "requirements.txt").read_text())
    environment = pins((REPO_ROOT / "environment.yml").read_text())
    assert "torch" in requirements and len(requirements) >= 10
    assert environment == requirements
