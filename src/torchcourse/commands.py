"""``torchcourse lab``, ``torchcourse test`` and ``torchcourse reset``: the course's commands on every platform.

The Makefile's ``make lab`` and ``make test`` call these, so Linux and macOS keep their two commands; on
Windows, which has no ``make`` and no POSIX shell, the same commands run from PowerShell
(``.venv\\Scripts\\torchcourse lab``). Route: :func:`add_commands` declares them; :func:`lab` registers the
course's kernel if it is missing, makes closing a tab shut its kernel down (:func:`ensure_lab_settings`), brings
the learner's working copy up to date (:mod:`torchcourse.workcopy`) and starts JupyterLab on it (IPC sockets where
the platform has them, idle kernels culled); :func:`test` runs the lint, the strict suite with the API tracer, then
the coverage gate; :func:`reset` brings back the course's version of one notebook, keeping a copy of the learner's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import workcopy

__all__ = ["KERNEL", "LAB_SETTINGS", "add_commands", "course_root", "ensure_lab_settings", "ipc_fits", "lab",
           "lab_command", "reset", "test", "test_commands"]

#: The course's registered kernel: every notebook declares it (tools/tidy_notebooks.py).
KERNEL = {"name": "torchcourse", "display_name": "Python (torchcourse)"}
#: Seconds a kernel that no tab uses may stay idle before ``torchcourse lab`` shuts it down (0: never).
CULL_IDLE_S = 900
#: The strict settings of the test suite (a failed exercise check raises; hashes are the same every run).
STRICT_ENV = {"TORCHCOURSE_STRICT": "1", "PYTHONHASHSEED": "0"}
LINTED = ["src", "tests", "tools", "notebooks", "exercises", "solutions", "index.ipynb", "conftest.py"]
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "nbval-sanitize.cfg"]


def course_root() -> Path:
    """The course's checkout: the folder above ``src/torchcourse`` (``pip install -e``), else the current one."""
    here = Path(__file__).resolve().parents[2]
    if (here / "index.ipynb").is_file() and (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "index.ipynb").is_file() and (cwd / "notebooks").is_dir():
        return cwd
    raise SystemExit("no course here: run this command in the course's folder (the one with index.ipynb)")


def _ensure_kernel() -> bool:
    """Register the course's kernel in this environment when it is missing; True when it was registered now."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL["name"] in KernelSpecManager().find_kernel_specs():
        return False
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL["name"], display_name=KERNEL["display_name"], prefix=sys.prefix)
    return True


#: Characters a kernel's IPC socket adds to the runtime folder's path: ``/kernel-<uuid>-ipc-<port>``.
_IPC_SUFFIX = len("/kernel-") + 36 + len("-ipc-") + 5
#: The longest socket path every POSIX system takes (macOS: 104 bytes with the terminating zero; Linux: 108).
_SOCKET_PATH_MAX = 103


def ipc_fits(runtime_dir: str | None = None) -> bool:
    """Whether kernels can talk over local IPC sockets here: a POSIX system, and a runtime folder short enough.

    On macOS the runtime folder is ``/Users/<name>/Library/Jupyter/runtime``: with a long user name the socket's
    path passes the 104-byte limit and the kernel cannot start, so such a machine keeps TCP (on 127.0.0.1).
    """
    if os.name != "posix":
        return False
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    return len(os.fsencode(runtime_dir)) + _IPC_SUFFIX <= _SOCKET_PATH_MAX


def lab_command(root: Path, cull_idle: int = CULL_IDLE_S, extra: list[str] | None = None) -> list[str]:
    """The JupyterLab command line of ``torchcourse lab``: the course home, kernels over IPC where possible."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if ipc_fits():  # local sockets: no "Kernel is running over TCP without encryption" per notebook
        command.append("--KernelManager.transport=ipc")
    if cull_idle > 0:  # a kernel whose tab is closed keeps 0.4-0.9 GB until it is shut down
        command += [f"--MappingKernelManager.cull_idle_timeout={cull_idle}", "--MappingKernelManager.cull_interval=60",
                    "--MappingKernelManager.cull_connected=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # JupyterLab refuses root (containers, CI) unless told
        command.append("--allow-root")
    return [*command, *(extra or []), "index.ipynb"]


#: JupyterLab settings the course changes (``share/jupyter/lab/settings/overrides.json`` of its environment): closing
#: a notebook's tab shuts its kernel down, so a learner who closes lessons gets their memory back at once.
LAB_SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"kernelShutdown": True}}


def ensure_lab_settings(prefix: Path) -> bool:
    """Add :data:`LAB_SETTINGS` to the environment's JupyterLab overrides, keeping any others; True when written."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        current = {}
    wanted = {plugin: {**current.get(plugin, {}), **values} for plugin, values in LAB_SETTINGS.items()}
    if all(current.get(plugin) == values for plugin, values in wanted.items()):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**current, **wanted}, indent=2) + "\n", encoding="utf-8")
    return True


def lab(args: argparse.Namespace) -> int:
    root = course_root()
    if _ensure_kernel():
        print(f"Registered the course's kernel, {KERNEL['display_name']}, in {sys.prefix}.")
    ensure_lab_settings(Path(sys.prefix))
    served = root
    if not args.in_place:  # the learner's own copy: git pull never meets it (torchcourse.workcopy)
        for line in workcopy.sync(root).lines():
            print(line)
        served = root / workcopy.FOLDER
    return subprocess.call(lab_command(served, args.cull_idle, args.extra), cwd=served)


def test_commands(jobs: str, records: str) -> list[tuple[list[str], dict[str, str]]]:
    """What ``torchcourse test`` runs, in order, each with the environment it adds."""
    python = sys.executable
    return [
        ([python, "-m", "ruff", "check", *LINTED], {}),
        ([python, "tools/check_portable.py"], {}),
        ([python, "-m", "pytest", "-n", jobs, "--dist", "loadscope", *NBVAL, "notebooks", "solutions", "tests"],
         {**STRICT_ENV, "TORCHCOURSE_TRACE_DIR": records}),
        # the coverage gate reads every kernel's records: it needs the whole run, so it runs second
        ([python, "-m", "pytest", "-q", "tests/test_coverage.py", "-k", "every_row"],
         {**STRICT_ENV, "TORCHCOURSE_COVERAGE_RECORDS": records}),
    ]


def test(args: argparse.Namespace) -> int:
    root = course_root()
    with tempfile.TemporaryDirectory(prefix="torchcourse-trace-") as records:
        for command, env in test_commands(args.jobs, records):
            status = subprocess.call(command, cwd=root, env={**os.environ, **env})
            if status:
                return status
    return 0


def reset(args: argparse.Namespace) -> int:
    """Restore the course's version of a notebook; the learner's is kept in a dated copy first.

    In the working copy (``my-course/...``) the course's version is the checkout's file; elsewhere it is the
    committed one.
    """
    root = course_root()
    path = Path(args.notebook).resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise SystemExit(f"{args.notebook} is not a notebook of the course in {root}") from None
    if relative.parts[:1] == (workcopy.FOLDER,):
        return _reset_copy(root, path, Path(*relative.parts[1:]))
    original = subprocess.run(["git", "show", f"HEAD:{relative.as_posix()}"], cwd=root, capture_output=True)
    if original.returncode:
        raise SystemExit(f"{relative} has no committed version to go back to (is this a git clone of the course?)")
    if not _keep_yours(path, original.stdout, f"{relative} is already as committed"):
        return 0
    path.write_bytes(original.stdout)
    print(f"{relative} is back as committed. If it is open in JupyterLab, reload it "
          "(File > Reload Notebook from Disk).")
    return 0


def _reset_copy(root: Path, path: Path, inner: Path) -> int:
    if inner not in workcopy.shipped(root):
        raise SystemExit(f"{workcopy.FOLDER}/{inner.as_posix()} is not one of the course's notebooks")
    if not _keep_yours(path, (root / inner).read_bytes(), f"{workcopy.FOLDER}/{inner.as_posix()} is already the "
                       "course's version"):
        return 0
    workcopy.restore(root, inner)
    print(f"{workcopy.FOLDER}/{inner.as_posix()} is the course's version again. If it is open in JupyterLab, "
          "reload it (File > Reload Notebook from Disk).")
    return 0


def _keep_yours(path: Path, course: bytes, same: str) -> bool:
    """Before a reset: False (and say so) when ``path`` already holds ``course``; else keep a dated copy of it."""
    if path.is_file() and path.read_bytes() == course:
        print(f"{same}: nothing to do.")
        return False
    if path.is_file():
        kept = _backup_folder() / f"{path.stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}{path.suffix}"
        shutil.copy2(path, kept)
        print(f"Your version is kept in {kept}")
    return True


def _backup_folder() -> Path:
    folder = Path(os.environ.get("TORCHCOURSE_BACKUPS") or Path.home() / ".torchcourse" / "reset")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def add_commands(subparsers: Any) -> None:
    """Add ``lab``, ``test`` and ``reset`` to the CLI."""
    parser = subparsers.add_parser("lab", help="open the course in JupyterLab (registers its kernel if needed)")
    parser.add_argument("--cull-idle", type=int, default=CULL_IDLE_S, metavar="SECONDS",
                        help=f"shut down kernels that no tab has used for this long (default {CULL_IDLE_S}; 0: never)")
    parser.add_argument("--in-place", action="store_true",
                        help=f"serve the checkout itself, not your copy in {workcopy.FOLDER}/ (the course's authors)")
    parser.set_defaults(run=lab, extra=[], takes_extra=True)  # any other option goes to JupyterLab (--port 8890)
    parser = subparsers.add_parser("test", help="the whole suite: lint, every notebook under nbval, the tests")
    parser.add_argument("--jobs", default="auto", help="pytest-xdist workers (default: one per core)")
    parser.set_defaults(run=test)
    parser = subparsers.add_parser("reset", help="bring back the committed version of a notebook")
    parser.add_argument("notebook", help="the notebook to restore, e.g. exercises/01_tensors.ipynb")
    parser.set_defaults(run=reset)
