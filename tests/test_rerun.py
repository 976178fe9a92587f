"""The rerun driver (tools/rerun.py, ``make test-rerun``): a cell that cannot run again is named."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rerun", ROOT / "tools" / "rerun.py")
rerun = importlib.util.module_from_spec(spec)
sys.modules["rerun"] = rerun  # its dataclass looks its module up
spec.loader.exec_module(rerun)


def _notebook(tmp_path: Path, *cells: tuple[str, list[str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_cell_that_cannot_run_again_is_named(tmp_path):
    path = _notebook(tmp_path, ("import os, tempfile\nfolder = tempfile.mkdtemp()", []),
                     ('os.mkdir(os.path.join(folder, "a"))', []),
                     ('os.makedirs(os.path.join(folder, "b"), exist_ok=True)\nlen(os.listdir(folder))', []),
                     ("import random\nrandom.random()", ["same-on-rerun"]))
    nb = nbformat.read(path, as_version=4)
    _, failures, _, spent = rerun.run_notebook(str(path))
    found = {(f.index, f.phase, f.message.split(":")[0]) for f in failures}
    assert found == {(1, "run twice in a row", "FileExistsError"),  # Run All again: cell 0 makes a new folder
                     (3, "run twice in a row", "output differs from the first run (same-on-rerun)"),
                     (3, "second Run All", "output differs from the first run (same-on-rerun)")}
    assert {f.cell_id for f in failures if f.index == 1} == {nb.cells[1].id}
    assert "cell 1 (id " in str(failures[0]) and str(path) in str(failures[0])
    assert set(spent) == {0, 1, 2, 3}


def test_outputs_are_compared_as_nbval_sees_them():
    outputs = [nbformat.v4.new_output("stream", text="at 0x7f00deadbeef in /tmp/torchcourse-1-abc/x, 1.5 ms\n")]
    assert rerun._shown(outputs, rerun._sanitizers()) == ["stdout: at 0xADDRESS in TMPDIR/x, DURATION\n"]


def test_a_stream_split_into_pieces_reads_as_one():
    whole = [nbformat.v4.new_output("stream", text="error: no\n[0, 1]\n")]
    pieces = [nbformat.v4.new_output("stream", text="error: no"), nbformat.v4.new_output("stream", text="\n[0, 1]\n")]
    assert rerun._shown(pieces, []) == rerun._shown(whole, []) == ["stdout: error: no\n[0, 1]\n"]
    other = [pieces[0], nbformat.v4.new_output("stream", name="stderr", text="\n[0, 1]\n")]
    assert len(rerun._shown(other, [])) == 2  # stdout and stderr stay apart


def test_timed_cells_are_recognised():
    assert rerun.is_timed('result = tc.bench(make, "matmul", label="mm")')
    assert rerun.is_timed('a, b = tc.compare({"a": make_a, "b": make_b}, "matmul").values()')
    assert not rerun.is_timed("tc.benchmark = 1\nbench = 2")
