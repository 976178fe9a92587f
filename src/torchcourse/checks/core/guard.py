"""The guarded call: every call of the learner's code is bounded in time, captured and isolated.

:func:`call_answer` runs the learner's function once under a :class:`_Stopwatch` (SIGALRM in the
main thread on Unix, a watchdog thread elsewhere), with its printed output captured, the calls it
makes recorded (:mod:`.instructions`), global state compared and restored (:mod:`.state`), and
every exception but ``KeyboardInterrupt`` turned into a :class:`~.outcome.Mismatch`.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import io
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .compare import describe
from .instructions import _as_uses, _Patches, _Recorder
from .outcome import Mismatch, NotAttempted, StateChanged, TimedOut
from .state import _global_state, _restore, _state_changes, warm_up

if TYPE_CHECKING:
    from .exercise import Exercise

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _own(filename: str) -> bool:
    """Is this frame's file part of the check framework itself (never interrupted by the time limit)?"""
    return os.path.dirname(os.path.abspath(filename)) == _PACKAGE


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
    next. Nothing raises inside the check framework's own frames. The watchdog (Windows, other threads) can
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
        if self.armed and (frame is None or not _own(frame.f_code.co_filename)):
            self.fired = True
            self._trap(frame)
            raise TimeLimitExceeded

    def _trap(self, frame: Any) -> None:
        """Trace the learner's frames so that the next line run, even inside an ``except``, raises again."""
        if not self._traced:
            self._traced, self._saved_trace = True, sys.gettrace()

        def trace(f: Any, event: str, arg: Any) -> Any:
            if self.armed and event in ("line", "call") and not _own(f.f_code.co_filename):
                raise TimeLimitExceeded
            return trace

        while frame is not None and not _own(frame.f_code.co_filename):
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
        self.context: Callable[[], Any] | None = None  # entered around each call (the simulated GPU)
        self.simulation_off = False  # the simulated GPU timed out once: not again for this check

    def __getattr__(self, name: str) -> Any:
        return getattr(self.answer, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_answer(self.answer, *args, _guard=self, **kwargs)


_ACTIVE: list[_Guarded] = []


def last_calls() -> collections.Counter[Any]:
    """The calls the learner's code made in the case being checked so far (for ``properties``)."""
    return _ACTIVE[-1].calls if _ACTIVE else collections.Counter()


@contextlib.contextmanager
def _warnings_as_text(out: io.StringIO) -> Any:
    """A warning the learner's code raises is printed as ``Category: message``, never with a line of source
    (which would be a line of torch's or of the check's own code)."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *rest, **more: out.write(
            f"{category.__name__}: {str(message).splitlines()[0] if str(message) else ''}\n")
        yield


def _learner_frame(tb: Any) -> str:
    """`` (line N of name)`` for the last traceback frame outside torch, the standard library and this package."""
    found = ""
    lib = os.path.dirname(os.path.dirname(torch.__file__))
    own = os.path.dirname(os.path.dirname(_PACKAGE))  # the torchcourse package
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
    warm_up()
    before = _global_state()
    recorder = _Recorder()
    patches: _Patches | None = None
    printed = io.StringIO()
    stopwatch = _Stopwatch(limit)
    outcome: tuple[str, Any] = ("none", None)
    try:
        try:
            around = guard.context() if guard.context is not None else contextlib.nullcontext()
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), _warnings_as_text(printed), \
                    around:
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
    guard.calls.update(recorder.calls)  # the calls of every call in this case (a judge may call several times)
    guard.printed = (guard.printed + printed.getvalue())[-20_000:]
    kind, value = outcome
    who = "Your class" if isinstance(guard.answer, type) else "Your function"  # 03 q9 hands in a class
    if kind == "timeout":
        raise TimedOut(
            f"{who} did not return within {limit:g} s on a case of size {describe(args)}: "
            "look for an infinite loop, or work that grows too fast."
        ) from None
    if kind == "error":
        error = value
        name = type(error).__name__
        if isinstance(error, SystemExit):
            raised = Mismatch(
                f"{who} raised SystemExit{_learner_frame(error.__traceback__)}: sys.exit() and "
                "exit() end the whole program, where a function hands its answer back with return."
            )
        else:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raised = Mismatch(f"{who} raised {name}: {text}".rstrip(": ")
                              + _learner_frame(error.__traceback__) + ".")
        # for judges that accept a declared error (a parser that must refuse) or explain an exit
        raised.error, raised.printed = error, printed.getvalue()
        raise raised from None
    changes = _state_changes(before, after, global_rng, bool(exercise and exercise.reseeds))
    if changes:
        raise StateChanged(
            f"{who} changed global state that outlives it: " + "; ".join(changes) + ". A function "
            "must leave the session as it found it (a `with` block restores a mode when it ends). "
            "The check has put it back."
        )
    result = value
    guard.last_result = result
    if result is ...:
        raise NotAttempted
    inside = _holds_itself(result)
    if inside is not None:
        guard.last_result = None  # nothing can show or compare it: never shown as "you returned"
        raise Mismatch(f"{who} returned a {type(result).__name__} in which a {inside} holds itself: a value that "
                       "contains itself never ends, so it cannot be an answer.")
    return result


def _holds_itself(value: Any, open_: tuple[int, ...] = ()) -> str | None:
    """The type of a list, tuple or dict inside ``value`` that contains itself, or None (the walk follows only
    containers, as the comparison does; without this check the comparison would recurse forever)."""
    if not isinstance(value, (list, tuple, dict)) or len(open_) > 100:
        return None
    if id(value) in open_:
        return type(value).__name__
    inner = value.values() if isinstance(value, dict) else value
    for item in inner:
        found = _holds_itself(item, (*open_, id(value)))
        if found is not None:
            return found
    return None
