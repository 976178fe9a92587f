"""torchcourse.datasets: the worker processes of chapter 04 really run, and the drawn files are real images."""

from __future__ import annotations

import os
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader

from torchcourse import datasets


def test_items_come_from_more_than_one_worker_process():
    items = torch.cat(list(DataLoader(datasets.WhoLoadedMe(8), batch_size=2, num_workers=2)))
    index, pid, worker = items.T
    assert index.tolist() == list(range(8))
    assert len(set(pid.tolist())) == 2 and os.getpid() not in pid.tolist()
    assert set(worker.tolist()) == {0, 1}


def test_items_from_spawned_workers():
    loader = DataLoader(datasets.WhoLoadedMe(4), batch_size=2, num_workers=2, multiprocessing_context="spawn")
    pids = set(torch.cat(list(loader))[:, 1].tolist())
    assert len(pids) == 2 and os.getpid() not in pids


def test_without_workers_the_main_process_loads():
    items = torch.cat(list(DataLoader(datasets.WhoLoadedMe(4), batch_size=2)))
    assert items[:, 1].tolist() == [os.getpid()] * 4 and items[:, 2].tolist() == [-1] * 4


def test_counting_dataset_loses_counts_in_workers_and_the_shared_one_keeps_them():
    counting, shared = datasets.CountingDataset(6), datasets.SharedCountingDataset(6)
    assert sum(len(b) for b in DataLoader(counting, batch_size=2, num_workers=2)) == 6 and counting.num == 0
    assert sum(len(b) for b in DataLoader(shared, batch_size=2, num_workers=2)) == 6 and shared.num.value == 6


def test_write_image_folder_writes_decodable_images(tmp_path):
    root = datasets.write_image_folder(tmp_path, per_class=[2, 1, 3])
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert len(names) == 6 and names[0] == "circle/circle_0.png"
    with Image.open(root / names[0]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    assert datasets.draw_shape("square", 16, seed=1).tobytes() == datasets.draw_shape("square", 16, seed=1).tobytes()


def test_flip_images_are_flipped():
    flips = datasets.FlipImages(4, size=8)
    image, label = flips[1]
    assert torch.equal(image, flips.images[1].flip(-1)) and int(label) == 1


def test_slow_reads_wait_then_return_their_index():
    reads = datasets.SlowReads(4, wait=0.01)
    start = time.perf_counter()
    items = [int(reads[i]) for i in range(len(reads))]
    assert items == [0, 1, 2, 3] and time.perf_counter() - start >= 4 * 0.01  # a sleep never ends early
    loaded = torch.cat(list(DataLoader(datasets.SlowReads(6, wait=0.001), batch_size=2, num_workers=2)))
    assert loaded.tolist() == list(range(6))  # importable by workers: every sample, once, in order
