"""The judge of chapter 04's q4 (a ``worker_init_fn``), which runs the learner's function in real DataLoader workers.

:mod:`.data` declares the exercise; this module holds what judges it. ``_judge_worker_init`` loads
:class:`AugmentedNoise` (a dataset whose own generator repeats in every worker unless reseeded) through a
loader with two workers, three times (two seeds), via ``_run_workers``. The learner's function reaches each
worker inside :class:`_WorkerInit`, under this platform's start method (``_context``): as it is under ``fork``,
by value (cloudpickle) under ``spawn`` and ``forkserver``, where a function defined in a notebook could not be
imported. What it prints and raises comes back with the samples.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .core import Case, Mismatch, NotAttempted, TimedOut, _Guarded, call_answer, time_scale
from .core import randint as _randint

__all__ = ["AugmentedNoise", "seed_worker"]

_WORKER_TIMEOUT = 20.0  # seconds a loader waits for a worker (its start and the worker_init_fn)
_FRESH_WORKER_TIMEOUT = 60.0  # the same where a worker is a fresh interpreter (spawn): it imports torch first


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class AugmentedNoise(Dataset):
    """A dataset that draws its random augmentation from its own ``rng`` (made in ``__init__``)."""

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self.rng = np.random.default_rng(0)
        self.status = ""
        self.printed = ""

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, str]:
        return torch.tensor(self.rng.random(), dtype=torch.float64), self.status, self.printed


def seed_worker(worker_id):
    info = get_worker_info()
    if info is None:  # not in a worker process: nothing to seed
        return
    info.dataset.rng = np.random.default_rng(info.seed)


def _loader_seeds(generator: torch.Generator, device: str) -> tuple[int]:
    return (_randint(generator, 0, 2**31),)


def _context() -> str:
    # The platform's own start method (TORCHCOURSE_START_METHOD forces another): fork on Linux up to Python 3.13,
    # spawn on macOS and Windows, forkserver on Linux from 3.14. The check must work under each.
    return multiprocessing.get_start_method()


class _WorkerInit:
    """The worker_init_fn the check hands the loader: the learner's function, run guarded inside each worker.

    The function runs guarded as everywhere (time limit, global state, captured output), except that it may reseed
    the worker's generators (q4 declares reseeds=True). What it prints and raises comes back with the samples; the
    loader's timeout is the backstop. Under ``fork`` a worker is a copy of this process and finds the guarded
    function as it is. Under ``spawn`` and ``forkserver`` a worker is a fresh interpreter that gets it pickled, and
    a function defined in a notebook lives in ``__main__``, which a fresh interpreter cannot import: it travels by
    value, with cloudpickle (its code and the globals it uses), and is guarded again there under this exercise.
    """

    def __init__(self, answer: Callable[..., Any], method: str) -> None:
        self.guarded = answer if method == "fork" else None
        self.payload = None if method == "fork" else _by_value(getattr(answer, "answer", answer))

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        answer: Any = self.guarded
        try:
            if answer is None:
                from .data import q4  # in a fresh worker: the exercise's own limits and allowances

                answer = _Guarded(_from_value(self.payload), exercise=q4)
            call_answer(answer, worker_id)
        except NotAttempted:
            info.dataset.status = "placeholder"
        except Mismatch as mismatch:  # a string crosses the process boundary; its kind is read back below
            info.dataset.status = str(mismatch).rstrip(".")
        except Exception as error:  # noqa: BLE001 - reported through the samples: the worker must not die
            info.dataset.status = f"Your function raised {type(error).__name__}: {_first_line(error)}"
        info.dataset.printed = getattr(answer, "printed", "")[-2000:]


def _by_value(function: Callable[..., Any]) -> bytes:
    import cloudpickle  # scikit-learn's joblib needs it too

    return cloudpickle.dumps(function)


def _from_value(payload: bytes | None) -> Callable[..., Any]:
    import pickle

    return pickle.loads(payload)  # noqa: S301 - this process's own bytes, pickled just before


def _run_workers(answer: Callable[..., Any], seed: int) -> torch.Tensor:
    method = _context()
    init = _WorkerInit(answer, method)
    timeout = (_WORKER_TIMEOUT if method == "fork" else _FRESH_WORKER_TIMEOUT) * time_scale()
    loader = DataLoader(AugmentedNoise(4), batch_size=1, num_workers=2, worker_init_fn=init,
                        timeout=timeout,
                        generator=torch.Generator().manual_seed(seed), multiprocessing_context=method)
    values, statuses, printed = [], set(), []
    try:
        for value, status, said in loader:
            values.append(value)
            statuses.update(status)
            printed.extend(p for p in said if p and p not in printed)
    except RuntimeError as error:
        if "timed out" not in str(error):
            raise
        raise TimedOut(
            f"Your function did not return within {timeout:g} s inside a worker "
            "process: look for an infinite loop."
        ) from None
    finally:
        if printed and hasattr(answer, "printed"):  # the check's guard shows it with the verdict
            answer.printed += "".join(printed)
    statuses.discard("")
    if "placeholder" in statuses:
        raise NotAttempted
    if statuses:
        first = sorted(statuses)[0]
        kind = TimedOut if first.startswith("Your function did not return within") else Mismatch
        raise kind(f"{first} (inside a worker process).")
    return torch.cat(values)


def _judge_worker_init(answer: Callable[..., Any], case: Case) -> None:
    (seed,) = case
    try:
        run = _run_workers(answer, seed)
        worker0, worker1 = run[[0, 2]], run[[1, 3]]  # batch i comes from worker i % 2
        if torch.equal(worker0, worker1):
            raise Mismatch(
                "Both workers produced the same numbers: each worker's copy of the dataset has the same generator, "
                "in the same state."
            )
        if not torch.equal(run, _run_workers(answer, seed)):
            raise Mismatch(
                "Two runs with the same loader seed gave different numbers: your workers' seeds do not follow from "
                "the loader's seed (the time, or an unseeded source?)."
            )
        if torch.equal(run, _run_workers(answer, seed + 1)):
            raise Mismatch(
                "The numbers do not change with the loader's seed: seeding from the worker id alone repeats every "
                "epoch and every run."
            )
    except (Mismatch, NotAttempted):
        raise
    except Exception as error:
        raise Mismatch(
            f"The loader failed with your worker_init_fn: {type(error).__name__}: {_first_line(error)}"
        ) from None
