"""Shared helpers for the cross-package tests (run in the uv workspace environment)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The lines of the README's first fenced code block."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```[^\n]*\n(.*?)```", text, re.S)
    assert match, "README.md has no code block"
    return [line for line in match.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def script():
    """Factory: absolute path of a console script installed in this environment."""

    def find(name: str) -> str:
        local = Path(sys.executable).parent / name
        found = str(local) if local.exists() else shutil.which(name)
        if not found:
            pytest.fail(f"console script {name!r} is not installed; run `uv sync --all-packages`")
        return found

    return find
