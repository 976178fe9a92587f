"""What a module holds, judged for chapter 03 (q1, q7, q8): registered layers, forward hooks, pruning masks.

:mod:`.nn` declares these exercises; this module holds their inputs, references, judges and
misconceptions. q1 is judged by what the returned module *does* (``_judge_mlp``: are its Linear layers
registered, or hidden in a plain list, and does it compute the reference's output once given the
reference's weights; lazy layers first get the dry run that gives them their sizes); q7 records
activations with forward hooks (``_no_hooks_left`` checks none is left behind); q8 builds global L1
pruning masks. ``_uniform`` and ``_choice`` draw the chapter's random settings (:mod:`.nn` and
:mod:`._nn_optim` use them too).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy
from torch.nn.utils import prune

from .core import Case, Mismatch, call_answer, compare, describe
from .core import randint as _randint
from .core import uniform as _uniform

__all__ = ["build_mlp", "global_prune_masks", "record_activations"]



def _choice(generator: torch.Generator, options: list[Any]) -> Any:
    return options[_randint(generator, 0, len(options))]


# --- q1 · 03.1/03.2 a module whose parameters all register --------------------------------------


def _sizes(generator: torch.Generator, device: str) -> tuple[list[int]]:
    return ([_randint(generator, 1, 7) for _ in range(_randint(generator, 2, 6))],)


def build_mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _unregistered_layers(model: nn.Module) -> int:
    """How many Linear layers a module keeps in plain Python lists, tuples or dicts (invisible to it)."""
    count = 0
    for module in model.modules():
        for name, value in vars(module).items():
            if name in ("_modules", "_parameters", "_buffers"):  # where nn.Module registers them
                continue
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            count += sum(isinstance(item, nn.Linear) for item in items)
    return count


def _call_module(model: nn.Module, x: torch.Tensor) -> Any:
    """The learner's forward, guarded as any answer is (a time limit, its output, global state)."""
    try:
        return call_answer(model, x)
    except Mismatch as mismatch:
        text = str(mismatch).removeprefix("Your function ").removeprefix("Your class ")
        raise Mismatch(f"Calling your module {text}") from None


def _judge_mlp(answer: Callable[..., Any], case: Case) -> None:
    (sizes,) = case
    with torch.random.fork_rng(devices=[]):
        model = call_answer(answer, list(sizes))
        reference = build_mlp(list(sizes))
    if not isinstance(model, nn.Module):
        raise Mismatch(f"Return an nn.Module (for example an nn.Sequential), not {describe(model)}.")
    if any(is_lazy(p) for p in model.parameters()):  # lazy layers (nn.LazyLinear) take their sizes at the first
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # call: the dry run torch prescribes gives them
            _call_module(model, torch.zeros(1, sizes[0]))
    params, expected = list(model.parameters()), list(reference.parameters())
    hidden = _unregistered_layers(model)
    if hidden and len(params) < len(expected):
        raise Mismatch(
            f"{'None' if not params else 'Some'} of your layers are registered: {hidden} Linear layer(s) sit in a "
            "plain Python list (or dict) attribute, which nn.Module does not see, so an optimizer would not train "
            "them. Use nn.Sequential or nn.ModuleList."
        )
    if not params:
        raise Mismatch("Your module has no registered parameters, so an optimizer would train nothing.")
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    if linears != len(sizes) - 1:
        raise Mismatch(
            f"Your module has {linears} Linear layer(s); sizes of length {len(sizes)} need {len(sizes) - 1}, one "
            "per consecutive pair of sizes."
        )
    if len(params) != len(expected) or sum(p.numel() for p in params) != sum(p.numel() for p in expected):
        raise Mismatch(
            f"Your module registers {len(params)} parameter tensors with {sum(p.numel() for p in params)} values; "
            f"a Linear layer (weight and bias) between each pair of the {len(sizes)} sizes is needed: does each "
            "map sizes[i] to sizes[i + 1]?"
        )
    if [p.shape for p in params] != [p.shape for p in expected]:
        raise Mismatch(
            "The parameters' shapes, in registration order, are not each layer's weight (out, in) followed by its "
            "bias, one layer per pair of sizes, in order."
        )
    with torch.no_grad():
        nn.utils.vector_to_parameters(nn.utils.parameters_to_vector(params).detach().clone(), reference.parameters())
    x = torch.randn(5, sizes[0], generator=torch.Generator().manual_seed(len(sizes)))
    out = _call_module(model, x)
    with torch.no_grad():
        want = reference(x)
    if isinstance(out, torch.Tensor) and out.shape == want.shape and len(sizes) > 2:
        linear_only = x
        for layer in reference:
            if isinstance(layer, nn.Linear):
                linear_only = layer(linear_only)
        if torch.allclose(out, linear_only.detach(), atol=1e-6) and not torch.allclose(want, linear_only, atol=1e-6):
            raise Mismatch("There is no ReLU between consecutive Linear layers: without it the layers collapse into "
                           "one.")
    if (
        isinstance(out, torch.Tensor)
        and out.shape == want.shape
        and torch.allclose(out, want.clamp(min=0), atol=1e-6)
        and not torch.allclose(want, want.clamp(min=0), atol=1e-6)
    ):
        raise Mismatch("Your output goes through a ReLU after the last layer, so it is never negative: the output "
                       "must be able to take any real value.")
    compare(out, want, "the output of your module", atol=1e-5, rtol=1e-4)


# --- q7 · 03.5 a hook that records activations -----------------------------------------------------


def _hooked_case(generator: torch.Generator, device: str) -> tuple[nn.Module, torch.Tensor, list[str]]:
    width = _randint(generator, 2, 6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_randint(generator, 0, 2**31))
        model = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(3, width)),
                    ("act1", nn.Tanh()),
                    ("fc2", nn.Linear(width, width)),
                    ("act2", nn.ReLU()),
                    ("out", nn.Linear(width, 2)),
                ]
            )
        ).to(device)
    names = ["fc1", "act1", "fc2", "act2", "out"]
    chosen = [n for n in names if _randint(generator, 0, 2)] or ["fc2"]
    x = torch.randn(_randint(generator, 1, 6), 3, generator=generator).to(device)
    return model, x, chosen


def _nested_case(names: list[str]) -> Callable[[str], Case]:
    """A model with a block inside it: names from named_modules() that are nested ("block.0"), the
    block itself, and "" (the model), which neither getattr nor named_children() find."""

    def case(device: str) -> Case:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            block = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
            model = nn.Sequential(OrderedDict([("stem", nn.Linear(3, 4)), ("block", block),
                                               ("head", nn.Linear(4, 2))])).to(device)
        x = torch.randn(3, 3, generator=torch.Generator().manual_seed(7)).to(device)
        return model, x, list(names)

    return case


def record_activations(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    recorded: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = []
    for name in names:

        def hook(module, args, output, name=name):
            recorded[name] = output.detach()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return recorded


def _no_hooks_left(result: Any, case: Case) -> str | None:
    model = case[0]
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return (
            "The values are right, but your hooks are still registered: they would run on every later call."
        )
    return None


def _recorded_inputs(model, x, names):
    recorded = {}
    modules = dict(model.named_modules())
    handles = [
        modules[n].register_forward_hook(lambda m, a, o, n=n: recorded.__setitem__(n, a[0].detach())) for n in names
    ]
    model(x)
    for handle in handles:
        handle.remove()
    return recorded


# --- q8 · 03.5 global pruning to a target sparsity --------------------------------------------------


def _weights_case(generator: torch.Generator, device: str) -> tuple[list[torch.Tensor], float]:
    weights = []
    for _ in range(_randint(generator, 2, 5)):
        shape = (_randint(generator, 1, 6), _randint(generator, 1, 6))
        weights.append((torch.randn(shape, generator=generator) * _uniform(generator, 0.2, 3.0)).to(device))
    total = sum(w.numel() for w in weights)
    return weights, _randint(generator, 1, total) / total


_DISTINCT = [torch.tensor([[0.5, -1.2], [2.0, -0.1], [0.9, -3.0]]),
             torch.tensor([[0.05, -0.7, 1.5], [-0.3, 2.5, 0.2]])]  # 12 entries, no two of the same |w|


def global_prune_masks(weights: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    holders = []
    for w in weights:
        holder = nn.Module()
        holder.weight = nn.Parameter(w.detach().clone())
        holders.append(holder)
    prune.global_unstructured([(h, "weight") for h in holders], pruning_method=prune.L1Unstructured, amount=amount)
    return [h.weight_mask for h in holders]


def _per_tensor(weights, amount):
    masks = []
    for w in weights:
        k = round(amount * w.numel())
        mask = torch.ones_like(w)
        if k:
            mask.view(-1)[w.abs().flatten().topk(k, largest=False).indices] = 0
        masks.append(mask)
    return masks


def _largest(weights, amount):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(amount * flat.numel())
    keep = torch.ones_like(flat)
    keep[flat.topk(k).indices] = 0
    return [m.view_as(w) for m, w in zip(keep.split([w.numel() for w in weights]), weights, strict=True)]
