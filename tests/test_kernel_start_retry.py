"""The root conftest.py starts nbval's kernel again when a new kernel dies before answering (a port race)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nbval_kernel_start_is_wrapped():
    from nbval import kernel

    assert hasattr(kernel.start_new_kernel, "__wrapped__")


def test_a_kernel_that_dies_once_is_started_again(monkeypatch):
    root = _root_conftest()
    monkeypatch.setattr(root.time, "sleep", lambda seconds: None)
    calls = []

    def start(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "km", "kc"

    assert root._retrying(start)(kernel_name="python3") == ("km", "kc")
    assert len(calls) == 2 and calls[1] == {"kernel_name": "python3"}


def test_a_kernel_that_always_dies_raises_after_the_last_try(monkeypatch):
    root = _root_conftest()
    monkeypatch.setattr(root.time, "sleep", lambda seconds: None)
    calls = []

    def start():
        calls.append(1)
        raise RuntimeError("Kernel died before replying to kernel_info")

    with pytest.raises(RuntimeError, match="Kernel died"):
        root._retrying(start)()
    assert len(calls) == root.KERNEL_START_TRIES
