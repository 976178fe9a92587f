"""The judges of chapter 06's loop exercises (q6, a progress bar; q7, a meter), and their references.

:mod:`.visualization` declares both exercises; this module holds what judges them, so that the chapter's
module stays readable: ``_judge_bar`` drives the learner's loop with a recording tqdm class
(``_recording_bar``) and reads every ``set_postfix``; ``_judge_meter`` plays a random sequence of
``add``/``value``/``reset`` (``_operations``) on the learner's meter and on :class:`AverageValueMeter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._visualization_files import value_change
from .core import Case, Mismatch, call_answer, describe
from .core import randint as _randint
from .core import uniform as _uniform

__all__ = ["AverageValueMeter", "make_meter", "train_with_bar"]



def _losses(generator: torch.Generator, device: str) -> tuple[list[float], type]:
    n = _randint(generator, 5, 25)
    quiet, _ = _recording_bar()  # the judge hands the answer a fresh one of these
    return [round(2.0 / (i + 1) + _uniform(generator, 0.0, 0.5), 4) for i in range(n)], quiet


def train_with_bar(losses: list[float], progress: Any) -> float:
    bar = progress(losses, desc="train")
    total = 0.0
    for i, loss in enumerate(bar, start=1):
        total += loss
        bar.set_postfix(loss=total / i)
    bar.close()
    return total / len(losses)


def _recording_bar() -> tuple[type, list[Any]]:
    """A tqdm class that writes to a buffer and records every bar and every postfix it is given."""
    import io

    from tqdm import tqdm

    bars: list[Any] = []

    class Recorded(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)
            self.shown: list[tuple[int, Any]] = []
            bars.append(self)

        def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
            values = dict(ordered_dict or {}, **kwargs)
            self.shown.append((self.n, values.get("loss", _MISSING)))
            super().set_postfix(ordered_dict, refresh, **kwargs)

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            text = str(s)
            value: Any = _MISSING
            if "loss=" in text:
                value = text.split("loss=", 1)[1].split(",")[0].strip()
            self.shown.append((self.n, value))
            super().set_postfix_str(s, refresh)

    return Recorded, bars


_MISSING = object()


def _as_number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _judge_bar(answer: Callable[..., Any], case: Case) -> None:
    losses = list(case[0])
    progress, bars = _recording_bar()
    given = list(losses)
    result = call_answer(answer, given, progress)
    changed = value_change("losses", losses, given)
    if changed:
        raise Mismatch(f"Your function changed its input: {changed}. The caller's list must be left as it was.")
    if not bars:
        raise Mismatch("No progress bar was created: progress() was never called.")
    bar = bars[0]
    if bar.total != len(losses) or bar.n != len(losses):
        raise Mismatch(
            f"The bar counted {bar.n} of {bar.total} items for {len(losses)} losses: the loop did not go "
            "through the bar itself, all the way to the end."
        )
    shown = [(n, value) for n, value in bar.shown]
    if len(shown) != len(losses):
        raise Mismatch(
            f"set_postfix was called {len(shown)} times for {len(losses)} batches, not once per batch."
        )
    running = [sum(losses[:i]) / i for i in range(1, len(losses) + 1)]
    overall = sum(losses) / len(losses)
    numbers = [_as_number(value) for _, value in shown]
    if any(number is None for number in numbers):
        raise Mismatch("The postfix does not show a number under the key `loss`.")

    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=2e-3, abs_tol=1e-4)

    if not all(close(a, b) for a, b in zip(numbers, running, strict=True)):
        if all(close(a, b) for a, b in zip(numbers, losses, strict=True)):
            raise Mismatch("The bar shows each batch's own loss, not the mean of all losses seen so far.")
        if all(close(a, overall) for a in numbers):
            raise Mismatch("The bar shows the mean of every loss, including batches not seen yet.")
        sums = [sum(losses[:i]) for i in range(1, len(losses) + 1)]
        if all(close(a, b) for a, b in zip(numbers, sums, strict=True)):
            raise Mismatch("The bar shows the running sum, not the running mean.")
        if all(close(a, b) for a, b in zip(numbers[1:], running[:-1], strict=False)):
            raise Mismatch("The postfix lags one batch behind: each update shows the mean before the current "
                           "batch's loss.")
        raise Mismatch("The values in the postfix are not the running mean of the losses seen so far.")
    if _as_number(result) is None or isinstance(result, torch.Tensor):
        raise Mismatch(f"Return the final mean loss as a Python float; got {describe(result)}.")
    if not close(float(result), overall):
        raise Mismatch("The bar is right, but the value returned is not the mean of all the losses.")


class AverageValueMeter:
    """add(value, n=1) counts value n times; value() is (mean, unbiased std); reset() empties it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n, self.sum, self.squares = 0, 0.0, 0.0

    def add(self, value: Any, n: int = 1) -> None:
        value = float(value)
        self.n, self.sum, self.squares = self.n + n, self.sum + value * n, self.squares + value * value * n

    def value(self) -> tuple[float, float]:
        mean = self.sum / self.n if self.n else math.nan
        if self.n < 2:
            return mean, math.nan
        return mean, math.sqrt(max(self.squares - self.n * mean * mean, 0.0) / (self.n - 1))


def make_meter() -> Any:
    return AverageValueMeter()


def _new_meter(*_case: Any) -> AverageValueMeter:
    """The reference: a fresh meter (the case, a sequence of operations, is what the judge plays)."""
    return AverageValueMeter()


def _operations(generator: torch.Generator, device: str) -> tuple[list[tuple[str, Any, int]]]:
    ops: list[tuple[str, Any, int]] = [("value", None, 0)]  # an empty meter first
    for _ in range(_randint(generator, 6, 16)):
        kind = _randint(generator, 0, 10)
        if kind == 0 and len(ops) > 3:
            ops.append(("reset", None, 0))
        else:
            value: Any = round(_uniform(generator, -1.0, 3.0), 3)
            if kind == 1:
                value = torch.tensor(value)  # a loss straight from a loss function (detached)
            elif kind == 2:
                value = torch.tensor([value])  # one element, not a scalar: a batch of one
            ops.append(("add", value, _randint(generator, 1, 5) if kind < 6 else 1))
        ops.append(("value", None, 0))
    return (ops,)


def _given(value: Any) -> Any:
    """What add() is handed: a copy of a tensor value (compared with the case's after the call)."""
    return value.clone() if isinstance(value, torch.Tensor) else value


def _describe_ops(ops: list[tuple[str, Any, int]], upto: int, end: bool = True) -> str:
    parts = []
    for name, value, n in ops[: upto + 1]:
        if name == "add":
            shown = _show_value(value)
            parts.append(f"add({shown})" if n == 1 else f"add({shown}, n={n})")
        elif name == "reset":
            parts.append("reset()")
    return "meter = make_meter(); " + "; ".join(parts + (["value()"] if end else []))


def _show_value(value: Any) -> str:
    if not isinstance(value, torch.Tensor):
        return f"{value:g}"
    number = f"{float(value):g}"
    return f"tensor([{number}])" if value.dim() else f"tensor({number})"


def _judge_meter(answer: Callable[..., Any], case: Case) -> None:
    (ops,) = case
    meter = call_answer(answer)
    for attr in ("add", "value", "reset"):
        if not callable(getattr(meter, attr, None)):
            raise Mismatch(f"make_meter() returned {describe(meter)}, which has no {attr}() method.")
    reference = AverageValueMeter()
    for i, (name, value, n) in enumerate(ops):
        try:
            if name == "add":
                given = _given(value)
                version = given._version if isinstance(given, torch.Tensor) else 0
                # each method is called guarded, as any answer is: a time limit, its output, global state
                call_answer(meter.add, given) if n == 1 else call_answer(meter.add, given, n)
                reference.add(value, n)
            elif name == "reset":
                call_answer(meter.reset)
                reference.reset()
            else:
                got = call_answer(meter.value)
        except Mismatch as mismatch:  # the learner's method raised, hung or changed global state: that is feedback
            text = str(mismatch).removeprefix("Your function ")
            raise Mismatch(f"`{_describe_ops(ops, i)}`: the {name}() method {text}") from None
        if name == "add" and isinstance(given, torch.Tensor) and (
                given._version != version or given.shape != value.shape
                or not torch.equal(given.detach(), value.detach())):
            raise Mismatch(f"`{_describe_ops(ops, i, end=False)}` changed the tensor add() was given, in place: the "
                           "caller's tensor is no longer what it was.")
        if name != "value":
            continue
        want = reference.value()
        where = _describe_ops(ops, i)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Mismatch(f"value() must return a tuple (mean, std); after `{where}` it returned {describe(got)}.")
        for label, g, w in (("mean", got[0], want[0]), ("std", got[1], want[1])):
            if isinstance(g, torch.Tensor) or _as_number(g) is None:
                raise Mismatch(f"value() must return Python floats; the {label} after `{where}` is {describe(g)}.")
            g = float(g)
            if math.isnan(w) != math.isnan(g) or not (math.isnan(w) or math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9)):
                raise Mismatch(f"After `{where}` the {label} is wrong. {_meter_advice(label, g, w, reference)}")


def _meter_advice(label: str, got: float, want: float, reference: AverageValueMeter) -> str:
    if math.isnan(want):
        if reference.n == 0:
            return "An empty meter (new, or just reset) has no mean and no std: both are nan."
        return "One value has no sample standard deviation: with fewer than two values it is nan."
    if math.isnan(got):
        return "Values were added, so it is a number, not nan."
    if label == "std" and reference.n > 1:
        population = want * math.sqrt((reference.n - 1) / reference.n)
        if math.isclose(got, population, rel_tol=1e-6, abs_tol=1e-9):
            return (
                "That is the population standard deviation (divide by n), not the unbiased estimate "
                "(as torch.std)."
            )
    return "Check that add(value, n) counts the value n times, and that reset() clears every running total."
