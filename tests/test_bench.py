"""The bench helper: sensible timings, thread count, presets, table, throughput and plotting."""

from __future__ import annotations

import importlib
import json
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


@pytest.mark.parametrize(("chosen", "expected"), [("quick", 1), ("full", None), ("3", 3)])
def test_timer_gets_the_thread_count_of_the_preset(monkeypatch, chosen, expected):
    seen = {}
    real_timer = bench_module.benchmark.Timer

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(bench_module.benchmark, "Timer", spy)
    if chosen.isdigit():
        monkeypatch.setenv("TORCHCOURSE_BENCH_THREADS", chosen)
    else:
        monkeypatch.delenv("TORCHCOURSE_BENCH_THREADS", raising=False)
        monkeypatch.setenv("TORCHCOURSE_BENCH", chosen)
    before, ran_on = torch.get_num_threads(), set()
    time_fn(lambda: ran_on.add(torch.get_num_threads()), "cpu", min_run_time=0.01)
    assert seen["num_threads"] == (expected or before)  # quick: one thread, full: all of them
    assert ran_on == {expected or before} and torch.get_num_threads() == before  # what the code ran on; restored


def test_a_table_timed_on_one_thread_says_so():
    timings = {"cpu": [Timing(1e-3, 1e-4, 10, 10, 9e-4)]}
    assert "CPU timed on 1 of 8 threads" in str(BenchResult("t", [8], ["cpu"], timings, meta={"threads": "1 of 8"}))
    assert "CPU timed on" not in str(BenchResult("t", [8], ["cpu"], timings, meta={"threads": "8 of 8"}))


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
    timings = {"cpu": [Timing(2e-3, 1e-4, 10, 10), Timing(8e-3, 1e-4, 10, 10)]}
    if cuda:
        timings["cuda"] = [Timing(4e-3, 1e-4, 10, 10), Timing(1e-3, 1e-4, 10, 10)]
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
    again = BenchResult.from_dict(json.loads((tmp_path / "r.json").read_text()))
    assert again == result


@pytest.mark.parametrize("cuda", [False, True])
def test_plot_draws_both_panels(cuda):
    import matplotlib

    matplotlib.use("Agg")
    time_ax, speed_ax = _fake(cuda).plot()
    _, labels = time_ax.get_legend_handles_labels()
    assert labels == (["cpu median (this machine)", "cuda median (this machine)"] if cuda
                      else ["cpu median (this machine)"])  # saved before the fastest block was kept: medians only
    assert bool(speed_ax.lines) == cuda
    timed = {"cpu": [Timing(2e-3, 1e-4, 10, 10, 1.5e-3), Timing(8e-3, 1e-4, 10, 10, 7e-3)]}
    time_ax, _ = BenchResult("fastest", [10, 20], ["cpu"], timed).plot()
    fastest = {line.get_label(): list(line.get_ydata()) for line in time_ax.lines}["cpu fastest block"]
    assert fastest == [1.5, 7.0]  # in ms, beside the medians


def test_every_measurement_has_blocks_and_a_measured_spread():
    x = torch.randn(64, 64)
    timing = time_fn(lambda: x @ x, "cpu", min_run_time=0.01)
    assert timing.blocks >= bench_module.MIN_BLOCKS
    assert timing.runs % timing.blocks == 0  # the same number of runs in every block
    assert timing.iqr > 0  # ten blocks of float times: the quartiles differ, unlike one block's IQR of 0


def test_the_best_block_is_recorded_and_gives_a_best_throughput():
    x = torch.randn(64, 64)
    timing = time_fn(lambda: x @ x, "cpu", min_run_time=0.01)
    assert 0 < timing.best <= timing.median  # the fastest block, never slower than the median block
    result = BenchResult("b", [64], ["cpu"], {"cpu": [timing]}, flops=[2 * 64**3])
    assert result.throughput("cpu", best=True)[0] >= result.throughput("cpu")[0]
    old = BenchResult("o", [64], ["cpu"], {"cpu": [Timing(1e-3, 1e-4, 10, 10)]}, flops=[1e6])
    assert old.throughput("cpu", best=True) == old.throughput("cpu")  # saved before best was recorded


def test_a_slow_call_still_gets_its_blocks():
    timing = time_fn(lambda: time.sleep(0.003), "cpu", warmup=0, min_run_time=0.001)
    assert timing.blocks == bench_module.MIN_BLOCKS and timing.runs == bench_module.MIN_BLOCKS  # one run per block


def test_results_saved_before_blocks_were_counted_still_load():
    old = {"label": "old", "sizes": [1], "devices": ["cpu"], "flops": None, "bytes": None, "meta": {},
           "timings": {"cpu": [{"median": 1.0, "iqr": 0.0, "runs": 5}]}}
    assert BenchResult.from_dict(old).timings["cpu"][0].blocks == 1


def test_without_cuda_the_table_says_so_once(monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", "")
    text = str(_fake(cuda=False))
    assert text.count("CUDA not available") == 1 and "no GPU reference run has been recorded" in text
    header, rows = _fake(cuda=False).table()
    assert header == ["size", "cpu ms (IQR, 10 blocks)", "cpu fastest ms", "cpu GFLOP/s"]
    assert all(len(r) == 4 for r in rows)


def test_a_cuda_only_sweep_has_no_cpu_columns():
    timings = {"cuda": [Timing(4e-3, 1e-4, 10, 10), Timing(1e-3, 1e-4, 10, 10)]}
    result = BenchResult("copies", [10, 20], ["cuda"], timings, bytes=[4e6, 8e6])
    header, _ = result.table()
    assert header == ["size", "cuda ms (IQR, 10 blocks)", "cuda fastest ms", "cuda GB/s"]
    assert "not available" not in str(result) and "Timed on CUDA only." in str(result)


def test_a_cpu_only_sweep_on_a_gpu_machine_does_not_claim_cuda_is_absent():
    timings = {"cpu": [Timing(4e-3, 1e-4, 10, 10)]}
    result = BenchResult("one thread", [10], ["cpu"], timings, meta={"gpu": "NVIDIA H100 80GB HBM3", "cuda": "13.0"})
    text = str(result)
    assert "not available" not in text and "Timed on the CPU only" in text
    assert "NVIDIA H100 80GB HBM3 is here but not timed" in text


def test_a_cpu_only_sweep_without_cuda_still_says_cuda_is_absent():
    timings = {"cpu": [Timing(4e-3, 1e-4, 10, 10)]}
    result = BenchResult("one thread", [10], ["cpu"], timings, meta={"threads": "2 of 2"})
    result.reference = None
    assert "CUDA not available here" in result.note() and "CPU only" not in result.note()


def _reference_file(tmp_path, sizes=(20, 40)):
    timings = {"cpu": [Timing(9e-3, 1e-4, 10, 10)] * len(sizes), "cuda": [Timing(1e-3, 1e-5, 10, 10)] * len(sizes)}
    recorded = BenchResult("fake", list(sizes), ["cpu", "cuda"], timings, flops=[16e6] * len(sizes),
                           meta={"torch": "2.99.0", "preset": "full"})
    path = tmp_path / "gpu-reference.json"
    path.write_text(json.dumps({"meta": {"gpu": "NVIDIA H200", "date": "2026-12-01", "torch": "2.99.0"},
                                "sweeps": {"fake": recorded.to_dict()}}))
    return path


def test_a_recorded_gpu_run_is_shown_beside_the_cpu_labelled_as_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", str(_reference_file(tmp_path)))
    result = bench(lambda n, d: (lambda: torch.ones(n, device=d)), [10, 20], label="fake", flops=lambda n: 1e6,
                   on=["cpu"], min_run_time=0.002)
    assert result.reference is not None and result.reference.meta["gpu"] == "NVIDIA H200"
    header, rows = result.table()
    assert header[-2:] == ["cuda ms (recorded)", "cuda GFLOP/s (recorded)"]
    assert [r[0] for r in rows] == ["10", "20", "40"]  # the union of the two sweeps' sizes
    assert rows[0][-2] == "-" and rows[1][-2] == "1" and rows[2][1] == "-"
    note = result.note()
    assert "NVIDIA H200" in note and "2.99.0" in note and "2026-12-01" in note and "recorded, not measured here" in note
    assert str(result).count("not available") == 1
    assert bench_module.reference("another label") is None


def test_the_plot_draws_the_recorded_run(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", str(_reference_file(tmp_path, sizes=(10, 20))))
    result = _fake(cuda=False)
    result.reference = bench_module.reference("fake")
    time_ax, speed_ax = result.plot()
    _, labels = time_ax.get_legend_handles_labels()
    assert "cuda, recorded on NVIDIA H200" in labels
    _, speed_labels = speed_ax.get_legend_handles_labels()
    assert "recorded on NVIDIA H200" in speed_labels  # the recorded machine's own speed-up


def test_no_reference_file_means_no_overlay(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", str(tmp_path / "absent.json"))
    assert bench_module.reference("fake") is None
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", "")
    assert bench_module.reference("fake") is None


def test_save_bench_writes_every_sweep_with_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_SAVE_BENCH", str(tmp_path / "sweeps"))
    result = bench(lambda n, d: (lambda: torch.ones(n, device=d)), [8], label="n x n matmul", on=["cpu"],
                   min_run_time=0.002)
    saved = json.loads((tmp_path / "sweeps" / "n-x-n-matmul.json").read_text())
    assert BenchResult.from_dict(saved) == result
    for key in ("torch", "threads", "cpu capability", "preset", "date"):
        assert saved["meta"][key]
    assert saved["meta"]["threads"] == f"{bench_module.cpu_threads()} of {torch.get_num_threads()}"


def _measures(monkeypatch, timings, calibrations=None):
    """time_fn with its measurements (and calibration times) replaced by these, in order."""
    taken = iter(timings)
    monkeypatch.setattr(bench_module, "_measure_many", lambda fns, *a: [next(taken) for _ in fns])
    monkeypatch.setattr(bench_module, "_QUIETEST", [])
    if calibrations is not None:
        times = iter(calibrations)
        monkeypatch.setattr(bench_module, "calibrate", lambda: next(times))


def test_a_quiet_measurement_is_taken_once(monkeypatch):
    _measures(monkeypatch, [Timing(1e-3, 1e-4, 100, 10, 9e-4)], [1.0, 1.1])
    t = time_fn(lambda: None, "cpu", warmup=0)
    assert (t.busy, t.attempts, t.median) == (False, 1, 1e-3)


def test_blocks_that_spread_are_measured_again_and_the_quietest_is_kept(monkeypatch):
    noisy = [Timing(2e-3, 3e-3, 100, 10, 1e-3), Timing(1.5e-3, 1e-3, 100, 10, 1e-3), Timing(1e-3, 1e-4, 100, 10, 9e-4)]
    _measures(monkeypatch, noisy, [1.0] * 6)
    t = time_fn(lambda: None, "cpu", warmup=0)
    assert (t.busy, t.attempts, t.median) == (False, 3, 1e-3)


def test_a_measurement_still_disturbed_after_every_attempt_is_marked_busy_and_explained(monkeypatch):
    noisy = [Timing(2e-3, 3e-3, 100, 10, 1e-3), Timing(1.5e-3, 1e-3, 100, 10, 1e-3), Timing(3e-3, 9e-3, 100, 10, 1e-3)]
    _measures(monkeypatch, noisy, [1.0] * 6)
    t = time_fn(lambda: None, "cpu", warmup=0)
    assert (t.busy, t.attempts, t.median) == (True, 3, 1.5e-3)  # the least spread of the three
    result = BenchResult("b", [8, 16], ["cpu"], {"cpu": [Timing(1e-3, 1e-4, 100, 10, 9e-4), t]})
    assert result.busy() == [("cpu", 16)]
    text = str(result)
    assert text.count(bench_module.BUSY_MARK) == 1 and "busy while timing" in text and "Rerun the cell" in text
    assert "busy while timing" in result._repr_html_()


def test_a_calibration_job_slowed_around_a_measurement_marks_it_busy(monkeypatch):
    steady = Timing(1e-3, 1e-4, 100, 10, 9e-4)  # its blocks agree: only the calibration tells
    _measures(monkeypatch, [steady] * 2, [1.0, 3.0, 1.0, 1.1])  # slowed after the first, quiet around the second
    t = time_fn(lambda: None, "cpu", warmup=0)
    assert (t.busy, t.attempts) == (False, 2)
    _measures(monkeypatch, [steady] * 3, [1.0, 2.0] * 3)
    assert time_fn(lambda: None, "cpu", warmup=0).busy


def test_calibration_is_a_fixed_job_of_about_a_millisecond():
    assert 1e-5 < bench_module.calibrate() < 0.1


def test_a_cpu_sweep_is_timed_twice_and_the_less_disturbed_pass_kept_whole(monkeypatch):
    made, calls = [], []
    first = [Timing(1e-3, 1e-4, 10, 10, 5e-3), Timing(2e-3, 1e-4, 10, 10, 1.9e-3)]  # size 8 stalled in pass 1
    second = [Timing(1e-3, 1e-4, 10, 10, 0.9e-3), Timing(2e-3, 9e-3, 10, 10, 1.8e-3, busy=True)]
    taken = iter(first + second)
    def time_fns(fns, *args, **kwargs):
        calls.append(len(fns))
        return [next(taken) for _ in fns]

    monkeypatch.setattr(bench_module, "time_fns", time_fns)
    result = bench(lambda n, d: made.append(n) or (lambda: None), [8, 16], label="twice", on=["cpu"])
    assert made == [8, 16] and calls == [2, 2]  # each size's inputs made once; each pass times both sizes together
    assert [t.best for t in result.timings["cpu"]] == [5e-3, 1.9e-3]  # the quiet pass, never sizes from two passes
    assert [t.attempts for t in result.timings["cpu"]] == [2, 2]


def test_the_sizes_of_a_sweep_are_timed_in_turn_block_by_block():
    order = []
    result = bench(lambda n, d: (lambda: order.append(n)), [1, 2, 3], label="sizes", on=["cpu"], min_run_time=0.001)
    runs = [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n]  # one entry per stretch of one size
    assert len(runs) >= 3 * bench_module.COMPARE_BLOCKS  # a block of each in turn, not size by size
    assert all(t.blocks >= bench_module.COMPARE_BLOCKS for t in result.timings["cpu"])


def test_compared_workloads_are_timed_in_turn_block_by_block():
    order = []
    makes = {k: (lambda n, d, k=k: lambda: order.append(k)) for k in "ab"}
    results = bench_module.compare(makes, [8], on=["cpu"], min_run_time=0.001)
    assert list(results) == ["a", "b"] and all(r.sizes == [8] and r.label == k for k, r in results.items())
    measured = "".join(order)
    assert measured.count("ab") + measured.count("ba") >= bench_module.COMPARE_BLOCKS  # a block of each, round by round
    a, b = results["a"].timings["cpu"][0], results["b"].timings["cpu"][0]
    assert a.blocks == b.blocks >= bench_module.COMPARE_BLOCKS and a.attempts == b.attempts >= 2  # two CPU passes


def test_a_comparison_keeps_one_attempt_for_all_its_workloads(monkeypatch):
    quiet, noisy = Timing(1e-3, 1e-4, 100, 10, 9e-4), Timing(1e-3, 9e-4, 100, 10, 5e-4)
    _measures(monkeypatch, [quiet, noisy, quiet, quiet], [1.0] * 4)  # attempt 1: b disturbed; attempt 2: both quiet
    a, b = bench_module.time_fns([lambda: None, lambda: None], "cpu", warmup=0)
    assert (a.busy, b.busy, a.attempts, b.attempts) == (False, False, 2, 2)
    assert b.best == 9e-4  # from the second attempt, with a's, never the first attempt's faster but disturbed block


def test_an_interleaved_block_follows_untimed_runs_that_settle_it():
    calls = {"a": 0, "b": 0}
    fns = [lambda: calls.__setitem__("a", calls["a"] + 1), lambda: calls.__setitem__("b", calls["b"] + 1)]
    a, b = bench_module._measure_many(fns, 1, 0.001, 4)
    for k, t in zip("ab", (a, b), strict=True):  # half a block of untimed runs before each block
        per_block = t.runs // t.blocks
        assert calls[k] - t.runs >= t.blocks * -(-per_block // 2), (k, calls[k], t)
    alone = {"n": 0}
    t = bench_module._measure_many([lambda: alone.__setitem__("n", alone["n"] + 1)], 1, 0.001, 4)[0]
    assert alone["n"] - t.runs <= 3  # alone, its blocks follow each other: runs to size the blocks, nothing to settle


def test_a_cpu_only_sweep_timed_on_a_machine_with_cuda_says_it_chose_the_cpu(monkeypatch):
    # CUDA mocked present (the package's cuda_available, the name torch reports): the whole path, bench to note
    monkeypatch.setattr(bench_module, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H100 (mocked)")
    monkeypatch.setenv("TORCHCOURSE_BENCH", "quick")
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", "")
    result = bench(lambda n, d: (lambda: torch.ones(n, device=d)), [8], label="cpu by choice", on=["cpu"],
                   min_run_time=0.002)
    note = result.note()
    assert "not available" not in note and "Timed on the CPU only (this sweep's choice" in note
    assert "NVIDIA H100 (mocked) is here but not timed" in note


def test_preset_sizes_rise_and_every_cpu_cap_keeps_a_prefix():
    for name, table in bench_module.PRESETS.items():
        for workload, chosen in table.items():
            assert list(chosen) == sorted(set(chosen)), (name, workload)  # rising: the CPU's sizes are a prefix
    for name, caps in bench_module.CPU_MAX.items():
        assert set(caps) <= set(bench_module.PRESETS[name]), name
        for workload, top in caps.items():
            chosen = bench_module.PRESETS[name][workload]
            assert chosen[0] <= top < chosen[-1], (name, workload)  # a cap that times something and cuts something


def _timed_sizes(monkeypatch):
    """compare() with time_fns faked: returns {device: sizes it was asked to time} as they are made."""
    made: dict[str, list[int]] = {}

    def make(n, device):
        made.setdefault(device, []).append(n)
        return lambda: None

    def fake_time_fns(fns, device, **kwargs):
        return [Timing(1e-3 * (i + 1), 1e-5, 10, 10, 1e-3 * (i + 1)) for i in range(len(fns))]

    monkeypatch.setattr(bench_module, "time_fns", fake_time_fns)
    monkeypatch.setenv("TORCHCOURSE_GPU_REFERENCE", "")
    return made, make


def test_the_full_preset_times_the_cpu_beside_a_gpu_only_up_to_its_cap(monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_BENCH", "full")
    made, make = _timed_sizes(monkeypatch)
    result = bench_module.bench(make, "matmul", label="mm", flops=lambda n: 2 * n**3, on=["cpu", "cuda"])
    everything, top = bench_module.PRESETS["full"]["matmul"], bench_module.CPU_MAX["full"]["matmul"]
    assert made["cuda"] == list(everything) and made["cpu"] == [n for n in everything if n <= top]
    assert result.sizes == list(everything) and result.sizes_on("cpu") == made["cpu"]
    assert len(result.speedup()) == len(made["cpu"])  # where both were timed
    assert len(result.throughput("cpu")) == len(made["cpu"]) and len(result.throughput("cuda")) == len(everything)
    header, rows = result.table()
    last = dict(zip(header, rows[-1], strict=True))
    assert last["cpu fastest ms"] == "-" and last["GPU/CPU speed-up"] == "-" and last["cuda fastest ms"] != "-"
    assert f"CPU timed up to {top:,} only" in result.note()
    assert BenchResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert not result.busy()
    import matplotlib

    matplotlib.use("Agg")
    time_ax, speed_ax = result.plot()
    drawn = {line.get_label(): len(line.get_xdata()) for line in time_ax.lines}
    assert drawn["cpu fastest block"] == len(made["cpu"]) and drawn["cuda fastest block"] == len(everything)
    assert len(speed_ax.lines[0].get_xdata()) == len(made["cpu"])


def test_a_cpu_timed_alone_or_a_sweep_of_given_sizes_is_never_capped(monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_BENCH", "full")
    made, make = _timed_sizes(monkeypatch)
    alone = bench_module.bench(make, "matmul", label="mm", on=["cpu"])
    assert made["cpu"] == list(bench_module.PRESETS["full"]["matmul"]) and alone.sizes_on("cpu") == alone.sizes
    assert "CPU timed up to" not in alone.note()
    made.clear()
    bench_module.bench(make, [64, 8192], label="mm", on=["cpu", "cuda"])
    assert made == {"cpu": [64, 8192], "cuda": [64, 8192]}
    monkeypatch.setenv("TORCHCOURSE_BENCH", "quick")  # quick sizes are a CPU's: nothing to cap
    assert bench_module.sizes("matmul", "cpu") == bench_module.sizes("matmul")
