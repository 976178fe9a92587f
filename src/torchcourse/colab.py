"""Google Colab: where the course lives online, and the setup cell that installs it in a Colab runtime.

The course's repository URL is :data:`REPOSITORY`, here and nowhere else: the notebooks' setup
cell (:func:`setup_source`) and their "Open in Colab" links (:func:`colab_url`) are generated from
it by ``tools/tidy_notebooks.py``, and ``tests/test_notebooks.py`` checks that every notebook
carries them as generated. A fork changes the URL here and runs ``make tidy``.

The setup cell is every notebook's first code cell. Where ``torchcourse`` imports (``make lab``,
``make test``) it does nothing. On Colab (``google.colab`` is loaded in its kernels) it installs the
course with pip from the repository, or from ``TORCHCOURSE_INSTALL_FROM`` (a pip requirement: a
fork, a branch, a local clone), then the notebook's own imports work. Anywhere else it stops with
one sentence on how to install. ``tests/test_colab.py`` runs it in a Colab-like environment: a
Python where ``google.colab`` is a stub and the course is not installed.
"""

from __future__ import annotations

__all__ = ["BRANCH", "REPOSITORY", "SETUP_CELL_ID", "colab_url", "setup_source"]

#: The course's public repository (GitHub): what Colab opens notebooks from, and what pip installs there.
REPOSITORY = "https://github.com/torchcourse/torchcourse"
#: The branch learners use.
BRANCH = "main"
#: The id of the generated setup cell in every notebook.
SETUP_CELL_ID = "course-setup"


def colab_url(path: str) -> str:
    """Where Colab opens the notebook at ``path`` (relative to the repository's root) from GitHub."""
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/{path}"


def setup_source() -> str:
    """The source of the setup cell (plain Python: no torchcourse, no IPython magics, since neither may exist yet)."""
    return f'''\
# Course setup. With `make lab` the course is installed and this does nothing; on Google Colab it installs it.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("torchcourse") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("torchcourse is not installed for this kernel: run `make lab` in the course's folder")
    repository = "{REPOSITORY}@{BRANCH}"
    package = os.environ.get("TORCHCOURSE_INSTALL_FROM", f"torchcourse @ git+{{repository}}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)
    importlib.invalidate_caches()  # the new package is importable in this kernel from now on'''
