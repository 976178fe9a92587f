"""The bench helper on any accelerator: ``torch.accelerator`` (CUDA, mps, xpu) where torch has it, else torch.cuda.

No Mac or Intel GPU is at hand in the suite: ``torch.accelerator`` is replaced by a fake that reports an available
``mps`` device and records every synchronisation, and ``torch.Event`` by a fake event.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from torchcourse.bench import BenchResult, Timing

bench_module = importlib.import_module("torchcourse.bench")


class FakeAccelerator:
    """``torch.accelerator`` as on a Mac: ``mps`` is the build's accelerator and is available."""

    def __init__(self, kind: str = "mps", available: bool = True):
        self.kind, self.available, self.synced = kind, available, []

    def current_accelerator(self, check_available: bool = False):
        return torch.device(self.kind)

    def is_available(self) -> bool:
        return self.available

    def synchronize(self, device=None) -> None:
        self.synced.append(str(device))


class FakeEvent:
    made: list[tuple[str | None, bool]] = []

    def __init__(self, device=None, *, enable_timing=False):
        FakeEvent.made.append((device, enable_timing))
        self.recorded = self.waited = False

    def record(self, stream=None):
        self.recorded = True

    def synchronize(self):
        self.waited = True

    def elapsed_time(self, end):
        assert self.recorded and end.recorded and end.waited, "elapsed_time needs both events recorded, the end done"
        return 3.5


@pytest.fixture
def mps(monkeypatch):
    fake = FakeAccelerator()
    monkeypatch.setattr(torch, "accelerator", fake)
    monkeypatch.setattr(bench_module, "cuda_available", lambda: False)
    return fake


def test_sync_waits_through_torch_accelerator(mps):
    bench_module.sync("mps")
    bench_module.sync("cpu")  # synchronous: nothing to wait for
    assert mps.synced == ["mps"]


def test_sync_falls_back_to_torch_cuda_where_torch_has_no_accelerator_api(monkeypatch):
    waited = []
    monkeypatch.delattr(torch, "accelerator")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(str(device)))
    bench_module.sync("cuda:0")
    assert waited == ["cuda:0"]


def test_time_fn_on_an_accelerator_waits_for_it_around_every_block(mps):
    timing = bench_module.time_fn(lambda: None, "mps", warmup=1, min_run_time=0.002)
    assert timing.blocks >= bench_module.MIN_BLOCKS
    assert len(mps.synced) >= 2 * timing.blocks and set(mps.synced) == {"mps"}  # each block starts and ends waiting


def test_the_cpu_clock_is_not_touched(mps):
    bench_module.time_fn(lambda: None, "cpu", warmup=1, min_run_time=0.002)
    assert not {"cpu", "mps"} & set(mps.synced)  # the CPU's blocks are read on torch's own clock, as before


def test_the_accelerator_is_cuda_then_torch_accelerators_own(monkeypatch, mps):
    assert bench_module.accelerator() == "mps"
    mps.available = False
    assert bench_module.accelerator() is None
    monkeypatch.setattr(torch, "accelerator", FakeAccelerator("cuda"))  # a CUDA build: CUDA's answer is the course's
    assert bench_module.accelerator() is None  # (TORCHCOURSE_NO_CUDA, or no GPU)
    monkeypatch.setattr(bench_module, "cuda_available", lambda: True)
    assert bench_module.accelerator() == "cuda"


def test_device_ms_times_between_two_torch_events(monkeypatch, mps):
    FakeEvent.made = []
    monkeypatch.setattr(torch, "Event", FakeEvent, raising=False)
    calls = []
    assert bench_module.device_ms(lambda: calls.append(1), "mps", calls=4) == 3.5
    assert len(calls) == 4 and FakeEvent.made == [(torch.device("mps"), True)] * 2 and mps.synced == ["mps"]
    with pytest.raises(ValueError, match="CPU has no events"):
        bench_module.device_ms(lambda: None, "cpu")


def test_device_ms_falls_back_to_cuda_events(monkeypatch, mps):
    FakeEvent.made = []
    monkeypatch.delattr(torch, "Event")
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    assert bench_module.device_ms(lambda: None, "cuda") == 3.5
    assert FakeEvent.made == [(None, True), (None, True)]


def test_an_mps_column_is_shown_after_the_cpu_with_its_speed_up():
    timings = {"mps": [Timing(1e-3, 1e-4, 10, 10, 9e-4)], "cpu": [Timing(4e-3, 1e-4, 10, 10, 3.9e-3)]}
    result = BenchResult("mac", [64], ["cpu", "mps"], timings, flops=[1e6])
    header, rows = result.table()
    assert header == ["size", "cpu ms (IQR, 10 blocks)", "mps ms (IQR, 10 blocks)", "cpu fastest ms",
                      "mps fastest ms", "GPU/CPU speed-up", "cpu GFLOP/s", "mps GFLOP/s"]
    assert rows[0][5] == "4.00x" and result.speedup() == [4.0]
    assert "not available" not in str(result)
    only = BenchResult("mac", [64], ["mps"], {"mps": timings["mps"]})
    assert "Timed on MPS only." in str(only) and only.speedup() is None


def test_a_cpu_sweep_on_a_mac_says_how_to_time_its_accelerator(monkeypatch, mps):
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", "")
    meta = bench_module.environment()
    assert meta["accelerator"] == "mps" and "gpu" not in meta
    result = BenchResult("mac", [64], ["cpu"], {"cpu": [Timing(4e-3, 1e-4, 10, 10)]}, meta=meta)
    assert 'timed where a sweep asks for it (on=["cpu", "mps"])' in result.note()
