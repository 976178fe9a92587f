"""Fewer, bigger calls: chapter 05's q11 (``row_norms_batched``), judged by the operators an answer runs.

:mod:`.gpu` declares the exercise; this module holds what judges it. The answer's values are compared with the
reference's, as for any exercise; then the ATen operators it runs are counted (a ``TorchDispatchMode``, as lesson
05.11's ``OpLog`` counts them) on the case's rows and on more rows. A Python loop over the rows runs one call or more
per row, so its count grows; the batched answer's does not. Views (``view``, ``unsqueeze``, ``select``...) compute
nothing and launch no kernel: they are not counted, so ``torch.vstack`` (one ``unsqueeze`` per row) passes.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .core import Case, Mismatch, Uses, call_answer, clone_case, compare
from .core import randint as _randint
from .core.guard import _Guarded
from .core.inputs import _input_changes, _input_state, _other_changes

__all__ = ["row_norms_batched"]

_SCALAR = "aten._local_scalar_dense"  # what .item(), float(), int() and a tensor in an `if` run


def row_norms_batched(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack(rows), dim=1)  # one (k, n) tensor, one reduction along each row


def row_norms_loop(rows: list[torch.Tensor]) -> torch.Tensor:
    """The statement's loop: one small call per row (three operators each), then one stack."""
    return torch.stack([torch.sqrt((row * row).sum()) for row in rows])


def _rows(generator: torch.Generator, device: str, count: int, length: int, dtype: torch.dtype) -> list[torch.Tensor]:
    scale = torch.rand(count, 1, generator=generator, dtype=torch.float64) * 4 + 0.1  # rows of different sizes
    data = (torch.randn(count, length, generator=generator, dtype=torch.float64) * scale).to(dtype)
    return [row.clone().to(device) for row in data]  # separate tensors, as a loop would hand them over


def _rows_case(generator: torch.Generator, device: str, trial: int = 0) -> tuple[list[torch.Tensor]]:
    # What the statement allows: any number of rows (1 or more), any length (1 or more), float32 or float64.
    dtype = (torch.float32, torch.float64)[trial % 2]
    return (_rows(generator, device, _randint(generator, 2, 40), _randint(generator, 1, 65), dtype),)


def _fixed(count: int, length: int, dtype: torch.dtype, seed: int) -> Callable[[str], Case]:
    """A declared case: ``count`` rows of ``length`` values, built on the device being checked."""
    return lambda device: (_rows(torch.Generator().manual_seed(seed), device, count, length, dtype),)


_NORM_CASES = [_fixed(1, 1, torch.float32, 1), _fixed(1, 50, torch.float64, 2), _fixed(300, 3, torch.float32, 3),
               _fixed(17, 1, torch.float64, 4)]

_NORM_FORBIDS = [Uses("torch.Tensor.item", "torch.Tensor.tolist", "torch.Tensor.numpy",
                      says="stay in torch: no .item(), .tolist() or NumPy")]

_NORM_MISCONCEPTIONS = [
    (lambda rows: torch.linalg.vector_norm(torch.stack(rows), dim=0),
     "One norm per position, across the rows: the reduction ran over dim 0 (the rows) instead of along each row."),
    (lambda rows: torch.stack(rows).pow(2).sum(dim=1),
     "These are the sums of the squares: the norm is their square root."),
]


class _OpCount(TorchDispatchMode):
    """Counts the ATen operators that reach the dispatcher while ``on`` (views excepted): the learner's call only,
    not the check's own bookkeeping around it."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if self.on and not getattr(func, "is_view", False):
            self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _counted(answer: Callable[..., Any], rows: list[torch.Tensor]) -> tuple[Any, collections.Counter[str]]:
    """Call the answer, guarded as every call is, and count the operators it runs."""
    guard = answer if isinstance(answer, _Guarded) else None
    raw = guard.answer if guard is not None else answer
    log = _OpCount()

    def counting(*args: Any) -> Any:
        log.on = True
        try:
            return raw(*args)
        finally:
            log.on = False

    depth = torch._C._len_torch_dispatch_stack()
    try:
        with log:  # entered here, outside the time limit: it is always left, even when the answer is stopped
            result = call_answer(counting, rows, _guard=guard)
    finally:
        log.on = False
        _leave_modes(depth)
    return result, log.ops


def _leave_modes(depth: int) -> None:
    """Pop the dispatch modes left above ``depth`` (one the answer entered and never left): the session as found."""
    from torch.utils._python_dispatch import _pop_mode

    while torch._C._len_torch_dispatch_stack() > depth:
        try:
            _pop_mode()
        except Exception:  # noqa: BLE001 - nothing more can be popped
            break


def _more_rows(rows: list[torch.Tensor]) -> list[torch.Tensor]:
    """Twice the rows and 64 more (a loop over chunks of up to that many rows grows too), as fresh tensors."""
    return [rows[i % len(rows)].clone() for i in range(2 * len(rows) + 64)]


def _judge_norms(answer: Callable[..., Any], case: Case) -> None:
    (given,) = case
    learner = clone_case(case)
    before = _input_state(learner)
    result, small = _counted(answer, learner[0])
    after = _input_state(learner)
    guard = answer if isinstance(answer, _Guarded) else None
    more = _more_rows(given)
    _, large = _counted(answer, more)
    if guard is not None:
        guard.last_result = result  # the feedback shows what the case's own call returned
    _judge_growth(small, large, len(given), len(more))
    expected = row_norms_batched(clone_case(case)[0])
    if isinstance(result, torch.Tensor) and result.shape == expected.shape and result.dtype != expected.dtype:
        raise Mismatch(f"Your result is {result.dtype} for rows of {expected.dtype}: the norms must keep the rows' "
                       "dtype. A tensor created without dtype= gets the default one (float32), and a conversion "
                       "loses the precision a float64 caller asked for.")
    compare(result, expected, "your result")
    problem = (_input_changes(case, learner, before, after, ("rows",), False)
               or _other_changes(before, after, before, before, ("rows",)))
    if problem:
        raise Mismatch(problem)


def _judge_growth(small: collections.Counter[str], large: collections.Counter[str], k: int, n: int) -> None:
    """Reject a number of operators that grows with the number of rows, naming the operators that grew."""
    if sum(large.values()) <= sum(small.values()):
        return
    grew = sorted((op for op in large if large[op] > small[op]), key=lambda op: small[op] - large[op])
    which = ", ".join(f"{op.removeprefix('aten.')} {small[op]} → {large[op]} times" for op in grew[:3])
    counts = (f"on {k} row{'s' if k > 1 else ''} your function ran {sum(small.values())} tensor operations, on {n} "
              f"rows {sum(large.values())} ({which})")
    if _SCALAR in grew:
        raise Mismatch(f"Your function reads a value out of a tensor into Python once per row (.item(), float(), "
                       f"int(), or a tensor in an `if`): {counts}. Each read leaves torch, and on a GPU waits for the "
                       "device to finish; the loop over the rows pays the overhead of its calls once per row.")
    raise Mismatch(f"The number of tensor operations grows with the number of rows: {counts}. That is a loop over "
                   "the rows (or over groups of rows): its calls grow with their number, and each pays the same "
                   "fixed overhead (lesson 05.8, Fewer, bigger calls). The statement asks for a number of calls that "
                   "does not depend on how many rows there are.")
