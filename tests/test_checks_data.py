"""Chapter 04 · Data: every reference passes, typical wrong answers get the right feedback, and
other correct answers are accepted."""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from grading import accepted, rejected
from PIL import Image
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    get_worker_info,
)
from torchvision import transforms
from torchvision.transforms import v2

from torchcourse.checks import _data_weights, data
from torchcourse.checks.core import Status

# torchvision 0.29 deprecates its image decoders (for TorchCodec); one accepted answer uses decode_image.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


@pytest.mark.parametrize("ex", list(data.chapter.exercises.values()), ids=lambda ex: ex.id)
def test_reference_passes(ex):
    accepted(ex, ex.reference)


def test_chapter_has_at_least_eight_exercises_in_order():
    assert len(data.chapter.exercises) >= 8
    assert list(data.chapter.exercises) == [f"q{i}" for i in range(1, len(data.chapter.exercises) + 1)]


# --- q1 · a Dataset over a folder with a label file ----------------------------------------------


def _rows(root):
    with open(Path(root) / "labels.csv", newline="") as f:
        return list(csv.reader(f))


class WithHeader(Dataset):
    def __init__(self, root):
        self.root, self.rows = Path(root), _rows(root)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return transforms.ToTensor()(Image.open(self.root / self.rows[i][0]).convert("RGB")), int(self.rows[i][1])


class Sorted(data.LabelledImages):
    def __init__(self, root):
        super().__init__(root)
        self.rows = sorted(self.rows)


class StringLabels(data.LabelledImages):
    def __getitem__(self, i):
        image, label = super().__getitem__(i)
        return image, str(label)


class HWC(data.LabelledImages):
    def __getitem__(self, i):
        image, label = super().__getitem__(i)
        return image.permute(1, 2, 0), label


class NoConvert(data.LabelledImages):
    def __getitem__(self, i):
        name, label = self.rows[i]
        return transforms.ToTensor()(Image.open(self.root / name)), label


class Uint8(data.LabelledImages):
    def __getitem__(self, i):
        name, label = self.rows[i]
        return transforms.PILToTensor()(Image.open(self.root / name).convert("RGB")), label


def test_q1_header_counted_as_a_sample():
    rejected(data.q1, WithHeader, "header")


def test_q1_sorted_instead_of_file_order():
    rejected(data.q1, Sorted, "order of the rows in labels.csv")


def test_q1_string_labels():
    rejected(data.q1, StringLabels, "not an int")


def test_q1_hwc_images():
    rejected(data.q1, HWC, "CHW")


def test_q1_grey_files_not_converted():
    rejected(data.q1, NoConvert, "greyscale")


def test_q1_uint8_images():
    rejected(data.q1, Uint8, "dtype")


class ReadsWithPandasStyle(Dataset):
    """Another correct answer: DictReader, decode_image and a float conversion."""

    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "labels.csv"), newline="") as f:
            self.items = [(row["filename"], int(row["label"])) for row in csv.DictReader(f)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_image

        name, label = self.items[i]
        return decode_image(os.path.join(self.root, name), mode=ImageReadMode.RGB).float() / 255, label


def make_dataset(root):
    """A function returning a Dataset is a correct answer too (v2 pipeline)."""
    rows = _rows(root)[1:]
    pipeline = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])

    class Items(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            image = pipeline(Image.open(Path(root) / rows[i][0]).convert("RGB"))
            return image.as_subclass(torch.Tensor), int(rows[i][1])

    return Items()


class NumpyImages(Dataset):
    """Another correct answer: the pixels through NumPy, the labels kept in a tensor and read with .item()."""

    def __init__(self, root):
        self.root = Path(root)
        with open(self.root / "labels.csv", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            names, labels = zip(*reader, strict=True)
        self.names, self.labels = list(names), torch.tensor([int(y) for y in labels])

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        with Image.open(self.root / self.names[i]) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(pixels).permute(2, 0, 1), self.labels[i].item()


class ListItems(data.LabelledImages):
    def __getitem__(self, i):
        return list(super().__getitem__(i))


def test_q1_a_sample_is_the_pair_the_statement_names():
    rejected(data.q1, ListItems, "expected a tuple of 2 items, got a list")


# --- q2 · a collate_fn that pads and returns lengths --------------------------------------------


def test_q2_time_first():
    rejected(data.q2, lambda s: (pad_sequence([x for x, _ in s]), *data.pad_collate(s)[1:]), "time steps come first")


def test_q2_padded_lengths():
    def padded_lengths(samples):
        padded, _, labels = data.pad_collate(samples)
        return padded, torch.full((len(samples),), padded.shape[1]), labels

    rejected(data.q2, padded_lengths, "own length")


def test_q2_lengths_as_a_list():
    def as_list(samples):
        padded, lengths, labels = data.pad_collate(samples)
        return padded, lengths.tolist(), labels

    rejected(data.q2, as_list, "item 1", "torch.Tensor")


def test_q2_padding_with_ones():
    def ones(samples):
        sequences = [x for x, _ in samples]
        return pad_sequence(sequences, batch_first=True, padding_value=1.0), *data.pad_collate(samples)[1:]

    rejected(data.q2, ones, "item 0", "values differ")


def _by_hand(samples):
    lengths = torch.tensor([len(x) for x, _ in samples])
    first = samples[0][0]
    padded = first.new_zeros(len(samples), lengths.max().item(), first.shape[1])
    for i, (x, _) in enumerate(samples):
        padded[i, : len(x)] = x
    return padded, lengths, torch.tensor([y for _, y in samples])


def _padded_with_f_pad(samples):
    longest = max(len(x) for x, _ in samples)
    padded = torch.stack([torch.nn.functional.pad(x, (0, 0, 0, longest - len(x))) for x, _ in samples])
    lengths = torch.tensor([len(x) for x, _ in samples], dtype=torch.int64)
    return padded, lengths, torch.as_tensor([y for _, y in samples])


def _packed(samples):
    from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

    padded, lengths = pad_packed_sequence(pack_sequence([x for x, _ in samples], enforce_sorted=False),
                                          batch_first=True)
    return padded, lengths, torch.from_numpy(np.array([y for _, y in samples], dtype=np.int64))


def _list_result(samples):
    return list(data.pad_collate(samples))


def test_q2_the_tuple_the_statement_names():
    rejected(data.q2, _list_result, "expected a tuple of 3 items, got a list")


# --- q3 · balanced sampling weights --------------------------------------------------------------


def test_q3_inverse_weights():
    rejected(data.q3, lambda labels: torch.bincount(labels)[labels].double(), "not drawn equally often")


def test_q3_equal_weights():
    rejected(data.q3, lambda labels: torch.ones(len(labels), device=labels.device), "All your weights are equal")


def test_q3_per_class_weights():
    rejected(data.q3, lambda labels: 1.0 / torch.bincount(labels).double(), "one weight per sample")


def test_q3_integer_division():
    rejected(data.q3, lambda labels: 1 // torch.bincount(labels)[labels], "floating point")


def test_q3_zero_weight():
    def zero(labels):
        w = data.balanced_weights(labels)
        w[0] = 0
        return w

    rejected(data.q3, zero, "positive")


def _present_counts(labels):  # right only where every class id from 0 to the largest has samples
    _, counts = torch.unique(labels, return_counts=True)
    return 1.0 / counts[labels].double()


def test_q3_counts_of_the_classes_present_only():
    """The labels always used every class 0..K-1, so counting the classes present and indexing those counts by
    class id passed, though a class id with no sample shifts them (or indexes past their end)."""
    message = rejected(data.q3, _present_counts, "no sample", "no longer lines up with the class ids")
    assert "unique(" not in message and "bincount" not in message  # the defect, not the fix
    accepted(data.q3, data.balanced_weights)


def test_q3_a_class_without_samples_divided_by():
    def normalised_per_class(labels):
        per_class = 1.0 / torch.bincount(labels).double()  # inf for a class id with no sample
        return (per_class / per_class.sum())[labels]

    rejected(data.q3, normalised_per_class, "no sample", "its count is 0")


def test_q3_a_class_id_with_no_sample_draws_nothing():
    """Each class present gets the same total: one the labels skip has none, and is not held against the answer."""
    labels = torch.tensor([4, 4, 1, 4, 4, 4, 4])
    _data_weights._check_weights(data.balanced_weights, labels)  # passes: classes 0, 2 and 3 are absent


def test_q3_the_hidden_labels_span_the_statement():
    cases = [data.q3.make_case(t, "cpu")[0] for t in range(data.q3.total_cases)]
    counts = [torch.bincount(labels) for labels in cases]
    assert all(labels.dtype == torch.int64 for labels in cases)
    assert all(c[c > 0].min() < c.max() for c in counts)  # always unbalanced
    assert all(not torch.equal(labels, labels.sort().values) for labels in cases)  # shuffled
    assert any(c[0] == 0 for c in counts)  # no sample of class 0
    assert any(bool((c[1:-1] == 0).any()) and c[0] > 0 for c in counts)  # a gap in the middle
    assert any((c == 1).any() for c in counts)  # a class of a single sample
    assert any(int((c > 0).sum()) == 2 for c in counts)  # two classes only
    assert any(bool((c > 0).all()) for c in counts)  # and the convenient case too
    assert max(int(c.argmax()) for c in counts) > 0  # the largest class is not always class 0


def test_q3_samples_of_a_class_drawn_unequally():
    def uneven(labels):
        w = data.balanced_weights(labels)
        first = labels == labels[0]
        w[first] = torch.linspace(0.5, 1.5, int(first.sum()), dtype=w.dtype) * w[first]
        return w

    rejected(data.q3, uneven, "not the samples within a class")


@pytest.mark.parametrize(
    "answer",
    [
        lambda labels: len(labels) / torch.bincount(labels)[labels].float(),
        lambda labels: (1.0 / torch.bincount(labels).double())[labels] / 7,
        lambda labels: torch.tensor([1 / n for n in map(Counter(labels.tolist()).get, labels.tolist())],
                                    dtype=torch.float64, device=labels.device),
        lambda labels: 1 / (labels[:, None] == labels[None, :]).sum(1).float(),
        lambda labels: 1 / torch.bincount(labels)[labels].half(),
    ],
    ids=["scaled", "scaled_down", "counter", "pairs", "half"],
)
def test_q3_other_correct_answers(answer):
    accepted(data.q3, answer)


# --- q4 · worker_init_fn --------------------------------------------------------------------------


def _constant(worker_id):
    get_worker_info().dataset.rng = np.random.default_rng(0)


def _by_worker_id(worker_id):
    get_worker_info().dataset.rng = np.random.default_rng(worker_id)


def _global_numpy(worker_id):
    np.random.seed(get_worker_info().seed % 2**32)  # seeds NumPy's global RNG, not the dataset's


def _unseeded(worker_id):
    get_worker_info().dataset.rng = np.random.default_rng()  # fresh entropy: never reproducible


def test_q4_constant_seed():
    rejected(data.q4, _constant, "same numbers")


def test_q4_worker_id_only():
    rejected(data.q4, _by_worker_id, "do not change with the loader's seed")
    assert data.q4._names(1) == ("loader_seed",)  # the case is the loader's seed, not a worker id


def test_q4_global_numpy_seed():
    rejected(data.q4, _global_numpy, "same numbers")


def test_q4_unseeded_generator():
    rejected(data.q4, _unseeded, "same loader seed gave different numbers")


def _sequence_seed(worker_id):
    info = get_worker_info()
    info.dataset.rng = np.random.Generator(np.random.PCG64([info.id, info.seed]))


def _initial_seed(worker_id):  # torch's generator in a worker starts from the worker's seed
    get_worker_info().dataset.rng = np.random.default_rng(torch.initial_seed())


def _drawn_seed(worker_id):  # a seed drawn from the worker's torch generator
    get_worker_info().dataset.rng = np.random.default_rng(torch.randint(0, 2**62, ()).item())


# --- q5 · Normalize statistics --------------------------------------------------------------------


def test_q5_mean_of_batch_means():
    rejected(data.q5, data._mean_of_batch_means, "averaged the batch means")


def test_q5_unbiased_std():
    rejected(data.q5, data._unbiased, "population standard deviation")


def test_q5_mean_of_batch_stds():
    rejected(data.q5, data._mean_of_batch_stds, "averaged the batch standard deviations")


def test_q5_float32_results():
    rejected(data.q5, lambda batches: tuple(t.float() for t in data.channel_stats(batches)), "dtype")


def _concatenated(batches):
    x = torch.cat(list(batches)).double()
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), correction=0)


def _welford_like(batches):
    count, mean, m2 = 0, 0.0, 0.0
    for batch in batches:
        x = batch.double().transpose(0, 1).reshape(batch.shape[1], -1)
        n = x.shape[1]
        batch_mean = x.mean(1)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + ((x - batch_mean[:, None]) ** 2).sum(1) + delta**2 * count * n / total
        count = total
    return mean, (m2 / count).sqrt()


def _variance_form(batches):
    mean, std = data.channel_stats(batches)
    return mean, std.pow(2).sqrt()


def _per_batch_sums(batches):
    sums = [(b.double().sum((0, 2, 3)), b.double().pow(2).sum((0, 2, 3)), b.numel() // b.shape[1]) for b in batches]
    n = sum(c for _, _, c in sums)
    mean = sum(s for s, _, _ in sums) / n
    return mean, (sum(q for _, q, _ in sums) / n - mean**2).sqrt()


def _einsum_sums(batches):
    total = squares = 0
    count = 0
    for batch in batches:
        x = batch.double()
        total = total + torch.einsum("nchw->c", x)
        squares = squares + torch.einsum("nchw,nchw->c", x, x)
        count += x.numel() // x.shape[1]
    mean = total / count
    return mean, torch.sqrt(squares / count - mean * mean)


def _numpy_sums(batches):
    total = squares = 0.0
    count = 0
    for batch in batches:
        x = batch.detach().cpu().numpy().astype(np.float64)
        total = total + x.sum(axis=(0, 2, 3))
        squares = squares + (x**2).sum(axis=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(squares / count - mean**2)
    return torch.from_numpy(mean).to(batches[0].device), torch.from_numpy(std).to(batches[0].device)


def test_q5_other_correct_answers():
    accepted(data.q5, _per_batch_sums)


def test_q5_the_pair_is_a_tuple():
    rejected(data.q5, lambda batches: list(_variance_form(batches)), "expected a tuple of 2 items, got a list")


def test_q5_concatenating_is_ruled_out():
    rejected(data.q5, _concatenated, "without concatenating them", "`torch.cat`")


# --- q6 · transform pipeline ----------------------------------------------------------------------


def _square_resize(crop):
    return transforms.Compose([transforms.Grayscale(), transforms.Resize((crop + 4, crop + 4)),
                               transforms.CenterCrop(crop), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])


def _no_normalize(crop):
    return transforms.Compose([transforms.Grayscale(), transforms.Resize(crop + 4), transforms.CenterCrop(crop),
                               transforms.ToTensor()])


def _crop_then_resize(crop):
    return transforms.Compose([transforms.Grayscale(), transforms.CenterCrop(crop), transforms.Resize(crop + 4),
                               transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])


def _normalize_first(crop):
    return transforms.Compose([transforms.Normalize([0.5], [0.5]), transforms.Grayscale(), transforms.ToTensor()])


def _colour(crop):
    return transforms.Compose([transforms.Resize(crop + 4), transforms.CenterCrop(crop), transforms.ToTensor(),
                               transforms.Normalize([0.5] * 3, [0.5] * 3)])


def test_q6_square_resize_distorts():
    rejected(data.q6, _square_resize, "distorted")


def test_q6_missing_normalize():
    rejected(data.q6, _no_normalize, "[-1, 1]")


def test_q6_crop_before_resize():
    rejected(data.q6, _crop_then_resize, "wrong shape")


def test_q6_normalize_on_a_pil_image():
    rejected(data.q6, _normalize_first, "raised", "take PIL images")


def test_q6_three_channels():
    rejected(data.q6, _colour, "wrong shape")


def _v2(crop):
    return v2.Compose([v2.Grayscale(), v2.Resize(crop + 4), v2.CenterCrop(crop), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5], [0.5])])


def _tensor_first(crop):
    return transforms.Compose([transforms.ToTensor(), transforms.Grayscale(), transforms.Resize(crop + 4),
                               transforms.CenterCrop(crop), transforms.Normalize([0.5], [0.5])])


def _lambda_pipeline(crop):
    def apply(image):
        image = transforms.functional.center_crop(transforms.functional.resize(image.convert("L"), crop + 4), crop)
        return transforms.functional.to_tensor(image) * 2 - 1

    return apply


def _numpy_pipeline(crop):
    def apply(image):
        grey = image.convert("L")
        w, h = grey.size
        short = crop + 4
        size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        pixels = np.asarray(grey.resize(size, Image.BILINEAR), dtype=np.float32) / 255
        top, left = round((pixels.shape[0] - crop) / 2), round((pixels.shape[1] - crop) / 2)
        pixels = pixels[top: top + crop, left: left + crop]
        return torch.from_numpy((pixels - 0.5) / 0.5).unsqueeze(0)

    return apply


def test_q6_other_correct_answers():
    accepted(data.q6, _tensor_first)


# --- q7 · numeric class order ---------------------------------------------------------------------


def test_q7_string_order():
    rejected(data.q7, data._string_order, "string order")


def test_q7_files_as_classes():
    rejected(data.q7, data._with_files, "not a class")


def test_q7_imagefolder_default():
    from torchvision.datasets.folder import find_classes

    rejected(data.q7, find_classes, "string order")


def test_q7_the_stray_file_has_other_names():
    """The stray file was always README.txt: leaving out that name, a .txt, any name with a dot, or
    keeping the names made of digits passed, without asking which entries are directories."""

    def keeping(rule):
        def answer(root):
            classes = sorted((n for n in os.listdir(root) if rule(n)), key=int)
            return classes, {c: i for i, c in enumerate(classes)}

        return answer

    for rule in (lambda n: n != "README.txt", lambda n: not n.endswith(".txt"), lambda n: "." not in n,
                 str.isdigit):
        rejected(data.q7, keeping(rule))
    roots = [Path(data.q7.make_case(t, "cpu")[0]) for t in range(data.q7.total_cases)]
    strays = [p.name for root in roots for p in root.iterdir() if not p.is_dir()]
    assert len(strays) == len(set(strays)) == len(roots)  # one stray file per case, each of its own name


def test_q7_one_based_indices():
    def one_based(root):
        classes, _ = data.numeric_classes(root)
        return classes, {c: i + 1 for i, c in enumerate(classes)}

    rejected(data.q7, one_based, "item 1")


def _imagefolder_subclass(root):
    from torchvision.datasets import ImageFolder

    class Numeric(ImageFolder):
        def find_classes(self, directory):
            return data.numeric_classes(directory)

    folder = Numeric(root, loader=lambda p: p, is_valid_file=lambda p: True)
    return folder.classes, folder.class_to_idx


def _pathlib(root):
    classes = [p.name for p in sorted((p for p in Path(root).iterdir() if p.is_dir()), key=lambda p: int(p.name))]
    return classes, dict(zip(classes, range(len(classes)), strict=True))


def _padded_sort(root):
    names = [n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))]
    classes = sorted(names, key=lambda n: n.zfill(10))
    return classes, {c: classes.index(c) for c in classes}


def _numpy_argsort(root):
    names = [n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))]
    classes = [names[i] for i in np.argsort([int(n) for n in names])]
    return classes, {c: i for i, c in enumerate(classes)}


def _torch_argsort(root):
    names = [e.name for e in os.scandir(root) if e.is_dir()]
    classes = [names[i.item()] for i in torch.tensor([int(n) for n in names]).argsort()]
    return classes, {c: i for i, c in enumerate(classes)}


@pytest.mark.parametrize("answer", [_imagefolder_subclass, _padded_sort])
def test_q7_other_correct_answers(answer):
    accepted(data.q7, answer)


# --- q8 · reproducible loader ---------------------------------------------------------------------


def test_q8_keeps_the_short_batch():
    rejected(data.q8, lambda d, b, s: DataLoader(d, b, shuffle=True, generator=torch.Generator().manual_seed(s)),
             "leftover batch is kept")


def test_q8_a_complete_last_batch_is_kept():
    """Every random dataset left an incomplete batch, so a loader that always drops one batch passed."""
    from torch.utils.data import BatchSampler, RandomSampler

    def one_batch_fewer(d, b, s):  # ceil(n / b) - 1 full batches: one too few when b divides n
        count = (math.ceil(len(d) / b) - 1) * b
        return DataLoader(d, b, sampler=RandomSampler(d, num_samples=count, generator=torch.Generator().manual_seed(s)))

    rejected(data.q8, one_batch_fewer, "all but the dropped leftover")
    accepted(data.q8, lambda d, b, s: DataLoader(
        d, batch_sampler=BatchSampler(RandomSampler(d, generator=torch.Generator().manual_seed(s)), b, True)))


def test_q8_global_seed():
    def global_seed(d, b, s):
        torch.manual_seed(s)
        return DataLoader(d, b, shuffle=True, drop_last=True)

    state = torch.get_rng_state()
    rejected(data.q8, global_seed, "the global random generator's seed")
    assert torch.equal(torch.get_rng_state(), state), "the check must restore the global RNG"


def test_q8_shuffle_without_generator():
    rejected(data.q8, lambda d, b, s: DataLoader(d, b, shuffle=True, drop_last=True), "global RNG")


def test_q8_no_shuffle():
    rejected(data.q8, lambda d, b, s: DataLoader(d, b, drop_last=True), "in order")


def test_q8_seed_ignored():
    rejected(data.q8, lambda d, b, s: DataLoader(d, b, shuffle=True, drop_last=True,
                                                 generator=torch.Generator().manual_seed(0)), "does not depend")


def test_q8_same_order_every_epoch():
    def fixed(d, b, s):
        order = torch.randperm(len(d), generator=torch.Generator().manual_seed(s)).tolist()
        return DataLoader(d, b, sampler=order, drop_last=True)

    rejected(data.q8, fixed, "Every epoch has the same order")


def test_q8_not_a_loader():
    rejected(data.q8, lambda d, b, s: list(data.make_loader(d, b, s)), "DataLoader")


class _NumpyShuffle(Sampler):
    """A new permutation every epoch, from a NumPy generator of the sampler's own."""

    def __init__(self, n, seed):
        self.n, self.rng = n, np.random.default_rng(seed)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.rng.permutation(self.n).tolist())


@pytest.mark.parametrize(
    "answer",
    [
        lambda d, b, s: DataLoader(d, b, True, drop_last=True, generator=torch.Generator().manual_seed(s + 12345)),
        lambda d, b, s: DataLoader(d, b, shuffle=True, drop_last=True, num_workers=0,
                                   generator=torch.Generator().manual_seed(s * 3 + 1)),
    ],
)
def test_q8_other_correct_answers(answer):
    accepted(data.q8, answer)


# --- q9 · IDX files -------------------------------------------------------------------------------


def test_q9_little_endian_dims():
    def little(path, array):
        array = array.cpu()
        header = bytes([0, 0, 8, array.dim()]) + b"".join(int(d).to_bytes(4, "little") for d in array.shape)
        Path(path).write_bytes(header + array.numpy().tobytes())

    rejected(data.q9, little, "big-endian")


def test_q9_no_header():
    rejected(data.q9, lambda path, array: Path(path).write_bytes(array.cpu().numpy().tobytes()), "bytes")


def test_q9_wrong_type_code():
    def int32(path, array):
        array = array.cpu()
        header = bytes([0, 0, 0x0C, array.dim()]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        Path(path).write_bytes(header + array.numpy().tobytes())

    rejected(data.q9, int32, "magic number")


def test_q9_torch_save():
    rejected(data.q9, lambda path, array: torch.save(array, path), "bytes")


def _numpy_header(path, array):
    a = array.cpu().numpy()
    with open(path, "wb") as f:
        f.write(np.array([0, 0, 8, a.ndim], dtype=np.uint8).tobytes())
        f.write(np.array(a.shape, dtype=">i4").tobytes())
        f.write(a.tobytes())


def _struct(path, array):
    import struct

    a = array.cpu().contiguous()
    Path(path).write_bytes(struct.pack(f">HBB{a.dim()}I", 0, 8, a.dim(), *a.shape) + bytes(a.flatten().tolist()))


def _transposed_then_back(path, array):
    data.write_idx(path, array.cpu().t().t() if array.dim() == 1 else array.cpu().transpose(1, 2).transpose(1, 2))


def _byte_by_byte(path, array):
    out = bytearray([0, 0, 8, array.dim()])
    for size in array.shape:
        out += size.to_bytes(4, "big")
    out += bytearray(value.item() for value in array.cpu().reshape(-1))
    with open(path, "wb") as f:
        f.write(out)


def test_q9_other_correct_answers():
    accepted(data.q9, _transposed_then_back)


# --- q10 · an IterableDataset that shards across workers ------------------------------------------


class _NoShard(IterableDataset):
    def __init__(self, items):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)  # every worker yields the whole list


class _OnlyWithWorkers(_NoShard):
    def __iter__(self):
        info = get_worker_info()  # None in the main process
        return iter(self.items[info.id::info.num_workers])


class _FloorChunks(_NoShard):
    def __iter__(self):
        info = get_worker_info()
        count, index = (1, 0) if info is None else (info.num_workers, info.id)
        size = len(self.items) // count  # rounded down: the last items belong to no worker
        return iter(self.items[index * size:(index + 1) * size])


class _OffByOne(_NoShard):
    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(self.items[start:-1:step])  # the last item is never read


class _Overlapping(_NoShard):
    def __iter__(self):
        info = get_worker_info()
        return iter(self.items if info is None else self.items[info.id:])  # worker 1 reads worker 0's share too


class _MapStyle(Dataset):
    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_q10_wrong_streams_are_named():
    rejected(data.q10, _NoShard, "every item arrived 2 times")
    rejected(data.q10, _OnlyWithWorkers, "num_workers=0", "AttributeError")
    rejected(data.q10, _FloorChunks, "never arrived")
    rejected(data.q10, _OffByOne, "never arrived")
    rejected(data.q10, _Overlapping, "more than once")
    rejected(data.q10, _MapStyle, "IterableDataset")
    assert data.q10.grade(_PlaceholderStream).status is Status.NOT_ATTEMPTED


class _PlaceholderStream(_NoShard):
    def __iter__(self):
        return ...


def test_q10_hidden_lists_span_the_statement():
    lengths = [len(data.q10.make_case(t, "cpu")[0]) for t in range(data.q10.trials)]
    assert any(n % 2 for n in lengths if n > 2) and 1 in lengths  # an uneven split, and fewer items than workers


def test_q10_under_spawn(monkeypatch):
    """Workers started by spawn import nothing from the test or the notebook: the dataset travels by value."""
    from torchcourse.checks import _data_stream

    monkeypatch.setattr(_data_stream, "_context", lambda: "spawn")
    _data_stream._judge_stream(_Chunks, ([5, 3, 8],))
    with pytest.raises(Exception, match="every item arrived 2 times"):
        _data_stream._judge_stream(_NoShard, ([5, 3, 8],))


class _Chunks(_NoShard):
    def __iter__(self):
        info = get_worker_info()
        count, index = (1, 0) if info is None else (info.num_workers, info.id)
        size = -(-len(self.items) // count)  # rounded up: the last chunk is the short one
        yield from self.items[index * size:(index + 1) * size]


class _IsliceStream(_NoShard):
    def __iter__(self):
        import itertools

        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return itertools.islice(self.items, start, None, step)


class _NumpySplit(_NoShard):
    def __iter__(self):
        info = get_worker_info()
        if info is None:
            yield from self.items
        else:  # NumPy integers: the loader hands them over as 0-d tensors
            yield from np.array_split(np.array(self.items), info.num_workers)[info.id]


# --- three different correct answers per exercise (#24) ------------------------------------------------------------


def _unique_inverse(labels):
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].double()


def _numpy_bincount(labels):
    y = labels.cpu().numpy()
    return torch.from_numpy(1.0 / np.bincount(y)[y]).to(labels.device)


def _loader_with_sampler(d, b, s):
    sampler = RandomSampler(d, generator=torch.Generator().manual_seed(s))
    return DataLoader(d, batch_size=b, drop_last=True, sampler=sampler)


def _loader_with_batch_sampler(d, b, s):
    return DataLoader(d, batch_sampler=BatchSampler(RandomSampler(d, generator=torch.Generator().manual_seed(s)), b,
                                                    drop_last=True))


# Each list: different APIs or formulations; where the statement allows it, one goes through .item() and one
# through NumPy (the statements ask for tensors, a Dataset, a loader or a file, so NumPy stays inside).
CORRECT = {
    "q1": [ReadsWithPandasStyle, make_dataset, NumpyImages],
    "q2": [_by_hand, _padded_with_f_pad, _packed],
    "q3": [_unique_inverse, _numpy_bincount,
           lambda labels: torch.tensor([1 / (labels == y).sum().item() for y in labels], device=labels.device)],
    "q4": [_sequence_seed, _initial_seed, _drawn_seed],
    "q5": [_welford_like, _einsum_sums, _numpy_sums],
    "q6": [_v2, _lambda_pipeline, _numpy_pipeline],
    "q7": [_pathlib, _numpy_argsort, _torch_argsort],
    "q8": [_loader_with_sampler, _loader_with_batch_sampler,
           lambda d, b, s: DataLoader(d, b, sampler=_NumpyShuffle(len(d), s), drop_last=True)],
    "q9": [_numpy_header, _struct, _byte_by_byte],
    "q10": [_Chunks, _IsliceStream, _NumpySplit],
}


@pytest.mark.parametrize(("qid", "index"), [(q, i) for q in CORRECT for i in range(3)])
def test_three_correct_answers_are_accepted(qid, index):
    exercise = data.chapter.exercises[qid]
    outcome = exercise.grade(CORRECT[qid][index])
    assert outcome.status is Status.CORRECT, outcome.message
