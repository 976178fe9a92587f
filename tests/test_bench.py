"""The bench helper: sensible timings, thread count, presets, table, throughput and plotting."""

from __future__ import annotations

import importlib
import math
import time

import pytest
import torch

from torchcourse.bench import BenchResult, Timing, bench, preset, sizes, time_fn

# `torchcourse.bench` is also the name of the function the package exports; take the module itself.
bench_module = importlib.import_module("torchcourse.bench")


def test_known_sleep_is_measured_sensibly():
    timing = time_fn(lambda: time.sleep(0.002), "cpu", min_run_time=0.05)
    assert 0.002 <= timing.median < 0.006  # never less than the sleep; the slack is for a loaded machine
    assert timing.iqr >= 0 and timing.runs >= 5


def test_bigger_matmul_takes_longer():
    # One thread: the suite runs beside other processes, and two OpenMP threads on two busy cores
    # stall at their barriers, which would measure the machine's load instead of the matmul.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        small, big = (torch.randn(n, n) for n in (32, 256))
        t_small = min(time_fn(lambda: small @ small, "cpu", min_run_time=0.05).median for _ in range(3))
        t_big = min(time_fn(lambda: big @ big, "cpu", min_run_time=0.05).median for _ in range(3))
    finally:
        torch.set_num_threads(previous)
    assert t_big > 4 * t_small  # 512x the FLOPs; anything less than 4x would mean we time overhead


def test_timer_gets_the_real_thread_count(monkeypatch):
    seen = {}
    real_timer = bench_module.benchmark.Timer

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(bench_module.benchmark, "Timer", spy)
    time_fn(lambda: None, "cpu", min_run_time=0.01)
    assert seen["num_threads"] == torch.get_num_threads()


def test_warmup_runs_before_timing():
    calls = []
    time_fn(lambda: calls.append(1), "cpu", warmup=3, min_run_time=0.001)
    assert len(calls) > 3


def test_presets_choose_quick_without_cuda(monkeypatch):
    monkeypatch.delenv("TORCHCOURSE_BENCH", raising=False)
    monkeypatch.setenv("TORCHCOURSE_NO_CUDA", "1")
    assert preset() == "quick"
    assert sizes("matmul") == bench_module.PRESETS["quick"]["matmul"]
    monkeypatch.setenv("TORCHCOURSE_BENCH", "full")
    assert sizes("matmul") == bench_module.PRESETS["full"]["matmul"]


def test_presets_cover_the_same_workloads():
    assert set(bench_module.PRESETS["quick"]) == set(bench_module.PRESETS["full"])


def test_unknown_preset_and_workload_are_explained(monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_BENCH", "huge")
    with pytest.raises(ValueError, match="TORCHCOURSE_BENCH"):
        preset()
    monkeypatch.setenv("TORCHCOURSE_BENCH", "quick")
    with pytest.raises(KeyError, match="known workloads"):
        sizes("nope")


def test_bench_on_cpu_reports_cuda_absent():
    result = bench(lambda n, d: (lambda: torch.ones(n, device=d)), [16, 64], label="ones", bytes=lambda n: 4 * n,
                   on=["cpu"], min_run_time=0.005)
    assert result.sizes == [16, 64] and result.speedup() is None
    assert all(t.median > 0 and math.isfinite(t.median) for t in result.timings["cpu"])
    text = str(result)
    assert "CUDA not available" in text and "GB/s" in text
    assert "<table>" in result._repr_html_()


def _fake(cuda: bool) -> BenchResult:
    timings = {"cpu": [Timing(2e-3, 1e-4, 10), Timing(8e-3, 1e-4, 10)]}
    if cuda:
        timings["cuda"] = [Timing(4e-3, 1e-4, 10), Timing(1e-3, 1e-4, 10)]
    return BenchResult("fake", [10, 20], list(timings), timings, flops=[2e6, 16e6])


def test_speedup_and_throughput_arithmetic():
    result = _fake(cuda=True)
    assert result.speedup() == pytest.approx([0.5, 8.0])
    assert result.throughput("cpu") == pytest.approx([1.0, 2.0])  # 2e6 FLOP / 2e-3 s = 1 GFLOP/s
    assert result.throughput("cuda") == pytest.approx([0.5, 16.0])
    assert "8.00x" in str(result) and "GFLOP/s" in str(result)


def test_result_round_trips_through_json(tmp_path):
    result = _fake(cuda=True)
    result.save(tmp_path / "r.json")
    import json

    again = BenchResult.from_dict(json.loads((tmp_path / "r.json").read_text()))
    assert again == result


@pytest.mark.parametrize("cuda", [False, True])
def test_plot_draws_both_panels(cuda):
    import matplotlib

    matplotlib.use("Agg")
    time_ax, speed_ax = _fake(cuda).plot()
    assert len(time_ax.lines) == (2 if cuda else 1)
    assert bool(speed_ax.lines) == cuda
