"""The all-reduce of chapter 05's q7 (``average_gradients``), judged in a simulated world.

:mod:`.gpu` declares the exercise; this module holds what judges it. ``_simulated_world`` makes
``torch.distributed`` look like 2 to 5 ranks (``_world_of`` reads the size off the case) in a real one-process gloo
group (``_ensure_group``); ``_judge_allreduce`` runs the answer there and names the usual mistakes
(``_allreduce_mistakes``: no division, the wrong divisor, a copy instead of the tensors in place).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

from .core import (
    Case,
    Mismatch,
    call_answer,
    clone_case,
    compare,
    same_storage,
)
from .core import randint as _randint


def _ensure_group() -> None:
    """A real process group of one (gloo, in this process), so dist calls work outside the check "
    "too."""
    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def _world_of(case: Case) -> int:
    """The size of a case's simulated world, 2 to 5 ranks (read off the case, so that it varies by trial)."""
    return 2 + case[0][0].shape[1] % 4


@contextlib.contextmanager
def _simulated_world(peers: int) -> Iterator[None]:
    """Make ``torch.distributed`` look like ``peers`` ranks; rank r holds (r+1) x rank 0's values.

    Scaling is linear, so dividing before or after the reduction, or bucketing tensors, all give
    what a real job would: the average (peers + 1) / 2 times rank 0's gradient. An asynchronous
    all_reduce (``async_op=True``) applies only when its work handle's ``wait()`` is called.
    """
    saved = {name: getattr(dist, name) for name in ("all_reduce", "get_world_size", "get_rank")}

    def all_reduce(
        tensor: torch.Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None, async_op: bool = False
    ) -> Any:
        contributions = torch.stack([tensor.detach() * (r + 1) for r in range(peers)])
        if op == dist.ReduceOp.SUM:
            reduced = contributions.sum(0)
        elif op == dist.ReduceOp.AVG:
            reduced = contributions.mean(0)
        elif op == dist.ReduceOp.MAX:
            reduced = contributions.amax(0)
        elif op == dist.ReduceOp.MIN:
            reduced = contributions.amin(0)
        elif op == dist.ReduceOp.PRODUCT:
            reduced = contributions.prod(0)
        else:
            raise ValueError(f"unsupported reduce op {op}")

        def apply() -> None:
            with torch.no_grad():
                tensor.copy_(reduced)

        if async_op:
            return _PendingWork(apply)
        apply()
        return None

    dist.all_reduce = all_reduce
    dist.get_world_size = lambda group=None: peers
    dist.get_rank = lambda group=None: 0
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(dist, name, value)


class _PendingWork:
    """What all_reduce(..., async_op=True) returns: the result lands in the tensor on wait()."""

    def __init__(self, apply: Callable[[], None]) -> None:
        self._apply: Callable[[], None] | None = apply

    def wait(self, timeout: Any = None) -> bool:
        if self._apply is not None:
            self._apply, apply = None, self._apply
            apply()
        return True

    def is_completed(self) -> bool:
        return self._apply is None


def _grads(generator: torch.Generator, device: str) -> tuple[list[torch.Tensor]]:
    _ensure_group()
    n_out, n_in = _randint(generator, 2, 6), _randint(generator, 2, 6)
    return (
        [
            torch.randn(n_out, n_in, generator=generator).to(device),
            torch.randn(n_out, generator=generator).to(device),
        ],
    )


def average_gradients(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    world = dist.get_world_size()
    for grad in grads:
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # SUM works on every backend
        grad /= world
    return grads


def _judge_allreduce(answer: Callable[..., Any], case: Case) -> None:
    peers = _world_of(case)
    learner, reference = clone_case(case), clone_case(case)
    with _simulated_world(peers):
        result = call_answer(answer, *learner)
    with _simulated_world(peers):
        expected = average_gradients(*reference)
    try:
        compare(result, expected, "your gradients")
    except Mismatch as mismatch:
        if isinstance(result, (list, tuple)) and len(result) == len(expected):
            for got, local, want in zip(result, case[0], expected, strict=False):
                if (
                    isinstance(got, torch.Tensor)
                    and got.layout == torch.strided
                    and got.shape == want.shape
                    and got.device == want.device
                    and got.dtype == want.dtype
                ):
                    for factor, feedback in _allreduce_mistakes(peers):
                        if torch.allclose(got.detach(), local * factor, atol=1e-5):
                            raise Mismatch(feedback) from None
                    break
        raise mismatch from None
    for i, (got, given) in enumerate(zip(result, learner[0], strict=True)):
        if not same_storage(got, given):
            raise Mismatch(
                f"The values are right, but gradient {i} is a new tensor: the optimizer reads "
                "p.grad, and it still holds the old values (all_reduce works in place)."
            )


def _allreduce_mistakes(peers: int) -> tuple[tuple[float, str], ...]:
    total = peers * (peers + 1) / 2
    return (
        (1.0, "Your gradients are unchanged: each rank still has only its own, because the asynchronous all_reduce "
              "had not landed (it lands at its handle's wait())."),
        (1 / peers, "Your gradients are your own divided by the world size: the asynchronous all_reduce had not "
                    "landed (it lands at its handle's wait())."),
        (total, "Your gradients are the sum over the ranks, not their average."),
        (total / 3, "Your gradients are divided by 3 whatever the world size: the check's worlds have "
                    "other sizes too."),
        (total / peers**2, "You divided twice (or by the world size squared)."),
    )
