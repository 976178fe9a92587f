"""Time a workload on every device, the right way: warm-up, CUDA sync, all CPU threads, median and IQR.

Every timed cell in the course goes through :func:`bench`. Sizes come from :data:`PRESETS`, the one
place that decides how big a sweep is: ``quick`` keeps a CPU-only run (and the test suite) fast,
``full`` is what a GPU needs before its advantage shows. ``TORCHCOURSE_BENCH=quick|full`` overrides
the choice, which defaults to ``full`` when CUDA is present and ``quick`` otherwise.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

# Importing torch.utils.benchmark logs "No CUDA runtime is found" on CPU-only machines: it concerns
# compiling C++ extensions, which the course never does, and would add noise to every notebook.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402

from .devices import cuda_available, devices, synchronize  # noqa: E402

__all__ = ["PRESETS", "BenchResult", "Timing", "bench", "preset", "sizes", "time_fn"]

#: Sweep sizes per workload. The meaning of a size is the workload's own (n for an n x n matmul,
#: element count for element-wise ops, batch size for a model step).
PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "quick": {
        "matmul": (32, 128, 384),
        "elementwise": (2**12, 2**16, 2**20),
        "reduction": (2**12, 2**16, 2**20),
        "mlp": (8, 64, 256),
        "conv": (2, 8),
        "copy": (2**16, 2**20),
        "checkpoint": (4, 8),
        "conv_train": (2, 8),
        "lstm": (4, 16),
        "train_step": (16, 64),
    },
    "full": {
        "matmul": (64, 256, 1024, 2048, 4096),
        "elementwise": (2**12, 2**16, 2**20, 2**24, 2**26),
        "reduction": (2**12, 2**16, 2**20, 2**24, 2**26),
        "mlp": (8, 64, 512, 4096, 16384),
        "conv": (8, 32, 128),
        "copy": (2**16, 2**20, 2**24, 2**26),
        "checkpoint": (8, 16, 32),
        "conv_train": (8, 32, 128),
        "lstm": (16, 64, 256),
        "train_step": (64, 256, 1024),
    },
}

#: Seconds of repeated runs per measurement; blocked_autorange keeps going until it has this much.
MIN_RUN_TIME = {"quick": 0.02, "full": 0.2}


def preset() -> str:
    """The active preset: ``TORCHCOURSE_BENCH`` if set, else ``full`` with CUDA and ``quick`` without."""
    chosen = os.environ.get("TORCHCOURSE_BENCH") or ("full" if cuda_available() else "quick")
    if chosen not in PRESETS:
        raise ValueError(f"TORCHCOURSE_BENCH must be one of {sorted(PRESETS)}, not {chosen!r}")
    return chosen


def sizes(workload: str) -> tuple[int, ...]:
    """The sweep sizes for ``workload`` under the active preset."""
    table = PRESETS[preset()]
    if workload not in table:
        raise KeyError(f"no sizes for {workload!r}; known workloads: {sorted(table)}")
    return table[workload]


@dataclass
class Timing:
    """One measurement: median and interquartile range in seconds, and how many runs made it."""

    median: float
    iqr: float
    runs: int


def time_fn(fn: Callable[[], Any], device: str, *, warmup: int = 3, min_run_time: float | None = None) -> Timing:
    """Time ``fn()`` on ``device`` after ``warmup`` calls, with torch.utils.benchmark.

    The Timer synchronises CUDA around every block of runs, and gets the real thread count
    (its default of one thread would make the CPU look several times slower than it is).
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time or MIN_RUN_TIME[preset()])
    return Timing(measurement.median, measurement.iqr, len(measurement.times) * measurement.number_per_run)


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

    def speedup(self) -> list[float] | None:
        """CPU time over GPU time for each size; None without CUDA."""
        if "cuda" not in self.timings or "cpu" not in self.timings:
            return None
        return [c.median / g.median for c, g in zip(self.timings["cpu"], self.timings["cuda"], strict=True)]

    def throughput(self, device: str) -> list[float] | None:
        """Achieved GFLOP/s (or GB/s when a byte count was given) on ``device``; None without counts."""
        work = self.flops or self.bytes
        if work is None or device not in self.timings:
            return None
        return [w / t.median / 1e9 for w, t in zip(work, self.timings[device], strict=True)]

    @property
    def unit(self) -> str:
        """The throughput unit: GFLOP/s for FLOP counts, GB/s for byte counts."""
        return "GFLOP/s" if self.flops else "GB/s"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the result table, as strings."""
        header = ["size"] + [f"{d} ms (IQR)" for d in ("cpu", "cuda")] + ["GPU/CPU speed-up"]
        if self.flops or self.bytes:
            header += [f"{d} {self.unit}" for d in ("cpu", "cuda")]
        speedup = self.speedup()
        rows = []
        for i, size in enumerate(self.sizes):
            row = [f"{size:,}"]
            for device in ("cpu", "cuda"):
                if device in self.timings:
                    t = self.timings[device][i]
                    row.append(f"{t.median * 1e3:.4g} ({t.iqr * 1e3:.2g})")
                else:
                    row.append("CUDA not available")
            row.append(f"{speedup[i]:.2f}x" if speedup else "CUDA not available")
            if self.flops or self.bytes:
                for device in ("cpu", "cuda"):
                    tp = self.throughput(device)
                    row.append(f"{tp[i]:.4g}" if tp else "CUDA not available")
            rows.append(row)
        return header, rows

    def __str__(self) -> str:
        header, rows = self.table()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
        return f"{self.label}\n" + "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        header, rows = self.table()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<b>{html.escape(self.label)}</b><table><tr>{head}</tr>{body}</table>"

    def plot(self, ax: Any = None) -> Any:
        """Draw time per device and GPU/CPU speed-up against size; returns the matplotlib axes."""
        from .plotting import plot_bench

        return plot_bench(self, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, for saving a GPU run beside the course."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Rebuild a result saved with :meth:`to_dict`."""
        timings = {d: [Timing(**t) for t in ts] for d, ts in data["timings"].items()}
        return cls(**{**data, "timings": timings})

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
    get achieved GFLOP/s or GB/s.
    """
    sweep_sizes = list(sizes(sweep) if isinstance(sweep, str) else sweep)
    run_on = list(on or devices())
    timings = {d: [time_fn(make(n, d), d, min_run_time=min_run_time) for n in sweep_sizes] for d in run_on}
    meta = {"torch": torch.__version__, "threads": str(torch.get_num_threads()), "preset": preset()}
    if "cuda" in run_on:
        meta["gpu"] = torch.cuda.get_device_name(0)
    return BenchResult(
        label=label,
        sizes=sweep_sizes,
        devices=run_on,
        timings=timings,
        flops=[float(flops(n)) for n in sweep_sizes] if flops else None,
        bytes=[float(bytes(n)) for n in sweep_sizes] if bytes else None,
        meta=meta,
    )
