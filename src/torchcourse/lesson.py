"""What every lesson notebook needs: a seeded start, a scratch folder, and errors shown as asserted facts."""

from __future__ import annotations

import atexit
import os
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import tracing
from .devices import EnvironmentReport, environment_report

__all__ = ["Caught", "expect_error", "expect_warning", "fresh_dir", "same_memory", "setup", "workdir"]

_WORKDIR: Path | None = None


def same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` are windows onto the same storage buffer (lesson 01.2 explains the test)."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def setup(seed: int = 0) -> EnvironmentReport:
    """Seed Python, NumPy and torch, start the API tracer when asked to, and report the environment.

    ``TORCHCOURSE_THREADS=N`` sets torch's CPU thread count first: ``make test-portable`` uses it to
    simulate another core count (``OMP_NUM_THREADS`` alone cannot raise torch above the cores present).
    """
    _apply_thread_setting()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    tracing.start_if_enabled()
    return environment_report()


_PREFIX = "torchcourse-"


def _apply_thread_setting() -> None:
    """Honour ``TORCHCOURSE_THREADS`` (a simulated core count); run on import too, for the exercise notebooks."""
    threads = os.environ.get("TORCHCOURSE_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


_apply_thread_setting()


def workdir() -> Path:
    """A temporary folder for everything a notebook writes; removed when the kernel exits."""
    global _WORKDIR
    if _WORKDIR is None or not _WORKDIR.exists():
        _remove_orphans()
        _WORKDIR = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)
    return _WORKDIR


def fresh_dir(name: str) -> Path:
    """The empty folder ``workdir() / name``, emptied and made again on every call.

    A cell that fills a folder and then counts or lists what is in it calls this, so running the
    cell again starts from the same empty folder (docs/authoring.md, "Every cell can be run again").
    ``name`` may hold ``/`` but must stay inside the work folder.
    """
    base = workdir().resolve()
    folder = (base / name).resolve()
    if folder == base or base not in folder.parents:
        raise ValueError(f"fresh_dir({name!r}) must name a folder inside tc.workdir()")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return workdir() / name


def _remove_orphans() -> None:
    """Delete the folders of kernels killed before their exit handler ran (nbval kills kernels)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class Caught:
    """What an ``expect_error``/``expect_warning`` block caught, for further assertions."""

    error: BaseException | None = None
    warning: warnings.WarningMessage | None = None

    @property
    def message(self) -> str:
        """The caught error's or warning's message."""
        return str(self.error if self.error is not None else self.warning.message if self.warning else "")


def _first_line(text: str) -> str:
    """The message's first line, without colour codes or PyTorch's "(Triggered internally at <path>)" suffix."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()  # some messages carry terminal colour codes
    line = plain.splitlines()[0] if plain else ""
    return re.sub(r"\s*\(Triggered internally at .*$", "", line).rstrip()


@contextmanager
def expect_error(kind: type[BaseException], match: str = "", *, show: bool = True) -> Iterator[Caught]:
    """Assert that the block raises ``kind`` with a message matching ``match``, then show it.

    A lesson uses this to show an error and still run top to bottom: the cell passes only when
    PyTorch raises exactly what the lesson says it does. Inside a loop over the devices, pass
    ``show=(device == "cpu")``: the check runs on every device, the message prints once, and the
    output is the same with or without a GPU.
    """
    caught = Caught()
    token = tracing.expect_begin()  # the coverage tracer notes what the block shows
    try:
        yield caught
    except kind as error:
        if not re.search(match, str(error)):
            raise AssertionError(
                f"{kind.__name__} was raised, but its message does not match {match!r}: {error}"
            ) from error
        caught.error = error
        tracing.expect_end(token, error)
        if show:
            print(f"{type(error).__name__}: {_first_line(str(error))}")
        return
    raise AssertionError(f"expected {kind.__name__} matching {match!r}, but nothing was raised")


@contextmanager
def expect_warning(kind: type[Warning], match: str = "", *, show: bool = True) -> Iterator[Caught]:
    """Assert that the block warns ``kind`` with a message matching ``match``, then show it (unless not ``show``)."""
    caught = Caught()
    token = tracing.expect_begin()  # the coverage tracer notes what the block shows
    previous = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # warnings PyTorch gives once per process must show here too
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield caught
    finally:
        torch.set_warn_always(previous)
    for warning in seen:
        if issubclass(warning.category, kind) and re.search(match, str(warning.message)):
            caught.warning = warning
            tracing.expect_end(token, warning)
            if show:
                print(f"{warning.category.__name__}: {_first_line(str(warning.message))}")
            return
    got = "; ".join(f"{w.category.__name__}: {w.message}" for w in seen) or "no warning"
    raise AssertionError(f"expected {kind.__name__} matching {match!r}, got {got}")
