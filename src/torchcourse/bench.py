"""Time a workload on every device, the right way: warm-up, device sync, chosen CPU threads, median and IQR.

Every timed cell in the course goes through :func:`bench`. Sizes come from :data:`PRESETS`, the one
place that decides how big a sweep is: ``quick`` keeps a CPU-only run (and the test suite) fast,
``full`` is what a GPU needs before its advantage shows. ``TORCHCOURSE_BENCH=quick|full`` overrides
the choice, which defaults to ``full`` when CUDA is present and ``quick`` otherwise. Beside an accelerator, the
CPU's column of a ``full`` sweep stops at :data:`CPU_MAX` (a GPU's largest sizes would take it minutes).

Each measurement is the median and interquartile range (IQR) over at least :data:`MIN_BLOCKS`
blocks of runs (one block would give an IQR of 0, a spread that was never measured). With
``TORCHCOURSE_SAVE_BENCH=folder`` every sweep is also saved there as JSON with its environment.
A GPU run recorded for the course (``data/gpu-reference.json``, written by ``tools/gpu_run.sh``)
is shown beside a CPU-only learner's numbers, labelled as recorded, not measured here.

A busy machine (another program sharing the cores) slows some blocks and not others. Each
measurement checks its own noise: the spread of its blocks, and a fixed calibration job timed
before and after it against the quietest time this process has seen. A disturbed measurement is
taken again (:data:`ATTEMPTS` in all), and a CPU sweep is timed twice (:data:`CPU_PASSES`), the less disturbed
pass kept whole; one still disturbed is marked ``busy`` and the table says,
in plain words, to rerun the cell. The fastest block (``best``) is the figure to compare across
sizes or devices; the median, with its IQR, is the typical run. The sizes of a sweep, and workloads compared with
each other (:func:`compare`), are timed together, their blocks interleaved and twice as many
(:data:`COMPARE_BLOCKS`), so that load falls on each alike and each has its quiet blocks.

A device other than the CPU is waited for through ``torch.accelerator`` where this torch has it (CUDA, Apple's
``mps``, Intel's ``xpu`` alike), else through ``torch.cuda`` (:func:`sync`), and timed between two events
(:func:`device_ms`, ``torch.Event``, else ``torch.cuda.Event``): a learner with a Mac or an Intel GPU passes
``on=["cpu", "mps"]``. The route through the modules: :func:`bench` (one workload) → :func:`compare` (sizes,
devices, passes) → :func:`time_fns` (attempts, calibration) → ``_measure_many`` (interleaved blocks), all here;
then ``benchresult.py``'s :class:`BenchResult` (table, note, JSON; ``plotting.py`` draws it) and :func:`reference`
(the recorded GPU run). ``workloads.py`` holds the factories (``make_matmul``, ``make_add``, ``make_sum``) that
several timed lessons share.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import tracing
from .benchresult import BUSY_MARK, REFERENCE_FILE, BenchResult, Timing, _file_name, reference
from .devices import cuda_available, devices, synchronize

# Importing torch.utils.benchmark logs "No CUDA runtime is found" on CPU-only machines: it concerns
# compiling C++ extensions, which the course never does, and would add noise to every notebook.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def _benchmark() -> Any:
    """``torch.utils.benchmark``, imported at the first timing rather than with the package.

    Its import pulls in ``torch.utils.cpp_extension``, which calls ``torch.cuda.is_available()``
    wherever a CUDA toolkit is installed, and that starts the CUDA driver: ``import torchcourse``
    must not (lesson 05.3).
    """
    from torch.utils import benchmark

    return benchmark


def __getattr__(name: str) -> Any:
    if name == "benchmark":  # ``bench.benchmark``, for tests that spy on its Timer
        return _benchmark()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BUSY_MARK", "CPU_MAX", "PRESETS", "REFERENCE_FILE", "BenchResult", "Timing", "accelerator", "bench",
           "compare", "cpu_threads", "device_ms", "environment", "preset", "reference", "sizes", "sync", "time_fn",
           "time_fns"]

#: Sweep sizes per workload. The meaning of a size is the workload's own (n for an n x n matmul,
#: element count for element-wise ops, batch size for a model step). ``regime_*`` and ``overhead_calls``
#: are timed on one CPU thread (lesson 05.8), so both presets share their sizes.
PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "quick": {
        "matmul": (32, 128, 384),
        "elementwise": (2**8, 2**14, 2**20),
        "reduction": (2**8, 2**14, 2**20),
        "mlp": (8, 32, 128),
        "conv": (2, 4),
        "copy": (2**16, 2**20),
        "checkpoint": (2, 4),
        "loader_batch": (1, 8, 32),
        "loader_workers": (0, 2),
        "loader_wait": (16,),
        "loop": (2**6, 2**8, 2**10),
        "elementwise_dram": (2**22, 2**24),
        "conv_train": (2, 8),
        "lstm": (4, 16),
        "train_step": (16, 256),
        "peak_matmul": (512,),
        "regime_add": (2**4, 2**8, 2**12, 2**18, 2**22),
        "regime_matmul": (16, 64, 256, 512),
        "overhead_calls": (16, 256),
        "cuda_graph_ops": (16,),
        "compile_chain": (2**4, 2**10, 2**16),
    },
    "full": {
        "matmul": (64, 256, 1024, 2048, 4096),
        "elementwise": (2**8, 2**12, 2**16, 2**20, 2**24, 2**26),
        "reduction": (2**8, 2**12, 2**16, 2**20, 2**24, 2**26),
        "mlp": (8, 64, 512, 4096, 16384),
        "conv": (8, 32, 128),
        "copy": (2**16, 2**20, 2**24, 2**26),
        "checkpoint": (8, 16, 32),
        "loader_batch": (1, 8, 64, 256),
        "loader_workers": (0, 2, 4),
        "loader_wait": (16, 32),
        "loop": (2**6, 2**8, 2**10),
        "elementwise_dram": (2**24, 2**26),
        "conv_train": (8, 32, 128),
        "lstm": (16, 64, 256),
        "train_step": (64, 256, 1024),
        "peak_matmul": (3072, 6144),
        "regime_add": (2**4, 2**8, 2**12, 2**18, 2**22),
        "regime_matmul": (16, 64, 256, 512),
        "overhead_calls": (16, 256),
        "cuda_graph_ops": (16, 64),
        "compile_chain": (2**4, 2**10, 2**16, 2**20),
    },
}

#: The largest size the CPU is timed at, per preset and workload, when an accelerator is timed beside it: the
#: ``full`` sizes are a GPU's, and the CPU's column stops before its calls take a large part of a second each (a
#: 6144 x 6144 matmul, an autograd step over 2**26 elements), once its rate has levelled off. Without the cap, on a GPU
#: machine the CPU's share of a sweep took minutes (review ch05, C7). A CPU timed alone gets every size, and a
#: sweep given as a list of sizes is never capped. The sizes of a preset rise, so the CPU's are a prefix.
CPU_MAX: dict[str, dict[str, int]] = {
    "quick": {},
    "full": {"matmul": 2048, "elementwise": 2**20, "reduction": 2**20, "mlp": 4096, "peak_matmul": 3072},
}

#: CPU threads a timing uses, per preset. ``quick`` is for CPU-only machines, where a browser or another program
#: shares the cores: one thread, so that no thread of an operation waits for another that is not scheduled (on a
#: shared 2-core machine that wait is a whole time slice, and no block escapes it). ``full`` (None) uses every
#: thread torch has. ``TORCHCOURSE_BENCH_THREADS=N`` overrides both.
THREADS: dict[str, int | None] = {"quick": 1, "full": None}

#: Seconds of repeated runs per measurement: the blocks continue until they add up to this much.
MIN_RUN_TIME = {"quick": 0.02, "full": 0.2}

#: Blocks per measurement, at least: the median and the IQR are taken over the blocks' per-run times.
MIN_BLOCKS = 10
#: Blocks per measurement when several are timed together (the sizes of a sweep, workloads compared): a ratio of two
#: fastest blocks is fair when each had its quiet blocks, and on a loaded machine ten blocks of a few ms may have none.
COMPARE_BLOCKS = 20

#: A measurement is disturbed when its blocks' IQR is at least this fraction of their median...
BUSY_SPREAD = 0.5
#: ...or when the calibration job, just before or just after it, ran this many times slower than its quietest.
BUSY_SLOWDOWN = 2.0
#: Passes over a CPU sweep: the whole sweep is timed again, and the less disturbed pass kept (all its sizes).
CPU_PASSES = 2

#: Measurements per timing at most: a disturbed one is taken again, and the least disturbed is kept.
ATTEMPTS = 3


def preset() -> str:
    """The active preset: ``TORCHCOURSE_BENCH`` if set, else ``full`` with CUDA and ``quick`` without."""
    chosen = os.environ.get("TORCHCOURSE_BENCH") or ("full" if cuda_available() else "quick")
    if chosen not in PRESETS:
        raise ValueError(f"TORCHCOURSE_BENCH must be one of {sorted(PRESETS)}, not {chosen!r}")
    return chosen


def cpu_threads() -> int:
    """The CPU threads a timing uses: ``TORCHCOURSE_BENCH_THREADS``, else the preset's (:data:`THREADS`)."""
    chosen = os.environ.get("TORCHCOURSE_BENCH_THREADS")
    if chosen:
        return int(chosen)
    return THREADS[preset()] or torch.get_num_threads()


def sizes(workload: str, device: str | None = None) -> tuple[int, ...]:
    """The sweep sizes for ``workload`` under the active preset; with ``device="cpu"``, those the CPU is timed at
    beside an accelerator (:data:`CPU_MAX`)."""
    table = PRESETS[preset()]
    if workload not in table:
        raise KeyError(f"no sizes for {workload!r}; known workloads: {sorted(table)}")
    top = CPU_MAX[preset()].get(workload) if device is not None and torch.device(device).type == "cpu" else None
    return table[workload] if top is None else tuple(n for n in table[workload] if n <= top)


_QUIETEST: list[float] = []  # the calibration job's quietest time in this process


def calibrate() -> float:
    """Seconds for a fixed pure-Python job (about a millisecond; best of three): slower on a busy machine."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(20_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def _slowdown(before: float, after: float) -> float:
    """How much slower the calibration ran around a measurement than the quietest seen in this process."""
    _QUIETEST[:] = [min([*_QUIETEST, before, after])]
    return max(before, after) / _QUIETEST[0]


def time_fn(
    fn: Callable[[], Any], device: str, *, warmup: int = 3, min_run_time: float | None = None,
    blocks: int = MIN_BLOCKS,
) -> Timing:
    """Time ``fn()`` on ``device`` after ``warmup`` calls, with torch.utils.benchmark, in ``blocks`` blocks at least.

    On an accelerator the Timer's clock waits for the device (:func:`sync`) at the start and end of every block of
    runs; the Timer gets its thread count from
    :func:`cpu_threads` (its own default is one thread, whatever the preset).
    ``Timer.blocked_autorange`` sizes its blocks so that one block can fill the whole time budget,
    which leaves a single block and an IQR of 0; here one call sizes the blocks so that
    ``blocks`` of them fill ``min_run_time``, and blocks are added until they do. A disturbed
    measurement is taken again, up to :data:`ATTEMPTS` times, and the least disturbed one is kept.
    """
    return time_fns([fn], device, warmup=warmup, min_run_time=min_run_time, blocks=blocks)[0]


def time_fns(
    fns: Sequence[Callable[[], Any]], device: str, *, warmup: int = 3, min_run_time: float | None = None,
    blocks: int = MIN_BLOCKS,
) -> list[Timing]:
    """:func:`time_fn` for several functions at once, their blocks interleaved (A B, then B A, round by round).

    A burst of other work then slows the neighbouring blocks of every function alike, so a
    comparison between them (a ratio of their fastest blocks) stays fair on a shared machine,
    where two separate measurements seconds apart can meet different loads. An attempt is
    taken again when any of its measurements is disturbed; the attempt kept is the least
    disturbed as a whole, so the timings returned always come from the same blocks of time.
    """
    threads, prior = (cpu_threads() if device == "cpu" else torch.get_num_threads()), torch.get_num_threads()
    torch.set_num_threads(threads)  # for the warm-up and every block (Timer._timeit does not set it)
    try:
        for fn in fns:
            fn()  # the first warm-up call with the API tracer on (make test): it records what fn demonstrates
        with tracing.paused():  # the rest without it: its recorders add ~20 us to every torch call they see
            tries = _attempts(list(fns), device, warmup - 1, threads, min_run_time, blocks)
    finally:
        torch.set_num_threads(prior)
    kept = min(tries, key=lambda ts: (any(t.busy for t in ts), max(t.spread for t in ts)))  # the least disturbed
    for timing in kept:
        timing.attempts = len(tries)
    return kept


def _attempts(
    fns: list[Callable[[], Any]], device: str, warmup: int, threads: int, min_run_time: float | None, blocks: int
) -> list[list[Timing]]:
    """Warm ``fns`` up, then measure them until no measurement is disturbed, :data:`ATTEMPTS` times at most."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync(device)
    tries: list[list[Timing]] = []
    for _ in range(ATTEMPTS):
        before = calibrate()
        timings = _measure_many(fns, threads, min_run_time, blocks, device)
        slowdown = _slowdown(before, calibrate())
        for timing in timings:
            timing.busy = timing.spread >= BUSY_SPREAD or slowdown >= BUSY_SLOWDOWN
        tries.append(timings)
        if not any(t.busy for t in timings):
            break
    return tries


def _measure_many(
    fns: list[Callable[[], Any]], threads: int, min_run_time: float | None, blocks: int, device: str = "cpu"
) -> list[Timing]:
    """One measurement of each function: blocks of runs, sized so that ``blocks`` of them fill the time budget,
    taken in turn (one block of each function per round, the order reversed every round) until every function
    has filled it. Off the CPU, each block is read on :func:`_clock`, which waits for the device."""
    benchmark = _benchmark()
    clock = {} if torch.device(device).type == "cpu" else {"timer": _clock(device)}
    timers = [benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, **clock) for fn in fns]
    budget = min_run_time or MIN_RUN_TIME[preset()]
    numbers = [max(1, int(budget / blocks / _one_run(timer, budget / blocks))) for timer in timers]
    # Each block of one function follows a block of another, which leaves the caches and the memory allocator in its
    # own state (after a large neighbour, a small workload's first few runs take ten times as long): half a block of
    # untimed runs first brings the function back to its own steady state.
    settle = [0 if len(fns) == 1 else -(-number // 2) for number in numbers]
    raws: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    while any(len(raw) < blocks or sum(raw) < budget for raw in raws):
        for i in order:  # A B, then B A: a place in the round that the scheduler favours is given to each in turn
            for _ in range(settle[i]):
                fns[i]()
            raws[i].append(timers[i]._timeit(numbers[i]))
        order.reverse()
    timings = []
    for timer, number, raw in zip(timers, numbers, raws, strict=True):
        measurement = benchmark.Measurement(number_per_run=number, raw_times=raw, task_spec=timer._task_spec)
        timings.append(Timing(measurement.median, measurement.iqr, number * len(raw), len(raw), min(raw) / number))
    return timings


def _clock(device: str) -> Callable[[], float]:
    """A clock for the Timer that first waits for ``device``: a block is then timed from queued work done to queued
    work done, on any accelerator (torch's own clock waits only where its release knows the device API)."""

    def clock() -> float:
        sync(device)
        return time.perf_counter()

    return clock


def _one_run(timer: Any, block: float) -> float:
    """Seconds for one run, through the Timer's own block runner (its clock waits for the device), as a last warm-up.

    A short run is timed three times and the fastest taken: one run slowed by other work would make
    every block of it short, and the sweep, whose rounds go on until each function fills its budget,
    would take rounds more for all of them.
    """
    first = timer._timeit(1)
    return first if first >= block else min(first, timer._timeit(1), timer._timeit(1))


def accelerator() -> str | None:
    """The device a sweep can time besides the CPU: ``cuda`` where :func:`cuda_available`, else the accelerator
    ``torch.accelerator`` reports available (``mps``, ``xpu``...), else None.

    CUDA's answer is :func:`cuda_available`'s, which ``TORCHCOURSE_NO_CUDA=1`` turns off; the build's accelerator type
    is read without starting its driver (lesson 05.3).
    """
    if cuda_available():
        return "cuda"
    generic = getattr(torch, "accelerator", None)
    if generic is None or not hasattr(generic, "current_accelerator"):
        return None  # a torch without the device-generic API: CUDA is the only accelerator it times
    kind = generic.current_accelerator()  # the build's type, not yet checked for a device
    if kind is None or kind.type == "cuda" or not generic.is_available():
        return None
    return kind.type


sync = synchronize  # the timing path's name for devices.synchronize: any accelerator, nothing on the CPU


def device_ms(fn: Callable[[], Any], device: str | torch.device, calls: int = 1) -> float:
    """Milliseconds of device time for ``calls`` calls of ``fn``, between two events on ``device``'s stream.

    The events are ``torch.Event`` (any accelerator) where torch has it, else ``torch.cuda.Event``. Unlike a
    stopwatch around the launches, they time the queued work itself (lesson 05.6); the CPU has no events.
    """
    place = torch.device(device)
    if place.type == "cpu":
        raise ValueError("device_ms times work queued on an accelerator; the CPU has no events (use time_fn)")
    if hasattr(torch, "Event"):
        start, end = torch.Event(place, enable_timing=True), torch.Event(place, enable_timing=True)
    else:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    sync(device)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def environment() -> dict[str, str]:
    """Where a sweep ran: torch, CUDA, GPU, CPU threads and instruction set, preset and date; saved with it."""
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": f"{cpu_threads()} of {torch.get_num_threads()}",
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "preset": preset(),
        "date": datetime.date.today().isoformat(),
    }
    other = accelerator()
    if other == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = str(torch.version.cuda)
    elif other is not None:  # mps, xpu...: the table says how to time it
        env["accelerator"] = other
    return env


def bench(
    make: Callable[[int, str], Callable[[], Any]],
    sweep: Sequence[int] | str,
    *,
    label: str,
    flops: Callable[[int], float] | None = None,
    bytes: Callable[[int], float] | None = None,  # noqa: A002 - the natural name for a byte count
    on: Sequence[str] | None = None,
    min_run_time: float | None = None,
) -> BenchResult:
    """Time ``make(size, device)()`` for every size of ``sweep`` on every device.

    ``make`` builds the inputs on the device and returns the zero-argument function to time, so
    allocation and host-to-device copies stay outside the timed region. ``sweep`` is a list of
    sizes or the name of a workload in :data:`PRESETS`. Give ``flops(size)`` or ``bytes(size)`` to
    get achieved GFLOP/s or GB/s. To compare workloads with each other, time them together with
    :func:`compare`.
    """
    return compare({label: make}, sweep, flops=flops, bytes=bytes, on=on, min_run_time=min_run_time)[label]


def compare(
    makes: Mapping[str, Callable[[int, str], Callable[[], Any]]],
    sweep: Sequence[int] | str,
    *,
    flops: Callable[[int], float] | None = None,
    bytes: Callable[[int], float] | None = None,  # noqa: A002 - the natural name for a byte count
    on: Sequence[str] | None = None,
    min_run_time: float | None = None,
) -> dict[str, BenchResult]:
    """:func:`bench` for several workloads doing the same work (``{label: make}``), timed interleaved.

    On each device every workload at every size is timed in one :func:`time_fns` call: one block of
    each in turn, round after round, so a machine's load falls on all of them alike, whether a lesson
    compares two workloads or two sizes of one (an image costs less in the largest batch), and there
    are :data:`COMPARE_BLOCKS` of each, so that each has its quiet ones: a ratio of their fastest
    blocks (``Timing.best``) then means what it says. Returns one :class:`BenchResult` per label, in
    the order given. A named sweep timed on the CPU beside an accelerator stops at the CPU's
    :data:`CPU_MAX` size: the CPU's timings are then fewer than the sizes (``BenchResult.sizes_on``).
    """
    labels = list(makes)
    sweep_sizes = list(sizes(sweep) if isinstance(sweep, str) else sweep)
    run_on = list(on or devices())
    width = len(labels)
    # How many of the sizes each device is timed at: all of them, but for the CPU beside an accelerator (CPU_MAX)
    counts = {d: len(sizes(sweep, d)) if isinstance(sweep, str) and len(run_on) > 1 else len(sweep_sizes)
              for d in run_on}
    fns = {d: [makes[k](n, d) for n in sweep_sizes[:counts[d]] for k in labels] for d in run_on}  # [size][label]
    blocks = MIN_BLOCKS if len(sweep_sizes) * width == 1 else COMPARE_BLOCKS
    flat = {d: time_fns(fns[d], d, min_run_time=min_run_time, blocks=blocks) for d in run_on}
    for _ in range(CPU_PASSES - 1):  # the CPU sweep once more, later: a burst of other work rarely hits both passes
        if "cpu" in flat:
            again, first = time_fns(fns["cpu"], "cpu", min_run_time=min_run_time, blocks=blocks), flat["cpu"]
            if _disturbance(again) < _disturbance(first):
                again, first = first, again
            for kept, dropped in zip(first, again, strict=True):
                kept.attempts += dropped.attempts
            flat["cpu"] = first  # a whole pass: sizes compared with each other come from the same blocks of time
    timings = {d: [flat[d][i * width:(i + 1) * width] for i in range(counts[d])] for d in run_on}
    meta = environment()
    results = {}
    for j, label in enumerate(labels):
        result = BenchResult(
            label=label,
            sizes=sweep_sizes,
            devices=run_on,
            timings={d: [row[j] for row in rows] for d, rows in timings.items()},
            flops=[float(flops(n)) for n in sweep_sizes] if flops else None,
            bytes=[float(bytes(n)) for n in sweep_sizes] if bytes else None,
            meta=dict(meta),
        )
        result.reference = reference(label)
        save_to = os.environ.get("TORCHCOURSE_SAVE_BENCH")
        if save_to:  # a recorded run (tools/gpu_run.sh): every sweep of every notebook, with its environment
            Path(save_to).mkdir(parents=True, exist_ok=True)
            result.save(Path(save_to) / _file_name(label))
        results[label] = result
    return results


def _disturbance(timings: list[Timing]) -> tuple[bool, float]:
    """How disturbed one pass over a size was, to keep the less disturbed pass: busy first, then the slower."""
    return any(t.busy for t in timings), sum(t.best or t.median for t in timings)
