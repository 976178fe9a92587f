"""What every lesson notebook needs: a seeded start, a scratch folder, and errors shown as asserted facts."""

from __future__ import annotations

import atexit
import multiprocessing
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

__all__ = ["Caught", "expect_error", "expect_retired", "expect_warning", "fresh_dir", "same_memory", "setup", "workdir"]

_WORKDIR: Path | None = None


def same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``a`` and ``b`` are windows onto one storage buffer: both storages start at the same address.

    A sufficient test, not the definition of sharing (lesson 01.2): two storages can overlap without starting at
    the same address (``torch.from_numpy`` of overlapping NumPy views), and an empty storage (no bytes, no
    address) shares nothing.
    """
    first, second = a.untyped_storage(), b.untyped_storage()
    return first.nbytes() > 0 and second.nbytes() > 0 and first.data_ptr() == second.data_ptr()


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



def _apply_start_method() -> None:
    """Honour ``TORCHCOURSE_START_METHOD`` (``spawn``, ``forkserver``): how worker processes start, as on macOS and
    Windows (spawn), whatever this platform's default. ``make test-platforms`` runs the lessons and the exercises that
    start processes this way; run on import too, for the exercise notebooks."""
    method = os.environ.get("TORCHCOURSE_START_METHOD")
    if method and multiprocessing.get_start_method(allow_none=True) != method:
        multiprocessing.set_start_method(method, force=True)


_apply_thread_setting()
_apply_start_method()


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


def _shown(text: str, match: str, show: bool | str) -> str:
    """What an expected error or warning prints: its first line, or with ``show="match"`` only the part that
    ``match`` matched (the stable part, where the wording around it differs between torch releases). A group
    named ``varies`` in ``match`` marks text that some releases add (``Sigmoid(?P<varies>Backward0)?``): it is
    left out of what is printed, so the line is the same on every release. A trailing "…" is always printed."""
    if show != "match":
        return _first_line(text)
    found = re.search(match, text)
    shown = found.group(0)
    if "varies" in found.re.groupindex and found.group("varies"):
        start, end = (position - found.start() for position in found.span("varies"))
        shown = shown[:start] + shown[end:]
    # "…" marks what is left out: always after (releases differ in what follows), before where the match is
    # not the message's start
    return ("…" if found.start() else "") + _first_line(shown) + "…"


def _kinds(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


@contextmanager
def expect_error(kind: type[BaseException], match: str = "", *, show: bool | str = True) -> Iterator[Caught]:
    """Assert that the block raises ``kind`` with a message matching ``match``, then show it.

    A lesson uses this to show an error and still run top to bottom: the cell passes only when
    PyTorch raises exactly what the lesson says it does. Inside a loop over the devices, pass
    ``show=(device == "cpu")``: the check runs on every device, the message prints once, and the
    output is the same with or without a GPU. ``show="match"`` prints only the matched part, where the
    rest of the message is worded differently by other torch releases (see ``_shown``).
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
            print(f"{type(error).__name__}: {_shown(str(error), match, show)}")
        return
    raise AssertionError(f"expected {kind.__name__} matching {match!r}, but nothing was raised")


@contextmanager
def _recording_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning of the block, PyTorch's once-per-process ones included."""
    previous = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # warnings PyTorch gives once per process must show here too
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield seen
    finally:
        torch.set_warn_always(previous)


@contextmanager
def expect_warning(kind: type[Warning] | tuple[type[Warning], ...], match: str = "", *,
                   show: bool | str = True) -> Iterator[Caught]:
    """Assert that the block warns ``kind`` with a message matching ``match``, then show it (unless not ``show``).

    ``show="match"`` prints only the matched part (as for :func:`expect_error`).
    """
    caught = Caught()
    token = tracing.expect_begin()  # the coverage tracer notes what the block shows
    with _recording_warnings() as seen:
        yield caught
    for warning in seen:
        if issubclass(warning.category, kind) and re.search(match, str(warning.message)):
            caught.warning = warning
            tracing.expect_end(token, warning)
            if show:
                print(f"{warning.category.__name__}: {_shown(str(warning.message), match, show)}")
            return
    got = "; ".join(f"{w.category.__name__}: {w.message}" for w in seen) or "no warning"
    raise AssertionError(f"expected {_kinds(kind)} matching {match!r}, got {got}")


@contextmanager
def expect_retired(api: str, replacement: str) -> Iterator[Caught]:
    """Assert that the block uses an API PyTorch is retiring, at whichever stage this release has reached.

    Retirement comes in stages, landing in different releases for different APIs: first a warning (a
    ``UserWarning``, ``DeprecationWarning`` or ``FutureWarning`` naming the API as deprecated), then an error
    saying it is removed. The block passes at either stage, provided the message names ``replacement``, and
    prints one line that is the same on every release. ``caught.error`` is set where the API is already gone.
    """
    caught = Caught()
    named = re.escape(api)
    token = tracing.expect_begin()
    with _recording_warnings() as seen:
        try:
            yield caught
        except RuntimeError as error:
            if not (re.search("removed", str(error)) and re.search(named, str(error))):
                raise
            caught.error = error
    if caught.error is None:
        warned = [w for w in seen if re.search(named, str(w.message)) and "deprecated" in str(w.message)]
        if not warned:
            got = "; ".join(f"{w.category.__name__}: {w.message}" for w in seen) or "no warning"
            raise AssertionError(f"expected {api} to warn that it is deprecated, or to be removed; got {got}")
        caught.warning = warned[0]
    if not re.search(re.escape(replacement), caught.message):
        raise AssertionError(f"{api} is retired, but the message does not name {replacement}: {caught.message}")
    tracing.expect_end(token, caught.error if caught.error is not None else caught.warning)
    print(f"{api} is retired in favour of {replacement}: a deprecation warning, or an error where it is removed")
