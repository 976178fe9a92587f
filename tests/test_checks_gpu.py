"""Chapter 05 · GPU: every reference passes and typical wrong answers get the right feedback."""

from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
from grading import accepted, rejected

from torchcourse.checks import gpu
from torchcourse.checks._gpu_allreduce import _world_of
from torchcourse.checks.core import Status


@pytest.mark.parametrize("ex", list(gpu.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_reference_passes(ex):
    assert ex.grade(ex.reference).status is Status.CORRECT


def test_chapter_has_at_least_six_exercises():
    assert len(gpu.chapter.exercises) >= 6
    assert list(gpu.chapter.exercises) == [f"q{i}" for i in range(1, len(gpu.chapter.exercises) + 1)]


# --- q1 · device-mismatch bug -------------------------------------------------------------------


def test_q1_constants_on_the_cpu_are_caught_without_a_gpu():
    def buggy(images, mean, std):
        mean = torch.tensor(mean).view(1, 3, 1, 1)
        std = torch.tensor(std).view(1, 3, 1, 1)
        return (images - mean) / std

    rejected(gpu.q1, buggy, "meta", "no device= argument")


def test_q1_moving_the_data_instead_of_the_constants():
    def to_cpu(images, mean, std):
        images = images.cpu() if images.device.type != "meta" else images.to("cpu", copy=False)
        return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    rejected(gpu.q1, to_cpu, "meta")


def test_q1_swapped_mean_and_std():
    def swapped(images, mean, std):
        return gpu.normalize(images, std, mean)

    rejected(gpu.q1, swapped, "swapped mean and std")


def test_q1_multiplying_by_std():
    def times(images, mean, std):
        m = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
        return (images - m) * torch.tensor(std, device=images.device).view(1, 3, 1, 1)

    rejected(gpu.q1, times, "multiplied by the standard deviation")


def test_q1_hard_coded_cuda_fails_on_a_cpu_only_machine():
    if torch.cuda.is_available():
        pytest.skip("only meaningful without CUDA")

    def cuda_only(images, mean, std):
        m = torch.tensor(mean).cuda().view(1, 3, 1, 1)
        return (images - m) / torch.tensor(std).cuda().view(1, 3, 1, 1)

    rejected(gpu.q1, cuda_only, "raised RuntimeError")


# --- q2 · to NumPy ---------------------------------------------------------------------------------


def test_q2_numpy_without_detach():
    rejected(gpu.q2, lambda t: t.numpy(), "raised RuntimeError", "requires grad")


def test_q2_cpu_without_detach():
    rejected(gpu.q2, lambda t: t.cpu().numpy(), "requires grad")


def test_q2_returning_a_tensor_or_list():
    rejected(gpu.q2, lambda t: t.detach().cpu(), "NumPy array")
    rejected(gpu.q2, lambda t: t.detach().cpu().tolist(), "NumPy array")


def test_q2_switching_off_requires_grad_in_place():
    rejected(gpu.q2, lambda t: t.requires_grad_(False).cpu().numpy(), "switched off requires_grad")


def test_q2_wrong_dtype():
    rejected(gpu.q2, lambda t: t.detach().cpu().double().numpy(), "dtype")


# --- q3 · model and optimizer state ------------------------------------------------------------------


def test_q3_moving_only_the_model_leaves_the_optimizer_state_behind():
    def model_only(model, optimizer, target):
        return model.to(target), optimizer

    rejected(gpu.q3, model_only, "exp_avg", "not the optimizer's state")


def test_q3_a_copy_of_the_model_detaches_the_optimizer():
    def copied(model, optimizer, target):
        return copy.deepcopy(model).to(target), optimizer

    rejected(gpu.q3, copied, "does not hold your model's parameters")


def test_q3_a_new_optimizer_forgets_its_state():
    def fresh(model, optimizer, target):
        model.to(target)
        return model, torch.optim.Adam(model.parameters(), lr=0.01)

    rejected(gpu.q3, fresh, "lost its state")


def test_q3_moving_only_the_state():
    def state_only(model, optimizer, target):
        for state in optimizer.state.values():
            for key, value in state.items():
                if key != "step":
                    state[key] = value.to(target)
        return model, optimizer

    rejected(gpu.q3, state_only, "Model parameter")


def test_q3_returning_nothing():
    def no_return(model, optimizer, target):
        gpu.move_training(model, optimizer, target)

    rejected(gpu.q3, no_return, "(model, optimizer)")


# --- q4 · CUDA_VISIBLE_DEVICES ----------------------------------------------------------------------


def test_q4_physical_numbers():
    rejected(gpu.q4, lambda visible, n: list(range(n)), "renumbers")


def test_q4_sorted_instead_of_listed_order():
    rejected(gpu.q4, gpu._sorted_indices, "order of the list")


def test_q4_none_for_hidden():
    def none_hidden(visible, n):
        return [None if i < 0 else i for i in gpu.logical_indices(visible, n)]

    rejected(gpu.q4, none_hidden, "expected a number")


def test_q4_one_based():
    def one_based(visible, n):
        return [i + 1 if i >= 0 else -1 for i in gpu.logical_indices(visible, n)]

    rejected(gpu.q4, one_based, "value is not")


def test_q4_an_invalid_entry_ends_the_list():
    rejected(gpu.q4, gpu._skips_invalid, "ends the list")


def test_q4_a_repeated_gpu_hides_them_all():
    rejected(gpu.q4, gpu._ignores_repeats, "sees no GPU at all")


def test_q4_the_simplified_rule_is_rejected():
    def every_number(visible, n):  # the rule before the real one: each listed number, wherever it stands
        shown = [int(p) for p in visible.split(",") if p.strip()]
        return [shown.index(g) if g in shown else -1 for g in range(n)]

    assert gpu.q4.grade(every_number).status is not Status.CORRECT


def test_q4_agrees_with_torch_parser(monkeypatch):
    parse = getattr(torch.cuda, "_parse_visible_devices", None)
    if parse is None:
        pytest.skip("this torch has no _parse_visible_devices")
    for t in range(gpu.q4.total_cases):
        visible, n = gpu.q4.make_case(t, "cpu")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        listed = parse()
        ends = next((i for i, g in enumerate(listed) if g >= n), len(listed))  # what NVML counts: up to a missing GPU
        assert gpu._cuda_visible_order(visible, n) == listed[:ends], visible


# --- q5 · autocast -------------------------------------------------------------------------------------


def test_q5_no_autocast():
    rejected(gpu.q5, lambda x, w: x @ w.T, "autocast")


def test_q5_float16():
    rejected(gpu.q5, lambda x, w: (x.half() @ w.half().T).float(), "float16")


def test_q5_returns_bfloat16():
    def bf16(x, w):
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return x @ w.T

    rejected(gpu.q5, bf16, "dtype")


def test_q5_manual_casts_are_equivalent():
    def manual(x, w):
        return (x.bfloat16() @ w.bfloat16().T).to(x.dtype)

    assert gpu.q5.grade(manual).status is Status.CORRECT


# --- q6 · DataParallel scatter sizes -------------------------------------------------------------------


def test_q6_reference_matches_torch_chunk():
    for batch in range(1, 40):
        for n in range(1, 9):
            chunks = [len(c) for c in torch.arange(batch).chunk(n)]
            assert gpu.scatter_sizes(batch, n) == chunks


def test_q6_array_split_rule():
    rejected(gpu.q6, lambda b, n: [b // n + (1 if i < b % n else 0) for i in range(n)], "array_split")


def test_q6_floor_division():
    rejected(gpu.q6, lambda b, n: [b // n] * n, "remainder")


def test_q6_ceil_for_every_device():
    rejected(gpu.q6, lambda b, n: [-(-b // n)] * n, "item")


# --- q7 · the all-reduce of a DDP step ------------------------------------------------------------------


def test_q7_no_all_reduce():
    rejected(gpu.q7, lambda grads: grads, "unchanged")


def test_q7_sum_without_division():
    def summed(grads):
        for g in grads:
            dist.all_reduce(g)
        return grads

    rejected(gpu.q7, summed, "sum over the ranks")


def test_q7_fixed_divisor():
    def halved(grads):
        for g in grads:
            dist.all_reduce(g)
            g /= 3  # the world size of an example
        return grads

    rejected(gpu.q7, halved, "whatever the world size")


def test_q7_new_tensors_instead_of_in_place():
    def copies(grads):
        out = []
        for g in grads:
            g = g.clone()
            dist.all_reduce(g)
            out.append(g / dist.get_world_size())
        return out

    rejected(gpu.q7, copies, "in place")


def test_q7_leaves_torch_distributed_as_it_was():
    before = (dist.all_reduce, dist.get_world_size)
    gpu.q7.grade(gpu.q7.reference)
    assert (dist.all_reduce, dist.get_world_size) == before


# --- q8 · a timing function -----------------------------------------------------------------------------


def test_q8_no_synchronize_measures_the_launch():
    def unsynced(fn, sync, repeats):
        fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    rejected(gpu.q8, unsynced, "only the launch")


def test_q8_no_warm_up():
    def cold(fn, sync, repeats):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    rejected(gpu.q8, cold, "No warm-up")


def test_q8_mean_is_pulled_up_by_outliers():
    def mean(fn, sync, repeats):
        fn()
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return (time.perf_counter() - start) / repeats

    rejected(gpu.q8, mean, "median")


def test_q8_warm_up_without_sync():
    def no_sync_after_warmup(fn, sync, repeats):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    rejected(gpu.q8, no_sync_after_warmup, "nothing waits for it to finish")


def test_q8_returns_a_tensor():
    rejected(gpu.q8, lambda fn, sync, repeats: torch.tensor(1.0), "Python float")


def test_q7_asynchronous_all_reduce_applies_on_wait():
    def waits(grads):
        handles = [dist.all_reduce(g, async_op=True) for g in grads]
        for handle in handles:
            handle.wait()
        for g in grads:
            g /= dist.get_world_size()
        return grads

    def forgets_to_wait(grads):
        for g in grads:
            dist.all_reduce(g, async_op=True)
            g /= dist.get_world_size()
        return grads

    assert gpu.q7.grade(waits).status is Status.CORRECT
    rejected(gpu.q7, forgets_to_wait, "wait()")


def test_q7_worlds_of_several_sizes():
    sizes = {_world_of(gpu.q7.make_case(t, "cpu")) for t in range(gpu.q7.total_cases)}
    assert len(sizes) >= 2 and sizes != {3}


def _q4_with_a_dict(visible, n):
    logical = {}
    for entry in visible.split(","):
        if not entry.strip().isdigit() or int(entry) >= n:
            break
        if int(entry) in logical:
            logical = {}
            break
        logical[int(entry)] = len(logical)
    return [logical.get(k, -1) for k in range(n)]


def _q4_with_itertools(visible, n):
    import itertools

    valid = list(itertools.takewhile(lambda e: e.strip().isdigit() and int(e) < n, visible.split(",")))
    shown = [int(e) for e in valid] if len(set(map(int, valid))) == len(valid) else []
    return [shown.index(k) if k in shown else -1 for k in range(n)]


CORRECT = {
    "q1": [gpu.normalize,
           lambda im, m, s: (im - im.new_tensor(m)[None, :, None, None]) / im.new_tensor(s)[None, :, None, None],
           lambda im, m, s: (im - torch.as_tensor(m, device=im.device).view(-1, 1, 1))
           / torch.as_tensor(s, device=im.device).view(-1, 1, 1)],
    "q2": [gpu.to_numpy, lambda t: t.detach().to("cpu").numpy(), lambda t: t.cpu().detach().numpy().copy()],
    "q4": [gpu.logical_indices, _q4_with_a_dict, _q4_with_itertools],
    "q5": [gpu.mixed_linear,
           lambda x, w: _autocast_linear(x, w),
           lambda x, w: _autocast_matmul(x, w)],
    "q6": [gpu.scatter_sizes, lambda b, n: [len(c) for c in torch.arange(b).chunk(n)],
           lambda b, n: [c.numel() for c in torch.empty(b).chunk(n)]],
}


def _move_everything(model, optimizer, target):
    model.to(target)
    for state in optimizer.state.values():
        for key, value in state.items():
            state[key] = value.to(target)  # the step counter too: Adam accepts it either way
    return model, optimizer


def _move_through_state_dict(model, optimizer, target):
    saved = optimizer.state_dict()
    model.to(target)
    optimizer.load_state_dict(saved)  # casts each state tensor to its parameter's device and dtype
    return model, optimizer


def _move_per_parameter(model, optimizer, target):
    model.to(target)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key in [k for k, v in state.items() if torch.is_tensor(v) and v.dim() > 0]:
                state[key] = state[key].to(p.device, p.dtype)
    return model, optimizer


def _average_dividing_first(grads):
    for g in grads:
        g /= dist.get_world_size()
        dist.all_reduce(g)
    return grads


def _average_with_avg_op(grads):
    for g in grads:
        dist.all_reduce(g, op=dist.ReduceOp.AVG)
    return grads


def _average_bucketed(grads):
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return grads


def _time_in_nanoseconds(fn, sync, repeats):
    for _ in range(2):  # warm-up
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        sync()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e9


def _time_with_numpy(fn, sync, repeats):
    fn()
    sync()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times[i] = time.perf_counter() - start
    return np.median(times)  # a NumPy float64


def _time_with_torch(fn, sync, repeats):
    fn()
    sync()
    starts_and_ends = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        starts_and_ends.append((start, time.perf_counter()))
    times = torch.tensor([end - start for start, end in starts_and_ends], dtype=torch.float64)
    return times.quantile(0.5).item()


CORRECT.update({
    "q3": [_move_everything, _move_through_state_dict, _move_per_parameter],
    "q7": [_average_dividing_first, _average_with_avg_op, _average_bucketed],
    "q8": [_time_in_nanoseconds, _time_with_numpy, _time_with_torch],
})


def _autocast_linear(x, w):
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        out = torch.nn.functional.linear(x, w)
    return out.to(x.dtype)


def _autocast_matmul(x, w):
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=True):
        return torch.matmul(x, w.t()).type(x.dtype)


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    outcome = gpu.chapter.exercises[qid].grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message


def test_q4_nothing_visible_is_tested():
    def no_empty(v, n):
        shown = [int(p) for p in v.split(",")]  # int(""): ValueError
        return gpu.logical_indices(v, n) if shown else []

    rejected(gpu.q4, no_empty, "raised ValueError")


# --- q9 · resume from a distributed checkpoint ------------------------------------------------------------


def _dcp():
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import state_dict as sd

    return dcp, sd


def test_q9_the_reference_resumes_the_run_that_never_stopped():
    from torchcourse.checks._gpu_dcp import _UNINTERRUPTED, _one_process, _train_step

    for trial in range(gpu.q9.total_cases):
        fresh, optimizer, folder = gpu.q9.make_case(trial, "cpu")
        with _one_process():
            model, optimizer = gpu.resume(fresh, optimizer, folder)
        uninterrupted, step = _UNINTERRUPTED[fresh]
        _train_step(model, optimizer, step)
        for got, want in zip(model.state_dict().values(), uninterrupted.state_dict().values(), strict=True):
            assert torch.equal(got, want)


def test_q9_the_cases_span_the_statement():
    cases = [gpu.q9.make_case(t, "cpu") for t in range(gpu.q9.total_cases)]
    kinds = {type(optimizer).__name__ for _, optimizer, _ in cases}
    assert kinds == {"Adam", "SGD"}
    from torchcourse.checks._gpu_dcp import _UNINTERRUPTED

    assert all(_UNINTERRUPTED[m][0][1].running_mean.abs().sum() > 0 for m, _, _ in cases)  # buffers trained too
    from torchcourse.checks._gpu_dcp import _one_process

    with _one_process():  # dcp warns that it assumes one process, unless q7's check has made a group of one
        lrs = [dcp_lr(folder) for _, _, folder in cases]
    assert any(lr != opt.param_groups[0]["lr"] for (_, opt, _), lr in zip(cases, lrs, strict=True))  # a lowered rate
    assert any(lr == opt.param_groups[0]["lr"] for (_, opt, _), lr in zip(cases, lrs, strict=True))


def dcp_lr(folder):
    dcp, _ = _dcp()
    state = {"optim": {"param_groups": [{"lr": 0.0, "params": ["0.weight"]}]}}
    reader = dcp.FileSystemReader(folder)
    keys = [k for k in reader.read_metadata().state_dict_metadata if k.endswith(".lr")]
    assert keys
    dcp.load(state, checkpoint_id=folder)
    return state["optim"]["param_groups"][0]["lr"]


def test_q9_the_checkpoint_folder_goes_with_the_case():
    import gc
    import os

    case = gpu.q9.make_case(0, "cpu")
    folder = case[2]
    assert os.path.isdir(folder)
    del case
    gc.collect()
    assert not os.path.exists(folder)


def test_q9_loading_the_model_only():
    def model_only(model, optimizer, folder):
        dcp, _ = _dcp()
        dcp.load({"model": model.state_dict()}, checkpoint_id=folder)
        return model, optimizer

    rejected(gpu.q9, model_only, "no state for", "were not loaded")


def test_q9_loading_into_a_fresh_optimizers_state_dict_fills_nothing():
    def plain_templates(model, optimizer, folder):
        dcp, _ = _dcp()
        state = {"model": model.state_dict(), "optim": optimizer.state_dict()}
        dcp.load(state, checkpoint_id=folder)
        optimizer.load_state_dict(state["optim"])
        return model, optimizer

    rejected(gpu.q9, plain_templates, "no state for")


def test_q9_without_set_state_dict_the_learning_rate_stays_the_fresh_one():
    def no_set(model, optimizer, folder):
        dcp, sd = _dcp()
        model_state, optim_state = sd.get_state_dict(model, optimizer)
        dcp.load({"model": model_state, "optim": optim_state}, checkpoint_id=folder)
        return model, optimizer

    rejected(gpu.q9, no_set, "lr", "the fresh optimizer's", "param_groups")


def test_q9_using_what_dcp_load_returns():
    def returned(model, optimizer, folder):
        dcp, sd = _dcp()
        model_state, optim_state = sd.get_state_dict(model, optimizer)
        state = dcp.load({"model": model_state, "optim": optim_state}, checkpoint_id=folder)
        model.load_state_dict(state["model"])
        return model, optimizer

    rejected(gpu.q9, returned, "NoneType", "dcp.load returns None")


def test_q9_saving_instead_of_loading():
    def saves(model, optimizer, folder):
        dcp, sd = _dcp()
        dcp.save(dict(zip(("model", "optim"), sd.get_state_dict(model, optimizer), strict=True)), checkpoint_id=folder)
        return model, optimizer

    rejected(gpu.q9, saves, "wrote into the checkpoint folder")


def test_q9_loading_into_copies():
    def copies(model, optimizer, folder):
        dcp, _ = _dcp()
        dcp.load({"model": {k: v.clone() for k, v in model.state_dict().items()}}, checkpoint_id=folder)
        return model, optimizer

    rejected(gpu.q9, copies, "still the fresh model's")


def test_q9_parameters_without_buffers():
    def parameters_only(model, optimizer, folder):
        gpu.resume(model, optimizer, folder)
        model[1].reset_running_stats()
        return model, optimizer

    rejected(gpu.q9, parameters_only, "buffer 1.running_mean")


def test_q9_a_new_optimizer():
    def new_optimizer(model, optimizer, folder):
        gpu.resume(model, optimizer, folder)
        return model, type(optimizer)(model.parameters(), **optimizer.defaults)

    rejected(gpu.q9, new_optimizer, "no state for")


def test_q9_torch_load_on_the_folder():
    rejected(gpu.q9, lambda model, optimizer, folder: torch.load(folder), "raised")


def test_q9_works_with_a_process_group_of_one():
    from torchcourse.checks._gpu_allreduce import _ensure_group

    _ensure_group()  # what q7's check leaves in the session
    assert gpu.q9.grade(gpu.q9.reference).status is Status.CORRECT


# --- q10 · halve the batch until a step fits --------------------------------------------------------------


def test_q10_catching_every_runtime_error():
    def every_error(step, start):
        batch = start
        while batch >= 1:
            try:
                step(batch)
                return batch
            except RuntimeError:
                pass
            batch //= 2
        raise torch.OutOfMemoryError("nothing fits")

    rejected(gpu.q10, every_error, "not out of memory")


def test_q10_retrying_the_same_size():
    def same_size(step, start):
        while True:
            try:
                step(start)
                return start
            except torch.OutOfMemoryError:
                pass

    rejected(gpu.q10, same_size, "again and again")


def test_q10_an_except_that_catches_the_brake_is_stopped(monkeypatch):
    monkeypatch.setattr(gpu.q10, "time_limit", 1)

    def bare(step, start):
        while True:
            try:
                step(start)
                return start
            except:  # noqa: E722 - the mistake under test
                pass

    rejected(gpu.q10, bare, "again and again")


def test_q10_going_below_one():
    def to_zero(step, start):
        batch = start
        while True:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError:
                pass
            batch //= 2

    rejected(gpu.q10, to_zero, "step(0)")


def test_q10_retrying_inside_the_except_block():
    def inside(step, start):
        try:
            step(start)
            return start
        except torch.OutOfMemoryError:
            if start == 1:
                raise
            return inside(step, start // 2)

    rejected(gpu.q10, inside, "still held", "traceback")


def test_q10_keeping_the_last_error():
    def keeps(step, start):
        batch, last = start, None
        while batch >= 1:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError as error:
                last = error
            batch //= 2
        raise last

    rejected(gpu.q10, keeps, "still held")


def test_q10_returning_the_size_after_the_one_that_ran():
    def halved_once_more(step, start):
        batch, ok = start, False
        while not ok and batch >= 1:
            try:
                step(batch)
                ok = True
            except torch.OutOfMemoryError:
                pass
            batch //= 2
        if not ok:
            raise torch.OutOfMemoryError("no batch fits")
        return batch

    rejected(gpu.q10, halved_once_more, "the step that ran was")


def test_q10_halving_with_a_float():
    def floats(step, start):
        batch = start
        while True:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError:
                pass
            batch /= 2

    rejected(gpu.q10, floats, "a float")


def test_q10_rounding_up():
    def ceil(step, start):
        batch = start
        while True:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise
            batch = (batch + 1) // 2

    rejected(gpu.q10, ceil, "rounded down")


def test_q10_returning_zero_when_nothing_fits():
    def zero(step, start):
        batch = start
        while batch >= 1:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError:
                pass
            batch //= 2
        return 0

    rejected(gpu.q10, zero, "Not even a batch of 1 fits", "returned 0")


def test_q10_another_error_when_nothing_fits():
    def other(step, start):
        batch = start
        while batch >= 1:
            try:
                step(batch)
                return batch
            except torch.OutOfMemoryError:
                pass
            batch //= 2
        raise RuntimeError("no batch size fits")

    rejected(gpu.q10, other, "raised RuntimeError", "torch.OutOfMemoryError")


def test_q10_trying_to_grow_back():
    def grows(step, start):
        batch = gpu.largest_batch(step, start)
        try:
            step(batch + 1)
        except torch.OutOfMemoryError:
            pass
        return batch

    rejected(gpu.q10, grows, "called step again after", "trained twice")


def test_q10_the_cases_span_the_statement():
    from torchcourse.checks._gpu_oom import _expected

    outcomes = set()
    for t in range(gpu.q10.total_cases):
        step, start = gpu.q10.make_case(t, "cpu")
        tries, size, raises = _expected(step, start)
        outcomes.add(raises or ("at once" if len(tries) == 1 else "at 1" if size == 1 else "halved"))
        outcomes.add("odd start" if start % 2 else "even start")
    assert outcomes == {"bug", "oom", "at once", "at 1", "halved", "odd start", "even start"}


def _q10_recursive(step, start):
    try:
        step(start)
        return start
    except torch.OutOfMemoryError:
        if start == 1:
            raise
    return _q10_recursive(step, start // 2)


def _q10_by_message(step, start):
    sizes = [start]
    while sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    for i, batch in enumerate(sizes):
        try:
            step(batch)
            return batch
        except RuntimeError as error:  # the older way: an out-of-memory error says so in its message
            if "out of memory" not in str(error) or i == len(sizes) - 1:
                raise
        torch.cuda.empty_cache()  # gives cached blocks back on a GPU; nothing to do without one


def _q9_one_at_a_time(model, optimizer, folder):
    dcp, sd = _dcp()
    state = {"model": sd.get_model_state_dict(model), "optim": sd.get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=folder)
    sd.set_model_state_dict(model, state["model"])
    sd.set_optimizer_state_dict(model, optimizer, state["optim"])
    return model, optimizer


def _q9_through_torch_save(model, optimizer, folder):
    import os
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    _, sd = _dcp()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        dcp_to_torch_save(folder, path)
        state = torch.load(path, weights_only=False)
    sd.set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return model, optimizer


CORRECT.update({
    "q9": [gpu.resume, _q9_one_at_a_time, _q9_through_torch_save],
    "q10": [gpu.largest_batch, _q10_recursive, _q10_by_message],
})


# --- q11 · fewer, bigger calls: the norms of many rows ----------------------------------------------------


def test_q11_the_reference_is_the_statements_loop_batched():
    from torchcourse.checks._gpu_calls import row_norms_loop

    for trial in range(gpu.q11.total_cases):
        (rows,) = gpu.q11.make_case(trial, "cpu")
        torch.testing.assert_close(gpu.row_norms_batched(rows), row_norms_loop(rows))


def test_q11_the_cases_span_the_statement():
    cases = [gpu.q11.make_case(t, "cpu")[0] for t in range(gpu.q11.total_cases)]
    assert {rows[0].dtype for rows in cases} == {torch.float32, torch.float64}
    counts, lengths = {len(rows) for rows in cases}, {rows[0].numel() for rows in cases}
    assert 1 in counts and max(counts) >= 300 and 1 in lengths and max(lengths) > 1
    assert all(len({(r.shape, r.dtype) for r in rows}) == 1 for rows in cases)  # one length and dtype per case
    assert all(len({id(r) for r in rows}) == len(rows) for rows in cases)  # separate tensors


def _q11_loop(rows):
    return torch.stack([torch.sqrt((row * row).sum()) for row in rows])


def test_q11_the_statements_loop():
    rejected(gpu.q11, _q11_loop, "grows with the number of rows", "loop over the rows", "sqrt 1 → 66 times")


def test_q11_a_norm_per_row():
    rejected(gpu.q11, lambda rows: torch.stack([row.norm() for row in rows]), "loop over the rows")


def test_q11_the_loop_over_the_stacked_tensor():
    rejected(gpu.q11, lambda rows: torch.stack([x.norm() for x in torch.stack(rows)]), "loop over the rows")


def test_q11_item_per_row():
    def items(rows):
        return torch.tensor([row.norm().item() for row in rows], dtype=rows[0].dtype, device=rows[0].device)

    rejected(gpu.q11, items, "once per row", ".item()", "_local_scalar_dense")


def test_q11_tolist_leaves_torch():
    def lists(rows):
        return torch.tensor([sum(v * v for v in row.tolist()) ** 0.5 for row in rows], dtype=rows[0].dtype,
                            device=rows[0].device)

    rejected(gpu.q11, lists, "stay in torch", "Tensor.tolist")


def test_q11_numpy_leaves_torch():
    rejected(gpu.q11, lambda rows: torch.from_numpy(np.linalg.norm(torch.stack(rows).numpy(), axis=1)),
             "stay in torch", "Tensor.numpy")


def test_q11_chunks_of_rows_still_grow():
    def chunks(rows):
        return torch.cat([torch.stack(rows[i : i + 32]).norm(dim=1) for i in range(0, len(rows), 32)])

    rejected(gpu.q11, chunks, "groups of rows")


def test_q11_the_wrong_dimension():
    rejected(gpu.q11, lambda rows: torch.linalg.vector_norm(torch.stack(rows), dim=0), "dim 0")


def test_q11_no_square_root():
    rejected(gpu.q11, lambda rows: torch.stack(rows).pow(2).sum(dim=1), "square root")


def test_q11_returning_a_list():
    rejected(gpu.q11, lambda rows: list(torch.linalg.vector_norm(torch.stack(rows), dim=1)),
             "expected a torch.Tensor", "list")


def test_q11_keepdim():
    rejected(gpu.q11, lambda rows: torch.stack(rows).norm(dim=1, keepdim=True), "wrong shape")


def test_q11_losing_float64():
    rejected(gpu.q11, lambda rows: torch.linalg.vector_norm(torch.stack(rows).float(), dim=1),
             "torch.float32 for rows of torch.float64")


def test_q11_a_result_created_without_the_rows_dtype():
    def filled(rows):
        out = torch.zeros(len(rows), device=rows[0].device)
        out.copy_(torch.linalg.vector_norm(torch.stack(rows), dim=1))
        return out

    rejected(gpu.q11, filled, "keep the rows' dtype")


def test_q11_losing_the_device():
    rejected(gpu.q11, lambda rows: torch.linalg.vector_norm(torch.stack(rows).cpu(), dim=1), "came back on cpu")


def test_q11_squaring_the_rows_in_place():
    def in_place(rows):
        torch._foreach_mul_(rows, rows)  # one call for every row, but on the caller's tensors
        return torch.stack(rows).sum(dim=1).sqrt()

    rejected(gpu.q11, in_place, "changed its input `rows` in place")


def test_q11_changing_the_list():
    def appends(rows):
        rows.append(rows[0])
        return torch.linalg.vector_norm(torch.stack(rows[:-1]), dim=1)

    rejected(gpu.q11, appends, "a list", "build a new one")


def test_q11_views_are_not_counted():  # vstack runs one unsqueeze per row: a view, no kernel
    accepted(gpu.q11, lambda rows: torch.vstack(rows).norm(dim=-1))
    accepted(gpu.q11, lambda rows: torch.cat([row[None] for row in rows]).norm(dim=1))


@pytest.mark.parametrize("answer", [
    lambda rows: torch.linalg.norm(torch.stack(rows), dim=1),
    lambda rows: torch.stack(rows, dim=1).norm(dim=0),
    lambda rows: torch.einsum("ij,ij->i", torch.stack(rows), torch.stack(rows)).sqrt(),
    lambda rows: torch.stack(torch._foreach_norm(rows)),
    lambda rows: torch.func.vmap(torch.linalg.vector_norm)(torch.stack(rows)),
], ids=["linalg.norm", "stack-dim1", "einsum", "foreach_norm", "vmap"])
def test_q11_more_correct_answers(answer):
    accepted(gpu.q11, answer)


def test_q11_leaves_no_dispatch_mode_behind():
    from torch.utils._python_dispatch import TorchDispatchMode

    def enters(rows):
        TorchDispatchMode().__enter__()  # never left
        return gpu.row_norms_batched(rows)

    depth = torch._C._len_torch_dispatch_stack()
    assert gpu.q11.grade(enters).status is Status.INCORRECT
    assert gpu.q11.grade(_q11_loop).status is Status.INCORRECT
    assert torch._C._len_torch_dispatch_stack() == depth


def test_q11_a_loop_that_never_ends_is_stopped_and_the_mode_left(monkeypatch):
    monkeypatch.setattr(gpu.q11, "time_limit", 0.2)

    def forever(rows):
        while True:
            rows[0] * 2

    depth = torch._C._len_torch_dispatch_stack()
    rejected(gpu.q11, forever, "did not return within")
    assert torch._C._len_torch_dispatch_stack() == depth


def _q11_pow_sum_sqrt(rows):
    return torch.stack(rows).pow(2).sum(dim=1).sqrt()


def _q11_cat_view(rows):
    flat = torch.cat(rows)
    return torch.linalg.vector_norm(flat.view(len(rows), -1), dim=1)


CORRECT["q11"] = [gpu.row_norms_batched, _q11_pow_sum_sqrt, _q11_cat_view]


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in ("q9", "q10", "q11") for i in range(3)])
def test_three_correct_answers_of_the_later_exercises_are_accepted(qid, index):
    # test_three_correct_answers_are_accepted is parametrised before CORRECT gains these three
    outcome = gpu.chapter.exercises[qid].grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message
