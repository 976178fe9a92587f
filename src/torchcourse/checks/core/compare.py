"""Comparing the learner's value with the reference's, in a fixed order, with feedback that names the defect.

:func:`compare` raises :class:`~.outcome.Mismatch` at the first difference: type, layout, shape,
dtype, device, then values (how they differ: a factor, an offset, the order), never showing the
expected value.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .outcome import Mismatch


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high) drawn from ``generator``: sizes and knobs of hidden cases."""
    return int(torch.randint(low, high, (1,), generator=generator))


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    """A random float in [low, high) drawn from ``generator``: scales, rates and durations of hidden cases."""
    return float(torch.empty(()).uniform_(low, high, generator=generator))


def _is_named_tuple(value: Any) -> bool:
    """A ``collections.namedtuple`` or a torch structseq (``torch.return_types.topk``)."""
    return isinstance(value, tuple) and (hasattr(value, "_fields") or hasattr(type(value), "n_fields"))


def _fields(value: Any) -> tuple[str, ...]:
    if hasattr(value, "_fields"):
        return tuple(value._fields)
    return tuple(k for k in dir(type(value)) if not k.startswith("_") and k not in ("count", "index", "n_fields",
                                                                                    "n_sequence_fields",
                                                                                    "n_unnamed_fields"))


def describe(value: Any) -> str:
    """A short description of a value that names its type, shape, dtype and device, never its data."""
    if isinstance(value, torch.Tensor):
        grad = ", requires_grad" if value.requires_grad else ""
        layout = "" if value.layout == torch.strided else f" {str(value.layout).replace('torch.', '')}"
        return f"tensor{tuple(value.shape)} {value.dtype}{layout} on {value.device}{grad}"
    if isinstance(value, (list, tuple)) and len(value) <= 6:
        return f"{type(value).__name__}[{', '.join(describe(v) for v in value)}]"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)} items"
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        return f"numpy.{type(value).__name__}{tuple(value.shape)} {getattr(value, 'dtype', '')}".strip()
    return type(value).__name__


def _type_hint(actual: Any) -> str:
    if actual is None:
        return "Your function returned None: did you forget the `return` statement?"
    if type(actual).__module__ == "numpy":
        return "You returned a NumPy value: keep the computation in torch."
    if isinstance(actual, (list, tuple)):
        return f"You returned a {type(actual).__name__}, not a tensor."
    if isinstance(actual, (int, float, complex)) and not isinstance(actual, bool):
        return "You returned a Python number, not a tensor (.item(), float() and int() leave torch)."
    return ""


def _shape_text(shape: torch.Size) -> str:
    return "() (a 0-d tensor)" if len(shape) == 0 else str(tuple(shape))


def _compare_tensors(
    actual: torch.Tensor, expected: torch.Tensor, where: str, atol: float | None, rtol: float | None,
    values: bool = True,
) -> None:
    if actual.layout != expected.layout or actual.is_nested != expected.is_nested:
        kind = "nested" if actual.is_nested else str(actual.layout).replace("torch.", "")
        want = "nested" if expected.is_nested else str(expected.layout).replace("torch.", "")
        raise Mismatch(
            f"{where}: wrong layout. Expected a {want} tensor, got a {kind} one"
            + (" (a sparse result stores only its non-zero entries)." if actual.layout != torch.strided else ".")
        )
    if actual.shape != expected.shape:
        extra = ""
        if actual.numel() == expected.numel() == 1:
            extra = " One value is right in number, but a 0-d tensor and a 1-element tensor are not the same shape."
        elif sorted(actual.shape) == sorted(expected.shape):
            extra = " The same sizes in another order: the dimensions are permuted."
        raise Mismatch(
            f"{where}: wrong shape. Expected {_shape_text(expected.shape)}, got {_shape_text(actual.shape)}.{extra}"
        )
    if actual.dtype != expected.dtype:
        extra = ""
        if actual.is_complex() and not expected.is_complex():
            extra = " Your result is complex where a real one is expected."
        raise Mismatch(f"{where}: wrong dtype. Expected {expected.dtype}, got {actual.dtype}.{extra}")
    if actual.device != expected.device:
        raise Mismatch(
            f"{where}: wrong device. The inputs were on {expected.device} but your result is on "
            f"{actual.device}: a tensor you create lands on the default device unless told otherwise."
        )
    if not values or actual.device.type == "meta":
        return
    if (atol is None) != (rtol is None):  # assert_close wants both or neither: the missing one is zero
        atol, rtol = atol or 0.0, rtol or 0.0
    a, e = actual.detach(), expected.detach()
    if a.layout != torch.strided:
        a, e = a.to_dense(), e.to_dense()
    if a.is_floating_point() or a.is_complex():
        nan_a, nan_e = torch.isnan(a), torch.isnan(e)
        if bool((nan_a & ~nan_e).any()):
            count = int((nan_a & ~nan_e).sum())
            raise Mismatch(
                f"{where}: {count} of {a.numel()} values are NaN. Look for 0/0, the log or square root "
                "of a negative number, or an uninitialised tensor (torch.empty)."
            )
    try:
        torch.testing.assert_close(a, e, atol=atol, rtol=rtol, equal_nan=True)
    except AssertionError:
        raise Mismatch(f"{where}: shape, dtype and device are right, but {_how_values_differ(a, e)}") from None


def _how_values_differ(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """How many values differ and in what way (a factor, an offset, the order), never an expected value."""
    kind = torch.complex128 if actual.is_complex() or expected.is_complex() else torch.float64
    a, e = actual.to(kind).flatten(), expected.to(kind).flatten()
    differ = ~torch.isclose(a, e, equal_nan=True)
    count = int(differ.sum()) or a.numel()
    head = f"{count} of {a.numel()} values differ."
    finite = torch.isfinite(a) & torch.isfinite(e)
    a, e = a[finite], e[finite]
    if kind == torch.float64 and a.numel() >= 2 and bool((e != 0).any()):
        scale = float(e.abs().max())
        if not bool(a.any()):
            return f"{head} All your values are zero."
        ratio = float((a * e).sum() / (e * e).sum())
        if ratio and torch.allclose(a, ratio * e, rtol=1e-3, atol=1e-6 * scale) and abs(ratio - 1) > 1e-3:
            if abs(ratio + 1) < 1e-3:
                return f"{head} Every value has the wrong sign."
            size = f"{ratio:.4g}" if abs(ratio) >= 0.1 else f"1/{1 / ratio:.4g}"
            return f"{head} Every value is {size} times the right one."
        offset = float((a - e).mean())
        if abs(offset) > 1e-6 * max(scale, 1.0) and torch.allclose(a, e + offset, rtol=1e-4, atol=1e-5 * scale):
            return f"{head} Every value is off by the same amount ({offset:+.4g})."
        if (not torch.allclose(a, e, rtol=1e-4, atol=1e-6 * scale)
                and torch.allclose(a.sort().values, e.sort().values, rtol=1e-4, atol=1e-6 * scale)):
            return f"{head} They are the right values, in the wrong places."
    scale = e.abs().max().item() if e.numel() else 0.0
    relative = (a - e).abs().max().item() / (scale or 1.0) if a.numel() else 1.0
    closeness = (
        "They are close: look for lost precision (a low-precision dtype, integer division, rounding)."
        if relative < 1e-2
        else "Check the formula, the dimension you work along, and the order of the values."
    )
    return f"{head} {closeness}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(
    actual: Any, expected: Any, where: str = "your result", atol: float | None = None, rtol: float | None = None,
    *, values: bool = True,
) -> None:
    """Raise :class:`Mismatch` at the first difference: type, layout, shape, dtype, device, then values.

    ``values=False`` compares everything but the values (the run on the ``meta`` device, which has
    none). A comparison that itself fails on an unusual answer becomes a :class:`Mismatch` too.
    """
    try:
        _compare(actual, expected, where, atol, rtol, values)
    except Mismatch:
        raise
    except Exception as error:  # an answer so unusual that comparing it fails is still just wrong
        raise Mismatch(f"{where}: could not be compared ({describe(actual)}: {type(error).__name__}).") from None


def _compare(actual: Any, expected: Any, where: str, atol: float | None, rtol: float | None, values: bool) -> None:
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a torch.Tensor, got {describe(actual)}. {_type_hint(actual)}".strip())
        _compare_tensors(actual, expected, where, atol, rtol, values)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            kind = type(expected).__name__
            hint = f" {_type_hint(actual)}" if type(actual).__module__ == "numpy" or actual is None else ""
            raise Mismatch(f"{where}: expected a {kind} of {len(expected)} items, got {describe(actual)}.{hint}")
        if isinstance(actual, tuple) != isinstance(expected, tuple):  # the type the statement names, exactly
            raise Mismatch(f"{where}: expected a {'tuple' if isinstance(expected, tuple) else 'list'} of "
                           f"{len(expected)} items, got a {type(actual).__name__}.")
        if _is_named_tuple(expected) and (not _is_named_tuple(actual) or _fields(actual) != _fields(expected)):
            raise Mismatch(
                f"{where}: expected a named tuple with the fields {', '.join(_fields(expected))}; got "
                f"{'a plain ' + type(actual).__name__ if not _is_named_tuple(actual) else type(actual).__name__}."
            )
        if len(actual) != len(expected):
            raise Mismatch(f"{where}: expected {len(expected)} items, got {len(actual)}.")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _compare(a, e, f"{where}, item {i}", atol, rtol, values)
    elif isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where}: expected a dict, got {describe(actual)}.")
        if set(actual) != set(expected):
            raise Mismatch(f"{where}: expected the keys {sorted(map(str, expected))}, got {sorted(map(str, actual))}.")
        for key in expected:
            _compare(actual[key], expected[key], f"{where}[{key!r}]", atol, rtol, values)
    elif isinstance(expected, bool):
        if not isinstance(actual, bool):
            raise Mismatch(f"{where}: expected True or False, got {describe(actual)}.")
        if values and actual != expected:
            raise Mismatch(f"{where}: the answer is the other boolean.")
    elif isinstance(expected, (int, float)):
        if isinstance(actual, torch.Tensor):
            raise Mismatch(f"{where}: expected a Python number, got {describe(actual)}.")
        if type(actual).__module__ == "numpy":
            raise Mismatch(f"{where}: expected a Python number, got {describe(actual)}: a NumPy number is a type of "
                           "its own (int() or float() gives the Python one).")
        if not _is_number(actual):
            raise Mismatch(f"{where}: expected a number, got {describe(actual)}. {_type_hint(actual)}".strip())
        if isinstance(expected, int) and isinstance(actual, float):
            raise Mismatch(f"{where}: expected an int, got a float{'' if actual.is_integer() else ' (a fraction)'}: "
                           "`/` always gives a float, `//` and int() give an int.")
        if not values:
            return
        if math.isnan(float(actual)):
            raise Mismatch(f"{where}: your number is NaN.")
        if not math.isclose(float(actual), float(expected), rel_tol=rtol or 1e-5, abs_tol=atol or 1e-8):
            raise Mismatch(f"{where}: the type is right but the value is not.")
    elif isinstance(expected, str):
        if not isinstance(actual, str):
            raise Mismatch(f"{where}: expected a str, got {describe(actual)}.")
        if values and actual != expected:
            raise Mismatch(f"{where}: the text is not right.")
    elif _is_numpy(expected):
        _compare_numpy(actual, expected, where, atol, rtol, values)
    elif values and not (actual is expected or bool(actual == expected)):
        raise Mismatch(f"{where}: the value is not right ({describe(actual)}).")


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape")


def _compare_numpy(actual: Any, expected: Any, where: str, atol: float | None, rtol: float | None,
                   values: bool) -> None:
    """A NumPy array or scalar: the same kind, shape and dtype, then the values (compared as tensors)."""
    import numpy as np

    kind = "NumPy array (numpy.ndarray)" if isinstance(expected, np.ndarray) else f"NumPy {type(expected).__name__}"
    if not _is_numpy(actual) or isinstance(actual, np.ndarray) != isinstance(expected, np.ndarray):
        hint = " .numpy() (after .detach().cpu()) gives one." if isinstance(actual, torch.Tensor) else ""
        raise Mismatch(f"{where}: expected a {kind}, got {describe(actual)}.{hint}")
    if actual.shape != expected.shape:
        raise Mismatch(f"{where}: wrong shape. Expected {tuple(expected.shape)}, got {tuple(actual.shape)}.")
    if actual.dtype != expected.dtype:
        raise Mismatch(f"{where}: wrong dtype. Expected {expected.dtype}, got {actual.dtype}.")
    if not values:
        return
    try:
        a, e = torch.from_numpy(np.array(actual, copy=True)), torch.from_numpy(np.array(expected, copy=True))
    except TypeError:  # a dtype torch does not have (strings, objects): plain equality
        if not np.array_equal(actual, expected):
            raise Mismatch(f"{where}: the values are not right.") from None
        return
    _compare_tensors(a, e, where, atol, rtol, values)
