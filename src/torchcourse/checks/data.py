"""Exercises of chapter 04 · Data (``exercises/04_data.ipynb``).

Many answers here are not a tensor: a ``Dataset`` class, a transform, a ``DataLoader``, a
``worker_init_fn`` that runs in worker processes, a file on disk. :class:`JudgedExercise` adds a
``judge`` to the core :class:`Exercise` that checks such an answer its own way (and still turns
every exception, placeholder and wrong type into feedback). Files the hidden cases need are real
files, written under the session's scratch folder (``tc.workdir()``), which is removed at exit.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..datasets import SHAPES, draw_shape
from ._data_files import _folder, _idx_case, _judge_idx, write_idx
from ._data_stream import ShardedStream, _judge_stream, _stream_case
from ._data_weights import _CASES, _KINDS, _judge_weights, _unbalanced_labels, balanced_weights
from ._data_workers import _first_line, _judge_worker_init, _loader_seeds, seed_worker
from .core import (
    Case,
    Chapter,
    JudgedExercise,
    Mismatch,
    NotAttempted,
    Uses,
    call_answer,
    compare,
    describe,
)
from .core import randint as _randint

chapter = Chapter("04_data", "Data")


def _declare(id: str, title: str, **options: Any) -> JudgedExercise:  # noqa: A002
    """Declare a :class:`JudgedExercise` of this chapter."""
    return chapter.register(JudgedExercise(chapter, id, title, **options))


# --- q1 · 04.1/04.4 a Dataset over a folder with a label file ---------------------------------------


def _labelled_folder(generator: torch.Generator, device: str) -> tuple[str]:
    root = _folder("labelled", generator)
    count = _randint(generator, 3, 7)
    names = [f"img_{_randint(generator, 0, 10_000):05d}_{i}.png" for i in range(count)]
    order = torch.randperm(count, generator=generator).tolist()  # the file's order is not sorted order
    rows = []
    for i in order:
        width, height = _randint(generator, 8, 20), _randint(generator, 8, 20)
        image = draw_shape(SHAPES[i % 3], 24, seed=_randint(generator, 0, 1000)).resize((width, height))
        if _randint(generator, 0, 2):
            image = image.convert("L")  # a grey file among colour ones: convert("RGB") makes it 3 channels
        image.save(root / names[i])
        rows.append((names[i], _randint(generator, 0, 5)))
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return (str(root),)


class LabelledImages(Dataset):
    def __init__(self, root):
        from pathlib import Path

        self.root = Path(root)
        with open(self.root / "labels.csv", newline="") as f:
            self.rows = [(name, int(label)) for name, label in list(csv.reader(f))[1:]]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        from PIL import Image
        from torchvision.transforms.functional import to_tensor

        name, label = self.rows[index]
        with Image.open(self.root / name) as image:
            return to_tensor(image.convert("RGB")), label


def _judge_labelled(answer: Callable[..., Any], case: Case) -> None:
    dataset = call_answer(answer, *case)
    if dataset is None:
        raise Mismatch("Your class (or function) gave None: it must return a Dataset object.")
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise Mismatch(f"Expected a Dataset (with __getitem__ and __len__), got {describe(dataset)}.")
    expected = LabelledImages(*case)
    try:
        if type(dataset).__len__(dataset) is ... or type(dataset).__getitem__(dataset, 0) is ...:
            raise NotAttempted
    except NotAttempted:
        raise
    except Exception:  # noqa: BLE001 - the checks below report what fails
        pass
    try:
        length = len(dataset)
    except Exception as error:
        raise Mismatch(f"len() of your dataset raised {type(error).__name__}: {error}") from None
    if length == len(expected) + 1:
        raise Mismatch("Your dataset has one sample too many: the first line of labels.csv is a header, not a file.")
    if length != len(expected):
        raise Mismatch(f"Your dataset has {length} samples; labels.csv lists {len(expected)} files.")
    for i in range(length):
        try:
            item = dataset[i]
        except Exception as error:
            raise Mismatch(f"dataset[{i}] raised {type(error).__name__}: {error}") from None
        image, label = expected[i]
        if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str):
            raise Mismatch(f"sample {i}: the label is a string, not an int.")
        if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], torch.Tensor):
            got = item[0]
            if got.dim() == 3 and got.shape[-1] == 3 and got.shape[0] != 3:
                raise Mismatch(f"sample {i}: the image is HWC {tuple(got.shape)}; tensors are CHW (3, H, W).")
            if got.dim() == 3 and got.shape[0] == 1:
                raise Mismatch(f"sample {i}: one channel, not 3: some files are greyscale, and every image must come "
                               "out RGB.")
        try:
            compare(item, (image, label), f"sample {i} (image, label)")
        except Mismatch:
            if _matches(item, _sorted_rows(*case)[i]):
                raise Mismatch(
                    "Your samples are in sorted file-name order, not in the order of the rows in labels.csv."
                ) from None
            raise


def _sorted_rows(root):
    dataset = LabelledImages(root)
    dataset.rows = sorted(dataset.rows)
    return dataset


def _matches(actual: Any, expected: Any) -> bool:
    try:
        compare(actual, expected)
    except Mismatch:
        return False
    return True


q1 = _declare(
    "q1",
    "A Dataset over a folder with a label file",
    points=2,
    reference=LabelledImages,
    inputs=_labelled_folder,
    judge=_judge_labelled,
    trials=2,
    hints=[
        "Read labels.csv once, in __init__ (the csv module; skip the header row), and keep the "
        "(file name, label) rows in the file's order. __len__ is the number of rows.",
        "In __getitem__, open the file with PIL.Image.open, .convert('RGB'), and turn it into a "
        "(3, H, W) float tensor in [0, 1] with torchvision.transforms.ToTensor(); return (image, int(label)).",
    ],
)


# --- q2 · 04.2 a collate_fn that pads and returns lengths ----------------------------------------


def _variable_batch(generator: torch.Generator, device: str) -> tuple[list[tuple[torch.Tensor, int]]]:
    size, features = _randint(generator, 2, 6), _randint(generator, 1, 4)
    lengths = [_randint(generator, 1, 7) for _ in range(size)]
    lengths[_randint(generator, 0, size)] = 7  # the longest is never the first by construction alone
    samples = [(torch.randn(n, features, generator=generator).to(device), _randint(generator, 0, 10)) for n in lengths]
    return (samples,)


def pad_collate(samples):
    sequences, labels = zip(*samples, strict=True)
    lengths = torch.tensor([len(s) for s in sequences])
    return pad_sequence(list(sequences), batch_first=True, padding_value=0.0), lengths, torch.tensor(labels)


q2 = _declare(
    "q2",
    "A collate_fn that pads and returns the lengths",
    points=1,
    reference=pad_collate,
    inputs=_variable_batch,
    hints=[
        "`zip(*samples)` separates the sequences from the labels.",
        "`torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True)` pads with zeros to the "
        "longest; the lengths are `torch.tensor([len(s) for s in sequences])` (on the CPU, as "
        "pack_padded_sequence wants them).",
    ],
    misconceptions=[
        (
            lambda samples: (pad_sequence([s for s, _ in samples]), *pad_collate(samples)[1:]),
            "Your padded batch is (longest, batch, features): the time steps come first, not the batch.",
        ),
        (
            lambda samples: (
                pad_collate(samples)[0],
                torch.full((len(samples),), max(len(s) for s, _ in samples)),
                pad_collate(samples)[2],
            ),
            "Your lengths are all the padded length, not each sequence's own length.",
        ),
    ],
)


# --- q3 · 04.3 balanced sampling weights -------------------------------------------------------------
# Labels with gaps among the class ids, a single-sample class, two classes; cases and judge: _data_weights.py.


q3 = _declare(
    "q3",
    "Weights for a balanced WeightedRandomSampler",
    points=1,
    reference=balanced_weights,
    inputs=_unbalanced_labels,
    judge=_judge_weights,
    trials=len(_KINDS),  # one of each kind of labels
    cases=_CASES,
    hints=[
        "A class with n samples should get total weight independent of n, so each of its samples "
        "gets 1/n (only the ratios matter: any common factor is fine).",
        "`counts = torch.bincount(labels)`; then `counts[labels]` is each sample's class size.",
    ],
)


# --- q4 · 04.2 a worker_init_fn that makes augmentation reproducible -------------------------------
# Judged in real DataLoader workers, under this platform's start method: _data_workers.py.


q4 = _declare(
    "q4",
    "A worker_init_fn that makes augmentation reproducible",
    points=2,
    reference=seed_worker,
    inputs=_loader_seeds,
    case_names=["loader_seed"],  # the DataLoader generator's seed, not a worker_id (the workers' ids are 0 and 1)
    judge=_judge_worker_init,
    trials=2,
    reseeds=True,  # seeding a worker's own generators is what a worker_init_fn is for
    hints=[
        "Inside a worker, `torch.utils.data.get_worker_info()` gives `.id`, `.seed` (different per "
        "worker, derived from the loader's generator) and `.dataset`, this worker's copy of the dataset.",
        "Replace that copy's generator: `info.dataset.rng = np.random.default_rng(info.seed)`.",
    ],
)


# --- q5 · 04.5 Normalize statistics in one pass ------------------------------------------------


def _image_batches(generator: torch.Generator, device: str) -> tuple[list[torch.Tensor]]:
    channels, height, width = _randint(generator, 1, 4), _randint(generator, 3, 7), _randint(generator, 3, 7)
    sizes = [_randint(generator, 3, 7) for _ in range(_randint(generator, 2, 4))] + [_randint(generator, 1, 3)]
    scale = torch.rand(channels, 1, 1, generator=generator) + 0.2
    return ([(torch.rand(n, channels, height, width, generator=generator) * scale).to(device) for n in sizes],)


def channel_stats(batches):
    total = squares = 0
    count = 0
    for batch in batches:
        x = batch.double()
        total = total + x.sum(dim=(0, 2, 3))
        squares = squares + x.pow(2).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    return mean, (squares / count - mean**2).sqrt()


def _mean_of_batch_means(batches):
    mean = torch.stack([b.double().mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    return mean, channel_stats(batches)[1]


def _unbiased(batches):
    x = torch.cat(list(batches)).double()
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def _mean_of_batch_stds(batches):
    stds = [b.double().std(dim=(0, 2, 3), correction=0) for b in batches]
    return channel_stats(batches)[0], torch.stack(stds).mean(0)


q5 = _declare(
    "q5",
    "Normalize statistics in one pass",
    points=2,
    reference=channel_stats,
    inputs=_image_batches,
    atol=1e-6,
    rtol=1e-6,
    forbids=[Uses("torch.cat", "torch.concat", "torch.concatenate", "torch.vstack", "torch.hstack",
                  "torch.row_stack", "torch.column_stack", "torch.dstack",
                  says="go over the batches once, without concatenating them")],
    hints=[
        "Per channel, keep three running totals over the batches: the sum of the values, the sum "
        "of their squares, and how many values there were (batch × height × width).",
        "mean = sum / count and std = sqrt(sum_of_squares / count − mean²). Accumulate in float64 "
        "(`batch.double()`), and sum over dims (0, 2, 3).",
    ],
    misconceptions=[
        (_mean_of_batch_means, "You averaged the batch means: the last batch is smaller, so its values weigh too "
                               "much."),
        (_unbiased, "That is the unbiased standard deviation (divide by N - 1); Normalize wants the population "
                    "standard deviation."),
        (_mean_of_batch_stds, "You averaged the batch standard deviations: that is not the standard deviation of "
                              "all the values."),
    ],
)


# --- q6 · 04.5 a transform pipeline with a given output ---------------------------------------------


def _crop_size(generator: torch.Generator, device: str) -> tuple[int]:
    return (_randint(generator, 12, 29),)


def build_pipeline(crop):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Grayscale(),
        transforms.Resize(crop + 4),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize([0.5], [0.5]),
    ])


def _test_images(crop: int) -> list[Any]:
    generator = torch.Generator().manual_seed(crop)
    images = []
    for i, (w, h) in enumerate([(crop + 20, crop + 8), (crop + 6, crop + 30), (crop + 10, crop + 10)]):
        shape = draw_shape(SHAPES[i], 40, seed=_randint(generator, 0, 1000))
        images.append(shape.resize((w, h)))
    return images


def _judge_pipeline(answer: Callable[..., Any], case: Case) -> None:
    (crop,) = case
    transform = call_answer(answer, crop)
    if not callable(transform):
        raise Mismatch(f"build_pipeline(crop) must return a transform (a callable), got {describe(transform)}.")
    reference = build_pipeline(crop)
    for i, image in enumerate(_test_images(crop)):
        try:
            result = transform(image.copy())
        except Exception as error:
            raise Mismatch(
                f"Your transform raised {type(error).__name__} on a {image.size[0]}×{image.size[1]} RGB image: "
                f"{_first_line(error)}. A transform got the wrong kind of input: Grayscale, Resize and CenterCrop "
                "take PIL images, Normalize takes a tensor."
            ) from None
        expected = reference(image.copy())
        if isinstance(result, torch.Tensor) and result.shape == expected.shape and result.dtype == expected.dtype:
            low, high = float(result.min()), float(result.max())
            if low >= 0 and high > 0.5 and float(expected.min()) < 0:
                raise Mismatch(f"image {i}: your values are in [0, 1], not [-1, 1]: they were not normalised.")
            if not torch.allclose(result.float(), expected, atol=0.03):
                raise Mismatch(
                    f"image {i}: the shape is right but the pixels are not, as when the image is distorted "
                    "(Resize((h, w)) changes its aspect ratio) or cropped in another order."
                )
            continue
        compare(result, expected, f"image {i}", atol=0.03, rtol=0)


q6 = _declare(
    "q6",
    "A transform pipeline with a given output",
    points=1,
    reference=build_pipeline,
    inputs=_crop_size,
    judge=_judge_pipeline,
    trials=2,
    hints=[
        "Chain with transforms.Compose([...]): Grayscale(), Resize(crop + 4), CenterCrop(crop), "
        "then ToTensor(), then Normalize.",
        "Resize(int) scales the shorter side and keeps the aspect ratio. One grey channel: "
        "Normalize([0.5], [0.5]).",
    ],
)


# --- q7 · 04.4 ImageFolder classes sorted as numbers --------------------------------------------------


# the file that is not a class: a note, a name without a dot, a hidden file, and one named by a number
# (no folder is "0"), so that only "is it a directory?" tells it apart, not its name
_STRAY_FILES = ["README.txt", "LICENSE", ".DS_Store", "0"]


def _numbered_folders(generator: torch.Generator, device: str, trial: int = 0) -> tuple[str]:
    root = _folder("numbered", generator)
    small = torch.randperm(9, generator=generator)[: _randint(generator, 1, 4)] + 1
    large = torch.randperm(190, generator=generator)[: _randint(generator, 2, 4)] + 10
    for number in torch.cat([small, large]).tolist():
        (root / str(number)).mkdir()
        (root / str(number) / "0.png").write_bytes(b"")
    (root / _STRAY_FILES[trial % len(_STRAY_FILES)]).write_text("not a class")
    return (str(root),)


def numeric_classes(root):
    import os

    classes = sorted((e.name for e in os.scandir(root) if e.is_dir()), key=int)
    return classes, {name: i for i, name in enumerate(classes)}


def _string_order(root):
    import os

    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    return classes, {name: i for i, name in enumerate(classes)}


def _with_files(root):
    import os

    classes = sorted(os.listdir(root), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
    return classes, {name: i for i, name in enumerate(classes)}


q7 = _declare(
    "q7",
    "ImageFolder classes in numeric order",
    points=1,
    reference=numeric_classes,
    inputs=_numbered_folders,
    trials=len(_STRAY_FILES),
    hints=[
        "ImageFolder sorts folder names as strings, so '10' comes before '2'. List the folders "
        "yourself (os.scandir(root), keeping entries with .is_dir()).",
        "sorted(names, key=int) sorts by number; then class_to_idx = {name: i for i, name in enumerate(classes)}.",
    ],
    misconceptions=[
        (_string_order, "Your classes are in string order ('10' before '2'), as ImageFolder's are, not in numeric "
                        "order."),
        (_with_files, "A file at the top of root is among your classes, but it is not a class: only directories are."),
    ],
)


# --- q8 · 04.2 a reproducible, shuffled loader that drops the last batch -----------------------------


def _loader_case(generator: torch.Generator, device: str) -> tuple[Dataset, int, int]:
    n, batch_size = _randint(generator, 10, 30), _randint(generator, 3, 7)
    if n % batch_size == 0:
        n += 1  # always a leftover batch to drop
    return TensorDataset(torch.arange(n)), batch_size, _randint(generator, 0, 2**31)


def make_loader(dataset, batch_size, seed):
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))


def _epoch(loader: Any) -> list[list[int]]:
    batches = []
    for batch in loader:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        batches.append(torch.as_tensor(first).flatten().tolist())
    return batches


def _judge_loader(answer: Callable[..., Any], case: Case) -> None:
    state = torch.get_rng_state()
    try:
        _check_loader(answer, case)
    finally:
        torch.set_rng_state(state)  # leave the learner's session as it was


def _check_loader(answer: Callable[..., Any], case: Case) -> None:
    dataset, batch_size, seed = case
    marker = _randint(torch.Generator().manual_seed(seed), 1, 2**62)
    torch.manual_seed(marker)  # (restored by the caller) to see whether the answer reseeds the global RNG
    loader = call_answer(answer, dataset, batch_size, seed)
    if torch.initial_seed() != marker:
        raise Mismatch(
            "Your function reseeds the global random number generator (torch.manual_seed), which changes the whole "
            "session's randomness."
        )
    if not isinstance(loader, DataLoader):
        raise Mismatch(f"Expected a torch.utils.data.DataLoader, got {describe(loader)}.")
    try:
        first, second = _epoch(loader), _epoch(loader)
        again = _epoch(call_answer(answer, dataset, batch_size, seed))
        other = _epoch(call_answer(answer, dataset, batch_size, seed + 1))
    except Mismatch:
        raise
    except Exception as error:
        raise Mismatch(f"Iterating your loader raised {type(error).__name__}: {_first_line(error)}") from None
    n = len(dataset)
    sizes = [len(b) for b in first]
    if sizes and sizes[-1] != batch_size:
        raise Mismatch(f"Your last batch has {sizes[-1]} samples, not {batch_size}: the incomplete leftover batch is "
                       "kept.")
    if any(s != batch_size for s in sizes):
        raise Mismatch(f"Your batches have sizes {sorted(set(sizes))}; each must have batch_size={batch_size}.")
    seen = [i for b in first for i in b]
    if len(seen) != n - n % batch_size or len(set(seen)) != len(seen):
        raise Mismatch("An epoch must visit every sample at most once, and all but the dropped leftover.")
    if seen == sorted(seen):
        raise Mismatch("Your loader returns the samples in order: nothing shuffles them.")
    if first != again:
        raise Mismatch(
            "Two loaders made with the same seed give different orders: shuffling without a generator draws from "
            "the global RNG."
        )
    if first == second:
        raise Mismatch("Every epoch has the same order: the permutation was drawn once, not anew each epoch.")
    if first == other:
        raise Mismatch("The order does not depend on the seed: the seed argument is never used.")


q8 = _declare(
    "q8",
    "A reproducible shuffled loader without a short last batch",
    points=1,
    reference=make_loader,
    inputs=_loader_case,
    judge=_judge_loader,
    # every random dataset leaves an incomplete batch: here the last batch is complete, and is kept
    cases=[lambda device: (TensorDataset(torch.arange(12)), 4, 2024),
           lambda device: (TensorDataset(torch.arange(15)), 5, 7)],
    hints=[
        "DataLoader takes shuffle=True, drop_last=True and generator=...",
        "generator=torch.Generator().manual_seed(seed) makes the order reproducible without touching "
        "the global seed (torch.manual_seed would change the learner's whole session).",
    ],
)


# --- q9 · 04.4 write an IDX file that torchvision's MNIST reads ------------------------------------
# The case (a uint8 array, 1-d or 3-d) and the judge, which reads the file back with torchvision: _data_files.py.


q9 = _declare(
    "q9",
    "Write an IDX file that torchvision reads",
    points=1,
    reference=write_idx,
    inputs=_idx_case,
    judge=_judge_idx,
    hints=[
        "The header is bytes([0, 0, 0x08, ndim]) followed by each dimension as "
        "int(d).to_bytes(4, 'big'); then the values, one byte each, row-major.",
        "The tensor may be on a GPU: `array.cpu().numpy().tobytes()` gives the bytes.",
    ],
)


# --- q10 · 04.2 an IterableDataset that shards across workers ----------------------------------------
# Read with 0, 1 and 2 real workers, under this platform's start method: _data_stream.py.


q10 = _declare(
    "q10",
    "An IterableDataset that shards across workers",
    points=2,
    reference=ShardedStream,
    inputs=_stream_case,
    judge=_judge_stream,
    trials=2,  # an odd number of items, then a single item (fewer than the workers)
    hints=[
        "Every worker gets its own copy of the dataset and runs its __iter__ in full: each must yield only its share.",
        "Inside __iter__, torch.utils.data.get_worker_info() gives this worker's id and num_workers; it is None "
        "in the main process (no workers), which must then yield everything.",
        "Worker id yields items id, id + num_workers, id + 2·num_workers, ...: self.items[info.id::info.num_workers].",
    ],
)
