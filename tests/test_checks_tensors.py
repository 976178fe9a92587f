"""The exercises of chapter 01 · Tensors: references pass, typical wrong answers get the right feedback.

The generic inputs every exercise must survive (None, wrong type, NaN, wrong device, an exception,
the placeholder) are in test_checks_all.py; this file holds the answers a learner of this chapter
actually writes, and what the check must say about them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from grading import rejected

from torchcourse.checks import tensors
from torchcourse.checks.core import Exercise, Status

EXERCISES = list(tensors.chapter.exercises.values())
NEW = [ex for ex in EXERCISES if int(ex.id[1:]) >= 5]


def _incorrect(ex: Exercise, answer) -> str:
    message = rejected(ex, answer)
    _assert_no_leak(ex, message)
    return message


def _assert_no_leak(ex: Exercise, message: str) -> None:
    """The feedback never shows the expected result of the hidden case it failed on.

    The lines that show the failing case's inputs and what the learner's own function returned are
    left out: they may share values with the expected result, and the learner already has them.
    """
    shown = ("Smallest failing case", "Your function returned:")
    message = "\n".join(line for line in message.splitlines() if not line.startswith(shown))
    for trial in range(ex.trials):
        case = ex.inputs(torch.Generator().manual_seed(ex.seed(trial)), "cpu")
        expected = ex.reference(*case)
        for t in expected if isinstance(expected, tuple) else (expected,):
            if t.numel() > 1:
                assert str(t) not in message and str(t.tolist()) not in message
            if t.is_floating_point():
                for v in t.flatten()[:8].tolist():
                    if abs(v) > 0.01:
                        assert f"{v:.3f}" not in message


# --- the chapter as a whole -----------------------------------------------------------------


def test_chapter_has_at_least_ten_exercises_in_lesson_order():
    assert len(EXERCISES) >= 10
    assert [ex.id for ex in EXERCISES] == [f"q{i}" for i in range(1, len(EXERCISES) + 1)]


@pytest.mark.parametrize("ex", NEW, ids=[ex.id for ex in NEW])
def test_new_exercise_is_well_formed(ex: Exercise):
    assert 1 <= ex.points <= 3
    assert len(ex.hints) >= 2, "hints escalate: at least two"
    assert len(ex.misconceptions) >= 2
    outcome = ex.grade(ex.reference)
    assert outcome.status is Status.CORRECT, outcome.message
    assert outcome.points == ex.points


@pytest.mark.parametrize("ex", NEW, ids=[ex.id for ex in NEW])
def test_every_declared_misconception_gets_its_own_feedback(ex: Exercise):
    for wrong, feedback in ex.misconceptions:
        message = _incorrect(ex, wrong)
        assert message.startswith(feedback), message


@pytest.mark.parametrize("ex", NEW, ids=[ex.id for ex in NEW])
def test_hidden_cases_differ_from_trial_to_trial(ex: Exercise):
    first, second = (ex.inputs(torch.Generator().manual_seed(ex.seed(t)), "cpu") for t in (0, 1))
    assert not all(_same(a, b) for a, b in zip(first, second, strict=True))


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, torch.Generator):
        return torch.equal(a.get_state(), b.get_state())
    return a == b


# --- q5 · tokens back to feature maps, without a copy -----------------------------------------


def test_q5_accepts_other_views():
    ex = tensors.q5
    assert ex.grade(lambda t, h, w: t.permute(0, 2, 1).reshape(t.shape[0], -1, h, w)).status is Status.CORRECT
    assert ex.grade(lambda t, h, w: t.unflatten(1, (h, w)).permute(0, 3, 1, 2)).status is Status.CORRECT


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda t, h, w: t.transpose(1, 2).clone().view(t.shape[0], t.shape[2], h, w), "is a copy"),
        (lambda t, h, w: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w) + 0, "shares memory"),
        (lambda t, h, w: t.reshape(t.shape[0], t.shape[2], h, w), "does not undo a transpose"),
        (lambda t, h, w: t.contiguous().view(t.shape[0], t.shape[2], h, w), "does not undo a transpose"),
        (lambda t, h, w: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], w, h), "swapped"),
        (lambda t, h, w: t.transpose(1, 2), "wrong shape"),
    ],
)
def test_q5_rejects(answer, needle):
    assert needle in _incorrect(tensors.q5, answer)


# --- q6 · sliding windows without copying ------------------------------------------------------


def test_q6_accepts_as_strided():
    def by_hand(s, size, step):
        count = (s.shape[1] - size) // step + 1
        return s.as_strided((s.shape[0], count, size), (s.stride(0), step * s.stride(1), s.stride(1)))

    assert tensors.q6.grade(by_hand).status is Status.CORRECT


def test_q6_rejects_strides_that_assume_a_contiguous_signal():
    """Every signal was contiguous, so strides written as if the samples were 1 apart passed (this
    file's own as_strided answer did); a transposed signal, which the statement allows, shows it."""

    def contiguous_strides(s, size, step):
        count = (s.shape[1] - size) // step + 1
        return s.as_strided((s.shape[0], count, size), (s.stride(0), step, 1))

    def row_length_strides(s, size, step):
        count = (s.shape[1] - size) // step + 1
        return s.as_strided((s.shape[0], count, size), (s.shape[1], step, 1))

    for wrong in (contiguous_strides, row_length_strides):
        assert "values differ" in _incorrect(tensors.q6, wrong)
    assert not tensors.q6.make_case(tensors.q6.total_cases - 1, "cpu")[0].is_contiguous()


def test_q6_non_contiguous_signals_are_among_the_random_trials_and_the_statement_says_so():
    """The statement allows a non-contiguous signal: random trials draw transposed ones (of more than one row,
    so that the strides matter), not only the one declared case, and the answer receives them as they are."""
    signals = [tensors.q6.make_case(t, "cpu")[0] for t in range(tensors.q6.trials)]
    assert sum(not s.is_contiguous() and s.shape[0] > 1 for s in signals) >= 2
    assert any(s.is_contiguous() for s in signals)
    seen = []

    def spy(s, size, step):
        seen.append(s.is_contiguous())
        return s.unfold(-1, size, step)

    assert tensors.q6.grade(spy).status is Status.CORRECT and not all(seen)
    assert "non-contiguous" in _statement("q6")


def _statement(qid):
    """The statement of ``qid`` in the exercise notebook (its markdown cell)."""
    notebook = json.loads((Path(__file__).parents[1] / "exercises" / "01_tensors.ipynb").read_text(encoding="utf-8"))
    texts = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    return next(text for text in texts if text.startswith(f"## {qid} "))


def test_statements_say_what_the_checks_enforce_and_where_it_is_taught():
    """q2's refusal of an integer mean is taught in 01.4, not 01.1; q4's "no loops" and q13's "no inverse" are
    enforced (loops=False, forbids) and the statements say so; q6 is tested above."""
    assert "04_elementwise_reductions_comparisons.ipynb" in _statement("q2") and "01.4" in _statement("q2")
    assert not tensors.q4.loops and "rejects a `for`" in _statement("q4")
    forbidden = {n for uses in tensors.q13.forbids for n in uses.names}
    assert {"torch.linalg.inv", "torch.linalg.pinv"} <= forbidden
    assert "`inv` and `pinv`" in _statement("q13")


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda s, size, step: torch.stack([s[:, i:i + size] for i in range(0, s.shape[1] - size + 1, step)], 1),
         "is a copy"),
        (lambda s, size, step: torch.stack([s[:, i:i + size] for i in range(0, s.shape[1] - size, step)], 1),
         "copy"),  # a copy as well: no one misconception explains every failing case
        (lambda s, size, step: s.unfold(1, size, size), "do not overlap"),
        (lambda s, size, step: s.unfold(0, size, step), "raised RuntimeError"),
    ],
)
def test_q6_rejects(answer, needle):
    assert needle in _incorrect(tensors.q6, answer)


# --- q7 · one-hot encoding -------------------------------------------------------------------


def test_q7_rejects_other_constructions_the_statement_rules_out():
    rejected(tensors.q7, lambda labels, c: F.one_hot(labels, c).float(), "values are right", "scatter_")
    rejected(tensors.q7, lambda labels, c: torch.eye(c, device=labels.device)[labels], "scatter_")


def _scattered(labels, rows, cols, dtype=torch.float32, dim=1):
    """zeros(rows, cols) with ones scattered at the labels along dim, as a learner might write it."""
    index = labels.unsqueeze(1) if dim == 1 else labels.unsqueeze(0)
    return torch.zeros(rows, cols, dtype=dtype, device=labels.device).scatter_(dim, index, 1)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda labels, c: _scattered(labels, len(labels), c, torch.long), "int64"),
        (lambda labels, c: _scattered(labels, len(labels), c, torch.float64), "wrong dtype"),
        (lambda labels, c: _scattered(labels, len(labels), int(labels.max()) + 1), "too few columns"),
        (lambda labels, c: _scattered(labels, len(labels), c + 1), "Off by one"),
        (lambda labels, c: _scattered(labels, c, len(labels), dim=0), "transpose"),
        (lambda labels, c: torch.zeros(len(labels), c, device=labels.device).scatter_(1, labels, 1.0),
         "raised RuntimeError"),
    ],
)
def test_q7_rejects(answer, needle):
    assert needle in _incorrect(tensors.q7, answer)


# --- q8 · negative log-likelihood with gather ------------------------------------------------


def test_q8_accepts_paired_indexing_and_nll_loss():
    assert tensors.q8.grade(lambda lp, y: -lp[torch.arange(len(y), device=y.device), y]).status is Status.CORRECT
    assert tensors.q8.grade(lambda lp, y: F.nll_loss(lp, y, reduction="none")).status is Status.CORRECT


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda lp, y: -lp[:, y], "(N, N) table"),
        (lambda lp, y: -lp.gather(1, y.unsqueeze(1)), "shape (N, 1)"),
        (lambda lp, y: lp.gather(1, y.unsqueeze(1)).squeeze(1), "negation"),
        (lambda lp, y: -lp.exp().gather(1, y.unsqueeze(1)).squeeze(1), "exponentiated them"),
        (lambda lp, y: -lp.gather(1, y.unsqueeze(1)).squeeze(1).log(), "NaN"),
        (lambda lp, y: F.nll_loss(lp, y), "wrong shape"),
    ],
)
def test_q8_rejects(answer, needle):
    assert needle in _incorrect(tensors.q8, answer)


def test_q8_rejects_a_one_hot_product_where_a_class_has_probability_zero():
    """Every random log-probability was finite, so multiplying by a one-hot mask and summing passed;
    a class of probability 0 has log-probability -inf, and -inf * 0 is NaN."""
    one_hot = lambda lp, y: -(lp * F.one_hot(y, lp.shape[1])).sum(1)  # noqa: E731
    by_matmul = lambda lp, y: -(lp @ F.one_hot(y, lp.shape[1]).T.to(lp.dtype)).diagonal()  # noqa: E731
    for wrong in (one_hot, by_matmul):
        assert "NaN" in _incorrect(tensors.q8, wrong)
    selected = lambda lp, y: -torch.where(F.one_hot(y, lp.shape[1]).bool(), lp, 0.0).sum(1)  # noqa: E731
    assert tensors.q8.grade(selected).status is Status.CORRECT


# --- q9 · top k per row --------------------------------------------------------------------------


def test_q9_accepts_a_descending_sort_and_the_named_tuple():
    def by_sort(s, k):
        values, indices = s.sort(dim=1, descending=True)
        return values[:, :k], indices[:, :k]

    assert tensors.q9.grade(by_sort).status is Status.CORRECT
    assert tensors.q9.grade(lambda s, k: torch.topk(s, k)).status is Status.CORRECT


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda s, k: torch.topk(s, k, largest=False), "smallest"),
        (lambda s, k: (s.sort(1).values[:, -k:], s.sort(1).indices[:, -k:]), "ascending"),
        (lambda s, k: s.topk(k, dim=0), "each column"),
        (lambda s, k: s.topk(k).values, "expected a tuple"),
        (lambda s, k: (s.topk(k).values, s.topk(k).indices.float()), "item 1: wrong dtype"),
    ],
)
def test_q9_rejects(answer, needle):
    assert needle in _incorrect(tensors.q9, answer)


def test_q9_does_not_reveal_the_indices():
    message = _incorrect(tensors.q9, lambda s, k: (s.topk(k).values, s.topk(k).indices.flip(1)))
    assert "differ" in message


# --- q10 · standardise each row -----------------------------------------------------------------


def test_q10_accepts_layer_norm():
    assert tensors.q10.grade(lambda x: F.layer_norm(x, x.shape[-1:])).status is Status.CORRECT


def test_q10_hidden_cases_include_square_and_non_square_inputs():
    ex = tensors.q10
    shapes = [ex.inputs(torch.Generator().manual_seed(ex.seed(t)), "cpu")[0].shape for t in range(ex.trials)]
    assert any(n == d for n, d in shapes) and any(n != d for n, d in shapes)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True), "Bessel"),
        (lambda x: (x - x.mean(1)) / (x.var(1, correction=0) + 1e-5).sqrt(), "no keepdim"),
        (lambda x: (x - x.mean(0)) / (x.var(0, correction=0) + 1e-5).sqrt(), "each column"),
        (lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True, correction=0), "eps"),
        (lambda x: x - x.mean(1, keepdim=True), "differ"),
    ],
)
def test_q10_rejects(answer, needle):
    assert needle in _incorrect(tensors.q10, answer)


# --- q11 · masked mean ------------------------------------------------------------------------------


def test_q11_accepts_masked_fill():
    def with_fill(x, mask):
        return x.masked_fill(~mask.unsqueeze(-1), 0).sum(1) / mask.sum(1, keepdim=True)

    assert tensors.q11.grade(with_fill).status is Status.CORRECT


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x, mask: x.mean(1), "averaged the padding"),
        (lambda x, mask: (x * mask.unsqueeze(-1)).mean(1), "still divided by T"),
        (lambda x, mask: x[mask].mean(0), "mixes the batch"),
        (lambda x, mask: (x * mask.unsqueeze(-1)).sum(1) / mask.sum(), "differ"),
        (lambda x, mask: (x * mask).sum(1), "raised RuntimeError"),
    ],
)
def test_q11_rejects(answer, needle):
    assert needle in _incorrect(tensors.q11, answer)


# --- q12 · pairwise distances ---------------------------------------------------------------------


def test_q12_accepts_cdist_and_the_matmul_expansion():
    assert tensors.q12.grade(torch.cdist).status is Status.CORRECT

    def expanded(x, y):
        squared = x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(1) - 2 * torch.bmm(x, y.transpose(1, 2))
        return squared.clamp_min(0).sqrt()

    assert tensors.q12.grade(expanded).status is Status.CORRECT


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x, y: (x.unsqueeze(2) - y.unsqueeze(1)).pow(2).sum(-1), "squared distances"),
        (lambda x, y: (x.unsqueeze(1) - y.unsqueeze(2)).norm(dim=-1), "transposed"),
        (lambda x, y: torch.cdist(y, x), "transposed"),
        (lambda x, y: (x.unsqueeze(2) - y.unsqueeze(1)).abs().sum(-1), "L1"),
        (lambda x, y: (x.unsqueeze(2) - y.unsqueeze(1)).norm(dim=1), "wrong shape"),
    ],
)
def test_q12_rejects(answer, needle):
    assert needle in _incorrect(tensors.q12, answer)


# --- q13 · polynomial least squares ---------------------------------------------------------------


def _normal_equations(x, y, d):
    a = torch.stack([x**k for k in range(d + 1)], 1)
    return torch.linalg.solve(a.T @ a, a.T @ y)


def test_q13_accepts_normal_equations():
    def normal_equations(x, y, d):
        a = torch.vander(x, d + 1, increasing=True)
        return torch.linalg.solve(a.T @ a, a.T @ y)

    assert tensors.q13.grade(normal_equations).status is Status.CORRECT


def test_q13_an_inverse_is_ruled_out():
    by_pinv = lambda x, y, d: torch.linalg.pinv(torch.vander(x, d + 1, increasing=True)) @ y  # noqa: E731
    assert "without forming an inverse" in _incorrect(tensors.q13, by_pinv)

    def by_inverse(x, y, d):
        a = torch.vander(x, d + 1, increasing=True)
        return torch.linalg.inv(a.T @ a) @ a.T @ y

    assert "`torch.linalg.inv`" in _incorrect(tensors.q13, by_inverse)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda x, y, d: torch.linalg.lstsq(torch.vander(x, d + 1), y).solution, "reverse order"),
        (lambda x, y, d: torch.linalg.lstsq(torch.vander(x, d, increasing=True), y).solution, "d + 1 coefficients"),
        (lambda x, y, d: torch.linalg.lstsq(torch.vander(x, d + 1, increasing=True).float(), y.float()).solution,
         "wrong dtype"),
        (lambda x, y, d: torch.linalg.lstsq(torch.vander(x, d + 2, increasing=True), y).solution, "wrong shape"),
    ],
)
def test_q13_rejects(answer, needle):
    assert needle in _incorrect(tensors.q13, answer)


# --- q14 · low-pass filter -----------------------------------------------------------------------------


def test_q14_accepts_a_multiplied_mask():
    def masked(s, keep):
        bins = torch.arange(s.shape[-1] // 2 + 1, device=s.device)
        return torch.fft.irfft(torch.fft.rfft(s) * (bins < keep), n=s.shape[-1])

    assert tensors.q14.grade(masked).status is Status.CORRECT


def _rfft_zeroed(s, keep):
    spectrum = torch.fft.rfft(s)
    spectrum[..., keep:] = 0
    return spectrum


def _fft_zeroed(s, keep):
    spectrum = torch.fft.fft(s)
    spectrum[..., keep:] = 0
    return torch.fft.ifft(spectrum).real


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda s, keep: torch.fft.irfft(_rfft_zeroed(s, keep)), "one sample short"),
        (_rfft_zeroed, "complex"),
        (_fft_zeroed, "negative frequencies"),
        (lambda s, keep: torch.fft.irfft(_rfft_zeroed(s, keep + 1), n=s.shape[-1]), "One bin too many"),
        (lambda s, keep: torch.fft.irfft(_rfft_zeroed(s, keep), n=s.shape[-1]).double(), "wrong dtype"),
    ],
)
def test_q14_rejects(answer, needle):
    assert needle in _incorrect(tensors.q14, answer)


# --- q15 · bootstrap means ------------------------------------------------------------------------------


def test_q15_accepts_a_sum_over_n():
    def summed(data, r, g):
        n = data.shape[0]
        return data[torch.randint(0, n, (r, n), generator=g).to(data.device)].sum(1) / n

    assert tensors.q15.grade(summed).status is Status.CORRECT


def _permutations(data, r, g):
    return torch.stack([data[torch.randperm(data.shape[0], generator=g)].mean(0) for _ in range(r)])


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (_permutations, "without replacement"),
        (lambda data, r, g: data[torch.randint(0, data.shape[0] - 1, (r, data.shape[0]), generator=g)].mean(1),
         "exclusive"),
        (lambda data, r, g: data[torch.randint(0, data.shape[0], (data.shape[0], r), generator=g).T].mean(1),
         "differently shaped"),
        (lambda data, r, g: data[torch.randint(0, data.shape[0], (r, data.shape[0]))].mean(1),
         "instead of the generator given"),
        (lambda data, r, g: data[torch.randint(0, data.shape[0], (r, data.shape[0]), generator=g)].mean(2),
         "wrong shape"),
    ],
)
def test_q15_rejects(answer, needle):
    assert needle in _incorrect(tensors.q15, answer)


# --- q16 · messages along the edges ---------------------------------------------------------------------


def test_q16_accepts_sparse_and_accumulating_answers():
    def sparse(f, e):
        a = torch.sparse_coo_tensor(e.flip(0), torch.ones(e.shape[1], device=f.device), (len(f), len(f)),
                                    check_invariants=True)
        return a @ f

    assert tensors.q16.grade(sparse).status is Status.CORRECT
    accumulate = lambda f, e: torch.zeros_like(f).index_put_((e[1],), f[e[0]], accumulate=True)
    assert tensors.q16.grade(accumulate).status is Status.CORRECT


def _plus_equals(f, e):
    out = torch.zeros_like(f)
    out[e[1]] += f[e[0]]
    return out


def _dense_assignment(f, e):
    a = torch.zeros(len(f), len(f), device=f.device)
    a[e[1], e[0]] = 1
    return a @ f


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda f, e: torch.zeros_like(f).index_add_(0, e[0], f[e[1]]), "wrong way"),
        (_plus_equals, "not accumulated"),
        (_dense_assignment, "Repeated edges count once"),
        (lambda f, e: torch.zeros(len(f), len(f), device=f.device).index_put_(
            (e[1], e[0]), torch.ones(e.shape[1], device=f.device), accumulate=True), "wrong shape"),
    ],
)
def test_q16_rejects(answer, needle):
    assert needle in _incorrect(tensors.q16, answer)


# --- q1-q4 · lesson 01.1 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda images: images.float(), "255 times too large"),
        (lambda images: images // 255, "Floor division"),
        (lambda images: images.double() / 255, "wrong dtype"),
        (lambda images: images.float() / 256, "0.9961 times the right one"),
    ],
)
def test_q1_rejects_typical_wrong_answers(answer, needle):
    assert needle in _incorrect(tensors.q1, answer)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda counts: counts.sum() // counts.numel(), "whole number"),
        (lambda counts: counts.double().mean(), "wrong dtype"),
        (lambda counts: counts.float().mean(dim=0), "wrong shape"),
        (lambda counts: counts.float().median(), "values differ"),
    ],
)
def test_q2_rejects_typical_wrong_answers(answer, needle):
    assert needle in _incorrect(tensors.q2, answer)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda g, n, mean, std: (torch.rand(n, generator=g) * 2 - 1) * std + mean, "uniform samples"),
        (lambda g, n, mean, std: torch.randn(n, generator=g) * std**2 + mean, "variance"),
        (lambda g, n, mean, std: torch.randn(n) * std + mean, "instead of the generator given"),
        (lambda g, n, mean, std: torch.randn(n, generator=g) * mean + std, "values differ"),
    ],
)
def test_q3_rejects_typical_wrong_answers(answer, needle):
    assert needle in _incorrect(tensors.q3, answer)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda h, w, device: tensors.coordinate_grid(h, w, device).flip(-1), "(column, row)"),
        (lambda h, w, device: tensors.coordinate_grid(h, w, device).float(), "integers"),
        (lambda h, w, device: tensors.coordinate_grid(h, w, device).view(-1, 2), "wrong shape"),
        (lambda h, w, device: torch.zeros(h, w, 2, dtype=torch.int64, device=device), "values differ"),
    ],
)
def test_q4_rejects_typical_wrong_answers(answer, needle):
    assert needle in _incorrect(tensors.q4, answer)


def test_q4_accepts_meshgrid():
    def with_meshgrid(h, w, device):
        rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        return torch.stack([rows, cols], dim=-1)

    assert tensors.q4.grade(with_meshgrid).status is Status.CORRECT


# --- three different correct answers per exercise -----------------------------------------------------


def _grid_meshgrid(h, w, device):
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([rows, cols], dim=-1)


def _grid_indices(h, w, device):
    flat = torch.arange(h * w, device=device)
    return torch.stack([flat // w, flat % w], dim=-1).view(h, w, 2)


def _grid_cartesian(h, w, device):
    return torch.cartesian_prod(torch.arange(h, device=device), torch.arange(w, device=device)).view(h, w, 2)


def _one_hot_scatter(labels, c):
    return torch.zeros(labels.shape[0], c, device=labels.device).scatter(1, labels.view(-1, 1), 1.0)


def _one_hot_scatter_src(labels, c):
    out = torch.zeros(len(labels), c, dtype=torch.float32, device=labels.device)
    out.scatter_(1, labels[:, None], torch.ones(len(labels), 1, device=labels.device))
    return out


def _one_hot_torch_scatter(labels, c):
    return torch.scatter(torch.zeros(len(labels), c, device=labels.device), 1, labels.unsqueeze(-1), 1.0)


def _pairwise_bmm(x, y):
    squares = x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1).unsqueeze(1) - 2 * torch.bmm(x, y.transpose(1, 2))
    return squares.clamp_min(0).sqrt()


def _low_pass_mask(signal, keep):
    spectrum = torch.fft.rfft(signal)
    mask = torch.arange(spectrum.shape[-1], device=signal.device) < keep
    return torch.fft.irfft(spectrum * mask, n=signal.shape[-1])


def _low_pass_full(signal, keep):
    spectrum = torch.fft.fft(signal)
    n = signal.shape[-1]
    freq = torch.fft.fftfreq(n, device=signal.device).abs() * n
    return torch.fft.ifft(spectrum * (freq < keep)).real


def _lstsq_qr(x, y, degree):
    q, r = torch.linalg.qr(torch.vander(x, degree + 1, increasing=True))
    return torch.linalg.solve_triangular(r, (q.T @ y).unsqueeze(1), upper=True).squeeze(1)


CORRECT = {
    "q1": [lambda im: im.float() / 255.0, lambda im: im.to(torch.float32).div(255), lambda im: im / 255.0],
    "q2": [lambda c: c.float().mean(), lambda c: c.sum().float() / c.numel(), lambda c: c.mean(dtype=torch.float32)],
    "q3": [lambda g, n, m, s: m + s * torch.randn(n, generator=g),
           lambda g, n, m, s: torch.randn((n,), generator=g).mul(s).add(m),
           lambda g, n, m, s: torch.normal(0.0, 1.0, (n,), generator=g) * s + m],
    "q4": [_grid_meshgrid, _grid_indices, _grid_cartesian],
    "q5": [lambda t, h, w: t.transpose(1, 2).view(t.shape[0], t.shape[2], h, w),
           lambda t, h, w: t.permute(0, 2, 1).unflatten(-1, (h, w)),
           lambda t, h, w: t.mT.reshape(t.shape[0], -1, h, w)],
    "q6": [lambda s, size, step: s.unfold(1, size, step),
           lambda s, size, step: s.as_strided((s.shape[0], (s.shape[1] - size) // step + 1, size),
                                               (s.stride(0), step * s.stride(1), s.stride(1))),
           lambda s, size, step: s[:, None].unfold(-1, size, step).squeeze(1)],
    "q7": [_one_hot_scatter, _one_hot_scatter_src, _one_hot_torch_scatter],
    "q8": [lambda lp, y: -lp.gather(1, y[:, None])[:, 0],
           lambda lp, y: -lp[torch.arange(len(y), device=lp.device), y],
           lambda lp, y: F.nll_loss(lp, y, reduction="none")],
    "q9": [lambda s, k: s.topk(k), lambda s, k: tuple(t[:, :k] for t in s.sort(dim=1, descending=True)),
           lambda s, k: torch.topk(s, k, dim=-1, largest=True, sorted=True)],
    "q10": [lambda x: F.layer_norm(x, x.shape[-1:], eps=1e-5),
            lambda x: (x - x.mean(-1, keepdim=True)) * torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5),
            lambda x: (x - x.mean(1, True)) / ((x - x.mean(1, True)).pow(2).mean(1, True) + 1e-5).sqrt()],
    "q11": [lambda x, m: (x * m[..., None]).sum(1) / m.sum(1, keepdim=True),
            lambda x, m: torch.where(m[..., None], x, 0).sum(1) / m.sum(1)[:, None],
            lambda x, m: torch.einsum("btd,bt->bd", x, m.float()) / m.float().sum(1, keepdim=True)],
    "q12": [lambda x, y: torch.cdist(x, y), _pairwise_bmm,
            lambda x, y: torch.linalg.vector_norm(x[:, :, None] - y[:, None], dim=-1)],
    "q13": [lambda x, y, d: torch.linalg.lstsq(torch.vander(x, d + 1, increasing=True), y[:, None]).solution[:, 0],
            _normal_equations,
            _lstsq_qr],
    "q14": [_low_pass_mask, _low_pass_full,
            lambda s, keep: torch.fft.irfft(torch.fft.rfft(s)[..., :keep], n=s.shape[-1])],
    "q15": [lambda d, r, g: d[torch.randint(0, len(d), (r, len(d)), generator=g).to(d.device)].mean(1),
            lambda d, r, g: d.index_select(0, torch.randint(0, d.shape[0], (r, d.shape[0]), generator=g)
                                           .to(d.device).flatten()).view(r, d.shape[0], -1).mean(1),
            lambda d, r, g: torch.stack([d[i].mean(0) for i in torch.randint(0, len(d), (r, len(d)), generator=g)])],
    "q16": [lambda f, e: torch.zeros_like(f).index_put_((e[1],), f[e[0]], accumulate=True),
            lambda f, e: torch.sparse_coo_tensor(e.flip(0), torch.ones(e.shape[1], device=f.device),
                                                 (len(f), len(f)), check_invariants=True) @ f,
            lambda f, e: torch.zeros_like(f).scatter_add_(0, e[1][:, None].expand(-1, f.shape[1]), f[e[0]])],
}


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    exercise = tensors.chapter.exercises[qid]
    outcome = exercise.grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message


def test_q7_demands_scatter():
    message = rejected(tensors.q7, lambda labels, c: F.one_hot(labels, c).float(), "scatter_", "never called it")
    assert "values are right" in message


def test_q12_coinciding_points_are_tested():
    def nan_at_zero(x, y):
        d = torch.cdist(x, y)
        return torch.where(d > 0, d, float("nan"))

    rejected(tensors.q12, nan_at_zero, "NaN")


def test_q3_and_q15_reject_reseeding_the_global_generator():
    def reseeds(g, n, mean, std):
        torch.manual_seed(0)
        return torch.randn(n, generator=g) * std + mean

    rejected(tensors.q3, reseeds, "changed global state", "seed")


# --- "No loops": the statement's instruction, checked on the answer's own code ----------------------------------


def _grid_by_loops(h, w, device):
    rows = [[[i, j] for j in range(w)] for i in range(h)]
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(h, w, 2)


def _nll_by_loop(log_probs, labels):
    return torch.stack([-log_probs[i, labels[i]] for i in range(len(labels))])


def _rows_by_loop(x):
    rows = []
    for row in x:
        rows.append((row - row.mean()) / torch.sqrt(row.var(unbiased=False) + 1e-5))
    return torch.stack(rows)


@pytest.mark.parametrize(("exercise", "answer"), [("q4", _grid_by_loops), ("q8", _nll_by_loop), ("q10", _rows_by_loop)])
def test_no_loops_means_none(exercise, answer):
    assert "no Python loops" in _incorrect(getattr(tensors, exercise), answer)


def test_loops_are_fine_where_the_statement_allows_them():
    assert tensors.q13.loops  # q13 may build its powers in a comprehension
    def powers(x, y, d):
        return torch.linalg.lstsq(torch.stack([x**k for k in range(d + 1)], 1), y[:, None]).solution[:, 0]

    assert tensors.q13.grade(powers).status is Status.CORRECT
