"""`make record`: re-execute the timed lessons alone on a quiet machine, and keep only quiet tables.

Usage: tools/record.py [NB.ipynb ...] [--tries N] [--idle PERCENT]

Each notebook (default: every lesson with a ``tc.bench(`` or ``tc.compare(`` cell) is executed in turn, never two
at once, in a fresh kernel with the suite's settings (``TORCHCOURSE_STRICT=1``, ``PYTHONHASHSEED=0``). Before each
try the machine must be idle: the CPU is sampled for two seconds and must be busy under ``--idle`` percent (other
programs: a browser, a test suite, a helper). Then every table its timed cells printed is read back
(:func:`table_problems`, the same reader ``tests/test_committed_timings.py`` applies to what is committed). A
notebook whose tables come back busy is executed again, up to ``--tries`` times; only a quiet run is written
over the committed notebook. Exit status 1 names each notebook left as it was, and why.

Route: :func:`main` → :func:`record` (idle check, execute, read back) → :func:`table_problems`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tools")]

from rerun import is_timed as _timed_source  # noqa: E402  (one definition of a timed cell: the re-run suite's)

from torchcourse.bench import BUSY_MARK, BUSY_SPREAD  # noqa: E402

_HEADER = re.compile(r"^\W*size {2,}")
_COLUMN = re.compile(r"^(?P<device>\w+) ms \(IQR, (?P<blocks>\d+)(?:-\d+)? blocks?\)$")
_CELL = re.compile(r"^(?P<median>[\d.e+-]+) \((?P<iqr>[\d.e+-]+)\)(?P<busy>" + re.escape(BUSY_MARK) + ")?$")


def table_problems(text: str) -> list[str]:
    """What is wrong with each bench table in ``text``: empty when every table was timed quietly.

    A table is the text :class:`torchcourse.bench.BenchResult` prints: a label line, a header row (``size``,
    then ``cpu ms (IQR, N blocks)`` and ``cpu fastest ms`` per device) and a row per size. It is wrong when
    timed in one block, when a row is marked busy or its IQR is at least ``BUSY_SPREAD`` of its median, or
    when it was recorded before the fastest block was shown.
    """
    problems: list[str] = []
    lines = text.splitlines()
    for at, line in enumerate(lines):
        if not _HEADER.match(line):
            continue
        label = lines[at - 1].strip(" ([,'\"") if at else "?"
        header = re.split(r" {2,}", line.strip(" ([,'\""))
        timed = {i: m for i, h in enumerate(header) if (m := _COLUMN.match(h))}
        if not timed:
            continue
        if not any(h.endswith("fastest ms") for h in header):
            problems.append(f"{label}: recorded before the fastest block was shown (re-record it)")
        for m in timed.values():
            if int(m["blocks"]) < 2:
                problems.append(f"{label}: {m['device']} timed in one block (a spread never measured)")
        for row in lines[at + 1:]:
            cells = re.split(r" {2,}", row.strip())
            if len(cells) < len(header) or not re.fullmatch(r"[\d,]+", cells[0]):
                break
            for i, m in timed.items():
                cell = _CELL.match(cells[i])
                if cell is None:
                    continue  # "-": not measured at this size
                median, iqr = float(cell["median"]), float(cell["iqr"])
                if cell["busy"]:
                    problems.append(f"{label}, {m['device']} at size {cells[0]}: marked busy")
                elif median > 0 and iqr >= BUSY_SPREAD * median:
                    problems.append(f"{label}, {m['device']} at size {cells[0]}: IQR {iqr:g} ms on a {median:g} ms "
                                    "median (a busy machine)")
    return problems


def cell_texts(cell: dict) -> str:
    """Everything a code cell showed as text (streams and plain-text values), one output a line block."""
    texts = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        texts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(texts)


def is_timed(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _timed_source("".join(cell.get("source", "")))


def timed_notebooks() -> list[Path]:
    """Every lesson with a timed cell, in reading order."""
    return [p for p in sorted((ROOT / "notebooks").glob("*/*.ipynb"))
            if any(is_timed(c) for c in json.loads(p.read_text(encoding="utf-8"))["cells"])]


def notebook_problems(nb: dict) -> list[str]:
    """Every timed cell's table problems, each with its cell index."""
    return [f"cell {i}: {p}" for i, c in enumerate(nb["cells"]) if is_timed(c) for p in table_problems(cell_texts(c))]


def busy_percent(seconds: float = 2.0) -> float | None:
    """How busy the whole machine's CPU is over ``seconds`` (None where psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_percent(interval=seconds)


def record(path: Path, tries: int, idle: float, log=print) -> list[str]:
    """Execute ``path`` until its tables are quiet (then write it); return the last try's problems."""
    import nbformat
    from nbclient import NotebookClient

    problems = ["not run"]
    for attempt in range(1, tries + 1):
        for _ in range(30):  # wait up to a minute for the machine to settle
            load = busy_percent()
            if load is None or load < idle:
                break
            log(f"  the machine is {load:.0f}% busy; waiting")
        else:
            return [f"the machine stayed {load:.0f}% busy: stop what else is running"]
        nb = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "running over TCP" line
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        except Exception as error:  # noqa: BLE001 - a failing cell: report it, keep the committed notebook
            return [f"a cell failed: {type(error).__name__}: {str(error).splitlines()[-1] if str(error) else ''}"]
        problems = notebook_problems(nb)
        log(f"  try {attempt}: {time.perf_counter() - started:.0f} s, "
            + ("quiet" if not problems else f"{len(problems)} busy: {problems[0]}"))
        if not problems:
            nbformat.write(nb, path)
            return []
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--idle", type=float, default=15.0, help="most CPU percent in use before a try")
    args = parser.parse_args(argv)
    os.environ.update(TORCHCOURSE_STRICT="1", PYTHONHASHSEED="0")
    os.environ.pop("TORCHCOURSE_BENCH", None)  # the machine's own preset, as a learner gets it
    paths = [p.resolve() for p in args.notebooks] or timed_notebooks()
    left: dict[str, list[str]] = {}
    written = []
    for path in paths:
        print(f"{path.relative_to(ROOT)}", flush=True)
        problems = record(path, args.tries, args.idle)
        if problems:
            left[str(path.relative_to(ROOT))] = problems
        else:
            written.append(str(path))
    if written:
        subprocess.run([sys.executable, str(ROOT / "tools" / "tidy_notebooks.py"), *written], check=True)
    for name, problems in left.items():
        print(f"NOT RECORDED {name}: " + "; ".join(problems), file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
