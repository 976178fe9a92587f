"""Time a workload on every device, the right way: warm-up, CUDA sync, chosen CPU threads, median and IQR.

Every timed cell in the course goes through :func:`bench`. Sizes come from :data:`PRESETS`, the one
place that decides how big a sweep is: ``quick`` keeps a CPU-only run (and the test suite) fast,
``full`` is what a GPU needs before its advantage shows. ``TORCHCOURSE_BENCH=quick|full`` overrides
the choice, which defaults to ``full`` when CUDA is present and ``quick`` otherwise.

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
(:data:`COMPARE_BLOCKS`), so that load falls on each alike and each has its quiet blocks. Route: :func:`bench` (one
workload) → :func:`compare` (sizes, devices, passes) → :func:`time_fns` (attempts, calibration) →
``_measure_many`` (interleaved blocks) → :class:`BenchResult` (table, plot).
"""

from __future__ import annotations

import datetime
import html
import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch

from . import tracing
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

__all__ = ["PRESETS", "BenchResult", "Timing", "bench", "compare", "cpu_threads", "environment", "preset", "reference",
           "sizes", "time_fn", "time_fns"]

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
        "h2d_batch": (8, 64),
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
        "h2d_batch": (8, 64, 256, 1024),
        "loop": (2**6, 2**8, 2**10),
        "elementwise_dram": (2**24, 2**26),
        "conv_train": (8, 32, 128),
        "lstm": (16, 64, 256),
        "train_step": (64, 256, 1024),
        "peak_matmul": (6144,),
        "regime_add": (2**4, 2**8, 2**12, 2**18, 2**22),
        "regime_matmul": (16, 64, 256, 512),
        "overhead_calls": (16, 256),
        "cuda_graph_ops": (16, 64),
        "compile_chain": (2**4, 2**10, 2**16, 2**20),
    },
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

#: Marks a disturbed measurement in the table (explained under it).
BUSY_MARK = " (busy)"
#: Measurements per timing at most: a disturbed one is taken again, and the least disturbed is kept.
ATTEMPTS = 3

#: The recorded GPU run that CPU-only machines show beside their own numbers (absent until one is recorded).
REFERENCE_FILE = Path(__file__).parent / "data" / "gpu-reference.json"


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


def sizes(workload: str) -> tuple[int, ...]:
    """The sweep sizes for ``workload`` under the active preset."""
    table = PRESETS[preset()]
    if workload not in table:
        raise KeyError(f"no sizes for {workload!r}; known workloads: {sorted(table)}")
    return table[workload]


@dataclass
class Timing:
    """One measurement: median and interquartile range in seconds per run, over ``blocks`` blocks of ``runs`` in all."""

    median: float
    iqr: float
    runs: int
    blocks: int = 1  # results saved before blocks were counted had one
    #: The fastest block's time per run: on a busy machine, the block least disturbed by other work
    #: (compare best against best where a median would be stalled; None in results saved before).
    best: float | None = None
    #: Still disturbed after every attempt (:data:`BUSY_SPREAD`, :data:`BUSY_SLOWDOWN`): the machine's load shows.
    busy: bool = False
    #: How many measurements were taken (a disturbed one is taken again).
    attempts: int = 1

    @property
    def spread(self) -> float:
        """The IQR as a fraction of the median: the blocks' own noise."""
        return self.iqr / self.median if self.median > 0 else 0.0


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

    The Timer synchronises CUDA around every block of runs, and gets its thread count from
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
    synchronize(device)
    tries: list[list[Timing]] = []
    for _ in range(ATTEMPTS):
        before = calibrate()
        timings = _measure_many(fns, threads, min_run_time, blocks)
        slowdown = _slowdown(before, calibrate())
        for timing in timings:
            timing.busy = timing.spread >= BUSY_SPREAD or slowdown >= BUSY_SLOWDOWN
        tries.append(timings)
        if not any(t.busy for t in timings):
            break
    return tries


def _measure_many(fns: list[Callable[[], Any]], threads: int, min_run_time: float | None, blocks: int) -> list[Timing]:
    """One measurement of each function: blocks of runs, sized so that ``blocks`` of them fill the time budget,
    taken in turn (one block of each function per round, the order reversed every round) until every function
    has filled it."""
    benchmark = _benchmark()
    timers = [benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads) for fn in fns]
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


def _one_run(timer: Any, block: float) -> float:
    """Seconds for one run, through the Timer's own block runner (it syncs CUDA), as a last warm-up.

    A short run is timed three times and the fastest taken: one run slowed by other work would make
    every block of it short, and the sweep, whose rounds go on until each function fills its budget,
    would take rounds more for all of them.
    """
    first = timer._timeit(1)
    return first if first >= block else min(first, timer._timeit(1), timer._timeit(1))


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
    if cuda_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = str(torch.version.cuda)
    return env


@cache
def _reference_file(path: str) -> dict[str, Any]:
    """The recorded GPU run's file, read once per kernel: ``{"meta": {...}, "sweeps": {label: result}}``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def reference(label: str) -> BenchResult | None:
    """The recorded GPU run's sweep with this label, or None when none is recorded.

    ``TORCHCOURSE_GPU_REFERENCE`` names another file (an empty value turns the overlay off).
    """
    path = os.environ.get("TORCHCOURSE_GPU_REFERENCE", str(REFERENCE_FILE))
    if not path or not Path(path).is_file():
        return None
    data = _reference_file(path)
    sweep = data.get("sweeps", {}).get(label)
    if sweep is None:
        return None
    result = BenchResult.from_dict(sweep)
    result.meta = {**data.get("meta", {}), **result.meta}
    return result


def _file_name(label: str) -> str:
    """A file name for a sweep's label: ``n x n matmul`` becomes ``n-x-n-matmul.json``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower() + ".json"


@dataclass
class BenchResult:
    """A size sweep on each device; renders as a table (HTML in Jupyter) and plots speed-up."""

    label: str
    sizes: list[int]
    devices: list[str]
    timings: dict[str, list[Timing]]
    flops: list[float] | None = None
    bytes: list[float] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    #: A recorded GPU run of the same sweep, shown beside this one when CUDA was not measured here.
    reference: BenchResult | None = field(default=None, compare=False, repr=False)

    def speedup(self) -> list[float] | None:
        """CPU time over GPU time for each size; None unless both were measured."""
        if "cuda" not in self.timings or "cpu" not in self.timings:
            return None
        return [c.median / g.median for c, g in zip(self.timings["cpu"], self.timings["cuda"], strict=True)]

    def throughput(self, device: str, *, best: bool = False) -> list[float] | None:
        """Achieved GFLOP/s (or GB/s when a byte count was given) on ``device``; None without counts.

        From the median time per run, or with ``best=True`` from the fastest block's (where recorded).
        """
        work = self.flops or self.bytes
        if work is None or device not in self.timings:
            return None
        times = [(t.best if best and t.best is not None else t.median) for t in self.timings[device]]
        return [w / t / 1e9 for w, t in zip(work, times, strict=True)]

    @property
    def unit(self) -> str:
        """The throughput unit: GFLOP/s for FLOP counts, GB/s for byte counts."""
        return "GFLOP/s" if self.flops else "GB/s"

    def _overlay(self) -> BenchResult | None:
        """The recorded run to show beside this one: only when it has CUDA and this one does not."""
        ref = self.reference
        return ref if ref is not None and "cuda" in ref.timings and "cuda" not in self.timings else None

    def _blocks(self, device: str) -> str:
        """How many blocks each of the device's medians comes from, for the column's header."""
        counts = sorted({t.blocks for t in self.timings[device]})
        if len(counts) > 1:
            return f"{counts[0]}-{counts[-1]} blocks"
        return "1 block" if counts == [1] else f"{counts[0]} blocks"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the result table, as strings: one column per measured device, recorded ones marked."""
        ref = self._overlay()
        measured = [d for d in ("cpu", "cuda") if d in self.timings]
        work = bool(self.flops or self.bytes)
        header = ["size"] + [f"{d} ms (IQR, {self._blocks(d)})" for d in measured]
        header += [f"{d} fastest ms" for d in measured]
        speedup = self.speedup()
        if speedup:
            header.append("GPU/CPU speed-up")
        if work:
            header += [f"{d} {self.unit}" for d in measured]
        if ref is not None:
            header += ["cuda ms (recorded)", f"cuda {ref.unit} (recorded)"]
        ref_rows = {n: i for i, n in enumerate(ref.sizes)} if ref is not None else {}
        rows = []
        for size in sorted(set(self.sizes) | set(ref_rows)):
            i = self.sizes.index(size) if size in self.sizes else None
            row = [f"{size:,}"]
            for device in measured:
                t = self.timings[device][i] if i is not None else None
                row.append(f"{t.median * 1e3:.4g} ({t.iqr * 1e3:.2g}){BUSY_MARK if t.busy else ''}" if t else "-")
            for device in measured:
                t = self.timings[device][i] if i is not None else None
                row.append(f"{t.best * 1e3:.4g}" if t and t.best is not None else "-")
            if speedup:
                row.append(f"{speedup[i]:.2f}x" if i is not None else "-")
            if work:
                for device in measured:
                    tp = self.throughput(device)
                    row.append(f"{tp[i]:.4g}" if tp and i is not None else "-")
            if ref is not None:
                j = ref_rows.get(size)
                rates = ref.throughput("cuda")
                row.append(f"{ref.timings['cuda'][j].median * 1e3:.4g}" if j is not None else "-")
                row.append(f"{rates[j]:.4g}" if rates and j is not None else "-")
            rows.append(row)
        return header, rows

    def busy(self) -> list[tuple[str, int]]:
        """The (device, size) of every measurement still disturbed after its attempts."""
        return [(d, n) for d, ts in self.timings.items() for n, t in zip(self.sizes, ts, strict=True) if t.busy]

    def note(self) -> str:
        """What the table does not show (CUDA absent, or the recorded run instead), and a warning when busy."""
        lines = [self._cuda_note(), self._threads_note()]
        if self.busy():
            lines.append(f"{BUSY_MARK.strip()} This machine was busy while timing these rows (their blocks spread by "
                         f"half their median, or a fixed test job ran {BUSY_SLOWDOWN:g} times slower than usual, even "
                         f"after {ATTEMPTS} tries): they show the load, not the operation. Rerun the cell when "
                         "nothing else is running.")
        return "\n".join(line for line in lines if line)

    def _threads_note(self) -> str:
        threads = self.meta.get("threads", "")
        if "cpu" not in self.timings or not threads.startswith("1 of ") or threads == "1 of 1":
            return ""
        return (f"CPU timed on {threads} threads: on a machine whose cores other programs share, one thread never "
                "waits for another (the full preset uses them all).")

    def _cuda_note(self) -> str:
        if "cuda" in self.timings:
            return "" if "cpu" in self.timings else "Timed on CUDA only."
        if "gpu" in self.meta:  # a CPU-only sweep on a machine with a GPU: the cell asked for the CPU alone
            return f"Timed on the CPU only (this sweep's choice; {self.meta['gpu']} is here but not timed)."
        ref = self._overlay()
        if ref is None:
            return ("CUDA not available here, and no GPU reference run has been recorded yet "
                    "(docs/gpu-runs.md): only this machine's CPU is shown.")
        meta = ref.meta
        return (f"CUDA not available here. The recorded columns come from {meta.get('gpu', 'a GPU')}, "
                f"torch {meta.get('torch', '?')}, {meta.get('date', 'undated')}, {meta.get('preset', '?')} preset: "
                "recorded, not measured here.")

    def __str__(self) -> str:
        header, rows = self.table()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
        note = self.note()
        return f"{self.label}\n" + "\n".join(lines) + (f"\n{note}" if note else "")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        header, rows = self.table()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        note = self.note()
        foot = "".join(f"<p><i>{html.escape(line)}</i></p>" for line in note.splitlines())
        return f"<b>{html.escape(self.label)}</b><table><tr>{head}</tr>{body}</table>{foot}"

    def plot(self, ax: Any = None) -> Any:
        """Draw time per device and GPU/CPU speed-up against size; returns the matplotlib axes."""
        from .plotting import plot_bench

        return plot_bench(self, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, for saving a GPU run beside the course (the reference overlay is not saved)."""
        data = asdict(self)
        data.pop("reference", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Rebuild a result saved with :meth:`to_dict`."""
        timings = {d: [Timing(**t) for t in ts] for d, ts in data["timings"].items()}
        return cls(**{**{k: v for k, v in data.items() if k != "reference"}, "timings": timings})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the result as JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)


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
    the order given.
    """
    labels = list(makes)
    sweep_sizes = list(sizes(sweep) if isinstance(sweep, str) else sweep)
    run_on = list(on or devices())
    width = len(labels)
    fns = {d: [makes[k](n, d) for n in sweep_sizes for k in labels] for d in run_on}  # size-major: [size][label]
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
    timings = {d: [flat[d][i * width:(i + 1) * width] for i in range(len(sweep_sizes))] for d in run_on}
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
