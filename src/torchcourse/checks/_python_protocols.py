"""Appendix 00's q7-q9, judged (declared in :mod:`.python`): closures built in a loop (q7, 00.5), a decorator
that restores what it changes (q8, 00.5) and a lazy generator (q9, 00.6).

Each judge calls the learner's code only through ``call_answer`` (time limit, captured output, global state
compared and restored), the functions and generators it returns included, so an endless loop in a returned
closure or generator is stopped like one in the answer itself.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .core import Case, Mismatch, call_answer, describe


def _shown(answer: Any, value: Any) -> None:
    """What the feedback shows as returned: not the judge's own probe (``None`` shows nothing)."""
    if hasattr(answer, "last_result"):
        answer.last_result = value


# --- q7 · 00.5 one warm-up factor per parameter group: closures made in a loop ------------------------

_Q7_CASES: list[list[int]] = [
    [2, 5],  # two groups: the statement's shape
    [1, 4, 3],  # a length of 1 (full rate from epoch 0), not sorted
    [6],  # one group alone
    [3, 3, 7, 2],  # a length twice
    [5, 1],  # the last length is the shortest
    [4, 8, 2, 6, 3],
]


def _warmup_case(generator: torch.Generator, device: str, trial: int) -> Case:
    return (list(_Q7_CASES[trial]),)


def warmup_factors(warmups: list[int]) -> list[Callable[[int], float]]:
    def factor_for(length: int) -> Callable[[int], float]:
        return lambda epoch: min(1.0, (epoch + 1) / length)

    return [factor_for(length) for length in warmups]


def _factor(length: int, epoch: int) -> float:
    return min(1.0, (epoch + 1) / length)


def _judge_warmups(answer: Callable[..., Any], case: Case) -> None:
    (warmups,) = case
    given = list(warmups)
    result = call_answer(answer, given)
    if given != warmups:
        raise Mismatch("Your function changed the list `warmups` it was given.")
    if not isinstance(result, list):
        raise Mismatch(f"Expected a list of functions (LambdaLR takes one per group in a list), got "
                       f"{describe(result)}.")
    if len(result) != len(warmups):
        raise Mismatch(f"Expected one function per warm-up length ({len(warmups)}), got {len(result)}.")
    if not all(callable(f) for f in result):
        raise Mismatch("Every item of the list must be a function of the epoch; one of yours is "
                       f"{describe(next(f for f in result if not callable(f)))}.")
    given[:] = [length + 10 for length in warmups]  # the caller reuses its list: the functions must not notice
    epochs = range(max(warmups) + 3)
    values = call_answer(lambda: [[f(epoch) for epoch in epochs] for f in result])
    _shown(answer, None)
    for i, row in enumerate(values):
        for epoch, value in zip(epochs, row, strict=True):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Mismatch(f"Function {i} returned {describe(value)} at epoch {epoch}: LambdaLR multiplies the "
                               "base rate by a Python number.")

    def matches(lengths: list[int]) -> bool:
        return all(math.isclose(v, _factor(length, e), rel_tol=1e-9) for row, length in zip(values, lengths,
                   strict=True) for e, v in zip(epochs, row, strict=True))

    if matches(warmups):
        return
    if len(set(warmups)) > 1 and matches([warmups[-1]] * len(warmups)):
        raise Mismatch("Every function uses the last warm-up length of the list: a function made in a loop looks "
                       "the loop variable up when it is called, after the loop has ended.")
    if matches(given):
        raise Mismatch("Your functions read the list `warmups` when they are called: after the caller changed the "
                       "list, they used the new lengths. Each must keep the length it was made with.")
    for i, (row, length) in enumerate(zip(values, warmups, strict=True)):
        for epoch, value in zip(epochs, row, strict=True):
            if not math.isclose(value, _factor(length, epoch), rel_tol=1e-9):
                raise Mismatch(f"Function {i} (a warm-up of {length} epochs) returned {value!r} at epoch {epoch}, "
                               "which is not right: check the factor during and after the warm-up.")


# --- q8 · 00.5 a decorator that evaluates: eval mode and no graph, both restored ------------------------

# (the training flags of the model's modules, in model.modules() order; grad mode before; fn raises)
# model.modules(): the model, its Linear, Dropout, and its head (a Sequential of a Linear and a BatchNorm1d)
_FLAGS = {"all train": (True,) * 6, "all eval": (False,) * 6, "dropout in eval": (True, True, False, True, True, True),
          "top in eval, head in train": (False, False, False, True, True, True)}
_Q8_CASES: list[tuple[str, bool, bool]] = [
    ("all train", True, False),
    ("all train", True, True),  # fn raises: the error reaches the caller, and everything is restored
    ("dropout in eval", False, False),  # grad already off before the call: it stays off
    ("top in eval, head in train", True, False),  # model.train(was) would overwrite the head's flag
    ("dropout in eval", True, True),
    ("all eval", False, True),
]


class _Boom(Exception):  # noqa: N818 - the error the decorated function raises in the raising cases
    """The error fn raises on purpose."""


class _Fn:
    """The function a case decorates: it runs its own model on a fixed batch, scaled, and records what it saw
    (grad mode, training flags, the scale it received); in the raising cases it raises instead. It carries a
    name and a docstring, as a function does, for the decorator to copy."""

    def __init__(self, pattern: str, grad_before: bool, raises: bool) -> None:
        self.__name__ = "predict"
        self.pattern, self.grad_before, self.raises = pattern, grad_before, raises
        self.flags = _FLAGS[pattern]
        self.model = _model(self.flags)
        self.x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
        self.seen: list[tuple[bool, list[bool], Any]] = []
        self.returned: list[torch.Tensor] = []

    def __call__(self, model: nn.Module, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        if model is not self.model:
            raise Mismatch("fn received another model than the one the decorated function was called with (a "
                           "copy?): fn must get the caller's model itself.")
        self.seen.append((torch.is_grad_enabled(), [m.training for m in model.modules()], scale))
        if self.raises:
            raise _Boom("fn's own error")
        self.returned.append(model(x) * scale)
        return self.returned[-1]

    def __repr__(self) -> str:
        raises = ", fn raises" if self.raises else ""
        return (f"fn(model, x, scale=...) on a model with {self.pattern} "
                f"(grad recording {'on' if self.grad_before else 'off'} before the call{raises})")


def _evaluating_case(generator: torch.Generator, device: str, trial: int) -> Case:
    return (_Fn(*_Q8_CASES[trial]),)


def evaluating(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                return fn(model, *args, **kwargs)
        finally:
            for module, flag in flags:
                module.training = flag

    return wrapper


def _model(flags: tuple[bool, ...]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2)))
    for module, flag in zip(model.modules(), flags, strict=True):
        module.training = flag
    return model


def _judge_evaluating(answer: Callable[..., Any], case: Case) -> None:
    (fn,) = case
    model, grad_before, raises, flags = fn.model, fn.grad_before, fn.raises, fn.flags
    wrapper = call_answer(answer, fn)
    if not callable(wrapper):
        raise Mismatch(f"evaluating(fn) must return the decorated function, got {describe(wrapper)}.")

    def probe() -> tuple[Any, BaseException | None, bool, list[bool]]:
        with torch.set_grad_enabled(grad_before):
            out, error = None, None
            try:
                out = wrapper(model, fn.x, scale=2.0)
            except _Boom as boom:
                error = boom
            return out, error, torch.is_grad_enabled(), [m.training for m in model.modules()]

    out, error, grad_after, flags_after = call_answer(probe)
    _shown(answer, None)
    if len(fn.seen) != 1:
        raise Mismatch(f"Calling the decorated function once called fn {len(fn.seen)} times: it must call it once.")
    grad_inside, flags_inside, scale = fn.seen[0]
    if scale != 2.0:
        raise Mismatch(f"Called as decorated(model, x, scale=2.0), fn received scale={scale!r}: the decorated "
                       "function must pass every argument on, keywords included.")
    if grad_inside:
        raise Mismatch("Inside fn, gradient recording was on: the decorated function must turn it off.")
    if any(flags_inside):
        raise Mismatch(f"Inside fn, some modules were still in training mode (training flags {flags_inside}, in "
                       "model.modules() order): every module must be in eval mode.")
    if raises and error is None:
        raise Mismatch(f"fn raised an error, but the decorated function returned {describe(out)}: the error "
                       "must reach the caller.")
    if flags_after != list(flags):
        when = "after fn raised" if raises else "after the call"
        raise Mismatch(f"The training flags {when} are {flags_after}, but before the call they were "
                       f"{list(flags)} (model.modules() order): each module must get back its own flag.")
    if grad_after != grad_before:
        when = "after fn raised" if raises else "after the call"
        raise Mismatch(f"Gradient recording was {'on' if grad_before else 'off'} before the call and is "
                       f"{'on' if grad_after else 'off'} {when}: it must be as it was.")
    if not raises and (not fn.returned or out is not fn.returned[0]):
        raise Mismatch(f"The decorated function returned {describe(out)}, not what fn returned.")
    lost = [what for what, ok in (("name", getattr(wrapper, "__name__", None) == fn.__name__),
                                  ("docstring", getattr(wrapper, "__doc__", None) == fn.__doc__),
                                  ("__wrapped__", getattr(wrapper, "__wrapped__", None) is fn)) if not ok]
    if lost:
        raise Mismatch(f"The decorated function does not carry fn's {', '.join(lost)}: help(), tracebacks and "
                       "inspect see the wrapper instead of fn.")


# --- q9 · 00.6 a lazy generator of batches ----------------------------------------------------------------

# (the source's kind, how many items it holds (None: endless), n)
_Q9_CASES: list[tuple[str, int | None, int]] = [
    ("list", 7, 3),  # the last batch short
    ("one-shot", 10, 4),  # a one-shot iterator, read lazily
    ("endless", None, 4),
    ("list", 8, 4),  # batches fill exactly: no empty batch at the end
    ("list", 0, 2),  # no items: no batch
    ("range", 5, 1),  # n = 1
    ("one-shot", 2, 5),  # fewer items than n: one short batch
    ("endless", None, 1),
]
_BATCHES_TAKEN = 3  # batches read from an endless source


class _ReadTooFar(BaseException):  # noqa: N818 - not an Exception: a learner's `except Exception` cannot hide it
    """A counting source was read far past what the batches asked for needed."""


class _Source(Iterator[int]):
    """A one-shot iterator that counts the items taken; endless when ``length`` is None; past ``limit`` items
    it raises instead of going on (an eager answer is told so instead of hanging)."""

    def __init__(self, length: int | None) -> None:
        self.length, self.limit, self.taken = length, 0, 0  # the judge sets the limit

    def __next__(self) -> int:
        if self.length is not None and self.taken >= self.length:
            raise StopIteration
        if self.taken >= self.limit:
            raise _ReadTooFar
        self.taken += 1
        return _item(self.taken - 1)

    def __repr__(self) -> str:
        return "an endless iterator" if self.length is None else f"a one-shot iterator of {self.length} items"


def _item(i: int) -> int:
    return 3 * i + 1


def _batched_case(generator: torch.Generator, device: str, trial: int) -> Case:
    kind, length, n = _Q9_CASES[trial]
    if kind == "list":
        return [_item(i) for i in range(length)], n
    if kind == "range":
        return range(_item(0), _item(length), 3), n
    return _Source(length), n


def batched(iterable: Any, n: int) -> Iterator[tuple]:
    iterator = iter(iterable)
    while batch := tuple(itertools.islice(iterator, n)):
        yield batch


def _judge_batched(answer: Callable[..., Any], case: Case) -> None:
    source, n = case
    length = source.length if isinstance(source, _Source) else len(source)
    count = length if length is not None else _BATCHES_TAKEN * n
    wanted = -(-count // n) if length is not None else _BATCHES_TAKEN
    items = [_item(i) for i in range(count)]
    expected = [tuple(items[i:i + n]) for i in range(0, count, n)]
    counting = isinstance(source, _Source)
    if counting:
        source.limit = count + 64
    elif isinstance(source, list):
        source = list(source)  # the learner's copy: the case shown in the feedback stays whole
    try:
        result = call_answer(answer, source, n)
    except Mismatch as mismatch:
        _read_too_far(mismatch, source)
        raise
    if not isinstance(result, Iterator):
        raise Mismatch(f"Your function returned {describe(result)}: the batches must come one at a time, from a "
                       "generator (or another iterator).")
    if counting and source.taken:
        raise Mismatch(f"Your function took {source.taken} items from {source!r} before the first batch was asked "
                       "for: it must take items only when a batch needs them.")

    def probe() -> tuple[list[Any], list[int]]:
        batches, taken = [], []
        for batch in itertools.islice(result, wanted + (length is not None)):  # one more than a finite source has
            batches.append(batch)
            taken.append(source.taken if counting else 0)
        return batches, taken

    try:
        batches, taken = call_answer(probe)
        _shown(answer, batches)
    except Mismatch as mismatch:
        _read_too_far(mismatch, source)
        raise
    for k, batch in enumerate(batches[:wanted]):
        if not isinstance(batch, tuple):
            raise Mismatch(f"Batch {k} is {describe(batch)}: every batch must be a tuple.")
        if counting and taken[k] > (k + 1) * n:
            raise Mismatch(f"When batch {k} arrived, your generator had taken {taken[k]} items from {source!r}, "
                           f"more than the {k + 1} batches of {n} held: it reads ahead of what is asked for.")
    got = batches[:wanted]
    if len(batches) > wanted:
        extra = batches[wanted]
        what = "an empty batch" if extra == () else f"{describe(extra)}"
        raise Mismatch(f"After the items ran out your generator went on: with {count} items in batches of {n} it "
                       f"yielded one more batch, {what}.")
    if got != expected:
        short = [len(b) for b in got if isinstance(b, tuple)]
        if len(got) < len(expected) and got == expected[:len(got)]:
            raise Mismatch(f"Your generator stopped after {len(got)} batches (sizes {short}), but {count} items in "
                           f"batches of {n} need more: items at the end are missing.")
        raise Mismatch(f"The batches hold the wrong items (sizes {short}) for {count} items in batches of {n}: each "
                       "item must appear once, in order.")


def _read_too_far(mismatch: Mismatch, source: Any) -> None:
    if isinstance(getattr(mismatch, "error", None), _ReadTooFar):
        raise Mismatch(f"Your function kept reading {source!r} long after the batches asked for were full: it must "
                       "take items only when a batch needs them (an endless iterator never runs out).") from None
