"""The learner's working copy (src/torchcourse/workcopy.py): copied once, updated where untouched, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchcourse import workcopy


@pytest.fixture
def course(tmp_path: Path) -> Path:
    for name, text in {"index.ipynb": "home", "README.md": "readme", "notebooks/01_a/01_x.ipynb": "lesson",
                       "exercises/01_a.ipynb": "blank", "solutions/01_a.ipynb": "answers"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _copy(course: Path, name: str) -> Path:
    return course / workcopy.FOLDER / name


def test_the_first_sync_copies_every_notebook_a_learner_opens(course):
    report = workcopy.sync(course)
    assert sorted(p.as_posix() for p in report.copied) == sorted(
        ["index.ipynb", "README.md", "notebooks/01_a/01_x.ipynb", "exercises/01_a.ipynb", "solutions/01_a.ipynb"])
    assert _copy(course, "notebooks/01_a/01_x.ipynb").read_text() == "lesson"
    assert workcopy.sync(course).lines() == []  # nothing new: nothing said


def test_a_course_update_reaches_what_the_learner_did_not_change_and_spares_the_rest(course):
    workcopy.sync(course)
    _copy(course, "exercises/01_a.ipynb").write_text("my answers")
    (course / "exercises" / "01_a.ipynb").write_text("blank, fixed")
    (course / "notebooks" / "01_a" / "01_x.ipynb").write_text("lesson, fixed")
    (course / "notebooks" / "01_a" / "02_y.ipynb").write_text("a new lesson")
    report = workcopy.sync(course)
    assert report.updated == [Path("notebooks/01_a/01_x.ipynb")]
    assert report.copied == [Path("notebooks/01_a/02_y.ipynb")]
    assert report.kept == [Path("exercises/01_a.ipynb")]
    assert _copy(course, "exercises/01_a.ipynb").read_text() == "my answers"
    assert _copy(course, "notebooks/01_a/01_x.ipynb").read_text() == "lesson, fixed"
    said = "\n".join(report.lines())
    assert "Kept your edited my-course/exercises/01_a.ipynb" in said and "torchcourse reset" in said


def test_an_edit_with_no_course_change_is_left_alone_silently(course):
    workcopy.sync(course)
    _copy(course, "exercises/01_a.ipynb").write_text("my answers")
    report = workcopy.sync(course)
    assert (report.copied, report.updated, report.kept) == ([], [], [])
    assert _copy(course, "exercises/01_a.ipynb").read_text() == "my answers"


def test_restore_takes_the_courses_version_and_later_updates_follow(course):
    workcopy.sync(course)
    _copy(course, "exercises/01_a.ipynb").write_text("my answers")
    (course / "exercises" / "01_a.ipynb").write_text("blank, fixed")
    workcopy.restore(course, Path("exercises/01_a.ipynb"))
    assert _copy(course, "exercises/01_a.ipynb").read_text() == "blank, fixed"
    (course / "exercises" / "01_a.ipynb").write_text("blank, fixed twice")
    assert workcopy.sync(course).updated == [Path("exercises/01_a.ipynb")]
