"""Simulated CUDA (src/torchcourse/simcuda.py): fake cuda tensors, device checks, what it cannot run."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from torchcourse import simcuda

pytestmark = pytest.mark.skipif(not simcuda.available(), reason="this torch cannot simulate CUDA")


def _raises(sim, fn):
    with sim:
        try:
            fn()
        except Exception as error:  # noqa: BLE001
            return simcuda.classify(error)
    return None


def test_tensors_containers_and_modules_move_to_simulated_cuda():
    sim = simcuda.Simulation()
    Pair = collections.namedtuple("Pair", "a b")
    leaf = torch.randn(3, requires_grad=True)
    moved = sim.to_fake_cuda({"x": [leaf, 3], "pair": Pair(torch.ones(2), "s"), "model": torch.nn.Linear(2, 2)})
    assert moved["x"][0].device == simcuda.DEVICE and moved["x"][0].requires_grad and moved["x"][1] == 3
    assert isinstance(moved["pair"], Pair) and moved["pair"].a.device == simcuda.DEVICE
    assert moved["model"].weight.device == simcuda.DEVICE
    assert leaf.device.type == "cpu"  # the original is left alone


def test_a_model_and_its_optimizer_move_together():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    sim = simcuda.Simulation()
    fake_model, fake_optimizer = sim.to_fake_cuda((model, optimizer))
    held = [p for group in fake_optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in held] == [id(p) for p in fake_model.parameters()]
    assert simcuda.left_behind((fake_model, fake_optimizer)) == []
    assert simcuda.left_behind((model,)) != []


def test_mixing_devices_is_a_mismatch_and_placement_is_kept():
    sim = simcuda.Simulation()
    x = sim.to_fake_cuda(torch.randn(4, 3))
    with sim:
        assert (x + torch.arange(3, device=x.device)).device == simcuda.DEVICE
        assert (x * torch.tensor(2.0)).device == simcuda.DEVICE  # a 0-d CPU tensor is allowed, as on a GPU
        assert torch.zeros(3).device.type == "cpu"  # no device=: the CPU
    assert _raises(sim, lambda: x + torch.arange(3)) == simcuda.MISMATCH
    model = sim.to_fake_cuda(torch.nn.Linear(3, 2))
    assert _raises(sim, lambda: model(torch.randn(4, 3))) == simcuda.MISMATCH


def test_numpy_of_a_cuda_tensor_is_refused_as_on_a_gpu():
    sim = simcuda.Simulation()
    x = sim.to_fake_cuda(torch.randn(3))
    assert _raises(sim, lambda: x.numpy()) == simcuda.MISMATCH
    assert _raises(sim, lambda: np.asarray(x)) == simcuda.MISMATCH
    assert _raises(sim, lambda: x.detach().cpu().numpy()) == simcuda.INCONCLUSIVE


def test_a_cpu_tensor_indexed_with_cuda_indices_is_refused_as_on_a_gpu():
    sim = simcuda.Simulation()
    index = sim.to_fake_cuda(torch.tensor([0, 2]))
    table = torch.arange(3)
    assert _raises(sim, lambda: table[index]) == simcuda.MISMATCH
    assert _raises(sim, lambda: table.__setitem__(index, 0)) == simcuda.MISMATCH
    assert _raises(sim, lambda: torch.zeros(3).index_put_((index,), torch.ones(2, device=index.device))) \
        == simcuda.MISMATCH
    assert _raises(sim, lambda: sim.to_fake_cuda(table)[index]) is None  # CUDA indexed by CUDA: fine
    assert _raises(sim, lambda: sim.to_fake_cuda(table)[torch.tensor([1])]) is None  # CPU indices are allowed


@pytest.mark.parametrize("what", ["item", "bool", "tolist", "nonzero", "backward"])
def test_what_the_simulation_cannot_run_is_inconclusive(what):
    sim = simcuda.Simulation()
    x = sim.to_fake_cuda(torch.randn(3, requires_grad=True))
    run = {
        "item": lambda: x.sum().item(),
        "bool": lambda: bool(x.sum() > 0),
        "tolist": lambda: x.tolist(),
        "nonzero": lambda: torch.nonzero(x > 0),
        "backward": lambda: (x * 2).sum().backward(),
    }[what]
    assert _raises(sim, run) == simcuda.INCONCLUSIVE


def test_classify():
    assert simcuda.classify(None) == simcuda.ERROR
    assert simcuda.classify(ValueError("same device")) == simcuda.INCONCLUSIVE  # only runtime device checks count
    assert simcuda.classify(RuntimeError("Expected all tensors to be on the same device")) == simcuda.MISMATCH
    assert simcuda.classify(simcuda.SimulationLimit("no values")) == simcuda.INCONCLUSIVE
