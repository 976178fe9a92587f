"""Normalise notebook metadata so diffs show teaching, not tooling.

Sets the kernelspec every notebook uses, drops jupytext's and nbclient's per-cell bookkeeping
(execution timestamps change on every run), and blanks the exercise notebooks, which are
committed without outputs. `make execute` runs it; tests/test_notebooks.py checks the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
DROPPED_CELL_KEYS = ("execution", "lines_to_next_cell", "jupyter", "collapsed", "scrolled")


def tidy(path: Path) -> bool:
    """Tidy one notebook in place; return True when it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    blank = path.parent.name == "exercises"
    for cell in nb.cells:
        for key in DROPPED_CELL_KEYS:
            cell.metadata.pop(key, None)
        if blank and cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + "\n", encoding="utf-8")
    return after != before


def main(paths: list[str]) -> int:
    roots = [Path(p) for p in paths] or [Path("notebooks"), Path("exercises"), Path("solutions")]
    files = [f for r in roots for f in ([r] if r.suffix == ".ipynb" else sorted(r.rglob("*.ipynb")))]
    changed = [f for f in files if ".ipynb_checkpoints" not in f.parts and tidy(f)]
    for f in changed:
        print(f"tidied {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
