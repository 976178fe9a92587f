"""Which devices a lesson runs on, how to wait for them, and how to prove they agree."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "DEVICES",
    "TF32_TOLERANCE",
    "EnvironmentReport",
    "cuda_available",
    "devices",
    "environment_report",
    "move_to",
    "run_on_devices",
    "simulate_cuda",
    "synchronize",
    "tf32_enabled",
]


def cuda_available() -> bool:
    """True when a CUDA device can be used (set TORCHCOURSE_NO_CUDA=1 to pretend otherwise).

    ``torch.cuda.is_available()`` asks the CUDA runtime (``cudaGetDeviceCount``), which starts the
    driver (``cuInit``): from then on this process's ``CUDA_VISIBLE_DEVICES`` is fixed and a
    ``fork`` of it cannot use the GPU, even though ``torch.cuda.is_initialized()`` is still False.
    So the package never asks at import; ``TORCHCOURSE_NO_CUDA=1`` answers without asking at all.
    """
    return os.environ.get("TORCHCOURSE_NO_CUDA") != "1" and torch.cuda.is_available()


def devices() -> list[str]:
    """The devices to demonstrate on: ``['cpu']``, plus ``'cuda'`` when it is available."""
    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


#: ``devices()`` as first asked for (a bare annotation: the value comes from ``__getattr__`` below).
DEVICES: list[str]


@functools.cache
def _devices_once() -> list[str]:
    return devices()


def __getattr__(name: str) -> Any:
    """``DEVICES``, the devices of :func:`devices`, asked for on first use rather than at import.

    Importing the package must not start the CUDA driver (lesson 05.3): a script that imports
    torchcourse can still set ``CUDA_VISIBLE_DEVICES`` afterwards, or fork workers safely.
    """
    if name == "DEVICES":
        return _devices_once()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on ``device``: ``torch.accelerator.synchronize`` where torch has it (CUDA, mps,
    xpu...), else ``torch.cuda.synchronize``; nothing on the CPU, which is synchronous. The bench helper times
    through it (``bench.sync``)."""
    if torch.device(device).type == "cpu":
        return
    generic = getattr(torch, "accelerator", None)
    if generic is not None and hasattr(generic, "synchronize"):
        generic.synchronize(device)
    else:
        torch.cuda.synchronize(device)


@dataclass
class EnvironmentReport:
    """Versions and hardware a notebook ran on; renders as a table in Jupyter."""

    rows: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        width = max(len(k) for k in self.rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows.items())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in self.rows.items())
        return f"<table>{body}</table>"


def environment_report() -> EnvironmentReport:
    """torch, CUDA and cuDNN versions, GPU name and memory, CPU threads: the top of every notebook."""
    rows = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "CPU threads": str(torch.get_num_threads()),
        "devices": ", ".join(devices()),
    }
    if cuda_available():
        props = torch.cuda.get_device_properties(0)
        rows["CUDA"] = str(torch.version.cuda)
        rows["cuDNN"] = str(torch.backends.cudnn.version())
        rows["GPU"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB, {props.multi_processor_count} SMs"
    else:
        rows["CUDA"] = f"not available (torch built with CUDA {torch.version.cuda})"
    return EnvironmentReport(rows)


def _to_cpu(value: Any) -> Any:
    """Move every tensor inside ``value`` (nested lists, tuples, dicts) to the CPU for comparing."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def move_to(value: Any, device: str) -> Any:
    """Copy the tensors in ``value`` to ``device``, keeping ``requires_grad`` leaves as leaves."""
    if isinstance(value, torch.Tensor):
        moved = value.detach().to(device)
        return moved.requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    return value


def _leaves(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` that require grad, in a stable order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.requires_grad else []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _leaves(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _leaves(value[k])]
    return []


#: How far a float32 result computed with TF32 may be from the CPU's: TF32 keeps 10 mantissa bits
#: (about three decimal digits) of each input to a convolution or matmul, float32 keeps 23.
TF32_TOLERANCE: dict[str, float] = {"atol": 1e-2, "rtol": 1e-2}


def tf32_enabled(device: str | torch.device, *, cudnn: bool = True) -> bool:
    """True when float32 convolutions or matmuls on ``device`` may run in TF32 (CUDA, Ampere or later).

    cuDNN kernels (convolutions, RNNs) use TF32 by default (``torch.backends.cudnn.allow_tf32``); matmuls do
    only when asked (``allow_tf32`` or ``torch.set_float32_matmul_precision("high")``). ``cudnn=False`` asks
    about work that ran no cuDNN kernel: only the matmul switches count then.
    """
    device = torch.device(device)
    if device.type != "cuda" or not cuda_available():
        return False
    if torch.cuda.get_device_capability(device)[0] < 8:  # TF32 tensor cores start with Ampere
        return False
    with warnings.catch_warnings():  # newer releases steer towards fp32_precision; the old flags still answer
        warnings.simplefilter("ignore")
        matmul = torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
        return bool(matmul or (cudnn and torch.backends.cudnn.allow_tf32))


class _CudnnSpy(TorchDispatchMode):
    """Notes whether a block ran an operator that may go to cuDNN (a convolution or a cuDNN RNN, forward or
    backward), the only kernels that ``torch.backends.cudnn.allow_tf32`` (on by default) puts in TF32."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func)
        self.seen = self.seen or "convolution" in name or "cudnn" in name
        return func(*args, **(kwargs or {}))


def _has_float32(value: Any) -> bool:
    """True when ``value`` holds a float32 or complex64 tensor (the dtypes TF32 rounds)."""
    if isinstance(value, torch.Tensor):
        return value.dtype in (torch.float32, torch.complex64)
    if isinstance(value, (list, tuple)):
        return any(_has_float32(v) for v in value)
    if isinstance(value, dict):
        return any(_has_float32(v) for v in value.values())
    return False


def _tolerance(
    device: str, value: Any, atol: float | None, rtol: float | None, cudnn: bool = False
) -> dict[str, float | None]:
    """The tolerances to compare ``value`` from ``device`` with: the caller's, else TF32's where it applies
    (``cudnn``: the work ran a cuDNN kernel)."""
    if atol is None and rtol is None and tf32_enabled(device, cudnn=cudnn) and _has_float32(value):
        return dict(TF32_TOLERANCE)
    return {"atol": atol, "rtol": rtol}


def run_on_devices(
    fn: Callable[..., Any],
    *args: Any,
    on: Sequence[str] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    backward: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run ``fn`` on copies of the inputs on every device and assert the results (and gradients) agree.

    Tensors in ``args``/``kwargs`` are copied to each device. When the result is a scalar tensor
    and some input requires grad, ``backward()`` runs too and the gradients are compared. With
    ``backward=True`` a result of any shape is back-propagated too, from the same fixed random
    gradient on every device (made on the CPU from seed 0), so the whole output and the gradient of
    every input that requires grad (a layer's parameters, passed as inputs) are compared.
    Returns ``{device: result}`` so the lesson can keep asserting on any of them.

    Without ``atol``/``rtol``, results are compared with ``torch.testing.assert_close``'s defaults
    for their dtype, except float32 results from a CUDA device that computed in TF32: those get
    :data:`TF32_TOLERANCE`. That is when the matmul switches allow TF32, or when ``fn`` (or its backward)
    ran a cuDNN kernel, which uses TF32 by default on Ampere and later; element-wise work keeps float32's.

    Without CUDA (and without ``on=``), ``fn`` also runs once on *simulated* CUDA (:func:`simulate_cuda`):
    the placement, shapes and dtypes a GPU would give are checked, values are not.
    """
    results: dict[str, Any] = {}
    grads: dict[str, list[torch.Tensor | None]] = {}
    chosen = list(on or devices())
    cudnn: dict[str, bool] = {}
    for device in chosen:
        dev_args, dev_kwargs = move_to(args, device), move_to(kwargs, device)
        spy = _CudnnSpy() if tf32_enabled(device) else None  # only where cuDNN's TF32 could widen the tolerance
        with spy if spy is not None else contextlib.nullcontext():
            result = fn(*dev_args, **dev_kwargs)
            leaves = _leaves((dev_args, dev_kwargs))
            if leaves and isinstance(result, torch.Tensor) and result.requires_grad and (
                    result.numel() == 1 or backward):
                result.backward(None if result.numel() == 1 else _probe_gradient(result))
                grads[device] = [leaf.grad for leaf in leaves]
        results[device] = result
        cudnn[device] = spy is not None and spy.seen
    reference_device, *others = list(results)
    for device in others:
        torch.testing.assert_close(
            _to_cpu(results[device]), _to_cpu(results[reference_device]),
            **_tolerance(device, results[device], atol, rtol, cudnn[device]),
            msg=lambda m, d=device: f"{d} disagrees with {reference_device}: {m}",
        )
        if device in grads:
            torch.testing.assert_close(
                _to_cpu(grads[device]), _to_cpu(grads[reference_device]),
                **_tolerance(device, grads[device], atol, rtol, cudnn[device]),
                msg=lambda m, d=device: f"gradients on {d} disagree with {reference_device}: {m}",
            )
    if on is None and "cuda" not in results and "cpu" in results:
        simulate_cuda(fn, args, kwargs, results["cpu"])
    return results


def _probe_gradient(result: torch.Tensor) -> torch.Tensor:
    """The gradient a non-scalar result is back-propagated from: random, and the same on every device."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(result.shape, generator=generator, dtype=result.dtype).to(result.device)


def simulate_cuda(fn: Callable[..., Any], args: tuple, kwargs: dict, expected: Any) -> bool:
    """Run ``fn(*args, **kwargs)`` on simulated CUDA (``torchcourse.simcuda``) and assert what a GPU would.

    No mixed devices, and a result on the GPU with the shapes and dtypes of ``expected`` (the CPU's result).
    True when it proved that; False when the simulation could not run ``fn`` (it reads values: ``.item()``,
    printing, data-dependent shapes; or calls ``backward()``), which proves nothing either way and is no
    failure. Lesson 05.1 says what it shows.
    """
    from . import simcuda, tracing

    try:  # the API tracer is paused: the CPU run already recorded what fn calls
        with tracing.paused():
            if not simcuda.available():
                return False
            simulation = simcuda.Simulation()
            fake_args, fake_kwargs = simulation.to_fake_cuda((args, kwargs))
            with simulation:
                placed = _placement(fn(*fake_args, **fake_kwargs))
    except Exception as error:  # noqa: BLE001 - classified: a device mismatch fails, the rest proves nothing
        if simcuda.classify(error) == simcuda.MISMATCH:
            raise AssertionError(f"on a GPU this fails, as simulated CUDA shows: it mixes devices ({error})") from error
        return False
    wanted = _placement(expected, device=simcuda.DEVICE.type)
    assert placed == wanted, f"on a GPU the result would be {placed}, not {wanted} (simulated CUDA)"
    return True


def _placement(value: Any, device: str | None = None) -> Any:
    """Each tensor in ``value`` as (device type, shape, dtype); ``device`` replaces the device type."""
    if isinstance(value, torch.Tensor):
        return (device or value.device.type, tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return [_placement(v, device) for v in value]
    if isinstance(value, dict):
        return {k: _placement(v, device) for k, v in value.items()}
    return None
