"""Shared fixtures: the repository root, and a non-strict environment for checks under test; the browser suite
and the platform suite (Colab, spawn) are collected only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER = ROOT / "tests" / "browser"
PLATFORMS = ROOT / "tests" / "platforms"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The browser suite (tests/browser, `make test-browser`) and the platform suite (tests/platforms,
    `make test-platforms`) run only when named on the command line."""
    suite = next((s for s in (BROWSER, PLATFORMS) if collection_path == s or s in collection_path.parents), None)
    if suite is None:
        return None
    named = [(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args]
    return not any(path == suite or suite in path.parents for path in named)


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks under test report outcomes instead of raising, unless a test turns strict mode on."""
    monkeypatch.delenv("TORCHCOURSE_STRICT", raising=False)
    monkeypatch.delenv("TORCHCOURSE_GRADE_FILE", raising=False)
