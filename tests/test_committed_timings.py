"""Committed timing tables were recorded on a quiet machine (docs/authoring.md, "Timed lessons").

Every table a timed cell printed is read back with ``tools/record.py``'s reader: the test fails when one was
timed in a single block, marks a row ``(busy)``, has a row whose IQR is at least half its median, or comes from
before the helper showed the fastest block. Re-record a timed lesson alone on the machine (``make record``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from torchcourse.bench import BUSY_MARK

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("record", ROOT / "tools" / "record.py")
record = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record)
table_problems = record.table_problems


def _timed_cells() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("*/*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        found += [(str(path.relative_to(ROOT)), i, record.cell_texts(c)) for i, c in enumerate(nb["cells"])
                  if record.is_timed(c)]
    return found


TIMED = _timed_cells()


def test_timed_cells_are_found():
    assert len(TIMED) >= 20 and all(text for _, _, text in TIMED)


@pytest.mark.parametrize(("notebook", "index", "text"), TIMED, ids=[f"{n}-cell{i}" for n, i, _ in TIMED])
def test_every_committed_table_was_timed_quietly(notebook: str, index: int, text: str):
    assert not table_problems(text), f"{notebook} cell {index}: " + "; ".join(table_problems(text))


QUIET = """n x n matmul
size  cpu ms (IQR, 10 blocks)  cpu fastest ms  cpu GFLOP/s
  32           0.01 (0.0012)          0.0095        6.5
 128            0.4 (0.02)             0.38        10
CUDA not available here."""


def test_a_quiet_table_passes():
    assert table_problems(QUIET) == []
    assert table_problems(f"({QUIET}, {QUIET})") == []  # two tables in a tuple's repr


@pytest.mark.parametrize(("change", "problem"), [
    (("0.4 (0.02)", "0.4 (0.3)"), "a busy machine"),
    (("0.4 (0.02)", f"0.4 (0.02){BUSY_MARK}"), "marked busy"),
    (("10 blocks", "1 block"), "one block"),
    (("  cpu fastest ms", ""), "before the fastest block"),
])
def test_a_table_made_busy_on_purpose_fails(change: tuple[str, str], problem: str):
    problems = table_problems(QUIET.replace(*change))
    assert problems and problem in problems[0], problems
