"""What a timing is and how a sweep is shown: :class:`Timing`, :class:`BenchResult` (table, note, plot, JSON), and
the recorded GPU run shown beside it.

The route through the timing helper: ``bench.py`` measures (presets, threads, :func:`~torchcourse.bench.bench` →
:func:`~torchcourse.bench.compare` → :func:`~torchcourse.bench.time_fns`, calibration and busy detection, device
synchronisation through ``torch.accelerator``) and returns the :class:`BenchResult` of this module, which renders
it: one column per measured device (the CPU first, then CUDA or another accelerator: ``mps``, ``xpu``), the
accelerator's speed-up over the CPU, achieved GFLOP/s or GB/s, a note on what the table does not show, and, where
CUDA was not measured, the course's recorded GPU run (:func:`reference`, ``data/gpu-reference.json``) labelled as
recorded. ``workloads.py`` holds the factories the timed lessons share. Every name here is also importable from
``torchcourse.bench``.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["BUSY_MARK", "REFERENCE_FILE", "BenchResult", "Timing", "reference"]

#: Marks a disturbed measurement in the table (explained under it).
BUSY_MARK = " (busy)"

#: The recorded GPU run that CPU-only machines show beside their own numbers (absent until one is recorded).
REFERENCE_FILE = Path(__file__).parent / "data" / "gpu-reference.json"


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
    #: Still disturbed after every attempt (``bench.BUSY_SPREAD``, ``bench.BUSY_SLOWDOWN``): the machine's load shows.
    busy: bool = False
    #: How many measurements were taken (a disturbed one is taken again).
    attempts: int = 1

    @property
    def spread(self) -> float:
        """The IQR as a fraction of the median: the blocks' own noise."""
        return self.iqr / self.median if self.median > 0 else 0.0

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
    """A size sweep on each device; renders as a table (HTML in Jupyter) and plots speed-up.

    The devices are the CPU and at most one accelerator (``cuda``, or ``mps``, ``xpu``... where that is the
    machine's): the table shows the CPU's columns first, then the accelerator's.
    """

    label: str
    sizes: list[int]
    devices: list[str]
    timings: dict[str, list[Timing]]
    flops: list[float] | None = None
    bytes: list[float] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    #: A recorded GPU run of the same sweep, shown beside this one when CUDA was not measured here.
    reference: BenchResult | None = field(default=None, compare=False, repr=False)

    def accelerator(self) -> str | None:
        """The measured device that is not the CPU (``cuda``, ``mps``, ``xpu``...), or None."""
        return next((d for d in self.timings if d != "cpu"), None)

    def _measured(self) -> list[str]:
        """The measured devices in the table's order: the CPU, then the accelerator."""
        return sorted(self.timings, key=lambda d: d != "cpu")

    def sizes_on(self, device: str) -> list[int]:
        """The sizes ``device`` was timed at: every size, but the CPU beside an accelerator stops at the ``full``
        preset's ``bench.CPU_MAX`` (its timings are a prefix of the sizes)."""
        return self.sizes[:len(self.timings[device])]

    def speedup(self) -> list[float] | None:
        """CPU time over the accelerator's (the GPU's) for each size both were timed at (``sizes_on("cpu")``); None
        unless both were measured."""
        gpu = self.accelerator()
        if gpu is None or "cpu" not in self.timings:
            return None
        return [c.median / g.median for c, g in zip(self.timings["cpu"], self.timings[gpu], strict=False)]

    def throughput(self, device: str, *, best: bool = False) -> list[float] | None:
        """Achieved GFLOP/s (or GB/s when a byte count was given) on ``device`` at each of its sizes
        (:meth:`sizes_on`); None without counts.

        From the median time per run, or with ``best=True`` from the fastest block's (where recorded).
        """
        work = self.flops or self.bytes
        if work is None or device not in self.timings:
            return None
        times = [(t.best if best and t.best is not None else t.median) for t in self.timings[device]]
        return [w / t / 1e9 for w, t in zip(work[:len(times)], times, strict=True)]

    @property
    def unit(self) -> str:
        """The throughput unit: GFLOP/s for FLOP counts, GB/s for byte counts."""
        return "GFLOP/s" if self.flops else "GB/s"

    def _overlay(self) -> BenchResult | None:
        """The recorded run to show beside this one: only when it has CUDA and this one has no accelerator."""
        ref = self.reference
        return ref if ref is not None and "cuda" in ref.timings and self.accelerator() is None else None

    def _blocks(self, device: str) -> str:
        """How many blocks each of the device's medians comes from, for the column's header."""
        counts = sorted({t.blocks for t in self.timings[device]})
        if len(counts) > 1:
            return f"{counts[0]}-{counts[-1]} blocks"
        return "1 block" if counts == [1] else f"{counts[0]} blocks"

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the result table, as strings: one column per measured device, recorded ones marked."""
        ref = self._overlay()
        measured = self._measured()
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
        rates = {d: self.throughput(d) for d in measured}  # once, not per row
        ref_rates = ref.throughput("cuda") if ref is not None else None
        rows = []
        for size in sorted(set(self.sizes) | set(ref_rows)):
            i = self.sizes.index(size) if size in self.sizes else None
            timed = {d: self.timings[d][i] if i is not None and i < len(self.timings[d]) else None for d in measured}
            row = [f"{size:,}"]
            for t in timed.values():  # "-": a size of the recorded run only, or past the CPU's cap (bench.CPU_MAX)
                row.append(f"{t.median * 1e3:.4g} ({t.iqr * 1e3:.2g}){BUSY_MARK if t.busy else ''}" if t else "-")
            for t in timed.values():
                row.append(f"{t.best * 1e3:.4g}" if t and t.best is not None else "-")
            if speedup:
                row.append(f"{speedup[i]:.2f}x" if i is not None and i < len(speedup) else "-")
            if work:
                for device, t in timed.items():
                    row.append(f"{rates[device][i]:.4g}" if t else "-")
            if ref is not None:
                j = ref_rows.get(size)
                row.append(f"{ref.timings['cuda'][j].median * 1e3:.4g}" if j is not None else "-")
                row.append(f"{ref_rates[j]:.4g}" if ref_rates and j is not None else "-")
            rows.append(row)
        return header, rows

    def busy(self) -> list[tuple[str, int]]:
        """The (device, size) of every measurement still disturbed after its attempts."""
        return [(d, n) for d, ts in self.timings.items() for n, t in zip(self.sizes_on(d), ts, strict=True) if t.busy]

    def note(self) -> str:
        """What the table does not show (CUDA absent, or the recorded run instead), and a warning when busy."""
        from .bench import ATTEMPTS, BUSY_SLOWDOWN  # the measuring module's policy, which the warning quotes

        lines = [self._cuda_note(), self._threads_note(), self._cap_note()]
        if self.busy():
            lines.append(f"{BUSY_MARK.strip()} This machine was busy while timing these rows (their blocks spread by "
                         f"half their median, or a fixed test job ran {BUSY_SLOWDOWN:g} times slower than usual, even "
                         f"after {ATTEMPTS} tries): they show the load, not the operation. Rerun the cell when "
                         "nothing else is running.")
        return "\n".join(line for line in lines if line)

    def _cap_note(self) -> str:
        if "cpu" not in self.timings or len(self.timings["cpu"]) == len(self.sizes):
            return ""
        return (f"CPU timed up to {self.sizes_on('cpu')[-1]:,} only (bench.CPU_MAX): the larger sizes are the GPU's, "
                "where a CPU call takes a large part of a second, after its rate has levelled off.")

    def _threads_note(self) -> str:
        threads = self.meta.get("threads", "")
        if "cpu" not in self.timings or not threads.startswith("1 of ") or threads == "1 of 1":
            return ""
        return (f"CPU timed on {threads} threads: on a machine whose cores other programs share, one thread never "
                "waits for another (the full preset uses them all).")

    def _cuda_note(self) -> str:
        gpu = self.accelerator()
        if gpu is not None:
            return "" if "cpu" in self.timings else f"Timed on {gpu.upper()} only."
        if "gpu" in self.meta:  # a CPU-only sweep on a machine with a GPU: the cell asked for the CPU alone
            return f"Timed on the CPU only (this sweep's choice; {self.meta['gpu']} is here but not timed)."
        other = self.meta.get("accelerator")  # mps, xpu...: the course's sweeps time it when asked (on=)
        mine = (f" This machine's {other} accelerator is timed where a sweep asks for it "
                f"(on=[\"cpu\", \"{other}\"]).") if other else ""
        ref = self._overlay()
        if ref is None:
            return ("CUDA not available here, and no GPU reference run has been recorded yet "
                    f"(docs/gpu-runs.md): only this machine's CPU is shown.{mine}")
        meta = ref.meta
        return (f"CUDA not available here. The recorded columns come from {meta.get('gpu', 'a GPU')}, "
                f"torch {meta.get('torch', '?')}, {meta.get('date', 'undated')}, {meta.get('preset', '?')} preset: "
                f"recorded, not measured here.{mine}")

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
