"""The timing function of chapter 05's q8 (``time_call``), judged on a simulated asynchronous device.

:mod:`.gpu` declares the exercise; this module holds what judges it. :class:`SimulatedDevice` queues work like a GPU
(a slow first run, an outlier every third run), ``_timing_case`` makes one, and ``_judge_timing`` checks the answer
synchronises, warms up and takes a median, re-timing under load (``_slow_under_load``) before it fails an answer.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from .core import (
    Case,
    Mismatch,
    call_answer,
    describe,
)
from .core import randint as _randint
from .core import uniform as _uniform


class SimulatedDevice:
    """An asynchronous device like a GPU: ``run()`` queues work and returns; ``sync()`` waits.

    The first run is slow (caches and autotuning warm up), and every third run is an outlier
    (another process took the device), so only a warmed-up, synchronised median gets it right.
    """

    def __init__(
        self, seconds: float, *, warmup_seconds: float = 0.04, outlier_seconds: float = 0.06
    ) -> None:
        self.seconds, self.warmup_seconds, self.outlier_seconds = (
            seconds,
            warmup_seconds,
            outlier_seconds,
        )
        self.events: list[str] = []
        self.runs = 0
        self._busy_until = 0.0

    def run(self) -> None:
        """Queue one call of the workload and return immediately (a kernel launch)."""
        if self.runs == 0:
            cost = self.warmup_seconds
        else:
            cost = self.seconds + (self.outlier_seconds if self.runs % 3 == 2 else 0.0)
        self._busy_until = max(time.perf_counter(), self._busy_until) + cost
        self.runs += 1
        self.events.append("run")

    def pending(self) -> bool:
        """Is queued work still running (``not torch.cuda.Event.query()``)?"""
        return self._busy_until > time.perf_counter()

    def sync(self) -> None:
        """Wait until every queued call has finished (torch.cuda.synchronize)."""
        wait = self._busy_until - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.events.append("sync")


def _timing_case(
    generator: torch.Generator, device: str
) -> tuple[Callable[[], None], Callable[[], None], int]:
    simulated = SimulatedDevice(_uniform(generator, 0.008, 0.012))
    return simulated.run, simulated.sync, _randint(generator, 5, 8)


def time_call(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up: the first calls pay for caches, allocation and autotuning
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()  # wait for the work itself, not just its launch
        times.append(time.perf_counter() - start)
    return statistics.median(times)  # robust to the odd slow run


def _judge_timing(answer: Callable[..., Any], case: Case) -> None:
    fn, sync, repeats = copy.deepcopy(case)
    device: SimulatedDevice = fn.__self__
    result = call_answer(answer, fn, sync, repeats)
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise Mismatch(
            f"Return the median time in seconds as a Python float; got {describe(result)}."
        )
    if not math.isfinite(result) or result <= 0:
        raise Mismatch(f"A time must be positive and finite; got {result!r}.")
    if device.runs < repeats:
        raise Mismatch(f"You called fn() {device.runs} times, fewer than `repeats` ({repeats}).")
    if device.runs == repeats:
        raise Mismatch(
            "No warm-up: every call was timed, including the first, which pays for caches and autotuning."
        )
    first_timed = [i for i, e in enumerate(device.events) if e == "run"][device.runs - repeats]
    if "sync" not in device.events[:first_timed]:
        raise Mismatch(
            "You start timing while the warm-up work may still be queued: nothing waits for it to finish before the "
            "first timed call."
        )
    true = device.seconds
    if result < 0.6 * true:
        raise Mismatch(
            "Your time is far shorter than the work takes: you measured only the launch. The device runs "
            "asynchronously, so the clock was read before the work had finished."
        )
    if result > 2.2 * true and _slow_under_load(answer, case, result, true):
        raise Mismatch(
            "Your time is pulled up by a few slow runs (or includes the warm-up): it is not the median of the "
            "per-call times."
        )


def _slow_under_load(answer: Callable[..., Any], case: Case, result: float, true: float) -> bool:
    """Is a time that looks too long still too long when judged against the reference, timed now under the
    same load? A loaded machine oversleeps every wait: the reference and a second try of the answer are
    timed again, and only a time above 2.2 times the device's and 1.6 times the reference's fails (the
    mean of a few runs with outliers stays far above the median however loaded the machine is)."""
    reference = time_call(*copy.deepcopy(case))
    again = call_answer(answer, *copy.deepcopy(case))
    best = min(result, again) if isinstance(again, (int, float)) and not isinstance(again, bool) else result
    return best > 2.2 * true and best > 1.6 * reference
