"""The API tracer behind ``torchcourse coverage``: which inventory APIs a lesson really ran, and where.

Switched on by ``TORCHCOURSE_TRACE_DIR=<dir>`` (``make test`` and ``make coverage`` set it).
``tc.setup()`` then calls :func:`start_if_enabled`, which installs the recorders in the notebook's
kernel and, after every cell, writes this kernel's records to a JSON file of its own in that
folder (nbval kills kernels at the end, so nothing waits for exit).

A call is recorded when *lesson code* makes it: the frame that calls the API is not inside an
installed library, the standard library or the ``torchcourse`` package. What torch does
internally (printing a tensor, ``run_on_devices`` comparing results) is not a demonstration.
The recorders, by kind of inventory row:

- torch functions, Tensor methods and Tensor properties: a ``TorchFunctionMode``; operators are
  told apart from methods by the caller's bytecode (``x + y`` is ``Tensor.__add__``, not ``add``);
- Python functions and methods (``torch.manual_seed``, ``Module.state_dict``,
  ``SummaryWriter.add_scalar``, ``tqdm.tqdm``...): a wrapper set on the owning module or class;
- classes: ``nn.Module`` subclasses when they run forward (global forward hook, every inventory
  class in the module's MRO), optimizers when they step (global step hook), LR schedulers when
  ``step`` is called, other classes when constructed or subclassed by a lesson;
- names that cannot be called through Python (C types such as ``torch.finfo``, the legacy
  ``torch.FloatTensor`` classes, values, modules): reading the name from lesson code counts, and
  a module counts when lesson code imports it or reads one of its attributes;
- what cannot be wrapped at all (builtins such as ``eval``, ``tuple`` and ``str``, methods of C
  types such as ``str.format`` and ``collections.OrderedDict``, the ``_replace`` and ``_asdict``
  that every ``collections.namedtuple`` class gets, and operators of builtin types such as
  ``str.__mod__``, the ``%`` of ``"%d" % n``): the notebook's cells are rewritten as IPython
  compiles them (an AST transformer) so that each call site passes the callable through
  ``__torchcourse_call__`` (``f(x)`` runs as ``__torchcourse_call__(f)(x)``, which records
  ``f`` when it is such a row and returns it unchanged) and the left operand of an operator
  that a row names through ``__torchcourse_operand__``. The call itself still happens in the
  lesson's frame, so ``eval``, ``super()``, ``locals()``, tracebacks and warnings behave as
  before; only cells are rewritten, so only lesson code is seen. Statically typed classes get
  no wrapper and no hidden name: the standard library stays untouched.

Devices: the device types of the tensors (and modules, storages) among the arguments and the
result; ``"none"`` when no tensor is involved. Errors and warnings shown with ``tc.expect_error``
and ``tc.expect_warning`` also record the names they involved (``shown``): that is how a removed
API counts as demonstrated.

The tracer prints nothing and adds no warning: wrapped calls run through a trampoline that
carries the caller's file, line and globals, so a warning is attributed (and filtered, and
shown once) exactly as without the tracer.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import dis
import functools
import inspect
import json
import os
import sys
import sysconfig
import types
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "ENV_VAR",
    "CellRewriter",
    "Tracer",
    "active",
    "expect_begin",
    "expect_end",
    "paused",
    "start",
    "start_if_enabled",
    "stop",
]

ENV_VAR = "TORCHCOURSE_TRACE_DIR"
FORMAT = 1

_TRACER: Tracer | None = None
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
_PAUSED = 0  # how many paused() blocks are open: every recorder then passes through without reading frames
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


class Tracer:
    """Records which inventory APIs lesson code calls, and on which device types."""

    def __init__(self, directory: str | Path | None, targets: Iterable[str]) -> None:
        self.directory = Path(directory) if directory else None
        self.path = None
        if self.directory is not None:
            self.path = self.directory / f"trace-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        self.calls: dict[str, set[str]] = {}
        self.shown: set[str] = set()
        self.targets = sorted(set(targets))
        self._expect: list[set[str]] = []
        self._dirty = True
        self._undo: list[Callable[[], None]] = []
        self._user_cache: dict[str, bool] = {}
        self._lib = _library_prefixes()
        self._own = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
        self._names: dict[Any, str] = {}  # function or descriptor -> dotted name
        self._fallback: dict[int, str] | None = None
        self._class_rows: dict[type, list[str]] = {}  # inventory class -> its names
        self._mro_cache: dict[type, tuple[str, ...]] = {}
        self._module_rows: dict[str, str] = {}  # module __name__ -> inventory name
        self._env_rows: list[str] = []
        self._pending: set[str] = set()
        self._queued: dict[int, tuple[Any, Any]] = {}
        self._own_files: dict[Any, set[str | None]] = {}
        self._wrappers: list[Any] = []
        self._modules_seen = 0
        self._target_set = set(self.targets)
        self._trampoline = _Trampoline()
        self._mode: _Mode | None = None
        self._cuda = torch.cuda.is_available()
        # What the rewritten cells' hooks look up (see :class:`CellRewriter`).
        self._by_id: dict[int, tuple[Any, str]] = {}  # builtins, C types, C method descriptors
        self._by_method: dict[tuple[type, str], str] = {}  # (C type, attribute): bound C methods
        self._method_cache: dict[tuple[type, str], str | None] = {}
        self._by_code: dict[types.CodeType, str] = {}  # Python methods made by factories (_replace)
        self._operators: dict[str, dict[type, str]] = {}  # "__mod__" -> {str: "str.__mod__"}
        self.rewriter = CellRewriter(self)

    # ----------------------------------------------------------------------------- recording
    def _is_user(self, frame: types.FrameType | None) -> bool:
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        user = self._user_cache.get(filename)
        if user is None:
            synthetic = filename.startswith("<") and not filename.startswith(("<ipython-input", "<stdin>"))
            user = self._user_cache[filename] = not (synthetic or filename.startswith(self._lib))
        return user and frame.f_code not in self._trampoline.codes

    def record(self, name: str, devices: Iterable[str] = ("none",)) -> None:
        """Note that ``name`` ran with tensors on ``devices`` (device types, or ``"none"``)."""
        seen = self.calls.get(name)
        if seen is None:
            seen = self.calls[name] = set()
        before = len(seen)
        seen.update(devices)
        if len(seen) != before:
            self._dirty = True
        if self._expect:
            self._expect[-1].add(name)

    def _devices(self, *values: Any) -> set[str]:
        found: set[str] = set()
        with torch._C.DisableTorchFunction():
            for value in values:
                self._device_of(value, found, 2)
        return found or {"none"}

    def _device_of(self, value: Any, found: set[str], depth: int) -> None:
        if isinstance(value, torch.Tensor):
            found.add(value.device.type)
        elif isinstance(value, (list, tuple)):
            if depth:
                for item in value[:8]:
                    self._device_of(item, found, depth - 1)
        elif isinstance(value, dict):
            if depth:
                for item in list(value.values())[:8]:
                    self._device_of(item, found, depth - 1)
        elif isinstance(value, torch.nn.Module):
            for tensor in value.parameters():
                found.add(tensor.device.type)
                break
        elif isinstance(value, torch.optim.Optimizer):
            for group in value.param_groups[:1]:
                self._device_of(group.get("params", []), found, 1)
        elif isinstance(value, (torch.UntypedStorage, torch.TypedStorage)):
            found.add(value.device.type)

    def _handed_over(self, frame: types.FrameType | None, func: Any) -> bool:
        """A torchcourse helper calling a function the lesson handed it (``tc.run_on_devices(torch.sqrt, x)``)."""
        if frame is None or not frame.f_code.co_filename.startswith(self._own):
            return False
        code = frame.f_code
        count = code.co_argcount + code.co_kwonlyargcount
        local = frame.f_locals
        return any(local.get(arg) is func for arg in code.co_varnames[:count])

    def _caller(self, func: Any) -> types.FrameType | None:
        """The frame that called ``func`` (skipping torch's dispatch plumbing and func's own frames)."""
        frame = sys._getframe(3)
        own = self._own_files.get(func) if _hashable(func) else None
        if own is None:
            code = getattr(func, "__code__", None)
            module = sys.modules.get(getattr(func, "__module__", None) or "")
            own = {code.co_filename if code is not None else None, getattr(module, "__file__", None)}
            if _hashable(func):
                self._own_files[func] = own
        while frame is not None and (frame.f_code.co_filename.endswith(_PLUMBING) or frame.f_code.co_filename in own):
            frame = frame.f_back
        return frame

    def _dispatched(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Called by the TorchFunctionMode for every torch function, Tensor method and property."""
        direct = sys._getframe(2)  # the frame above the C dispatch, or torch/overrides.py
        python_dispatch = direct.f_code.co_filename.endswith(_PLUMBING[0])
        caller = self._caller(func) if python_dispatch else direct
        if caller is not None and caller.f_code.co_filename.endswith(_PLUMBING):
            caller = self._caller(func)
        if not (self._is_user(caller) or self._handed_over(caller, func)):
            return self._trampoline(caller if python_dispatch else direct, func, args, kwargs)
        name = self._name_of(func, caller)
        result = self._trampoline(caller if python_dispatch else direct, func, args, kwargs)
        if name is not None:
            self.record(name, self._devices(args, kwargs, result))
        return result

    def _name_of(self, func: Any, caller: types.FrameType) -> str | None:
        op = caller.f_code.co_code[caller.f_lasti] if caller.f_lasti >= 0 else -1
        base = getattr(func, "__name__", "")
        if op == _BINARY_OP and _NB_OPS:
            return "torch.Tensor." + _NB_OPS[caller.f_code.co_code[caller.f_lasti + 1]]
        if op in _LEGACY_OPS:
            return "torch.Tensor." + _LEGACY_OPS[op]
        if op == _COMPARE_OP and base.strip("_") in _COMPARISONS:
            return f"torch.Tensor.__{base.strip('_')}__"
        if op == _BINARY_SUBSCR and base == "__getitem__":
            return "torch.Tensor.__getitem__"
        if op == _STORE_SUBSCR and base == "__setitem__":
            return "torch.Tensor.__setitem__"
        try:
            name = self._names.get(func)
        except TypeError:
            name = None
        if name is None:
            name = self._fallback_name(func)
        return name

    def _fallback_name(self, func: Any) -> str | None:
        owner = getattr(func, "__self__", None)
        if type(func).__name__ == "method-wrapper" and owner is not None:  # a property's __get__/__set__
            attr = getattr(owner, "__name__", None) or getattr(getattr(owner, "fget", None), "__name__", None)
            objclass = getattr(owner, "__objclass__", None)
            if attr and (objclass is None or issubclass(torch.Tensor, objclass)):
                name = f"torch.Tensor.{attr}"
                self._names[func] = name
                return name
            return None
        objclass = getattr(func, "__objclass__", None)
        base = getattr(func, "__name__", None)
        if base and (
            objclass is not None and issubclass(torch.Tensor, objclass) or getattr(torch.Tensor, base, None) is func
        ):
            name = f"torch.Tensor.{base}"
        else:
            if self._fallback is None:
                self._fallback = {}
                for mod in (
                    torch.special,
                    torch.fft,
                    torch.linalg,
                    torch.sparse,
                    torch.nn.init,
                    torch.nn.functional,
                    torch.autograd,
                    torch.random,
                    torch,
                ):
                    for key, value in list(vars(mod).items()):
                        if callable(value) and not key.startswith("_"):
                            self._fallback[id(value)] = f"{mod.__name__}.{key}"
            name = self._fallback.get(id(func))
            if name is None and base:
                name = f"{getattr(func, '__module__', None) or 'torch'}.{getattr(func, '__qualname__', base)}"
        try:
            self._names[func] = name
        except TypeError:
            pass
        return name

    # ------------------------------------------------------------------------------- installing
    def install(self) -> Tracer:
        """Install every recorder; :meth:`uninstall` takes them all out again."""
        self._patches: list[tuple[Callable[[], None], Callable[[], None]]] = []  # (redo, undo): paused() uses them
        self._pending = set(self.targets)
        self._install_pending()
        self._install_hooks()
        self._install_cell_hooks()
        self._mode = _Mode(self)
        self._mode.__enter__()
        return self

    def uninstall(self) -> None:
        if self._mode is not None:
            stack = torch.overrides._get_current_function_mode_stack()
            if self._mode in stack:
                # pop everything above us, then us, then put the others back in order
                above = stack[stack.index(self._mode) + 1 :]
                for _ in range(len(above) + 1):
                    torch._C._pop_torch_function_stack()
                for mode in above:
                    torch._C._push_on_torch_function_stack(mode)
            self._mode = None
        while self._undo:
            self._undo.pop()()

    def _set(self, owner: Any, attr: str, value: Any) -> None:
        had = attr in vars(owner)
        old = vars(owner).get(attr)
        setattr(owner, attr, value)

        def undo() -> None:
            if had:
                setattr(owner, attr, old)
            else:
                try:
                    delattr(owner, attr)
                except AttributeError:
                    pass

        self._undo.append(undo)
        self._patches.append((lambda: setattr(owner, attr, value), undo))

    def _install_target(self, name: str) -> bool:
        """Hook one name; False when it cannot be resolved yet (its module is not imported)."""
        if "." not in name:
            if name.isupper():
                self._env_rows.append(name)
            elif callable(vars(builtins).get(name)):
                self._call_row(vars(builtins)[name], name)  # eval, tuple, str: seen at lesson call sites
            return True
        state, owner, obj, attr = _resolve(name)
        if state == "missing" and name.rsplit(".", 1)[0] in _FACTORIES:
            self._factory_attribute(name.rsplit(".", 1)[0], owner, attr, name)
            return True
        if state == "pending":
            if _STATUS.get(name) == "removed" and isinstance(owner, types.ModuleType):
                self._hide_name(owner, None, name)  # only to see lesson lookups of the missing name
            return False
        if state == "missing":
            if _is_heap_type(owner) and owner is not torch.Tensor and _STATUS.get(name) != "removed":
                self._instance_attribute(owner, attr, name)
            return True
        if isinstance(obj, types.ModuleType):
            self._module_rows[obj.__name__] = name
            self._watch_module(obj, name)
            return True
        if self._is_dispatched(owner, obj, attr):
            if isinstance(obj, (types.GetSetDescriptorType, property)):
                return True  # the mode hands over descriptor.__get__: named in _fallback_name
            try:
                self._names.setdefault(obj, name)
            except TypeError:
                pass
            return True
        if isinstance(obj, type):
            if _is_heap_type(obj):
                self._class(obj, name)
            else:
                self._call_row(obj, name)  # constructing it at a lesson call site
                if not _in_stdlib(owner):
                    self._hide_name(owner, attr, name)
            return True
        if isinstance(owner, type):
            if not _is_heap_type(owner):
                self._static_attribute(owner, attr, obj, name)
                return True
            raw = inspect.getattr_static(owner, attr)
            if isinstance(raw, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
                self._property(owner, attr, raw, name)
            elif callable(raw) or isinstance(raw, (classmethod, staticmethod)):
                self._method(owner, attr, raw, name)
            return True
        if isinstance(owner, types.ModuleType):
            prop = inspect.getattr_static(type(owner), attr, None)
            if isinstance(prop, property):  # a module with properties (torch.backends.cudnn.benchmark)
                self._property(type(owner), attr, prop, name)
            elif callable(obj) and not isinstance(obj, type):
                self._function(owner, attr, obj, name)
            else:
                self._hide_name(owner, attr, name)
        return True

    def _install_pending(self) -> None:
        self._modules_seen = len(sys.modules)
        for name in list(self._pending):
            try:
                done = self._install_target(name)
            except Exception:  # noqa: BLE001 - a row that cannot be hooked is reported as never run
                done = True
            if done:
                self._pending.discard(name)
        self._replace_everywhere()

    def _is_dispatched(self, owner: Any, obj: Any, attr: str) -> bool:
        if owner is torch.Tensor or owner is torch._C.TensorBase:
            return not (isinstance(obj, types.FunctionType) and attr == "__new__")
        if not isinstance(obj, types.BuiltinFunctionType):
            return False  # Python functions are wrapped: many only dispatch for Tensor subclasses, not modes
        if owner is torch and getattr(torch._C._VariableFunctions, attr, None) is obj:
            return attr not in _NOT_DISPATCHED
        try:
            return obj in _overridable()
        except TypeError:
            return False

    # -- what only the rewritten cells can see
    def _call_row(self, obj: Any, name: str) -> None:
        self._by_id.setdefault(id(obj), (obj, name))

    def _static_attribute(self, owner: type, attr: str, obj: Any, name: str) -> None:
        """A method or operator of a C type (str.format, str.__mod__): seen when a cell calls it."""
        if not callable(obj):
            return
        self._by_method.setdefault((owner, attr), name)
        self._method_cache.clear()
        self._call_row(obj, name)  # str.format("{}", 1)
        if attr in _BINOP_DUNDERS.values():
            self._operators.setdefault(attr, {}).setdefault(owner, name)

    def _factory_attribute(self, factory: str, owner: Any, attr: str, name: str) -> None:
        """``collections.namedtuple._replace``: the method every class the factory makes shares."""
        made = _FACTORIES[factory](inspect.unwrap(owner))
        raw = inspect.getattr_static(made, attr, None)
        code = getattr(getattr(raw, "__func__", raw), "__code__", None)
        if isinstance(code, types.CodeType):
            self._by_code.setdefault(code, name)

    def _method_row(self, cls: type, attr: str) -> str | None:
        key = (cls, attr)
        try:
            return self._method_cache[key]
        except KeyError:
            pass
        row = None
        for base in cls.__mro__:
            row = self._by_method.get((base, attr))
            if row is not None or attr in vars(base):
                break
        self._method_cache[key] = row
        return row

    def _make_hooks(self) -> tuple[Callable[[Any], Any], Callable[[str, Any], Any]]:
        """The two functions a rewritten cell calls. They record, return their argument unchanged
        and never raise."""
        by_id, by_code, operators, record = self._by_id, self._by_code, self._operators, self.record
        method_row = self._method_row
        c_method, slot_method, bound, function = (
            types.BuiltinMethodType,
            types.MethodWrapperType,
            types.MethodType,
            types.FunctionType,
        )
        module = types.ModuleType

        def __torchcourse_call__(func: Any) -> Any:
            try:
                entry = by_id.get(id(func))
                if entry is not None:
                    if entry[0] is func:
                        record(entry[1])
                    return func
                kind = type(func)
                if kind is c_method or kind is slot_method:  # "{}".format, "%d".__mod__
                    owner = func.__self__
                    if not isinstance(owner, module):  # a module's builtin function: found by id
                        row = method_row(owner if isinstance(owner, type) else type(owner), func.__name__)
                        if row is not None:
                            record(row)
                elif kind is bound:  # point._replace
                    row = by_code.get(getattr(func.__func__, "__code__", None))
                    if row is not None:
                        record(row)
                elif kind is function:  # Point._replace(point, ...)
                    row = by_code.get(func.__code__)
                    if row is not None:
                        record(row)
            except Exception:  # noqa: BLE001 - the hook must never change what the lesson does
                pass
            return func

        def __torchcourse_operand__(dunder: str, value: Any) -> Any:
            try:
                rows = operators.get(dunder)
                if rows:
                    row = rows.get(type(value))
                    if row is None:
                        row = next((r for cls, r in rows.items() if isinstance(value, cls)), None)
                    if row is not None:
                        record(row)
            except Exception:  # noqa: BLE001
                pass
            return value

        return __torchcourse_call__, __torchcourse_operand__

    def _install_cell_hooks(self) -> None:
        hooks = self._make_hooks()
        for hook in hooks:
            had = hook.__name__ in vars(builtins)
            setattr(builtins, hook.__name__, hook)

            def undo(name: str = hook.__name__, had: bool = had) -> None:
                # Functions that rewritten cells defined may still run: leave a pass-through behind.
                if self.rewriter.cells or had:
                    setattr(builtins, name, _pass_through if name == CALL_HOOK else _pass_operand)
                else:
                    vars(builtins).pop(name, None)

            self._undo.append(undo)

    # -- wrappers
    def _without_mode(self, caller: types.FrameType, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Call a Python function that dispatches __torch_function__ itself with our mode off the stack:
        with a mode on, such a function runs its opening lines twice (torch.lu would warn twice)."""
        stack = torch.overrides._get_current_function_mode_stack()
        if self._mode not in stack:
            return self._trampoline(caller, func, args, kwargs)
        index = stack.index(self._mode)
        above = stack[index + 1 :]
        for _ in range(len(above) + 1):
            torch._C._pop_torch_function_stack()
        for mode in above:
            torch._C._push_on_torch_function_stack(mode)
        try:
            return self._trampoline(caller, func, args, kwargs)
        finally:
            now = torch.overrides._get_current_function_mode_stack()[index:]
            for _ in now:
                torch._C._pop_torch_function_stack()
            for mode in [self._mode, *now]:
                torch._C._push_on_torch_function_stack(mode)

    def _wrap(self, func: Callable[..., Any], name: str, mro_of_self: bool = False) -> Callable[..., Any]:
        tracer = self
        dispatches = _dispatches_itself(func)

        @functools.wraps(func)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if _PAUSED:
                return func(*args, **kwargs)
            caller = sys._getframe(1)
            if not (tracer._is_user(caller) or tracer._handed_over(caller, traced)):
                return tracer._trampoline(caller, func, args, kwargs)
            names = tracer._mro_names(type(args[0])) if mro_of_self and args else (name,)
            for each in names or (name,):
                tracer.record(each, ("none",))
            if dispatches:
                result = tracer._without_mode(caller, func, args, kwargs)
            else:
                result = tracer._trampoline(caller, func, args, kwargs)
            devices = tracer._devices(args, kwargs, result)
            for each in names or (name,):
                tracer.record(each, devices)
            return result

        traced.__torchcourse_traced__ = True  # type: ignore[attr-defined]
        return traced

    def _function(self, owner: types.ModuleType, attr: str, func: Any, name: str) -> None:
        if getattr(func, "__torchcourse_traced__", False):
            return
        self._queued[id(func)] = (func, self._wrap(func, name))
        self._wrappers.append(self._queued[id(func)][1])
        self._set(owner, attr, self._queued[id(func)][1])

    def adopt_namespace(self, namespace: dict[str, Any]) -> None:
        """The setup cell imports before ``tc.setup()`` starts the tracer: put wrappers in place of the
        functions it bound, and count the modules it imported (and the modules of what it imported)."""
        originals = {id(getattr(v, "__wrapped__", None)): v for v in self._wrappers}
        for key, value in list(namespace.items()):
            wrapper = originals.get(id(value))
            if wrapper is not None and wrapper.__wrapped__ is value:
                namespace[key] = wrapper
            module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(module, str) and module in self._target_set and not key.startswith("_"):
                self.record(module, ("none",))

    def _replace_everywhere(self) -> None:
        """Put each new wrapper wherever its function is bound, so ``torch.random.manual_seed is
        torch.manual_seed`` stays true (only in the packages the functions come from)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, {}
        tops = {(getattr(func, "__module__", None) or "torch").split(".")[0] for func, _ in queued.values()}
        for module_name, module in list(sys.modules.items()):
            if module_name.split(".")[0] not in tops or not isinstance(module, types.ModuleType):
                continue
            try:
                namespace = vars(module)
            except TypeError:
                continue
            for key, value in list(namespace.items()):
                entry = queued.get(id(value))
                if entry is not None and entry[0] is value:
                    self._set(module, key, entry[1])

    def _method(self, owner: type, attr: str, raw: Any, name: str, mro_of_self: bool = False) -> None:
        if isinstance(raw, classmethod):
            self._set(owner, attr, classmethod(self._wrap(raw.__func__, name)))
        elif isinstance(raw, staticmethod):
            self._set(owner, attr, staticmethod(self._wrap(raw.__func__, name)))
        elif (
            type(raw).__name__ in ("classmethod_descriptor", "builtin_function_or_method")
            and getattr(raw, "__self__", None) is not None
        ):
            bound = raw
            self._set(owner, attr, classmethod(self._wrap(lambda cls, *a, **k: bound(*a, **k), name)))
        elif type(raw).__name__ == "classmethod_descriptor":
            descriptor = raw
            self._set(
                owner, attr, classmethod(self._wrap(lambda cls, *a, **k: descriptor.__get__(None, cls)(*a, **k), name))
            )
        elif not getattr(raw, "__torchcourse_traced__", False):
            self._set(owner, attr, self._wrap(raw, name, mro_of_self))

    def _property(self, owner: type, attr: str, raw: Any, name: str) -> None:
        tracer = self

        def get(instance: Any) -> Any:
            if not _PAUSED and tracer._is_user(sys._getframe(1)):
                tracer.record(name, tracer._devices(instance))
            return raw.__get__(instance, type(instance))

        def set_(instance: Any, value: Any) -> None:
            if not _PAUSED and tracer._is_user(sys._getframe(1)):
                tracer.record(name, tracer._devices(instance))
            raw.__set__(instance, value)

        has_set = hasattr(raw, "__set__") and not (isinstance(raw, property) and raw.fset is None)
        torch.jit.unused(get)  # torch.jit.trace/script compile a Module's properties: not this one
        self._set(owner, attr, property(get, set_ if has_set else None, doc=getattr(raw, "__doc__", None)))

    def _instance_attribute(self, owner: type, attr: str, name: str) -> None:
        """A data descriptor that reads and writes the instance's __dict__ and records lesson reads."""
        tracer = self
        is_module = issubclass(owner, torch.nn.Module)

        def get(instance: Any) -> Any:
            if not _PAUSED and tracer._is_user(sys._getframe(1)):
                tracer.record(name, ("none",))
            try:
                return instance.__dict__[attr]
            except KeyError:
                if is_module:
                    return torch.nn.Module.__getattr__(instance, attr)
                raise AttributeError(f"{type(instance).__name__!r} object has no attribute {attr!r}") from None

        def set_(instance: Any, value: Any) -> None:
            instance.__dict__[attr] = value

        def delete(instance: Any) -> None:
            del instance.__dict__[attr]

        if "__slots__" in vars(owner) and "__dict__" not in vars(owner).get("__slots__", ()):
            return
        torch.jit.unused(get)  # torch.jit.trace/script compile a Module's properties: not this one
        self._set(owner, attr, property(get, set_, delete))

    def _hide_name(self, owner: Any, attr: str | None, name: str) -> None:
        """Serve ``owner.attr`` through the module's ``__getattr__`` so that reading it is seen."""
        if not isinstance(owner, types.ModuleType) or (attr is not None and attr not in vars(owner)):
            return
        hidden = vars(owner).get("__torchcourse_hidden__")
        if hidden is None:
            hidden = {}
            previous = vars(owner).get("__getattr__")
            tracer = self
            module_name = owner.__name__

            def __getattr__(key: str) -> Any:
                if key in hidden:
                    value, row = hidden[key]
                    if not _PAUSED and tracer._is_user(sys._getframe(1)):
                        tracer.record(row, ("none",))
                    return value
                row = f"{module_name}.{key}"
                if _STATUS.get(row) == "removed" and not _PAUSED and tracer._is_user(sys._getframe(1)):
                    tracer.shown.add(row)  # hasattr(torch, "ifft") is False: the lesson showed it is gone
                    tracer._dirty = True
                if previous is not None:
                    return previous(key)
                raise AttributeError(f"module {module_name!r} has no attribute {key!r}")

            self._set(owner, "__getattr__", __getattr__)
            self._set(owner, "__torchcourse_hidden__", hidden)
        if attr is None:
            return
        value = vars(owner)[attr]
        delattr(owner, attr)
        hidden[attr] = (value, name)

        def undo() -> None:
            hidden.pop(attr, None)
            setattr(owner, attr, value)

        def redo() -> None:
            delattr(owner, attr)
            hidden[attr] = (value, name)

        self._undo.append(undo)
        self._patches.append((redo, undo))

    def _watch_module(self, module: types.ModuleType, name: str) -> None:
        """Record ``name`` when lesson code reads an attribute of the module (or calls it: torch.fft(x))."""
        cls = type(module)
        if getattr(cls, "__torchcourse_traced__", False):
            return
        tracer = self

        def __getattribute__(self_: types.ModuleType, key: str) -> Any:
            if not _PAUSED and tracer._is_user(sys._getframe(1)):
                tracer.record(name, ("none",))
                row = tracer._hidden_row(self_, key)
                if row:
                    tracer.record(row, ("none",))
            return cls.__getattribute__(self_, key)

        namespace: dict[str, Any] = {"__getattribute__": __getattribute__, "__torchcourse_traced__": True}
        status = _STATUS.get(name)
        if status == "removed":  # the old callable form, e.g. torch.fft(x, 1): record the attempt, fail as before

            def __call__(self_: types.ModuleType, *args: Any, **kwargs: Any) -> Any:
                tracer.record(name, ("none",))
                raise TypeError("'module' object is not callable")

            namespace["__call__"] = __call__
        traced = type(cls.__name__, (cls,), namespace)
        module.__class__ = traced

        def undo() -> None:
            if type(module) is traced:
                module.__class__ = cls

        def redo() -> None:
            module.__class__ = traced

        self._undo.append(undo)
        self._patches.append((redo, undo))

    def _hidden_row(self, module: types.ModuleType, key: str) -> str | None:
        hidden = module.__dict__.get("__torchcourse_hidden__")
        entry = hidden.get(key) if hidden else None
        return entry[1] if entry else None

    def _mro_names(self, cls: type) -> tuple[str, ...]:
        names = self._mro_cache.get(cls)
        if names is None:
            names = self._mro_cache[cls] = tuple(n for base in cls.__mro__ for n in self._class_rows.get(base, ()))
        return names

    def _class(self, cls: type, name: str) -> None:
        self._class_rows.setdefault(cls, []).append(name)
        self._mro_cache.clear()
        if len(self._class_rows[cls]) > 1:
            return
        module_forward = torch.nn.Module.forward
        if (
            issubclass(cls, torch.nn.Module)
            and cls is not torch.nn.Module
            and getattr(cls, "forward", module_forward) is not module_forward
        ):
            return  # recorded by the global forward hook
        if issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            return  # recorded by the global step hook
        scheduler = getattr(torch.optim.lr_scheduler, "LRScheduler", None)
        if scheduler is not None and issubclass(cls, scheduler):
            owner = next(c for c in cls.__mro__ if "step" in vars(c))
            if not getattr(vars(owner)["step"], "__torchcourse_traced__", False):
                self._method(owner, "step", vars(owner)["step"], name, mro_of_self=True)
            return
        tracer = self
        if cls.__new__ is not object.__new__:  # (torch.FloatStorage.__new__ returns a TypedStorage: no __init__)
            new = cls.__new__

            @functools.wraps(new)
            def __new__(kind: type, *args: Any, **kwargs: Any) -> Any:
                if not _PAUSED and tracer._is_user(sys._getframe(1)):
                    tracer.record(name, ("none",))
                return new(kind, *args, **kwargs)

            self._set(cls, "__new__", staticmethod(__new__))
        elif cls.__init__ is not object.__init__:
            init = cls.__init__
            if not getattr(init, "__torchcourse_traced__", False):
                self._set(cls, "__init__", self._wrap(init, name, mro_of_self=False))
        # Subclassing in a lesson (class Net(nn.Module), class MyData(Dataset)) demonstrates the class too.
        original = vars(cls).get("__init_subclass__")

        def __init_subclass__(sub: type, **kwargs: Any) -> None:
            frame = None if _PAUSED else sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.endswith(_PLUMBING):
                frame = frame.f_back
            if tracer._is_user(frame):
                tracer.record(name, ("none",))
            if original is not None:
                original.__func__(sub, **kwargs)
            else:
                super(cls, sub).__init_subclass__(**kwargs)

        self._set(cls, "__init_subclass__", classmethod(__init_subclass__))

    def _install_dynamo_pause(self) -> None:
        """Get out of Dynamo's way by ourselves: every call of what ``torch.compile`` and
        ``torch._dynamo.explain`` return runs under :func:`paused`, so a lesson that compiles sees the graphs,
        breaks and warnings it gets without the tracer (Dynamo cannot trace the recorders, and it warns about
        their global module hook). ``torch._dynamo`` takes seconds to import, so its part is patched when a
        lesson first imports it (``_AfterImport``)."""
        self._set(torch, "compile", _pausing(torch.compile, decorates=True))
        if "torch._dynamo" in sys.modules:
            self._pause_dynamo(sys.modules["torch._dynamo"])
        else:
            finder = _AfterImport("torch._dynamo", self._pause_dynamo)
            sys.meta_path.insert(0, finder)
            self._undo.append(lambda: finder in sys.meta_path and sys.meta_path.remove(finder))

    def _pause_dynamo(self, dynamo: types.ModuleType) -> None:
        optimized = dynamo.eval_frame.OptimizedModule
        module_call = optimized.__call__

        def call_paused(module: Any, *args: Any, **kwargs: Any) -> Any:
            with paused():
                return module_call(module, *args, **kwargs)

        self._set(optimized, "__call__", call_paused)
        self._set(dynamo, "explain", _pausing(dynamo.explain))

    def _install_hooks(self) -> None:
        def forward_hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            names = self._mro_names(type(module))
            if names:
                devices = self._devices(args, output)
                for name in names:
                    self.record(name, devices)

        def step_hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            devices = self._devices(optimizer)
            for name in self._mro_names(type(optimizer)) + ("torch.optim.Optimizer.step",):
                self.record(name, devices)

        handles = [torch.nn.modules.module.register_module_forward_hook(forward_hook)]
        self._forward_hook_id = handles[0].id  # paused() lifts it out: Dynamo warns about global hooks
        from torch.optim.optimizer import register_optimizer_step_post_hook

        handles.append(register_optimizer_step_post_hook(step_hook))
        for handle in handles:
            self._undo.append(handle.remove)
        self._install_dynamo_pause()
        original_import = builtins.__import__
        tracer = self

        def __import__(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            module = original_import(name, globals, locals, fromlist, level)
            if tracer._pending and len(sys.modules) != tracer._modules_seen:
                tracer._install_pending()
            if level == 0 and not _PAUSED and tracer._is_user(sys._getframe(1)):
                for candidate in [name, *(f"{name}.{item}" for item in fromlist or ())]:
                    if candidate in tracer._target_set and isinstance(sys.modules.get(candidate), types.ModuleType):
                        tracer.record(candidate, ("none",))
            return module

        functools.update_wrapper(__import__, original_import)
        self._set(builtins, "__import__", __import__)

    # ------------------------------------------------------------------------ expect_* blocks
    def expect_begin(self) -> int:
        self._expect.append(set())
        return len(self._expect) - 1

    def expect_end(self, token: int, caught: Any) -> None:
        names: set[str] = set()
        for block in self._expect[token:]:
            names |= block
        del self._expect[token:]
        if self._expect:
            self._expect[-1] |= names
        if caught is not None:
            names |= _names_in_error(caught)
            if not names <= self.shown:
                self.shown |= names
                self._dirty = True

    # ----------------------------------------------------------------------------- writing
    def snapshot(self) -> dict[str, Any]:
        for name in self._env_rows:
            if os.environ.get(name):
                self.record(name, ("none",))
        return {
            "format": FORMAT,
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "cuda_available": self._cuda,
            "torch": torch.__version__,
            "calls": {name: sorted(devices) for name, devices in sorted(self.calls.items())},
            "shown": sorted(self.shown),
        }

    def flush(self, *_: Any) -> None:
        """Write the records (atomically) when something changed since the last write."""
        self._expect.clear()
        if self._pending and len(sys.modules) != self._modules_seen:
            self._install_pending()
        if self.path is None or not self._dirty:
            return
        try:
            data = json.dumps(self.snapshot(), indent=1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_text(data, encoding="utf-8")
            os.replace(partial, self.path)
            self._dirty = False
        except OSError:
            pass


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


class _CallSites(ast.NodeTransformer):
    def __init__(self, operators: set[str]) -> None:
        self.operators = operators

    @staticmethod
    def _hook(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])
        for node in (call, call.func, *(a for a in args if not hasattr(a, "lineno"))):
            ast.copy_location(node, like)
        return call

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("super", CALL_HOOK, OPERAND_HOOK):
            return node  # zero-argument super() stays as the compiler expects it
        node.func = self._hook(CALL_HOOK, [func], func)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        dunder = _BINOP_DUNDERS.get(type(node.op))
        if dunder in self.operators:
            node.left = self._hook(OPERAND_HOOK, [ast.Constant(dunder), node.left], node.left)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)  # subclassing a C type (class Pair(tuple)) demonstrates it too
        node.bases = [b if isinstance(b, ast.Starred) else self._hook(CALL_HOOK, [b], b) for b in node.bases]
        return node


class CellRewriter:
    """The IPython AST transformer behind the cell hooks (``shell.ast_transformers``).

    ``visit(tree)`` returns a rewritten copy of a cell's AST, or the tree unchanged if anything
    goes wrong (IPython would otherwise unregister it with a warning in the cell's output).
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.cells = 0

    def visit(self, tree: ast.AST) -> ast.AST:
        try:
            new = _CallSites(set(self.tracer._operators)).visit(copy.deepcopy(tree))
            ast.fix_missing_locations(new)
        except Exception:  # noqa: BLE001 - a cell the rewriter cannot handle runs as written
            return tree
        self.cells += 1
        return new

    def compile(self, source: str, filename: str = "<lesson>", mode: str = "exec") -> types.CodeType:
        """Compile ``source`` as a rewritten cell (for tests and scripts)."""
        return compile(self.visit(ast.parse(source, filename, mode)), filename, mode)


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


def _pausing(factory: Callable[..., Any], *, decorates: bool = False) -> Callable[..., Any]:
    """``factory`` (``torch.compile``, ``explain``) run under :func:`paused`, and so is every call of the callable
    it returns (modules excepted: an ``OptimizedModule`` pauses in its ``__call__``)."""

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        if decorates and not args and "model" not in kwargs:
            return lambda fn: make(fn, **kwargs)  # @torch.compile(mode=...): a decorator still to be applied
        with paused():
            made = factory(*args, **kwargs)
        if isinstance(made, torch.nn.Module) or not callable(made):
            return made

        @functools.wraps(made)
        def run(*call_args: Any, **call_kwargs: Any) -> Any:
            with paused():
                return made(*call_args, **call_kwargs)

        return run

    return make


class _AfterImport:
    """A ``sys.meta_path`` finder that calls ``then(module)`` once the module ``name`` has been imported."""

    def __init__(self, name: str, then: Callable[[types.ModuleType], None]) -> None:
        self.name, self.then, self.busy = name, then, False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name or self.busy:
            return None
        self.busy = True
        try:
            import importlib.util

            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is None or spec.loader is None:
            return None
        sys.meta_path.remove(self)
        run = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            self.then(module)

        spec.loader.exec_module = exec_module
        return spec


# ---------------------------------------------------------------------------------- the API
def active() -> Tracer | None:
    """The tracer running in this process, if any."""
    return _TRACER


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Run a block with torch as it is without the tracer: every wrapper, property and hidden name it set taken
    out, its torch-function mode off the stack, the cell hooks passing through and the global forward hook
    lifted out (all put back after).

    The tracer runs every call of what ``torch.compile`` and ``torch._dynamo.explain`` return in it by
    itself (``Tracer._install_dynamo_pause``), so lessons never call it: Dynamo cannot trace the recorders
    (they read the caller's frame), so with them on every operation would end a graph, and graph counts, breaks and
    warnings would differ from a run without the tracer. Nothing the block runs is recorded.
    """
    global _PAUSED
    tracer = _TRACER
    if tracer is None or tracer._mode is None or _PAUSED:
        yield
        return
    _PAUSED += 1
    patches = list(tracer._patches)
    for _, undo in reversed(patches):  # torch as it is without the tracer: Dynamo traces the real functions
        undo()
    stack = torch.overrides._get_current_function_mode_stack()
    above = stack[stack.index(tracer._mode) + 1 :] if tracer._mode in stack else None
    if above is not None:
        for _ in range(len(above) + 1):
            torch._C._pop_torch_function_stack()
        for mode in above:
            torch._C._push_on_torch_function_stack(mode)
    hooks = {name: vars(builtins).get(name) for name in (CALL_HOOK, OPERAND_HOOK)}
    setattr(builtins, CALL_HOOK, _pass_through)
    setattr(builtins, OPERAND_HOOK, _pass_operand)
    global_hooks = torch.nn.modules.module._global_forward_hooks
    forward_hook = global_hooks.pop(getattr(tracer, "_forward_hook_id", None), None)
    try:
        yield
    finally:
        for redo, _ in patches:
            redo()
        _PAUSED -= 1
        if forward_hook is not None:
            global_hooks[tracer._forward_hook_id] = forward_hook
        for name, hook in hooks.items():
            if hook is None:
                vars(builtins).pop(name, None)
            else:
                setattr(builtins, name, hook)
        if above is not None:
            for _ in range(len(above)):
                torch._C._pop_torch_function_stack()
            torch._C._push_on_torch_function_stack(tracer._mode)
            for mode in above:
                torch._C._push_on_torch_function_stack(mode)


def targets_from_inventory() -> list[str]:
    """Inventory names plus the modern replacements of deprecated, removed and external rows."""
    from .coverage import load_inventory, modern_names

    names = []
    for row in load_inventory():
        _STATUS[row["api"]] = row["status"]
        names.append(row["api"])  # python rows too: a builtin is a row like any other
        names.extend(modern_names(row["modern"]))
    return names


def start(directory: str | Path | None, targets: Iterable[str] | None = None, *, on_cells: bool = True) -> Tracer:
    """Install the recorders in this process; write records under ``directory`` (None: keep in memory)."""
    global _TRACER
    if _TRACER is not None:
        return _TRACER
    tracer = Tracer(directory, targets if targets is not None else targets_from_inventory())
    _TRACER = tracer.install()
    if on_cells:
        shell = _shell()
        if shell is not None:
            tracer.adopt_namespace(shell.user_ns)
            shell.events.register("post_run_cell", tracer.flush)
            shell.ast_transformers.append(tracer.rewriter)
    if directory is not None:
        import atexit

        atexit.register(tracer.flush)
    tracer.flush()
    return tracer


def stop() -> Tracer | None:
    """Take the recorders out again (tests); returns the stopped tracer with its records."""
    global _TRACER
    tracer, _TRACER = _TRACER, None
    if tracer is not None:
        import atexit

        atexit.unregister(tracer.flush)
        tracer.flush()
        tracer.uninstall()
        shell = _shell()
        if shell is not None:
            try:
                shell.events.unregister("post_run_cell", tracer.flush)
            except ValueError:
                pass
            if tracer.rewriter in shell.ast_transformers:
                shell.ast_transformers.remove(tracer.rewriter)
    return tracer


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None) if ipython else None
    return get() if get else None


def start_if_enabled() -> Tracer | None:
    """Start tracing when ``TORCHCOURSE_TRACE_DIR`` is set and this is a notebook kernel."""
    directory = os.environ.get(ENV_VAR)
    if not directory or _TRACER is not None:
        return _TRACER
    if _shell() is None and os.environ.get("TORCHCOURSE_TRACE_ANY") != "1":
        return None  # a plain Python process (pytest itself) is not a lesson
    return start(directory)


def expect_begin() -> int | None:
    """Called by ``tc.expect_error``/``expect_warning`` when their block starts."""
    return _TRACER.expect_begin() if _TRACER is not None else None


def expect_end(token: int | None, caught: Any) -> None:
    """Called when the block's error or warning was caught (``caught``), or with None when it was not."""
    if _TRACER is not None and token is not None:
        _TRACER.expect_end(token, caught)
