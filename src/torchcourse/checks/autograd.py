"""Exercises of chapter 02 · Autograd (``exercises/02_autograd.ipynb``)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ._autograd_func import MISCONCEPTIONS as _PER_SAMPLE_MISCONCEPTIONS
from ._autograd_func import SOLUTION as _PER_SAMPLE_SOLUTION
from ._autograd_func import model_left_alone, one_sample_case, per_sample_case, per_sample_grads
from .core import NO_GRAPH, Chapter, Uses
from .core import randint as _randint

chapter = Chapter("02_autograd", "Autograd")


def _randn(
    generator: torch.Generator, *shape: int, device: str, grad: bool = False
) -> torch.Tensor:
    return torch.randn(*shape, generator=generator).to(device).requires_grad_(grad)


# --- q1 · 02.2 a gradient derived by hand ------------------------------------------------------


def _regression(generator: torch.Generator, device: str) -> tuple[torch.Tensor, ...]:
    n, d = _randint(generator, 3, 9), _randint(generator, 2, 5)
    x = _randn(generator, n, d, device=device)
    return _randn(generator, d, device=device), x, _randn(generator, n, device=device)


def mse_grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 * x.T @ (x @ w - y) / x.shape[0]


q1 = chapter.exercise(
    "q1",
    "The gradient of a mean squared error, by hand",
    points=1,
    reference=mse_grad,
    inputs=_regression,
    atol=1e-5,
    rtol=1e-4,
    forbids=[Uses("torch.autograd.grad", "torch.Tensor.backward", "torch.autograd.backward",
                  says="compute it from your formula, not with autograd")],
    cases=[(torch.tensor([0.5]), torch.tensor([[2.0]]), torch.tensor([1.0]))],  # n = d = 1
    hints=[
        "Write the loss with the residual r = x @ w - y: L = (r · r) / n. What is dL/dr?",
        "dL/dr = 2 r / n, and by the chain rule dL/dw = x.T @ (dL/dr).",
        "To test your formula, outside the function you hand in: w.requires_grad_(), compute L, call "
        "L.backward() and compare w.grad with your result. Inside the function, autograd is not allowed.",
    ],
    misconceptions=[
        (
            lambda w, x, y: x.T @ (x @ w - y) / x.shape[0],
            "Off by a factor of 2: the derivative of r² is 2r.",
        ),
        (
            lambda w, x, y: 2 * x.T @ (x @ w - y),
            "Too large by a factor of n: the loss is a mean, so its gradient is divided by the "
            "batch size.",
        ),
        (
            lambda w, x, y: 2 * x.T @ (y - x @ w) / x.shape[0],
            "The sign is flipped: that is the direction of steepest descent, not the gradient.",
        ),
    ],
)


# --- q2 · 02.2 backward of a non-scalar output: a vector-Jacobian product ------------------------


def _vector_and_weights(
    generator: torch.Generator, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    n = _randint(generator, 2, 8)
    return _randn(generator, n, device=device), _randn(generator, n, device=device)


def weighted_grad(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    y = x * torch.sin(x)
    y.backward(gradient=v)
    return x.grad


q2 = chapter.exercise(
    "q2",
    "backward with a gradient argument",
    points=1,
    reference=weighted_grad,
    inputs=_vector_and_weights,
    atol=1e-5,
    rtol=1e-4,
    cases=[(torch.tensor([0.0, 1.5]), torch.tensor([3.0, -2.0]))],
    hints=[
        "y = x * sin(x) is a vector, so y.backward() needs to be told how to weigh each element.",
        "Make a leaf that requires grad (x.detach().requires_grad_()), then call "
        "y.backward(gradient=v).",
        "The answer is v * d(y_i)/d(x_i): use the product rule to check it.",
    ],
    misconceptions=[
        (
            lambda x, v: torch.sin(x) + x * torch.cos(x),
            "This is the gradient of y.sum(), i.e. backward with a gradient of ones, not the vector-Jacobian "
            "product with v.",
        ),
        (
            lambda x, v: v * x * torch.cos(x),
            "Only half of the product rule: your derivative of x sin x is missing one of its two terms.",
        ),
    ],
)


# --- q3 · 02.2 second derivatives with create_graph


def _points(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    return (_randn(generator, _randint(generator, 1, 8), device=device),)


def second_derivative(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    y = torch.sin(x) * x**2
    (dy,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy.sum(), x)
    return d2y


q3 = chapter.exercise(
    "q3",
    "A second derivative with create_graph",
    points=2,
    reference=second_derivative,
    inputs=_points,
    atol=1e-4,
    rtol=1e-4,
    requires=[Uses("torch.autograd.grad", count=2, says="use `torch.autograd.grad` twice")],
    cases=[(torch.tensor([0.0]),)],
    hints=[
        "Take the first derivative with torch.autograd.grad(y.sum(), x, create_graph=True).",
        "create_graph=True records the first derivative as a graph, so it can be differentiated "
        "again.",
        "Differentiate the first derivative's sum with respect to x a second time.",
    ],
    misconceptions=[
        (
            lambda x: 2 * x * torch.sin(x) + x**2 * torch.cos(x),
            "This is the first derivative, not the second.",
        ),
        (
            lambda x: 2 * torch.sin(x) + 4 * x * torch.cos(x) + x**2 * torch.sin(x),
            "The last term has the wrong sign: the derivative of cos x is negative (-sin x).",
        ),
        (
            lambda x: 2 * torch.sin(x) + 2 * x * torch.cos(x) - x**2 * torch.sin(x),
            "The product rule gives 2x cos x twice, once from each term of the first derivative.",
        ),
    ],
)


# --- q4 · 02.2 gradient accumulation over micro-batches


def _batch_and_chunks(generator: torch.Generator, device: str) -> tuple[Any, ...]:
    chunks = _randint(generator, 2, 5)
    n, d = chunks * _randint(generator, 1, 4), _randint(generator, 2, 5)
    w = _randn(generator, d, device=device, grad=True)
    return w, _randn(generator, n, d, device=device), _randn(generator, n, device=device), chunks


def _one_row_chunks(device: str) -> tuple[torch.Tensor, ...]:
    w = torch.tensor([0.5, -1.0], device=device, requires_grad=True)
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], device=device)
    return w, x, torch.tensor([1.0, 0.0, -2.0], device=device), 3


def accumulated_grad(
    w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, chunks: int
) -> torch.Tensor:
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks), strict=True):
        loss = ((xc @ w - yc) ** 2).mean() / chunks
        loss.backward()
    return w.grad


def _full_batch_grad(
    w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, chunks: int
) -> torch.Tensor:
    return 2 * x.T @ (x @ w - y) / x.shape[0]


def _grad_through_backward(result: Any, case: tuple[Any, ...]) -> str | None:
    w = case[0]
    if w.grad is None or not torch.equal(w.grad.detach(), result.detach()):
        return (
            "Your result is not w.grad itself after the last backward(): the exercise is about letting it "
            "accumulate."
        )
    return None


q4 = chapter.exercise(
    "q4",
    "Gradient accumulation over micro-batches",
    points=2,
    reference=accumulated_grad,
    inputs=_batch_and_chunks,
    atol=1e-5,
    rtol=1e-4,
    properties=[_grad_through_backward],
    sets_grad=True,  # its backward() fills the .grad of the inputs
    requires=[Uses("torch.Tensor.backward", "torch.autograd.backward", count=lambda w, x, y, chunks: chunks,
                   says="call backward() once per micro-batch")],
    cases=[_one_row_chunks],  # micro-batches of a single row
    hints=[
        "Split x and y with .chunk(chunks) and call backward() once per chunk without zeroing "
        "w.grad.",
        "Each backward adds to w.grad. Each chunk's loss is a mean over a chunk, which is "
        "`chunks` times "
        "smaller than the batch: scale it so the sum of the chunk gradients is the full-batch "
        "gradient.",
    ],
    misconceptions=[
        (
            lambda w, x, y, k: _full_batch_grad(w, x, y, k) * k,
            "The sum of the chunk gradients is `chunks` times too large: each chunk's loss is a full mean, not its "
            "share of the mean over the whole batch.",
        ),
        (
            lambda w, x, y, k: (
                2 * x.chunk(k)[-1].T @ (x.chunk(k)[-1] @ w - y.chunk(k)[-1]) / x.shape[0]
            ),
            "Only the last chunk's gradient is left: w.grad was zeroed (or overwritten) between chunks, so the "
            "earlier chunks' gradients were lost.",
        ),
    ],
)


# --- q5 · 02.3 hooks that record the gradients of intermediate tensors


def _two_layers(generator: torch.Generator, device: str) -> tuple[torch.Tensor, ...]:
    n, d, h, k = (_randint(generator, 2, 6) for _ in range(4))
    x = _randn(generator, n, d, device=device)
    return (
        x,
        _randn(generator, d, h, device=device, grad=True),
        _randn(generator, h, k, device=device, grad=True),
    )


def grad_norms(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    norms = {}
    z1 = x @ w1
    a1 = torch.tanh(z1)
    z2 = a1 @ w2
    handles = [
        t.register_hook(lambda grad, name=name: norms.__setitem__(name, grad.norm()))
        for name, t in (("z1", z1), ("a1", a1), ("z2", z2))
    ]
    z2.pow(2).mean().backward()
    for handle in handles:
        handle.remove()
    return torch.stack([norms["z1"], norms["a1"], norms["z2"]])


def _forward_norms(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    z1 = x @ w1
    a1 = torch.tanh(z1)
    return torch.stack([z1.norm(), a1.norm(), (a1 @ w2).norm()]).detach()


def _summed_loss_norms(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    z1 = x @ w1
    a1 = torch.tanh(z1)
    z2 = a1 @ w2
    grads = torch.autograd.grad(z2.pow(2).sum(), (z1, a1, z2))
    return torch.stack([g.norm() for g in grads])


def _called_backward(result: Any, case: tuple[Any, ...]) -> str | None:
    if case[1].grad is None or case[2].grad is None:
        return (
            "w1.grad and w2.grad are empty: backward() never ran on the loss, so the hooks never ran either."
        )
    return None


q5 = chapter.exercise(
    "q5",
    "Record gradient norms with tensor hooks",
    points=2,
    reference=grad_norms,
    inputs=_two_layers,
    atol=1e-5,
    rtol=1e-4,
    properties=[_called_backward],
    sets_grad=True,  # its backward() fills the .grad of the inputs
    requires=[Uses("torch.Tensor.register_hook", says="record the gradients with tensor hooks (register_hook)")],
    hints=[
        "Build z1 = x @ w1, a1 = tanh(z1), z2 = a1 @ w2 and the loss z2.pow(2).mean().",
        "Before backward(), call t.register_hook(fn) on z1, a1 and z2; fn(grad) receives dloss/dt.",
        "Store grad.norm() in a dict from the hook, remove the handles, return the three norms "
        "stacked.",
    ],
    misconceptions=[
        (
            _forward_norms,
            "These are the norms of the activations themselves, not of their gradients.",
        ),
        (
            _summed_loss_norms,
            "The loss is a mean: with .sum() every gradient is too large by the number of "
            "elements of z2.",
        ),
        (
            lambda x, w1, w2: grad_norms(x, w1, w2).flip(0),
            "The order is reversed: your norms come in the order backward() reaches them (z2 first), not z1, a1, z2.",
        ),
    ],
)


# --- q6 · 02.3 a safe snapshot: detach and clone -------------------------------------------------


def _weights(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    return (
        _randn(
            generator,
            _randint(generator, 1, 5),
            _randint(generator, 1, 5),
            device=device,
            grad=True,
        ),
    )


def snapshot(w: torch.Tensor) -> torch.Tensor:
    return w.detach().clone()


def _out_of_graph(result: Any, case: tuple[Any, ...]) -> str | None:
    if isinstance(result, torch.Tensor) and result.requires_grad:
        return (
            "The values are right, but your snapshot is still part of the autograd graph (requires_grad is True)."
        )
    return None


q6 = chapter.exercise(
    "q6",
    "A snapshot of a weight that later updates cannot change",
    points=1,
    reference=snapshot,
    inputs=_weights,
    shares_memory=False,
    properties=[_out_of_graph],
    hints=[
        "`.detach()` and `.data` leave the graph but share memory with the weight.",
        "`.clone()` copies the memory but stays in the graph (its grad_fn is CloneBackward0).",
        "You need both.",
    ],
)


# --- q7 · 02.3 fix the in-place error


def _layer(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, d, k = (_randint(generator, 2, 6) for _ in range(3))
    return _randn(generator, n, d, device=device), _randn(generator, d, k, device=device, grad=True)


def fixed_step(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.sigmoid(x @ w)
    y = y + 1
    y.pow(2).sum().backward()
    return w.grad


def _through_data(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.sigmoid(x @ w)
    y.data.add_(1)
    y.pow(2).sum().backward()
    return w.grad


def _without_shift(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.sigmoid(x @ w)
    y.pow(2).sum().backward()
    return w.grad


q7 = chapter.exercise(
    "q7",
    "Fix a step that breaks with the in-place error",
    points=2,
    reference=fixed_step,
    inputs=_layer,
    atol=1e-5,
    rtol=1e-4,
    sets_grad=True,  # its backward() fills the .grad of the inputs
    hints=[
        "Run the broken version and read the error: sigmoid saved its output for backward, "
        "and `y += 1` changed that output in place (its _version went up).",
        "Write the shift out of place, `y = y + 1`, so sigmoid's saved output stays intact.",
    ],
    misconceptions=[
        (
            _through_data,
            "Changing y through .data hides the change from autograd: sigmoid's backward then uses the shifted "
            "output, so the gradient is silently wrong.",
        ),
        (
            _without_shift,
            "Your loss leaves out the shift: it uses y, not y + 1.",
        ),
    ],
)


# --- q8 · 02.4 predictions without a graph


def _classifier(generator: torch.Generator, device: str) -> tuple[torch.Tensor, ...]:
    n, d = _randint(generator, 2, 8), _randint(generator, 2, 5)
    w, b = (
        _randn(generator, d, device=device, grad=True),
        _randn(generator, (), device=device, grad=True),
    )
    return w, b, _randn(generator, n, d, device=device)


def predict(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(x @ w + b)


def _no_graph(result: Any, case: tuple[Any, ...]) -> str | None:
    if isinstance(result, torch.Tensor) and (result.requires_grad or result.grad_fn is not None):
        return (
            "The values are right, but a graph was recorded (requires_grad is True): autograd kept every "
            "intermediate result for a backward() that never comes."
        )
    return None


q8 = chapter.exercise(
    "q8",
    "Predictions that record no graph",
    points=1,
    reference=predict,
    inputs=_classifier,
    atol=1e-6,
    rtol=1e-5,
    properties=[_no_graph],
    forbids=[Uses(NO_GRAPH, says="compute it without recording an autograd graph")],
    hints=[
        "The parameters require grad, so any operation on them records a graph by default.",
        "Wrap the computation in `with torch.no_grad():` (or torch.inference_mode()).",
    ],
    misconceptions=[
        (
            lambda w, b, x: x @ w + b,
            "These are the logits, not probabilities.",
        ),
    ],
)


# --- q9 · 02.5 a custom Function: clamp with a straight-through gradient


def _clamp_case(generator: torch.Generator, device: str) -> tuple[torch.Tensor, float, float]:
    x = (_randn(generator, _randint(generator, 4, 12), device=device) * 2).requires_grad_()
    lo = float(torch.empty(()).uniform_(-1.5, -0.5, generator=generator))
    return x, lo, lo + float(torch.empty(()).uniform_(1.0, 2.0, generator=generator))


class ClampST(torch.autograd.Function):
    """clamp(x, lo, hi) forward; the incoming gradient passes through unchanged backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad_output, None, None


def clamp_st(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return ClampST.apply(x, lo, hi)


def _straight_through(result: Any, case: tuple[Any, ...]) -> str | None:
    """The gradient must be grad_output passed through, and gradcheck must pass inside (lo, hi)."""
    x, lo, hi = case
    function = getattr(result.grad_fn, "_forward_cls", None)
    if function is None:
        return (
            "Your result was not made by a custom Function (a torch.autograd.Function), so its backward is not yours."
        )
    # an upstream gradient other than ones: a backward that ignores grad_output shows here
    upstream = torch.linspace(-2.0, 3.0, x.numel(), dtype=x.dtype, device=x.device).view_as(x)
    try:
        (grad,) = torch.autograd.grad(result, x, grad_outputs=upstream, allow_unused=True)
    except Exception as error:  # a broken backward is feedback, not a crash
        return f"Your backward raised {type(error).__name__}: {error}"
    if grad is None:
        return "Your backward returned None for x, so no gradient reaches it."
    if grad.shape == x.shape and torch.equal(grad, torch.ones_like(x)):
        return ("The gradient is all ones whatever the incoming gradient: your backward ignores grad_output.")
    if grad.shape != x.shape or not torch.equal(grad, upstream):
        inside = (x > lo) & (x < hi)
        if grad.shape == x.shape and bool((grad[inside] == upstream[inside]).all()) and bool(
            (grad[~inside] == 0).all()
        ):
            return (
                "The values are right, but the gradient is zero where x was clamped: that is "
                "torch.clamp's own gradient. A straight-through estimator passes grad_output "
                "through unchanged everywhere."
            )
        return "The gradient is wrong: it is not the incoming gradient, unchanged."
    inside_points = torch.linspace(lo + 0.1, hi - 0.1, 5, dtype=torch.float64, device=x.device)
    try:
        ok = torch.autograd.gradcheck(
            lambda t: function.apply(t, lo, hi),
            (inside_points.requires_grad_(),),
            raise_exception=False,
        )
    except Exception as error:  # a backward that fails in float64 is a wrong answer
        return f"gradcheck in float64 raised {type(error).__name__}: {error}"
    return (
        None if ok else "gradcheck fails inside (lo, hi), where the gradient should be exactly 1."
    )


q9 = chapter.exercise(
    "q9",
    "A custom Function: clamp with a straight-through gradient",
    points=3,
    reference=clamp_st,
    inputs=_clamp_case,
    properties=[_straight_through],
    solution_code=inspect.getsource(ClampST) + "\n\n" + inspect.getsource(clamp_st),
    hints=[
        "forward(ctx, x, lo, hi) returns x.clamp(lo, hi); nothing needs saving for backward.",
        "backward returns one gradient per input of forward: grad_output for x, None for lo and "
        "hi.",
        "clamp_st(x, lo, hi) is ClampST.apply(x, lo, hi): never call forward directly.",
    ],
)


# --- q10 · 02.6 per-sample gradients with torch.func (cases, reference and wrong answers: _autograd_func.py)

q10 = chapter.exercise(
    "q10",
    "Per-sample gradients with torch.func",
    points=2,
    reference=per_sample_grads,
    inputs=per_sample_case,  # trial 0 a Linear, 1 an MLP with a bias-free layer, 2 a BatchNorm model in eval mode
    atol=1e-5,
    rtol=1e-4,
    time_limit=10,
    properties=[model_left_alone],  # no .grad filled; no Python loop over the samples (forward calls counted)
    cases=[one_sample_case],  # a batch of one sample
    hints=[
        "`functional_call(model, params, (inputs,))` runs the model with the parameters you pass in a dict, so a "
        "function of those parameters can be differentiated with `torch.func.grad`.",
        "Write the loss of one sample (x of shape (d,), y a 0-d class index) as a function of the parameters: the "
        "model wants a batch, so give it one of size 1.",
        "`vmap` maps that gradient function over the batch dimension of x and y, with in_dims=None for the "
        "parameters, which all samples share.",
    ],
    misconceptions=_PER_SAMPLE_MISCONCEPTIONS,
    solution_code=_PER_SAMPLE_SOLUTION,
)
