"""The lesson helpers: seeded setup, scratch folder, and errors and warnings shown as facts."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch

from torchcourse import lesson
from torchcourse.lesson import expect_error, expect_warning, fresh_dir, same_memory, setup, workdir


def test_setup_seeds_torch():
    setup(seed=3)
    first = torch.rand(2)
    setup(seed=3)
    assert torch.equal(first, torch.rand(2))


def test_workdir_is_outside_the_repo(root):
    folder = workdir()
    assert folder.is_dir() and root not in folder.parents
    assert workdir() == folder


def test_expect_error_shows_the_error(capsys):
    with expect_error(ZeroDivisionError, "division") as caught:
        print(1 / 0)
    assert "ZeroDivisionError: division by zero" in capsys.readouterr().out
    assert "division" in caught.message


def test_expect_error_fails_when_nothing_is_raised():
    with pytest.raises(AssertionError, match="nothing was raised"), expect_error(ValueError):
        pass


def test_expect_error_fails_on_another_message():
    with pytest.raises(AssertionError, match="does not match"), expect_error(ValueError, "expected words"):
        raise ValueError("other words")


def test_expect_error_lets_other_types_through():
    with pytest.raises(KeyError), expect_error(ValueError):
        raise KeyError("k")


def test_expect_warning_shows_the_warning(capsys):
    with expect_warning(DeprecationWarning, "old") as caught:
        warnings.warn("old API (Triggered internally at /build/x.cpp:1.)", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().out.strip() == "DeprecationWarning: old API"
    assert caught.warning is not None


def test_expect_warning_fails_without_the_warning():
    with pytest.raises(AssertionError, match="no warning"), expect_warning(UserWarning, "x"):
        pass


def test_expect_warning_restores_warn_always():
    before = torch.is_warn_always_enabled()
    with pytest.raises(AssertionError), expect_warning(UserWarning):
        pass
    assert torch.is_warn_always_enabled() == before


def test_expect_error_strips_colour_codes(capsys):
    with expect_error(RuntimeError, "unsafe"):
        raise RuntimeError("\x1b[1mWeights only load failed\x1b[0m: unsafe global")
    assert capsys.readouterr().out == "RuntimeError: Weights only load failed: unsafe global\n"


def test_workdir_removes_folders_of_dead_kernels(monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = Path(tempfile.gettempdir()) / f"torchcourse-{dead.stdout.strip()}-leftover"
    orphan.mkdir(exist_ok=True)
    (orphan / "model.pt").write_bytes(b"x")
    monkeypatch.setattr(lesson, "_WORKDIR", None)
    fresh = workdir()
    assert not orphan.exists() and fresh.exists()


def test_setup_sets_the_thread_count_a_portable_run_asks_for(monkeypatch):
    previous = torch.get_num_threads()
    monkeypatch.setenv("TORCHCOURSE_THREADS", "3")
    try:
        setup()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)


def test_same_memory_tells_views_from_copies():
    base = torch.arange(6.0)
    assert same_memory(base[2:], base) and same_memory(base.view(2, 3).t(), base)
    assert not same_memory(base.clone(), base) and not same_memory(base[[0, 1]], base)
    assert not same_memory(torch.empty(0), torch.empty(0))  # no bytes, no shared memory (both pointers are null)


def test_fresh_dir_is_empty_on_every_call():
    folder = fresh_dir("rerun/data")
    assert folder == workdir() / "rerun" / "data" and folder.is_dir() and not any(folder.iterdir())
    (folder / "a.txt").write_text("a")
    assert fresh_dir("rerun/data") == folder and not any(folder.iterdir())  # a cell run again starts empty


@pytest.mark.parametrize("name", ["", ".", "..", "../outside", "/tmp/elsewhere"])
def test_fresh_dir_stays_inside_the_workdir(name):
    with pytest.raises(ValueError, match="inside tc.workdir"):
        fresh_dir(name)


def test_a_forced_start_method_becomes_the_default(monkeypatch):
    import multiprocessing

    calls = []
    monkeypatch.setattr(multiprocessing, "set_start_method", lambda method, force=False: calls.append((method, force)))
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "fork")
    monkeypatch.setenv("TORCHCOURSE_START_METHOD", "spawn")
    lesson._apply_start_method()
    assert calls == [("spawn", True)]
    monkeypatch.delenv("TORCHCOURSE_START_METHOD")
    lesson._apply_start_method()
    assert calls == [("spawn", True)]  # unset: the platform's own default stays
