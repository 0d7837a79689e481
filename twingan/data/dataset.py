"""One domain's pictures as a Dataset, checked up front so a bad file never reaches training.

A week-long run must not die on image 29,999 of 30,000. The folder is therefore decoded once at
start-up (in parallel, with a progress bar), bad files are listed once with their reason and
counted in a summary, and only good ones are kept. Files that go bad later (a disk hiccup, a
file replaced mid-run) are caught again at load time and replaced by a neighbour.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from twingan.data.images import BadImage, describe_skipped, find_images, load_image, open_image
from twingan.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    """The usable pictures of one folder, and the reasons the others were skipped."""

    root: Path
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)

    def summary(self, name: str) -> str:
        line = f"domain {name} ({self.root}): {len(self.paths)} pictures"
        if self.skipped:
            line += f", {len(self.skipped)} skipped: {describe_skipped(self.skipped)}"
        return line


def scan_domain(
    root: str | os.PathLike[str] | None,
    name: str,
    max_pixels: int,
    verify: str = "full",
    progress: bool = True,
) -> ScanResult:
    """Find and check every picture of one domain folder; stop with a UserError if none is usable.

    verify="full" decodes each file (catches truncated and corrupt data); "header" only reads
    headers (fast on huge folders, and the load-time fallback still protects training).
    """
    if root is None:
        raise UserError(f"no folder given for domain {name} (set data.domain_{name.lower()})")
    root = Path(root)
    if not root.exists():
        raise UserError(f"domain {name} folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"domain {name} path {root} is not a folder")
    candidates = find_images(root)
    if not candidates:
        raise UserError(f"domain {name} folder {root} holds no .jpg/.jpeg/.png/.webp/.bmp pictures")

    def check(path: Path) -> str | None:
        try:
            if verify == "full":
                load_image(path, max_pixels)
            else:
                open_image(path, max_pixels).close()
        except BadImage as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(tqdm(pool.map(check, candidates), total=len(candidates), unit="img",
                            desc=f"checking domain {name}", disable=not progress, leave=False))
    result = ScanResult(root=root, paths=[p for p, r in zip(candidates, results) if r is None],
                        skipped=[r for r in results if r is not None])
    for reason in result.skipped:
        log.warning("skipping %s", reason)
    if not result.paths:
        raise UserError(f"domain {name} folder {root}: none of its {len(candidates)} files is a "
                        f"usable picture ({describe_skipped(result.skipped, limit=2)})")
    log.info(result.summary(name))
    return result


class DomainDataset(Dataset):
    """Decoded, preprocessed pictures of one domain as uint8 CHW tensors.

    uint8 keeps worker -> main-process transfers and pinned host memory four times smaller than
    float; conversion and colour augmentation happen on the training device (see transforms).
    """

    def __init__(self, paths: list[Path], transform: Callable[[Image.Image], torch.Tensor],
                 max_pixels: int, grayscale: bool = False, draft_size: tuple[int, int] | None = None):
        if not paths:
            raise ValueError("DomainDataset needs at least one path")
        self.paths = list(paths)
        self.transform = transform
        self.max_pixels = max_pixels
        self.grayscale = grayscale
        self.draft_size = draft_size
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        """`key` is an index, or (index, seed) to make the random augmentation reproducible."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            return self._load(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._load(index)

    def _load(self, index: int) -> torch.Tensor:
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                image = load_image(path, self.max_pixels, self.grayscale, self.draft_size)
            except BadImage as exc:
                if path not in self._reported:
                    self._reported.add(path)
                    log.warning("skipping %s (replaced by another picture)", exc)
                continue
            return self.transform(image)
        raise BadImage(f"none of the {len(self.paths)} pictures can be read any more")
