"""Shared fixtures: the repository root, and a non-strict environment for checks under test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks under test report outcomes instead of raising, unless a test turns strict mode on."""
    monkeypatch.delenv("TORCHCOURSE_STRICT", raising=False)
    monkeypatch.delenv("TORCHCOURSE_GRADE_FILE", raising=False)
