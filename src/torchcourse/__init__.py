"""Helpers shared by the torchcourse notebooks: devices, timing, plots, lesson utilities, checks."""

from typing import Any

from . import devices as _devices
from .bench import bench, compare, sizes
from .devices import cuda_available, devices, environment_report, run_on_devices, synchronize
from .lesson import expect_error, expect_retired, expect_warning, fresh_dir, same_memory, setup, workdir

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``tc.DEVICES`` is computed on first use, so ``import torchcourse`` does not start CUDA (05.3)."""
    if name == "DEVICES":
        return _devices.DEVICES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DEVICES",
    "bench",
    "compare",
    "cuda_available",
    "devices",
    "environment_report",
    "expect_error",
    "expect_retired",
    "expect_warning",
    "fresh_dir",
    "run_on_devices",
    "same_memory",
    "setup",
    "sizes",
    "synchronize",
    "workdir",
]
