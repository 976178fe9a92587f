"""Helpers shared by the torchcourse notebooks: devices, timing, plots, lesson utilities, checks."""

from .bench import bench, sizes
from .devices import DEVICES, cuda_available, devices, environment_report, run_on_devices, synchronize
from .lesson import expect_error, expect_warning, same_memory, setup, workdir

__version__ = "0.1.0"

__all__ = [
    "DEVICES",
    "bench",
    "cuda_available",
    "devices",
    "environment_report",
    "expect_error",
    "expect_warning",
    "run_on_devices",
    "same_memory",
    "setup",
    "sizes",
    "synchronize",
    "workdir",
]
