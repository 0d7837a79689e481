"""The training pictures of a run: both domains scanned, a held-out set taken out for the periodic
evaluation, a loader pair per resolution, and the fixed pictures every sample grid shows."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator

import torch
from torch import Tensor

from twingan.config import RunConfig
from twingan.data.dataset import DomainDataset, scan_domain
from twingan.data.images import BadImage, load_image
from twingan.data.loader import LoaderSettings, make_loader
from twingan.data.transforms import loader_transform, to_model_range
from twingan.distributed import DistInfo
from twingan.domains import DOMAINS
from twingan.errors import UserError

SAMPLES_PER_DOMAIN = 8


class TrainingPictures:
    """Both domains' pictures, as the loop and the periodic evaluation need them."""

    def __init__(self, cfg: RunConfig, dist: DistInfo, device: torch.device, show: bool) -> None:
        self.cfg, self.dist, self.device = cfg, dist, device
        data = cfg.data
        self.scans = [scan_domain(data.domain_a, "A", data.max_pixels, data.verify, show),
                      scan_domain(data.domain_b, "B", data.max_pixels, data.verify, show)]
        self.held_out = self._hold_out() if cfg.train.eval_every else []

    def _hold_out(self) -> list[list]:
        """Take eval_pictures evenly spread pictures of each domain out of training."""
        held = []
        for scan in self.scans:
            count = self.cfg.train.eval_pictures
            if len(scan.paths) <= 2 * count:
                raise UserError(f"train.eval_pictures={count} would hold out half or more of the {len(scan.paths)} "
                                f"pictures in {scan.root}; lower it or switch train.eval_every off")
            step = len(scan.paths) / count
            picked = {int(i * step) for i in range(count)}
            held.append([p for i, p in enumerate(scan.paths) if i in picked])
            scan.paths = [p for i, p in enumerate(scan.paths) if i not in picked]
        return held

    @property
    def domain_sizes(self) -> tuple[int, int]:
        return len(self.scans[0].paths), len(self.scans[1].paths)

    @functools.cached_property
    def held_out_pictures(self) -> list[list]:
        """The held-out pictures, decoded once for every evaluation of the run."""
        return [[load_image(p, grayscale=self.cfg.data.grayscale) for p in paths] for paths in self.held_out]

    def loaders(self, resolution: int, batch_size: int, samples_drawn: list[int]) -> list[Iterator[Tensor]]:
        """One endless uint8 batch stream per domain at `resolution`, continuing after the
        `samples_drawn` pictures each domain has already given (exact resume)."""
        settings = LoaderSettings(batch_size=batch_size, num_workers=self.cfg.runtime.num_workers,
                                  world_size=self.dist.world_size, rank=self.dist.rank,
                                  pin_memory=self.device.type == "cuda")
        transform = loader_transform(self.cfg.data, resolution, train=True)
        iterators = []
        for domain, scan in zip(DOMAINS, self.scans):
            dataset = DomainDataset(scan.paths, transform, self.cfg.data.max_pixels, self.cfg.data.grayscale,
                                    draft_size=(resolution, resolution))
            domain_settings = dataclasses.replace(settings, seed=self.cfg.train.seed * 2 + domain)
            iterators.append(iter(make_loader(dataset, domain_settings, start=samples_drawn[domain])))
        return iterators

    def next_batches(self, loaders: list[Iterator[Tensor]]) -> list[Tensor]:
        batches = []
        for domain, loader in zip(DOMAINS, loaders):
            with self._undecodable(domain):
                batches.append(next(loader))
        return batches

    def sample_inputs(self) -> list[Tensor]:
        """A fixed set of pictures per domain, at full resolution, for every sample grid."""
        transform = loader_transform(self.cfg.data, self.cfg.model.resolution, train=False)
        batches = []
        for domain, scan in zip(DOMAINS, self.scans):
            dataset = DomainDataset(scan.paths[:SAMPLES_PER_DOMAIN], transform, self.cfg.data.max_pixels,
                                    self.cfg.data.grayscale)
            with self._undecodable(domain):
                pictures = [dataset[i] for i in range(len(dataset))]
            batches.append(to_model_range(torch.stack(pictures)).to(self.device))
        return batches

    @contextlib.contextmanager
    def _undecodable(self, domain: int) -> Iterator[None]:
        """A domain whose every picture fails to decode (they passed a header-only check) is the
        user's data, not a crash: one line, whether the loader ran in this process or a worker."""
        try:
            yield
        except BadImage:
            scan, verify = self.scans[domain], self.cfg.data.verify
            hint = "" if verify == "full" else "; data.verify=full would have listed them at start"
            raise UserError(f"domain {'AB'[domain]} folder {scan.root}: none of its {len(scan.paths)} pictures can be "
                            f"decoded (data.verify={verify}{hint})") from None
