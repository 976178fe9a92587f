"""Chapter 02 checks: every reference passes, and typical wrong answers get the right feedback."""

from __future__ import annotations

import pytest
import torch
from grading import rejected

from torchcourse.checks import Status
from torchcourse.checks import autograd as ch


@pytest.mark.parametrize("exercise", list(ch.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_reference_passes(exercise) -> None:
    outcome = exercise.grade(exercise.reference)
    assert outcome.status is Status.CORRECT, outcome.message
    assert outcome.points == exercise.points


def test_chapter_has_at_least_eight_exercises_in_order() -> None:
    ids = list(ch.chapter.exercises)
    assert len(ids) >= 8 and ids == [f"q{i}" for i in range(1, len(ids) + 1)]
    assert ch.chapter.name == "02_autograd"


def test_placeholder_is_not_attempted() -> None:
    assert ch.q1.grade(lambda w, x, y: ...).status is Status.NOT_ATTEMPTED


# --- q1 · gradient by hand


def test_q1_wrong_answers() -> None:
    rejected(ch.q1, lambda w, x, y: x.T @ (x @ w - y) / x.shape[0], "factor of 2")
    rejected(ch.q1, lambda w, x, y: 2 * x.T @ (x @ w - y), "factor of n", "mean")
    rejected(ch.q1, lambda w, x, y: 2 * x.T @ (y - x @ w) / x.shape[0], "sign is flipped")
    rejected(ch.q1, lambda w, x, y: 2 * x @ w, "wrong shape")


# --- q2 · backward with a gradient


def _backward_without_v(x, v):
    x = x.detach().requires_grad_()
    (x * torch.sin(x)).sum().backward()
    return x.grad


def _forgot_return(x, v):
    x = x.detach().requires_grad_()
    (x * torch.sin(x)).backward(gradient=v)


def test_q2_wrong_answers() -> None:
    rejected(ch.q2, _backward_without_v, "gradient=v")
    rejected(ch.q2, lambda x, v: v * x * torch.cos(x), "product rule")
    rejected(ch.q2, lambda x, v: (x * torch.sin(x)).backward(gradient=v), "does not require grad")
    rejected(ch.q2, _forgot_return, "returned None")
    rejected(ch.q2, lambda x, v: (v * (torch.sin(x) + x * torch.cos(x))).tolist(), "list")


# --- q3 · second derivative


def _first_derivative_only(x):
    x = x.detach().requires_grad_()
    return torch.autograd.grad((torch.sin(x) * x**2).sum(), x)[0]


def _without_create_graph(x):
    x = x.detach().requires_grad_()
    (dy,) = torch.autograd.grad((torch.sin(x) * x**2).sum(), x)
    return torch.autograd.grad(dy.sum(), x)[0]


def test_q3_wrong_answers() -> None:
    rejected(ch.q3, _first_derivative_only, "first derivative", "create_graph")
    rejected(ch.q3, lambda x: 2 * torch.sin(x) + 4 * x * torch.cos(x) + x**2 * torch.sin(x), "wrong sign")
    rejected(ch.q3, lambda x: 2 * torch.sin(x) + 2 * x * torch.cos(x) - x**2 * torch.sin(x), "twice")
    rejected(ch.q3, _without_create_graph, "raised RuntimeError", "does not require grad")


# --- q4 · accumulation


def _unscaled(w, x, y, chunks):
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks), strict=True):
        ((xc @ w - yc) ** 2).mean().backward()
    return w.grad


def _zeroed_between(w, x, y, chunks):
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks), strict=True):
        w.grad = None
        (((xc @ w - yc) ** 2).mean() / chunks).backward()
    return w.grad


def _closed_form(w, x, y, chunks):
    return (2 * x.T @ (x @ w - y) / x.shape[0]).detach()


def test_q4_wrong_answers() -> None:
    rejected(ch.q4, _unscaled, "too large", "divide")
    rejected(ch.q4, _zeroed_between, "last chunk", "do not zero")
    rejected(ch.q4, _closed_form, "Return w.grad")


# --- q5 · hooks


def _reversed_order(x, w1, w2):
    return ch.grad_norms(x, w1, w2).flip(0)


def _no_backward(x, w1, w2):
    z1 = x @ w1
    a1 = torch.tanh(z1)
    z2 = a1 @ w2
    grads = torch.autograd.grad(z2.pow(2).mean(), (z1, a1, z2))
    return torch.stack([g.norm() for g in grads])


def test_q5_wrong_answers() -> None:
    rejected(ch.q5, ch._forward_norms, "norms of the activations")
    rejected(ch.q5, ch._summed_loss_norms, "loss is a mean")
    rejected(ch.q5, _reversed_order, "order is reversed")
    rejected(ch.q5, _no_backward, "Call backward()")


# --- q6 · snapshot


def test_q6_wrong_answers() -> None:
    rejected(ch.q6, lambda w: w.detach(), "shares memory")
    rejected(ch.q6, lambda w: w.data, "shares memory")
    rejected(ch.q6, lambda w: w.clone(), "still part of the autograd graph")
    rejected(ch.q6, lambda w: w.detach().clone().T, "wrong shape")


# --- q7 · in-place fix


def _broken_step(x, w):
    y = torch.sigmoid(x @ w)
    y += 1
    y.pow(2).sum().backward()
    return w.grad


def test_q7_wrong_answers() -> None:
    rejected(ch.q7, _broken_step, "raised RuntimeError", "inplace operation")
    rejected(ch.q7, ch._through_data, ".data", "silently wrong")
    rejected(ch.q7, ch._without_shift, "y + 1")


# --- q8 · no graph


def test_q8_wrong_answers() -> None:
    rejected(ch.q8, lambda w, b, x: torch.sigmoid(x @ w + b), "graph was recorded", "no_grad")
    rejected(ch.q8, lambda w, b, x: (x @ w + b).detach(), "logits", "sigmoid")
    rejected(ch.q8, lambda w, b, x: torch.sigmoid(x @ w + b).tolist(), "list")


# --- q9 · custom Function


class _NoNones(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class _TrueClampGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ((x > ctx.lo) & (x < ctx.hi)), None, None


class _DoubledGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        return 2 * grad_output, None, None


def test_q9_wrong_answers() -> None:
    rejected(ch.q9, lambda x, lo, hi: x.clamp(lo, hi), "custom Function")
    rejected(ch.q9, lambda x, lo, hi: _NoNones.apply(x, lo, hi), "incorrect number of gradients")
    rejected(ch.q9, lambda x, lo, hi: _TrueClampGradient.apply(x, lo, hi), "zero where x was clamped")
    rejected(ch.q9, lambda x, lo, hi: _DoubledGradient.apply(x, lo, hi), "grad_output unchanged")
    rejected(ch.q9, lambda x, lo, hi: x.clamp(lo + 0.5, hi), "values differ")


def test_q9_solution_shows_the_class() -> None:
    text = str(ch.q9.solution())
    assert "class ClampST" in text and "ClampST.apply" in text
