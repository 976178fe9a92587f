"""How the tracer installs its recorders (a part of :class:`torchcourse.tracing.Tracer`).

Read ``torchcourse.tracing`` first. :meth:`Installing.install` puts the torch-function mode on the stack and each
inventory row's recorder in place (:meth:`Installing._install_target`, retried for modules imported later); every
change goes through :meth:`Installing._set`, so ``uninstall`` and ``paused()`` can undo and redo it. The wrappers
for Python functions, methods, properties and instance attributes follow.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ._tracing_common import (
    _FACTORIES,
    _NOT_DISPATCHED,
    _STATUS,
    PAUSE,
    _dispatches_itself,
    _in_stdlib,
    _is_heap_type,
    _Mode,
    _overridable,
    _resolve,
)

if TYPE_CHECKING:
    from .tracing import Tracer


class Installing:
    """The installing half of the tracer; its state lives in ``Tracer.__init__``."""

    # ------------------------------------------------------------------------------- installing
    def install(self) -> Tracer:
        """Install every recorder; :meth:`uninstall` takes them all out again."""
        self._patches: list[tuple[Callable[[], None], Callable[[], None]]] = []  # (redo, undo): paused() uses them
        self._pending = set(self.targets)
        self._install_pending()
        self._install_hooks()
        self._install_torchscript()
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

    def _install_torchscript(self) -> None:
        """``torch.jit.script`` compiles what a module's code calls (``F.relu`` in ``nn.ReLU``): it must meet the
        functions themselves, not their recorders, which it can neither find among its builtins nor compile.
        Its two look-ups (called by name from C++ each time) are given the wrapped function instead."""
        import torch.jit._builtins as jit_builtins
        import torch.jit._recursive as jit_recursive

        find_builtin, try_compile_fn = jit_builtins._find_builtin, jit_recursive.try_compile_fn

        def unwrapped(fn: Any) -> Any:
            while getattr(fn, "__torchcourse_traced__", False):
                fn = fn.__wrapped__
            return fn

        self._set(jit_builtins, "_find_builtin", lambda fn: find_builtin(unwrapped(fn)))
        self._set(jit_recursive, "try_compile_fn", lambda fn, loc: try_compile_fn(unwrapped(fn), loc))

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
            if PAUSE.depth:
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
            if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
                tracer.record(name, tracer._devices(instance))
            return raw.__get__(instance, type(instance))

        def set_(instance: Any, value: Any) -> None:
            if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
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
            if not PAUSE.depth and tracer._is_user(sys._getframe(1)):
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
