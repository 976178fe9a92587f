"""The complete training loop of chapter 03 (q13): trained and evaluated on hidden cases, and watched while it runs.

:mod:`.nn` declares the exercise; this module holds what judges it. A case is a small classifier with BatchNorm
and Dropout (:class:`_Traced`, which records for every forward pass whether the model was in train mode, whether
gradients were recorded, and whether the batch came from the test loader), a shuffled training loader and a test
loader (each with its own generator: they draw nothing from the global RNG), a loss and an SGD with momentum that
counts its steps (:class:`_CountingSGD`). ``_judge_fit`` runs the learner's ``fit`` and the reference on fresh
copies of the case (``_fresh``) from the same global seed, inside ``fork_rng``, so Dropout draws the same masks and
the session's generator is left as it was. The record names what a loop did wrong (evaluation in train mode or with
gradients, training in eval mode, a step per epoch, the mode not given back) before the weights and accuracies are
compared; where the weights differ, a loop that never clears the gradients is tried to name that defect.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .core import Case, Mismatch, call_answer, describe
from .core import randint as _randint

__all__ = ["fit"]


class _Pass(NamedTuple):
    training: bool  # the model's mode during this forward pass
    grad: bool  # whether autograd recorded it
    test: bool  # whether the batch came from the test loader (its last column is 1)


class _Traced(nn.Module):
    """A classifier with BatchNorm and Dropout that records each forward pass (the marker column is dropped)."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(hidden, classes))
        self.passes: list[_Pass] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append(_Pass(self.training, torch.is_grad_enabled(), bool(x[:, -1].eq(1).all())))
        return self.net(x[:, :-1])


class _CountingSGD(torch.optim.SGD):
    """SGD with momentum that counts its steps (a step per batch, not per epoch)."""

    steps = 0

    def step(self, closure: Any = None) -> Any:
        self.steps += 1
        return super().step(closure)


def _loader(dataset: TensorDataset, batch_size: int, seed: int, shuffle: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))


def _loop_case(generator: torch.Generator, device: str, trial: int = 0) -> tuple[Any, ...]:
    # What the statement allows: any model, loaders whose last batch is smaller (never a single sample, which
    # BatchNorm cannot train on), 2 or 3 epochs (the second shows a mode left over from the first evaluation), a
    # model given in train mode (trials 0 and 2) or in eval mode (trial 1), which it must be given back in.
    features, classes, hidden = _randint(generator, 2, 5), _randint(generator, 2, 4), _randint(generator, 4, 9)
    batch_size = _randint(generator, 3, 7)
    n_train = batch_size * _randint(generator, 3, 6) + _randint(generator, 2, batch_size)  # a smaller last batch
    n_test = _randint(generator, 7, 20)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_randint(generator, 0, 2**31))
        model = _Traced(features, hidden, classes).double()
    centres = torch.randn(classes, features, generator=generator, dtype=torch.float64) * 2

    def data(n: int, marker: float) -> TensorDataset:
        labels = torch.randint(0, classes, (n,), generator=generator)
        x = centres[labels] + torch.randn(n, features, generator=generator, dtype=torch.float64)
        return TensorDataset(torch.cat([x, torch.full((n, 1), marker, dtype=torch.float64)], dim=1), labels)

    train, test = data(n_train, 0.0), data(n_test, 1.0)
    model.train(trial != 1)
    optimizer = _CountingSGD(model.parameters(), lr=0.05, momentum=0.9)
    seed = _randint(generator, 0, 2**31)
    return (model, _loader(train, batch_size, seed, True), _loader(test, _randint(generator, 4, 9), seed, False),
            nn.CrossEntropyLoss(), optimizer, 2 + trial % 2)


def _fresh(case: Case) -> tuple[Any, ...]:
    """New objects for one run: the model as the case holds it, a new optimizer, loaders that start over."""
    model, train, test, loss_fn, optimizer, epochs = case
    model = copy.deepcopy(model)
    model.passes = []
    seed = train.generator.initial_seed()
    return (model, _loader(train.dataset, train.batch_size, seed, True),
            _loader(test.dataset, test.batch_size, seed, False), copy.deepcopy(loss_fn),
            _CountingSGD(model.parameters(), **optimizer.defaults), epochs)


def fit(model, train_loader, test_loader, loss_fn, optimizer, epochs):
    was_training = model.training
    accuracies = []
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(dim=1) == y).sum().item()
        accuracies.append(correct / len(test_loader.dataset))
    model.train(was_training)
    return accuracies


def _fit_accumulating(model, train_loader, test_loader, loss_fn, optimizer, epochs):
    """The reference without zero_grad: each step uses the sum of every gradient so far."""
    was_training = model.training
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            loss_fn(model(x), y).backward()
            optimizer.step()
    model.train(was_training)


def _run(function: Callable[..., Any], case: Case, seed: int, guarded: bool) -> tuple[Any, tuple[Any, ...]]:
    objects = _fresh(case)
    gc.collect()  # earlier garbage (a finished loader's workers) is finalised now, not inside the learner's call
    with torch.random.fork_rng(devices=[]):  # Dropout's masks: the same for every run, the session's RNG untouched
        torch.manual_seed(seed)
        result = call_answer(function, *objects) if guarded else function(*objects)
    return result, objects


def _mode(training: bool) -> str:
    return "train" if training else "eval"


def _judge_trace(passes: list[_Pass], steps: int, epochs: int, batches: int) -> None:
    """Name what the loop did wrong, from the record of its forward passes and optimizer steps."""
    tests, trains = [p for p in passes if p.test], [p for p in passes if not p.test]
    if not tests:
        raise Mismatch("Your function never ran the model on the test loader: there is nothing to measure the "
                       "accuracy with.")
    if any(p.training for p in tests):
        raise Mismatch("Your evaluation ran with the model in train mode: Dropout still dropped units and BatchNorm "
                       "normalised with each test batch's statistics (and updated its running ones).")
    if any(p.grad for p in tests):
        raise Mismatch("Your evaluation ran with gradient tracking on: every test batch recorded an autograd graph "
                       "that nothing uses.")
    if any(not p.grad for p in trains):
        raise Mismatch("Some training batches ran with gradient tracking off: their loss has no graph to call "
                       "backward() on.")
    if any(not p.training for p in trains):
        first = passes.index(next(p for p in trains if not p.training))
        if not any(p.test for p in passes[:first]):
            raise Mismatch("Training ran in eval mode: the model was given in eval mode, and nothing put it in "
                           "train mode before training.")
        raise Mismatch("After an evaluation the next epoch trained in eval mode: Dropout and BatchNorm stayed as the "
                       "evaluation left them.")
    if len(trains) != epochs * batches:
        raise Mismatch(f"The model saw {len(trains)} training batches in {epochs} epochs of {batches} batches: "
                       "each epoch goes over the training loader once.")
    if steps == epochs:
        raise Mismatch(f"The optimizer stepped once per epoch ({steps} steps in {epochs} epochs of {batches} "
                       "batches), not after each batch.")
    if steps != epochs * batches:
        raise Mismatch(f"The optimizer stepped {steps} times in {epochs} epochs of {batches} batches: one step "
                       "per training batch.")


def _same(a: nn.Module, b: nn.Module) -> str | None:
    """The name of the first parameter or buffer that differs, or None."""
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        close = torch.allclose(x, y, rtol=1e-6, atol=1e-9) if x.is_floating_point() else torch.equal(x, y)
        if not close:
            return name
    return None


def _judge_fit(answer: Callable[..., Any], case: Case) -> None:
    model, train, _, _, _, epochs = case
    seed = train.generator.initial_seed() + 1
    accuracies, objects = _run(answer, case, seed, guarded=True)
    learned, optimizer = objects[0], objects[4]
    if not isinstance(accuracies, list):
        raise Mismatch(f"Return a list of the test accuracies, one per epoch, not {describe(accuracies)}.")
    if len(accuracies) != epochs:
        raise Mismatch(f"Your list has {len(accuracies)} accuracies for {epochs} epochs: one per epoch.")
    if any(type(a) is not float for a in accuracies):
        odd = next(a for a in accuracies if type(a) is not float)
        raise Mismatch(f"Each accuracy must be a Python float, the fraction of test samples classified correctly; "
                       f"one is {describe(odd)}.")
    _judge_trace(learned.passes, optimizer.steps, epochs, len(train))
    if learned.training != model.training:
        raise Mismatch(f"Your function left the model in {_mode(learned.training)} mode; it was given in "
                       f"{_mode(model.training)} mode, and must be given back as it came.")
    expected, reference = _run(fit, case, seed, guarded=False)
    differs = _same(learned, reference[0])
    if differs is not None:
        _, accumulating = _run(_fit_accumulating, case, seed, guarded=False)
        if _same(learned, accumulating[0]) is None:
            raise Mismatch("The gradients accumulate from batch to batch: each step used the sum of every gradient "
                           "since the start, because nothing sets them back to zero.")
        raise Mismatch(f"After training, the weights differ from a correct loop's ({differs} is the first): each "
                       "batch is a forward pass, the loss, backward() and a step, from gradients cleared before it.")
    for epoch, (got, want) in enumerate(zip(accuracies, expected, strict=True)):
        if abs(got - want) > 1e-6:  # k / n for n <= 20: fractions differ by far more, float32 by far less
            raise Mismatch(f"The accuracy after epoch {epoch} is {got:.4g}, which is not the fraction of the test "
                           "samples that the model classifies correctly.")
