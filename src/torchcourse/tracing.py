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

The route through the code: this module holds :class:`Tracer` (its state, how a call is recorded and named, the
``expect_*`` blocks, writing the records) and the API (``start``, ``stop``, ``paused``...). The tracer's other
halves are mixins: ``_tracing_install.py`` installs the recorders (the torch-function mode, wrappers for functions,
methods and properties, every change undoable), ``_tracing_watch.py`` watches what cannot be wrapped (the cell
hooks' rows, names read from modules, classes, the global forward and step hooks). ``_tracing_rewrite.py`` rewrites
cells, and ``_tracing_common.py`` holds the constants and small helpers they share, with the pause counter.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import sys
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

# _STATUS and _pass_through are read here by the tests.
from ._tracing_common import (  # noqa: F401
    _BINARY_OP,
    _BINARY_SUBSCR,
    _COMPARE_OP,
    _COMPARISONS,
    _LEGACY_OPS,
    _NB_OPS,
    _PLUMBING,
    _STATUS,
    _STORE_SUBSCR,
    CALL_HOOK,
    OPERAND_HOOK,
    PAUSE,
    _hashable,
    _library_prefixes,
    _Mode,
    _names_in_error,
    _pass_operand,
    _pass_through,
    _Trampoline,
)
from ._tracing_install import Installing
from ._tracing_rewrite import CellRewriter
from ._tracing_watch import Watching

ENV_VAR = "TORCHCOURSE_TRACE_DIR"
FORMAT = 1

_TRACER: Tracer | None = None


class Tracer(Installing, Watching):
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
    tracer = _TRACER
    if tracer is None or tracer._mode is None or PAUSE.depth:
        yield
        return
    PAUSE.depth += 1
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
        PAUSE.depth -= 1
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
