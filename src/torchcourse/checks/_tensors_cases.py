"""The hidden cases and references of chapter 01's exercises (declared in :mod:`.tensors`).

For each exercise, in order: the function that draws its random inputs (``_images``, ``_counts``...), any fixed
case built by hand, and the reference answer (the public name the solutions notebook shows). :mod:`.tensors`
declares every exercise once with these, its hints and its misconceptions.
"""

from __future__ import annotations

import torch

from .core import randint as _randint

# --- q1 · 01.1 creation and dtypes ---------------------------------------------------------------


def _images(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    n, h, w = (_randint(generator, 1, 5) for _ in range(3))
    return (torch.randint(0, 256, (n, h, w), generator=generator, dtype=torch.uint8).to(device),)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32) / 255


# --- q2 · dtype rules: reductions on integers ------------------------------------------------------


def _counts(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    shape = (_randint(generator, 2, 6), _randint(generator, 2, 6))
    return (torch.randint(0, 100, shape, generator=generator).to(device),)


def mean_count(counts: torch.Tensor) -> torch.Tensor:
    return counts.to(torch.float32).mean()


# --- q3 · random constructors: randn is N(0, 1), not uniform on [-1, 1] ---------------------------------


def _sampling(generator: torch.Generator, device: str) -> tuple[torch.Generator, int, float, float]:
    seed = _randint(generator, 0, 2**31)
    n = _randint(generator, 20, 200)
    mean = float(torch.empty(()).uniform_(-5, 5, generator=generator))
    std = float(torch.empty(()).uniform_(0.5, 3, generator=generator))
    return torch.Generator().manual_seed(seed), n, mean, std


def _used_generator(device: str) -> tuple[torch.Generator, int, float, float]:
    generator = torch.Generator().manual_seed(11)
    torch.rand(5, generator=generator)  # the generator has been used before: its state is not the seed's
    return generator, 7, 2.5, 0.5


def normal_samples(generator: torch.Generator, n: int, mean: float, std: float) -> torch.Tensor:
    return torch.randn(n, generator=generator) * std + mean


# --- q4 · arange and stacking: a coordinate grid ---------------------------------------------------


def _grid_size(generator: torch.Generator, device: str) -> tuple[int, int, str]:
    return _randint(generator, 1, 7), _randint(generator, 1, 7), device


def coordinate_grid(h: int, w: int, device: str) -> torch.Tensor:
    rows = torch.arange(h, device=device).view(h, 1).expand(h, w)
    cols = torch.arange(w, device=device).view(1, w).expand(h, w)
    return torch.stack([rows, cols], dim=-1)


# --- q5 · 01.2 views: undo a flatten + transpose without copying ---------------------------


def _tokens(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int, int]:
    b, c = _randint(generator, 1, 4), _randint(generator, 2, 6)
    h, w = _randint(generator, 2, 5), _randint(generator, 2, 5)
    if h == w:  # h != w, so an answer that swaps them has the wrong shape
        w += 1
    maps = torch.randn(b, c, h, w, generator=generator).to(device)
    return maps.flatten(2).transpose(1, 2), h, w  # (B, h*w, C): a view of maps, not contiguous


def tokens_to_maps(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return tokens.transpose(1, 2).unflatten(2, (h, w))


# --- q6 · 01.2 views: sliding windows that share memory -------------------------------------


def _signals(generator: torch.Generator, device: str, trial: int = 0) -> tuple[torch.Tensor, int, int]:
    """Odd trials hand in a non-contiguous (transposed) signal, which the statement allows: its samples are
    ``B`` elements apart. (A strided slice would not reach the answer: the check hands it a clone.)"""
    size, step = _randint(generator, 2, 5), _randint(generator, 1, 4)
    leftover = _randint(generator, 0, step) if _randint(generator, 0, 2) else 0  # dropped at the end
    length = size + step * _randint(generator, 1, 5) + leftover
    batch = _randint(generator, 2 if trial % 2 else 1, 4)  # a transposed single row would be contiguous
    if trial % 2:
        signal = torch.randn(length, batch, generator=generator).T
    else:
        signal = torch.randn(batch, length, generator=generator)
    return signal.to(device), size, step


def sliding_windows(signal: torch.Tensor, size: int, step: int) -> torch.Tensor:
    return signal.unfold(-1, size, step)


# --- q7 · 01.3 scatter_: one-hot encoding ----------------------------------------------------


def _labels(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int]:
    num_classes = _randint(generator, 3, 9)
    # the last class never occurs, so its count cannot be read off the labels
    labels = torch.randint(0, num_classes - 1, (_randint(generator, 2, 9),), generator=generator)
    return labels.to(device), num_classes


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    out = torch.zeros(len(labels), num_classes, device=labels.device)
    return out.scatter_(1, labels.unsqueeze(1), 1.0)


# --- q8 · 01.3 gather: the negative log-likelihood of each label ---------------------------


def _log_probs(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, c = _randint(generator, 2, 9), _randint(generator, 2, 9)
    if n == c:  # so that an (N, N) table cannot pass for an (N, C) one
        c += 1
    logits = torch.randn(n, c, generator=generator) * 2
    labels = torch.randint(0, c, (n,), generator=generator)
    return logits.log_softmax(dim=1).to(device), labels.to(device)


def nll(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)


# --- q9 · 01.4 topk: the k best scores of each row --------------------------------------------


def _scores(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int]:
    n, m = _randint(generator, 3, 7), _randint(generator, 7, 12)  # n < m
    return torch.randn(n, m, generator=generator).to(device), _randint(generator, 2, n + 1)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = scores.topk(k, dim=1)
    return values, indices


# --- q10 · 01.4 reductions with keepdim: standardise each row ------------------------------


def _rows(generator: torch.Generator, device: str) -> tuple[torch.Tensor]:
    n = _randint(generator, 3, 8)
    # square inputs in some cases, so that forgetting keepdim broadcasts silently instead of failing
    d = _randint(generator, 3, 9) if _randint(generator, 0, 2) else n
    scale = torch.empty(n, 1).uniform_(-5, 1, generator=generator).exp()  # some rows tiny spread
    shift = torch.empty(n, 1).uniform_(-10, 10, generator=generator)
    return (torch.randn(n, d, generator=generator).mul(scale).add(shift).to(device),)


def standardize_rows(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, correction=0)
    return (x - mean) / torch.sqrt(var + 1e-5)


# --- q11 · 01.4 reductions with a mask: mean over the valid time steps ----------------------


def _padded(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    b, t, d = _randint(generator, 2, 5), _randint(generator, 3, 7), _randint(generator, 1, 5)
    x = torch.randn(b, t, d, generator=generator)
    mask = torch.rand(b, t, generator=generator) < 0.6
    mask[:, 0] = True  # every sequence has a valid step
    mask[0, -1] = False  # and some padding
    return x.to(device), mask.to(device)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1)


# --- q12 · 01.5 broadcasting / linear algebra: batched pairwise distances --------------------


def _point_sets(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    b, d = _randint(generator, 1, 4), _randint(generator, 1, 6)
    n, m = _randint(generator, 2, 7), _randint(generator, 2, 7)
    x = torch.randn(b, n, d, generator=generator)
    y = torch.randn(b, m, d, generator=generator)
    return x.to(device), y.to(device)


def _coinciding(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[[0.3, -1.2], [2.0, 0.5], [-1.5, 1.0]]])
    return x.to(device), x[:, [1, 0]].to(device)  # every point of y is also a point of x


def pairwise_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    diff = x.unsqueeze(2) - y.unsqueeze(1)  # (B, N, 1, D) - (B, 1, M, D) -> (B, N, M, D)
    return diff.pow(2).sum(dim=-1).sqrt()


# --- q13 · 01.5 least squares: fit a polynomial -----------------------------------------------


def _samples(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    degree = _randint(generator, 1, 4)
    n = _randint(generator, degree + 4, 20)
    x = torch.rand(n, generator=generator, dtype=torch.float64) * 4 - 2
    true = torch.randn(degree + 1, generator=generator, dtype=torch.float64)
    y = torch.vander(x, degree + 1, increasing=True) @ true
    y = y + 0.1 * torch.randn(n, generator=generator, dtype=torch.float64)
    return x.to(device), y.to(device), degree


def _constant_fit(device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    return x.to(device), (2 + 0.1 * x.sin()).to(device), 0


def fit_polynomial(x: torch.Tensor, y: torch.Tensor, degree: int) -> torch.Tensor:
    design = torch.vander(x, degree + 1, increasing=True)  # columns 1, x, x², ...
    return torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)


# --- q14 · 01.5 spectral: a low-pass filter with torch.fft -----------------------------------


def _noisy(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int]:
    length = 2 * _randint(generator, 4, 12) + 1  # odd, where irfft needs to be told n
    signal = torch.randn(_randint(generator, 1, 4), length, generator=generator)
    return signal.to(device), _randint(generator, 1, length // 2)


def low_pass(signal: torch.Tensor, keep: int) -> torch.Tensor:
    spectrum = torch.fft.rfft(signal, dim=-1)
    spectrum[..., keep:] = 0
    return torch.fft.irfft(spectrum, n=signal.shape[-1], dim=-1)


def _low_pass_full_fft(signal: torch.Tensor, keep: int) -> torch.Tensor:
    spectrum = torch.fft.fft(signal, dim=-1)
    spectrum[..., keep:] = 0
    return torch.fft.ifft(spectrum, dim=-1).real


def _low_pass_spectrum(signal: torch.Tensor, keep: int) -> torch.Tensor:
    spectrum = torch.fft.rfft(signal, dim=-1)
    spectrum[..., keep:] = 0
    return spectrum


# --- q15 · 01.6 random sampling with a generator: bootstrap means ---------------------------


def _bootstrap(generator: torch.Generator, device: str) -> tuple[torch.Tensor, int, torch.Generator]:
    n, d = _randint(generator, 3, 9), _randint(generator, 1, 4)
    data = torch.randn(n, d, generator=generator) * 3
    seed = _randint(generator, 0, 2**31)
    return data.to(device), _randint(generator, 2, 7), torch.Generator().manual_seed(seed)


def _used_bootstrap(device: str) -> tuple[torch.Tensor, int, torch.Generator]:
    generator = torch.Generator().manual_seed(5)
    torch.randint(0, 10, (3,), generator=generator)
    return torch.arange(8.0).view(4, 2).to(device), 3, generator


def bootstrap_means(data: torch.Tensor, num_resamples: int, generator: torch.Generator):
    n = data.shape[0]
    rows = torch.randint(0, n, (num_resamples, n), generator=generator).to(data.device)
    return data[rows].mean(dim=1)


# --- q16 · 01.7 sparse tensors: sum messages along the edges of a graph ---------------------


def _graph(generator: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = _randint(generator, 3, 8), _randint(generator, 1, 4)
    edges = torch.randint(0, n, (2, n + _randint(generator, 1, 8)), generator=generator)
    edges = torch.cat([edges, edges[:, :2]], dim=1)  # more edges than nodes, and repeated edges
    return torch.randn(n, d, generator=generator).to(device), edges.to(device)


def aggregate(features: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    source, target = edges
    return torch.zeros_like(features).index_add_(0, target, features[source])


def _aggregate_once_per_pair(features: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    n = features.shape[0]
    adjacency = torch.zeros(n, n, dtype=features.dtype, device=features.device)
    adjacency[edges[1], edges[0]] = 1
    return adjacency @ features


def _aggregate_plus_equals(features: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(features)
    out[edges[1]] += features[edges[0]]
    return out
