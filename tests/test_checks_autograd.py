"""Chapter 02 checks: every reference passes, and typical wrong answers get the right feedback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from grading import accepted, rejected
from torch.func import functional_call, grad, grad_and_value, jacrev, vmap

from torchcourse.checks import Status
from torchcourse.checks import _autograd_func as af
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
    rejected(ch.q2, _backward_without_v, "vector-Jacobian product with v")
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
    rejected(ch.q3, _first_derivative_only, "first derivative", "not the second")
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
    rejected(ch.q4, _unscaled, "too large", "share of the mean")
    rejected(ch.q4, _zeroed_between, "last chunk", "zeroed (or overwritten)")
    rejected(ch.q4, _closed_form, "not w.grad itself")


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
    rejected(ch.q5, _no_backward, "backward() never ran")


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


def test_q8_detaching_afterwards_still_recorded_a_graph() -> None:
    rejected(ch.q8, lambda w, b, x: torch.sigmoid(x @ w + b).detach(), "without recording an autograd graph")


def _inference(w, b, x):
    with torch.inference_mode():
        return torch.sigmoid(x @ w + b).clone()


def test_q8_correct_variants() -> None:
    accepted(ch.q8, _inference)
    accepted(ch.q8, lambda w, b, x: torch.sigmoid(x @ w.detach() + b.detach()))
    accepted(ch.q8, torch.no_grad()(lambda w, b, x: torch.special.expit(torch.addmv(b, x, w))))


def test_q1_autograd_inside_is_ruled_out_and_the_statement_says_so() -> None:
    def by_autograd(w, x, y):
        w = w.detach().requires_grad_()
        ((x @ w - y) ** 2).mean().backward()
        return w.grad

    rejected(ch.q1, by_autograd, "not with autograd")
    assert "Inside the function, autograd is not allowed" in ch.q1.hints[-1]


def test_q8_wrong_answers() -> None:
    rejected(ch.q8, lambda w, b, x: torch.sigmoid(x @ w + b), "graph was recorded", "never comes")
    rejected(ch.q8, lambda w, b, x: (x @ w + b).detach(), "logits", "not probabilities")
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
    rejected(ch.q9, lambda x, lo, hi: _DoubledGradient.apply(x, lo, hi), "incoming gradient, unchanged")
    rejected(ch.q9, lambda x, lo, hi: x.clamp(lo + 0.5, hi), "values differ")


def test_q9_solution_shows_the_class() -> None:
    text = str(ch.q9.solution())
    assert "class ClampST" in text and "ClampST.apply" in text


# --- instructions, upstream gradients and three correct answers ----------------------------------------


class _ClampSTSaved(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return torch.clamp(x, min=lo, max=hi)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.clone(), None, None


class _ClampSTSetup(torch.autograd.Function):
    @staticmethod
    def forward(x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * 1, None, None


class _ClampSTOnes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        return torch.ones_like(grad_output), None, None


def _hooks_loop(x, w1, w2):
    z1 = x @ w1
    a1 = z1.tanh()
    z2 = a1 @ w2
    grads = {}
    handles = [t.register_hook(lambda g, i=i: grads.__setitem__(i, g)) for i, t in enumerate((z1, a1, z2))]
    (z2**2).mean().backward()
    for h in handles:
        h.remove()
    return torch.stack([grads[i].norm() for i in range(3)])


def _hooks_list(x, w1, w2):
    z1 = torch.matmul(x, w1)
    a1 = torch.tanh(z1)
    z2 = torch.matmul(a1, w2)
    norms = []
    hs = [z1.register_hook(lambda g: norms.append(("z1", g.norm()))),
          a1.register_hook(lambda g: norms.append(("a1", g.norm()))),
          z2.register_hook(lambda g: norms.append(("z2", g.norm())))]
    z2.pow(2).mean().backward()
    [h.remove() for h in hs]
    found = dict(norms)
    return torch.stack([found["z1"], found["a1"], found["z2"]])


def _accumulate_weighted(w, x, y, chunks):
    n = x.shape[0]
    for xc, yc in zip(x.split(n // chunks), y.split(n // chunks), strict=True):
        ((xc @ w - yc) ** 2).sum().div(n).backward()
    return w.grad


def _accumulate_autograd_backward(w, x, y, chunks):
    for xc, yc in zip(torch.chunk(x, chunks), torch.chunk(y, chunks), strict=True):
        torch.autograd.backward(torch.nn.functional.mse_loss(xc @ w, yc) / chunks)
    return w.grad


def _second_grad_sum(x):
    x = x.detach().clone().requires_grad_(True)
    (first,) = torch.autograd.grad((x.sin() * x * x).sum(), x, create_graph=True)
    return torch.autograd.grad(first, x, grad_outputs=torch.ones_like(first))[0]




def _weighted_by_grad(x, v):
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(leaf * leaf.sin(), leaf, grad_outputs=v)
    return g


def _second_via_functional(x):
    def f(t):
        return (torch.sin(t) * t**2).sum()

    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    return h


def _fixed_with_grad(x, w):
    y = torch.sigmoid(x @ w).add(1)
    (y * y).sum().backward()
    return w.grad


def _fixed_out_of_place(x, w):
    y = 1 + torch.sigmoid(torch.mm(x, w))
    torch.sum(y**2).backward()
    return w.grad


def _predict_inference(w, b, x):
    with torch.inference_mode():
        return torch.sigmoid(x @ w + b)


# --- q10 · per-sample gradients with torch.func


def _params(model):
    return {name: p.detach() for name, p in model.named_parameters()}


def _per_sample_vmap_grad(model, x, y):
    def loss(params, xi, yi):
        return F.cross_entropy(functional_call(model, params, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return vmap(grad(loss), in_dims=(None, 0, 0))(_params(model), x, y)


def _per_sample_jacrev(model, x, y):
    # sample i's loss depends on sample i alone, so row i of the Jacobian of the losses is its gradient
    return jacrev(lambda p: F.cross_entropy(functional_call(model, p, (x,)), y, reduction="none"))(_params(model))


def _per_sample_grad_and_value(model, x, y):
    def loss(batch, params):  # the samples first, as one tuple, and mapped over its dimension 0
        xi, yi = batch
        return F.cross_entropy(functional_call(model, params, xi[None]), yi[None])

    grads, _losses = vmap(grad_and_value(loss, argnums=1), in_dims=((0, 0), None))((x, y), _params(model))
    return grads


def _per_sample_batched_autograd(model, x, y):  # autograd.grad batched over one-hot grad_outputs, no loop
    params = dict(model.named_parameters())
    losses = F.cross_entropy(model(x), y, reduction="none")
    grads = torch.autograd.grad(losses, list(params.values()), torch.eye(len(x), device=x.device),
                                is_grads_batched=True)
    return dict(zip(params, grads, strict=True))


def _per_sample_loop(model, x, y):
    grads = [_per_sample_vmap_grad(model, x[i:i + 1], y[i:i + 1]) for i in range(len(x))]
    return {name: torch.cat([g[name] for g in grads]) for name in grads[0]}


def _per_sample_backward_loop(model, x, y):
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append({name: p.grad.clone() for name, p in model.named_parameters()})
    return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}


def _per_sample_no_grad_filled(model, x, y):
    result = _per_sample_vmap_grad(model, x, y)
    F.cross_entropy(model(x), y).backward()
    return result


def _weights_only(model, x, y):
    return {name: g for name, g in _per_sample_vmap_grad(model, x, y).items() if name.endswith("weight")}


def _with_buffers(model, x, y):
    return {**_per_sample_vmap_grad(model, x, y),
            **{name: b.expand(len(x), *b.shape) for name, b in model.named_buffers()}}


def _summed_gradient(model, x, y):
    return grad(lambda p: F.cross_entropy(functional_call(model, p, (x,)), y, reduction="sum"))(_params(model))


def _left_in_train_mode(model, x, y):
    result = _per_sample_vmap_grad(model.eval(), x, y)
    model.train()
    return result


def _stepped(model, x, y):
    result = _per_sample_vmap_grad(model, x, y)
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.1 * p)
    return result


def test_q10_wrong_answers() -> None:
    rejected(ch.q10, af._mean_repeated, "same gradient", "mean loss")
    rejected(ch.q10, af._sum_repeated, "same gradient", "summed over the batch")
    rejected(ch.q10, af._share_of_mean, "divided by the batch size")
    rejected(ch.q10, _weights_only, "expected the keys")
    rejected(ch.q10, _with_buffers, "expected the keys")
    rejected(ch.q10, _summed_gradient, "shape")
    rejected(ch.q10, _per_sample_no_grad_filled, ".grad on the model's parameters")
    rejected(ch.q10, _left_in_train_mode, "mode")
    rejected(ch.q10, _stepped, "changed the parameters")


def test_q10_rules_out_a_loop_over_the_samples() -> None:
    rejected(ch.q10, _per_sample_loop, "no Python loop over the samples", "the model ran")
    rejected(ch.q10, _per_sample_backward_loop, ".grad on the model's parameters")


def test_q10_accepts_batched_autograd_grad() -> None:
    accepted(ch.q10, _per_sample_batched_autograd)


def test_q10_solution_shown_runs_where_only_torch_is_imported() -> None:
    namespace = {"torch": torch}
    exec(ch.q10.solution_code, namespace)  # noqa: S102 - the course's own solution text
    accepted(ch.q10, namespace["per_sample_grads"])


def test_q10_blank_is_not_attempted() -> None:
    assert ch.q10.grade(lambda model, x, y: ...).status is Status.NOT_ATTEMPTED



CORRECT = {
    "q1": [lambda w, x, y: 2 / len(x) * x.T @ (x @ w - y), lambda w, x, y: (2 * (x @ w - y) @ x) / x.shape[0],
           lambda w, x, y: torch.mean(2 * (x @ w - y)[:, None] * x, dim=0)],
    "q2": [lambda x, v: v * (torch.sin(x) + x * torch.cos(x)), ch.weighted_grad, _weighted_by_grad],
    "q3": [ch.second_derivative, _second_grad_sum,
           _second_via_functional],
    "q4": [ch.accumulated_grad, _accumulate_weighted, _accumulate_autograd_backward],
    "q5": [ch.grad_norms, _hooks_loop, _hooks_list],
    "q6": [lambda w: w.detach().clone(), lambda w: w.clone().detach(), lambda w: torch.tensor(w.tolist())],
    "q7": [ch.fixed_step, lambda x, w: _fixed_with_grad(x, w), lambda x, w: _fixed_out_of_place(x, w)],
    "q8": [ch.predict, lambda w, b, x: _predict_inference(w, b, x), lambda w, b, x: (x @ w.detach()
                                                                                            + b.detach()).sigmoid()],
    "q9": [ch.clamp_st, lambda x, lo, hi: _ClampSTSaved.apply(x, lo, hi),
           lambda x, lo, hi: _ClampSTSetup.apply(x, lo, hi)],
    "q10": [_per_sample_vmap_grad, _per_sample_jacrev, _per_sample_grad_and_value],
}


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    outcome = ch.chapter.exercises[qid].grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message


def test_q1_rules_out_autograd():
    def with_autograd(w, x, y):
        w = w.detach().requires_grad_()
        ((x @ w - y) ** 2).mean().backward()
        return w.grad

    rejected(ch.q1, with_autograd, "not with autograd")


def test_q3_demands_autograd_grad_twice():
    rejected(ch.q3, lambda x: 2 * torch.sin(x) + 4 * x * torch.cos(x) - x**2 * torch.sin(x),
             "torch.autograd.grad` twice", "never called it")


def test_q4_demands_one_backward_per_chunk():
    def one_backward(w, x, y, chunks):
        ((x @ w - y) ** 2).mean().backward()
        return w.grad

    rejected(ch.q4, one_backward, "once per micro-batch", "1 times")


def test_q5_demands_hooks():
    def without_hooks(x, w1, w2):
        z1 = x @ w1
        a1 = torch.tanh(z1)
        z2 = a1 @ w2
        for t in (z1, a1, z2):
            t.retain_grad()
        z2.pow(2).mean().backward()
        return torch.stack([z1.grad.norm(), a1.grad.norm(), z2.grad.norm()])

    rejected(ch.q5, without_hooks, "register_hook")


def test_q9_a_backward_that_ignores_grad_output_is_caught():
    rejected(ch.q9, lambda x, lo, hi: _ClampSTOnes.apply(x, lo, hi), "grad_output")
