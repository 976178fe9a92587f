"""torchcourse.distributed launches real torchrun jobs; q7's reference matches DDP's own all-reduce."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import torchcourse
from torchcourse import distributed as tcd

# Two ranks: DDP's gradients after backward() against q7's reference on plain gradients.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    sys.path.insert(0, sys.argv[1])
    from torchcourse.checks.gpu import average_gradients

    backend = os.environ["TORCHCOURSE_BACKEND"]
    if backend == "nccl":  # the cluster habits of lesson 05.5: LOCAL_RANK, set_device first, device_id
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group(backend, device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = nn.Linear(5, 3).to(device)
    plain = nn.Linear(5, 3).to(device)
    plain.load_state_dict(model.state_dict())
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(rank)).to(device)  # different per rank
    ddp(x).pow(2).mean().backward()
    plain(x).pow(2).mean().backward()
    average_gradients([p.grad for p in plain.parameters()])
    same = all(torch.allclose(a.grad, b.grad, atol=1e-6) for a, b in zip(model.parameters(), plain.parameters()))
    Path(os.getcwd(), f"grads{rank}.json").write_text(json.dumps({"same": same, "world": world}))
    sys.stdout.write(f"rank {rank}: same={same}\\n")
    dist.barrier()  # shut down in order: all ranks done, DDP's reducer released, then the group
    del ddp
    dist.destroy_process_group()
    """
)


def test_backend_is_gloo_without_two_gpus():
    import torch

    expected = "nccl" if tcd.cuda_available() and torch.cuda.device_count() >= 2 else "gloo"
    assert tcd.backend() == expected


def test_write_script_goes_to_the_workdir():
    path = tcd.write_script("hello.py", "print('hi')\n")
    assert path.parent == tcd.workdir() and path.read_text() == "print('hi')\n"


def test_failing_job_raises_with_its_output():
    script = tcd.write_script("fails.py", "import sys\nprint('about to fail')\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match="about to fail") as raised:
        tcd.torchrun(script, nproc=1, timeout=120)
    assert "run 1:" in str(raised.value) and "run 2:" in str(raised.value)  # a script's own error repeats


def test_a_job_that_fails_once_is_started_again():
    marker = tcd.workdir() / "failed_once"
    marker.unlink(missing_ok=True)
    script = tcd.write_script("fails_once.py", (
        "import sys\nfrom pathlib import Path\nmarker = Path(sys.argv[1])\n"
        "if not marker.exists():\n    marker.touch()\n    sys.exit(1)\nprint('second run')\n"
    ))
    job = tcd.torchrun(script, str(marker), nproc=1, timeout=120)
    assert job.attempts == 2 and "second run" in job.stdout
    with pytest.raises(RuntimeError, match="run 1:"):
        marker.unlink()
        tcd.torchrun(script, str(marker), nproc=1, timeout=120, attempts=1)


def test_q7_reference_matches_ddp_on_two_processes():
    src = str(Path(torchcourse.__file__).resolve().parents[1])  # the folder that holds the package
    script = tcd.write_script("ddp_vs_reference.py", SCRIPT)
    job = tcd.torchrun(script, src, nproc=2, timeout=300)
    assert "rank 0: same=True" in job.stdout and "rank 1: same=True" in job.stdout
    for rank in range(2):
        result = json.loads((tcd.workdir() / f"grads{rank}.json").read_text())
        assert result == {"same": True, "world": 2}
    assert tcd.describe_command(job).startswith("torchrun --standalone --nproc-per-node=2 ddp_vs_reference.py")
