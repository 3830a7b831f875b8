"""The SA-1B training set: seeded crops, rank splits, skipped files, reproducible subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanosam2.data.dataset import EpochSampler, SA1BImages, collate_skipping, random_resized_crop_box
from nanosam2.data.sa1b_files import find_images, parse_chunks, select_subset
from nanosam2.errors import NanoSam2Error

from .sa1b_synthetic import make_sa1b


@pytest.fixture(scope="module")
def sa1b(tmp_path_factory):
    return make_sa1b(tmp_path_factory.mktemp("sa1b-data"))


def test_crop_boxes_are_in_bounds_and_follow_the_seed():
    boxes = [random_resized_crop_box(300, 200, np.random.default_rng(s)) for s in range(200)]
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 200
        assert 3 / 4 - 0.02 <= (right - left) / (bottom - top) <= 4 / 3 + 0.02
    areas = np.array([(r - x) * (b - t) for x, t, r, b in boxes]) / (300 * 200)
    assert areas.min() >= 0.07 and areas.max() <= 1.0 and areas.std() > 0.1  # scale 0.08..1
    assert random_resized_crop_box(300, 200, np.random.default_rng(5)) == boxes[5]
    assert random_resized_crop_box(4000, 10, np.random.default_rng(0)) == (1993, 0, 2006, 10)  # centre fallback


def test_samples_are_normalised_and_reproducible(sa1b):
    files = find_images(sa1b)
    data = SA1BImages(files, image_size=64)
    first, again, other = data[(0, 7)], data[(0, 7)], data[(0, 8)]
    assert first.shape == (3, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert -2.2 < float(first.min()) and float(first.max()) < 2.7  # ImageNet mean/std applied
    corrupt = [i for i, f in enumerate(files) if f.name == "sa_999.jpg"][0]
    assert data[(corrupt, 0)] is None
    batch, skipped = collate_skipping([first, None, other])
    assert batch.shape == (2, 3, 64, 64) and skipped == 1


def test_epoch_sampler_splits_ranks_and_skips_for_resume():
    whole = list(EpochSampler(10, seed=3, epoch=1))
    assert sorted(i for i, _ in whole) == list(range(10))
    assert [i for i, _ in whole] != [i for i, _ in EpochSampler(10, seed=3, epoch=2)]
    ranks = [list(EpochSampler(10, seed=3, epoch=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [4, 4, 4]  # padded as DistributedSampler
    assert {i for r in ranks for i, _ in r} == set(range(10))
    assert list(EpochSampler(10, seed=3, epoch=1, rank=1, world_size=3, start=2)) == ranks[1][2:]
    assert len(EpochSampler(10, seed=3, epoch=1, start=4)) == 6


def test_chunks_and_subsets(sa1b, tmp_path):
    assert len(find_images(sa1b)) == 9
    assert {p.parent.name for p in find_images(sa1b, ["sa_000001"])} == {"sa_000001"}
    listing = tmp_path / "chunks.txt"
    listing.write_text("# training chunks\nsa_000000\n\nsa_000001\n")
    assert parse_chunks(str(listing)) == ["sa_000000", "sa_000001"] == parse_chunks("sa_000000, sa_000001")
    files = find_images(sa1b)
    assert select_subset(files, 4, seed=0) == select_subset(files, 4, seed=0) != select_subset(files, 4, seed=1)
    assert select_subset(files, None, 0) == files
    with pytest.raises(NanoSam2Error, match="must be positive"):
        select_subset(files, 0, 0)
    with pytest.raises(NanoSam2Error, match="the training set is empty"):
        SA1BImages([])
