"""TensorBoard for lessons and tests: read a run back, serve it on loopback, and always stop the server.

``serve(logdir)`` starts ``tensorboard --logdir LOGDIR --host 127.0.0.1 --port 0`` in a subprocess
(port 0: the server binds a free port itself, so parallel runs never race for one) and waits until
its HTTP API answers. The server stops when the ``with`` block ends (try/finally), when
:meth:`Server.stop` is called, and at the latest when the process that started it dies: on Linux
the child asks the kernel for a SIGTERM when its parent goes (``PR_SET_PDEATHSIG``), because
nbval kills notebook kernels without running their exit handlers. Elsewhere (macOS, Windows) a killed
kernel leaves its server running: stop it with :func:`stop_servers`.

Jupyter's ``%tensorboard`` magic looks for a running server started with the same arguments from
the same folder (tensorboard's ``manager`` keeps a registry of info files) and reuses it, so a
lesson that starts its server with :func:`serve` shows it inline without a second server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["KEEP_ALL", "Server", "events_files", "read_run", "running_servers", "serve", "stop_servers"]

_URL = re.compile(r"TensorBoard [^ ]+ at (http://[^ ]+/)")
# Keep every event: the accumulator's defaults sample, per tag, 10,000 scalars, 4 images, 4 audio clips, 1 histogram,
# 500 distributions (compressed histograms) and 10 tensors (text, PR curves). The distributions' key was
# "compressedHistograms" in older tensorboard releases and is "distributions" now: both are given.
KEEP_ALL = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0, "audio": 0, "distributions": 0,
            "compressedHistograms": 0}


def read_run(logdir: str | os.PathLike[str]) -> Any:
    """Every event of one run folder, read with tensorboard's own ``EventAccumulator`` (nothing dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(logdir), size_guidance=KEEP_ALL).Reload()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the with block and atexit still stop the server
        pass


class Server:
    """A TensorBoard server in a subprocess; a context manager that stops it on exit."""

    def __init__(self, logdir: str | os.PathLike[str], *extra: str) -> None:
        self.logdir = str(logdir)
        self.args = ["--logdir", self.logdir, "--host", "127.0.0.1", "--port", "0", *extra]
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    @property
    def command(self) -> str:
        """The equivalent command line (what ``%tensorboard`` takes, without ``tensorboard``)."""
        return "tensorboard " + " ".join(self.args)

    @property
    def port(self) -> int:
        return urllib.parse.urlparse(self.url).port or 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> Server:
        """Start the server and wait until its HTTP API lists runs; stop it again if anything fails."""
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", *self.args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        try:
            deadline = time.monotonic() + timeout
            while not self.url:
                self._fail_if_dead()
                found = _URL.search(self.output())
                if found:
                    self.url = found.group(1)
                elif time.monotonic() > deadline:
                    raise TimeoutError(f"TensorBoard did not start within {timeout:.0f} s:\n{self.output()}")
                else:
                    time.sleep(0.05)
            self.wait_for(lambda: self.get("data/runs") is not None, timeout=deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def _fail_if_dead(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"TensorBoard exited with {self.process.returncode}:\n{self.output()}")

    def output(self) -> str:
        """What the server printed so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def get(self, path: str, **params: str) -> Any:
        """GET ``/path?params`` from the server's HTTP API and decode the JSON."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with self._opener.open(self.url + path.lstrip("/") + query, timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))

    def runs(self) -> list[str]:
        """The run names the server found (sub-folders of the logdir that hold event files)."""
        return self.get("data/runs")

    def scalars(self, run: str, tag: str) -> list[tuple[int, float]]:
        """``(step, value)`` of one scalar tag, as the dashboard's scalars plugin serves them."""
        rows = self.get("data/plugin/scalars/scalars", run=run, tag=tag)
        return [(int(step), float(value)) for _, step, value in rows]

    def wait_for(self, condition: Any, timeout: float = 30.0) -> None:
        """Poll ``condition()`` until it is true (the server loads event files in the background)."""
        deadline = time.monotonic() + max(timeout, 1.0)
        while True:
            self._fail_if_dead()
            try:
                if condition():
                    return
            except OSError:  # not listening yet, or the plugin has not seen the tag yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"TensorBoard did not get there within {timeout:.0f} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (TensorBoard then removes its registry entry), SIGKILL if it does not go."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:
        return self if self.running else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TensorBoard {state} at {self.url or '(not started)'}, logdir {self.logdir}>"


def serve(logdir: str | os.PathLike[str], *extra: str, timeout: float = 60.0) -> Server:
    """Start ``tensorboard --logdir LOGDIR --host 127.0.0.1 --port 0``; use it as ``with serve(d) as s:``."""
    import atexit

    server = Server(logdir, *extra).start(timeout)
    atexit.register(server.stop)
    return server


def running_servers(logdir: str | os.PathLike[str] | None = None) -> list[Any]:
    """TensorBoard's registry (``tensorboard.manager``) of live servers, for one logdir or all of them."""
    from tensorboard import manager

    found = []
    for info in manager.get_all():
        if logdir is not None and info.logdir != str(logdir):
            continue
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            continue  # a stale entry: that server was killed before it could remove it
        except PermissionError:
            pass
        found.append(info)
    return found


def stop_servers(logdir: str | os.PathLike[str], timeout: float = 10.0) -> list[int]:
    """Stop every registered server of ``logdir`` (``%tensorboard`` starts its own); returns their pids."""
    pids = [info.pid for info in running_servers(logdir)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pids


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def events_files(logdir: str | os.PathLike[str]) -> list[Path]:
    """The event files under ``logdir`` (one per writer: sub-runs of ``add_scalars`` have their own)."""
    return sorted(Path(logdir).rglob("events.out.tfevents.*"))
