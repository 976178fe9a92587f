"""The resume from a distributed checkpoint of chapter 05's q9 (``resume``), in one process.

:mod:`.gpu` declares the exercise; this module holds what judges it. ``_dcp_case`` trains a small model (with
BatchNorm buffers) for a few steps of Adam, or of SGD with momentum, lowers the learning rate as a scheduler would,
and saves it the way lesson 05.10 does (``get_state_dict``, then ``dcp.save`` of ``{"model": ..., "optim": ...}``)
into a temporary folder, removed when the case is (``weakref.finalize``). The case hands the learner a fresh model
from another seed and a fresh optimizer. ``_judge_resume`` runs the answer on copies, with a copy of the folder,
and names what did not come back (the weights, a buffer, the optimizer's state, its learning rate) before it takes
one more step and compares it with the run that never stopped.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .core import Case, Mismatch, call_answer, describe
from .core import randint as _randint

__all__ = ["resume"]

# The fresh model of each case, with the run that never stopped (trained one step past the checkpoint) and the
# number of that step.
_UNINTERRUPTED: weakref.WeakKeyDictionary[nn.Module, tuple[nn.Module, int]] = weakref.WeakKeyDictionary()


@contextmanager
def _one_process() -> Iterator[None]:
    """dcp warns, at each call without a process group, that it assumes a single process: here that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"torch\.distributed is .*assuming the intent", UserWarning)
        yield


def _build(seed: int, sizes: tuple[int, int, int], sgd: bool, lr: float) -> tuple[nn.Module, Any]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.BatchNorm1d(sizes[1]), nn.ReLU(),
                              nn.Linear(sizes[1], sizes[2])).double()
    if sgd:
        return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, torch.optim.Adam(model.parameters(), lr=lr)


def _train_step(model: nn.Module, optimizer: Any, step: int) -> None:
    x = torch.randn(6, model[0].in_features, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
    optimizer.zero_grad()
    model(x).pow(2).mean().backward()
    optimizer.step()


def _dcp_case(generator: torch.Generator, device: str, trial: int = 0) -> tuple[nn.Module, Any, str]:
    # What the statement allows: any model (buffers included), Adam (trials 0 and 2) or SGD with momentum (trial 1),
    # a learning rate lowered after training (trials 0 and 1) or left as built (trial 2), 1 to 3 steps saved.
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    sizes = (_randint(generator, 2, 6), _randint(generator, 3, 8), _randint(generator, 1, 4))
    sgd, lr, seed = trial % 3 == 1, 0.1 if trial % 3 == 1 else 0.05, _randint(generator, 0, 2**31)
    steps = _randint(generator, 1, 4)
    trained, optimizer = _build(seed, sizes, sgd, lr)
    for step in range(steps):
        _train_step(trained, optimizer, step)
    if trial % 3 != 2:
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5  # what a scheduler does between epochs: part of the state to resume
    folder = tempfile.mkdtemp(prefix="torchcourse-dcp-")
    with _one_process():
        model_state, optim_state = get_state_dict(trained, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=folder)
    _train_step(trained, optimizer, steps)
    fresh, fresh_optimizer = _build(seed + 1, sizes, sgd, lr)
    _UNINTERRUPTED[fresh] = trained, steps
    weakref.finalize(fresh, shutil.rmtree, folder, ignore_errors=True)  # the folder lives as long as the case
    return fresh, fresh_optimizer, folder


def resume(model: nn.Module, optimizer: torch.optim.Optimizer, folder: str) -> tuple[nn.Module, Any]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)  # templates, with the optimizer's state made
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=folder)  # fills the templates in place
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return model, optimizer


def _digest(folder: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        digest.update(name.encode())
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as file:
                digest.update(file.read())
    return digest.hexdigest()


def _same(a: torch.Tensor, b: Any) -> bool:
    return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.detach().cpu().double(),
                                                                              b.detach().cpu().double())


def _call(answer: Callable[..., Any], *args: Any) -> Any:
    try:
        return call_answer(answer, *args)
    except Mismatch as mismatch:
        error = getattr(mismatch, "error", None)
        if isinstance(error, (TypeError, AttributeError)) and "NoneType" in str(error):
            raise Mismatch(f"{mismatch} (dcp.load returns None: it fills, in place, the dict it is given.)") from None
        raise


def _judge_resume(answer: Callable[..., Any], case: Case) -> None:
    fresh, fresh_optimizer, folder = case
    with _one_process(), tempfile.TemporaryDirectory(prefix="torchcourse-") as tmp:
        mine = shutil.copytree(folder, os.path.join(tmp, "checkpoint"))
        model, optimizer = copy.deepcopy((fresh, fresh_optimizer))
        result = _call(answer, model, optimizer, str(mine))
        wrote = _digest(mine) != _digest(folder)
        expected, expected_optimizer = resume(*copy.deepcopy((fresh, fresh_optimizer)), folder)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Mismatch(f"Return the pair (model, optimizer); got {describe(result)}.")
    model, optimizer = result
    if not isinstance(model, nn.Module) or not isinstance(optimizer, torch.optim.Optimizer):
        raise Mismatch(f"Return (model, optimizer): an nn.Module and a torch.optim optimizer; got {describe(result)}.")
    if {id(p) for p in model.parameters()} != {id(p) for g in optimizer.param_groups for p in g["params"]}:
        raise Mismatch("The optimizer does not hold your model's parameters: it would update tensors the model no "
                       "longer uses.")
    if wrote:
        raise Mismatch("Your function wrote into the checkpoint folder: the checkpoint it was to resume from is no "
                       "longer the one saved.")
    _judge_state(model, optimizer, fresh, fresh_optimizer, expected, expected_optimizer)
    _judge_next_step(model, optimizer, fresh)


def _judge_state(model: nn.Module, optimizer: Any, fresh: nn.Module, fresh_optimizer: Any, expected: nn.Module,
                 expected_optimizer: Any) -> None:
    """Name the first part of the training state that is not the checkpoint's."""
    initial = fresh.state_dict()
    for name, want in expected.state_dict().items():
        got = model.state_dict().get(name)
        if not _same(want, got):
            kind = "parameter" if name in dict(expected.named_parameters()) else "buffer"
            which = "still the fresh model's" if got is not None and _same(initial[name], got) else "not the saved one"
            raise Mismatch(f"The model's {kind} {name} is {which}: the model's state did not come back from the "
                           "checkpoint.")
    names = {id(p): n for n, p in model.named_parameters()}
    want_state = {n: expected_optimizer.state[p] for n, p in expected.named_parameters()}
    for p in model.parameters():
        name, state = names[id(p)], optimizer.state.get(p, {})
        if not state:
            raise Mismatch(f"The optimizer has no state for {name}: "
                           + ("Adam's moments and step count" if "exp_avg" in want_state[name] else
                              "SGD's momentum buffer") + " were not loaded, so training would start them again. (A "
                           "fresh optimizer's state_dict() holds no state: loading into it fills nothing.)")
        for key, value in want_state[name].items():
            if not _same(value, state.get(key)):
                raise Mismatch(f"The optimizer's {key!r} for {name} is not the checkpoint's: the optimizer's state "
                               "did not come back from it.")
    for i, (group, want, first) in enumerate(zip(optimizer.param_groups, expected_optimizer.param_groups,
                                                 fresh_optimizer.param_groups, strict=False)):
        for key in want:
            if key != "params" and group.get(key) != want[key]:
                was = " the fresh optimizer's" if group.get(key) == first.get(key) else " not the saved one"
                raise Mismatch(f"The optimizer's {key} (param group {i}) is {group.get(key)!r},{was}: the "
                               "checkpoint's param_groups did not reach the optimizer (a scheduler had changed it).")


def _judge_next_step(model: nn.Module, optimizer: Any, fresh: nn.Module) -> None:
    """One more step from the resumed state must be the step the job that never stopped took."""
    uninterrupted, step = _UNINTERRUPTED[fresh]
    try:
        _train_step(model, optimizer, step)
    except Exception as error:  # noqa: BLE001 - the learner's objects: any failure is feedback
        raise Mismatch(f"One more training step fails after your resume: {type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''}") from None
    for (name, got), want in zip(model.state_dict().items(), uninterrupted.state_dict().values(),
                                 strict=True):
        if not torch.allclose(got.double(), want.double(), rtol=1e-9, atol=1e-12):
            raise Mismatch(f"One more step from your resumed state differs from the run that never stopped ({name} "
                           "first): part of the training state did not come back.")
