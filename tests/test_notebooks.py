"""The shape every notebook must have: lesson skeleton, executed or blank, tidy, exercises = solutions,
the course's kernel, generated navigation, links that open."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from torchcourse.checks import chapters
from torchcourse.colab import SETUP_CELL_ID

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "index.ipynb"
LESSONS = sorted((ROOT / "notebooks").glob("*/*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
ALL = [HOME] + LESSONS + EXERCISES + SOLUTIONS
DOCUMENTS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))

_spec = importlib.util.spec_from_file_location("tidy_notebooks", ROOT / "tools" / "tidy_notebooks.py")
tidy_tool = sys.modules.setdefault("tidy_notebooks", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tidy_tool)


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_there_is_a_course():
    assert LESSONS and EXERCISES and SOLUTIONS


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_is_tidy(path):
    nb = _read(path)
    nbformat.validate(nb)
    # The course's registered kernel (make install), so a lab started elsewhere asks for it instead of
    # running the course without its packages; nbval ignores it (--nbval-current-env).
    assert nb.metadata.get("kernelspec") == tidy_tool.KERNELSPEC, "run tools/tidy_notebooks.py"
    # Without language_info JupyterLab adds it on opening: the notebook opens already modified.
    assert nb.metadata.get("language_info", {}).get("name") == "python", "run tools/tidy_notebooks.py"
    assert "jupytext" not in nb.metadata, "run tools/tidy_notebooks.py"
    assert not any("execution" in c.metadata for c in nb.cells), "run tools/tidy_notebooks.py"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_is_as_the_tidy_tool_leaves_it(path, course):
    """Metadata, blank exercises, and the generated navigation and course contents are current."""
    before, after = tidy_tool.tidied(path, course)
    assert before == after, f"run tools/tidy_notebooks.py (it would change {path.relative_to(ROOT)})"


@pytest.fixture(scope="module")
def course():
    return tidy_tool.Course(ROOT)


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_links_to_its_neighbours_and_home(path):
    nb = _read(path)
    top, bottom = nb.cells[1].source, nb.cells[-1].source
    assert top.startswith(tidy_tool.NAV_MARK) and bottom.startswith(tidy_tool.NAV_MARK), "run tools/tidy_notebooks.py"
    i = LESSONS.index(path)
    for neighbour in LESSONS[max(i - 1, 0):i] + LESSONS[i + 1:i + 2]:
        link = Path("..", neighbour.parent.name, neighbour.name).as_posix()
        link = neighbour.name if neighbour.parent == path.parent else link
        assert f"]({link})" in top and f"]({link})" in bottom
    assert "](../../index.ipynb)" in top and "](../../index.ipynb)" in bottom


def test_course_home_lists_every_lesson_and_exercise():
    nb = _read(HOME)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for path in LESSONS + EXERCISES:
        assert f"]({path.relative_to(ROOT).as_posix()})" in text, f"run tools/tidy_notebooks.py: {path.name}"
    assert "## Start here" in text and "## How to self-grade" in text and "saved" in text


_LINK = re.compile(
    r"""\]\(\s*<?([^)\s>]+)>?(?:\s+["'][^)]*["'])?\s*\)"""  # [text](target "title")
    r"""|\b(?:href|src)=["']([^"']+)["']"""  # <a href=...>, <img src=...>
    r"""|^\[[^\]]+\]:\s*(\S+)""",  # [label]: target
    re.M,
)


def _relative_links(text: str) -> list[str]:
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code is not a link
    targets = [next(g for g in m.groups() if g) for m in _LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t, re.I)]


def _markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ALL + DOCUMENTS, ids=_ids(ALL + DOCUMENTS))
def test_relative_links_open_a_file(path):
    """A link to a folder opens "File Load Error ... is a directory" in JupyterLab, and the broken tab
    comes back on every reload; a link to nothing is a dead end."""
    bad = []
    for target in _relative_links(_markdown_of(path)):
        resolved = (path.parent / unquote(target.split("#", 1)[0])).resolve()
        if not resolved.is_file():
            bad.append(f"{target} ({'a folder' if resolved.is_dir() else 'missing'})")
    assert not bad, f"link to files only: {bad}"


def test_readme_chapter_headings_start_a_paragraph():
    """Without a blank line before it, a chapter heading renders inside the previous table."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    glued = [line for before, line in zip(lines, lines[1:], strict=False)
             if line.startswith("**Chapter") and before.strip() and not before.startswith("<!--")]
    assert not glued, f"put a blank line before {glued}"


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_follows_the_skeleton(path):
    nb = _read(path)
    chapter = path.parent.name
    title = nb.cells[0].source
    number = f"{chapter[:2]}.{int(path.name[:2])}"
    assert title.startswith(f"# {number} · "), f"title must start with '# {number} · '"
    assert "**Mirrors:**" in title and "**You will be able to:**" in title
    assert re.search(r"\d{3}_[0-9a-f]{16}\.txt", title), "cite the note files by name"
    course_setup, first = _code(nb)[:2]  # the generated course setup cell (torchcourse.colab), then the lesson's
    assert course_setup.get("id") == SETUP_CELL_ID
    assert "nbval-ignore-output" in first.metadata.get("tags", []) and "tc.setup(" in first.source
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in markdown
    assert f"**Practise:** [exercises/{chapter}.ipynb](../../exercises/{chapter}.ipynb)" in markdown
    assert (ROOT / "exercises" / f"{chapter}.ipynb").exists()


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_sections_keep_the_chinese_headings(path):
    headings = [line for c in _read(path).cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ") and line not in ("## Summary", "## Setup")]
    with_chinese = [h for h in headings if re.search(r"[\u4e00-\u9fff]", h)]
    assert len(with_chinese) >= len(headings) / 2, "mirror the notes: keep their Chinese heading beside the title"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_lessons_and_solutions_are_committed_executed(path):
    unexecuted = [c.source.splitlines()[0] for c in _code(_read(path))
                  if c.execution_count is None and c.get("id") != SETUP_CELL_ID]  # generated, and prints nothing
    assert not unexecuted, f"run `make execute`; unexecuted cells start with {unexecuted[:3]}"


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_exercises_are_committed_blank(path):
    assert all(not c.outputs and c.execution_count is None for c in _code(_read(path)))


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_timed_cells_ignore_their_output(path):
    for cell in _code(_read(path)):
        if "tc.bench(" in cell.source or "tc.compare(" in cell.source or ".plot()" in cell.source:
            assert "nbval-ignore-output" in cell.metadata.get("tags", []), cell.source.splitlines()[0]


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS + EXERCISES, ids=_ids(LESSONS + SOLUTIONS + EXERCISES))
def test_test_markers_are_tags_not_code(path):
    """What the test suite needs (nbval's markers) lives in cell tags, out of the learner's sight."""
    for cell in _code(_read(path)):
        marker = re.search(r"^\s*#\s*(NBVAL_\w+|PYTEST_VALIDATE_\w+)", cell.source, re.M)
        assert not marker, f"tag the cell {marker.group(1).lower().replace('_', '-')!r} instead of {marker.group(0)!r}"


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lessons_take_devices_from_the_helper(path):
    if path.parent.name == "05_gpu":
        pytest.skip("the GPU chapter teaches the device strings themselves")
    for cell in _code(_read(path)):
        assert not re.search(r"""device\s*=\s*["']cuda""", cell.source), "use tc.DEVICES, not a hard-coded 'cuda'"


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_solutions_differ_from_exercises_only_in_answer_cells(path):
    exercise, solution = _read(path), _read(ROOT / "solutions" / path.name)
    assert len(exercise.cells) == len(solution.cells)
    answers = 0
    for ours, theirs in zip(exercise.cells, solution.cells, strict=True):
        tags = ours.metadata.get("tags", [])
        assert tags == theirs.metadata.get("tags", [])
        if "answer" in tags:
            answers += 1
            assert "..." in ours.source and ours.source != theirs.source
        else:
            assert ours.source == theirs.source, ours.source[:80]
    assert answers > 0


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_every_declared_exercise_is_checked_in_its_notebook(path):
    chapter = chapters()[path.stem]
    source = "\n".join(c.source for c in _code(_read(path)))
    for exercise_id in chapter.exercises:
        assert f"{exercise_id}.check(" in source, f"{exercise_id} has no check cell"
    assert len(chapter.exercises) >= 4


@pytest.mark.parametrize("path", LESSONS + EXERCISES, ids=_ids(LESSONS + EXERCISES))
def test_readme_links_every_notebook(path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"]({path.relative_to(ROOT).as_posix()})" in readme, "add the notebook to the README's contents"
