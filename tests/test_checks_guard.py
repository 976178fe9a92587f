"""The framework's defences, on a toy chapter: time limits, exceptions, global state, inputs, layouts,
declared edge cases, instructions, the second device, misconceptions and captured output.

Every class of weakness has a test here; test_checks_all.py runs the same classes against every
exercise of every chapter.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from torchcourse.checks.core import Chapter, Mismatch, Status, Uses, call_answer, compare


def _vectors(generator, device):
    n = int(torch.randint(3, 8, (1,), generator=generator))
    return (torch.randn(n, generator=generator).to(device),)


@pytest.fixture
def chapter() -> Chapter:
    return Chapter("99_toy", "Toy")


@pytest.fixture
def double(chapter):
    return chapter.exercise("q1", "Double it", points=1, reference=lambda x: x * 2, inputs=_vectors,
                            hints=["Multiply."], time_limit=0.3)


def _incorrect(exercise, answer, *words):
    outcome = exercise.grade(answer)
    assert outcome.status is Status.INCORRECT, outcome.message
    for word in words:
        assert word in outcome.message, f"{word!r} not in {outcome.message!r}"
    return outcome.message


# --- time limits ---------------------------------------------------------------------------------


def _forever(x):
    while True:
        pass


def _swallows(x):
    while True:
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - a learner's bare except
            pass


def test_a_function_that_never_returns_is_stopped(double):
    start = time.perf_counter()
    _incorrect(double, _forever, "did not return within 0.3 s", "infinite loop")
    assert time.perf_counter() - start < 5


def test_a_bare_except_cannot_swallow_the_time_limit(double):
    _incorrect(double, _swallows, "did not return within")


def test_sleeping_is_stopped(double):
    _incorrect(double, lambda x: time.sleep(60), "did not return within")


def test_the_time_limit_works_outside_the_main_thread(double):
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(double.grade(_forever)))
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    assert outcomes[0].status is Status.INCORRECT and "did not return" in outcomes[0].message
    assert double.grade(lambda x: x * 2).status is Status.CORRECT


def test_keyboard_interrupt_propagates(double):
    def interrupted(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        double.grade(interrupted)
    assert double.grade(lambda x: x + x).status is Status.CORRECT


def test_a_time_limit_scale_stretches_every_limit(double, monkeypatch):
    monkeypatch.setenv("TORCHCOURSE_TIME_LIMIT_SCALE", "2")
    _incorrect(double, _forever, "within 0.6 s")


# --- exceptions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [SystemExit(1), GeneratorExit(), StopIteration(), BaseException("odd")])
def test_any_base_exception_is_feedback(double, error):
    def raises(x):
        raise error

    message = _incorrect(double, raises, f"raised {type(error).__name__}")
    if isinstance(error, SystemExit):
        assert "sys.exit()" in message


def test_the_error_names_the_learners_line(double):
    def broken(x):
        return x.no_such_method()

    _incorrect(double, broken, "raised AttributeError", "of broken)")


# --- global state -------------------------------------------------------------------------------------


def _changer(change):
    def answer(x):
        change()
        return x * 2

    return answer


CHANGES = {
    "default dtype": lambda: torch.set_default_dtype(torch.float64),
    "grad mode": lambda: torch.set_grad_enabled(False),
    "grad mode ": lambda: torch.no_grad().__enter__(),
    "seed": lambda: torch.manual_seed(0),
    "default device": lambda: torch.set_default_device("meta"),
    "default device ": lambda: torch.device("meta").__enter__(),
    "thread count": lambda: torch.set_num_threads(max(1, torch.get_num_threads() % 2 + 1)),
    "print options": lambda: torch.set_printoptions(precision=2),
    "deterministic": lambda: torch.use_deterministic_algorithms(True),
    "anomaly": lambda: torch.autograd.set_detect_anomaly(True),
    "environment": lambda: os.environ.__setitem__("TORCHCOURSE_TOY_VARIABLE", "1"),
    "matmul precision": lambda: torch.set_float32_matmul_precision("medium"),
    "autocast": lambda: torch.set_autocast_enabled("cpu", True),
}


def _state():
    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.initial_seed(), torch.get_default_device(),
            torch.get_num_threads(), torch._tensor_str.PRINT_OPTS.precision,
            torch.are_deterministic_algorithms_enabled(), torch.is_anomaly_enabled(),
            "TORCHCOURSE_TOY_VARIABLE" in os.environ, torch.get_float32_matmul_precision(),
            torch.is_autocast_enabled("cpu"), len(torch.overrides._get_current_function_mode_stack()),
            torch.get_rng_state())


@pytest.mark.parametrize("name", list(CHANGES), ids=[n.strip() + ("-context" if n.endswith(" ") else "")
                                                     for n in CHANGES])
def test_changing_global_state_is_named_and_undone(double, name):
    before = _state()
    _incorrect(double, _changer(CHANGES[name]), "changed global state", name.strip())
    after = _state()
    assert before[:-1] == after[:-1] and torch.equal(before[-1], after[-1])
    assert double.grade(lambda x: x * 2).status is Status.CORRECT


def test_an_initialised_process_group_is_named_and_destroyed(double):
    if dist.is_initialized():  # chapter 05's checks keep a group of one for the session
        dist.destroy_process_group()

    def starts_a_group(x):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        return x * 2

    _incorrect(double, starts_a_group, "process group")
    assert not dist.is_initialized()


def test_drawing_from_the_global_generator_when_told_not_to(chapter):
    ex = chapter.exercise("q2", "Draw", points=1, reference=lambda g, n: torch.rand(n, generator=g),
                          inputs=lambda g, d: (torch.Generator().manual_seed(randint(g)), 3), hints=["-"],
                          global_rng=False)
    assert ex.grade(lambda g, n: torch.rand(n, generator=g)).status is Status.CORRECT
    state = torch.get_rng_state()

    def also_global(g, n):
        torch.rand(1)
        return torch.rand(n, generator=g)

    _incorrect(ex, also_global, "global random generator's state")
    assert torch.equal(state, torch.get_rng_state())


def randint(g):
    return int(torch.randint(0, 1000, (1,), generator=g))


# --- inputs left alone --------------------------------------------------------------------------------


def _leaf(generator, device):
    return (torch.randn(4, generator=generator).to(device).requires_grad_(),)


@pytest.fixture
def square(chapter):
    return chapter.exercise("q3", "Square", points=1, reference=lambda x: (x * x).detach(), inputs=_leaf,
                            hints=["-"])


def test_switching_requires_grad_off_is_caught(square):
    _incorrect(square, lambda x: (x.requires_grad_(False) * x).detach(), "requires_grad", "`x`", "off")


def test_filling_the_inputs_grad_is_caught(square):
    def backward_on_input(x):
        (x * x).sum().backward()
        return (x * x).detach()

    _incorrect(square, backward_on_input, ".grad of its input `x`")


def test_a_version_bump_with_the_same_values_is_caught(square):
    def round_trip(x):
        with torch.no_grad():
            x.mul_(1)
        return (x * x).detach()

    _incorrect(square, round_trip, "version counter")


def test_module_parameters_left_alone(chapter):
    def model_case(generator, device):
        torch_seed = randint(generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            model = torch.nn.Linear(3, 2)
        return model.to(device), torch.randn(4, 3, generator=generator).to(device)

    ex = chapter.exercise("q4", "Forward", points=1, reference=lambda m, x: m(x).detach(), inputs=model_case,
                          hints=["-"])
    assert ex.grade(lambda m, x: m(x).detach()).status is Status.CORRECT

    def freezes(m, x):
        m.weight.requires_grad_(False)
        return m(x).detach()

    _incorrect(ex, freezes, "parameter weight")


# --- types and layouts before values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x: (x * 2).to_sparse(), "sparse"),
        (lambda x: (x * 2).numpy(), "NumPy"),
        (lambda x: (x * 2).tolist(), "list"),
        (lambda x: float((x * 2).sum()), "Python number"),
        (lambda x: (x * 2).to(torch.complex64), "complex"),
        (lambda x: (x * 2).unsqueeze(0), "wrong shape"),
    ],
    ids=["sparse", "numpy", "list", "scalar", "complex", "shape"],
)
def test_types_and_layouts_get_clear_messages(double, answer, needle):
    _incorrect(double, answer, needle)


def test_zero_d_versus_one_element():
    with pytest.raises(Mismatch, match="0-d tensor"):
        compare(torch.ones(1), torch.tensor(1.0))


def test_named_tuple_versus_plain():
    Pair = collections.namedtuple("Pair", "values indices")
    compare(Pair(torch.ones(1), torch.ones(1)), (torch.ones(1), torch.ones(1)))  # a named tuple is a tuple
    with pytest.raises(Mismatch, match="named tuple with the fields values, indices"):
        compare((torch.ones(1), torch.ones(1)), Pair(torch.ones(1), torch.ones(1)))
    compare(torch.ones(3).topk(2), torch.ones(3).topk(2))


def test_a_comparison_that_fails_is_a_mismatch_not_a_crash():
    class Weird:
        def __eq__(self, other):
            raise RuntimeError("no")

    with pytest.raises(Mismatch, match="could not be compared"):
        compare(Weird(), object())


def test_what_is_wrong_not_the_fix():
    with pytest.raises(Mismatch, match="255 times the right one"):
        compare(torch.tensor([255.0, 510.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(Mismatch, match="wrong sign"):
        compare(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(Mismatch, match="off by the same amount"):
        compare(torch.tensor([2.0, 3.0, 7.0]), torch.tensor([1.0, 2.0, 6.0]))
    with pytest.raises(Mismatch, match="wrong places"):
        compare(torch.tensor([2.0, 1.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))


# --- declared edge cases and the trial number -------------------------------------------------------------


def test_declared_cases_run_on_every_device(chapter):
    ex = chapter.exercise("q5", "Abs", points=1, reference=torch.abs, inputs=_vectors, hints=["-"],
                          cases=[(torch.tensor([-1.0]),), lambda device: (torch.zeros(0, device=device),)])
    assert ex.total_cases == 5
    assert ex.grade(lambda x: x.abs()).status is Status.CORRECT
    assert "5 hidden test cases" in ex.grade(lambda x: x.abs()).message
    _incorrect(ex, lambda x: x if len(x) == 1 else x.abs(), "hidden test 4 of 5")


def test_inputs_may_take_the_trial(chapter):
    seen = []

    def by_trial(generator, device, trial):
        seen.append(trial)
        return (torch.randn(trial + 1, generator=generator).to(device),)

    ex = chapter.exercise("q6", "Neg", points=1, reference=torch.neg, inputs=by_trial, hints=["-"])
    assert ex.grade(torch.neg).status is Status.CORRECT
    assert {0, 1, 2} <= set(seen)


# --- instructions ------------------------------------------------------------------------------------------


def _labels(generator, device):
    return torch.randint(0, 4, (5,), generator=generator).to(device), 4


def _one_hot(labels, n):
    return torch.zeros(len(labels), n, device=labels.device).scatter_(1, labels.unsqueeze(1), 1.0)


def test_an_instruction_is_checked_by_the_calls(chapter):
    ex = chapter.exercise("q7", "One-hot", points=1, reference=_one_hot, inputs=_labels, hints=["-"],
                          requires=[Uses("torch.Tensor.scatter_", "torch.Tensor.scatter",
                                         says="build it with scatter_")])
    assert ex.grade(_one_hot).status is Status.CORRECT
    _incorrect(ex, lambda labels, n: torch.nn.functional.one_hot(labels, n).float(), "build it with scatter_",
               "never called it")


def test_a_forbidden_call_and_a_counted_one(chapter):
    def grad_case(generator, device):
        return (torch.randn(3, generator=generator).to(device), 2)

    def by_hand(x, k):
        return 2 * x * k

    ex = chapter.exercise("q8", "Grad", points=1, reference=by_hand, inputs=grad_case, hints=["-"],
                          forbids=["torch.autograd.grad", "torch.Tensor.backward"])
    assert ex.grade(by_hand).status is Status.CORRECT

    def with_autograd(x, k):
        x = x.detach().requires_grad_()
        (g,) = torch.autograd.grad((x * x * k).sum(), x)
        return g

    _incorrect(ex, with_autograd, "rules this out", "autograd.grad")

    def twice(x, k):
        x = x.detach().requires_grad_()
        for _ in range(k):
            (x * x / k * k).sum().backward()
        return x.grad.detach() / 1

    counted = chapter.exercise("q9", "Counted", points=1, reference=by_hand, inputs=grad_case, hints=["-"],
                               requires=[Uses("torch.Tensor.backward", count=lambda x, k: k)])
    assert counted.grade(twice).status is Status.CORRECT

    def once(x, k):
        x = x.detach().requires_grad_()
        (x * x * k).sum().backward()
        return x.grad.detach()

    _incorrect(counted, once, "called it 1 times, not 2")


def test_python_level_calls_are_recorded_too(chapter):
    def model_case(generator, device):
        return (torch.randn(2, 3, generator=generator).to(device),)

    def with_hook(x):
        seen = []
        layer = torch.nn.Identity()
        layer.register_forward_hook(lambda m, i, o: seen.append(o))
        layer(x)
        return seen[0] * 1

    ex = chapter.exercise("q10", "Hook", points=1, reference=with_hook, inputs=model_case, hints=["-"],
                          requires=["torch.nn.Module.register_forward_hook"])
    assert ex.grade(with_hook).status is Status.CORRECT
    _incorrect(ex, lambda x: x * 1, "register_forward_hook")
    assert "register_forward_hook" not in vars(torch.nn.Identity)  # the recorder is gone again


# --- the second device -----------------------------------------------------------------------------------


def test_a_missing_device_argument_fails_without_a_gpu(chapter):
    def offsets(x):
        return x + torch.arange(len(x), device=x.device)

    ex = chapter.exercise("q11", "Offsets", points=1, reference=offsets, inputs=_vectors, hints=["-"])
    assert ex.grade(offsets).status is Status.CORRECT
    _incorrect(ex, lambda x: x + torch.arange(len(x)), "meta")
    positions = chapter.exercise("q14", "Positions", points=1, inputs=_vectors, hints=["-"],
                                 reference=lambda x: torch.arange(len(x), device=x.device))
    _incorrect(positions, lambda x: torch.arange(len(x)), "came back on cpu")


def test_an_operation_meta_cannot_run_is_inconclusive(chapter):
    def total(x):
        return torch.tensor([x.sum().item()], device=x.device)

    ex = chapter.exercise("q12", "Total", points=1, reference=lambda x: x.sum().reshape(1), inputs=_vectors,
                          hints=["-"], atol=1e-6, rtol=1e-6)
    assert ex.grade(total).status is Status.CORRECT


# --- feedback ---------------------------------------------------------------------------------------------


def test_a_misconception_must_explain_every_failing_case(chapter):
    ex = chapter.exercise("q13", "Double", points=1, reference=lambda x: x * 2, inputs=_vectors, hints=["-"],
                          misconceptions=[(lambda x: x + 2, "You added 2.")])
    assert _incorrect(ex, lambda x: x + 2).startswith("You added 2.")
    two_mistakes = _incorrect(ex, lambda x: x + 2 if len(x) < 5 else x * 3)
    assert "You added 2." not in two_mistakes


def test_printed_output_is_captured_and_shown(double, capsys):
    def chatty(x):
        for i in range(100):
            print("step", i)
        return x * 3

    message = _incorrect(double, chatty, "Your function printed:", "step 0", "more lines")
    assert "step 99" not in message
    assert "step" not in capsys.readouterr().out


def test_call_answer_guards_a_direct_call():
    with pytest.raises(Mismatch, match="raised SystemExit"):
        call_answer(lambda: exit(3))
    assert call_answer(lambda: np.int64(3)) == 3


@pytest.mark.parametrize("context", ["absent", "set"])
def test_the_default_device_context_is_restored_exactly(double, context):
    """torch 2.6-2.10's ``get_default_device()`` raises once ``device_context`` holds ``None``: a restore that
    writes ``None`` where the attribute was absent poisons every later call. Absent stays absent, and a set
    context comes back as the same object."""
    import torch.utils._device as device_module

    holder = torch._GLOBAL_DEVICE_CONTEXT
    had, old = hasattr(holder, "device_context"), getattr(holder, "device_context", None)
    old_current = device_module.CURRENT_DEVICE
    try:
        if context == "absent":
            if hasattr(holder, "device_context"):
                del holder.device_context
        else:
            torch.set_default_device("cpu")
        before = getattr(holder, "device_context", "absent")
        _incorrect(double, _changer(lambda: torch.set_default_device("meta")), "changed global state", "default device")
        assert getattr(holder, "device_context", "absent") is before
        assert torch.get_default_device() == torch.device("cpu")
    finally:
        if context == "set":
            torch.set_default_device(None)  # pops the DeviceContext mode that set_default_device pushed
        if had:
            holder.device_context = old
        elif hasattr(holder, "device_context"):
            del holder.device_context
        device_module.CURRENT_DEVICE = old_current
        assert not any(type(m).__name__ == "DeviceContext" for m in torch.overrides._get_current_function_mode_stack())
