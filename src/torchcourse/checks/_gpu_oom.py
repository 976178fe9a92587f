"""The out-of-memory retry of chapter 05's q10 (``largest_batch``), judged with simulated training steps.

:mod:`.gpu` declares the exercise; this module holds what judges it. A case's ``step`` is a :class:`_Step`: it runs
batches up to a hidden size and raises ``torch.OutOfMemoryError`` above it (raised by hand, so every machine has it),
or a real bug (a ``RuntimeError`` that is not out of memory) at some sizes. Each judged call gets a fresh copy that
records what it was asked to run (``calls``) and whether the last failed step's error was still alive when the next
try began (``held``: a retry inside the ``except`` block keeps the error's traceback, and with it the failed step's
frames and tensors). ``_judge_oom`` names the mistake from that record before it looks at the value returned.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import torch

from .core import Case, Mismatch, TimedOut, call_answer, describe, show
from .core import randint as _randint

__all__ = ["largest_batch"]

_MOST_CALLS = 64  # halving from any start the check uses needs at most 10 calls


class _Runaway(BaseException):  # noqa: N818 - not an error of the learner's step: the check's brake
    """Raised by a step called far more often than halving needs, so that a loop that never ends does end."""


# The step's errors: Python subclasses, with the names and bases of the errors a real step raises, so that the check
# can hold weak references to them (a built-in exception cannot be weakly referenced).
_OutOfMemory = type("OutOfMemoryError", (torch.OutOfMemoryError,), {"__module__": "torch"})
_Bug = type("RuntimeError", (RuntimeError,), {"__module__": "builtins"})
_BadBatch = type("ValueError", (ValueError,), {"__module__": "builtins"})


class _Step:
    """One training step that fits up to ``fits`` samples; above, ``torch.OutOfMemoryError``.

    ``bug_below``: at this size or less the step raises a RuntimeError that is not out of memory (a shape bug), which
    must reach the caller. ``calls`` lists every batch it was given; ``held`` the tries that began while the previous
    failed step's error was still alive: its traceback keeps that step's frames, and a real step's tensors with them.
    """

    def __init__(self, fits: int, bug_below: int = 0) -> None:
        self.fits, self.bug_below = fits, bug_below
        self.calls: list[Any] = []
        self.held: list[Any] = []
        self.errors: list[weakref.ref[BaseException]] = []
        self._last: weakref.ref[BaseException] | None = None

    def fresh(self) -> _Step:
        return _Step(self.fits, self.bug_below)

    def __repr__(self) -> str:
        if not self.fits:
            return "<step: out of memory at any size>"
        bug = f"; at {self.bug_below} or fewer, a RuntimeError that is not out of memory" if self.bug_below else ""
        return f"<step: out of memory above {self.fits} samples{bug}>"

    def _still_held(self) -> bool:
        if self._last is None or self._last() is None:
            return False
        gc.collect(1)  # a young reference cycle is not a reference: only what the caller still keeps counts (a full
        # collection would cost a third of a second a call)
        return self._last() is not None

    def __call__(self, batch: Any) -> None:
        if self._still_held():
            self.held.append(batch)
        if len(self.calls) >= _MOST_CALLS:  # the record stops growing: a bare `except:` may call on until the limit
            raise _Runaway(f"step was called more than {_MOST_CALLS} times")
        self.calls.append(batch)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1 or batch <= self.bug_below or \
                batch > self.fits:
            raise self._error(batch)  # never kept in a local here: the error, and its traceback, live only as the
            # caller keeps them

    def _error(self, batch: Any) -> BaseException:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            error: BaseException = _BadBatch(f"step got a batch of {describe(batch)}")
        elif batch <= self.bug_below:
            error = _Bug(f"mat1 and mat2 shapes cannot be multiplied ({batch}x7 and 8x16)")
        else:
            error = _OutOfMemory(f"CUDA out of memory. Tried to allocate {batch * 64} MiB. GPU 0 has a "
                                 "total capacity of 79.19 GiB of which 3.25 MiB is free.")
        self.errors.append(weakref.ref(error))  # weakly: a strong one would keep every failed frame alive
        self._last = self.errors[-1]
        return error


def _oom_case(generator: torch.Generator, device: str, trial: int = 0) -> tuple[_Step, int]:
    # What the statement allows: any start, powers of two or not (an odd start shows rounding); a step that fits at
    # start (one call), at some halving, at batch 1 only, or never; a step with a real bug. Trial 0: any size fits
    # somewhere below start; trial 1: only batch 1 fits; trial 2: a bug at the size that would fit.
    start = _randint(generator, 20, 400)
    if trial % 3 == 1:
        return _Step(fits=1), start
    fits = _randint(generator, 2, start)
    return _Step(fits=fits, bug_below=fits if trial % 3 == 2 else 0), start


def largest_batch(step: Callable[[int], Any], start: int) -> int:
    batch = start
    while True:
        try:
            step(batch)
            return batch
        except torch.OutOfMemoryError:
            if batch == 1:
                raise  # not even one sample fits: the caller must know
        batch //= 2  # outside the except block: the failed step's tensors are free before the next try


def _expected(step: _Step, start: int) -> tuple[list[int], int | None, str]:
    """The tries a correct answer makes, the size it returns (None when it raises), and what it raises."""
    tries, batch = [], start
    while True:
        tries.append(batch)
        if batch <= step.bug_below:
            return tries, None, "bug"
        if batch <= step.fits:
            return tries, batch, ""
        if batch == 1:
            return tries, None, "oom"
        batch //= 2


def _from(error: BaseException | None, errors: list[weakref.ref[BaseException]]) -> bool:
    """Is ``error`` one of the step's own errors, or raised while handling one (``raise ... from``, or inside
    ``except``)?"""
    seen = 0
    while error is not None and seen < 20:
        if any(error is e() for e in errors):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _judge_oom(answer: Callable[..., Any], case: Case) -> None:
    given, start = case
    step = given.fresh()
    tries, size, raises = _expected(step, start)
    error: BaseException | None = None
    foreign: Mismatch | None = None  # an error of the answer's own, not one the step raised
    try:
        result = call_answer(answer, step, start)
    except TimedOut:
        if len(step.calls) < _MOST_CALLS:
            raise
        error, result = _Runaway(), None  # an `except:` that caught the brake too, and went on
    except Mismatch as mismatch:
        error, result = getattr(mismatch, "error", None), None
        if error is None or not step.calls:
            raise
        if not _from(error, step.errors) and not isinstance(error, _Runaway):
            foreign = mismatch
    _judge_calls(step, start, tries, error)
    if raises == "bug":
        if not _from(error, step.errors[-1:]):
            raise Mismatch(f"step({tries[-1]}) raised a RuntimeError that is not out of memory (a bug in the step), "
                           "and your function went on as if it were: an error that is not out of memory must reach "
                           "the caller.")
        return
    if raises == "oom":
        if error is None:
            raise Mismatch(f"Not even a batch of 1 fits, and your function returned {show(result)}: the caller "
                           "cannot tell it from a batch that ran, and no step ran.")
        if not isinstance(error, torch.OutOfMemoryError):
            raise Mismatch(f"Not even a batch of 1 fits, and your function raised {type(error).__name__}: the "
                           "caller looks for torch.OutOfMemoryError, which says what went wrong.")
        return
    if foreign is not None:
        raise foreign
    if error is not None:
        raise Mismatch(f"step({step.calls[-1]}) ran out of memory and your function raised {type(error).__name__}, "
                       f"though a smaller batch fits.")
    if isinstance(result, bool) or not isinstance(result, int):
        raise Mismatch(f"Return the batch size that ran, as a Python int; got {describe(result)}.")
    if result != size:
        raise Mismatch(f"Your function returned {result}, but the step that ran was step({step.calls[-1]}): return "
                       "the size that ran, not the one before or after it.")


def _judge_calls(step: _Step, start: int, tries: list[int], error: BaseException | None) -> None:
    """Name what the sequence of tries did wrong, if anything."""
    calls = step.calls
    if not calls:
        raise Mismatch("Your function never called step: no batch was tried.")
    odd = next((b for b in calls if isinstance(b, bool) or not isinstance(b, int)), None)
    if odd is not None:
        raise Mismatch(f"You called step({odd!r}): a batch size is a whole number of samples (`/` "
                       "gives a float).")
    if isinstance(error, _Runaway) and len(set(calls[-8:])) == 1:
        raise Mismatch(f"Your function called step more than {len(calls)} times, with the same batch ({calls[-1]}) "
                       "again and again: nothing made it smaller after an out-of-memory error, so the loop would never "
                       "end.")
    if any(b < 1 for b in calls):
        raise Mismatch(f"You called step({min(calls)}): a batch of {min(calls)} samples trains on nothing. Halving "
                       "stops at 1.")
    if calls[0] != start:
        raise Mismatch(f"Your first try was step({calls[0]}), not step(start) with start={start}.")
    if step.held:
        raise Mismatch(f"Your function tried step({step.held[0]}) while the failed step before it was still held "
                       "in memory: the exception (and its traceback, which keeps the failed step's frames and their "
                       "tensors) was still alive when the next try began.")
    for i, (got, want) in enumerate(zip(calls, tries, strict=False)):
        if got != want and i:
            raise Mismatch(f"After step({calls[i - 1]}) ran out of memory your next try was step({got}): that is not "
                           f"half of {calls[i - 1]}, rounded down.")
    if len(calls) > len(tries):
        last = calls[len(tries) - 1]
        raise Mismatch(f"Your function called step again after step({last}) " + (
            "raised an error that is not out of memory: it is a bug, not a batch too large." if last <= step.bug_below
            else "ran: each call is a training step, so that batch trained twice."))
