"""The exercise-check framework: declare an exercise once, check any answer without crashing.

An exercise is a function the learner writes. Its check runs the learner's function and a
reference on freshly randomised inputs and declared edge cases (on every available device, then
once more on ``meta``), and compares in a fixed order: type, layout, shape, dtype, device, values,
inputs left alone, gradients, memory sharing, properties, instructions (what the function called).
The feedback says what is wrong on the smallest failing case and shows that case and what the
learner's function returned on it, never the expected output.

Every call of the learner's code is guarded (:func:`call_answer`): bounded in time (SIGALRM in
the main thread on Unix, which is where Jupyter and ``torchcourse grade`` run cells; a watchdog
thread elsewhere, which cannot interrupt a blocking C call such as ``time.sleep``; neither can stop
one long C operation before it returns), its printed output captured, every exception but
``KeyboardInterrupt`` turned into feedback, and global state (grad, inference and anomaly modes,
default dtype and device, RNG, determinism flags, print options, threads, process group, context
modes, environment) compared, reported and restored.

Outcomes are correct, incorrect or not attempted (the answer is still the ``...`` placeholder).
With ``TORCHCOURSE_STRICT=1`` (the test suite) anything but correct raises :class:`CheckFailed`;
with ``TORCHCOURSE_GRADE_FILE=path`` every outcome is also appended to that file as a JSON line,
which is how ``torchcourse grade`` collects a notebook's score.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import ctypes
import functools
import html
import importlib
import inspect
import io
import json
import math
import os
import re
import signal
import sys
import textwrap
import threading
import types
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
import torch.distributed as dist
from torch._tensor_str import PRINT_OPTS

from ..devices import devices, move_to

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "CheckFailed",
    "Chapter",
    "Exercise",
    "Judge",
    "JudgedExercise",
    "Mismatch",
    "NotAttempted",
    "Outcome",
    "StateChanged",
    "Status",
    "TimeLimitExceeded",
    "TimedOut",
    "Uses",
    "call_answer",
    "clone_case",
    "compare",
    "describe",
    "last_calls",
    "randint",
    "same_storage",
    "show",
]


class Status(str, Enum):
    """The three outcomes of a check."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NOT_ATTEMPTED = "not attempted"


class CheckFailed(AssertionError):
    """Raised by a check in strict mode when the answer is not correct."""


class Mismatch(Exception):
    """A difference between the learner's answer and the reference; its text is the feedback."""


class TimedOut(Mismatch):
    """The learner's function went over its time limit: the check stops at the first such case."""


class StateChanged(Mismatch):
    """The learner's function changed global state (the check has put it back)."""


_COLOURS = {Status.CORRECT: "#1a7f37", Status.INCORRECT: "#cf222e", Status.NOT_ATTEMPTED: "#9a6700"}
_ICONS = {Status.CORRECT: "✔", Status.INCORRECT: "✘", Status.NOT_ATTEMPTED: "…"}


@dataclass
class Outcome:
    """The result of one check: status, points earned and the feedback message."""

    chapter: str
    id: str
    title: str
    status: Status
    message: str
    points: int
    max_points: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``torchcourse grade``."""
        return {
            "chapter": self.chapter,
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "message": self.message,
            "points": self.points,
            "max_points": self.max_points,
        }

    def __str__(self) -> str:
        head = f"{_ICONS[self.status]} {self.id} · {self.title}: {self.status.value.capitalize()}"
        return f"{head} ({self.points}/{self.max_points} points)\n{self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.status]
        return (
            f"<div style='border-left:4px solid {colour};padding:4px 10px'>"
            f"<b style='color:{colour}'>{_ICONS[self.status]} {html.escape(self.id)} · "
            f"{html.escape(self.title)}: {self.status.value.capitalize()}</b> "
            f"({self.points}/{self.max_points} points)<br>{html.escape(self.message)}</div>"
        )


@dataclass
class Text:
    """Markdown shown by ``hint()`` and ``solution()``; plain text outside Jupyter."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return self.text


def strict() -> bool:
    """True when a failed check must raise (``TORCHCOURSE_STRICT=1``)."""
    return os.environ.get("TORCHCOURSE_STRICT", "") not in ("", "0")


# ---------------------------------------------------------------- describing and comparing values


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high) drawn from ``generator``: sizes and knobs of hidden cases."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _is_named_tuple(value: Any) -> bool:
    """A ``collections.namedtuple`` or a torch structseq (``torch.return_types.topk``)."""
    return isinstance(value, tuple) and (hasattr(value, "_fields") or hasattr(type(value), "n_fields"))


def _fields(value: Any) -> tuple[str, ...]:
    if hasattr(value, "_fields"):
        return tuple(value._fields)
    return tuple(k for k in dir(type(value)) if not k.startswith("_") and k not in ("count", "index", "n_fields",
                                                                                    "n_sequence_fields",
                                                                                    "n_unnamed_fields"))


def describe(value: Any) -> str:
    """A short description of a value that names its type, shape, dtype and device, never its data."""
    if isinstance(value, torch.Tensor):
        grad = ", requires_grad" if value.requires_grad else ""
        layout = "" if value.layout == torch.strided else f" {str(value.layout).replace('torch.', '')}"
        return f"tensor{tuple(value.shape)} {value.dtype}{layout} on {value.device}{grad}"
    if isinstance(value, (list, tuple)) and len(value) <= 6:
        return f"{type(value).__name__}[{', '.join(describe(v) for v in value)}]"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)} items"
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        return f"numpy.{type(value).__name__}{tuple(value.shape)} {getattr(value, 'dtype', '')}".strip()
    return type(value).__name__


def _type_hint(actual: Any) -> str:
    if actual is None:
        return "Your function returned None: did you forget the `return` statement?"
    if type(actual).__module__ == "numpy":
        return "You returned a NumPy value: keep the computation in torch."
    if isinstance(actual, (list, tuple)):
        return f"You returned a {type(actual).__name__}, not a tensor."
    if isinstance(actual, (int, float, complex)) and not isinstance(actual, bool):
        return "You returned a Python number, not a tensor (.item(), float() and int() leave torch)."
    return ""


def _shape_text(shape: torch.Size) -> str:
    return "() (a 0-d tensor)" if len(shape) == 0 else str(tuple(shape))


def _compare_tensors(
    actual: torch.Tensor, expected: torch.Tensor, where: str, atol: float | None, rtol: float | None,
    values: bool = True,
) -> None:
    if actual.layout != expected.layout or actual.is_nested != expected.is_nested:
        kind = "nested" if actual.is_nested else str(actual.layout).replace("torch.", "")
        want = "nested" if expected.is_nested else str(expected.layout).replace("torch.", "")
        raise Mismatch(
            f"{where}: wrong layout. Expected a {want} tensor, got a {kind} one"
            + (" (a sparse result stores only its non-zero entries)." if actual.layout != torch.strided else ".")
        )
    if actual.shape != expected.shape:
        extra = ""
        if actual.numel() == expected.numel() == 1:
            extra = " One value is right in number, but a 0-d tensor and a 1-element tensor are not the same shape."
        elif sorted(actual.shape) == sorted(expected.shape):
            extra = " The same sizes in another order: the dimensions are permuted."
        raise Mismatch(
            f"{where}: wrong shape. Expected {_shape_text(expected.shape)}, got {_shape_text(actual.shape)}.{extra}"
        )
    if actual.dtype != expected.dtype:
        extra = ""
        if actual.is_complex() and not expected.is_complex():
            extra = " Your result is complex where a real one is expected."
        raise Mismatch(f"{where}: wrong dtype. Expected {expected.dtype}, got {actual.dtype}.{extra}")
    if actual.device != expected.device:
        raise Mismatch(
            f"{where}: wrong device. The inputs were on {expected.device} but your result is on "
            f"{actual.device}: a tensor you create lands on the default device unless told otherwise."
        )
    if not values or actual.device.type == "meta":
        return
    if (atol is None) != (rtol is None):  # assert_close wants both or neither: the missing one is zero
        atol, rtol = atol or 0.0, rtol or 0.0
    a, e = actual.detach(), expected.detach()
    if a.layout != torch.strided:
        a, e = a.to_dense(), e.to_dense()
    if a.is_floating_point() or a.is_complex():
        nan_a, nan_e = torch.isnan(a), torch.isnan(e)
        if bool((nan_a & ~nan_e).any()):
            count = int((nan_a & ~nan_e).sum())
            raise Mismatch(
                f"{where}: {count} of {a.numel()} values are NaN. Look for 0/0, the log or square root "
                "of a negative number, or an uninitialised tensor (torch.empty)."
            )
    try:
        torch.testing.assert_close(a, e, atol=atol, rtol=rtol, equal_nan=True)
    except AssertionError:
        raise Mismatch(f"{where}: shape, dtype and device are right, but {_how_values_differ(a, e)}") from None


def _how_values_differ(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """How many values differ and in what way (a factor, an offset, the order), never an expected value."""
    kind = torch.complex128 if actual.is_complex() or expected.is_complex() else torch.float64
    a, e = actual.to(kind).flatten(), expected.to(kind).flatten()
    differ = ~torch.isclose(a, e, equal_nan=True)
    count = int(differ.sum()) or a.numel()
    head = f"{count} of {a.numel()} values differ."
    finite = torch.isfinite(a) & torch.isfinite(e)
    a, e = a[finite], e[finite]
    if kind == torch.float64 and a.numel() >= 2 and bool((e != 0).any()):
        scale = float(e.abs().max())
        if not bool(a.any()):
            return f"{head} All your values are zero."
        ratio = float((a * e).sum() / (e * e).sum())
        if ratio and torch.allclose(a, ratio * e, rtol=1e-3, atol=1e-6 * scale) and abs(ratio - 1) > 1e-3:
            if abs(ratio + 1) < 1e-3:
                return f"{head} Every value has the wrong sign."
            size = f"{ratio:.4g}" if abs(ratio) >= 0.1 else f"1/{1 / ratio:.4g}"
            return f"{head} Every value is {size} times the right one."
        offset = float((a - e).mean())
        if abs(offset) > 1e-6 * max(scale, 1.0) and torch.allclose(a, e + offset, rtol=1e-4, atol=1e-5 * scale):
            return f"{head} Every value is off by the same amount ({offset:+.4g})."
        if (not torch.allclose(a, e, rtol=1e-4, atol=1e-6 * scale)
                and torch.allclose(a.sort().values, e.sort().values, rtol=1e-4, atol=1e-6 * scale)):
            return f"{head} They are the right values, in the wrong places."
    scale = e.abs().max().item() if e.numel() else 0.0
    relative = (a - e).abs().max().item() / (scale or 1.0) if a.numel() else 1.0
    closeness = (
        "They are close: look for lost precision (a low-precision dtype, integer division, rounding)."
        if relative < 1e-2
        else "Check the formula, the dimension you work along, and the order of the values."
    )
    return f"{head} {closeness}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(
    actual: Any, expected: Any, where: str = "your result", atol: float | None = None, rtol: float | None = None,
    *, values: bool = True,
) -> None:
    """Raise :class:`Mismatch` at the first difference: type, layout, shape, dtype, device, then values.

    ``values=False`` compares everything but the values (the run on the ``meta`` device, which has
    none). A comparison that itself fails on an unusual answer becomes a :class:`Mismatch` too.
    """
    try:
        _compare(actual, expected, where, atol, rtol, values)
    except Mismatch:
        raise
    except Exception as error:  # an answer so unusual that comparing it fails is still just wrong
        raise Mismatch(f"{where}: could not be compared ({describe(actual)}: {type(error).__name__}).") from None


def _compare(actual: Any, expected: Any, where: str, atol: float | None, rtol: float | None, values: bool) -> None:
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a torch.Tensor, got {describe(actual)}. {_type_hint(actual)}".strip())
        _compare_tensors(actual, expected, where, atol, rtol, values)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            kind = type(expected).__name__
            hint = f" {_type_hint(actual)}" if type(actual).__module__ == "numpy" or actual is None else ""
            raise Mismatch(f"{where}: expected a {kind} of {len(expected)} items, got {describe(actual)}.{hint}")
        if _is_named_tuple(expected) and (not _is_named_tuple(actual) or _fields(actual) != _fields(expected)):
            raise Mismatch(
                f"{where}: expected a named tuple with the fields {', '.join(_fields(expected))}; got "
                f"{'a plain ' + type(actual).__name__ if not _is_named_tuple(actual) else type(actual).__name__}."
            )
        if len(actual) != len(expected):
            raise Mismatch(f"{where}: expected {len(expected)} items, got {len(actual)}.")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _compare(a, e, f"{where}, item {i}", atol, rtol, values)
    elif isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where}: expected a dict, got {describe(actual)}.")
        if set(actual) != set(expected):
            raise Mismatch(f"{where}: expected the keys {sorted(map(str, expected))}, got {sorted(map(str, actual))}.")
        for key in expected:
            _compare(actual[key], expected[key], f"{where}[{key!r}]", atol, rtol, values)
    elif isinstance(expected, bool):
        if not isinstance(actual, bool):
            raise Mismatch(f"{where}: expected True or False, got {describe(actual)}.")
        if values and actual != expected:
            raise Mismatch(f"{where}: the answer is the other boolean.")
    elif isinstance(expected, (int, float)):
        if isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a Python number, got {describe(actual)}.")
        if type(actual).__module__ == "numpy":
            raise Mismatch(f"{where}: expected a Python number, got {describe(actual)}. {_type_hint(actual)}")
        if not _is_number(actual):
            raise Mismatch(f"{where}: expected a number, got {describe(actual)}. {_type_hint(actual)}".strip())
        if not values:
            return
        if isinstance(expected, int) and isinstance(actual, float) and not actual.is_integer():
            raise Mismatch(f"{where}: expected a whole number, got a fraction.")
        if math.isnan(float(actual)):
            raise Mismatch(f"{where}: your number is NaN.")
        if not math.isclose(float(actual), float(expected), rel_tol=rtol or 1e-5, abs_tol=atol or 1e-8):
            raise Mismatch(f"{where}: the type is right but the value is not.")
    elif isinstance(expected, str):
        if not isinstance(actual, str):
            raise Mismatch(f"{where}: expected a str, got {describe(actual)}.")
        if values and actual != expected:
            raise Mismatch(f"{where}: the text is not right.")
    elif values and not (actual is expected or bool(actual == expected)):
        raise Mismatch(f"{where}: the value is not right ({describe(actual)}).")


def clone_case(value: Any) -> Any:
    """An independent copy of the inputs (tensors cloned, leaves kept as leaves, modules deep-copied)."""
    if _holds_modules(value):
        try:  # one deepcopy keeps a model and its optimizer pointing at the same parameters
            return copy.deepcopy(value)
        except Exception:  # noqa: BLE001 - non-leaf tensors refuse deepcopy: copy item by item
            pass
    return _clone(value)


def _holds_modules(value: Any) -> bool:
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_modules(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_modules(v) for v in value.values())
    return False


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return torch.empty_like(value).requires_grad_(value.requires_grad)
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, torch.Generator):  # learner and reference must draw the same numbers
        twin = torch.Generator(device=value.device)
        twin.set_state(value.get_state())
        return twin
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value)
    if _is_named_tuple(value) and hasattr(value, "_fields"):
        return type(value)(*(_clone(v) for v in value))
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _modules(value: Any) -> list[torch.nn.Module]:
    if isinstance(value, torch.nn.Module):
        return [value]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _modules(v)]
    if isinstance(value, dict):
        return [m for v in value.values() for m in _modules(v)]
    return []


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Do two strided tensors share memory (the same storage)?"""
    if a.layout != torch.strided or b.layout != torch.strided:
        return False
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _size(case: Any) -> float:
    """How big a case is, to pick the smallest failing one: elements, then integer arguments."""
    total = 0.0
    for value in case if isinstance(case, (list, tuple)) else (case,):
        if isinstance(value, torch.Tensor):
            total += value.numel()
        elif isinstance(value, (list, tuple, dict)):
            total += _size(list(value.values()) if isinstance(value, dict) else value)
        elif _is_number(value):
            total += abs(value) * 1e-3
    return total


def show(value: Any, limit: int = 400) -> str:
    """A short printable form of a value (small tensors in full), for feedback."""
    saved = vars(PRINT_OPTS).copy()
    try:
        torch.set_printoptions(precision=4, threshold=24, edgeitems=2, linewidth=100, sci_mode=None)
        if isinstance(value, torch.Generator):
            text = f"torch.Generator(device='{value.device}')"
        elif isinstance(value, torch.nn.Module):
            text = f"{type(value).__name__}(...)"
        elif isinstance(value, torch.Tensor) and value.layout != torch.strided:
            text = f"a {str(value.layout).replace('torch.', '')} tensor{tuple(value.shape)}"
        else:
            text = repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is described instead
        text = describe(value)
    finally:
        for key, old in saved.items():
            setattr(PRINT_OPTS, key, old)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- guarding the learner's code

DEFAULT_TIME_LIMIT = 5.0
"""Seconds one call of the learner's function may take (``time_limit=`` raises it per exercise)."""


def time_scale() -> float:
    """``TORCHCOURSE_TIME_LIMIT_SCALE`` multiplies every time limit (a slow or shared machine)."""
    try:
        return max(float(os.environ.get("TORCHCOURSE_TIME_LIMIT_SCALE", "1")), 0.01)
    except ValueError:
        return 1.0


class TimeLimitExceeded(BaseException):
    """Raised inside the learner's code when its time is up (a BaseException: ``except Exception`` lets it pass)."""


class _Stopwatch:
    """Bounds one call: SIGALRM in the main thread on Unix, else a watchdog that raises in the thread.

    Once the limit is reached, the alarm repeats every 50 ms and the learner's frames are traced so
    that every line raises again: a bare ``except:`` that swallows one ``TimeLimitExceeded`` meets the
    next. Nothing raises inside this module's own frames. The watchdog (Windows, other threads) can
    neither interrupt a blocking C call nor get past a learner's ``except BaseException`` loop.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False
        self.fired = False
        self._previous: Any = None
        self._old_timer = (0.0, 0.0)
        self._watchdog: threading.Thread | None = None
        self._done = threading.Event()
        self._thread = threading.get_ident()
        self._traced, self._saved_trace = False, None
        self.uses_signal = (
            hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )

    def _handler(self, signum: int, frame: Any) -> None:
        if self.armed and (frame is None or frame.f_code.co_filename != __file__):
            self.fired = True
            self._trap(frame)
            raise TimeLimitExceeded

    def _trap(self, frame: Any) -> None:
        """Trace the learner's frames so that the next line run, even inside an ``except``, raises again."""
        if not self._traced:
            self._traced, self._saved_trace = True, sys.gettrace()

        def trace(f: Any, event: str, arg: Any) -> Any:
            if self.armed and event in ("line", "call") and f.f_code.co_filename != __file__:
                raise TimeLimitExceeded
            return trace

        while frame is not None and frame.f_code.co_filename != __file__:
            frame.f_trace = trace
            frame = frame.f_back
        sys.settrace(trace)

    def start(self) -> None:
        self.armed = True
        if self.uses_signal:
            self._previous = signal.signal(signal.SIGALRM, self._handler)
            self._old_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, 0.05)
        else:
            self._watchdog = threading.Thread(target=self._watch, name="torchcourse-time-limit", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        while self.armed and not self._done.is_set():
            self.fired = True
            raise_in = ctypes.pythonapi.PyThreadState_SetAsyncExc
            raise_in(ctypes.c_ulong(self._thread), ctypes.py_object(TimeLimitExceeded))
            self._done.wait(0.05)

    def stop(self) -> None:
        while True:  # a late alarm may land here once; the loop finishes the job
            try:
                self.armed = False
                if self.uses_signal:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)
                    if self._old_timer[0] > 0:  # someone else's timer (pytest-timeout...): give it back
                        signal.setitimer(signal.ITIMER_REAL, self._old_timer[0], self._old_timer[1])
                    if self._traced:  # give a debugger's or coverage's tracer back
                        self._traced = False
                        sys.settrace(self._saved_trace)
                else:
                    self._done.set()
                    if self._watchdog is not None:  # an exception it set lands in this loop
                        self._watchdog.join()
                    # Never clear with PyThreadState_SetAsyncExc(id, NULL): on CPython 3.11 that leaves the
                    # interpreter's eval breaker tripped for good (every thread slows, signals misbehave).
                return
            except TimeLimitExceeded:
                continue


# Global state a learner's function could change: how to read it and how to put it back.
def _read_default_device() -> Any:
    return torch.get_default_device()


_ABSENT = object()  # "the attribute did not exist": restored by deleting it, never by writing None


def _read_device_context() -> tuple[Any, Any]:
    """``torch.set_default_device``'s state, exactly: the context object (or its absence) and
    ``torch.utils._device.CURRENT_DEVICE``. Writing ``None`` where there was nothing breaks
    ``torch.get_default_device()`` on torch 2.6-2.10, so absence is kept as absence."""
    import torch.utils._device as device_module

    return (getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", _ABSENT),
            getattr(device_module, "CURRENT_DEVICE", _ABSENT))


def _write_device_context(saved: tuple[Any, Any]) -> None:
    import torch.utils._device as device_module

    for owner, name, value in ((torch._GLOBAL_DEVICE_CONTEXT, "device_context", saved[0]),
                               (device_module, "CURRENT_DEVICE", saved[1])):
        if value is _ABSENT:
            if hasattr(owner, name):
                delattr(owner, name)
        else:
            setattr(owner, name, value)


_PRINT_KEYS = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")


def _global_state() -> dict[str, Any]:
    from torch.backends import cudnn

    state: dict[str, Any] = {
        "grad mode (torch.is_grad_enabled())": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "anomaly detection": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        "the default dtype": torch.get_default_dtype(),
        "the default device": _read_default_device(),
        "deterministic algorithms": (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled()),
        "the cuDNN flags": (cudnn.enabled, cudnn.benchmark, cudnn.deterministic),
        "the float32 matmul precision": torch.get_float32_matmul_precision(),
        "the print options (torch.set_printoptions)": tuple(getattr(PRINT_OPTS, k) for k in _PRINT_KEYS),
        "the thread count (torch.set_num_threads)": torch.get_num_threads(),
        "the autocast state": tuple(
            (torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")
        ),
        "warn-always (torch.set_warn_always)": torch.is_warn_always_enabled(),
        "the global random generator's seed (torch.manual_seed)": torch.initial_seed(),
        "_rng": torch.get_rng_state(),
        "_modes": torch.overrides._get_current_function_mode_stack(),
        "_device_context": _read_device_context(),
        "_environ": dict(os.environ),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["the CUDA random generators' seed"] = torch.cuda.initial_seed()
        state["_cuda_rng"] = torch.cuda.get_rng_state_all()
    state["an initialised process group (torch.distributed)"] = _process_group()
    return state


def _process_group() -> Any:
    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return (dist.get_backend(), dist.get_world_size(), dist.get_rank())
    except Exception:  # noqa: BLE001
        return ("?", 0, 0)


def _restore(saved: dict[str, Any]) -> None:
    """Put back everything :func:`_global_state` read (each step on its own: one failure must not stop the rest)."""
    from torch.backends import cudnn

    def grad() -> None:
        torch.set_grad_enabled(saved["grad mode (torch.is_grad_enabled())"])

    def anomaly() -> None:
        torch.set_anomaly_enabled(*saved["anomaly detection"])

    def dtype() -> None:
        torch.set_default_dtype(saved["the default dtype"])

    def modes() -> None:
        while torch._C._len_torch_function_stack():
            torch._C._pop_torch_function_stack()
        for mode in saved["_modes"]:
            torch._C._push_on_torch_function_stack(mode)
        _write_device_context(saved["_device_context"])

    def deterministic() -> None:
        mode, warn_only = saved["deterministic algorithms"]
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)

    def backends() -> None:
        cudnn.enabled, cudnn.benchmark, cudnn.deterministic = saved["the cuDNN flags"]
        torch.set_float32_matmul_precision(saved["the float32 matmul precision"])

    def printing() -> None:
        for key, value in zip(_PRINT_KEYS, saved["the print options (torch.set_printoptions)"], strict=True):
            setattr(PRINT_OPTS, key, value)

    def threads() -> None:
        torch.set_num_threads(saved["the thread count (torch.set_num_threads)"])

    def autocast() -> None:
        for device, (enabled, dtype_) in zip(("cpu", "cuda"), saved["the autocast state"], strict=True):
            torch.set_autocast_enabled(device, enabled)
            torch.set_autocast_dtype(device, dtype_)

    def rng() -> None:
        torch.set_rng_state(saved["_rng"])
        if "_cuda_rng" in saved:
            torch.cuda.set_rng_state_all(saved["_cuda_rng"])

    def warn() -> None:
        torch.set_warn_always(saved["warn-always (torch.set_warn_always)"])

    def environ() -> None:
        if dict(os.environ) != saved["_environ"]:
            os.environ.clear()
            os.environ.update(saved["_environ"])

    def group() -> None:
        before, now = saved["an initialised process group (torch.distributed)"], _process_group()
        if before == now:
            return
        if now is not None:
            dist.destroy_process_group()
        if before is not None and before[1] == 1:
            dist.init_process_group(before[0], store=dist.HashStore(), rank=0, world_size=1)

    now = _global_state()
    steps = {
        "_modes": modes, "grad mode (torch.is_grad_enabled())": grad, "anomaly detection": anomaly,
        "the default dtype": dtype, "deterministic algorithms": deterministic, "the cuDNN flags": backends,
        "the float32 matmul precision": backends, "the print options (torch.set_printoptions)": printing,
        "the thread count (torch.set_num_threads)": threads, "the autocast state": autocast,
        "warn-always (torch.set_warn_always)": warn, "_environ": environ,
        "an initialised process group (torch.distributed)": group,
    }
    for key, step in steps.items():
        if key == "_modes":
            changed = now["_modes"] != saved["_modes"] or any(
                a is not b for a, b in zip(now["_device_context"], saved["_device_context"], strict=True))
        else:
            changed = now.get(key) != saved.get(key)
        if changed:
            try:
                step()
            except Exception:  # noqa: BLE001, S112 - restore what can be restored
                continue
    try:
        if not torch.equal(now["_rng"], saved["_rng"]) or "_cuda_rng" in saved:
            rng()
    except Exception:  # noqa: BLE001
        pass


def _state_changes(before: dict[str, Any], after: dict[str, Any], global_rng: bool,
                   reseeds: bool = False) -> list[str]:
    """What the learner's function changed, in words (``reseeds``: the generators' seeds may change)."""
    changes = []
    for key, old in before.items():
        if key.startswith("_") or (reseeds and "seed" in key):
            continue
        new = after.get(key)
        if old != new:
            changes.append(f"{key}: {_short(old)} → {_short(new)}")
    if [m for m in after["_modes"] if not _is_own_mode(m)] != [m for m in before["_modes"] if not _is_own_mode(m)]:
        if before["the default device"] == after["the default device"]:
            changes.append("a context (torch function mode) entered and never left")
    if after["_environ"] != before["_environ"]:
        keys = sorted(k for k in set(after["_environ"]) | set(before["_environ"])
                      if after["_environ"].get(k) != before["_environ"].get(k))
        changes.append(f"the environment variables {', '.join(keys)}")
    if (not global_rng and not reseeds and not torch.equal(before["_rng"], after["_rng"])
            and not any("seed" in c for c in changes)):
        changes.append("the global random generator's state (you drew from it instead of the generator given)")
    return changes


def _is_own_mode(mode: Any) -> bool:
    return isinstance(mode, _Recorder)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Recording which torch functions the learner's code calls (instruction checks).


class _Recorder(torch.overrides.TorchFunctionMode):
    """Counts the torch functions, Tensor methods and properties the learner's code calls directly."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[Any] = collections.Counter()
        self.inside: collections.Counter[int] = collections.Counter()
        self.aliases: dict[int, Any] = {}  # a patched wrapper -> what it counts as
        self.depth = 0  # patched calls in progress

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        key = self.aliases.get(id(func)) or _call_key(func)
        if not self.inside[id(key)]:
            self.calls[key] += 1
        return func(*args, **(kwargs or {}))


def _call_key(func: Any) -> Any:
    """A property's getter becomes ``('property', name)``; anything else stays the object itself."""
    if type(func).__name__ == "method-wrapper":
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", None)
        if name:
            return ("property", name)
    return func


@dataclass(frozen=True)
class Uses:
    """An instruction checked by what the learner's function calls.

    ``Uses("torch.Tensor.scatter_", "torch.Tensor.scatter", says="build it with scatter_")``: one of
    the names must be called. ``count`` demands an exact number of calls (an int, or a function of the
    case's arguments: ``count=lambda w, x, y, chunks: chunks``). As a ``forbids=`` entry, none of the
    names may be called.
    """

    names: tuple[str, ...]
    says: str = ""
    count: int | Callable[..., int] | None = None

    def __init__(self, *names: str, says: str = "", count: int | Callable[..., int] | None = None) -> None:
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "says", says)
        object.__setattr__(self, "count", count)

    @property
    def instruction(self) -> str:
        return self.says or f"use {' or '.join('`' + n.removeprefix('torch.') + '`' for n in self.names)}"


def _as_uses(item: str | Sequence[str] | Uses) -> Uses:
    if isinstance(item, Uses):
        return item
    if isinstance(item, str):
        return Uses(item)
    return Uses(*item)


def _resolve(name: str) -> tuple[Any, str, Any]:
    """``(owner, attribute, object)`` for a dotted name such as ``torch.nn.Module.register_forward_hook``."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        owner = obj
        for part in parts[cut:]:
            owner, obj = obj, getattr(obj, part)
        return owner, parts[-1], obj
    raise ValueError(f"cannot resolve {name!r}")


def _keys_of(name: str) -> set[Any]:
    """The call keys that count as calling ``name``."""
    owner, attr, obj = _resolve(name)
    keys: set[Any] = set()
    raw = vars(owner).get(attr, obj) if isinstance(owner, type) else obj
    if isinstance(raw, (property, types.GetSetDescriptorType)) or type(raw).__name__ == "getset_descriptor":
        keys.add(("property", attr))
    else:
        keys.add(obj)
    return keys


class _Patches:
    """Counts calls of named Python functions, methods and classes that no TorchFunctionMode sees."""

    def __init__(self, names: Sequence[str], recorder: _Recorder) -> None:
        self.undo: list[Callable[[], None]] = []
        for name in names:
            try:
                owner, attr, obj = _resolve(name)
            except Exception:  # noqa: BLE001, S112 - a name this torch lacks is never called
                continue
            raw = vars(owner).get(attr) if isinstance(owner, type) else obj
            if isinstance(obj, type):
                owner, attr, raw = obj, "__init__", vars(obj).get("__init__")
                target = obj.__init__
            elif isinstance(raw, (types.FunctionType, staticmethod, classmethod)):
                target = obj
            else:  # builtins dispatch through __torch_function__ already
                continue
            self._patch(owner, attr, raw, target, obj if not isinstance(obj, type) else obj, recorder)

    def _patch(self, owner: Any, attr: str, raw: Any, target: Any, key: Any, recorder: _Recorder) -> None:
        inner = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else (raw if raw is not None else target)

        @functools.wraps(inner)
        def counting(*args: Any, **kwargs: Any) -> Any:
            if not recorder.depth:  # Tensor.backward calling autograd.backward is one call of the learner's
                recorder.calls[key] += 1
            recorder.inside[id(key)] += 1
            recorder.depth += 1
            try:
                return inner(*args, **kwargs)
            finally:
                recorder.inside[id(key)] -= 1
                recorder.depth -= 1

        wrapped: Any = counting
        recorder.aliases[id(counting)] = key
        if isinstance(raw, staticmethod):
            wrapped = staticmethod(counting)
        elif isinstance(raw, classmethod):
            wrapped = classmethod(counting)
        had = isinstance(owner, type) and attr in vars(owner) or not isinstance(owner, type)
        setattr(owner, attr, wrapped)

        def undo() -> None:
            if had:
                setattr(owner, attr, raw)
            else:
                delattr(owner, attr)

        self.undo.append(undo)

    def remove(self) -> None:
        while self.undo:
            self.undo.pop()()


class _Guarded:
    """The learner's function, wrapped: every call is bounded, isolated, captured and recorded."""

    def __init__(self, answer: Callable[..., Any], exercise: Exercise | None = None) -> None:
        self.answer = answer
        self.__wrapped__ = answer
        self.exercise = exercise
        self.printed = ""
        self.calls: collections.Counter[Any] = collections.Counter()
        self.last_result: Any = None
        names = [n for item in (*(exercise.requires if exercise else ()), *(exercise.forbids if exercise else ()))
                 for n in _as_uses(item).names]
        self.patch_names = names

    def __getattr__(self, name: str) -> Any:
        return getattr(self.answer, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_answer(self.answer, *args, _guard=self, **kwargs)


_ACTIVE: list[_Guarded] = []


def last_calls() -> collections.Counter[Any]:
    """The calls the learner's function made in the check's last call of it (for ``properties``)."""
    return _ACTIVE[-1].calls if _ACTIVE else collections.Counter()


def _learner_frame(tb: Any) -> str:
    """`` (line N of name)`` for the last traceback frame outside torch, the standard library and this package."""
    found = ""
    lib = os.path.dirname(os.path.dirname(torch.__file__))
    own = os.path.dirname(os.path.dirname(__file__))
    stdlib = os.path.dirname(os.__file__)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith((lib, own, stdlib)):
            found = f" (line {tb.tb_lineno} of {tb.tb_frame.f_code.co_name})"
        tb = tb.tb_next
    return found


def call_answer(answer: Callable[..., Any], *args: Any, _guard: _Guarded | None = None, **kwargs: Any) -> Any:
    """Run the learner's function once, guarded; return its result or raise :class:`Mismatch`.

    The call is bounded by the exercise's time limit, its printed output is captured, global state
    (grad mode, default dtype and device, RNG, flags, process group...) is compared and restored,
    and any exception (``SystemExit`` included, ``KeyboardInterrupt`` excepted) becomes feedback.
    The placeholder ``...`` as a result raises :class:`NotAttempted`.
    """
    if isinstance(answer, _Guarded):
        return answer(*args, **kwargs)
    guard = _guard or (_ACTIVE[-1] if _ACTIVE else _Guarded(answer))
    exercise = guard.exercise
    limit = (exercise.time_limit if exercise and exercise.time_limit else DEFAULT_TIME_LIMIT) * time_scale()
    global_rng = exercise.global_rng if exercise else True
    before = _global_state()
    recorder = _Recorder()
    patches: _Patches | None = None
    printed = io.StringIO()
    stopwatch = _Stopwatch(limit)
    outcome: tuple[str, Any] = ("none", None)
    try:
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                if guard.patch_names:
                    patches = _Patches(guard.patch_names, recorder)
                    recorder.__enter__()
                stopwatch.start()
                try:
                    outcome = ("ok", answer(*args, **kwargs))
                finally:
                    stopwatch.stop()
        finally:
            stopwatch.stop()
            if patches is not None:
                patches.remove()
    except TimeLimitExceeded:
        outcome = ("timeout", None)
    except KeyboardInterrupt:
        _restore(before)
        raise
    except BaseException as error:  # noqa: BLE001 - the learner's code may raise anything: that is feedback
        outcome = ("error", error)
    after = _global_state()
    _restore(before)
    guard.calls = recorder.calls
    guard.printed = (guard.printed + printed.getvalue())[-20_000:]
    kind, value = outcome
    if kind == "timeout":
        raise TimedOut(
            f"Your function did not return within {limit:g} s on a case of size {describe(args)}: "
            "look for an infinite loop, or work that grows too fast."
        ) from None
    if kind == "error":
        error = value
        name = type(error).__name__
        if isinstance(error, SystemExit):
            raised = Mismatch(
                f"Your function raised SystemExit{_learner_frame(error.__traceback__)}: sys.exit() and "
                "exit() end the whole program, where a function hands its answer back with return."
            )
        else:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raised = Mismatch(f"Your function raised {name}: {text}".rstrip(": ")
                              + _learner_frame(error.__traceback__) + ".")
        # for judges that accept a declared error (a parser that must refuse) or explain an exit
        raised.error, raised.printed = error, printed.getvalue()
        raise raised from None
    changes = _state_changes(before, after, global_rng, bool(exercise and exercise.reseeds))
    if changes:
        raise StateChanged(
            "Your function changed global state that outlives it: " + "; ".join(changes) + ". A function "
            "must leave the session as it found it (a `with` block restores a mode when it ends). "
            "The check has put it back."
        )
    result = value
    guard.last_result = result
    if result is ...:
        raise NotAttempted
    return result


# ---------------------------------------------------------------------------------- exercises


Case = tuple[Any, ...]
Property = Callable[[Any, Case], "str | None"]

_DEVICE_ERROR = re.compile(
    r"same device|expected device|on device \w+ is not|different from other tensors|device type|"
    r"Expected all tensors|expected to be in the same device|to be on the same device|but got \w+ device",
    re.IGNORECASE,
)


_PLACEHOLDER = "Your function still returns the `...` placeholder: write its body."


@dataclass
class _Failure:
    label: str
    case: Case
    message: str
    result: Any
    printed: str

    @property
    def raised(self) -> bool:
        return self.message.startswith("Your function raised")


@dataclass
class Exercise:
    """One graded exercise, declared once in its chapter's checks module.

    ``reference(*args)`` is the model answer; ``inputs(generator, device)`` (or ``inputs(generator,
    device, trial)``) builds one random case (a tuple of arguments) so that an answer hard-coded for
    the visible example fails. ``cases`` adds fixed edge cases, each a tuple of arguments (moved to
    every device) or a function ``(device) -> tuple``. ``shares_memory`` demands (True) or forbids
    (False) that the result share storage with the first tensor argument. ``grad`` also compares the
    gradients of ``result.sum()`` with respect to the inputs that require grad. ``properties`` are
    extra checks: each returns a message when the answer breaks a rule the values alone cannot show.
    ``misconceptions`` pair a typical wrong answer with the feedback to give when the learner's
    result matches it on every failing case. ``requires``/``forbids`` are instructions checked by
    what the learner's function calls (:class:`Uses`, a dotted name, or a tuple of alternatives).
    ``time_limit`` bounds each call (seconds, default :data:`DEFAULT_TIME_LIMIT`). ``global_rng=False``
    also rejects drawing from the global random generator (reseeding it is always rejected).
    ``sets_grad`` allows the answer to fill the ``.grad`` of its inputs (it runs backward on them).
    ``second_device=False`` skips the extra run on the ``meta`` device. ``reseeds=True`` lets the answer
    reseed the global generators (a ``worker_init_fn`` runs in a process of its own).
    """

    chapter: Chapter
    id: str
    title: str
    points: int
    reference: Callable[..., Any]
    inputs: Callable[..., Case]
    hints: Sequence[str]
    solution_code: str = ""
    trials: int = 3
    atol: float | None = None
    rtol: float | None = None
    shares_memory: bool | None = None
    grad: bool = False
    mutates_inputs: bool = False
    properties: Sequence[Property] = ()
    misconceptions: Sequence[tuple[Callable[..., Any], str]] = ()
    on: Sequence[str] | None = None
    cases: Sequence[Any] = ()
    time_limit: float | None = None
    requires: Sequence[Any] = ()
    forbids: Sequence[Any] = ()
    global_rng: bool = True
    sets_grad: bool = False
    second_device: bool | None = None
    reseeds: bool = False
    _hints_shown: int = field(default=0, init=False, repr=False)

    # -- learner-facing --------------------------------------------------------------------

    def hint(self) -> Text:
        """Reveal the next hint (one per call)."""
        if not self.hints:
            return Text(f"No hints for {self.id}. `{self.id}.solution()` shows a solution.")
        if self._hints_shown >= len(self.hints):
            return Text(f"No more hints for {self.id}. `{self.id}.solution()` shows a solution.")
        self._hints_shown += 1
        shown = self._hints_shown
        return Text(f"**Hint {shown}/{len(self.hints)}** for {self.id}: {self.hints[shown - 1]}")

    def solution(self) -> Text:
        """Show a model solution."""
        code = self.solution_code or textwrap.dedent(inspect.getsource(self.reference))
        return Text(f"**Solution to {self.id}** ({self.title}):\n\n```python\n{code.strip()}\n```")

    def check(self, answer: Any) -> Outcome:
        """Grade ``answer`` (the learner's function) and show the outcome; raises in strict mode."""
        outcome = self.grade(answer)
        self.chapter.record(outcome)
        _append_to_grade_file(outcome)
        if strict() and outcome.status is not Status.CORRECT:
            raise CheckFailed(str(outcome))
        return outcome

    # -- grading ---------------------------------------------------------------------------

    def grade(self, answer: Any) -> Outcome:
        """The outcome for ``answer`` without recording or raising: what tests call."""
        status, message = self._judge(answer)
        points = self.points if status is Status.CORRECT else 0
        return Outcome(self.chapter.name, self.id, self.title, status, message, points, self.points)

    def seed(self, trial: int) -> int:
        """The seed of a trial's hidden inputs: fixed per exercise and trial, so grading is repeatable."""
        return zlib.crc32(f"{self.chapter.name}/{self.id}/{trial}".encode())

    def make_case(self, trial: int, device: str) -> Case:
        """Hidden case ``trial`` on ``device``: the random trials first, then the declared ``cases``."""
        if trial < self.trials:
            generator = torch.Generator().manual_seed(self.seed(trial))
            if _takes_trial(self.inputs):
                return tuple(self.inputs(generator, device, trial))
            return tuple(self.inputs(generator, device))
        declared = self.cases[trial - self.trials]
        if callable(declared):
            return tuple(declared(device))
        return tuple(move_to(clone_case(tuple(declared)), device))

    @property
    def total_cases(self) -> int:
        return self.trials + len(self.cases)

    def _judge(self, answer: Any) -> tuple[Status, str]:
        if answer is ...:
            return Status.NOT_ATTEMPTED, "Replace the `...` placeholder with your answer, then run the check again."
        if not callable(answer):
            return Status.INCORRECT, (
                f"Expected a function, got {describe(answer)}. Pass the function itself, "
                f"as in `{self.id}.check(my_function)`, not the result of calling it."
            )
        guard = _Guarded(answer, self)
        run_on = [d for d in (self.on or devices()) if d in devices()]
        failures: list[_Failure] = []
        saved = _global_state()
        _ACTIVE.append(guard)
        try:
            for trial in range(self.total_cases):
                label = f"hidden test {trial + 1} of {self.total_cases}"
                for device in run_on:
                    case = self.make_case(trial, device)
                    guard.printed, guard.last_result = "", None
                    try:
                        self._check_case(guard, case)
                        self._check_instructions(guard, case)
                    except NotAttempted:
                        return Status.NOT_ATTEMPTED, _PLACEHOLDER
                    except Mismatch as mismatch:
                        failures.append(_Failure(label, case, str(mismatch), guard.last_result, guard.printed))
                        if isinstance(mismatch, TimedOut):
                            return Status.INCORRECT, self._feedback(failures[-1], None, 1)
                        break
                    except Exception as error:  # noqa: BLE001 - a judge or property tripped on an odd answer
                        message = (f"Your result could not be checked ({describe(guard.last_result)}: "
                                   f"{type(error).__name__}): return what the statement asks for.")
                        failures.append(_Failure(label, case, message, guard.last_result, guard.printed))
                        break
                else:
                    try:
                        self._check_second_device(guard, trial)
                    except Mismatch as mismatch:
                        label += ", on the meta device"
                        failures.append(_Failure(label, (), str(mismatch), None, guard.printed))
            if failures:
                # the smallest failing case, among those that fail for a reason other than the values if any
                # (a wrong shape on one case says more than wrong numbers on another)
                smallest = min(failures, key=lambda f: ("values differ" in f.message,
                                                        _size(f.case) if f.case else math.inf))
                return Status.INCORRECT, self._feedback(smallest, self._diagnose(guard, failures), len(failures))
        finally:
            _ACTIVE.remove(guard)
            _restore(saved)
        where = " and ".join(run_on)
        printed = _printed(guard.printed)
        return Status.CORRECT, f"All {self.total_cases} hidden test cases pass on {where}.{printed}"

    def _feedback(self, failure: _Failure, misconception: str | None, count: int) -> str:
        lines = [misconception or failure.message]
        of = f"; {count} of {self.total_cases} tests failed" if count > 1 else ""
        if failure.case:
            names = _argument_names(self.reference, len(failure.case))
            args = ", ".join(f"{n}={show(v, 160)}" for n, v in zip(names, failure.case, strict=True))
            lines.append(f"Smallest failing case ({failure.label}{of}): {args}")
            if failure.result is not None:
                lines.append(f"Your function returned: {show(failure.result)}")
        else:
            lines.append(f"({failure.label}{of})")
        message = "\n".join(lines)
        return message + _printed(failure.printed)

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        learner_case, reference_case = clone_case(case), clone_case(case)
        names = _argument_names(self.reference, len(case))
        before = _input_state(learner_case)
        result = call_answer(answer, *learner_case)
        after = _input_state(learner_case)
        expected = self.reference(*reference_case)
        compare(result, expected, "your result", self.atol, self.rtol)
        if not self.mutates_inputs:
            problem = _input_changes(case, learner_case, before, after, names, self.sets_grad)
            if problem:
                raise Mismatch(problem)
        if self.grad:
            self._compare_grads(result, expected, learner_case, reference_case)
        if self.shares_memory is not None:
            self._check_sharing(result, learner_case)
        for prop in self.properties:
            problem = prop(result, learner_case)
            if problem:
                raise Mismatch(problem)

    def _check_instructions(self, guard: _Guarded, case: Case) -> None:
        calls = guard.calls
        for item in self.requires:
            uses = _as_uses(item)
            made = sum(calls[k] for k in _keys_for(uses))
            want = uses.count(*case) if callable(uses.count) else uses.count
            if made == 0 or (want is not None and made != want):
                times = "never" if made == 0 else f"{made} times, not {want}"
                raise Mismatch(f"The values are right, but the statement says to {uses.instruction}: your "
                               f"function called it {times}." if made else
                               f"The values are right, but the statement says to {uses.instruction}: your "
                               "function never called it.")
        for item in self.forbids:
            uses = _as_uses(item)
            if sum(calls[k] for k in _keys_for(uses)):
                raise Mismatch(f"The values are right, but the statement rules this out: {uses.instruction} is "
                               "what your function called.")

    def _check_second_device(self, guard: _Guarded, trial: int) -> None:
        """Run once more with the inputs on ``meta``: tensors created without ``device=`` show up here."""
        if self.second_device is False or (self.second_device is None and self.on is not None):
            return
        warm_up_meta()
        try:
            case = self.make_case(trial, "meta")
            if not _tensors(case):
                return
            expected = self.reference(*clone_case(case))
        except Exception:  # noqa: BLE001 - the reference cannot run on meta: inconclusive
            return
        expected_tensors = _tensors(expected)
        if not expected_tensors or any(t.device.type != "meta" for t in expected_tensors):
            return
        try:
            result = call_answer(guard, *clone_case(case))
        except Mismatch as mismatch:
            text = str(mismatch)
            if text.startswith("Your function raised") and _DEVICE_ERROR.search(text) and "meta tensor" not in text:
                raise Mismatch(
                    "The values are right here, but your function fails when its inputs live on another "
                    "device (tested on 'meta', which stands in for a GPU): " + text.removeprefix("Your function ")
                    + " A tensor you create there has no device= argument, or is moved to a fixed device."
                ) from None
            if isinstance(mismatch, (TimedOut, StateChanged)):
                raise
            return  # an operation meta cannot run (data-dependent, .item(), LAPACK): inconclusive
        except NotAttempted:
            return
        got = _tensors(result)
        if len(got) != len(expected_tensors):
            return
        for i, (a, e) in enumerate(zip(got, expected_tensors, strict=True)):
            if a.device != e.device:
                item = "your result" if len(got) == 1 else f"tensor {i} of your result"
                raise Mismatch(
                    f"The values are right here, but with the inputs on the 'meta' device (a stand-in for a "
                    f"GPU) {item} came back on {a.device}: a tensor you create lands on the default device "
                    "unless you give it the inputs' device."
                )

    def _compare_grads(self, result: Any, expected: Any, learner_case: Case, reference_case: Case) -> None:
        leaves = [t for t in _tensors(learner_case) if t.requires_grad]
        ref_leaves = [t for t in _tensors(reference_case) if t.requires_grad]
        if not isinstance(result, torch.Tensor) or not result.requires_grad:
            raise Mismatch(
                "The values are right, but your result is not connected to the inputs by the autograd "
                "graph (requires_grad is False). Avoid .detach(), .data, .item() and torch.no_grad() here."
            )
        expected.sum().backward()
        result.sum().backward()
        for i, (leaf, ref_leaf) in enumerate(zip(leaves, ref_leaves, strict=True)):
            if leaf.grad is None:
                raise Mismatch(f"The gradient reaching input {i} is None: that input is cut off from the result.")
            compare(leaf.grad, ref_leaf.grad, f"the gradient of input {i}", self.atol, self.rtol)

    def _check_sharing(self, result: Any, learner_case: Case) -> None:
        inputs = _tensors(learner_case)
        if not inputs or not isinstance(result, torch.Tensor):
            return
        shares = same_storage(result, inputs[0])
        if self.shares_memory and not shares:
            raise Mismatch(
                "The values are right, but your result is a copy: it must be a view that shares memory "
                "with the input."
            )
        if self.shares_memory is False and shares:
            raise Mismatch(
                "The values are right, but your result shares memory with the input, so changing one "
                "changes the other."
            )

    def _diagnose(self, guard: _Guarded, failures: list[_Failure]) -> str | None:
        """The feedback of the first misconception that explains the learner's output on every failing case."""
        if not self.misconceptions or not all(f.case and (f.raised or f.result is not None) for f in failures):
            return None
        if all(f.raised for f in failures):
            return None  # the error message says more than any guess
        for wrong, feedback in self.misconceptions:
            if all(self._explains(wrong, f) for f in failures):
                return feedback
        return None

    def _explains(self, wrong: Callable[..., Any], failure: _Failure) -> bool:
        """Does the misconception ``wrong`` produce what the learner's function did (or raise where it raised)?"""
        saved = _global_state()
        try:
            output = wrong(*clone_case(failure.case))
        except Exception:  # noqa: BLE001 - the misconception fails here too: consistent with a raise
            return failure.raised
        finally:
            _restore(saved)
        if failure.raised:
            return False
        try:
            compare(failure.result, output, "", self.atol, self.rtol)
        except Mismatch:
            return False
        return True


@functools.lru_cache(maxsize=1)
def warm_up_meta() -> None:
    """Pay torch's one-time cost of the first meta operation (it imports its meta kernels: seconds on a
    loaded machine) outside any time limit."""
    x = torch.ones(2, 2, device="meta")
    ((x @ x + 1).sum(0) / 2).exp()
    torch.tensor([1.0], device="meta").view(1, -1)


def _keys_for(uses: Uses) -> set[Any]:
    keys: set[Any] = set()
    for name in uses.names:
        try:
            keys |= _keys_of(name)
        except Exception:  # noqa: BLE001, S112 - a name this torch lacks is never called
            continue
    return keys


def _printed(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    lines = text.splitlines()
    shown = "\n".join(line[:200] for line in lines[:6])
    more = f"\n... ({len(lines) - 6} more lines)" if len(lines) > 6 else ""
    return f"\nYour function printed:\n{shown}{more}"


@functools.lru_cache(maxsize=256)
def _argument_names_cached(reference: Callable[..., Any], count: int) -> tuple[str, ...]:
    try:
        names = [p.name for p in inspect.signature(reference).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    names = names[:count]
    return tuple(names + [f"argument {i + 1}" for i in range(len(names), count)])


def _argument_names(reference: Callable[..., Any], count: int) -> tuple[str, ...]:
    try:
        return _argument_names_cached(reference, count)
    except TypeError:  # an unhashable reference
        return _argument_names_cached.__wrapped__(reference, count)


def _takes_trial(inputs: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(inputs).parameters
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return "trial" in parameters or len(positional) >= 3


def _input_state(case: Case) -> list[tuple[Any, ...]]:
    """What a check compares of its inputs: per tensor requires_grad, .grad and _version; per module parameter."""
    state: list[tuple[Any, ...]] = []
    for t in _tensors(case):
        grad = t.grad.detach().clone() if t.is_leaf and t.grad is not None else None
        state.append(("tensor", t.requires_grad, grad, t._version if t.layout == torch.strided else 0))
    for module in _modules(case):
        for name, p in module.named_parameters():
            state.append(("parameter", name, p.requires_grad))
    return state


def _input_changes(case: Case, learner_case: Case, before: list[tuple[Any, ...]], after: list[tuple[Any, ...]],
                   names: Sequence[str], grads_may_change: bool) -> str | None:
    """The first way the learner's function changed one of its inputs, in words."""
    where = {}
    for arg_name, value in zip(names, case, strict=False):
        for _ in _tensors(value):
            where[len(where)] = f"`{arg_name}`"
    tensors_before = [s for s in before if s[0] == "tensor"]
    tensors_after = [s for s in after if s[0] == "tensor"]
    pairs = zip(_tensors(case), _tensors(learner_case), tensors_before, tensors_after, strict=False)
    for i, (original, given, b, a) in enumerate(pairs):
        name = where.get(i, f"(tensor argument {i})")
        if b[1] != a[1]:
            return (f"Your function switched requires_grad of its input {name} "
                    f"{'off' if b[1] else 'on'}: the caller's tensor is no longer what it was.")
        if not grads_may_change and not _same_grad(b[2], a[2]):
            return f"Your function changed the .grad of its input {name} (backward on it, or an assignment)."
        same = (original.device.type == "meta" or original.layout != torch.strided
                or (original.shape == given.shape and bool(torch.equal(original.detach(), given.detach()))))
        if not same:
            return (f"Your function changed its input {name} in place: the caller's tensor is no longer "
                    "what it was.")
        if b[3] != a[3]:
            return (f"Your function changed its input {name} in place (its version counter went up, even "
                    "though the values ended up the same).")
    for b, a in zip([s for s in before if s[0] == "parameter"], [s for s in after if s[0] == "parameter"],
                    strict=False):
        if b[2] != a[2]:
            return f"Your function switched requires_grad of the module's parameter {b[1]} {'off' if b[2] else 'on'}."
    return None


def _same_grad(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and a.device == b.device and bool(torch.equal(a, b)) if a.device.type != "meta" else True


class NotAttempted(Exception):
    """The learner's function still returns the placeholder."""


def _append_to_grade_file(outcome: Outcome) -> None:
    path = os.environ.get("TORCHCOURSE_GRADE_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome.to_dict()) + "\n")


#: A custom judge: raises :class:`Mismatch` (or :class:`NotAttempted`) when the answer fails the case.
Judge = Callable[[Callable[..., Any], Case], None]


@dataclass
class JudgedExercise(Exercise):
    """An exercise whose cases a function of its own judges, for answers that are not a value to
    compare (a class, a module, a checkpoint, files on disk, a loader, a progress bar)."""

    judge: Judge | None = None

    def _check_case(self, answer: Callable[..., Any], case: Case) -> None:
        if self.judge is None:
            super()._check_case(answer, case)
        else:
            self.judge(answer, case)


# ----------------------------------------------------------------------------------- chapters


@dataclass
class Chapter:
    """The exercises of one chapter, in reading order, and the outcomes of this session."""

    name: str
    title: str
    exercises: dict[str, Exercise] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def exercise(self, id: str, title: str, *, points: int, reference: Callable[..., Any],  # noqa: A002
                 inputs: Callable[[torch.Generator, str], Case], hints: Sequence[str], **options: Any) -> Exercise:
        """Declare an exercise of this chapter (see :class:`Exercise` for the options)."""
        return self.register(Exercise(self, id, title, points, reference, inputs, hints, **options))

    def register(self, exercise: Exercise) -> Exercise:
        """Add an exercise (of any :class:`Exercise` subclass) to the chapter, once."""
        if exercise.id in self.exercises:
            raise ValueError(f"{self.name} declares {exercise.id} twice")
        self.exercises[exercise.id] = exercise
        return exercise

    def record(self, outcome: Outcome) -> None:
        """Keep the latest outcome of each exercise for :meth:`report`."""
        self.outcomes[outcome.id] = outcome

    @property
    def max_score(self) -> int:
        """Points available in the chapter."""
        return sum(ex.points for ex in self.exercises.values())

    def report(self) -> Report:
        """A score table for this session: every exercise, checked or not."""
        outcomes = [
            self.outcomes.get(ex.id)
            or Outcome(self.name, ex.id, ex.title, Status.NOT_ATTEMPTED, "not checked yet", 0, ex.points)
            for ex in self.exercises.values()
        ]
        return Report(outcomes)


@dataclass
class Report:
    """Outcomes with a total; a table in Jupyter, text elsewhere, JSON for machines."""

    outcomes: list[Outcome]

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.max_points for o in self.outcomes)

    def per_chapter(self) -> dict[str, tuple[int, int]]:
        """(score, max score) for each chapter, in order of first appearance."""
        totals: dict[str, tuple[int, int]] = {}
        for o in self.outcomes:
            score, most = totals.get(o.chapter, (0, 0))
            totals[o.chapter] = (score + o.points, most + o.max_points)
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "chapters": {c: {"score": s, "max_score": m} for c, (s, m) in self.per_chapter().items()},
            "exercises": [o.to_dict() for o in self.outcomes],
        }

    def __str__(self) -> str:
        lines = [f"{'chapter':<12} {'id':<4} {'points':>7}  {'status':<14} message"]
        for o in self.outcomes:
            first = o.message.splitlines()[0] if o.message else ""
            lines.append(f"{o.chapter:<12} {o.id:<4} {o.points:>3}/{o.max_points:<3}  {o.status.value:<14} {first}")
        for chapter, (score, most) in self.per_chapter().items():
            lines.append(f"{chapter:<12} total {score}/{most}")
        lines.append(f"Score: {self.score}/{self.max_score}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(o.id)}</td><td>{html.escape(o.title)}</td>"
            f"<td style='color:{_COLOURS[o.status]}'>{_ICONS[o.status]} {o.status.value}</td>"
            f"<td>{o.points}/{o.max_points}</td><td>{html.escape(o.message)}</td></tr>"
            for o in self.outcomes
        )
        return (
            "<table><tr><th>id</th><th>exercise</th><th>status</th><th>points</th><th>feedback</th></tr>"
            f"{rows}</table><b>Score: {self.score}/{self.max_score}</b>"
        )
