"""torchcourse.tensorboard: runs read back without sampling, and a served TensorBoard that always stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from torchcourse import tensorboard as tb


def _write(logdir, n=12):
    writer = SummaryWriter(logdir)
    for step in range(n):
        writer.add_scalar("loss", 1.0 / (step + 1), global_step=3 * step)
        writer.add_image("sample", torch.full((1, 2, 3), step / n), global_step=step)
        writer.add_histogram("weights", torch.arange(4.0) + step, global_step=step)
    writer.add_scalars("both", {"train": 1.0, "val": 2.0}, global_step=0)
    writer.close()


def test_read_run_keeps_every_event(tmp_path):
    _write(tmp_path / "run")
    run = tb.read_run(tmp_path / "run")
    assert [e.step for e in run.Scalars("loss")] == [3 * s for s in range(12)]
    assert len(run.Images("sample")) == 12  # the accumulator's default keeps 4
    assert len(run.Histograms("weights")) == 12  # the default keeps 1
    assert len(run.CompressedHistograms("weights")) == 12  # distributions: the default keeps 500
    assert (run.Images("sample")[0].width, run.Images("sample")[0].height) == (3, 2)
    assert sorted(p.parent.name for p in tb.events_files(tmp_path / "run")) == ["both_train", "both_val", "run"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_answers_with_the_scalars_and_stops_even_when_the_block_fails(tmp_path):
    _write(tmp_path / "run")
    with pytest.raises(ZeroDivisionError):
        with tb.serve(tmp_path) as server:
            pid = server.pid
            assert server.url.startswith("http://127.0.0.1:") and server.port > 0
            server.wait_for(lambda: server.scalars("run", "loss"))
            assert server.scalars("run", "loss") == [(3 * s, pytest.approx(1.0 / (s + 1))) for s in range(12)]
            assert sorted(server.runs()) == ["run", "run/both_train", "run/both_val"]
            assert [info.pid for info in tb.running_servers(tmp_path)] == [pid]  # what %tensorboard would reuse
            1 / 0  # noqa: B018 - an assertion failing inside the block
    assert not server.running and not _alive(pid)
    assert tb.running_servers(tmp_path) == []  # SIGTERM let it remove its registry entry
    server.stop()  # stopping twice is harmless


def test_a_server_that_cannot_start_reports_why_and_leaves_nothing_running(tmp_path):
    server = tb.Server(tmp_path, "--no-such-flag")
    with pytest.raises(RuntimeError, match="exited with"):
        server.start(timeout=60)
    assert not server.running


def test_the_server_dies_with_the_process_that_started_it(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    module = Path(tb.__file__)  # loaded on its own: the parent need not import torch
    script = textwrap.dedent(
        f"""
        import importlib.util, time
        spec = importlib.util.spec_from_file_location("tb", {str(module)!r})
        tb = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tb)
        server = tb.Server({str(tmp_path)!r}).start()
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.send_signal(signal.SIGKILL)  # what nbval does to a kernel: no exit handlers run
        parent.wait(10)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        parent.kill()
        parent.wait(10)


def test_stop_servers_stops_what_the_registry_lists(tmp_path):
    server = tb.Server(tmp_path).start()
    try:
        assert tb.stop_servers(tmp_path) == [server.pid]
        server.process.wait(10)
        assert tb.running_servers(tmp_path) == [] and tb.stop_servers(tmp_path) == []
    finally:
        server.stop()
