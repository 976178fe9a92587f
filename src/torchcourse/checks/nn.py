"""Exercises of chapter 03 · nn (``exercises/03_nn.ipynb``).

Most answers here are functions compared with a reference on random inputs, as in the other
chapters. Four are judged by what they *do* rather than what they return, through :class:`JudgedExercise`'s
``judge``: a module factory (are its parameters registered, does it compute the right thing), two
optimizers written from scratch (trained side by side with ``torch.optim`` over a grid of settings and
parameter groups, the weights compared), and a checkpoint (saved, loaded with ``weights_only=True``
into fresh objects, and training resumed: it must continue exactly like the uninterrupted run).
"""

from __future__ import annotations

import copy
import inspect
import io
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from .core import Case, Chapter, Judge, JudgedExercise, Mismatch, NotAttempted, Uses, call_answer, compare, describe
from .core import randint as _randint

chapter = Chapter("03_nn", "nn")


def _declare(id: str, title: str, **options: Any) -> JudgedExercise:  # noqa: A002
    return chapter.register(JudgedExercise(chapter, id, title, **options))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=generator))


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


def _judge_mlp(answer: Callable[..., Any], case: Case) -> None:
    (sizes,) = case
    with torch.random.fork_rng(devices=[]):
        model = call_answer(answer, list(sizes))
        reference = build_mlp(list(sizes))
    if not isinstance(model, nn.Module):
        raise Mismatch(f"Return an nn.Module (for example an nn.Sequential), not {describe(model)}.")
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
    try:
        out = model(x)
    except Exception as error:  # the learner's forward may raise anything
        raise Mismatch(f"Calling your module raised {type(error).__name__}: {error}") from None
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


q1 = _declare(
    "q1",
    "A module whose parameters all register",
    points=2,
    reference=build_mlp,
    inputs=_sizes,
    judge=_judge_mlp,
    trials=6,
    on=("cpu",),
    hints=[
        "A module finds its parameters through attributes that are Parameters or Modules. What is a Python list?",
        "Build the layers in a loop into a list, then wrap them: nn.Sequential(*layers) or nn.ModuleList(layers).",
        "One nn.Linear(sizes[i], sizes[i + 1]) per consecutive pair, a ReLU between two of them, none at the end.",
    ],
)


# --- q2 · 03.3 convolution output shapes ------------------------------------------------------------


def _conv_settings(generator: torch.Generator, device: str) -> tuple[int, int, tuple, tuple, tuple, tuple]:
    kernel = (_randint(generator, 1, 6), _randint(generator, 1, 6))
    stride = (_randint(generator, 1, 4), _randint(generator, 1, 4))
    padding = (_randint(generator, 0, 3), _randint(generator, 0, 3))
    dilation = (_randint(generator, 1, 4), _randint(generator, 1, 4))
    reach = [d * (k - 1) + 1 - 2 * p for k, p, d in zip(kernel, padding, dilation, strict=True)]
    h, w = max(reach[0], 1) + _randint(generator, 0, 20), max(reach[1], 1) + _randint(generator, 0, 20)
    return h, w, kernel, stride, padding, dilation


def conv2d_output_shape(h: int, w: int, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> tuple:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )


def _conv_without(*, dilation: bool = True, double_pad: bool = True, ceil: bool = False) -> Callable[..., tuple]:
    def wrong(h, w, kernel, stride, padding, dilation_):
        out = []
        for n, k, s, p, d in zip((h, w), kernel, stride, padding, dilation_, strict=True):
            d = d if dilation else 1
            top = n + (2 if double_pad else 1) * p - d * (k - 1) - 1
            out.append((math.ceil(top / s) if ceil else top // s) + 1)
        return tuple(out)

    return wrong


q2 = chapter.exercise(
    "q2",
    "The output shape of a convolution",
    points=1,
    reference=conv2d_output_shape,
    inputs=_conv_settings,
    trials=12,
    forbids=[Uses("torch.nn.Conv2d", "torch.nn.LazyConv2d", "torch.nn.functional.conv2d", "torch.conv2d",
                  says="use the formula, not a layer (nn.Conv2d or F.conv2d)")],
    hints=[
        "Work along one dimension at a time: how many positions can a window of the kernel's reach take?",
        "A kernel k with dilation d reaches d·(k - 1) + 1 pixels; padding p adds p on both sides.",
        "out = floor((n + 2p - d(k - 1) - 1) / s) + 1, for the height and for the width.",
    ],
    misconceptions=[
        (_conv_without(dilation=False), "You ignored the dilation: a dilated kernel reaches d·(k - 1) + 1 pixels."),
        (_conv_without(double_pad=False), "You counted the padding once, but it is added on both sides."),
        (_conv_without(ceil=True), "You rounded up, but the division is a floor (ceil_mode exists only for pooling)."),
    ],
)


# --- q3 · 03.3 transposed convolution output size ---------------------------------------------------


def _transpose_settings(generator: torch.Generator, device: str) -> tuple[int, ...]:
    n, kernel, stride = _randint(generator, 1, 12), _randint(generator, 1, 6), _randint(generator, 1, 4)
    dilation = _randint(generator, 1, 3)
    padding = _randint(generator, 0, 3)
    output_padding = _randint(generator, 0, max(stride, dilation))
    while (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1 < 1:
        padding -= 1
    return n, kernel, stride, padding, output_padding, dilation


def conv_transpose_output_size(
    n: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


q3 = chapter.exercise(
    "q3",
    "The output size of a transposed convolution",
    points=1,
    reference=conv_transpose_output_size,
    inputs=_transpose_settings,
    trials=12,
    hints=[
        "A transposed convolution spreads each input position over the output: n inputs stride s apart span "
        "(n - 1)·s + 1 positions.",
        "The kernel's reach adds d·(k - 1); padding removes p from each side; output_padding adds to one side.",
        "Check your formula against nn.ConvTranspose1d on a random input.",
    ],
    misconceptions=[
        (
            lambda n, k, s, p, op, d: (n - 1) * s - 2 * p + k,
            "That is 004's formula, right only with dilation 1 and output_padding 0: it leaves both out.",
        ),
        (
            lambda n, k, s, p, op, d: (n - 1) * s - 2 * p + d * (k - 1) + 1,
            "You left out output_padding, which adds to the output size.",
        ),
        (
            lambda n, k, s, p, op, d: (n + 2 * p - d * (k - 1) - 1) // s + 1,
            "That is the convolution's formula; the transposed convolution inverts it.",
        ),
    ],
)


# --- q4 · 03.3 a BatchNorm training step by hand ----------------------------------------------------


def _bn_case(generator: torch.Generator, device: str) -> tuple[Any, ...]:
    n, c, h, w = (
        _randint(generator, 2, 6),
        _randint(generator, 1, 5),
        _randint(generator, 1, 5),
        _randint(generator, 1, 5),
    )
    x = (torch.randn(n, c, h, w, generator=generator) * 3 + 2).to(device)
    running_mean = torch.randn(c, generator=generator).to(device)
    running_var = torch.rand(c, generator=generator).add(0.5).to(device)
    weight, bias = torch.randn(c, generator=generator).to(device), torch.randn(c, generator=generator).to(device)
    momentum, eps = round(_uniform(generator, 0.05, 0.5), 3), _choice(generator, [1e-5, 1e-3, 0.1])
    return x, running_mean, running_var, weight, bias, momentum, eps


def batch_norm_train(x, running_mean, running_var, weight, bias, momentum, eps):
    new_mean, new_var = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, new_mean, new_var, weight, bias, training=True, momentum=momentum, eps=eps)
    return y, new_mean, new_var


def _bn_wrong(unbiased_norm: bool = False, biased_running: bool = False, swap: bool = False) -> Callable[..., tuple]:
    def wrong(x, running_mean, running_var, weight, bias, momentum, eps):
        dims = (0, 2, 3)
        mean = x.mean(dim=dims)
        var_b, var_u = x.var(dim=dims, unbiased=False), x.var(dim=dims, unbiased=True)
        shape = (1, -1, 1, 1)
        var = var_u if unbiased_norm else var_b
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape) + bias.view(shape)
        m = 1 - momentum if swap else momentum
        new_mean = (1 - m) * running_mean + m * mean
        new_var = (1 - m) * running_var + m * (var_b if biased_running else var_u)
        return y, new_mean, new_var

    return wrong


q4 = chapter.exercise(
    "q4",
    "A BatchNorm2d training step by hand",
    points=2,
    reference=batch_norm_train,
    inputs=_bn_case,
    atol=1e-4,
    rtol=1e-4,
    trials=4,
    forbids=[Uses("torch.nn.BatchNorm2d", "torch.nn.functional.batch_norm", "torch.batch_norm",
                  "torch.native_batch_norm", "torch.nn.functional.instance_norm",
                  says="compute it without calling nn.BatchNorm2d or F.batch_norm")],
    solution_code='''
def batch_norm_train(x, running_mean, running_var, weight, bias, momentum, eps):
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)  # normalise with the biased variance
    shape = (1, -1, 1, 1)
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape) + bias.view(shape)
    unbiased = x.var(dim=(0, 2, 3), unbiased=True)  # the running estimate uses the unbiased one
    return y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * unbiased
''',
    hints=[
        "Each channel has its own mean and variance, taken over the batch and both spatial dimensions: dims (0, 2, 3).",
        "Normalise with the biased variance (unbiased=False); update the running variance with the unbiased one.",
        "running = (1 - momentum)·running + momentum·batch value. Return new tensors: do not change the inputs.",
    ],
    misconceptions=[
        (
            _bn_wrong(unbiased_norm=True),
            "You normalised with the unbiased variance (divide by n - 1): batch norm normalises with the biased "
            "one, and keeps the unbiased one for the running estimate.",
        ),
        (
            _bn_wrong(biased_running=True),
            "Your running variance is updated with the biased batch variance (divide by n); PyTorch updates it with "
            "the *unbiased* one (divide by n - 1).",
        ),
        (
            _bn_wrong(swap=True),
            "Your momentum weighs the old running statistic, but momentum is the weight of the new batch statistic.",
        ),
    ],
)


# --- q5 · 03.4 binary cross-entropy on logits, stably ----------------------------------------------


def _logits_case(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n = _randint(generator, 3, 12)
    logits = torch.randn(n, generator=generator) * _choice(generator, [2.0, 20.0])
    logits[0], logits[1] = 120.0, -150.0  # confident: a naive sigmoid overflows here
    targets = torch.rand(n, generator=generator)
    if _randint(generator, 0, 2):
        targets = targets.round()
    return logits.to(device), targets.to(device)


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets)


def _naive_bce(logits, targets):
    p = torch.sigmoid(logits)
    return -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()


q5 = chapter.exercise(
    "q5",
    "Binary cross-entropy on logits, without overflow",
    points=2,
    reference=bce_with_logits,
    inputs=_logits_case,
    atol=1e-4,
    rtol=1e-4,
    forbids=[Uses("torch.nn.functional.binary_cross_entropy_with_logits", "torch.nn.functional.binary_cross_entropy",
                  "torch.binary_cross_entropy_with_logits", "torch.nn.BCEWithLogitsLoss", "torch.nn.BCELoss",
                  says="work from the formula, with no binary_cross_entropy* function or BCE loss module")],
    solution_code='''
def bce_with_logits(logits, targets):
    x, y = logits, targets
    return (x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))).mean()
''',
    hints=[
        "With p = sigmoid(x), the loss is -(y·log p + (1 - y)·log(1 - p)). Write log p and log(1 - p) in terms of x.",
        "log σ(x) = -log(1 + e^-x) and log(1 - σ(x)) = -x - log(1 + e^-x). Combine: loss = (1 - y)·x + log(1 + e^-x).",
        "For large negative x, e^-x overflows. Use max(x, 0) - x·y + log(1 + e^-|x|) (torch.log1p, torch.exp, abs).",
    ],
    misconceptions=[
        (
            _naive_bce,
            "Your formula goes through sigmoid and log: for large logits sigmoid rounds to exactly 0 or 1 and the "
            "log is infinite.",
        ),
        (
            lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y),
            "BCELoss on sigmoid(x) clamps the log at -100, so confident mistakes all cost 100 instead of growing "
            "with the logit.",
        ),
        (
            lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="sum"),
            "Your loss is the sum over the batch, not the mean.",
        ),
    ],
)


# --- q6 · 03.4 cross-entropy with label smoothing ---------------------------------------------------


def _smoothing_case(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    n, c = _randint(generator, 2, 9), _randint(generator, 2, 7)
    logits = torch.randn(n, c, generator=generator) * 3
    labels = torch.randint(0, c, (n,), generator=generator)
    return logits.to(device), labels.to(device), round(_uniform(generator, 0.05, 0.5), 3)


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _smoothing_spread_to_others(logits, labels, smoothing):
    c = logits.shape[1]
    target = torch.full_like(logits, smoothing / (c - 1))
    target.scatter_(1, labels.unsqueeze(1), 1 - smoothing)
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


q6 = chapter.exercise(
    "q6",
    "Cross-entropy with label smoothing",
    points=2,
    reference=smoothed_cross_entropy,
    inputs=_smoothing_case,
    atol=1e-5,
    rtol=1e-4,
    forbids=[Uses("torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss",
                  says="compute it from log_softmax, with no cross_entropy call or CrossEntropyLoss")],
    solution_code='''
def smoothed_cross_entropy(logits, labels, smoothing):
    log_p = logits.log_softmax(dim=1)
    nll = -log_p.gather(1, labels.unsqueeze(1)).squeeze(1)
    uniform = -log_p.mean(dim=1)  # the smoothing spreads s / C over every class
    return ((1 - smoothing) * nll + smoothing * uniform).mean()
''',
    hints=[
        "Label smoothing replaces the one-hot target by (1 - s)·one_hot + s / C for every class, C = number "
        "of classes.",
        "The loss is then the cross-entropy with that probability target: -(target · "
        "log_softmax(logits)).sum(1).mean().",
        "Equivalently (1 - s)·NLL + s·mean over classes of -log p. Use log_softmax along dim=1.",
    ],
    misconceptions=[
        (
            _smoothing_spread_to_others,
            "You spread s over the other classes only; PyTorch's smoothing gives every class s / C, the true class "
            "included.",
        ),
        (lambda x, y, s: F.cross_entropy(x, y), "You left out the smoothing: that is the plain cross-entropy."),
        (
            lambda x, y, s: (1 - s) * F.cross_entropy(x, y) - s * x.log_softmax(dim=1).sum(dim=1).mean(),
            "You summed the smoothing term over the classes, so it is C times too large: it averages -log p over "
            "them.",
        ),
    ],
)


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


q7 = chapter.exercise(
    "q7",
    "A forward hook that records activations",
    points=2,
    reference=record_activations,
    inputs=_hooked_case,
    properties=[_no_hooks_left],
    trials=4,
    cases=[_nested_case(["block.0", "block", "head"]), _nested_case(["block.1", ""])],
    requires=[Uses("torch.nn.Module.register_forward_hook",
                   "torch.nn.modules.module.register_module_forward_hook", says="use forward hooks")],
    hints=[
        "dict(model.named_modules()) maps each name to its module.",
        "register_forward_hook(hook) calls hook(module, args, output) after the module's forward; store output.",
        "In a loop, a lambda or def captures the loop variable late: bind it with a default argument (name=name). "
        "Remove every hook afterwards with the handle it returned.",
    ],
    misconceptions=[
        (_recorded_inputs, "You recorded each layer's input (args[0]), not its output."),
    ],
)


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


q8 = chapter.exercise(
    "q8",
    "Global pruning to a target sparsity",
    points=2,
    reference=global_prune_masks,
    inputs=_weights_case,
    trials=5,
    # amount × total is never a whole number here (the random amounts are k / total): 3.6 and 2.4
    # round one up and one down, and 0.24 rounds to no entry at all
    cases=[(_DISTINCT, 0.3), (_DISTINCT, 0.2), (_DISTINCT, 0.02)],
    hints=[
        "Global pruning ranks the entries of all tensors together by |w|, so a layer of small weights loses more.",
        "Prune round(amount × total number of entries) of them; the mask is 1.0 where a weight is kept, 0.0 "
        "where pruned.",
        "torch.cat the flattened |w|, find the k smallest (topk(k, largest=False)), then split back to the shapes. "
        "Or use torch.nn.utils.prune.global_unstructured on modules that hold the tensors.",
    ],
    misconceptions=[
        (
            _per_tensor,
            "You pruned each tensor by the same fraction on its own: global pruning ranks all entries together.",
        ),
        (_largest, "You pruned the largest weights; L1 pruning removes the smallest |w|."),
    ],
)


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


q9 = _declare(
    "q9",
    "SGD with momentum and weight decay, from scratch",
    points=3,
    reference=SGDMomentum,
    inputs=_sgd_case,
    judge=_judge_optimizer(
        torch.optim.SGD,
        [
            (
                _SGDDecoupled,
                "You added the weight decay after the momentum (decoupled, as in AdamW), so it bypasses the "
                "momentum buffer; in torch.optim.SGD it is part of the gradient and goes through the buffer.",
            ),
            (_SGDDampened, "Your momentum buffer is an average (m·buf + (1 - m)·g), so it is dampened; SGD's buffer "
                           "is not."),
            (_SGDDefaultsOnly, "Every group used the defaults: the lr, momentum and weight_decay a group sets for "
                               "itself were ignored."),
        ],
    ),
    trials=6,
    cases=[
        _overriding_case({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
                         {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.3}, {}, {"momentum": 0.5}),
        _overriding_case({"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0},
                         {"momentum": 0.9, "weight_decay": 0.01}, {}),
    ],
    on=("cpu",),
    forbids=[Uses("torch.optim.SGD", "torch.optim.sgd.sgd", "torch.optim._functional.sgd",
                  says="write the update yourself, from scratch, not through torch.optim.SGD")],
    case_names=("param_groups", "settings"),
    hints=[
        "Subclass torch.optim.Optimizer and call super().__init__(params, defaults) with a dict of the defaults: it "
        "builds param_groups (each group gets the defaults it does not set) and a per-parameter dict self.state.",
        "In step() (decorated with @torch.no_grad()), loop over self.param_groups and their 'params'; skip "
        "p.grad None.",
        "g = p.grad + weight_decay·p; the buffer starts as a copy of g, then buf = momentum·buf + g; p -= lr·buf.",
    ],
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


q10 = _declare(
    "q10",
    "Adam from scratch",
    points=3,
    reference=MyAdam,
    inputs=_adam_case,
    judge=_judge_optimizer(
        torch.optim.Adam,
        [
            (
                _adam_variant(correct=False),
                "You left out the bias correction: m and v start at zero, so their early values are biased towards "
                "zero.",
            ),
            (_adam_variant(eps_inside=True), "Your eps is inside the square root; Adam's is outside it."),
            (
                _adam_variant(decoupled=True),
                "That is AdamW's decoupled weight decay; in Adam the weight decay is part of the gradient that "
                "feeds the moments.",
            ),
        ],
    ),
    trials=6,
    cases=[
        _overriding_case({"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                         {"lr": 0.1, "betas": (0.5, 0.9), "eps": 0.1, "weight_decay": 0.1}, {},
                         {"betas": (0.8, 0.99)}),
    ],
    on=("cpu",),
    forbids=[Uses("torch.optim.Adam", "torch.optim.AdamW", "torch.optim.adam.adam", "torch.optim._functional.adam",
                  says="write the update yourself, from scratch, not through torch.optim.Adam")],
    case_names=("param_groups", "settings"),
    hints=[
        "Keep two running averages per parameter in self.state[p]: m of the gradient, v of its square, and a "
        "step count t.",
        "m = beta1·m + (1 - beta1)·g; v = beta2·v + (1 - beta2)·g²; then m̂ = m / (1 - beta1^t), v̂ = v / (1 "
        "- beta2^t).",
        "p -= lr · m̂ / (sqrt(v̂) + eps). weight_decay (L2) is added to the gradient first: g = grad + wd·p.",
    ],
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


q11 = chapter.exercise(
    "q11",
    "The StepLR schedule in closed form",
    points=1,
    reference=step_lr_schedule,
    inputs=_schedule_case,
    rtol=1e-9,
    atol=1e-12,
    trials=6,
    forbids=[Uses("torch.optim.lr_scheduler.StepLR", "torch.optim.lr_scheduler.MultiStepLR",
                  "torch.optim.lr_scheduler.LambdaLR", "torch.optim.lr_scheduler.LRScheduler",
                  says="compute it from a formula, not by running a scheduler")],
    solution_code='''
def step_lr_schedule(base_lr, step_size, gamma, epochs):
    periods = torch.div(torch.arange(epochs, dtype=torch.float64), step_size, rounding_mode="floor")
    return base_lr * gamma**periods
''',
    hints=[
        "Epoch e (counting from 0) trains at base_lr · gamma^k, where k is how many full step_size periods "
        "have passed.",
        "k = e // step_size. Build e with torch.arange(epochs, dtype=torch.float64).",
        "To test your formula (outside the function), run torch.optim.lr_scheduler.StepLR and read "
        "optimizer.param_groups[0]['lr'] before each scheduler.step().",
    ],
    misconceptions=[
        (
            _closed(restart=True),
            "StepLR never returns to the initial rate (000 says it does at the last epoch): it keeps decaying.",
        ),
        (_closed(offset=1), "Off by one: the first step_size epochs (0 to step_size - 1) use base_lr."),
        (
            _closed(exponential=True),
            "That decays every epoch (ExponentialLR); StepLR decays once per step_size epochs.",
        ),
    ],
)


# --- q12 · 03.7 a checkpoint that resumes exactly ---------------------------------------------------


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
    buffer = io.BytesIO()
    try:
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=True)
    except Exception as error:  # what torch.save or the safe unpickler says about the learner's objects
        raise Mismatch(
            f"Saving and loading your checkpoint with weights_only=True failed ({type(error).__name__}): it loads "
            "tensors, numbers and plain containers, not whole models, optimizers or schedulers."
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


q12 = _declare(
    "q12",
    "A checkpoint that resumes exactly",
    points=2,
    reference=make_checkpoint,
    inputs=_checkpoint_case,
    judge=_judge_checkpoint,
    trials=3,
    on=("cpu",),
    hints=[
        "Everything that changes during training must be saved: the weights and buffers, the optimizer's moments, "
        "the scheduler's position, and the epoch.",
        "Each of model, optimizer and scheduler has a state_dict(); a checkpoint is a dict of those and the epoch.",
        "torch.load(weights_only=True) refuses modules and optimizers themselves: store their state_dict()s.",
    ],
)
