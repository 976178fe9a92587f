"""The ``torchcourse`` command: ``grade`` scores exercise notebooks, ``coverage`` maps executed APIs."""

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


def grade_notebook(path: Path, timeout: int = 600) -> tuple[Report, list[str]]:
    """Execute an exercise notebook in a fresh kernel and collect its check outcomes.

    The notebook runs to the end even when a cell raises (a learner's error costs that exercise,
    not the rest). Exercises whose check never ran count as not attempted.
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
        with _environ(TORCHCOURSE_GRADE_FILE=str(grade_file), TORCHCOURSE_STRICT="0"):
            client = NotebookClient(
                nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                resources={"metadata": {"path": scratch}},
            )
            client.execute()
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
    return 0 if total.score == total.max_score else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchcourse`` command."""
    parser = argparse.ArgumentParser(prog="torchcourse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="execute exercise notebooks and print a score report")
    grade.add_argument("notebooks", nargs="*", help="exercise notebooks (default: exercises/*.ipynb)")
    grade.add_argument("--json", action="store_true", help="print the report as JSON")
    grade.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    grade.set_defaults(run=_grade)
    add_coverage_command(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
