"""The optimizers written from scratch (q9 SGD, q10 Adam) and the closed-form StepLR schedule (q11) of chapter 03.

:mod:`.nn` declares these exercises; this module holds what judges them. ``_judge_optimizer`` trains the
same parameters with the learner's class and with ``torch.optim`` for 6 steps on a fixed non-quadratic
loss (``_loss``), over random parameter groups (``_groups_case``) and declared groups that override every
setting (``_overriding_case``), and compares the weights; when they differ it tries each misconception
class (a wrong SGD or Adam, trained the same way) to name the defect. The class skeleton of the exercise
(``__init__`` and ``step`` still ``...``) is not attempted (``_is_placeholder_class``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._nn_modules import _choice
from .core import Case, Judge, Mismatch, NotAttempted, call_answer
from .core import randint as _randint

__all__ = ["MyAdam", "SGDMomentum", "step_lr_schedule"]


# --- q9, q10 · 03.6 optimizers written from scratch -------------------------------------------------


def _loss(params: list[torch.Tensor]) -> torch.Tensor:
    """A fixed non-quadratic loss of the parameters: each coordinate has its own curvature."""
    total = torch.zeros((), dtype=params[0].dtype)
    for p in params:
        scale = torch.arange(1, p.numel() + 1, dtype=p.dtype).view_as(p) / p.numel()
        total = total + 0.5 * (scale * p**2).sum() + torch.sin(3 * p).sum()
    return total


def _groups_case(
    generator: torch.Generator, options: dict[str, list[Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    groups = []
    for g in range(_randint(generator, 1, 4)):
        params = [
            torch.randn(_randint(generator, 1, 4), _randint(generator, 1, 4), generator=generator, dtype=torch.float64)
            for _ in range(_randint(generator, 1, 3))
        ]
        group: dict[str, Any] = {"params": params}
        for key, values in options.items():
            if g and _randint(generator, 0, 2):  # later groups sometimes override the defaults
                group[key] = _choice(generator, values)
        groups.append(group)
    defaults = {key: _choice(generator, values) for key, values in options.items()}
    return groups, defaults


def _overriding_case(defaults: dict[str, Any], *overrides: dict[str, Any]) -> Callable[[str], Case]:
    """Groups that set their own values (the first group too) for every setting, each differing from the
    default, and a group that keeps the defaults: a setting read from the defaults, or from the first
    group, for every group shows."""

    def case(device: str) -> Case:
        generator = torch.Generator().manual_seed(len(overrides))
        groups = [
            {"params": [torch.randn(2, 3, generator=generator, dtype=torch.float64),
                        torch.randn(3, generator=generator, dtype=torch.float64)], **override}
            for override in overrides
        ]
        return groups, dict(defaults)

    return case


def _train_optimizer(make: Callable[[list[dict[str, Any]]], Any], groups: list[dict[str, Any]], steps: int = 6):
    copies = [{**g, "params": [p.detach().clone().requires_grad_() for p in g["params"]]} for g in groups]
    optimizer = make(copies)
    params = [p for g in copies for p in g["params"]]
    for _ in range(steps):
        optimizer.zero_grad()
        _loss(params).backward()
        optimizer.step()
    return optimizer, [p.detach() for p in params]


def _empty(function: Any) -> bool:
    code = getattr(inspect.unwrap(function), "__code__", None)
    return code is not None and code.co_code == _EMPTY.co_code and code.co_consts[:1] in ((None,), ())


def _EMPTY_BODY() -> None: ...


_EMPTY = _EMPTY_BODY.__code__


def _is_placeholder_class(answer: Any) -> bool:
    """The exercise's class skeleton: ``__init__`` and ``step`` whose bodies are still ``...``."""
    answer = getattr(answer, "__wrapped__", answer)  # the check hands judges its guarded wrapper
    return (
        isinstance(answer, type)
        and all(name in vars(answer) for name in ("__init__", "step"))
        and _empty(vars(answer)["__init__"])
        and _empty(vars(answer)["step"])
    )


def _judge_optimizer(torch_class: type, misconceptions: list[tuple[type, str]]) -> Judge:
    def judge(answer: Callable[..., Any], case: Case) -> None:
        groups, defaults = case
        if _is_placeholder_class(answer):
            raise NotAttempted

        def learner(gs):
            optimizer = call_answer(answer, gs, *defaults.values())  # positionally, in the signature's order
            if isinstance(optimizer, torch.optim.Optimizer):  # every step is the learner's code too: guarded
                step = optimizer.step
                optimizer.step = lambda *args, **kwargs: call_answer(step, *args, **kwargs)
            return optimizer

        try:
            optimizer, weights = _train_optimizer(learner, groups)
        except (Mismatch, NotAttempted):
            raise
        except Exception as error:  # zero_grad/step of the learner's class
            raise Mismatch(f"Training with your optimizer raised {type(error).__name__}: {error}") from None
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise Mismatch("Your class is not a torch.optim.Optimizer, which provides param_groups, state, "
                           "zero_grad and state_dict.")
        _, expected = _train_optimizer(lambda gs: torch_class(gs, **defaults), groups)
        if len(weights) != len(expected) or any(w.shape != e.shape for w, e in zip(weights, expected, strict=False)):
            raise Mismatch(
                "Your optimizer changed the parameters' shapes: a step must keep each parameter as it is, and "
                "change only its values."
            )
        if all(torch.allclose(w, e, rtol=1e-9, atol=1e-12) for w, e in zip(weights, expected, strict=True)):
            return
        initial = [p for g in groups for p in g["params"]]
        if all(torch.equal(w, p) for w, p in zip(weights, initial, strict=True)):
            raise Mismatch(
                "Your step() left every parameter unchanged: nothing was updated in place."
            )
        for wrong, feedback in misconceptions:
            _, theirs = _train_optimizer(lambda gs, wrong=wrong: wrong(gs, *defaults.values()), groups)
            if all(torch.allclose(w, t, rtol=1e-9, atol=1e-12) for w, t in zip(weights, theirs, strict=True)):
                raise Mismatch(feedback)
        first = next(
            i
            for i, (w, e) in enumerate(zip(weights, expected, strict=True))
            if not torch.allclose(w, e, rtol=1e-9, atol=1e-12)
        )
        raise Mismatch(
            f"After 6 steps the weights differ from torch.optim.{torch_class.__name__}'s, starting with parameter "
            f"{first} (of {len(weights)}, over {len(groups)} parameter group(s), defaults {defaults})."
        )

    return judge


class SGDMomentum(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if group["momentum"]:
                    if "buffer" not in state:
                        state["buffer"] = g.clone()
                    else:
                        state["buffer"].mul_(group["momentum"]).add_(g)
                    g = state["buffer"]
                p.sub_(group["lr"] * g)


class _SGDDecoupled(SGDMomentum):
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                g = p.grad.clone()
                state["buffer"] = g if "buffer" not in state else state["buffer"] * group["momentum"] + g
                p.sub_(group["lr"] * state["buffer"] + group["lr"] * group["weight_decay"] * p)


class _SGDDampened(SGDMomentum):
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                g = p.grad + group["weight_decay"] * p
                m = group["momentum"]
                state["buffer"] = g if "buffer" not in state else state["buffer"] * m + (1 - m) * g
                p.sub_(group["lr"] * state["buffer"])


class _SGDDefaultsOnly(SGDMomentum):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, momentum, weight_decay)
        self.fixed = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                g = p.grad + self.fixed["weight_decay"] * p
                state["buffer"] = g if "buffer" not in state else state["buffer"] * self.fixed["momentum"] + g
                p.sub_(self.fixed["lr"] * state["buffer"])


def _sgd_case(generator: torch.Generator, device: str) -> tuple[Any, ...]:
    return _groups_case(
        generator, {"lr": [0.01, 0.05, 0.1], "momentum": [0.0, 0.5, 0.9], "weight_decay": [0.0, 0.01, 0.3]}
    )


class MyAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                state["m"].mul_(beta1).add_((1 - beta1) * g)
                state["v"].mul_(beta2).add_((1 - beta2) * g * g)
                m_hat = state["m"] / (1 - beta1 ** state["step"])
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))


def _adam_variant(*, correct: bool = True, eps_inside: bool = False, decoupled: bool = False) -> type:
    class Variant(MyAdam):
        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    wd = group["weight_decay"]
                    g = p.grad if decoupled else p.grad + wd * p
                    state = self.state[p]
                    if not state:
                        state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                    state["step"] += 1
                    state["m"] = beta1 * state["m"] + (1 - beta1) * g
                    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
                    t = state["step"]
                    m_hat = state["m"] / (1 - beta1**t) if correct else state["m"]
                    v_hat = state["v"] / (1 - beta2**t) if correct else state["v"]
                    denom = (v_hat + group["eps"]).sqrt() if eps_inside else v_hat.sqrt() + group["eps"]
                    if decoupled:
                        p.mul_(1 - group["lr"] * wd)
                    p.sub_(group["lr"] * m_hat / denom)

    return Variant


def _adam_case(generator: torch.Generator, device: str) -> tuple[Any, ...]:
    return _groups_case(
        generator,
        {
            "lr": [0.01, 0.1],
            "betas": [(0.9, 0.999), (0.5, 0.9), (0.8, 0.99)],
            "eps": [1e-8, 1e-2, 0.1],
            "weight_decay": [0.0, 0.1],
        },
    )


# --- q11 · 03.6 the StepLR schedule in closed form --------------------------------------------------


def _schedule_case(generator: torch.Generator, device: str) -> tuple[float, int, float, int]:
    return (
        _choice(generator, [0.1, 0.5, 1.0, 0.03]),
        _randint(generator, 1, 6),
        _choice(generator, [0.1, 0.5, 0.9]),
        _randint(generator, 2, 25),
    )


def step_lr_schedule(base_lr: float, step_size: int, gamma: float, epochs: int) -> torch.Tensor:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return torch.tensor(rates, dtype=torch.float64)


def _closed(offset: int = 0, restart: bool = False, exponential: bool = False) -> Callable[..., torch.Tensor]:
    def wrong(base_lr, step_size, gamma, epochs):
        e = torch.arange(epochs, dtype=torch.float64)
        power = e if exponential else torch.div(e + offset, step_size, rounding_mode="floor")
        rates = base_lr * gamma**power
        if restart:
            rates[-1] = base_lr
        return rates

    return wrong
