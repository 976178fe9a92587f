"""Simulated CUDA: ``cuda`` tensors without a GPU, to prove where a computation's tensors live.

Inside a :class:`Simulation`, torch's fake tensors (``FakeTensorMode``) stand in for CUDA tensors:
they carry a shape, a dtype and the device ``cuda:0``, but no data. Every operation checks its
devices as on a real GPU, so code that mixes a CPU tensor into a CUDA computation raises, and a
tensor created without ``device=`` shows up on the CPU::

    from torchcourse import simcuda

    if simcuda.available():
        sim = simcuda.Simulation()
        x = sim.to_fake_cuda(torch.randn(3, 4))        # fake, on cuda:0
        with sim:
            y = x + torch.arange(4, device=x.device)     # fine: y is on cuda:0
            try:
                x + torch.arange(4)                      # a real GPU refuses this too
            except Exception as error:
                assert simcuda.classify(error) == simcuda.MISMATCH

What it proves: the placement of every tensor in a forward computation, a ``.numpy()`` called
on a CUDA tensor and a CPU tensor indexed with CUDA indices (a probe raises what a GPU would). What
it cannot run: anything that reads values (``.item()``, ``bool(t)``, ``.tolist()``, data-dependent
shapes such as ``nonzero``), ``.numpy()`` after ``.cpu()`` (no data to hand over), ``backward()``, and
operators without a fake kernel. Such an error is :data:`INCONCLUSIVE`: it says nothing about the
code, which may well be right.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

import torch

__all__ = ["DEVICE", "ERROR", "INCONCLUSIVE", "MISMATCH", "Simulation", "SimulatedDeviceError", "SimulationLimit",
           "available", "classify", "left_behind"]

DEVICE = torch.device("cuda", 0)
"""The device every simulated tensor lives on."""

MISMATCH = "device mismatch"
"""The code mixes devices or hands a CUDA tensor to what only takes CPU memory: a real GPU fails too."""

INCONCLUSIVE = "inconclusive"
"""The simulation cannot run this (values, data-dependent shapes, backward...): nothing is proven."""

ERROR = "error"
"""Not an exception at all (``classify(None)``)."""


class SimulationLimit(RuntimeError):
    """Raised where the simulation cannot go on (``.numpy()`` of a simulated tensor has no values)."""


class SimulatedDeviceError(TypeError):
    """Raised where a real GPU would refuse: ``.numpy()`` of a CUDA tensor."""


_MISMATCH_TEXT = re.compile(
    r"same device|found at least two devices|found two different devices|expected device|but got \w+ device|"
    r"device mismatch|on the same device as the indexed tensor|can't convert cuda|Mismatching \S+ device between",
    re.IGNORECASE,
)


def classify(error: BaseException | None) -> str:
    """:data:`MISMATCH` when the error proves devices were mixed, else :data:`INCONCLUSIVE` (:data:`ERROR` for None)."""
    if error is None:
        return ERROR
    from torch._subclasses import fake_tensor

    # torch 2.11 raises a plain RuntimeError ("... found two different devices"); later releases a subclass
    mismatch = getattr(fake_tensor, "FakeTensorDeviceMismatchError", SimulatedDeviceError)
    if isinstance(error, (mismatch, SimulatedDeviceError)):
        return MISMATCH
    if isinstance(error, SimulationLimit):
        return INCONCLUSIVE
    if isinstance(error, RuntimeError) and _MISMATCH_TEXT.search(str(error)):
        return MISMATCH
    return INCONCLUSIVE


def _index_tensors(index: Any) -> list[torch.Tensor]:
    if isinstance(index, torch.Tensor):
        return [index]
    if isinstance(index, (tuple, list)):
        return [t for part in index for t in _index_tensors(part)]
    return []


class _GpuRefusals(torch.overrides.TorchFunctionMode):
    """What a GPU refuses and fake tensors would not: ``.numpy()`` (and ``np.asarray``) of a CUDA tensor, and a
    CPU tensor indexed with CUDA indices (``cpu[cuda_index]``, ``cpu[cuda_index] = v``)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ("__getitem__", "__setitem__") and len(args) >= 2 and isinstance(args[0], torch.Tensor):
            tensor = args[0]
            if tensor.device.type == "cpu" and any(t.device.type == "cuda" and t.dim() > 0
                                                   for t in _index_tensors(args[1])):
                raise SimulatedDeviceError(
                    "indices should be either on cpu or on the same device as the indexed tensor (cpu)"
                )
        if name in ("numpy", "__array__") and args and isinstance(args[0], torch.Tensor):
            tensor = args[0]
            if tensor.device.type == "cuda":
                raise SimulatedDeviceError(
                    f"can't convert {tensor.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                    "tensor to host memory first."
                )
            raise SimulationLimit(".numpy() of a simulated tensor: it has no values to hand over")
        return func(*args, **(kwargs or {}))


class Simulation:
    """One simulated GPU session: enter it (as often as needed) to run code on fake ``cuda`` tensors.

    Tensors made by :meth:`to_fake_cuda` belong to this session: use them inside it only.
    """

    def __init__(self) -> None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        self.mode = FakeTensorMode(allow_non_fake_inputs=True)
        self._entered: list[_GpuRefusals] = []

    def __enter__(self) -> Simulation:
        self.mode.__enter__()
        probe = _GpuRefusals()
        try:
            probe.__enter__()
        except BaseException:
            self.mode.__exit__(None, None, None)
            raise
        self._entered.append(probe)
        return self

    def __exit__(self, *exc: Any) -> None:
        probe = self._entered.pop()
        try:
            _remove_function_mode(probe)
        finally:
            self.mode.__exit__(*exc)

    def to_fake_cuda(self, obj: Any) -> Any:
        """A copy of ``obj`` with every tensor, module and optimizer state on simulated CUDA.

        Tensors keep their ``requires_grad``; modules are deep-copied (outside the simulation, as a
        module made inside it cannot be moved) and then moved; lists, tuples, named tuples and dicts
        are rebuilt; anything else is kept as it is.
        """
        copied = _copy(obj)
        moves = _Moves()
        with self:
            moved = moves.move(copied)
            moves.fix_optimizers()
        return moved


def _remove_function_mode(mode: torch.overrides.TorchFunctionMode) -> None:
    """Take ``mode`` off torch's function-mode stack, wherever it is: code run inside may have pushed others."""
    above = []
    while torch._C._len_torch_function_stack():
        top = torch._C._pop_torch_function_stack()
        if top is mode:
            break
        above.append(top)
    for other in reversed(above):
        torch._C._push_on_torch_function_stack(other)


def _copy(obj: Any) -> Any:
    """A real copy: one deepcopy keeps a model and its optimizer pointing at the same parameters."""
    try:
        return copy.deepcopy(obj)
    except Exception:  # noqa: BLE001 - non-leaf tensors refuse deepcopy: the move copies them anyway
        return obj


class _Moves:
    """Moves one structure; optimizers last, once the parameters they hold have their simulated twins."""

    def __init__(self) -> None:
        self.seen: dict[int, Any] = {}
        self.twins: dict[int, torch.Tensor] = {}  # id of a real parameter -> its simulated twin
        self.optimizers: list[torch.optim.Optimizer] = []

    def move(self, obj: Any) -> Any:
        if id(obj) in self.seen:
            return self.seen[id(obj)]
        if isinstance(obj, torch.nn.Parameter):
            moved: Any = torch.nn.Parameter(obj.detach().to(DEVICE), requires_grad=obj.requires_grad)
            self.twins[id(obj)] = moved
        elif isinstance(obj, torch.Tensor):
            moved = obj.detach().to(DEVICE).requires_grad_(obj.requires_grad) if obj.is_leaf else obj.to(DEVICE)
        elif isinstance(obj, torch.nn.Module):
            before = list(obj.parameters())
            moved = obj.to(DEVICE)
            self.twins.update((id(a), b) for a, b in zip(before, moved.parameters(), strict=False))
        elif isinstance(obj, torch.optim.Optimizer):
            self.optimizers.append(obj)
            moved = obj
        elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
            moved = type(obj)(*(self.move(v) for v in obj))
        elif isinstance(obj, (list, tuple)):
            moved = type(obj)(self.move(v) for v in obj)
        elif isinstance(obj, dict):
            moved = {k: self.move(v) for k, v in obj.items()}
        else:
            moved = obj
        self.seen[id(obj)] = moved
        return moved

    def fix_optimizers(self) -> None:
        """Point each optimizer at the simulated parameters, with its state moved alongside."""
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["params"] = [self.twins[id(p)] if id(p) in self.twins else self.move(p) for p in group["params"]]
            state = {}
            for p, values in optimizer.state.items():
                twin = self.twins.get(id(p), p)
                state[twin] = {k: v.to(DEVICE) if isinstance(v, torch.Tensor) and not (k == "step" and v.dim() == 0)
                               else v for k, v in values.items()}
            optimizer.state.clear()
            optimizer.state.update(state)


def left_behind(obj: Any) -> list[str]:
    """The parameters, buffers and optimizer state reachable in ``obj`` that are not on simulated CUDA."""
    found: list[str] = []
    for item in _walk(obj):
        if isinstance(item, torch.nn.Module):
            label = type(item).__name__
            for name, p in item.named_parameters():
                if p.device.type != DEVICE.type:
                    found.append(f"the parameter {name} of the {label}")
            for name, b in item.named_buffers():
                if b.device.type != DEVICE.type:
                    found.append(f"the buffer {name} of the {label}")
        elif isinstance(item, torch.optim.Optimizer):
            for n, state in enumerate(item.state.values()):
                for key, value in state.items():
                    if (isinstance(value, torch.Tensor) and value.device.type != DEVICE.type
                            and not (key == "step" and value.dim() == 0)):
                        found.append(f"the optimizer state {key!r} of parameter {n}")
    return found


def _walk(obj: Any) -> list[Any]:
    if isinstance(obj, (torch.nn.Module, torch.optim.Optimizer)):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _walk(v)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _walk(v)]
    return []


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Can this torch simulate CUDA? (Fake tensors on ``cuda`` and their device checks work.)"""
    try:
        sim = Simulation()
        x = sim.to_fake_cuda(torch.ones(2, 2))
        model = sim.to_fake_cuda(torch.nn.Linear(2, 2))
        with sim:
            y = model(x @ x + torch.zeros(2, device=x.device))
            if y.device != DEVICE or model.weight.device != DEVICE:
                return False
            try:
                x + torch.ones(2)
            except Exception as error:  # noqa: BLE001
                return classify(error) == MISMATCH
        return False
    except Exception:  # noqa: BLE001 - no fake tensors in this torch: no simulation
        return False
