"""DataLoaders that keep a GPU fed and make every resumed run see exactly the same batches.

Each domain gets its own loader over its own index stream, so the two domains are sampled
independently (the data are unpaired). The stream is an endless sequence of seeded
permutations: position k is permutation (k // n) at k % n, and carries its own augmentation
seed. Any position can therefore be resumed in O(1) from a count of samples drawn, and the
random crops and flips do not depend on how many worker processes there are.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class StreamSampler(Sampler[tuple[int, int]]):
    """Endless (index, augmentation seed) pairs; rank r of w takes every w-th stream position."""

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        if size < 1:
            raise ValueError("StreamSampler needs at least one item")
        self.size, self.seed, self.start, self.rank, self.world_size = size, seed, start, rank, world_size

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start * self.world_size + self.rank
        epoch, permutation = -1, None
        while True:
            if position // self.size != epoch:
                epoch = position // self.size
                permutation = self._permutation(epoch)
            yield int(permutation[position % self.size]), self.seed * 1_000_003 + position
            position += self.world_size


def _ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches every process of the terminal's group: workers leave it to the trainer,
    which saves a checkpoint and shuts them down, instead of dying under it mid-batch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class LoaderSettings:
    """How batches are produced; none of it changes the maths."""

    batch_size: int
    num_workers: int = 0
    seed: int = 0
    world_size: int = 1
    rank: int = 0
    pin_memory: bool = False


def make_loader(dataset: Dataset, settings: LoaderSettings, start: int = 0) -> DataLoader:
    """An endless loader from stream position `start` (samples already drawn by this rank)."""
    sampler = StreamSampler(len(dataset), settings.seed, start, settings.rank, settings.world_size)
    workers = settings.num_workers
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=settings.pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_ignore_interrupts if workers > 0 else None,
        # Its own generator: creating an iterator must not draw from the global RNG, or a resumed
        # run (which creates its iterators at a different moment) would drift from the original.
        generator=torch.Generator().manual_seed(settings.seed),
    )
