"""The ``torchcourse`` command: ``lab`` opens the course, ``test`` runs the suite, ``grade`` scores exercise
notebooks, ``reset`` restores one, ``coverage`` maps executed APIs (``lab``, ``test`` and ``reset`` live in
:mod:`.commands`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .checks import chapters
from .checks.core import Outcome, Report, Status
from .commands import add_commands
from .coverage import add_command as add_coverage_command

__all__ = ["grade_notebook", "main"]


@contextmanager
def _environ(**values: str) -> Any:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _cell_errors(nb: Any) -> list[str]:
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {index}: {output['ename']}: {output['evalue']}")
    return errors


def _kernel_manager(scratch: str) -> Any:
    """A manager for a fresh kernel of the current environment, talking over local sockets.

    Over TCP ipykernel warns "Kernel is running over TCP without encryption" once per notebook graded;
    IPC sockets (in the scratch folder) are local to the machine and need no encryption. Windows has
    no IPC transport, and a scratch folder too long for a socket's path (``commands.ipc_fits``) neither:
    both keep TCP.
    """
    from jupyter_client.manager import KernelManager

    from .commands import ipc_fits

    if not ipc_fits(scratch):
        return KernelManager(kernel_name="python3")
    return KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(scratch) / "kernel"))


def grade_notebook(path: Path, timeout: int = 600) -> tuple[Report, list[str]]:
    """Execute an exercise notebook, as saved, in a fresh kernel and collect its check outcomes.

    The notebook runs to the end even when a cell raises (a learner's error costs that exercise,
    not the rest). Exercises whose check never ran count as not attempted. The kernel is shut down
    before this returns, whatever happened (one per notebook would otherwise pile up: 0.5 GB each).
    """
    import nbformat
    from nbclient import NotebookClient

    chapter = chapters().get(path.stem)
    if chapter is None:
        raise SystemExit(f"{path}: no chapter of exercises is named {path.stem!r} (known: {sorted(chapters())})")
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="torchcourse-grade-") as scratch:
        grade_file = Path(scratch) / "outcomes.jsonl"
        grade_file.touch()
        km = _kernel_manager(scratch)
        try:
            with _environ(TORCHCOURSE_GRADE_FILE=str(grade_file), TORCHCOURSE_STRICT="0"):
                client = NotebookClient(
                    nb, km=km, timeout=timeout, kernel_name="python3", allow_errors=True,
                    resources={"metadata": {"path": scratch}},
                )
                client.execute()
        finally:  # nbclient shuts down only the kernels it made itself: this one would outlive the grading
            if km.has_kernel:
                km.shutdown_kernel()  # asked to exit, killed only if it does not (no "Parent appears to have exited")
        recorded = {}
        for line in grade_file.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            recorded[entry["id"]] = Outcome(**{**entry, "status": Status(entry["status"])})
    outcomes = [
        recorded.get(ex.id)
        or Outcome(chapter.name, ex.id, ex.title, Status.NOT_ATTEMPTED,
                   "Its check did not run: run the notebook from the top, and look for a cell that raised.",
                   0, ex.points)
        for ex in chapter.exercises.values()
    ]
    return Report(outcomes), _cell_errors(nb)


def _grade(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.notebooks] or sorted(Path("exercises").glob("*.ipynb"))
    if not paths:
        print("no exercise notebooks found (looked in ./exercises)", file=sys.stderr)
        return 2
    names = ", ".join(str(p) for p in paths)
    print(f"Grading the saved {names}: unsaved changes in JupyterLab are not seen (save first: Ctrl+S, Cmd+S).",
          file=sys.stderr if args.json else sys.stdout, flush=True)
    outcomes: list[Outcome] = []
    errors: dict[str, list[str]] = {}
    for path in paths:
        report, cell_errors = grade_notebook(path, timeout=args.timeout)
        outcomes += report.outcomes
        if cell_errors:
            errors[str(path)] = cell_errors
    total = Report(outcomes)
    if args.json:
        print(json.dumps({**total.to_dict(), "errors": errors}, indent=2))
    else:
        print(total)
        for path, cell_errors in errors.items():
            print(f"\nCells that raised in {path}:")
            for error in cell_errors:
                print(f"  {error}")
        print(f"\n{closing_line(total)}")
    return 0 if total.score == total.max_score else 1


def closing_line(report: Report) -> str:
    """One plain sentence under the score report (the exit status says the same to CI)."""
    counts = {status: sum(o.status is status for o in report.outcomes) for status in Status}
    if report.score == report.max_score:
        return f"Full marks: {report.score}/{report.max_score} points, every exercise correct."
    tally = ", ".join(f"{n} {status.value}" for status, n in counts.items() if n)
    under_make = " (make reports it as 'Error 1': nothing is broken)" if os.environ.get("MAKELEVEL") else ""
    return (f"{report.score}/{report.max_score} points so far ({tally}). Not full marks yet, so this command "
            f"exits with status 1 for CI{under_make}.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchcourse`` command."""
    parser = argparse.ArgumentParser(prog="torchcourse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="execute exercise notebooks and print a score report")
    grade.add_argument("notebooks", nargs="*", help="exercise notebooks (default: exercises/*.ipynb)")
    grade.add_argument("--json", action="store_true", help="print the report as JSON")
    grade.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    grade.set_defaults(run=_grade)
    add_commands(commands)
    add_coverage_command(commands)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = unknown
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
