"""Chapter 03 checks: every reference passes, other correct answers pass, typical wrong answers are told why."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from grading import accepted, rejected
from torch import nn
from torch.nn.utils import prune

from torchcourse.checks import nn as ch


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


class _ModuleListMLP(_ListMLP):
    def __init__(self, sizes):
        super().__init__(sizes)
        self.layers = nn.ModuleList(self.layers)


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


def test_q1_correct_variants() -> None:
    accepted(ch.q1, _ModuleListMLP)
    accepted(ch.q1, _ordered_dict_mlp)
    accepted(ch.q1, lambda sizes: _sequential_with(sizes))


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
    accepted(ch.q2, lambda h, w, k, s, p, d: ((h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1,
                                              (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1))
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


def test_q3_correct_variants_and_the_layer_agrees() -> None:
    accepted(
        ch.q3,
        lambda n, k, s, p, op, d: nn.ConvTranspose1d(1, 1, k, s, p, op, dilation=d)(torch.zeros(1, 1, n)).shape[-1],
    )
    accepted(ch.q3, lambda n, k, s, p, op, d: int((n - 1) * s - 2 * p + d * (k - 1) + op + 1))
    accepted(ch.q3, lambda n, k, s, p, op, d: (n - 1) * s + d * k - d - 2 * p + op + 1)


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


def _bn_var_mean(x, rm, rv, w, b, momentum, eps):
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    n = x.numel() // x.shape[1]
    c = (1, -1, 1, 1)
    y = (x - mean.reshape(c)) * torch.rsqrt(var.reshape(c) + eps) * w.reshape(c) + b.reshape(c)
    return y, torch.lerp(rm, mean, momentum), torch.lerp(rv, var * n / (n - 1), momentum)


def test_q4_correct_variants() -> None:
    accepted(ch.q4, _bn_manual)
    accepted(ch.q4, _bn_var_mean)

    def per_channel(x, rm, rv, w, b, momentum, eps):  # channels first, then one row per channel
        rows = x.transpose(0, 1).reshape(x.shape[1], -1)
        mean, var = rows.mean(1), rows.var(1, correction=0)
        n = rows.shape[1]
        y = (rows - mean[:, None]) / (var[:, None] + eps).sqrt() * w[:, None] + b[:, None]
        y = y.reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)
        return y, rm + momentum * (mean - rm), rv + momentum * (var * n / (n - 1) - rv)

    accepted(ch.q4, per_channel)


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
    accepted(ch.q5, lambda x, y: (x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))).mean())
    accepted(ch.q5, lambda x, y: -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean())
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


def test_q6_correct_variants() -> None:
    def by_target(x, y, s):
        c = x.shape[1]
        target = F.one_hot(y, c).to(x.dtype) * (1 - s) + s / c
        return -(target * x.log_softmax(dim=1)).sum(dim=1).mean()

    accepted(ch.q6, by_target)
    accepted(ch.q6, lambda x, y, s: (1 - s) * F.nll_loss(x.log_softmax(1), y) - s * x.log_softmax(1).mean(1).mean())

    def by_logsumexp(x, y, s):
        lse = x.logsumexp(dim=1)
        nll = lse - x.gather(1, y.unsqueeze(1)).squeeze(1)
        return ((1 - s) * nll + s * (lse - x.mean(dim=1))).mean()

    accepted(ch.q6, by_logsumexp)


def test_q6_smoothing_by_the_library_is_ruled_out() -> None:
    rejected(ch.q6, lambda x, y, s: nn.CrossEntropyLoss(label_smoothing=s)(x, y), "from log_softmax")
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


def test_q7_correct_variants() -> None:
    accepted(ch.q7, _global_hook)

    def with_pre_and_post(model, x, names):
        recorded = {}
        modules = dict(model.named_modules())
        handles = [
            modules[n].register_forward_hook(lambda m, a, o, n=n: recorded.update({n: o.clone()})) for n in names
        ]
        with torch.no_grad():
            model(x)
        for h in handles:
            h.remove()
        return recorded

    accepted(ch.q7, with_pre_and_post)
    accepted(ch.q7, lambda m, x, names: dict(ch.record_activations(m, x, names)))


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


def _threshold_masks(weights, amount):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(amount * flat.numel())
    if k == 0:  # nothing to prune (values[k - 1] would be the largest |w|)
        return [torch.ones_like(w) for w in weights]
    threshold = flat.sort().values[k - 1]
    return [(w.abs() > threshold).to(w.dtype) for w in weights]


def _prune_then_read(weights, amount):
    modules = [nn.Linear(w.shape[1], w.shape[0], bias=False) for w in weights]
    with torch.no_grad():
        for module, w in zip(modules, weights, strict=True):
            module.weight.copy_(w)
    prune.global_unstructured([(m, "weight") for m in modules], prune.L1Unstructured, amount=amount)
    return [m.weight_mask for m in modules]


def test_q8_correct_variants() -> None:
    accepted(ch.q8, _topk_masks)
    accepted(ch.q8, _threshold_masks)
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
    """A third correct SGD: the decay and the buffer updated in place, with torch.no_grad as a context."""

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


def test_q9_correct_variants() -> None:
    accepted(ch.q9, _SGDFunctional)
    accepted(ch.q9, _SGDInPlace)
    accepted(ch.q9, ch.SGDMomentum)


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


class _AdamTorchStyle(ch.MyAdam):
    """Adam written as torch does: lr / bias_correction1 and sqrt(v) / sqrt(bias_correction2) + eps."""

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
    """A third correct Adam: bias-corrected moments, out-of-place arithmetic, the step count in the group state."""

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


def test_q10_correct_variants() -> None:
    accepted(ch.q10, _AdamPlain)
    accepted(ch.q10, _AdamTorchStyle)
    accepted(ch.q10, ch.MyAdam)


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
    accepted(ch.q11, lambda lr, s, g, n: torch.tensor([lr * g ** (e // s) for e in range(n)], dtype=torch.float64))
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


def test_q12_correct_variants() -> None:
    accepted(ch.q12, lambda m, o, s, e: copy.deepcopy(ch.make_checkpoint(m, o, s, e)))
    accepted(
        ch.q12,
        lambda m, o, s, e: {
            "model": {k: v.clone() for k, v in m.state_dict().items()},
            "optimizer": o.state_dict(),
            "scheduler": s.state_dict(),
            "epoch": e,
            "note": "extra keys are fine",
        },
    )
    accepted(ch.q12, ch.make_checkpoint)


def test_q12_wrong_answers() -> None:
    rejected(ch.q12, lambda m, o, s, e: {"model": m.state_dict(), "epoch": e}, "no ['optimizer', 'scheduler']")
    rejected(ch.q12, lambda m, o, s, e: {"model": m, "optimizer": o, "scheduler": s, "epoch": e}, "weights_only")
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


def test_q9_feedback_names_the_settings_and_the_class() -> None:
    class Raising(ch.SGDMomentum):
        def step(self):
            raise ValueError("nope")

    message = rejected(ch.q9, Raising, "Your class raised ValueError", "settings={'lr'")
    assert "lr={'lr'" not in message and "Your function" not in message
