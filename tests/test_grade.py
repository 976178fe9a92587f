"""`torchcourse grade`: blank notebooks score zero, solutions full marks, learners' errors are survived."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from torchcourse.cli import grade_notebook, main

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))


# 01_tensors, blank, is graded through the command in test_the_report_says_what_it_grades_and_ends_plainly.
BLANK = [p for p in EXERCISES if p.stem != "01_tensors"]


@pytest.mark.parametrize("notebook", BLANK, ids=[p.stem for p in BLANK])
def test_blank_exercises_are_not_attempted(notebook):
    report, errors = grade_notebook(notebook)
    assert report.outcomes and report.score == 0
    assert {o.status.value for o in report.outcomes} == {"not attempted"}
    assert errors == []


# Every solution scoring full marks is already held by nbval, which runs solutions/ strictly (a check
# that fails raises) and compares the committed score report; here one chapter goes through the CLI.
def test_grading_leaves_no_kernel_running(monkeypatch):
    import torchcourse.cli as cli

    made = []
    real = cli._kernel_manager
    monkeypatch.setattr(cli, "_kernel_manager", lambda scratch: made.append(real(scratch)) or made[-1])
    grade_notebook(EXERCISES[0])
    assert len(made) == 1 and not made[0].has_kernel  # shut down, not left for the operating system to find


def test_solutions_score_full_marks(capsys):
    solution = ROOT / "solutions" / "00_python.ipynb"
    assert main(["grade", "--json", str(solution)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["score"] == report["max_score"] > 0
    entry = report["exercises"][0]
    assert {"id", "points", "max_points", "status", "message"} <= set(entry)


def test_wrong_and_broken_answers_are_reported(tmp_path, capsys):
    nb = nbformat.read(ROOT / "exercises" / "01_tensors.ipynb", as_version=4)
    answers = [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    answers[0].source = "def to_unit_float(images):\n    return images.float()"  # wrong: not scaled
    answers[1].source = "def mean_count(counts):\n    return undefined_name"  # raises inside the check
    answers[2].source = "raise RuntimeError('the learner broke this cell')"  # the cell itself raises
    path = tmp_path / "01_tensors.ipynb"
    nbformat.write(nb, path)
    assert main(["grade", "--json", str(path)]) == 1  # below full marks
    report = json.loads(capsys.readouterr().out)
    status = {e["id"]: (e["status"], e["message"]) for e in report["exercises"]}
    assert status["q1"][0] == "incorrect" and "255 times too large" in status["q1"][1]
    assert status["q2"][0] == "incorrect" and "NameError" in status["q2"][1]
    assert status["q3"][0] == "not attempted"  # its function was never defined; the check cell raised
    assert any("the learner broke this cell" in e for e in report["errors"][str(path)])


def test_unknown_chapter_is_explained(tmp_path):
    path = tmp_path / "99_nothing.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    with pytest.raises(SystemExit, match="no chapter of exercises"):
        grade_notebook(path)


def test_the_report_says_what_it_grades_and_ends_plainly(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("MAKELEVEL", "1")  # as under `make grade`
    path = tmp_path / "01_tensors.ipynb"
    path.write_bytes((ROOT / "exercises" / "01_tensors.ipynb").read_bytes())
    assert main(["grade", str(path)]) == 1  # below full marks: the exit status CI reads
    out, err = capfd.readouterr()
    assert out.startswith(f"Grading the saved {path}") and "save first" in out
    assert "correct" not in out.replace("not attempted", "") and "incorrect" not in out  # blank: nothing graded
    last = out.strip().splitlines()[-1]
    assert last.startswith("0/") and "not attempted" in last and "status 1" in last and "Error 1" in last
    # The kernel talks over local sockets: no "Kernel is running over TCP without encryption" warning.
    assert "TCP" not in out + err
