"""What the tracer watches without wrapping a call (a part of :class:`torchcourse.tracing.Tracer`).

Read ``torchcourse.tracing`` first. The rows only rewritten cells can see (builtins, C methods, factory-made
methods: :meth:`Watching._make_hooks`); names read through a module's ``__getattr__``
(:meth:`Watching._hide_name`, :meth:`Watching._watch_module`); classes, by construction, subclassing, forward or
step (:meth:`Watching._class`, :meth:`Watching._install_hooks`).
"""

from __future__ import annotations

import builtins
import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

import torch

from ._tracing_common import (
    _BINOP_DUNDERS,
    _FACTORIES,
    _PLUMBING,
    _STATUS,
    CALL_HOOK,
    PAUSE,
    _pass_operand,
    _pass_through,
)


class Watching:
    """The watching half of the tracer; its state lives in ``Tracer.__init__``."""

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
                    if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
                        tracer.record(row, ("none",))
                    return value
                row = f"{module_name}.{key}"
                if _STATUS.get(row) == "removed" and not PAUSE.depth and tracer._is_user(sys._getframe(1)):
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
            if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
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
                if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
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
            frame = None if PAUSE.depth else sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.endswith(_PLUMBING):
                frame = frame.f_back
            if tracer._is_user(frame):
                tracer.record(name, ("none",))
            if original is not None:
                original.__func__(sub, **kwargs)
            else:
                super(cls, sub).__init_subclass__(**kwargs)

        self._set(cls, "__init_subclass__", classmethod(__init_subclass__))

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
            if level == 0 and not PAUSE.depth and tracer._is_user(sys._getframe(1)):
                for candidate in [name, *(f"{name}.{item}" for item in fromlist or ())]:
                    if candidate in tracer._target_set and isinstance(sys.modules.get(candidate), types.ModuleType):
                        tracer.record(candidate, ("none",))
            return module

        functools.update_wrapper(__import__, original_import)
        self._set(builtins, "__import__", __import__)
