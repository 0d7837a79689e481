"""What a training run writes besides checkpoints: metrics.jsonl, eval.jsonl, sample grids, TensorBoard.

One object owns every file a person reads to follow a run, so the loop only says what happened
("a step", "an evaluation", "a grid") and the rows stay consistent: a resumed run first drops
the rows logged after its checkpoint, then logs them again as it retrains those images.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import save_image

from twingan.atomic import atomic_path, write_text
from twingan.models.schedule import Phase

LOG_FILES = ("metrics.jsonl", "eval.jsonl")
"""JSON-lines logs with one row per event, each keyed by images_seen."""


class RunLog:
    """The run folder's logs, written by the main process; each loss is averaged over the steps
    of its logging window that computed it (a lazy penalty is not on every step)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.writer = SummaryWriter(run_dir / "tensorboard")
        self.sampled_at: int | None = None
        """images_seen of the newest sample grid."""
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._images = 0
        self._since = time.monotonic()

    @staticmethod
    def forget_after(run_dir: Path, images_seen: int) -> None:
        """Resume: keep only the rows logged up to `images_seen` in every JSON-lines log."""
        for name in LOG_FILES:
            _drop_rows_after(run_dir / name, images_seen)

    def step(self, values: dict[str, float], images: int) -> None:
        """One finished step's loss values, and the images it trained on (all processes)."""
        self._images += images
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def skipped(self, skipped_steps: int, images_seen: int) -> None:
        self.writer.add_scalar("train/skipped_steps", skipped_steps, images_seen)

    def losses(self, images_seen: int, phase: Phase, lr: float) -> None:
        """The window's mean losses and throughput as a metrics.jsonl row and scalars; starts a new window."""
        means = {k: v / self._counts[k] for k, v in self._sums.items()}
        rate = self._images / max(time.monotonic() - self._since, 1e-9)
        for key, value in means.items():
            self.writer.add_scalar(f"loss/{key}", value, images_seen)
        scalars = {"alpha": phase.alpha(images_seen), "resolution": phase.resolution, "lr": lr,
                   "images_per_second": rate * 1.0}
        for key, value in scalars.items():
            self.writer.add_scalar(f"train/{key}", value, images_seen)
        _append(self.run_dir / "metrics.jsonl", {"images_seen": images_seen, "phase": phase.name, **scalars, **means})
        self._sums, self._counts, self._images, self._since = {}, {}, 0, time.monotonic()

    def evaluation(self, images_seen: int, resolution: int, minutes: float, results: dict[str, dict]) -> None:
        """`twingan eval`'s numbers for both directions, as scalars and an eval.jsonl row."""
        for direction, values in results.items():
            for key, value in values.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"eval_{direction}/{key}", value, images_seen)
        _append(self.run_dir / "eval.jsonl", {"images_seen": images_seen, "resolution": resolution,
                                              "minutes": round(minutes, 3), **results})

    def evaluations(self) -> list[dict]:
        """The eval.jsonl rows so far (a resumed run's only up to its resume point)."""
        log_file = self.run_dir / "eval.jsonl"
        if not log_file.exists():
            return []
        return [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]

    def samples(self, grid: Tensor, images_seen: int) -> None:
        """A sample grid in [0, 1], as samples/grid-<images>.png (written atomically) and an image."""
        target = self.run_dir / "samples" / f"grid-{images_seen:012d}.png"
        with atomic_path(target) as tmp:
            save_image(grid, tmp, format="png")
        self.writer.add_image("samples/real_translated_reconstructed", grid, images_seen)
        self.sampled_at = images_seen

    def close(self) -> None:
        self.writer.close()


def _append(log_file: Path, row: dict) -> None:
    with log_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def _drop_rows_after(log_file: Path, images_seen: int) -> None:
    """Keep the JSON lines logged up to `images_seen`: a resumed run logs the later ones again.
    A line cut short by a kill is dropped too."""
    if not log_file.exists():
        return
    kept = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["images_seen"] <= images_seen:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_text(log_file, "".join(f"{line}\n" for line in kept))
