"""Launch a small multi-process job with torchrun from a notebook and read back what it printed.

A notebook cannot be a torchrun worker itself, so a lesson writes its training script into
:func:`torchcourse.workdir`, runs it with :func:`torchrun`, and reads the JSON each rank leaves
beside it. ``python -m torch.distributed.run`` is exactly what the ``torchrun`` command runs;
calling it through the kernel's own interpreter keeps the workers in the same environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .devices import cuda_available
from .lesson import workdir

__all__ = ["LaunchResult", "backend", "describe_command", "torchrun", "write_script"]


@dataclass
class LaunchResult:
    """What a torchrun job did: its command line, exit status, output, and the runs it took."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    attempts: int = 1  #: how many runs it took (torchrun starts a failed job again once)

    def lines(self, prefix: str = "") -> list[str]:
        """The stdout lines that start with ``prefix``, sorted (ranks print in any order)."""
        return sorted(line for line in self.stdout.splitlines() if line.startswith(prefix))


def backend() -> str:
    """``nccl`` when there are at least two GPUs (one per process), else ``gloo`` on the CPU."""
    return "nccl" if cuda_available() and torch.cuda.device_count() >= 2 else "gloo"


def write_script(name: str, source: str) -> Path:
    """Write ``source`` to ``name`` inside the notebook's work folder and return its path."""
    path = workdir() / name
    path.write_text(source, encoding="utf-8")
    return path


def torchrun(
    script: str | os.PathLike[str],
    *args: str,
    nproc: int = 2,
    timeout: float = 180,
    env: Mapping[str, str] | None = None,
    attempts: int = 2,
) -> LaunchResult:
    """Run ``torchrun --standalone --nproc-per-node=nproc script args`` and wait for it.

    Each worker gets one CPU thread (torchrun would set it anyway, with a warning) and the
    backend of :func:`backend` in ``TORCHCOURSE_BACKEND``. Raises ``RuntimeError`` with the
    job's output when it fails or outlives ``timeout`` seconds, so a hung rendezvous cannot
    hang the notebook.

    A job that exits with an error is started again, up to ``attempts`` runs in all: its
    rendezvous and the gloo connections between ranks take free ports from the system, and on a
    busy machine (two kernels on two cores, each starting a job) one start in many fails before
    the script runs. A script's own error repeats, and is raised with every run's output. The
    script must tolerate a second run (a lesson passes it an emptied folder; files are overwritten).
    """
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", str(script), *args,
    ]
    child_env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHCOURSE_BACKEND": backend()}
    child_env.update(env or {})
    failures = []
    for attempt in range(1, attempts + 1):
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=child_env, cwd=workdir(),
            )
        except subprocess.TimeoutExpired as expired:
            output = _text(expired.stderr)
            raise RuntimeError(f"torchrun did not finish within {timeout} s:\n{output}") from None
        if done.returncode == 0:
            return LaunchResult(command, done.returncode, done.stdout, done.stderr, attempt)
        status = f"run {attempt}: torchrun failed with exit status {done.returncode}"
        failures.append(f"{status}:\n{done.stdout}\n{done.stderr}")
    raise RuntimeError("\n".join(failures))


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def describe_command(result: LaunchResult) -> str:
    """The command as a learner would type it: ``torchrun --standalone --nproc-per-node=2 x.py``."""
    args = result.command[3:]
    return " ".join(["torchrun", *(Path(a).name if a.endswith(".py") else a for a in args)])
