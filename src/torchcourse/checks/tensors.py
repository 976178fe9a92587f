"""Exercises of chapter 01 · Tensors (``exercises/01_tensors.ipynb``)."""

from __future__ import annotations

import math

import torch

from ._tensors_cases import (
    _aggregate_once_per_pair,
    _aggregate_plus_equals,
    _bootstrap,
    _coinciding,
    _constant_fit,
    _counts,
    _graph,
    _grid_size,
    _images,
    _labels,
    _log_probs,
    _low_pass_full_fft,
    _low_pass_spectrum,
    _noisy,
    _padded,
    _point_sets,
    _rows,
    _samples,
    _sampling,
    _scores,
    _signals,
    _tokens,
    _used_bootstrap,
    _used_generator,
    aggregate,
    bootstrap_means,
    coordinate_grid,
    fit_polynomial,
    low_pass,
    masked_mean,
    mean_count,
    nll,
    normal_samples,
    one_hot,
    pairwise_distances,
    sliding_windows,
    standardize_rows,
    to_unit_float,
    tokens_to_maps,
    top_k,
)
from .core import Chapter, Uses

chapter = Chapter("01_tensors", "Tensors")


# --- q1 · 01.1 creation and dtypes ---------------------------------------------------------------


q1 = chapter.exercise(
    "q1",
    "Bytes to unit floats",
    points=1,
    reference=to_unit_float,
    inputs=_images,
    cases=[  # the end points, and other shapes than (N, H, W): the statement says "same shape"
        (torch.tensor([0, 255, 1, 254], dtype=torch.uint8),),
        (torch.arange(0, 256, 15, dtype=torch.uint8).reshape(2, 3, 1, 3),),
    ],
    hints=[
        "An image arrives as uint8 values 0..255; a network wants float32 values in [0, 1].",
        "Convert the dtype first (`.to(torch.float32)` or `.float()`), then scale.",
    ],
    misconceptions=[
        (lambda images: images.float(), "The dtype is right, but the values are 255 times too large: they still run "
                                        "0..255 instead of 0..1."),
        (lambda images: images // 255, "Floor division keeps the integer dtype and rounds almost everything to 0."),
    ],
)


# --- q2 · dtype rules: reductions on integers ------------------------------------------------------


q2 = chapter.exercise(
    "q2",
    "The mean of integer counts",
    points=1,
    reference=mean_count,
    inputs=_counts,
    cases=[(torch.tensor([7]),), (torch.arange(10),), (torch.arange(24).reshape(2, 3, 4),)],  # any shape
    hints=[
        "Try `counts.mean()` on an int64 tensor: read the error it raises.",
        "A mean is fractional, so convert to the default floating dtype first.",
    ],
    misconceptions=[
        (lambda counts: counts.sum() // counts.numel(),
         "Your mean is a whole number: integer division drops the fraction."),
    ],
)


# --- q3 · random constructors: randn is N(0, 1), not uniform on [-1, 1] ---------------------------------


q3 = chapter.exercise(
    "q3",
    "Samples from N(mean, std²) with a given generator",
    points=1,
    reference=normal_samples,
    inputs=_sampling,
    atol=1e-5,
    rtol=1e-5,
    cases=[_used_generator, (torch.Generator().manual_seed(3), 1, 0.0, 1.0)],
    global_rng=False,
    hints=[
        "`torch.randn` draws from the standard normal N(0, 1); how do you shift and stretch it?",
        "Pass `generator=generator` so your draws are the reproducible ones the check expects.",
    ],
    misconceptions=[
        (lambda g, n, mean, std: (torch.rand(n, generator=g) * 2 - 1) * std + mean,
         "These are uniform samples, all within std of the mean: normal samples are unbounded and cluster around "
         "the mean."),
        (lambda g, n, mean, std: torch.randn(n, generator=g) * std**2 + mean,
         "You scaled by the variance (std²), so the samples' spread is std² instead of std."),
    ],
)


# --- q4 · arange and stacking: a coordinate grid ---------------------------------------------------


q4 = chapter.exercise(
    "q4",
    "A coordinate grid",
    points=2,
    reference=coordinate_grid,
    inputs=_grid_size,
    cases=[lambda device: (1, 5, device), lambda device: (4, 1, device), lambda device: (1, 1, device)],
    loops=False,
    hints=[
        "`torch.arange(h)` gives the row numbers and `torch.arange(w)` the column numbers.",
        "Make both (h, w) with `view` plus `expand` (or `torch.meshgrid(..., indexing='ij')`), "
        "then `torch.stack` along a new last dim.",
        "Create them with `device=device` so the grid lives where it is asked for.",
    ],
    misconceptions=[
        (lambda h, w, device: coordinate_grid(h, w, device).flip(-1),
         "The pairs are (column, row); the grid asks for (row, column)."),
        (lambda h, w, device: coordinate_grid(h, w, device).float(),
         "Your coordinates are floating point, but coordinates are integers (int64 indices)."),
    ],
)


# --- q5 · 01.2 views: undo a flatten + transpose without copying ---------------------------


q5 = chapter.exercise(
    "q5",
    "Tokens back to feature maps, without a copy",
    points=2,
    reference=tokens_to_maps,
    inputs=_tokens,
    shares_memory=True,
    hints=[
        "Undo the steps in reverse order: first the transpose, then the flatten.",
        "`tokens.transpose(1, 2)` is (B, C, h*w) and, here, contiguous again: `view` can split "
        "its last dim into (h, w).",
        "`reshape` straight to (B, C, h, w) keeps the elements in their current (transposed) "
        "order; `.contiguous()` or `.clone()` make a copy. Neither undoes the chain.",
    ],
    misconceptions=[
        (lambda t, h, w: t.reshape(t.shape[0], t.shape[2], h, w),
         "reshape (or view) does not undo a transpose: it reads the elements in the tokens' current order (position "
         "by position), so channels and positions get mixed up."),
        (lambda t, h, w: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], w, h),
         "Height and width are swapped: flatten(2) put the row index h first, so the positions run (h, w), not (w, "
         "h)."),
    ],
)


# --- q6 · 01.2 views: sliding windows that share memory -------------------------------------


q6 = chapter.exercise(
    "q6",
    "Sliding windows without copying",
    points=2,
    reference=sliding_windows,
    inputs=_signals,
    trials=5,  # with and without an incomplete last window; trials 1 and 3 non-contiguous (transposed)
    shares_memory=True,
    cases=[(torch.arange(7.0).view(1, 7), 2, 3),  # step > size
           (torch.arange(10.0).view(2, 5), 5, 1),  # a single window
           (torch.arange(18.0).view(6, 3).T, 3, 2)],  # a non-contiguous signal: its samples are 3 apart
    hints=[
        "A signal of length L has (L - size) // step + 1 windows; the last incomplete one is dropped.",
        "Stacking slices in a loop copies every window. `Tensor.unfold(dim, size, step)` returns "
        "them as a view, with one more dimension.",
        "`signal.unfold(-1, size, step)` has shape (B, windows, size). (`torch.as_strided` can "
        "build the same view by hand: the window dim moves `step` elements, the new one 1.)",
    ],
    misconceptions=[
        (lambda s, size, step: sliding_windows(s, size, step)[:, :-1],
         "One window short: your windows stop before the last one, which starts at L - size."),
        (lambda s, size, step: s.unfold(-1, size, size),
         "Your windows do not overlap: consecutive windows start `step` elements apart, not "
         "`size`."),
    ],
)


# --- q7 · 01.3 scatter_: one-hot encoding ----------------------------------------------------


q7 = chapter.exercise(
    "q7",
    "One-hot encoding with scatter_",
    points=1,
    reference=one_hot,
    inputs=_labels,
    cases=[(torch.tensor([3, 0, 3]), 4), (torch.tensor([0]), 1)],  # the last class, and one class
    requires=[Uses("torch.Tensor.scatter_", "torch.Tensor.scatter", "torch.scatter",
                   says="build it with `Tensor.scatter_`")],
    hints=[
        "Start from zeros of shape (N, num_classes) (float32, on labels.device) and write a 1 "
        "in row i, column labels[i].",
        "`out.scatter_(dim, index, value)` writes `value` at out[i][index[i][j]] when dim=1: "
        "the index needs the same number of dims as out.",
        "`labels.unsqueeze(1)` turns (N,) into (N, 1): one column index per row.",
    ],
    misconceptions=[
        (lambda labels, c: torch.nn.functional.one_hot(labels, c),
         "The ones are in the right places but the dtype is int64 (what F.one_hot returns). A one-hot matrix feeds "
         "matmuls and losses, which expect float32."),
        (lambda labels, c: torch.nn.functional.one_hot(labels).float(),
         "Your matrix has too few columns: the number of classes is num_classes, not the largest "
         "label + 1 (a batch need not contain every class)."),
        (lambda labels, c: one_hot(labels, c + 1),
         "Off by one: your matrix has one column too many, but labels run from 0 to num_classes - 1."),
        (lambda labels, c: one_hot(labels, c).t(),
         "You built the transpose: your rows are classes, but row i must be the one-hot vector of labels[i], shape "
         "(N, num_classes)."),
    ],
)


# --- q8 · 01.3 gather: the negative log-likelihood of each label ---------------------------


q8 = chapter.exercise(
    "q8",
    "The negative log-likelihood of each label",
    points=1,
    reference=nll,
    inputs=_log_probs,
    cases=[
        (torch.tensor([[-0.5, -1.0]]).log_softmax(1), torch.tensor([1])),  # N = 1
        # classes of probability 0 (log-probability -inf), beside the label and at it
        (torch.tensor([[0.0, -math.inf, -math.inf], [-math.inf, math.log(0.25), math.log(0.75)],
                       [-math.inf, 0.0, -math.inf]]), torch.tensor([0, 2, 0])),
    ],
    loops=False,
    hints=[
        "You need one value per row: row i, column labels[i]. Then negate it.",
        "`log_probs.gather(1, index)` picks out[i][j] = log_probs[i][index[i][j]]; the index "
        "must be 2-D, (N, 1), and so is the result.",
        "Or pair rows and columns with two index tensors: "
        "`log_probs[torch.arange(N, device=...), labels]`.",
    ],
    misconceptions=[
        (lambda lp, labels: -lp[:, labels],
         "log_probs[:, labels] takes every label column for every row: an (N, N) table, not one value per row (row "
         "i's at labels[i])."),
        (lambda lp, labels: -lp.gather(1, labels.unsqueeze(1)),
         "Your result has shape (N, 1), not (N,): gather keeps the dimension it indexes."),
        (lambda lp, labels: lp.gather(1, labels.unsqueeze(1)).squeeze(1),
         "These are the log-probabilities; the negative log-likelihood is their negation (a loss "
         "is small when the probability is high)."),
        (lambda lp, labels: -lp.gather(1, labels.unsqueeze(1)).squeeze(1).exp(),
         "These are negated probabilities: the inputs are already log-probabilities, and you exponentiated them."),
    ],
)


# --- q9 · 01.4 topk: the k best scores of each row --------------------------------------------


q9 = chapter.exercise(
    "q9",
    "The top k of each row, with their indices",
    points=1,
    reference=top_k,
    inputs=_scores,
    cases=[(torch.tensor([[0.5, -1.0, 2.0]]), 1), (torch.tensor([[0.5, -1.0, 2.0], [3.0, 1.0, 0.0]]), 3)],
    hints=[
        "Each row is one sample: you want its k largest scores, largest first, and the columns "
        "they came from.",
        "`torch.topk(input, k, dim=...)` returns a (values, indices) pair; it picks the largest "
        "by default and sorts them in descending order.",
        "Work along the columns of each row: dim=1 (or dim=-1).",
    ],
    misconceptions=[
        (lambda s, k: tuple(s.topk(k, dim=1, largest=False)),
         "These are the k smallest scores: topk(..., largest=False) (or an ascending sort) picks "
         "from the wrong end."),
        (lambda s, k: tuple(t[:, -k:] for t in s.sort(dim=1)),
         "You have the right k scores in ascending order: sort(dim=1) sorts ascending, so its last k are the "
         "largest, smallest first, not largest first."),
        (lambda s, k: tuple(s.topk(k, dim=0)),
         "You took the top k of each column (dim=0): that is the best k samples per class, not the best k classes "
         "of each row."),
    ],
)


# --- q10 · 01.4 reductions with keepdim: standardise each row ------------------------------


q10 = chapter.exercise(
    "q10",
    "Standardise each row (layer-norm style)",
    points=2,
    reference=standardize_rows,
    inputs=_rows,
    trials=5,  # square and non-square cases
    atol=1e-4,
    rtol=1e-4,
    cases=[(torch.tensor([[1.0], [-2.0]]),), (torch.tensor([[3.0, 3.0, 3.0]]),)],  # D = 1, a constant row
    loops=False,
    hints=[
        "Reduce over dim=1 (the features of each row): the mean and the variance of each row.",
        "`x.mean(dim=1)` has shape (N,); subtracting it from (N, D) broadcasts it along the last "
        "dim, i.e. across columns. Keep the reduced dim with keepdim=True: shape (N, 1).",
        "Layer norm uses the population variance (divide by D): `x.var(dim=1, keepdim=True, "
        "correction=0)`. Add eps = 1e-5 inside the square root.",
    ],
    misconceptions=[
        (lambda x: (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True) + 1e-5),
         "Your variance is the unbiased one: torch.var and torch.std divide by D - 1 by default (Bessel's "
         "correction), but layer norm uses the population variance."),
        (lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True),
         "Your standard deviation divides by D - 1 (Bessel's correction, torch.std's default) and has no eps: layer "
         "norm uses the population variance, with eps = 1e-5 inside the square root."),
        (lambda x: (x - x.mean(1)) / torch.sqrt(x.var(1, correction=0) + 1e-5),
         "Your statistics have shape (N,), not (N, 1) (no keepdim), so they broadcast along the last dim: column j "
         "got row j's statistics instead of each row its own."),
        (lambda x: (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, correction=0)
                                                              + 1e-5),
         "You standardised each column (dim=0), but each row is one sample: its statistics must come from that row."),
        (lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True, correction=0),
         "Almost: there is no eps = 1e-5 inside the square root. It matters for rows whose values hardly vary, and "
         "without it a constant row divides by zero."),
    ],
)


# --- q11 · 01.4 reductions with a mask: mean over the valid time steps ----------------------


q11 = chapter.exercise(
    "q11",
    "Mean over the valid time steps",
    points=2,
    reference=masked_mean,
    inputs=_padded,
    atol=1e-5,
    rtol=1e-5,
    cases=[(torch.arange(6.0).view(1, 3, 2), torch.tensor([[True, True, True]]))],  # no padding at all
    loops=False,
    hints=[
        "Zero the padded steps, sum over time, and divide by the number of valid steps of each "
        "sequence, not by T.",
        "mask is (B, T) and x is (B, T, D): `mask.unsqueeze(-1)` (B, T, 1) broadcasts over the "
        "features.",
        "`mask.sum(dim=1, keepdim=True)` counts the valid steps per sequence, shape (B, 1); "
        "convert the mask to x's dtype before multiplying.",
    ],
    misconceptions=[
        (lambda x, mask: x.mean(dim=1),
         "You averaged the padding too: the steps where mask is False are in your mean."),
        (lambda x, mask: (x * mask.unsqueeze(-1)).sum(dim=1) / x.shape[1],
         "You zeroed the padding but still divided by T, not by each sequence's number of valid steps, so the means "
         "of padded sequences are too small."),
        (lambda x, mask: x[mask].mean(dim=0),
         "x[mask] gathers the valid steps of all sequences into one (num_valid, D) table, so their mean mixes the "
         "batch: one mean for all the sequences, not one per sequence."),
    ],
)


# --- q12 · 01.5 broadcasting / linear algebra: batched pairwise distances --------------------


q12 = chapter.exercise(
    "q12",
    "Batched pairwise distances, without loops",
    points=2,
    reference=pairwise_distances,
    inputs=_point_sets,
    atol=1e-3,  # the ||x||² + ||y||² - 2 x·y route loses about this much at distance 0
    rtol=2e-4,
    cases=[_coinciding],  # distance 0 between coinciding points
    loops=False,
    hints=[
        "out[b, i, j] = ||x[b, i] - y[b, j]||: every point of x against every point of y, within "
        "each batch.",
        "Insert singleton dims so the differences broadcast to (B, N, M, D): "
        "`x.unsqueeze(2) - y.unsqueeze(1)`.",
        "Square, sum over the last dim (D), then take the square root. (`torch.cdist(x, y)` "
        "does all of this, and ||x||² + ||y||² - 2 x·yᵀ with `torch.bmm` avoids the 4-D tensor; rounding can "
        "make that a tiny negative number where two points coincide, and its square root NaN.)",
    ],
    misconceptions=[
        (lambda x, y: pairwise_distances(x, y) ** 2,
         "These are the squared distances."),
        (lambda x, y: pairwise_distances(y, x),
         "Your result is transposed, (B, M, N): the differences broadcast the other way round, with y's points on "
         "dim 1 and x's on dim 2."),
        (lambda x, y: (x.unsqueeze(2) - y.unsqueeze(1)).abs().sum(dim=-1),
         "That is the L1 (Manhattan) distance, the sum of absolute differences, not the Euclidean distance."),
    ],
)


# --- q13 · 01.5 least squares: fit a polynomial -----------------------------------------------


q13 = chapter.exercise(
    "q13",
    "Fit a polynomial by least squares",
    points=2,
    reference=fit_polynomial,
    inputs=_samples,
    atol=1e-6,
    rtol=1e-6,
    cases=[_constant_fit],  # degree 0: the mean
    forbids=[Uses("torch.inverse", "torch.Tensor.inverse", "torch.linalg.inv", "torch.linalg.inv_ex",
                  "torch.linalg.pinv", "torch.pinverse", "torch.Tensor.pinverse", "torch.cholesky_inverse",
                  says="solve without forming an inverse")],
    hints=[
        "Build the design matrix A with columns 1, x, x², ..., x^degree; the coefficients c "
        "minimise ||A c - y||².",
        "`torch.vander(x, degree + 1, increasing=True)` builds A. Its default order is the "
        "highest power first.",
        "Solve with `torch.linalg.lstsq(A, y.unsqueeze(1)).solution` (the old `torch.lstsq` is "
        "gone), not by inverting AᵀA.",
    ],
    misconceptions=[
        (lambda x, y, d: fit_polynomial(x, y, d).flip(0),
         "Your coefficients are in reverse order, highest power first (torch.vander's default order): c[k] must "
         "multiply x**k."),
        (lambda x, y, d: fit_polynomial(x, y, d - 1),
         "One coefficient short: a polynomial of degree d has d + 1 coefficients, constant term included."),
    ],
)


# --- q14 · 01.5 spectral: a low-pass filter with torch.fft -----------------------------------


q14 = chapter.exercise(
    "q14",
    "A low-pass filter with torch.fft",
    points=2,
    reference=low_pass,
    inputs=_noisy,
    atol=1e-4,
    rtol=1e-4,
    cases=[(torch.arange(8.0).view(1, 8).sin(), 2),  # an even length
           (torch.arange(7.0).view(1, 7).cos(), 4)],  # keep every bin: the signal itself
    hints=[
        "Go to the frequency domain along the last dim, zero every bin from `keep` on, and come "
        "back.",
        "For a real signal use `torch.fft.rfft`: bins 0 .. L//2, frequency increasing. (The "
        "old function `torch.rfft` is gone; the `torch.fft` module replaced it.)",
        "`torch.fft.irfft` cannot tell an odd length from an even one: pass "
        "`n=signal.shape[-1]`.",
    ],
    misconceptions=[
        (lambda s, keep: torch.fft.irfft(_low_pass_spectrum(s, keep), dim=-1),
         "Your signal is one sample short: without the original length, irfft assumes an even one."),
        (_low_pass_spectrum,
         "You returned the (complex) spectrum, not the filtered real signal."),
        (_low_pass_full_fft,
         "With torch.fft.fft, the upper half of the bins hold the negative frequencies, and you zeroed them too: "
         "the low negative frequencies went with the high ones."),
        (lambda s, keep: low_pass(s, keep + 1),
         "One bin too many: you kept bins 0 .. keep, but exactly `keep` bins, 0 .. keep - 1, survive (bin 0 is the "
         "mean)."),
    ],
)


# --- q15 · 01.6 random sampling with a generator: bootstrap means ---------------------------


q15 = chapter.exercise(
    "q15",
    "Bootstrap means from a seeded generator",
    points=2,
    reference=bootstrap_means,
    inputs=_bootstrap,
    atol=1e-5,
    rtol=1e-5,
    cases=[_used_bootstrap],  # a generator that has already been used
    global_rng=False,
    hints=[
        "A bootstrap resample draws N rows *with replacement*. Draw all the row numbers in one "
        "call: `torch.randint(0, N, (num_resamples, N), generator=generator)`.",
        "The generator lives on the CPU: draw the indices there, then `.to(data.device)`.",
        "`data[rows]` with rows (R, N) is (R, N, D); average over the N drawn rows.",
    ],
    misconceptions=[
        (lambda data, r, g: data.mean(dim=0).expand(r, -1),
         "Every resample has the same mean as the data: you drew without replacement (a permutation, e.g. "
         "randperm), but a bootstrap resample draws with replacement."),
        (lambda data, r, g: data[torch.randint(0, data.shape[0] - 1, (r, data.shape[0]),
                                               generator=g).to(data.device)].mean(dim=1),
         "The last row is never drawn: torch.randint's upper bound is exclusive, so randint(0, N - 1) draws only 0 "
         ".. N - 2."),
        (lambda data, r, g: data[torch.randint(0, data.shape[0], (data.shape[0], r),
                                               generator=g).t().to(data.device)].mean(dim=1),
         "Your indices were drawn as (N, num_resamples), not one row per resample: the same generator gives "
         "different resamples when you draw a differently shaped tensor."),
    ],
)


# --- q16 · 01.7 sparse tensors: sum messages along the edges of a graph ---------------------


q16 = chapter.exercise(
    "q16",
    "Sum messages along the edges of a graph",
    points=3,
    reference=aggregate,
    inputs=_graph,
    atol=1e-5,
    rtol=1e-5,
    cases=[(torch.arange(6.0).view(3, 2), torch.tensor([[0], [2]]))],  # one edge, nodes without any
    loops=False,
    hints=[
        "This is a sparse matrix product: out = A @ features, with A[t, s] the number of edges "
        "s → t. Build A with `torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=True)`: "
        "its repeated indices are summed.",
        "Without a matrix: `torch.zeros_like(features).index_add_(0, target, features[source])` "
        "adds each source's row into its target's row.",
        "`out[target] += features[source]` does not accumulate repeated targets: only one of "
        "their updates survives.",
    ],
    misconceptions=[
        (lambda f, e: aggregate(f, e.flip(0)),
         "You sent the messages the wrong way: each node collected from the edges that leave it, not from those "
         "that point to it (edges[1] == t)."),
        (_aggregate_plus_equals,
         "out[target] += ... with repeated targets is not accumulated: each node kept only one incoming message."),
        (_aggregate_once_per_pair,
         "Repeated edges count once in your result: assigning A[t, s] = 1 writes the same position again, so "
         "duplicates are not summed."),
    ],
)
