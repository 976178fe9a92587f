"""The judge of chapter 04's q10: an ``IterableDataset`` that shards its items across ``DataLoader`` workers.

:mod:`.data` declares the exercise; this module holds what judges it. ``_judge_stream`` builds the learner's
dataset over a hidden list of items and reads it through a loader with no worker (the main process, where
``get_worker_info()`` is None), one worker and two, and counts what arrives: every item exactly once, under each.
The dataset reaches the workers inside :class:`_Carrier` under this platform's start method (``_context``, as
q4's judge does): as it is under ``fork``, by value (cloudpickle) under ``spawn`` and ``forkserver``, where a class
defined in a notebook could not be imported. What the learner's ``__iter__`` raises in a worker comes back as an
item, so the worker never dies and the feedback names it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ._data_workers import _FRESH_WORKER_TIMEOUT, _WORKER_TIMEOUT, _by_value, _context, _first_line, _from_value
from .core import Case, Mismatch, NotAttempted, TimedOut, call_answer, describe
from .core import randint as _randint

__all__ = ["ShardedStream"]


class ShardedStream(IterableDataset):
    def __init__(self, items):
        self.items = list(items)

    def __iter__(self):
        info = get_worker_info()  # None in the main process: it reads everything
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(self.items[start::step])


def _stream_case(generator: torch.Generator, device: str, trial: int = 0) -> tuple[list[int]]:
    # What the statement allows: any list of items and 0, 1 or 2 workers. Trial 0: an odd number of items, which
    # two workers cannot split evenly (a share rounded down loses one); trial 1: a single item, fewer than the
    # workers, so one worker's share is empty.
    count = 1 if trial % 2 else 2 * _randint(generator, 3, 7) + 1
    return ((torch.randperm(1000, generator=generator)[:count] + 1).tolist(),)


class _Carrier(IterableDataset):
    """The learner's dataset on its way to a worker: yields ``(worker id, item)``, or ``("error", message)``."""

    def __init__(self, dataset: Any, method: str) -> None:
        self.dataset = dataset if method == "fork" else None
        self.payload = None if method == "fork" else _by_value(dataset)

    def __iter__(self) -> Any:
        dataset = self.dataset if self.payload is None else _from_value(self.payload)
        worker = get_worker_info().id
        try:
            items = list(iter(dataset))
        except Exception as error:  # noqa: BLE001 - reported through the stream: the worker must not die
            yield "error", f"Your __iter__ raised {type(error).__name__}: {_first_line(error)}"
            return
        for item in items:
            yield worker, item


def _plain(item: Any) -> Any:
    if isinstance(item, torch.Tensor) and item.dim() == 0:
        return item.item()
    try:
        hash(item)
    except TypeError:
        return repr(item)
    return item


def _read(dataset: Any, workers: int) -> list[Any]:
    if workers == 0:  # the main process: guarded, as every call of the learner's code
        return call_answer(lambda: list(iter(dataset)))
    method = _context()
    timeout = (_WORKER_TIMEOUT if method == "fork" else _FRESH_WORKER_TIMEOUT) * workers
    loader = DataLoader(_Carrier(dataset, method), batch_size=None, num_workers=workers,
                        timeout=timeout, multiprocessing_context=method,
                        generator=torch.Generator().manual_seed(0))  # the workers' seeds: not from the global RNG
    got = []
    try:
        for worker, item in loader:
            if worker == "error":
                raise Mismatch(f"{item} (inside a worker process)")
            got.append(item)
    except RuntimeError as error:
        if "timed out" not in str(error):
            raise
        raise TimedOut(f"Your __iter__ did not finish within {timeout:g} s inside a worker process: look for an "
                       "infinite loop.") from None
    return got


def _where(workers: int) -> str:
    return "With num_workers=0 (the main process, where get_worker_info() is None)" if workers == 0 else \
        f"With num_workers={workers}"


def _judge_counts(got: list[Any], items: list[Any], workers: int) -> None:
    counts, expected = Counter(map(_plain, got)), Counter(items)
    if counts == expected:
        return
    where = _where(workers)
    extra, missing = counts - expected, expected - counts
    if workers > 1 and all(counts[x] == workers * n for x, n in expected.items()) and not set(counts) - set(items):
        raise Mismatch(f"{where}, every item arrived {workers} times: each worker yielded the whole "
                       "list, and nothing split it between them.")
    if set(counts) - set(items):
        odd = next(x for x in got if _plain(x) not in expected)
        raise Mismatch(f"{where}, your dataset yielded {describe(odd)}, which is not one of the items.")
    said = []
    if missing:
        lost = sum(missing.values())
        said.append("the only item never arrived" if len(items) == 1 else
                    f"{lost} of the {len(items)} items never arrived")
    if extra:
        said.append(f"{sum(extra.values())} arrived more than once")
    raise Mismatch(f"{where}, {' and '.join(said)}: the workers' shares must cover every item, and "
                   "none twice.")


def _judge_stream(answer: Callable[..., Any], case: Case) -> None:
    (items,) = case
    dataset = call_answer(answer, list(items))
    if not isinstance(dataset, IterableDataset):
        raise Mismatch(f"Expected a torch.utils.data.IterableDataset, got {describe(dataset)}: a loader reads any "
                       "other Dataset by index.")
    for workers in (0, 1, 2):
        try:
            if workers == 0:
                call_answer(lambda: type(dataset).__iter__(dataset))  # the placeholder (return ...) is not attempted
            got = _read(dataset, workers)
        except (TimedOut, NotAttempted):
            raise
        except Mismatch as mismatch:
            raise Mismatch(f"{_where(workers)}: {mismatch}") from None
        except Exception as error:
            raise Mismatch(f"{_where(workers)}, the loader failed: {type(error).__name__}: "
                           f"{_first_line(error)}") from None
        _judge_counts(got, items, workers)
