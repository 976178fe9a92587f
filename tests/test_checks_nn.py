"""Chapter 03 checks: every reference passes, other correct answers pass, typical wrong answers are told why."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from grading import accepted, rejected
from torch import nn
from torch.nn.utils import prune

from torchcourse.checks import nn as ch
from torchcourse.checks.core import Status


@pytest.mark.parametrize("exercise", list(ch.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_reference_passes(exercise) -> None:
    accepted(exercise, exercise.reference)


def test_chapter_has_at_least_ten_exercises_in_order() -> None:
    ids = list(ch.chapter.exercises)
    assert len(ids) >= 10 and ids == [f"q{i}" for i in range(1, len(ids) + 1)]
    assert ch.chapter.name == "03_nn"


def _cases(exercise):
    return [exercise.inputs(torch.Generator().manual_seed(exercise.seed(t)), "cpu") for t in range(exercise.trials)]


# --- q1 · a module whose parameters register


class _ListMLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == 0 else layer(torch.relu(x))
        return x


def _sequential_with(sizes, last_relu=False, relu=True):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i and relu:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    if last_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _ordered_dict_mlp(sizes):
    from collections import OrderedDict

    parts = OrderedDict()
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            parts[f"act{i}"] = nn.ReLU()
        parts[f"fc{i}"] = nn.Linear(a, b)
    return nn.Sequential(parts)


class _MLPAddModule(nn.Module):
    """Layers registered one by one with add_module, found again with getattr."""

    def __init__(self, sizes):
        super().__init__()
        self.depth = len(sizes) - 1
        for i in range(self.depth):
            self.add_module(f"fc{i}", nn.Linear(sizes[i], sizes[i + 1]))

    def forward(self, x):
        for i in range(self.depth):
            x = getattr(self, f"fc{i}")(x if i == 0 else x.clamp(min=0))
        return x


def _lazy_mlp(sizes):
    layers = [nn.LazyLinear(sizes[1])]
    for n_out in sizes[2:]:
        layers += [nn.ReLU(), nn.LazyLinear(n_out)]
    return nn.Sequential(*layers)


def test_q1_correct_variants() -> None:
    accepted(ch.q1, _ordered_dict_mlp)
    accepted(ch.q1, _MLPAddModule)


def test_q1_lazy_layers_take_their_sizes_at_a_dry_run() -> None:
    """nn.LazyLinear learns its input size at the first call, as torch's dry run before training gives it."""
    state = torch.get_rng_state()
    accepted(ch.q1, _lazy_mlp)
    assert torch.equal(torch.get_rng_state(), state)
    rejected(ch.q1, lambda sizes: nn.Sequential(nn.LazyLinear(sizes[-1])), "Linear layer(s)")


def test_q1_wrong_answers() -> None:
    rejected(ch.q1, _ListMLP, "None of your layers are registered", "Python list")
    rejected(ch.q1, lambda sizes: _sequential_with(sizes, last_relu=True), "ReLU after the last layer")
    rejected(ch.q1, lambda sizes: _sequential_with(sizes, relu=False), "no ReLU between")
    message = rejected(ch.q1, lambda sizes: nn.Sequential(nn.Linear(sizes[0], sizes[-1])), "1 Linear layer(s)")
    assert "Python list" not in message  # a missing layer is not an unregistered one
    as_list = lambda sizes: [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]  # noqa: E731
    rejected(ch.q1, as_list, "Return an nn.Module")


def test_q1_cases_include_deep_and_shallow_nets() -> None:
    depths = {len(sizes) for (sizes,) in _cases(ch.q1)}
    assert 2 in depths and max(depths) >= 4


# --- q2, q3 · shapes


def test_q2_correct_variants_and_the_layer_agrees() -> None:
    accepted(
        ch.q2,
        lambda h, w, k, s, p, d: tuple(
            math.floor((n + 2 * pp - dd * (kk - 1) - 1) / ss + 1)
            for n, kk, ss, pp, dd in zip((h, w), k, s, p, d, strict=True)
        ),
    )
    accepted(
        ch.q2,
        lambda h, w, k, s, p, d: (
            tuple(F.unfold(torch.zeros(1, 1, h, w), k, d, p, s).shape[-1:]) and ch.conv2d_output_shape(h, w, k, s, p, d)
        ),
    )
    for case in _cases(ch.q2):
        h, w, k, s, p, d = case
        assert nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, h, w)).shape[2:] == ch.conv2d_output_shape(*case)


def test_q2_cases_cover_every_option() -> None:
    cases = _cases(ch.q2)
    assert any(d != (1, 1) for *_, d in cases) and any(s != (1, 1) for *_, s, _p, _d in cases)
    assert any(p != (0, 0) for *_, p, _d in cases)


def test_q2_a_layer_is_not_the_formula() -> None:
    by_layer = lambda h, w, k, s, p, d: tuple(nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, h, w)).shape[2:])  # noqa: E731
    rejected(ch.q2, by_layer, "use the formula, not a layer")
    rejected(ch.q2, lambda h, w, k, s, p, d: tuple(F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, *k), None, s,
                                                            p, d).shape[2:]), "use the formula")


def test_q2_wrong_answers() -> None:
    no_dilation = lambda h, w, k, s, p, d: tuple(
        (n + 2 * pp - (kk - 1) - 1) // ss + 1 for n, kk, ss, pp in zip((h, w), k, s, p, strict=False)
    )  # noqa: E731
    rejected(ch.q2, no_dilation, "dilation")
    rejected(
        ch.q2,
        lambda h, w, k, s, p, d: tuple(
            (n + pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, ss, pp, dd in zip((h, w), k, s, p, d, strict=True)
        ),
        "both sides",
    )
    rejected(
        ch.q2,
        lambda h, w, k, s, p, d: tuple(
            math.ceil((n + 2 * pp - dd * (kk - 1) - 1) / ss) + 1
            for n, kk, ss, pp, dd in zip((h, w), k, s, p, d, strict=True)
        ),
        "rounded up",
    )
    rejected(ch.q2, lambda h, w, k, s, p, d: torch.tensor(ch.conv2d_output_shape(h, w, k, s, p, d)), "tuple")


def test_q3_correct_variants() -> None:
    accepted(ch.q3, lambda n, k, s, p, op, d: int((n - 1) * s - 2 * p + d * (k - 1) + op + 1))


def test_q3_wrong_answers() -> None:
    rejected(ch.q3, lambda n, k, s, p, op, d: (n - 1) * s - 2 * p + k, "004")
    rejected(ch.q3, lambda n, k, s, p, op, d: (n - 1) * s - 2 * p + d * (k - 1) + 1, "output_padding")
    rejected(ch.q3, lambda n, k, s, p, op, d: (n + 2 * p - d * (k - 1) - 1) // s + 1, "convolution's formula")
    half_more = lambda n, k, s, p, op, d: float((n - 1) * s - 2 * p + d * (k - 1) + op + 1) + 0.5  # noqa: E731
    rejected(ch.q3, half_more, "expected an int")


# --- q4 · batch norm


def _bn_manual(x, rm, rv, w, b, momentum, eps):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    n = x.numel() / x.shape[1]
    y = (x - mean[None, :, None, None]) / (var[None, :, None, None] + eps).sqrt() * w[None, :, None, None] + b[
        None, :, None, None
    ]
    return y, (1 - momentum) * rm + momentum * mean, (1 - momentum) * rv + momentum * var * n / (n - 1)


def _bn_module(x, rm, rv, w, b, momentum, eps):
    bn = nn.BatchNorm2d(x.shape[1], eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.running_mean.copy_(rm)
        bn.running_var.copy_(rv)
        bn.weight.copy_(w)
        bn.bias.copy_(b)
    return bn(x).detach(), bn.running_mean, bn.running_var


def _bn_in_place(x, rm, rv, w, b, momentum, eps):
    return F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum, eps=eps), rm, rv


def test_q4_cpu_scalars_beside_gpu_tensors_are_fine() -> None:
    """0-d CPU tensors mix with tensors on any device, on a real GPU too: the simulated one must agree."""

    def cpu_scalars(x, rm, rv, w, b, momentum, eps):
        m, e = torch.tensor(momentum), torch.tensor(eps)
        return _bn_manual(x, rm, rv, w, b, m, e)

    accepted(ch.q4, cpu_scalars)


def test_q4_the_layer_it_rebuilds_is_ruled_out() -> None:
    rejected(ch.q4, _bn_module, "without calling nn.BatchNorm2d")
    rejected(ch.q4, lambda x, rm, rv, w, b, m, e: _bn_in_place(x, rm.clone(), rv.clone(), w, b, m, e),
             "without calling nn.BatchNorm2d or F.batch_norm")


def test_q4_wrong_answers() -> None:
    rejected(ch.q4, ch._bn_wrong(unbiased_norm=True), "biased variance")
    rejected(ch.q4, ch._bn_wrong(biased_running=True), "unbiased")
    rejected(ch.q4, ch._bn_wrong(swap=True), "weighs the old running statistic")
    rejected(ch.q4, _bn_in_place, "changed its input")


# --- q5 · stable BCE


def test_q5_correct_variants() -> None:
    accepted(ch.q5, lambda x, y: (F.softplus(x) - x * y).mean())


def test_q5_the_library_loss_is_ruled_out() -> None:
    rejected(ch.q5, lambda x, y: nn.BCEWithLogitsLoss()(x, y), "from the formula")
    rejected(ch.q5, lambda x, y: F.binary_cross_entropy_with_logits(x, y), "binary_cross_entropy")


def test_q5_cases_include_soft_and_hard_targets() -> None:
    kinds = {bool(((y == 0) | (y == 1)).all()) for _, y in _cases(ch.q5)}
    assert kinds == {True, False} or len(_cases(ch.q5)) < 2


def test_q5_wrong_answers() -> None:
    rejected(ch.q5, ch._naive_bce, "sigmoid rounds")
    rejected(ch.q5, lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y), "clamps")
    rejected(ch.q5, lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="sum"), "mean")
    rejected(ch.q5, lambda x, y: (x.clamp(min=0) + x * y + torch.log1p(torch.exp(-x.abs()))).mean(), "differ")


# --- q6 · label smoothing


def test_q6_smoothing_by_the_library_is_ruled_out() -> None:
    rejected(ch.q6, lambda x, y, s: nn.CrossEntropyLoss(label_smoothing=s)(x, y), "from the formula")
    rejected(ch.q6, lambda x, y, s: F.cross_entropy(x, y, label_smoothing=s), "no cross_entropy call")


def test_q6_wrong_answers() -> None:
    rejected(ch.q6, ch._smoothing_spread_to_others, "other classes only")
    rejected(ch.q6, lambda x, y, s: F.cross_entropy(x, y), "plain cross-entropy")
    rejected(
        ch.q6, lambda x, y, s: (1 - s) * F.cross_entropy(x, y) - s * x.log_softmax(dim=1).sum(dim=1).mean(), "summed"
    )


# --- q7 · activation hook


def _leaky_hooks(model, x, names):
    recorded = {}
    modules = dict(model.named_modules())
    for name in names:
        modules[name].register_forward_hook(lambda m, a, o, name=name: recorded.__setitem__(name, o))
    model(x)
    return recorded


def _late_binding(model, x, names):
    recorded = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, a, o: recorded.__setitem__(name, o)) for name in names]  # noqa: B023
    model(x)
    for h in handles:
        h.remove()
    return recorded


def _by_slicing(model, x, names):
    recorded = {}
    for name, layer in model.named_children():
        x = layer(x)
        if name in names:
            recorded[name] = x
    return recorded


def _global_hook(model, x, names):
    wanted = {module: name for name, module in model.named_modules() if name in names}
    recorded = {}

    def hook(module, args, output):
        if module in wanted:
            recorded[wanted[module]] = output

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    return recorded


def test_q7_nested_names_and_the_model_itself() -> None:
    """Every random name was a top-level child: looking a name up as an attribute, or among the
    children, passed; named_modules() also names nested layers ("block.0") and the model ("")."""

    def hooked(lookup):
        def answer(model, x, names):
            recorded = {}
            handles = [lookup(model, n).register_forward_hook(lambda m, a, o, n=n: recorded.__setitem__(n, o))
                       for n in names]
            model(x)
            for h in handles:
                h.remove()
            return recorded

        return answer

    rejected(ch.q7, hooked(getattr), "raised AttributeError")
    rejected(ch.q7, hooked(lambda model, n: dict(model.named_children())[n]), "raised KeyError")
    accepted(ch.q7, hooked(lambda model, n: model.get_submodule(n)))


def test_q7_without_hooks_is_ruled_out() -> None:
    rejected(ch.q7, _by_slicing, "use forward hooks")


def test_q7_wrong_answers() -> None:
    rejected(ch.q7, _leaky_hooks, "still registered", "every later call")
    rejected(ch.q7, ch._recorded_inputs, "input")
    rejected(ch.q7, _late_binding, "keys")  # every hook wrote to the last name
    rejected(ch.q7, lambda m, x, names: {n: m(x) for n in names}, "wrong shape")


# --- q8 · global pruning


def _topk_masks(weights, amount):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(amount * flat.numel())
    mask = torch.ones_like(flat)
    mask[flat.topk(k, largest=False).indices] = 0
    return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights, strict=True)]


def _threshold_item(weights, amount):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(amount * flat.numel())
    if k == 0:  # nothing to prune (the 0-th smallest does not exist)
        return [torch.ones_like(w) for w in weights]
    threshold = flat.kthvalue(k).values.item()  # the k-th smallest |w|, as a Python float
    return [(w.abs() > threshold).to(w.dtype) for w in weights]


def _numpy_masks(weights, amount):
    flat = np.concatenate([w.detach().cpu().numpy().ravel() for w in weights])
    k = round(amount * flat.size)
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(np.abs(flat), kind="stable")[:k]] = False
    ends = np.cumsum([w.numel() for w in weights])[:-1]
    return [torch.from_numpy(part.reshape(tuple(w.shape))).to(device=w.device, dtype=w.dtype)
            for part, w in zip(np.split(keep, ends), weights, strict=True)]


def _prune_then_read(weights, amount):
    modules = [nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights]
    with torch.no_grad():
        for module, w in zip(modules, weights, strict=True):
            module.weight.copy_(w)
    prune.global_unstructured([(m, "weight") for m in modules], prune.L1Unstructured, amount=amount)
    return [m.weight_mask for m in modules]


def test_q8_correct_variants() -> None:
    accepted(ch.q8, _prune_then_read)


def _counted(count):
    """Global L1 masks that prune count(amount × total) entries."""

    def masks(weights, amount):
        flat = torch.cat([w.abs().flatten() for w in weights])
        mask = torch.ones_like(flat)
        mask[flat.topk(int(count(amount * flat.numel())), largest=False).indices] = 0
        return [m.view_as(w) for m, w in zip(mask.split([w.numel() for w in weights]), weights, strict=True)]

    return masks


def test_q8_amounts_that_are_not_whole_counts() -> None:
    """Every random amount was k / total, so truncating, or rounding up, amount × total gave k as
    rounding does; the declared amounts give 3.6, 2.4 and 0.24 entries."""
    for count in (int, math.ceil, lambda x: max(1, round(x))):
        rejected(ch.q8, _counted(count), "differ")
    accepted(ch.q8, _counted(round))
    accepted(ch.q8, _counted(lambda x: torch.tensor(x).round()))


def test_q8_wrong_answers() -> None:
    rejected(ch.q8, ch._per_tensor, "each tensor")
    rejected(ch.q8, ch._largest, "largest")
    rejected(ch.q8, lambda ws, a: [m.bool() for m in _topk_masks(ws, a)], "dtype")
    rejected(ch.q8, lambda ws, a: [w * m for w, m in zip(ws, _topk_masks(ws, a), strict=False)], "differ")


# --- q9, q10 · optimizers from scratch


class _SGDFunctional(torch.optim.Optimizer):
    """Another correct SGD: momentum buffers kept in a dict keyed by parameter."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self):
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    d = p.grad.add(p, alpha=group["weight_decay"])
                    if group["momentum"] != 0:
                        buf = self.state[p].get("momentum_buffer")
                        buf = d.clone() if buf is None else buf.mul(group["momentum"]).add(d)
                        self.state[p]["momentum_buffer"] = buf
                        d = buf
                    p.add_(d, alpha=-group["lr"])


class _SGDWrapper(torch.optim.SGD):
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class _SGDNoDecay(ch.SGDMomentum):
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["b"] = p.grad.clone() if "b" not in state else state["b"] * group["momentum"] + p.grad
                p.sub_(group["lr"] * state["b"])


class _NotAnOptimizer:
    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params = [p for g in params for p in g["params"]]

    def zero_grad(self):
        pass

    def step(self):
        pass


class _SGDInPlace(torch.optim.Optimizer):
    """A correct SGD: the decay and the buffer updated in place, with torch.no_grad as a context."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self):
        with torch.no_grad():
            for group in self.param_groups:
                lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
                for p in group["params"]:
                    d = p.grad.clone().add_(p, alpha=wd)
                    if mu:
                        state = self.state[p]
                        if "v" in state:
                            d = state["v"].mul_(mu).add_(d)
                        else:
                            state["v"] = d
                    p.sub_(lr * d)


class _SGDData(torch.optim.Optimizer):
    """Updates through p.data (outside autograd, no torch.no_grad), buffers in a dict of its own, a closure allowed."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.buffers = {}

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.data + group["weight_decay"] * p.data
                if group["momentum"] != 0:
                    d = self.buffers[p] = d if p not in self.buffers else group["momentum"] * self.buffers[p] + d
                p.data = p.data - group["lr"] * d
        return loss


class _SGDForeach(torch.optim.Optimizer):
    """Each group updated at once with torch._foreach_* operations."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = torch._foreach_add([p.grad for p in params], params, alpha=group["weight_decay"])
            if group["momentum"]:
                if "buffer" in self.state[params[0]]:
                    buffers = [self.state[p]["buffer"] for p in params]
                    torch._foreach_mul_(buffers, group["momentum"])
                    torch._foreach_add_(buffers, grads)
                else:
                    buffers = [g.clone() for g in grads]
                for p, buffer in zip(params, buffers, strict=True):
                    self.state[p]["buffer"] = buffer
                grads = buffers
            torch._foreach_add_(params, grads, alpha=-group["lr"])


def test_q9_correct_variants() -> None:
    accepted(ch.q9, _SGDFunctional)


def test_q9_cases_have_several_groups_and_all_options() -> None:
    cases = _cases(ch.q9)
    assert any(len(groups) > 1 for groups, _ in cases)
    assert any(d["momentum"] > 0 and d["weight_decay"] > 0 for _, d in cases)


class _SGDDelegating(torch.optim.Optimizer):
    """Right values through torch.optim.SGD inside step(): not from scratch."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.inner = None

    def step(self):
        if self.inner is None:
            self.inner = torch.optim.SGD(self.param_groups, lr=self.defaults["lr"])
        self.inner.step()


def test_q9_from_scratch_rules_out_torch_optim() -> None:
    rejected(ch.q9, _SGDWrapper, "from scratch, not through torch.optim.SGD")
    rejected(ch.q9, _SGDDelegating, "from scratch")


def test_q9_wrong_answers() -> None:
    rejected(ch.q9, ch._SGDDecoupled, "after the momentum")
    rejected(ch.q9, ch._SGDDampened, "average")
    rejected(ch.q9, ch._SGDDefaultsOnly, "a group sets for itself")
    rejected(ch.q9, _SGDNoDecay, "weights differ")
    rejected(ch.q9, _NotAnOptimizer, "not a torch.optim.Optimizer")
    rejected(ch.q9, ch.SGDMomentum([torch.zeros(1, requires_grad=True)], lr=0.1), "Expected a function")


class _AdamWrapper(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


class _AdamTorchStyle(torch.optim.Optimizer):
    """Adam written as torch does: lr / bias_correction1 and sqrt(v) / sqrt(bias_correction2) + eps."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad.add(p, alpha=group["weight_decay"])
                s = self.state[p]
                if not s:
                    s.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                s["t"] += 1
                s["m"].lerp_(g, 1 - b1)
                s["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (s["v"].sqrt() / math.sqrt(1 - b2 ** s["t"])).add_(group["eps"])
                p.addcdiv_(s["m"], denom, value=-group["lr"] / (1 - b1 ** s["t"]))


class _AdamPlain(torch.optim.Optimizer):
    """A correct Adam: bias-corrected moments, out-of-place arithmetic, the state read with dict.get."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                s = self.state[p]
                t = s.get("t", 0) + 1
                m = b1 * s.get("m", torch.zeros_like(p)) + (1 - b1) * g
                v = b2 * s.get("v", torch.zeros_like(p)) + (1 - b2) * g * g
                s.update(t=t, m=m, v=v)
                p.copy_(p - group["lr"] * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + group["eps"]))


class _AdamTensorStep(torch.optim.Optimizer):
    """The step count kept as a tensor (as torch.optim.Adam keeps it) and read with .item(); updates through p.data."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p.data), torch.zeros_like(p.data)
                grad = p.grad.data
                if group["weight_decay"]:
                    grad = grad.add(p.data, alpha=group["weight_decay"])
                state["step"] += 1
                t = state["step"].item()
                state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
                state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad.square()
                m_hat, v_hat = state["exp_avg"] / (1 - beta1**t), state["exp_avg_sq"] / (1 - beta2**t)
                p.data.sub_(group["lr"] * m_hat / (torch.sqrt(v_hat) + group["eps"]))


def test_q10_from_scratch_rules_out_torch_optim() -> None:
    rejected(ch.q10, _AdamWrapper, "from scratch, not through torch.optim.Adam")


def test_q10_wrong_answers() -> None:
    rejected(ch.q10, ch._adam_variant(correct=False), "bias correction")
    rejected(ch.q10, ch._adam_variant(eps_inside=True), "inside the square root")
    rejected(ch.q10, ch._adam_variant(decoupled=True), "AdamW")
    rejected(ch.q10, _AdamWWrapper, "AdamW")
    rejected(ch.q10, _SGDWrapper, "raised TypeError")  # a signature without betas and eps


class _SGDMomentumOfDefaults(ch.SGDMomentum):
    """lr and weight_decay read from each group, but the momentum from the defaults."""

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state["b"] = g.clone() if "b" not in state else state["b"] * self.defaults["momentum"] + g
                p.sub_(group["lr"] * state["b"])


class _SGDMomentumSwitchOfDefaults(ch.SGDMomentum):
    """Whether to keep a buffer at all is decided by the default momentum, not the group's."""

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                if self.defaults["momentum"]:
                    state = self.state[p]
                    state["b"] = g.clone() if "b" not in state else state["b"] * group["momentum"] + g
                    g = state["b"]
                p.sub_(group["lr"] * g)


class _AdamBetasOfDefaults(ch.MyAdam):
    """Everything per group except the betas, taken from the defaults."""

    @torch.no_grad()
    def step(self):
        beta1, beta2 = self.defaults["betas"]
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                state["m"] = beta1 * state["m"] + (1 - beta1) * g
                state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
                m_hat = state["m"] / (1 - beta1 ** state["step"])
                v_hat = state["v"] / (1 - beta2 ** state["step"])
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))


def test_groups_override_every_setting() -> None:
    """A random group's override was often the default itself, the first group never overrode, and
    no group set its own momentum (q9) or betas (q10): a setting read from the defaults passed."""
    for wrong in (_SGDMomentumOfDefaults, _SGDMomentumSwitchOfDefaults):
        rejected(ch.q9, wrong, "weights differ")
    rejected(ch.q10, _AdamBetasOfDefaults, "weights differ")
    for exercise in (ch.q9, ch.q10):
        declared = [exercise.make_case(t, "cpu") for t in range(exercise.trials, exercise.total_cases)]
        for key in declared[0][1]:
            assert any(g.get(key, d[key]) != d[key] for gs, d in declared for g in gs[:1]), key  # the first group
            assert all(any(key not in g for g in gs) for gs, d in declared)  # beside a group of defaults


class _AdamWWrapper(torch.optim.AdamW):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def test_optimizer_checks_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    ch.q9.grade(ch.SGDMomentum)
    ch.q1.grade(ch.build_mlp)
    assert torch.equal(torch.get_rng_state(), state)


# --- q11 · StepLR


def test_q11_correct_variants() -> None:
    accepted(
        ch.q11, lambda lr, s, g, n: lr * g ** torch.div(torch.arange(n, dtype=torch.float64), s, rounding_mode="floor")
    )
    accepted(
        ch.q11,
        lambda lr, s, g, n: torch.tensor([lr * math.pow(g, math.floor(e / s)) for e in range(n)], dtype=torch.float64),
    )


def test_q11_float32_is_lost_precision() -> None:
    rejected(ch.q11, lambda lr, s, g, n: torch.tensor([lr * g ** (e // s) for e in range(n)]).double(), "precision")


def _by_scheduler(lr, s, g, n):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, s, g)
    rates = []
    for _ in range(n):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return torch.tensor(rates, dtype=torch.float64)


def test_q11_a_scheduler_is_not_a_formula() -> None:
    rejected(ch.q11, _by_scheduler, "from a formula")


def test_q11_wrong_answers() -> None:
    rejected(ch.q11, ch._closed(restart=True), "never returns")
    rejected(ch.q11, ch._closed(offset=1), "Off by one")
    rejected(ch.q11, ch._closed(exponential=True), "ExponentialLR")
    rejected(ch.q11, lambda lr, s, g, n: ch.step_lr_schedule(lr, s, g, n).float(), "dtype")


# --- q12 · checkpoint


def test_q12_wrong_answers() -> None:
    rejected(ch.q12, lambda m, o, s, e: {"model": m.state_dict(), "epoch": e}, "no ['optimizer', 'scheduler']")
    rejected(ch.q12, lambda m, o, s, e: {"model": m, "optimizer": o, "scheduler": s, "epoch": e}, "weights_only",
             "checkpoint['model'], a Sequential")
    rejected(
        ch.q12,
        lambda m, o, s, e: {
            "model": m.state_dict(),
            "optimizer": torch.optim.Adam(m.parameters(), lr=0.05).state_dict(),
            "scheduler": s.state_dict(),
            "epoch": e,
        },
        "without Adam's moments",
    )
    rejected(
        ch.q12,
        lambda m, o, s, e: {
            "model": m.state_dict(),
            "optimizer": o.state_dict(),
            "scheduler": {
                "step_size": 2,
                "gamma": 0.5,
                "base_lrs": [0.05],
                "last_epoch": 0,
                "_step_count": 1,
                "_get_lr_called_within_step": False,
                "_last_lr": [0.05],
                "verbose": False,
                "_is_initial": False,
            },
            "epoch": e,
        },
        "scheduler",
    )
    rejected(ch.q12, lambda m, o, s, e: {**ch.make_checkpoint(m, o, s, e), "epoch": 0}, "epoch")


def test_q12_feedback_names_the_entry_weights_only_refuses() -> None:
    numpy_epoch = lambda m, o, s, e: {**ch.make_checkpoint(m, o, s, e), "epoch": np.int64(e)}  # noqa: E731
    buffer = io.BytesIO()
    torch.save(np.int64(1), buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception:  # noqa: BLE001 - this torch's safe unpickler refuses NumPy scalars, as it has so far
        rejected(ch.q12, numpy_epoch, "weights_only", "checkpoint['epoch'], a numpy.int64", "NumPy")
    else:  # a torch that loads them: the checkpoint resumes, and is right
        accepted(ch.q12, numpy_epoch)


def test_q9_feedback_names_the_settings_and_the_class() -> None:
    class Raising(ch.SGDMomentum):
        def step(self):
            raise ValueError("nope")

    message = rejected(ch.q9, Raising, "Your class raised ValueError", "settings={'lr'")
    assert "lr={'lr'" not in message and "Your function" not in message


# --- three correct answers per exercise, each a different way (API or formulation) -------------------------------
# Where a Python number is asked for (q2, q3) one answer goes through .item(), as do q8's threshold and q10's step
# count. No statement asks for NumPy results (ints, tensors, a loadable checkpoint), so NumPy is used inside q8 and
# q11, whose results go back to tensors. q4 to q8 also run on a simulated GPU where there is none, which cannot run
# .item() or .numpy(): inconclusive there, never a lost point.


def _mlp_sequential(sizes):
    layers = [nn.Linear(sizes[0], sizes[1])]
    for n_in, n_out in zip(sizes[1:-1], sizes[2:], strict=True):
        layers += [nn.ReLU(), nn.Linear(n_in, n_out)]
    return nn.Sequential(*layers)


class _MLPModuleList(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(F.relu(x) if i else x)
        return x


class _MLPModuleDict(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.fc = nn.ModuleDict({f"layer{i}": nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)})

    def forward(self, x):
        *hidden, last = self.fc.values()
        for layer in hidden:
            x = torch.relu(layer(x))
        return last(x)


def _conv_window_starts(h, w, kernel, stride, padding, dilation):
    """Count where a window can start (0, s, 2s...) with its reach d(k - 1) + 1 inside the padded input."""
    return tuple(len(range(0, n + 2 * p - (d * (k - 1) + 1) + 1, s))
                 for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True))


def _conv_tensor_item(h, w, kernel, stride, padding, dilation):
    size, k, s, p, d = (torch.tensor(v) for v in ((h, w), kernel, stride, padding, dilation))
    out = torch.div(size + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1
    return out[0].item(), out[1].item()


def _transpose_layer_on_meta(n, kernel, stride, padding, output_padding, dilation):
    layer = nn.ConvTranspose1d(1, 1, kernel, stride, padding, output_padding, dilation=dilation, device="meta")
    return layer(torch.empty(1, 1, n, device="meta")).shape[-1]


def _transpose_last_position(n, kernel, stride, padding, output_padding, dilation):
    starts = torch.arange(n) * stride  # where each input position lands
    last = starts[-1] + dilation * (kernel - 1)  # the last output position its kernel reaches
    return (last + 1 - 2 * padding + output_padding).item()


def _bn_rows(x, rm, rv, w, b, momentum, eps):
    """Channels first, then one row per channel."""
    rows = x.transpose(0, 1).reshape(x.shape[1], -1)
    mean, var = rows.mean(1), rows.var(1, correction=0)
    n = rows.shape[1]
    y = (rows - mean[:, None]) / (var[:, None] + eps).sqrt() * w[:, None] + b[:, None]
    y = y.reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)
    return y, rm + momentum * (mean - rm), rv + momentum * (var * n / (n - 1) - rv)


def _bn_var_mean(x, rm, rv, w, b, momentum, eps):
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    n = x.numel() // x.shape[1]
    c = (1, -1, 1, 1)
    y = (x - mean.reshape(c)) * torch.rsqrt(var.reshape(c) + eps) * w.reshape(c) + b.reshape(c)
    return y, torch.lerp(rm, mean, momentum), torch.lerp(rv, var * n / (n - 1), momentum)


def _bn_layer_norm(x, rm, rv, w, b, momentum, eps):
    """Layer norm of each channel's row (all its values in the batch) is batch norm's normalisation."""
    c = x.shape[1]
    rows = x.movedim(1, 0).reshape(c, -1)
    y = F.layer_norm(rows, rows.shape[1:], eps=eps) * w[:, None] + b[:, None]
    y = y.reshape(c, x.shape[0], *x.shape[2:]).movedim(0, 1)
    return y, (1 - momentum) * rm + momentum * rows.mean(1), (1 - momentum) * rv + momentum * rows.var(1)


def _smoothing_by_target(x, y, s):
    c = x.shape[1]
    target = F.one_hot(y, c).to(x.dtype) * (1 - s) + s / c
    return -(target * x.log_softmax(dim=1)).sum(dim=1).mean()


def _smoothing_by_logsumexp(x, y, s):
    lse = x.logsumexp(dim=1)
    nll = lse - x.gather(1, y.unsqueeze(1)).squeeze(1)
    return ((1 - s) * nll + s * (lse - x.mean(dim=1))).mean()


def _hooks_by_name(model, x, names):
    recorded = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, a, o, n=n: recorded.update({n: o.detach()})) for n in names]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return recorded


def _hooks_in_exit_stack(model, x, names):
    recorded = {}

    def save(name, module, args, output):
        recorded[name] = output.clone()

    with contextlib.ExitStack() as stack, torch.no_grad():
        for name in names:
            stack.callback(model.get_submodule(name).register_forward_hook(functools.partial(save, name)).remove)
        model(x)
    return recorded


def _steplr_repeated(base_lr, step_size, gamma, epochs):
    periods = -(-epochs // step_size)  # ceil: the periods that start before the last epoch
    rates = base_lr * gamma ** torch.arange(periods, dtype=torch.float64)
    return rates.repeat_interleave(step_size)[:epochs]


def _checkpoint_copied(model, optimizer, scheduler, epoch):
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": copy.deepcopy(scheduler.state_dict()),
        "epoch": epoch,
        "note": "extra keys are fine",
    }


def _checkpoint_round_trip(model, optimizer, scheduler, epoch):
    buffer = io.BytesIO()  # saved and read back: a copy that shares nothing with the live objects
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --- q13 · a complete training loop


def _loop(model, train_loader, test_loader, loss_fn, optimizer, epochs, *, zero=True, train_each_epoch=True,
          evaluate_in_eval=True, no_grad=True, step_per_batch=True, restore=True, mean_of_batches=False,
          as_tensor=False):
    """The reference loop, with one of its parts left out or changed."""
    was_training = model.training
    accuracies = []
    if not train_each_epoch:
        model.train()
    for _ in range(epochs):
        if train_each_epoch:
            model.train()
        for x, y in train_loader:
            if zero:
                optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            if step_per_batch:
                optimizer.step()
        if not step_per_batch:
            optimizer.step()
        if evaluate_in_eval:
            model.eval()
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            hits = [(model(x).argmax(dim=1) == y).double() for x, y in test_loader]
        accuracy = torch.stack([h.mean() for h in hits]).mean() if mean_of_batches else torch.cat(hits).mean()
        accuracies.append(accuracy if as_tensor else accuracy.item())
    if restore:
        model.train(was_training)
    return accuracies


def test_q13_wrong_loops_are_named() -> None:
    state = torch.get_rng_state()
    rejected(ch.q13, functools.partial(_loop, zero=False), "gradients accumulate")
    rejected(ch.q13, functools.partial(_loop, train_each_epoch=False), "After an evaluation the next epoch trained "
                                                                       "in eval mode")
    rejected(ch.q13, functools.partial(_loop, evaluate_in_eval=False), "evaluation ran with the model in train mode")
    rejected(ch.q13, functools.partial(_loop, no_grad=False), "gradient tracking on")
    rejected(ch.q13, functools.partial(_loop, step_per_batch=False), "once per epoch")
    rejected(ch.q13, functools.partial(_loop, restore=False), "left the model in eval mode")
    rejected(ch.q13, functools.partial(_loop, mean_of_batches=True), "not the fraction of the test samples")
    rejected(ch.q13, functools.partial(_loop, as_tensor=True), "Python float")
    assert torch.equal(torch.get_rng_state(), state) and torch.is_grad_enabled()  # the session as it was


def test_q13_a_model_given_in_eval_mode_must_be_put_in_train_mode() -> None:
    def never_train(model, train_loader, test_loader, loss_fn, optimizer, epochs):
        if model.training:  # right whenever the model comes in train mode: the check hands one in eval mode
            return _loop(model, train_loader, test_loader, loss_fn, optimizer, epochs)
        accuracies = []
        for _ in range(epochs):
            for x, y in train_loader:  # in the mode it came in
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            accuracies.append(_evaluate(model, test_loader))
        return accuracies

    rejected(ch.q13, never_train, "given in eval mode, and nothing put it in train mode")
    modes = [ch.q13.make_case(t, "cpu")[0].training for t in range(ch.q13.trials)]
    assert False in modes and True in modes


def test_q13_other_losses_of_a_step() -> None:
    def no_backward(model, train_loader, test_loader, loss_fn, optimizer, epochs):
        was, accuracies = model.training, []
        for _ in range(epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss_fn(model(x), y)
                optimizer.step()
            accuracies.append(_evaluate(model, test_loader))
        model.train(was)
        return accuracies

    rejected(ch.q13, no_backward, "weights differ")
    rejected(ch.q13, lambda *args: _loop(*args)[:-1], "accuracies for")


def _evaluate(model, loader):
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(loader.dataset)


def _fit_set_to_none_false(model, train_loader, test_loader, loss_fn, optimizer, epochs):
    mode, accuracies = model.training, []
    for _ in range(epochs):
        model.train(True)
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=False)  # zeros, not None: the same step
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        accuracies.append(_evaluate(model, test_loader))  # inference_mode, int counts
    model.train(mode)
    return accuracies


def _fit_model_zero_grad_after_step(model, train_loader, test_loader, loss_fn, optimizer, epochs):
    was_training, accuracies = model.training, []
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            loss_fn(model(x), y).backward()
            optimizer.step()
            model.zero_grad()  # after the step: the gradients start at None, and each batch's are its own
        model.eval()
        with torch.set_grad_enabled(False):
            predictions = torch.cat([model(x).argmax(dim=1) for x, _ in test_loader])
            labels = torch.cat([y for _, y in test_loader])
        accuracies.append(float((predictions == labels).float().mean()))  # float32: within the tolerance
    if was_training:
        model.train()
    else:
        model.eval()
    return accuracies


def _train_one_epoch(model, loader, loss_fn, optimizer):
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimizer.step()


@torch.no_grad()
def _accuracy(model, loader):
    model.eval()
    correct = np.sum([(model(x).argmax(-1) == y).sum().item() for x, y in loader])
    return float(correct) / len(loader.dataset)


def _fit_in_two_functions(model, train_loader, test_loader, loss_fn, optimizer, epochs):
    initial = model.training
    accuracies = []
    for _ in range(epochs):
        _train_one_epoch(model, train_loader, loss_fn, optimizer)
        accuracies.append(_accuracy(model, test_loader))
    model.train(initial)
    return accuracies


CORRECT = {
    "q1": [_mlp_sequential, _MLPModuleList, _MLPModuleDict],
    "q2": [lambda h, w, k, s, p, d: tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                                          for n, kk, ss, pp, dd in zip((h, w), k, s, p, d, strict=True)),
           _conv_window_starts, _conv_tensor_item],
    "q3": [lambda n, k, s, p, op, d: (n - 1) * s - 2 * p + d * (k - 1) + op + 1,
           _transpose_layer_on_meta, _transpose_last_position],
    "q4": [_bn_rows, _bn_var_mean, _bn_layer_norm],
    "q5": [lambda x, y: (x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))).mean(),
           lambda x, y: -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean(),
           lambda x, y: torch.mean(torch.logaddexp(torch.zeros_like(x), x) - x * y)],
    "q6": [_smoothing_by_target,
           lambda x, y, s: (1 - s) * F.nll_loss(x.log_softmax(1), y) - s * x.log_softmax(1).mean(1).mean(),
           _smoothing_by_logsumexp],
    "q7": [_hooks_by_name, _global_hook, _hooks_in_exit_stack],
    "q8": [_topk_masks, _threshold_item, _numpy_masks],
    "q9": [_SGDInPlace, _SGDData, _SGDForeach],
    "q10": [_AdamPlain, _AdamTorchStyle, _AdamTensorStep],
    "q11": [lambda lr, s, g, n: torch.tensor([lr * g ** (e // s) for e in range(n)], dtype=torch.float64),
            _steplr_repeated,
            lambda lr, s, g, n: torch.from_numpy(lr * np.power(g, np.arange(n) // s))],
    "q12": [lambda m, o, s, e: dict(model=m.state_dict(), optimizer=o.state_dict(), scheduler=s.state_dict(), epoch=e),
            _checkpoint_copied, _checkpoint_round_trip],
    "q13": [_fit_set_to_none_false, _fit_model_zero_grad_after_step, _fit_in_two_functions],
}


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    outcome = ch.chapter.exercises[qid].grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message


def test_q1_a_forward_that_never_returns_is_stopped_and_named(monkeypatch):
    class Forever(nn.Module):
        def __init__(self, sizes):
            super().__init__()
            self.layers = ch.build_mlp(sizes)

        def forward(self, x):
            while True:
                pass

    monkeypatch.setattr(ch.q1, "time_limit", 0.3)
    rejected(ch.q1, Forever, "Calling your module did not return")
