#!/usr/bin/env python3
"""The version matrix (`make test-matrix`): the whole strict suite on every Python/torch pair the course admits.

Route: ``main`` picks entries (all, or those named) -> ``venv_for`` finds the entry's Python through pyenv and
builds (or reuses) its venv -> ``run_entry`` runs strict nbval over every lesson and solution plus the package
tests in it, with the entry's simulated CPU profile, then the coverage gate over the tracer's records ->
a summary line per entry with its install and run time.

Each venv lives in ``$TORCHCOURSE_MATRIX_DIR`` (default ``~/.cache/torchcourse/matrix``), outside the checkout,
and is rebuilt only when ``pyproject.toml`` or the entry changes (a stamp holds their hash). The course itself is
not installed there: ``PYTHONPATH`` points at this checkout's ``src``, so one venv serves every clone. pip's cache
is kept (torch is about 3 GB per venv from PyPI on Pythons other than 3.11).

Entries (Python 3.11 with the newest torch stays ``make test``):
  floor   Python 3.10, the lowest torch/torchvision the course admits; 1 thread, scalar kernels, CUDA hidden.
  gpu     Python 3.12, torch 2.11.0 / torchvision 0.26.0: the GPU machine's preinstalled pair; AVX2, 3 threads.
  newest  Python 3.13, the newest torch pair this machine's pip admits.

Usage: tools/matrix.py [ENTRY ...] [--jobs N] [--install-only] [--list]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

from torchcourse.commands import NBVAL, STRICT_ENV  # make test's settings: one definition

ROOT = Path(__file__).resolve().parent.parent

# The two simulated machines of the portable rule (docs/authoring.md): A = one thread, no SIMD, no CUDA;
# B = AVX2 kernels, three threads.
PROFILE_A = {"OMP_NUM_THREADS": "1", "TORCHCOURSE_THREADS": "1", "ATEN_CPU_CAPABILITY": "default",
             "TORCHCOURSE_NO_CUDA": "1"}
PROFILE_B = {"TORCHCOURSE_THREADS": "3", "ATEN_CPU_CAPABILITY": "avx2"}

ENTRIES: dict[str, dict] = {
    "floor": {"python": "3.10", "packages": ["torch==2.11.0", "torchvision==0.26.0"], "env": PROFILE_A,
              "about": "the floor: Python 3.10, torch 2.11.0 / torchvision 0.26.0, 1 thread, scalar kernels, no CUDA"},
    "gpu": {"python": "3.12", "packages": ["torch==2.11.0", "torchvision==0.26.0"], "env": PROFILE_B,
            "about": "the GPU machine's pair: Python 3.12, torch 2.11.0 / torchvision 0.26.0, AVX2, 3 threads"},
    # Unpinned: pip takes the newest release it admits (a machine-wide constraint may cap it).
    "newest": {"python": "3.13", "packages": ["torch", "torchvision"], "env": {},
               "about": "the newest: Python 3.13, the newest torch/torchvision pip admits"},
}



class MatrixError(RuntimeError):
    pass


def find_python(version: str) -> Path:
    """The newest pyenv-installed CPython ``version.*`` (no hard-coded path), or a message saying how to get it."""
    how = f"install it with `pyenv install {version}` (https://github.com/pyenv/pyenv), then rerun"
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        raise MatrixError(f"Python {version} is needed and pyenv is not on PATH: {how}.")
    bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout.split()
    found = sorted((v for v in bare if v.startswith(version + ".") and v.replace(".", "").isdigit()),
                   key=lambda v: [int(p) for p in v.split(".")])
    if not found:
        raise MatrixError(f"pyenv has no Python {version} (it has: {', '.join(bare) or 'none'}): {how}.")
    prefix = subprocess.run([pyenv, "prefix", found[-1]], capture_output=True, text=True, check=True).stdout.strip()
    return Path(prefix) / "bin" / "python"


def requirements() -> list[str]:
    """Every dependency ``pyproject.toml`` declares, with the dev extras (the course itself comes by PYTHONPATH)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


def matrix_dir() -> Path:
    return Path(os.environ.get("TORCHCOURSE_MATRIX_DIR") or Path.home() / ".cache" / "torchcourse" / "matrix")


def venv_for(name: str, log) -> tuple[Path, float]:
    """The entry's venv (built or reused) and the seconds its install took (0 when reused)."""
    entry = ENTRIES[name]
    python = find_python(entry["python"])
    venv = matrix_dir() / name
    spec = json.dumps([entry["python"], entry["packages"], requirements()], sort_keys=True)
    stamp = hashlib.sha256(spec.encode()).hexdigest()
    stamp_file = venv / ".torchcourse-matrix"
    if stamp_file.exists() and stamp_file.read_text() == stamp and (venv / "bin" / "python").exists():
        return venv, 0.0
    started = time.monotonic()
    log(f"[{name}] building {venv} with {python} (pip's lines below; torch is several GB the first time)")
    if not (venv / "bin" / "python").exists():
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off"]
    # The pinned pair first, alone, so that the rest cannot pull another torch.
    for step in (entry["packages"], [*entry["packages"], *requirements()]):
        with (venv / "pip.log").open("a") as kept, subprocess.Popen(
                [*pip, *step], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip_run:
            for line in pip_run.stdout:  # shown as it comes (but the local index's noise), all kept in pip.log
                kept.write(line)
                if "is ignored" not in line:
                    log(f"[{name}] {line.rstrip()}")
        if pip_run.returncode:
            raise MatrixError(f"[{name}] pip install failed: see {venv / 'pip.log'}")
    subprocess.run([str(venv / "bin" / "python"), "-m", "ipykernel", "install", "--sys-prefix",
                    "--name", "torchcourse", "--display-name", "Python (torchcourse)"],
                   check=True, capture_output=True)
    stamp_file.write_text(stamp)
    return venv, time.monotonic() - started


def versions(venv: Path) -> str:
    probe = "import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__)"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True).stdout.split()
    return f"Python {out[0]}, torch {out[1]}, torchvision {out[2]}" if len(out) == 3 else "unknown versions"


def run_entry(name: str, venv: Path, jobs: str, extra: list[str]) -> int:
    python = str(venv / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix=f"torchcourse-matrix-{name}-") as records:
        env = {**os.environ, **STRICT_ENV, **ENTRIES[name]["env"], "TORCHCOURSE_TRACE_DIR": records,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
               "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
               "VIRTUAL_ENV": str(venv),
               # Inductor's own compile cache, one per entry: torch 2.11 keys it without ATEN_CPU_CAPABILITY, so
               # the gpu entry's AVX2 kernels loaded under the floor's "default" fail to build (lesson 05.11).
               "TORCHINDUCTOR_CACHE_DIR": str(matrix_dir() / name / "inductor")}
        targets = extra or ["notebooks", "solutions", "tests"]
        command = [python, "-m", "pytest", "-q", "-n", jobs, "--dist", "loadscope", *NBVAL, *targets]
        rc = subprocess.call(command, cwd=ROOT, env=env)
        # The coverage gate reads every kernel's records (it needs the whole run), so it follows a whole run only.
        if rc == 0 and not extra:
            env["TORCHCOURSE_COVERAGE_RECORDS"] = records
            rc = subprocess.call([python, "-m", "pytest", "-q", "tests/test_coverage.py", "-k", "every_row"],
                                 cwd=ROOT, env=env)
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs="*", help=f"entries to run (default all: {', '.join(ENTRIES)})")
    parser.add_argument("--jobs", default=os.environ.get("JOBS", "auto"))
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the entries and exit")
    parser.add_argument("--pytest", nargs=argparse.REMAINDER, default=[],
                        help="run these pytest targets instead of the whole suite (a quicker look)")
    args = parser.parse_args(argv)
    if args.list:
        for name, entry in ENTRIES.items():
            print(f"{name:7} {entry['about']}")
        return 0
    unknown = [n for n in args.entries if n not in ENTRIES]
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {list(ENTRIES)}")
    log = lambda text: print(text, flush=True)  # noqa: E731
    summary, failed = [], False
    for name in args.entries or list(ENTRIES):
        try:
            venv, installed = venv_for(name, log)
        except MatrixError as error:
            log(f"[{name}] FAILED to set up: {error}")
            summary.append(f"{name:7} set-up failed")
            failed = True
            continue
        log(f"[{name}] {ENTRIES[name]['about']} -> {versions(venv)}")
        started = time.monotonic()
        rc = 0 if args.install_only else run_entry(name, venv, args.jobs, args.pytest)
        took = time.monotonic() - started
        failed |= rc != 0
        summary.append(f"{name:7} {'passed' if rc == 0 else 'FAILED'}  {versions(venv)}  "
                       f"install {installed:.0f} s{' (reused)' if not installed else ''}, run {took:.0f} s")
    print("\nmatrix:", *summary, sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
