"""The workloads that several timed lessons share: factories for ``tc.bench`` and ``tc.compare``.

A factory ``make(n, device)`` builds its inputs on ``device``, outside the timed region, and returns the
zero-argument function that the bench helper times: allocation and host-to-device copies are never part of a
timing. Lesson 05.6 teaches the pattern and shows this source; 05.8 and 05.9 time the very same functions, so a
table in one lesson measures what the same label measures in another. A factory used by one lesson alone stays in
that lesson. The route through the timing helper: these factories → ``bench.py`` (:func:`~torchcourse.bench.bench`,
presets, measuring) → ``benchresult.py`` (the table).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["make_add", "make_matmul", "make_sum"]


def make_matmul(n: int, device: str) -> Callable[[], torch.Tensor]:
    """An n x n float32 matmul: 2n³ FLOPs on 3n² numbers, compute-bound as n grows."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return lambda: a @ b


def make_add(n: int, device: str) -> Callable[[], torch.Tensor]:
    """An add of n float32 elements into a preallocated output: 12 bytes moved per FLOP, memory-bound."""
    a, b, out = torch.randn(n, device=device), torch.randn(n, device=device), torch.empty(n, device=device)
    return lambda: torch.add(a, b, out=out)  # preallocated: time the add, not the allocator


def make_sum(n: int, device: str) -> Callable[[], torch.Tensor]:
    """A sum of n float32 elements: 4 bytes read per FLOP, then a combining step across threads or blocks."""
    a = torch.randn(n, device=device)
    return lambda: a.sum()
