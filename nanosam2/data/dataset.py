"""The distillation training set: SA-1B images, RandomResizedCrop + ImageNet normalisation.

As the seed: ToTensor -> RandomResizedCrop(1024) (scale 0.08-1, ratio 3/4-4/3, bilinear with
antialiasing) -> ImageNet mean/std. The crop of every sample is drawn from a generator seeded by
``(seed, epoch, index)`` that the sampler hands in with the index, so augmentation does not depend
on worker count, rank or global RNG state: a resumed run sees exactly the same pixels.
Unreadable images yield ``None``; :func:`collate_skipping` drops and counts them.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from nanosam2 import transforms as T
from nanosam2.errors import NanoSam2Error
from nanosam2.images import to_rgb

logger = logging.getLogger(__name__)

Sample = tuple[int, int]  # (index into the file list, augmentation seed)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` (10 tries, then a centre crop), drawn
    from ``rng``. Returns the crop as (left, top, right, bottom) in pixels."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


class SA1BImages(Dataset):
    """Image files -> normalised ``[3, S, S]`` float tensors (``None`` when a file is unreadable)."""

    def __init__(self, files: Sequence[str | os.PathLike[str]], image_size: int = T.IMAGE_SIZE,
                 mean: tuple[float, float, float] = T.PIXEL_MEAN, std: tuple[float, float, float] = T.PIXEL_STD) -> None:
        if not files:
            from nanosam2.errors import NanoSam2Error

            raise NanoSam2Error("the training set is empty")
        self.files = [Path(f) for f in files]
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: Sample) -> torch.Tensor | None:
        index, seed = item
        path = self.files[index]
        try:
            with Image.open(path) as image:
                rgb = Image.fromarray(to_rgb(image, str(path)))
                box = random_resized_crop_box(rgb.width, rgb.height, np.random.default_rng(seed))
                crop = rgb.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR, box=box)
        except (OSError, ValueError, NanoSam2Error) as exc:  # truncated, corrupt, vanished or float-pixel file
            logger.debug("skipping unreadable image %s: %s", path, exc)
            return None
        pixels = torch.from_numpy(np.asarray(crop, dtype=np.float32).transpose(2, 0, 1).copy()) / 255.0
        return (pixels - self.mean) / self.std


def collate_skipping(samples: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, int]:
    """Stack the readable samples; also return how many were skipped."""
    good = [s for s in samples if s is not None]
    return (torch.stack(good) if good else None), len(samples) - len(good)


class EpochSampler(Sampler[Sample]):
    """Shuffled ``(index, augmentation seed)`` pairs for one epoch and one rank.

    The order is a permutation seeded by ``(seed, epoch)`` shared by every rank, then split
    round-robin across ranks (padded to equal length, as ``DistributedSampler``). ``start``
    skips this rank's first samples, which is how a run resumed mid-epoch continues.
    """

    def __init__(self, size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.size, self.seed, self.epoch = size, seed, epoch
        self.rank, self.world_size, self.start = rank, world_size, start
        self.per_rank = math.ceil(size / world_size)

    def indices(self) -> list[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()
        order += order[: self.per_rank * self.world_size - self.size]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[Sample]:
        for index in self.indices()[self.start:]:
            yield index, int(np.random.default_rng([self.seed, self.epoch, index]).integers(2**63 - 1))

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
