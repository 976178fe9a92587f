"""Exercise 02 q10 (lesson 02.6): per-sample gradients with torch.func; its cases, reference and wrong answers.

The declaration stays in :mod:`.autograd`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from .core import randint as _randint

# What the statement allows, and the hidden case that covers it:
#   any nn.Module mapping (batch, d) to logits (batch, k)  -> trial 0 a Linear, trial 1 an MLP whose last layer has
#                                                              no bias, trial 2 an MLP with a BatchNorm1d in eval mode
#                                                              (buffers, and a model that is not in training mode)
#   any batch size                                          -> random 3 to 7, and the fixed case of one sample
#   the model left as it was                                 -> .grad checked below; training flag and parameters by
#                                                              the framework (its inputs are compared)
#   no Python loop over the samples                          -> the model's forward calls are counted (a hook)


def _count_forward(module: nn.Module, args: tuple[Any, ...]) -> None:
    """A forward pre-hook on the root: counts the model's own forward calls (per copy: it lives in the module)."""
    module.__dict__["_torchcourse_forwards"] = module.__dict__.get("_torchcourse_forwards", 0) + 1


def _model(kind: int, d: int, h: int, k: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # module initialisation draws from the global generator
        torch.manual_seed(seed)
        if kind == 0:
            model: nn.Module = nn.Linear(d, k)
        elif kind == 1:
            model = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k, bias=False))
        else:
            norm = nn.BatchNorm1d(h)
            with torch.no_grad():
                norm.running_mean.uniform_(-1.0, 1.0)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)
            model = nn.Sequential(nn.Linear(d, h), norm, nn.ReLU(), nn.Linear(h, k)).eval()
    model.register_forward_pre_hook(_count_forward)
    return model


def _batch(generator: torch.Generator, n: int, d: int, k: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, d, generator=generator).to(device)
    return x, torch.randint(0, k, (n,), generator=generator).to(device)


def per_sample_case(generator: torch.Generator, device: str, trial: int) -> tuple[Any, ...]:
    kind = trial % 3
    d, h, k = _randint(generator, 2, 5), _randint(generator, 3, 6), _randint(generator, 2, 5)
    model = _model(kind, d, h, k, _randint(generator, 0, 2**31 - 1)).to(device)
    return (model, *_batch(generator, _randint(generator, 3, 7), d, k, device))


def one_sample_case(device: str) -> tuple[Any, ...]:
    model = _model(1, 3, 4, 3, seed=3).to(device)
    return model, torch.tensor([[0.5, -1.0, 2.0]], device=device), torch.tensor([2], device=device)


# No annotations: its source is the solution shown (SOLUTION), which runs where only torch is imported.
def per_sample_grads(model, x, y):
    params = {name: p.detach() for name, p in model.named_parameters()}

    def sample_loss(params, xi, yi):  # one sample: xi of shape (d,), yi a 0-d class index
        logits = functional_call(model, params, (xi.unsqueeze(0),))  # a batch of one
        return F.cross_entropy(logits, yi.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)


def _batch_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str) -> dict[str, torch.Tensor]:
    params = {name: p.detach() for name, p in model.named_parameters()}
    grads = grad(lambda p: F.cross_entropy(functional_call(model, p, (x,)), y, reduction=reduction))(params)
    return {name: g.expand(len(x), *g.shape) for name, g in grads.items()}


def _mean_repeated(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    return _batch_grads(model, x, y, "mean")


def _sum_repeated(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    return _batch_grads(model, x, y, "sum")


def _share_of_mean(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: g / len(x) for name, g in per_sample_grads(model, x, y).items()}


def model_left_alone(result: Any, case: tuple[Any, ...]) -> str | None:
    """No .grad left on the parameters, and no Python loop over the samples (the forward calls are counted)."""
    model, x = case[0], case[1]
    filled = [name for name, p in model.named_parameters() if p.grad is not None]
    if filled:
        return (f"Your function left a .grad on the model's parameters ({', '.join(filled)}): backward() ran on the "
                "caller's model. The per-sample gradients must come without touching it.")
    forwards = model.__dict__.get("_torchcourse_forwards", 0)
    if len(x) >= 3 and forwards >= len(x):
        return (f"The values are right, but the statement says no Python loop over the samples: the model ran "
                f"{forwards} times for a batch of {len(x)}.")
    return None


MISCONCEPTIONS = [
    (_mean_repeated, "Every sample got the same gradient, that of the batch's mean loss: these are not per-sample "
                     "gradients."),
    (_sum_repeated, "Every sample got the same gradient, that of the loss summed over the batch: these are not "
                    "per-sample gradients."),
    (_share_of_mean, "Every gradient is the right one divided by the batch size: each sample's loss is its own "
                     "cross-entropy, not its share of the batch mean."),
]

# the solution shown, as the solutions notebook writes it: the imports, then the reference's own source
SOLUTION = """import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


""" + inspect.getsource(per_sample_grads)
