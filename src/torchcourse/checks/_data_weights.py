"""The hidden cases and the judge of chapter 04's q3 (weights for a balanced ``WeightedRandomSampler``).

:mod:`.data` declares the exercise; this module holds what builds its cases and judges them. The labels
span what the statement allows, not only the convenient ``0..K-1`` with every class present: a class id
below the largest with no sample (in the middle, or class 0), a class of a single sample, two classes only,
always unbalanced and shuffled. The judge asks what the sampler needs: each class present gets the same
total weight, and the samples of a class the same weight. An answer that is right where the class ids have
no gap but wrong where one is missing is told that the missing class is what it trips on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .core import Case, Mismatch, TimedOut, call_answer, describe
from .core import randint as _randint

__all__ = ["balanced_weights"]

# what each random trial holds besides unbalanced classes (trial % 4): the statement allows each of them
_KINDS = ("a class id in the middle with no sample", "no sample of class 0", "a class of a single sample",
          "two classes only, one of a single sample")


def _unbalanced_labels(generator: torch.Generator, device: str, trial: int = 0) -> tuple[torch.Tensor]:
    kind = trial % len(_KINDS)
    classes = 2 if kind == 3 else _randint(generator, 4, 7)
    counts = [_randint(generator, 2, 12) for _ in range(classes)]
    if kind == 0:
        counts[_randint(generator, 1, classes - 1)] = 0  # a gap below the largest class id
    elif kind == 1:
        counts[0] = 0
    present = [c for c, n in enumerate(counts) if n]
    big = _randint(generator, 0, len(present))
    counts[present[big]] = max(counts) + 5  # always unbalanced, and the large class is not always class 0
    if kind >= 2:
        counts[present[(big + _randint(generator, 1, len(present))) % len(present)]] = 1
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return (labels[torch.randperm(len(labels), generator=generator)].to(device),)


#: fixed: two classes, ids 1 and 3 (0 and 2 have no sample), one of them a single sample
_CASES = [(torch.tensor([3, 3, 1, 3, 3, 3]),)]


def balanced_weights(labels):
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


def _absent(labels: torch.Tensor) -> list[int]:
    """The class ids from 0 to the largest label that no sample has."""
    return torch.nonzero(torch.bincount(labels.cpu()) == 0).flatten().tolist()


def _judge_weights(answer: Callable[..., Any], case: Case) -> None:
    (labels,) = case
    try:
        _check_weights(answer, labels)
    except TimedOut:
        raise
    except Mismatch as mismatch:
        absent = _absent(labels)
        if not absent:
            raise
        result = getattr(answer, "last_result", None)
        if not _right_without_gaps(answer, labels):
            raise
        raise Mismatch(_gap_feedback(mismatch, absent, result)) from None


def _right_without_gaps(answer: Callable[..., Any], labels: torch.Tensor) -> bool:
    """Does the answer pass on the same labels with the class ids closed up to 0..K-1 (the order kept)?"""
    saved = getattr(answer, "last_result", None), getattr(answer, "printed", "")
    closed = torch.unique(labels, return_inverse=True)[1]
    try:
        _check_weights(answer, closed)
    except Mismatch:
        return False
    finally:
        if hasattr(answer, "last_result"):  # the feedback shows what it did on the case that failed
            answer.last_result, answer.printed = saved
    return True


def _gap_feedback(mismatch: Mismatch, absent: list[int], result: Any) -> str:
    """What goes wrong once a class id has no sample: a count of 0 divided into, or counts that shifted."""
    which = (f"class {absent[0]} has" if len(absent) == 1
             else f"classes {', '.join(map(str, absent[:-1]))} and {absent[-1]} have")
    said = str(mismatch) if str(mismatch).endswith(".") else f"{mismatch}."
    head = f"{said} It is right where the labels use every class id from 0 to the largest, but here {which} no sample"
    weights = result.detach().double() if isinstance(result, torch.Tensor) and result.is_floating_point() else None
    divided = isinstance(getattr(mismatch, "error", None), ZeroDivisionError) or (
        weights is not None and (not bool(torch.isfinite(weights).all()) or not bool(weights.any())))
    if divided:
        return f"{head}: its count is 0, and a division by that count reaches the weights."
    return f"{head}, and a count per class present then no longer lines up with the class ids."


def _check_weights(answer: Callable[..., Any], labels: torch.Tensor) -> None:
    weights = call_answer(answer, labels.clone())
    if not isinstance(weights, torch.Tensor):
        raise Mismatch(f"Expected a tensor of weights, one per sample; got {describe(weights)}.")
    if weights.shape != labels.shape:
        raise Mismatch(
            f"Expected one weight per sample, shape {tuple(labels.shape)}; got {tuple(weights.shape)}. "
            "A weight per class is not what WeightedRandomSampler takes."
        )
    if not weights.is_floating_point():
        raise Mismatch(f"Weights must be floating point, got {weights.dtype}: 1 / count in integers is 0.")
    if weights.device != labels.device:
        raise Mismatch(f"Your weights are on device {weights.device}; the labels were on {labels.device}.")
    w, cpu = weights.detach().double().cpu(), labels.cpu()
    if not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
        raise Mismatch("Every weight must be a positive number (no NaN, no infinity, no zero, no negative).")
    w = w / w.sum()
    rtol = max(1e-5, 8 * torch.finfo(weights.dtype).eps)  # half-precision weights are rounded coarsely
    counts = torch.bincount(cpu)
    present = counts > 0  # a class id with no sample draws nothing, whatever the weights: only these count
    shares = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, cpu, w)[present]
    if not torch.allclose(shares, torch.full_like(shares, 1 / len(shares)), rtol=rtol, atol=0):
        if torch.allclose(w, torch.full_like(w, 1 / len(w))):
            raise Mismatch("All your weights are equal: sampling with them keeps the classes as unbalanced "
                           "as they are.")
        raise Mismatch(
            "With your weights the classes are not drawn equally often: each class's weights must add up to the "
            "same total."
        )
    if not torch.allclose(w, 1 / (len(shares) * counts[cpu].double()), rtol=rtol, atol=0):
        raise Mismatch("Each class is drawn equally often, but not the samples within a class: the samples of "
                       "one class must all have the same weight.")
