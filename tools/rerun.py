"""Run every cell twice, then Run All again in the same kernel: the course's "every cell can be run again" rule.

Learners run a cell twice, or press Run All twice without restarting the kernel. This driver does
both, with nbclient, for every lesson and solution (or the notebooks named on the command line):

1. each code cell in order, run twice in a row (a learner pressing Shift-Enter, then Ctrl-Enter);
2. then every code cell once more, top to bottom, in the same kernel (a second Run All).

Any error is a failure, reported with the notebook, the cell's index and id, the pass and the
exception. Outputs are compared only in cells tagged ``same-on-rerun`` (cell metadata
``"tags": ["same-on-rerun"]``): every run must show what the first one showed, after the
``nbval-sanitize.cfg`` replacements. Elsewhere the contract is "no error": a reseeded draw or a
timing may differ, and that is what a learner sees too.

Timed cells (those calling ``tc.bench(`` or ``tc.compare(``) run twice in a row but are skipped in the second Run All:
they take most of the time, and the repeated run has already shown that they can run again.
Without CUDA the bench helper uses its ``quick`` preset (``TORCHCOURSE_BENCH=quick`` forces it).

Notebooks run in parallel, ``--jobs`` kernels at a time (default 3), in the strict environment of
``make test`` (``TORCHCOURSE_STRICT=1 PYTHONHASHSEED=0``); each kernel is killed at the end, as nbval
does (the next kernel's ``tc.workdir()`` removes the scratch folders of dead kernels). ``make test-rerun``
runs it; it exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from torchcourse.commands import STRICT_ENV  # make test's settings: one definition

ROOT = Path(__file__).resolve().parents[1]
SAME_TAG = "same-on-rerun"
TIMED = re.compile(r"\btc\.(?:bench|compare)\(|\bbench\.(?:bench|compare)\(")
CELL_TIMEOUT = 600


@dataclass
class Failure:
    """One cell that failed on a repeated run, or showed something else where it promised the same output."""

    notebook: str
    index: int
    cell_id: str
    phase: str
    message: str

    def __str__(self) -> str:
        return f"{self.notebook}: cell {self.index} (id {self.cell_id}), {self.phase}: {self.message}"


class _Stopped(Exception):
    """The kernel cannot go on (a cell timed out, the kernel died): the notebook's run ends."""


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The replacements nbval applies before comparing, so ``same-on-rerun`` means what nbval means."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "nbval-sanitize.cfg", encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def _shown(outputs: list, sanitize: list[tuple[re.Pattern[str], str]]) -> list[str]:
    """What a cell showed, as text: streams, plain-text values and errors, sanitised."""
    parts: list[str] = []
    merged: list[dict] = []
    for output in outputs:  # one stream arrives in as many pieces as the kernel flushed: join them, as nbval does
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1] = {**merged[-1], "text": merged[-1].get("text", "") + output.get("text", "")}
        else:
            merged.append(output)
    for output in merged:
        kind = output.get("output_type")
        if kind == "stream":
            text = f"{output.get('name')}: {output.get('text', '')}"
        elif kind == "error":
            text = f"error: {output.get('ename')}: {output.get('evalue')}"
        else:
            text = output.get("data", {}).get("text/plain", "")
        for pattern, replacement in sanitize:
            text = pattern.sub(replacement, text)
        parts.append(text)
    return parts


def _error(outputs: list) -> str | None:
    """The exception a cell raised, as ``Type: message`` (first line), or None."""
    for output in outputs:
        if output.get("output_type") == "error":
            lines = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename')}: {lines[0] if lines else ''}"
    return None


def is_timed(source: str) -> bool:
    """True for a timed cell (one that calls ``tc.bench``)."""
    return bool(TIMED.search(source))


def run_notebook(path: str, timeout: int = CELL_TIMEOUT) -> tuple[str, list[Failure], float, dict[int, float]]:
    """Run one notebook the rerun way; return its path, its failures, its seconds and each cell's seconds."""
    import nbformat
    from nbclient import NotebookClient

    start = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    name = str(Path(path).resolve().relative_to(ROOT)) if Path(path).resolve().is_relative_to(ROOT) else path
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "running over TCP" line
                            shutdown_kernel="immediate",  # as nbval does: a graceful stop waits seconds per kernel
                            resources={"metadata": {"path": str(Path(path).resolve().parent)}})
    sanitize = _sanitizers()
    failures: list[Failure] = []
    cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first: dict[int, list[str]] = {}
    spent: dict[int, float] = {}

    def run(index: int, cell, phase: str) -> bool:
        started, cell_id = time.perf_counter(), cell.get("id", "?")
        try:
            client.execute_cell(cell, index)
        except Exception as error:  # a time-out or a dead kernel: this notebook stops here
            first_line = (str(error).splitlines() or [""])[0]
            failures.append(Failure(name, index, cell_id, phase, f"{type(error).__name__}: {first_line}"))
            raise _Stopped from error
        finally:
            spent[index] = spent.get(index, 0.0) + time.perf_counter() - started
        error = _error(cell.outputs)
        if error:
            failures.append(Failure(name, index, cell_id, phase, error))
            return False
        if SAME_TAG in cell.metadata.get("tags", []):
            shown = _shown(cell.outputs, sanitize)
            if index not in first:
                first[index] = shown
            elif shown != first[index]:
                failures.append(Failure(name, index, cell_id, phase,
                                        f"output differs from the first run ({SAME_TAG}): "
                                        f"{''.join(first[index])[:200]!r} then {''.join(shown)[:200]!r}"))
        return True

    with client.setup_kernel(), contextlib.suppress(_Stopped):
        for index, cell in cells:
            if run(index, cell, "first run"):
                run(index, cell, "run twice in a row")
        for index, cell in cells:
            if not is_timed(cell.source):
                run(index, cell, "second Run All")
    return name, failures, time.perf_counter() - start, spent


def notebooks(args: list[str]) -> list[Path]:
    """The notebooks named (files or folders), or every lesson and solution."""
    roots = [Path(a) for a in args] or [ROOT / "notebooks", ROOT / "solutions"]
    return sorted(f for r in roots for f in ([r] if r.suffix == ".ipynb" else r.rglob("*.ipynb"))
                  if ".ipynb_checkpoints" not in f.parts)


def _cost(path: Path) -> tuple[int, int]:
    """A guess at a notebook's run time, to start the slow ones first: timed cells, then size."""
    text = path.read_text(encoding="utf-8")
    return len(TIMED.findall(text)), len(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/ and solutions/)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("RERUN_JOBS", "3")))
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    parser.add_argument("--slowest", type=int, default=0, metavar="N", help="list the N slowest cells (all runs)")
    options = parser.parse_args(argv)
    os.environ.update(STRICT_ENV)  # the kernels inherit it
    files = sorted(notebooks(options.paths), key=_cost, reverse=True)
    start = time.perf_counter()
    failures: list[Failure] = []
    slow: list[tuple[float, str, int]] = []
    with ProcessPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = {pool.submit(run_notebook, str(f), options.timeout): f for f in files}
        for future in as_completed(futures):
            try:
                name, found, seconds, spent = future.result()
            except Exception as error:  # the kernel died, a cell timed out: the notebook fails
                name, found, seconds, spent = str(futures[future]), [], 0.0, {}
                found.append(Failure(name, -1, "-", "driver", f"{type(error).__name__}: {error}"))
            failures.extend(found)
            slow.extend((t, name, i) for i, t in spent.items())
            print(f"{'FAIL' if found else 'ok  '} {name} ({seconds:.0f} s)", flush=True)
    for t, name, index in sorted(slow, reverse=True)[:options.slowest]:
        print(f"slow: {name}: cell {index}, {t:.1f} s over all its runs")
    for failure in sorted(failures, key=lambda f: (f.notebook, f.index)):
        print(failure)
    total = time.perf_counter() - start
    print(f"{len(files)} notebook(s), {len(failures)} failure(s), {total:.0f} s "
          f"(each cell twice in a row, then Run All again; docs/authoring.md, 'Every cell can be run again')")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
