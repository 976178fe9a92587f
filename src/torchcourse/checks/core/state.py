"""Global state a learner's function could change: read it, restore it, and say in words what changed.

The guard reads :func:`_global_state` before and after every call of the learner's code; what
differs (:func:`_state_changes`) is reported and :func:`_restore` puts it back. Torch's own lazy
set-up (what it changes by itself on first use) is warmed up by :func:`warm_up` beforehand, so it
is never blamed on the learner.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
from torch._tensor_str import PRINT_OPTS


# Global state a learner's function could change: how to read it and how to put it back.
def _read_default_device() -> Any:
    return torch.get_default_device()


@functools.lru_cache(maxsize=1)
def warm_up() -> None:
    """Let torch do its one-time lazy set-up now, before any global state is recorded.

    Some of torch's global state changes by itself on first use: the first optimizer of a session
    imports ``torch._dynamo``, which sets ``TORCHINDUCTOR_CACHE_DIR`` in the environment; the first
    meta operation imports the meta kernels (seconds on a loaded machine). Done here, once per
    process and outside any time limit, none of it is ever blamed on the learner's function.
    """
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for step in (_warm_dynamo, _warm_optimizer, _warm_meta):
            with contextlib.suppress(Exception):
                step()


def _warm_dynamo() -> None:
    import torch._dynamo  # noqa: F401 - what torch.optim and torch.compile import on first use


def _warm_optimizer() -> None:
    weight = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()


def _warm_meta() -> None:
    x = torch.ones(2, 2, device="meta")
    ((x @ x + 1).sum(0) / 2).exp()
    torch.tensor([1.0], device="meta").view(1, -1)


_ABSENT = object()  # "the attribute did not exist": restored by deleting it, never by writing None


def _read_device_context() -> tuple[Any, Any]:
    """``torch.set_default_device``'s state, exactly: the context object (or its absence) and
    ``torch.utils._device.CURRENT_DEVICE``. Writing ``None`` where there was nothing breaks
    ``torch.get_default_device()`` on torch 2.6-2.10, so absence is kept as absence."""
    import torch.utils._device as device_module

    return (getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", _ABSENT),
            getattr(device_module, "CURRENT_DEVICE", _ABSENT))


def _write_device_context(saved: tuple[Any, Any]) -> None:
    import torch.utils._device as device_module

    for owner, name, value in ((torch._GLOBAL_DEVICE_CONTEXT, "device_context", saved[0]),
                               (device_module, "CURRENT_DEVICE", saved[1])):
        if value is _ABSENT:
            if hasattr(owner, name):
                delattr(owner, name)
        else:
            setattr(owner, name, value)


_PRINT_KEYS = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")


def _global_state() -> dict[str, Any]:
    from torch.backends import cudnn

    state: dict[str, Any] = {
        "grad mode (torch.is_grad_enabled())": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "anomaly detection": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        "the default dtype": torch.get_default_dtype(),
        "the default device": _read_default_device(),
        "deterministic algorithms": (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled()),
        "the cuDNN flags": (cudnn.enabled, cudnn.benchmark, cudnn.deterministic),
        "the float32 matmul precision": torch.get_float32_matmul_precision(),
        "the print options (torch.set_printoptions)": tuple(getattr(PRINT_OPTS, k) for k in _PRINT_KEYS),
        "the thread count (torch.set_num_threads)": torch.get_num_threads(),
        "the autocast state": tuple(
            (torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")
        ),
        "warn-always (torch.set_warn_always)": torch.is_warn_always_enabled(),
        "the global random generator's seed (torch.manual_seed)": torch.initial_seed(),
        "_rng": torch.get_rng_state(),
        "_modes": torch.overrides._get_current_function_mode_stack(),
        "_device_context": _read_device_context(),
        "_environ": dict(os.environ),
        "_imported": len(sys.modules),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["the CUDA random generators' seed"] = torch.cuda.initial_seed()
        state["_cuda_rng"] = torch.cuda.get_rng_state_all()
    state["an initialised process group (torch.distributed)"] = _process_group()
    return state


def _process_group() -> Any:
    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        return (dist.get_backend(), dist.get_world_size(), dist.get_rank())
    except Exception:  # noqa: BLE001
        return ("?", 0, 0)


def _restore(saved: dict[str, Any]) -> None:
    """Put back everything :func:`_global_state` read (each step on its own: one failure must not stop the rest)."""
    from torch.backends import cudnn

    def grad() -> None:
        torch.set_grad_enabled(saved["grad mode (torch.is_grad_enabled())"])

    def anomaly() -> None:
        torch.set_anomaly_enabled(*saved["anomaly detection"])

    def dtype() -> None:
        torch.set_default_dtype(saved["the default dtype"])

    def modes() -> None:
        while torch._C._len_torch_function_stack():
            torch._C._pop_torch_function_stack()
        for mode in saved["_modes"]:
            torch._C._push_on_torch_function_stack(mode)
        _write_device_context(saved["_device_context"])

    def deterministic() -> None:
        mode, warn_only = saved["deterministic algorithms"]
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)

    def backends() -> None:
        cudnn.enabled, cudnn.benchmark, cudnn.deterministic = saved["the cuDNN flags"]
        torch.set_float32_matmul_precision(saved["the float32 matmul precision"])

    def printing() -> None:
        for key, value in zip(_PRINT_KEYS, saved["the print options (torch.set_printoptions)"], strict=True):
            setattr(PRINT_OPTS, key, value)

    def threads() -> None:
        torch.set_num_threads(saved["the thread count (torch.set_num_threads)"])

    def autocast() -> None:
        for device, (enabled, dtype_) in zip(("cpu", "cuda"), saved["the autocast state"], strict=True):
            torch.set_autocast_enabled(device, enabled)
            torch.set_autocast_dtype(device, dtype_)

    def rng() -> None:
        torch.set_rng_state(saved["_rng"])
        if "_cuda_rng" in saved:
            torch.cuda.set_rng_state_all(saved["_cuda_rng"])

    def warn() -> None:
        torch.set_warn_always(saved["warn-always (torch.set_warn_always)"])

    def environ() -> None:
        if dict(os.environ) != saved["_environ"]:
            os.environ.clear()
            os.environ.update(saved["_environ"])

    def group() -> None:
        before, now = saved["an initialised process group (torch.distributed)"], _process_group()
        if before == now:
            return
        if now is not None:
            dist.destroy_process_group()
        if before is not None and before[1] == 1:
            dist.init_process_group(before[0], store=dist.HashStore(), rank=0, world_size=1)

    now = _global_state()
    steps = {
        "_modes": modes, "grad mode (torch.is_grad_enabled())": grad, "anomaly detection": anomaly,
        "the default dtype": dtype, "deterministic algorithms": deterministic, "the cuDNN flags": backends,
        "the float32 matmul precision": backends, "the print options (torch.set_printoptions)": printing,
        "the thread count (torch.set_num_threads)": threads, "the autocast state": autocast,
        "warn-always (torch.set_warn_always)": warn, "_environ": environ,
        "an initialised process group (torch.distributed)": group,
    }
    for key, step in steps.items():
        if key == "_modes":
            changed = now["_modes"] != saved["_modes"] or any(
                a is not b for a, b in zip(now["_device_context"], saved["_device_context"], strict=True))
        else:
            changed = now.get(key) != saved.get(key)
        if changed:
            try:
                step()
            except Exception:  # noqa: BLE001, S112 - restore what can be restored
                continue
    try:
        if not torch.equal(now["_rng"], saved["_rng"]) or "_cuda_rng" in saved:
            rng()
    except Exception:  # noqa: BLE001
        pass


def _state_changes(before: dict[str, Any], after: dict[str, Any], global_rng: bool,
                   reseeds: bool = False) -> list[str]:
    """What the learner's function changed, in words (``reseeds``: the generators' seeds may change)."""
    changes = []
    for key, old in before.items():
        if key.startswith("_") or (reseeds and "seed" in key):
            continue
        new = after.get(key)
        if old != new:
            changes.append(f"{key}: {_short(old)} → {_short(new)}")
    if [m for m in after["_modes"] if not _is_own_mode(m)] != [m for m in before["_modes"] if not _is_own_mode(m)]:
        if before["the default device"] == after["the default device"]:
            changes.append("a context (torch function mode) entered and never left")
    if after["_environ"] != before["_environ"]:
        keys = sorted(k for k in set(after["_environ"]) | set(before["_environ"])
                      if after["_environ"].get(k) != before["_environ"].get(k))
        if after.get("_imported", 0) > before.get("_imported", 0):
            # a library imported for the first time may set variables of its own (scikit-learn sets KMP_*): one
            # that was absent before is its set-up, not the learner's doing (it is still put back afterwards)
            keys = [k for k in keys if k in before["_environ"]]
        if keys:
            changes.append(f"the environment variables {', '.join(keys)}")
    if (not global_rng and not reseeds and not torch.equal(before["_rng"], after["_rng"])
            and not any("seed" in c for c in changes)):
        changes.append("the global random generator's state (you drew from it instead of the generator given)")
    return changes


def _is_own_mode(mode: Any) -> bool:
    from .instructions import _Recorder

    return isinstance(mode, _Recorder)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
