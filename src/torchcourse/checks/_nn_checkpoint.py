"""The checkpoint of chapter 03 (q12): saved, loaded into fresh objects, and resumed exactly.

:mod:`.nn` declares the exercise; ``_judge_checkpoint`` saves the learner's dict with ``torch.save``, loads
it with ``torch.load(weights_only=True)`` into a freshly built model, Adam optimizer and StepLR scheduler
(``_make_training``), trains both that and a copy that never stopped for 3 more epochs
(``_train_epochs``), and says which part of the training state was lost when they differ.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .core import Case, Mismatch, call_answer, describe
from .core import randint as _randint

__all__ = ["make_checkpoint"]


def _make_training(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def _train_epochs(model: nn.Module, optimizer: Any, scheduler: Any, epochs: range) -> None:
    for epoch in epochs:
        data = torch.randn(8, 3, generator=torch.Generator().manual_seed(epoch))
        optimizer.zero_grad()
        model(data).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()


def _checkpoint_case(generator: torch.Generator, device: str) -> tuple[Any, ...]:
    model, optimizer, scheduler = _make_training(_randint(generator, 0, 2**31))
    epoch = _randint(generator, 1, 5)
    _train_epochs(model, optimizer, scheduler, range(epoch))
    return model, optimizer, scheduler, epoch


def make_checkpoint(model: nn.Module, optimizer: Any, scheduler: Any, epoch: int) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
    }


def _round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _unloadable(value: Any, where: str, seen: frozenset[int] = frozenset()) -> tuple[str, Any]:
    """The innermost part of ``value`` that does not survive ``torch.save`` and ``torch.load(weights_only=True)``,
    and where it sits (``checkpoint['epoch']``): the real defect, not just "the checkpoint"."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        if id(item) in seen or item is value:  # a container inside itself: look no deeper
            continue
        try:
            _round_trip(item)
        except Exception:  # noqa: BLE001 - this part is the one that fails: look inside it
            return _unloadable(item, f"{where}[{key!r}]", seen | {id(value)})
    return where, value


def _judge_checkpoint(answer: Callable[..., Any], case: Case) -> None:
    learner = copy.deepcopy(case)
    straight_model, straight_opt, straight_sched, epoch = copy.deepcopy(case)
    checkpoint = call_answer(answer, *learner)
    if not isinstance(checkpoint, dict):
        raise Mismatch(f"Return a dict (the checkpoint), not {describe(checkpoint)}.")
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch") if k not in checkpoint]
    if missing:
        raise Mismatch(f"The checkpoint has no {missing} entry: it needs 'model', 'optimizer', 'scheduler' and "
                       "'epoch'.")
    try:
        loaded = _round_trip(checkpoint)
    except Exception as error:  # what torch.save or the safe unpickler says about the learner's objects
        where, value = _unloadable(checkpoint, "checkpoint")
        raise Mismatch(
            f"Saving and loading your checkpoint with weights_only=True failed ({type(error).__name__}) on "
            f"{where}, a {describe(value)}: weights_only=True loads tensors, Python numbers, strings and plain "
            "containers (what state_dict() returns), not whole models, optimizers or schedulers, nor NumPy values."
        ) from None
    model, optimizer, scheduler = _make_training(seed=12345)
    try:
        model.load_state_dict(loaded["model"])
        optimizer.load_state_dict(loaded["optimizer"])
        scheduler.load_state_dict(loaded["scheduler"])
    except Exception as error:  # a state dict of the wrong object, or something that is not one
        raise Mismatch(
            f"Loading your checkpoint's state dicts raised {type(error).__name__}: {str(error).splitlines()[0]}"
        ) from None
    if loaded["epoch"] != epoch:
        raise Mismatch("The epoch stored is not the number of epochs trained so far.")
    _train_epochs(straight_model, straight_opt, straight_sched, range(epoch, epoch + 3))
    _train_epochs(model, optimizer, scheduler, range(epoch, epoch + 3))
    if optimizer.param_groups[0]["lr"] != straight_opt.param_groups[0]["lr"]:
        raise Mismatch("After resuming, the learning rate differs: the scheduler started again from its initial "
                       "state.")
    for (name, value), expected in zip(model.state_dict().items(), straight_model.state_dict().values(), strict=True):
        if not torch.equal(value, expected):
            raise Mismatch(
                f"Resumed training drifts away from the uninterrupted run ({name} differs after 3 more epochs): the "
                "optimizer restarted without Adam's moments, which are part of the training state."
            )
