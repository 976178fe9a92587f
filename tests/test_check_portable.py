"""The authors' portable check (tools/check_portable.py): it finds the cells that encode the machine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_portable", ROOT / "tools" / "check_portable.py")
check_portable = importlib.util.module_from_spec(spec)
sys.modules["check_portable"] = check_portable  # its dataclass looks its module up
spec.loader.exec_module(check_portable)
reasons = check_portable.cell_reasons

OFFENDERS = {  # source, committed output: each one differs between machines
    "CUDA-only print": ('if tc.cuda_available():\n    assert x.is_cuda\nelse:\n    print("CUDA not available")',
                        "CUDA not available\n"),
    "error shown on a GPU only": ('for device in tc.DEVICES:\n    if device != "cpu":\n'
                                  '        with tc.expect_error(TypeError, "cpu"):\n            t.numpy()\nx', "1"),
    "error shown once per device": ('for device in tc.DEVICES:\n    with tc.expect_error(RuntimeError, "no"):\n'
                                    '        f(device)', "RuntimeError: no\n"),
    "last device's tensor": ("for device in tc.DEVICES:\n    s = torch.ones(2, device=device)\ns.to_dense()",
                             "tensor([1., 1.])"),
    "the device list": ("results = tc.run_on_devices(f, x)\nsorted(results)", "['cpu']"),
    "thread count": ("(set(seen), torch.get_num_threads())", "({1}, 2)"),
    "torch version": ("torch.__version__", "'2.14.1+cu130'"),
    "preset sizes": ('for n in tc.sizes("mlp"):\n    print(n)', "8\n64\n"),
    "a timing": ('t = tcb.time_fn(f, "cpu")\nf"{t.best:.2f}"', "'0.99'"),
    "a stopwatch": ("start = time.perf_counter()\nf()\nround(time.perf_counter() - start, 1)", "0.1"),
    "machine in the output": ("report", "GPU: NVIDIA H200, 139.8 GiB, 132 SMs"),
}

PORTABLE = {  # device-neutral on every machine
    "CPU value after a device loop": ("for device in tc.DEVICES:\n    a = torch.ones(2, device=device)\na.cpu()",
                                      "tensor([1., 1.])"),
    "a value made on the CPU": ("for device in tc.DEVICES:\n    assert f(device)\ntorch.zeros(2)", "tensor([0., 0.])"),
    "the CPU's result": ('results = tc.run_on_devices(f, x)\nresults["cpu"]', "tensor(12.)"),
    "error shown once": ('for device in tc.DEVICES:\n'
                         '    with tc.expect_error(RuntimeError, "no", show=device == "cpu"):\n'
                         "        f(device)", "RuntimeError: no\n"),
    "no output": ("if tc.cuda_available():\n    assert torch.cuda.device_count() > 0", ""),
    "a variable's name": ("run('CUDA_VISIBLE_DEVICES=0 python a.py')", "{'CUDA_VISIBLE_DEVICES': '0'}"),
    "a check's devices, sanitised": ("q4.check(f)", "All 3 hidden test cases pass on DEVICES."),
}


@pytest.mark.parametrize("name", OFFENDERS)
def test_offenders_are_found(name):
    source, output = OFFENDERS[name]
    assert reasons(source, output), name


@pytest.mark.parametrize("name", PORTABLE)
def test_portable_cells_pass(name):
    source, output = PORTABLE[name]
    assert reasons(source, output) == [], name


def _notebook(tmp_path, cells):
    nb = nbformat.v4.new_notebook()
    for source, output, tags in cells:
        cell = nbformat.v4.new_code_cell(source, outputs=[nbformat.v4.new_output("stream", text=output)])
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_ignore_tag_and_review_tag_exempt_a_cell(tmp_path):
    source, output = OFFENDERS["CUDA-only print"]
    path = _notebook(tmp_path, [(source, output, []), (source, output, ["nbval-ignore-output"]),
                                (source, output, ["portable"])])
    found = check_portable.check(path)
    assert [o.cell for o in found] == [0]
    assert check_portable.main([str(path)]) == 1


def test_the_course_passes_its_own_check():
    assert check_portable.main([]) == 0


def test_the_check_finds_what_the_issue_found_in_the_first_edition(tmp_path):
    # 05.6 printed the thread counts Timer saw, which made a one-thread run fail.
    path = _notebook(tmp_path, [('seen = []\nbenchmark.Timer(stmt="seen.append(torch.get_num_threads())").timeit(3)\n'
                                 "(set(seen), set(seen_all))", "({1}, {2})", [])])
    assert "get_num_threads" in check_portable.check(path)[0].reason


rerun_reasons = check_portable.rerun_reasons

RERUN_OFFENDERS = {  # each one fails, or shows something else, when the cell runs a second time (issue #22)
    "a bare mkdir": 'pets = tc.workdir() / "pets"\npets.mkdir()',
    "mkdir with parents only": '(root / "MNIST" / "raw").mkdir(parents=True)',
    "os.makedirs": 'os.makedirs(tc.workdir() / "a" / "b")',
    "a counter made elsewhere": "calls += 1\nassert calls == 1",
    "a list made elsewhere": "seen.append(grad)\nassert len(seen) == 1",
    "a tuple grown in place (00.3)": "a += (9, 1.5)\nassert a == (1, 2, 3, 1, 9, 1.5)",
    "backward through an old graph (02.1)": "loss.backward()\nassert w1.grad is not None",
    "backward through an old graph's sum (02.2)": "y.sum().backward()\nassert x.grad.tolist() == [2.0, 4.0]",
    "files written and counted": 'torch.save(t, folder / "t.pt")\nassert len(os.listdir(folder)) == 1',
}

RERUN_FINE = {
    "mkdir with exist_ok": '(tc.workdir() / "a").mkdir(parents=True, exist_ok=True)',
    "a folder under a fresh one": 'root = tc.fresh_dir("data")\n(root / "raw").mkdir()',
    "a fresh folder, written and listed": 'pets = tc.fresh_dir("pets")\n(pets / "a.txt").write_text("a")\n'
                                          "sorted(os.listdir(pets))",
    "a counter the cell makes": "calls = 0\nfor _ in range(3):\n    calls += 1\nassert calls == 3",
    "a list the cell makes": "seen = []\nh = y.register_hook(seen.append)\nseen.append(1)\nassert len(seen) == 1",
    "a graph the cell builds": "y = x * x\ny.sum().backward()\nassert x.grad is not None",
    "a graph a call builds": "F.mse_loss(model(x), target).backward()\nassert w.grad is not None",
    "torch.autograd.backward": "torch.autograd.backward(x * x, grad_tensors=torch.ones(2))",
    "a retained graph": "z.backward(retain_graph=True)",
    "a graph built in a function": "def step(model):\n    loss = model(x).sum()\n    loss.backward()\n",
    "a parameter's graph": "def weight_grad(loss):\n    loss.backward()\n",
    "magics": "%timeit x + 1",
}


@pytest.mark.parametrize("name", RERUN_OFFENDERS)
def test_rerun_offenders_are_found(name):
    found = rerun_reasons(RERUN_OFFENDERS[name])
    assert found and all(r.startswith(check_portable.RERUN) for r in found), name


@pytest.mark.parametrize("name", RERUN_FINE)
def test_cells_that_can_run_again_pass(name):
    assert rerun_reasons(RERUN_FINE[name]) == [], name


def test_rerun_findings_ignore_the_output_marker_and_respect_their_tag(tmp_path, capsys):
    source = RERUN_OFFENDERS["a bare mkdir"]
    path = _notebook(tmp_path, [(source, "", ["nbval-ignore-output"]), (source, "", ["portable"]),
                                (source, "", ["rerun-reviewed"])])
    assert [o.cell for o in check_portable.check(path)] == [0, 1]
    assert check_portable.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "mkdir() without exist_ok=True" in out and "Every cell can be run again" in out
    assert "machine-dependent" not in out
