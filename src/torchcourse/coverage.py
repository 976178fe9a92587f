"""``torchcourse coverage``: map what the lessons really ran onto the API inventory.

The records come from :mod:`torchcourse.tracing` (one JSON file per notebook kernel). A row of
``data/api-inventory.tsv`` counts as run on the CPU when lesson code called it with CPU tensors
or with no tensor at all, and as run on CUDA when it was called with CUDA tensors (or with no
tensor in a kernel that had CUDA). Only lessons count: kernels whose folder is ``notebooks/<chapter>``.

The gate (``--check``, and ``tests/test_coverage.py``) holds every chapter that exists (a
``notebooks/<chapter>/`` with at least one notebook):

- a row with status ``ok``, ``deprecated`` or ``python`` (the standard library and builtins:
  ``str.format``, ``argparse.ArgumentParser``) must run on the CPU, unless its device is ``cuda``;
- a ``removed`` row must be shown failing inside ``tc.expect_error``/``expect_warning`` (or, on an
  older torch that still has it, run: a lesson branches on what the running torch does, and the
  tracer records a call only when it returned) and one of its modern replacements must run on the CPU;
- ``needs-cuda`` rows count for CUDA only; ``external`` rows (packages that are not installed) are
  reported, not gated;
- rows in ``data/coverage-exclusions.tsv`` are exempt, each with its reason.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Coverage", "add_command", "compute", "load_exclusions", "load_inventory", "load_records", "modern_names"]

GATED = ("ok", "deprecated", "python")
_MODERN = re.compile(r"\b(?:torch|torchvision|torchmetrics|tqdm|PIL|numpy|matplotlib)(?:\.[A-Za-z_]\w*)+|\bcProfile\b")


def _data(name: str) -> str:
    return resources.files("torchcourse").joinpath("data", name).read_text(encoding="utf-8")


def load_inventory(text: str | None = None) -> list[dict[str, str]]:
    """The rows of the API inventory (the package's copy of ../shared/api-inventory.tsv)."""
    rows = csv.DictReader((text if text is not None else _data("api-inventory.tsv")).splitlines(), delimiter="\t")
    return [dict(row) for row in rows]


def load_exclusions(text: str | None = None) -> dict[str, str]:
    """api -> reason, from data/coverage-exclusions.tsv (lines starting with # are comments)."""
    text = text if text is not None else _data("coverage-exclusions.tsv")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {row["api"]: row["reason"] for row in csv.DictReader(lines, delimiter="\t")}


def modern_names(modern: str) -> list[str]:
    """The dotted API names in a row's ``modern`` column ('torch.linalg.eig', 'torch.Tensor.shape')."""
    return _MODERN.findall(modern or "")


@dataclass
class Records:
    """The merged records of a suite run: name -> device types, and the names shown in expect_* blocks."""

    calls: dict[str, set[str]] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)
    kernels: int = 0
    by_chapter: dict[str, int] = field(default_factory=dict)

    def cpu(self, name: str) -> bool:
        return bool(self.calls.get(name, set()) & {"cpu", "none"})

    def cuda(self, name: str) -> bool:
        return bool(self.calls.get(name, set()) & {"cuda", "none+cuda"})

    def was_shown(self, name: str) -> bool:
        if name in self.shown:
            return True
        parts = name.split(".")
        for pattern in self.shown:
            if pattern.startswith("*."):
                tail = pattern[2:].split(".")
                if parts[-len(tail) :] == tail:
                    return True
        return False


def _lesson_chapter(cwd: str) -> str | None:
    path = Path(cwd)
    return path.name if path.parent.name == "notebooks" else None


def load_records(directory: str | Path, lessons_only: bool = True) -> Records:
    """Merge every kernel's JSON file under ``directory``."""
    merged = Records()
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        chapter = _lesson_chapter(data.get("cwd", ""))
        if lessons_only and chapter is None:
            continue
        merged.kernels += 1
        if chapter:
            merged.by_chapter[chapter] = merged.by_chapter.get(chapter, 0) + 1
        for name, devices in data.get("calls", {}).items():
            found = merged.calls.setdefault(name, set())
            found.update(devices)
            if "none" in devices and data.get("cuda_available"):
                found.add("none+cuda")
        merged.shown.update(data.get("shown", []))
    return merged


@dataclass
class Row:
    api: str
    chapter: str
    notes: str
    status: str
    modern: str
    device: str
    cpu: bool = False
    cuda: bool = False
    shown: bool = False
    modern_ran: bool | None = None
    excluded: str | None = None

    @property
    def gated(self) -> bool:
        """Must this row run on the CPU (ok/deprecated, not a CUDA-only row)?"""
        return self.status in GATED and self.device != "cuda"

    @property
    def missing(self) -> bool:
        """True when the gate holds this row and the lessons do not demonstrate it."""
        if self.excluded:
            return False
        if self.gated:
            return not self.cpu
        if self.status == "removed":  # shown failing, or run where the running torch still has it
            return not ((self.shown or self.cpu) and self.modern_ran)
        return False

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "gated": self.gated, "missing": self.missing}


@dataclass
class Coverage:
    """Inventory rows with what ran, per chapter; ``failures`` are the rows the gate rejects."""

    rows: list[Row]
    existing: dict[str, int]  # chapter -> number of lesson notebooks
    records: Records
    stale_exclusions: list[str]

    def chapters(self) -> list[str]:
        return sorted({row.chapter for row in self.rows} | set(self.existing))

    def chapter_rows(self, chapter: str) -> list[Row]:
        return [row for row in self.rows if row.chapter == chapter]

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.chapter in self.existing and row.missing]

    def summary(self) -> list[dict[str, Any]]:
        table = []
        for chapter in self.chapters():
            rows = self.chapter_rows(chapter)
            legacy = [r for r in rows if r.status in ("deprecated", "removed")]
            table.append(
                {
                    "chapter": chapter,
                    "notebooks": self.existing.get(chapter, 0),
                    "rows": len(rows),
                    "gated": sum(r.gated or r.status == "removed" for r in rows),
                    "cpu": sum(r.cpu for r in rows),
                    "cuda": sum(r.cuda for r in rows),
                    "legacy_shown": f"{sum(r.modern_ran is True and (r.shown or r.cpu) for r in legacy)}/{len(legacy)}",
                    "excluded": sum(bool(r.excluded) for r in rows),
                    "missing": sum(r.missing for r in rows) if chapter in self.existing else None,
                }
            )
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernels": self.records.kernels,
            "existing_chapters": self.existing,
            "summary": self.summary(),
            "failures": [row.api for row in self.failures],
            "stale_exclusions": self.stale_exclusions,
            "rows": [row.to_dict() for row in self.rows],
        }

    def table(self) -> str:
        """The per-chapter table, in Markdown (what the README shows)."""
        head = [
            "chapter",
            "lessons",
            "rows",
            "gated",
            "ran on CPU",
            "ran on CUDA",
            "legacy shown",
            "excluded",
            "missing",
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for entry in self.summary():
            missing = "-" if entry["missing"] is None else str(entry["missing"])
            cells = [
                entry["chapter"],
                str(entry["notebooks"]),
                str(entry["rows"]),
                str(entry["gated"]),
                str(entry["cpu"]),
                str(entry["cuda"]),
                entry["legacy_shown"],
                str(entry["excluded"]),
                missing,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        total = self.summary()
        lines.append(
            "| **all** | "
            + " | ".join(str(sum(e[k] for e in total)) for k in ("notebooks", "rows", "gated", "cpu", "cuda"))
            + f" | | {sum(e['excluded'] for e in total)} | {sum(e['missing'] or 0 for e in total)} |"
        )
        return "\n".join(lines)

    def report(self) -> str:
        out = [
            f"API coverage: {self.records.kernels} lesson kernels traced "
            f"({', '.join(f'{c}: {n}' for c, n in sorted(self.records.by_chapter.items())) or 'none'})",
            "",
            self.table(),
            "",
        ]
        for chapter in self.chapters():
            if chapter not in self.existing:
                continue
            never = [r for r in self.chapter_rows(chapter) if r.missing]
            if never:
                out.append(f"{chapter}: {len(never)} rows the lessons never ran (api · notes · status):")
                out += [
                    f"  {r.api}  · notes {r.notes} · {r.status}"
                    + (
                        f" (shown: {'yes' if r.shown else 'no'}, replacement ran: {'yes' if r.modern_ran else 'no'})"
                        if r.status == "removed"
                        else ""
                    )
                    for r in never
                ]
                out.append("")
        legacy = [r for r in self.rows if r.status in ("deprecated", "removed") and r.chapter in self.existing]
        if legacy:
            out.append("Deprecated and removed rows, with their modern replacement:")
            for r in legacy:
                old = "ran" if r.cpu else "shown" if r.shown else "not shown"
                new = "ran" if r.modern_ran else "not run" if r.modern_ran is False else "-"
                out.append(f"  [{r.status}] {r.api} ({old}) -> {r.modern or '-'} ({new})")
            out.append("")
        if self.stale_exclusions:
            out.append("Exclusions that name no inventory row: " + ", ".join(self.stale_exclusions))
        failures = self.failures
        out.append(
            f"Gate: {'FAILED, ' + str(len(failures)) + ' rows' if failures else 'passed'} "
            f"(chapters with lessons: {', '.join(sorted(self.existing)) or 'none'})"
        )
        return "\n".join(out)

    def html(self) -> str:
        def esc(value: Any) -> str:
            return html.escape(str(value))

        parts = [
            "<!doctype html><meta charset='utf-8'><title>torchcourse API coverage</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
            ".miss{background:#fdd}.ok{background:#dfd}.excl{background:#eee}</style>",
            "<h1>torchcourse API coverage</h1>",
            f"<p>{self.records.kernels} lesson kernels traced.</p>",
            "<table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in self.summary()[0]) + "</tr>",
        ]
        for entry in self.summary():
            parts.append("<tr>" + "".join(f"<td>{esc('-' if v is None else v)}</td>" for v in entry.values()) + "</tr>")
        parts.append("</table>")
        for chapter in self.chapters():
            parts.append(
                f"<details{' open' if chapter in self.existing else ''}><summary><b>{esc(chapter)}</b>"
                f"{' (no lessons yet)' if chapter not in self.existing else ''}</summary><table>"
                "<tr><th>api</th><th>notes</th><th>status</th><th>device</th><th>CPU</th><th>CUDA</th>"
                "<th>shown</th><th>modern</th><th>modern ran</th><th>excluded</th></tr>"
            )
            for r in self.chapter_rows(chapter):
                css = "excl" if r.excluded else "miss" if r.missing else "ok" if (r.cpu or r.cuda or r.shown) else ""
                cells = [
                    r.api,
                    r.notes,
                    r.status,
                    r.device,
                    "yes" if r.cpu else "",
                    "yes" if r.cuda else "",
                    "yes" if r.shown else "",
                    r.modern,
                    {True: "yes", False: "no", None: ""}[r.modern_ran],
                    r.excluded or "",
                ]
                parts.append(f"<tr class='{css}'>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
            parts.append("</table></details>")
        return "\n".join(parts)


def existing_chapters(root: Path) -> dict[str, int]:
    """Chapters with at least one lesson notebook: ``notebooks/<chapter>/*.ipynb``."""
    found = {}
    for folder in sorted((root / "notebooks").glob("*")):
        count = len(list(folder.glob("*.ipynb")))
        if folder.is_dir() and count:
            found[folder.name] = count
    return found


def compute(
    records: Records,
    root: Path | str = ".",
    inventory: list[dict[str, str]] | None = None,
    exclusions: dict[str, str] | None = None,
    existing: dict[str, int] | None = None,
) -> Coverage:
    inventory = inventory if inventory is not None else load_inventory()
    exclusions = exclusions if exclusions is not None else load_exclusions()
    existing = existing if existing is not None else existing_chapters(Path(root))
    rows = []
    for entry in inventory:
        row = Row(**{k: entry.get(k, "") for k in ("api", "chapter", "notes", "status", "modern", "device")})
        row.cpu, row.cuda = records.cpu(row.api), records.cuda(row.api)
        row.shown = records.was_shown(row.api)
        names = modern_names(row.modern)
        if names:
            row.modern_ran = any(records.cpu(name) for name in names)
        row.excluded = exclusions.get(row.api)
        rows.append(row)
    known = {row.api for row in rows}
    return Coverage(rows, existing, records, sorted(set(exclusions) - known))


def _repo_root(start: Path) -> Path:
    for folder in [start, *start.parents]:
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").exists():
            return folder
    return start


def run_notebooks(root: Path, records: Path, paths: Iterable[str] = ("notebooks",), jobs: str = "auto") -> int:
    """Run the lessons under nbval (lax) with tracing into ``records``; returns pytest's exit code."""
    env = {
        **os.environ,
        "TORCHCOURSE_TRACE_DIR": str(records),
        "TORCHCOURSE_STRICT": "1",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        "-n",
        jobs,
        "--dist",
        "loadscope",
        *paths,
    ]
    return subprocess.call(command, cwd=root, env=env)


def _command(args: argparse.Namespace) -> int:
    root = _repo_root(Path(args.root).resolve())
    scratch = None
    if args.records:
        records_dir = Path(args.records)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="torchcourse-coverage-")
        records_dir = Path(scratch.name)
        if not args.run_notebooks:
            print("torchcourse coverage: give --records DIR (a TORCHCOURSE_TRACE_DIR) or --run", file=sys.stderr)
            return 2
    try:
        status = 0
        if args.run_notebooks:
            status = run_notebooks(root, records_dir, jobs=args.jobs)
            if status == 1:
                print("some lesson cells failed: the rows they would have run may be missing below", file=sys.stderr)
            elif status:
                print(f"pytest exited with {status}", file=sys.stderr)
        coverage = compute(load_records(records_dir), root)
        if args.json:
            print(json.dumps(coverage.to_dict(), indent=2))
        else:
            print(coverage.report())
        if args.html:
            Path(args.html).write_text(coverage.html(), encoding="utf-8")
        if args.check:
            if coverage.records.kernels == 0 and coverage.existing:
                print("no lesson records found: was TORCHCOURSE_TRACE_DIR set for the notebook run?", file=sys.stderr)
                return 1
            return 1 if coverage.failures else 0
        return status  # a lesson that failed under the tracer fails the command, after the report
    finally:
        if scratch is not None:
            scratch.cleanup()


def add_command(subparsers: Any) -> None:
    """Add ``torchcourse coverage`` to the CLI."""
    parser = subparsers.add_parser("coverage", help="map the APIs the lessons ran onto the API inventory")
    parser.add_argument("--records", help="folder of trace records (TORCHCOURSE_TRACE_DIR of an earlier run)")
    parser.add_argument(
        "--run", action="store_true", dest="run_notebooks", help="run the lessons with tracing first (nbval, lax)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a chapter that exists misses a row")
    parser.add_argument("--html", metavar="FILE", help="also write a browsable HTML report")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    parser.add_argument("--jobs", default="auto", help="pytest-xdist workers for --run")
    parser.set_defaults(run=_command)
