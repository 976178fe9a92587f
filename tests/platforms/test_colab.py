"""Google Colab, simulated: the notebooks' setup cell installs the course where it is missing (`make test-platforms`).

The Colab-like environment is a fresh venv whose Python sees every package of the course's venv except the course
itself (their folders linked into one directory, named by a ``.pth`` file), and where ``google.colab`` is a stub
module, imported first as Colab's kernels do. The setup cell (``torchcourse.colab.setup_source``, the first code
cell of every notebook) must then end in a working ``import torchcourse``, installed into that venv by pip from a
copy of this working tree (``TORCHCOURSE_INSTALL_FROM``), with no package index (every dependency is there, as on
Colab, which ships torch).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from torchcourse.colab import SETUP_CELL_ID, colab_url, setup_source
from torchcourse.workcopy import shipped

ROOT = Path(__file__).resolve().parents[2]
_COURSE = ("torchcourse", "__editable__")  # what `pip install -e .` put in the course's venv


def _python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A venv without the course, with the course venv's other packages and a ``google.colab`` stub."""
    tmp = tmp_path_factory.mktemp("colab")
    venv.EnvBuilder(with_pip=False).create(tmp / "venv")
    python = _python(tmp / "venv")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    others = tmp / "packages"
    others.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(_COURSE) and entry.suffix != ".pth":
            (others / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    stub = tmp / "stub" / "google" / "colab"  # a namespace package beside google.protobuf (tensorboard needs it)
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""A stand-in for Colab\'s module: the setup cell reads its presence."""\n')
    (site / "course-under-test.pth").write_text(f"{others}\n{tmp / 'stub'}\n")
    tree = tmp / "course"  # what Colab's pip fetches from the repository: the package's sources
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    env = {**os.environ, "TORCHCOURSE_INSTALL_FROM": str(tree), "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    return python, env


def _run(python: Path, env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=python.parent)


def test_the_course_is_missing_there_at_first(colab_like):
    python, env = colab_like
    result = _run(python, env, "import importlib.util, torch; print(importlib.util.find_spec('torchcourse'))")
    assert result.returncode == 0 and result.stdout.strip() == "None", result.stderr


def test_outside_colab_the_setup_cell_says_how_to_install(colab_like):
    python, env = colab_like
    result = _run(python, env, setup_source())
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr and "make lab" in result.stderr


def test_on_colab_the_setup_cell_installs_the_course(colab_like):
    python, env = colab_like
    code = "\n".join([
        "import google.colab  # Colab's kernels load it at start",
        setup_source(),
        "import torchcourse as tc",
        "from torchcourse.checks.tensors import q1",
        "print(tc.__file__)",
        "tc.setup(seed=0)",
    ])
    result = _run(python, env, code)
    assert result.returncode == 0, result.stderr[-3000:]
    installed = Path(result.stdout.splitlines()[0])
    assert python.parent.parent in installed.parents, installed  # the venv's own copy, not this working tree


def test_every_notebook_opens_with_the_setup_cell_and_lessons_link_to_colab():
    import nbformat

    notebooks = [ROOT / p for p in shipped(ROOT) if p.suffix == ".ipynb"]  # the home, lessons, exercises, solutions
    assert len(notebooks) > 50
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.get("id") == SETUP_CELL_ID and first.source == setup_source(), path
    home = (ROOT / "index.ipynb").read_text(encoding="utf-8")
    lessons = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*/*.ipynb"))
    assert all(colab_url(lesson) in home for lesson in lessons)


if sys.platform == "win32":  # pragma: no cover - symlinks need privileges there
    pytestmark = pytest.mark.skip("the Colab-like venv links folders")
