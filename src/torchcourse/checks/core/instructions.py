"""Instructions checked by what the learner's function calls: :class:`Uses`, ``requires=``/``forbids=``.

A :class:`_Recorder` (a TorchFunctionMode) counts the torch functions, Tensor methods and
properties the learner's code calls directly; :class:`_Patches` counts named Python functions and
classes no mode sees. :func:`check_instructions` turns the counts into feedback.
"""

from __future__ import annotations

import collections
import dis
import functools
import importlib
import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .outcome import Mismatch


class _Recorder(torch.overrides.TorchFunctionMode):
    """Counts the torch functions, Tensor methods and properties the learner's code calls directly."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[Any] = collections.Counter()
        self.inside: collections.Counter[int] = collections.Counter()
        self.aliases: dict[int, Any] = {}  # a patched wrapper -> what it counts as
        self.depth = 0  # patched calls in progress

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        key = self.aliases.get(id(func)) or _call_key(func)
        if not self.inside[id(key)]:
            self.calls[key] += 1
        result = func(*args, **(kwargs or {}))
        if _records_graph(result):
            self.calls[GRAPH] += 1
        return result


GRAPH = ("graph", "an operation that recorded an autograd graph")
"""The call key counted for every operation of the learner's whose result has a ``grad_fn``."""

NO_GRAPH = "<autograd graph>"
"""A name for ``forbids=``: ``Uses(NO_GRAPH, says="compute it without recording an autograd graph")``."""


def _records_graph(result: Any) -> bool:
    if isinstance(result, torch.Tensor):
        return result.grad_fn is not None
    if isinstance(result, (tuple, list)):
        return any(isinstance(r, torch.Tensor) and r.grad_fn is not None for r in result)
    return False


def _call_key(func: Any) -> Any:
    """A property's getter becomes ``('property', name)``; anything else stays the object itself."""
    if type(func).__name__ == "method-wrapper":
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", None)
        if name:
            return ("property", name)
    return func


@dataclass(frozen=True)
class Uses:
    """An instruction checked by what the learner's function calls.

    ``Uses("torch.Tensor.scatter_", "torch.Tensor.scatter", says="build it with scatter_")``: one of
    the names must be called. ``count`` demands an exact number of calls (an int, or a function of the
    case's arguments: ``count=lambda w, x, y, chunks: chunks``). As a ``forbids=`` entry, none of the
    names may be called.
    """

    names: tuple[str, ...]
    says: str = ""
    count: int | Callable[..., int] | None = None

    def __init__(self, *names: str, says: str = "", count: int | Callable[..., int] | None = None) -> None:
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "says", says)
        object.__setattr__(self, "count", count)

    @property
    def instruction(self) -> str:
        return self.says or f"use {' or '.join('`' + n.removeprefix('torch.') + '`' for n in self.names)}"


def _as_uses(item: str | Sequence[str] | Uses) -> Uses:
    if isinstance(item, Uses):
        return item
    if isinstance(item, str):
        return Uses(item)
    return Uses(*item)


def _resolve(name: str) -> tuple[Any, str, Any]:
    """``(owner, attribute, object)`` for a dotted name such as ``torch.nn.Module.register_forward_hook``."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        owner = obj
        for part in parts[cut:]:
            owner, obj = obj, getattr(obj, part)
        return owner, parts[-1], obj
    raise ValueError(f"cannot resolve {name!r}")


def _keys_of(name: str) -> set[Any]:
    """The call keys that count as calling ``name``."""
    owner, attr, obj = _resolve(name)
    keys: set[Any] = set()
    raw = vars(owner).get(attr, obj) if isinstance(owner, type) else obj
    if isinstance(raw, (property, types.GetSetDescriptorType)) or type(raw).__name__ == "getset_descriptor":
        keys.add(("property", attr))
    else:
        keys.add(obj)
    return keys


class _Patches:
    """Counts calls of named Python functions, methods and classes that no TorchFunctionMode sees."""

    def __init__(self, names: Sequence[str], recorder: _Recorder) -> None:
        self.undo: list[Callable[[], None]] = []
        for name in names:
            try:
                owner, attr, obj = _resolve(name)
            except Exception:  # noqa: BLE001, S112 - a name this torch lacks is never called
                continue
            raw = vars(owner).get(attr) if isinstance(owner, type) else obj
            if isinstance(obj, type):
                owner, attr, raw = obj, "__init__", vars(obj).get("__init__")
                target = obj.__init__
            elif isinstance(raw, (types.FunctionType, staticmethod, classmethod)):
                target = obj
            else:  # builtins dispatch through __torch_function__ already
                continue
            self._patch(owner, attr, raw, target, obj if not isinstance(obj, type) else obj, recorder)

    def _patch(self, owner: Any, attr: str, raw: Any, target: Any, key: Any, recorder: _Recorder) -> None:
        inner = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else (raw if raw is not None else target)

        @functools.wraps(inner)
        def counting(*args: Any, **kwargs: Any) -> Any:
            if not recorder.depth:  # Tensor.backward calling autograd.backward is one call of the learner's
                recorder.calls[key] += 1
            recorder.inside[id(key)] += 1
            recorder.depth += 1
            try:
                return inner(*args, **kwargs)
            finally:
                recorder.inside[id(key)] -= 1
                recorder.depth -= 1

        wrapped: Any = counting
        recorder.aliases[id(counting)] = key
        if isinstance(raw, staticmethod):
            wrapped = staticmethod(counting)
        elif isinstance(raw, classmethod):
            wrapped = classmethod(counting)
        had = isinstance(owner, type) and attr in vars(owner) or not isinstance(owner, type)
        setattr(owner, attr, wrapped)

        def undo() -> None:
            if had:
                setattr(owner, attr, raw)
            else:
                delattr(owner, attr)

        self.undo.append(undo)

    def remove(self) -> None:
        while self.undo:
            self.undo.pop()()



def _keys_for(uses: Uses) -> set[Any]:
    keys: set[Any] = set()
    for name in uses.names:
        if name == NO_GRAPH:
            keys.add(GRAPH)
            continue
        try:
            keys |= _keys_of(name)
        except Exception:  # noqa: BLE001, S112 - a name this torch lacks is never called
            continue
    return keys


def check_instructions(requires: Sequence[Any], forbids: Sequence[Any], calls: collections.Counter[Any],
                       case: tuple[Any, ...]) -> None:
    """Raise :class:`Mismatch` when the calls break an instruction (a required call missing or miscounted,
    a forbidden one made)."""
    for item in requires:
        uses = _as_uses(item)
        made = sum(calls[k] for k in _keys_for(uses))
        want = uses.count(*case) if callable(uses.count) else uses.count
        if made == 0 or (want is not None and made != want):
            times = "never called it" if made == 0 else f"called it {made} times, not {want}"
            raise Mismatch(f"The values are right, but the statement says to {uses.instruction}: your code {times}.")
    for item in forbids:
        uses = _as_uses(item)
        if sum(calls[k] for k in _keys_for(uses)):
            called = [_display(n) for n in uses.names if sum(calls[k] for k in _keys_for(Uses(n)))]
            raise Mismatch(f"The values are right, but the statement rules this out ({uses.instruction}): your code "
                           f"called {', '.join(dict.fromkeys(called))}.")


def _display(name: str) -> str:
    """A dotted name as a learner writes it: ``F.batch_norm``, ``nn.BatchNorm2d``, ``torch.optim.SGD``."""
    if name == NO_GRAPH:
        return "operations that recorded an autograd graph (their results have a grad_fn)"
    for prefix, short in (("torch.nn.functional.", "F."), ("torch.nn.", "nn."), ("torch.Tensor.", "Tensor.")):
        if name.startswith(prefix):
            return f"`{short}{name.removeprefix(prefix)}`"
    return f"`{name}`"


_LOOP_OPS = {"FOR_ITER", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "GET_ANEXT"}


def python_loop(function: Any) -> str | None:
    """Where the learner's own code loops in Python (``for``, ``while``, a comprehension), in words; else None.

    Read from the bytecode of the function and of the functions, lambdas and comprehensions it
    defines; helpers it calls are not read.
    """
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    if code is None:
        return None
    return _loop_in(code, getattr(function, "__name__", "your function"))


def _loop_in(code: types.CodeType, name: str) -> str | None:
    lines = dict(dis.findlinestarts(code))
    line = None
    for instruction in dis.get_instructions(code):
        if instruction.offset in lines and lines[instruction.offset] is not None:
            line = lines[instruction.offset]
        backward = (instruction.opname in ("JUMP_ABSOLUTE", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_FALSE")
                    and isinstance(instruction.argval, int) and instruction.argval < instruction.offset)
        if instruction.opname in _LOOP_OPS or "BACKWARD" in instruction.opname or backward:
            kind = ("a comprehension" if code.co_name in ("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>")
                    else "a loop")
            return f"{kind} (line {line} of {name})" if line else kind
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found = _loop_in(const, name)
            if found:
                return found
    return None
