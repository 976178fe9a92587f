"""The tracer's shared pieces (``torchcourse.tracing`` is the module to read first).

Constants that name bytecode and operators, how a dotted inventory name is found at run time (:func:`_resolve`),
the trampoline that calls a wrapped function from a frame carrying the caller's file and line, the
torch-function mode, the pause counter every recorder reads, and the small predicates the recorders share.
"""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import inspect
import os
import sys
import sysconfig
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .tracing import Tracer


class _Pause:
    """How many ``tracing.paused()`` blocks are open: every recorder then passes through without reading frames."""

    depth = 0


PAUSE = _Pause()
_MISSING = object()

# Frames that only pass a call along: skipped when looking for the frame that made the call.
_PLUMBING = tuple(
    os.path.join("torch", p)
    for p in ("overrides.py", "_jit_internal.py", os.path.join("utils", "_device.py"), "_compile.py")
) + ("functools.py", "abc.py")
_BINARY_OP = dis.opmap.get("BINARY_OP", -1)
_COMPARE_OP = dis.opmap["COMPARE_OP"]
_BINARY_SUBSCR = dis.opmap["BINARY_SUBSCR"]
_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]
_NB_DUNDER = {
    "ADD": "add",
    "SUBTRACT": "sub",
    "MULTIPLY": "mul",
    "TRUE_DIVIDE": "truediv",
    "FLOOR_DIVIDE": "floordiv",
    "POWER": "pow",
    "REMAINDER": "mod",
    "MATRIX_MULTIPLY": "matmul",
    "AND": "and",
    "OR": "or",
    "XOR": "xor",
    "LSHIFT": "lshift",
    "RSHIFT": "rshift",
}
_NB_OPS = [
    f"__i{_NB_DUNDER[n[11:]]}__" if n.startswith("NB_INPLACE_") else f"__{_NB_DUNDER.get(n[3:], n[3:].lower())}__"
    for n, _ in getattr(dis, "_nb_ops", [])
]
# Python 3.10 has one opcode per operator (BINARY_ADD, INPLACE_ADD...), where 3.11 has BINARY_OP and an argument.
_LEGACY_OPS = {
    dis.opmap[f"{kind}_{op}"]: f"__{'i' if kind == 'INPLACE' else ''}{_NB_DUNDER.get(op, 'mod')}__"
    for kind in ("BINARY", "INPLACE")
    for op in (*_NB_DUNDER, "MODULO")
    if f"{kind}_{op}" in dis.opmap
}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}
# The hooks a rewritten cell calls (found in builtins, so every cell and function sees them).
CALL_HOOK = "__torchcourse_call__"
OPERAND_HOOK = "__torchcourse_operand__"
_BINOP_DUNDERS = {
    ast.Add: "__add__",
    ast.Sub: "__sub__",
    ast.Mult: "__mul__",
    ast.Div: "__truediv__",
    ast.FloorDiv: "__floordiv__",
    ast.Mod: "__mod__",
    ast.Pow: "__pow__",
    ast.MatMult: "__matmul__",
    ast.LShift: "__lshift__",
    ast.RShift: "__rshift__",
    ast.BitAnd: "__and__",
    ast.BitOr: "__or__",
    ast.BitXor: "__xor__",
}
# Rows that name an attribute of the classes a factory makes: (factory, a class it makes).
_FACTORIES: dict[str, Callable[[Any], type]] = {
    "collections.namedtuple": lambda namedtuple: namedtuple("Sample", "a"),
}
# Tensor factories that torch binds by hand without a __torch_function__ check.
_NOT_DISPATCHED = {"from_numpy", "frombuffer", "range", "from_file"}


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= {os.path.dirname(os.__file__), os.path.dirname(os.path.abspath(__file__))}
    for mod in (torch, builtins):
        origin = getattr(mod, "__file__", None)
        if origin:
            roots.add(os.path.dirname(os.path.dirname(os.path.abspath(origin))))
    return tuple(sorted(os.path.join(r, "") for r in roots))


# Inventory names whose object lives elsewhere at run time.
_ALIASES = {
    # ctx in a custom Function is a BackwardCFunction; saved_tensors comes from its C base, before FunctionCtx
    "torch.autograd.function.FunctionCtx.saved_tensors": "torch.autograd.function.BackwardCFunction.saved_tensors",
}


def _resolve(name: str) -> tuple[str, Any, Any, str]:
    """``(state, owner, object, attribute)`` for a dotted name, importing nothing.

    state is ``"ok"``, ``"missing"`` (the owner is a class without that attribute) or ``"pending"``
    (its module is not imported yet, or the attribute may be a submodule still to be imported).
    """
    parts = _ALIASES.get(name, name).split(".")
    obj = sys.modules.get(parts[0])
    if obj is None:
        obj = vars(builtins).get(parts[0])  # str.format, dict.items: a builtin type is a root too
        if obj is None or isinstance(obj, types.ModuleType):
            return "pending", None, _MISSING, parts[-1]
    owner, attr = None, parts[0]
    for i, part in enumerate(parts[1:], start=1):
        owner, attr = obj, part
        try:
            obj = inspect.getattr_static(obj, part, _MISSING) if isinstance(obj, type) else getattr(obj, part, _MISSING)
        except Exception:  # noqa: BLE001 - a lazy module attribute that fails to import
            obj = _MISSING
        if obj is _MISSING:
            obj = sys.modules.get(".".join(parts[: i + 1]), _MISSING)  # a submodule not bound yet
        if obj is _MISSING:
            return ("pending" if isinstance(owner, types.ModuleType) else "missing"), owner, obj, attr
    return "ok", owner, obj, attr


def _is_heap_type(cls: Any) -> bool:
    return isinstance(cls, type) and bool(cls.__flags__ & (1 << 9))


class _Trampoline:
    """Calls a function from a frame that carries the caller's file, line and globals."""

    _code = compile("def _call(f, a, k): return f(*a, **k)", "<trace>", "exec").co_consts[0]

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str, int], Callable[..., Any]] = {}
        self.codes: set[types.CodeType] = set()  # a trampoline frame is never lesson code

    def __call__(self, frame: types.FrameType | None, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if frame is None:
            return func(*args, **kwargs)
        code = frame.f_code
        key = (id(frame.f_globals), code.co_filename, frame.f_lineno or 1)
        call = self._cache.get(key)
        if call is None:
            new = self._code.replace(co_filename=code.co_filename, co_firstlineno=key[2], co_name=code.co_name)
            call = self._cache[key] = types.FunctionType(new, frame.f_globals)
            self.codes.add(new)
        return call(func, args, kwargs)


class _Mode(torch.overrides.TorchFunctionMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        return self.tracer._dispatched(func, args, kwargs or {})


_STATUS: dict[str, str] = {}


def _pass_through(func: Any) -> Any:
    return func


def _pass_operand(dunder: str, value: Any) -> Any:
    return value


@functools.cache
def _stdlib_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.join(paths[k], "") for k in ("stdlib", "platstdlib") if k in paths)


def _in_stdlib(module: Any) -> bool:
    """Is this a module of the standard library (collections, argparse)? Its names stay where they are."""
    if not isinstance(module, types.ModuleType):
        return False
    if module.__name__ in sys.builtin_module_names:
        return True
    origin = getattr(module, "__file__", None) or ""
    return bool(origin) and origin.startswith(_stdlib_prefixes()) and "site-packages" not in origin


def _dispatches_itself(func: Any, depth: int = 2) -> bool:
    """Does this Python function (or one it closes over: boolean_dispatch) call handle_torch_function?"""
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    if "handle_torch_function" in code.co_names:
        return True
    cells = getattr(func, "__closure__", None) or ()
    return depth > 0 and any(
        _dispatches_itself(getattr(c, "cell_contents", None), depth - 1)
        for c in cells
        if callable(getattr(c, "cell_contents", None))
    )


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _overridable() -> frozenset[Any]:
    found: set[Any] = set()
    for functions in torch.overrides.get_overridable_functions().values():
        found.update(functions)
    return frozenset(found)


def _names_in_error(caught: Any) -> set[str]:
    """Names an expected error or warning points at (``module 'torch' has no attribute 'ifft'``)."""
    import re

    names: set[str] = set()
    error = caught if isinstance(caught, BaseException) else None
    text = str(error if error is not None else getattr(caught, "message", caught))
    for module, attr in re.findall(r"module '([\w.]+)' has no attribute '(\w+)'", text):
        names.add(f"{module}.{attr}")
    for owner, attr in re.findall(r"'(\w+)' object has no attribute '(\w+)'", text):
        names.add(f"*.{owner}.{attr}")
        owners = {owner}
        target = getattr(error, "obj", None)
        if target is None and error is not None and error.__traceback__ is not None:
            tb = error.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            target = tb.tb_frame.f_locals.get("self")
        if target is not None:
            owners |= {c.__name__ for c in type(target).__mro__}
        names |= {f"*.{o}.{attr}" for o in owners}
    for function in re.findall(
        r"(\w+)\(\)(?: received an invalid combination| got an unexpected keyword|: argument)", text
    ):
        names.add(f"*.{function}")
    if isinstance(error, ModuleNotFoundError) and error.name:
        names.add(error.name)
    return names
