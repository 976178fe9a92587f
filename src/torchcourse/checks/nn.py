"""Exercises of chapter 03 · nn (``exercises/03_nn.ipynb``).

Most answers here are functions compared with a reference on random inputs, as in the other
chapters. Five are judged by what they *do* rather than what they return, through :class:`JudgedExercise`'s
``judge``: a module factory (are its parameters registered, does it compute the right thing), two
optimizers written from scratch (trained side by side with ``torch.optim`` over a grid of settings and
parameter groups, the weights compared), and a checkpoint (saved, loaded with ``weights_only=True``
into fresh objects, and training resumed: it must continue exactly like the uninterrupted run), and a complete
training loop (run on hidden cases while its forward passes and steps are recorded).

This module declares every exercise, in order, and holds the formula exercises (q2 to q6: convolution
shapes, batch norm, the two losses). The rest live beside it, and everything is re-exported here:

- :mod:`._nn_modules`: q1 (the module factory's judge), q7 (forward hooks), q8 (pruning masks), and the
  chapter's random-setting helpers ``_uniform`` and ``_choice``;
- :mod:`._nn_optim`: q9 and q10 (the optimizers' judge, references and wrong optimizers), q11 (StepLR);
- :mod:`._nn_losses`: q5 and q6 (the losses' cases, references and wrong formulas);
- :mod:`._nn_checkpoint`: q12 (the checkpoint's judge);
- :mod:`._nn_loop`: q13 (the training loop's judge, which watches every forward pass and step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._nn_checkpoint import _checkpoint_case, _judge_checkpoint, make_checkpoint
from ._nn_loop import _judge_fit, _loop_case, fit
from ._nn_losses import (
    _logits_case,
    _naive_bce,
    _smoothing_case,
    _smoothing_spread_to_others,
    bce_with_logits,
    smoothed_cross_entropy,
)
from ._nn_modules import (
    _DISTINCT,
    _choice,
    _hooked_case,
    _judge_mlp,
    _largest,
    _nested_case,
    _no_hooks_left,
    _per_tensor,
    _recorded_inputs,
    _sizes,
    _uniform,
    _weights_case,
    build_mlp,
    global_prune_masks,
    record_activations,
)
from ._nn_optim import (
    MyAdam,
    SGDMomentum,
    _adam_case,
    _adam_variant,
    _closed,
    _judge_optimizer,
    _overriding_case,
    _schedule_case,
    _sgd_case,
    _SGDDampened,
    _SGDDecoupled,
    _SGDDefaultsOnly,
    step_lr_schedule,
)
from .core import Chapter, JudgedExercise, Uses
from .core import randint as _randint

chapter = Chapter("03_nn", "nn")


def _declare(id: str, title: str, **options: Any) -> JudgedExercise:  # noqa: A002
    return chapter.register(JudgedExercise(chapter, id, title, **options))


# --- q1 · 03.1/03.2 a module whose parameters all register (judged in _nn_modules) -------------------

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


# --- q5 · 03.4 binary cross-entropy on logits, stably (case, reference, wrong losses in _nn_losses) ---


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


# --- q6 · 03.4 cross-entropy with label smoothing (case, reference, wrong losses in _nn_losses) --------


q6 = chapter.exercise(
    "q6",
    "Cross-entropy with label smoothing",
    points=2,
    reference=smoothed_cross_entropy,
    inputs=_smoothing_case,
    atol=1e-5,
    rtol=1e-4,
    forbids=[Uses("torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss",
                  says="compute it from the formula, with no cross_entropy call or CrossEntropyLoss")],
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


# --- q7 · 03.5 a hook that records activations (in _nn_modules) --------------------------------------

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


# --- q8 · 03.5 global pruning to a target sparsity (in _nn_modules) ----------------------------------

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


# --- q9, q10 · 03.6 optimizers written from scratch (judged in _nn_optim) ----------------------------

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


# --- q11 · 03.6 the StepLR schedule in closed form (reference in _nn_optim) --------------------------

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


# --- q12 · 03.7 a checkpoint that resumes exactly (judged in _nn_checkpoint) -------------------------

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


# --- q13 · 03.1/03.8 a complete training loop (judged in _nn_loop) -----------------------------------

q13 = _declare(
    "q13",
    "A complete training loop",
    points=2,
    reference=fit,
    inputs=_loop_case,
    judge=_judge_fit,
    trials=3,  # trial 1 hands the model in eval mode; trials 0 and 2 in train mode, for 2 and 3 epochs
    on=("cpu",),
    time_limit=20,
    hints=[
        "Each epoch: model.train(), then for every training batch clear the gradients, run the model, take the "
        "loss, backward(), optimizer.step(). Then model.eval() and the test accuracy.",
        "Evaluate inside `with torch.no_grad():`; count correct predictions with (model(x).argmax(dim=1) == "
        "y).sum().item() and divide by len(test_loader.dataset) (the last batch is smaller).",
        "Remember model.training at the start and give it back at the end: model.train(was_training).",
    ],
)
