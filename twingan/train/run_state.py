"""A run's state on disk and in memory: the image counters, checkpoints (save, exact resume,
rollback), a start from another model's weights (--init-from), and the lock that keeps one
training per run folder.

Schedules are pure functions of images seen, so a checkpoint only has to remember counts,
weights, optimizer moments and RNG states to continue exactly."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from twingan.checkpoint import drop_best_after, find_checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from twingan.config import RunConfig, config_from_dict, config_to_dict
from twingan.distributed import DistInfo
from twingan.errors import UserError
from twingan.models import family
from twingan.models.protocols import Recipe
from twingan.train.run_log import RunLog

log = logging.getLogger(__name__)
RUN_LOCK = ".train.lock"


class TrainingDiverged(UserError):
    """Non-finite losses that survived skipping and rolling back."""


@dataclass
class Counters:
    images_seen: int = 0
    samples_drawn: list[int] = field(default_factory=lambda: [0, 0])
    skipped_steps: int = 0


class RunState:
    """The counters and the recipe's weights of one run, and their checkpoints in its folder."""

    def __init__(self, cfg: RunConfig, recipe: Recipe, dist: DistInfo, device: torch.device, run_dir: Path) -> None:
        self.cfg, self.recipe, self.dist, self.device, self.run_dir = cfg, recipe, dist, device, run_dir
        self.counters = Counters()
        self.rollbacks = 0

    def state_dict(self) -> dict:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.cfg.model.name,
            "image_channels": 1 if self.cfg.data.grayscale else 3,
            "config": config_to_dict(self.cfg),
            "images_seen": self.counters.images_seen,
            "samples_drawn": list(self.counters.samples_drawn),
            "skipped_steps": self.counters.skipped_steps,
            "rng": rng,
            **self.recipe.state_dict(),
        }

    def load_state_dict(self, state: dict, source: Path | str) -> None:
        if state.get("model") != self.cfg.model.name:
            raise UserError(f"checkpoint {source} holds a {state.get('model')} model, not {self.cfg.model.name}")
        try:
            self.recipe.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            # PyTorch's first line only says "Error(s) in loading state_dict for TwinGAN:"; the
            # tensors it names follow, so the message keeps them, on one line.
            raise UserError(f"checkpoint {source} does not match the configured model "
                            f"({' '.join(str(exc).split())[:300]})") from None
        self.counters = Counters(state["images_seen"], list(state["samples_drawn"]), state["skipped_steps"])
        if self.dist.is_main:
            torch.set_rng_state(state["rng"]["cpu"])
            if self.device.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        else:
            torch.manual_seed(self.cfg.train.seed + 1_000 * self.dist.rank + self.counters.images_seen)

    def resume(self, checkpoint: Path | None = None) -> Path:
        """Continue from `checkpoint` or the run folder's newest one."""
        path = checkpoint or latest_checkpoint(self.run_dir / "checkpoints")
        if path is None:
            raise UserError(f"run folder {self.run_dir} holds no checkpoint to resume from")
        self.load_state_dict(load_checkpoint(path), path)
        if self.dist.is_main:
            RunLog.forget_after(self.run_dir, self.counters.images_seen)
            drop_best_after(self.run_dir / "checkpoints", self.counters.images_seen)
        log.info("resumed from %s at %s images", path, f"{self.counters.images_seen:,}")
        return path

    def init_from(self, source: str) -> list[str]:
        """Start a new run's inference networks from a bundled model (by name) or a checkpoint
        (file or run folder), and grow them to this run's resolution; the family's recipe decides
        what loads where. Returns the names of the tensors left new."""
        from twingan.bundled import bundled_models, load_bundled

        path = Path(source)
        bundled = [m.name for m in bundled_models()]
        if path.exists():
            resolved = find_checkpoint(path)
            state, described = load_checkpoint(resolved), f"checkpoint {resolved}"
        elif source in bundled:
            state, described = load_bundled(source)[1], f"bundled model {source}"
        else:
            raise UserError(f"--init-from {source}: no such checkpoint, run folder or bundled model "
                            f"(bundled: {', '.join(bundled) or 'none'})")
        source_cfg = config_from_dict(state.get("config"), described)
        if source_cfg.model.name != self.cfg.model.name:
            raise UserError(f"--init-from {source}: {described} holds a {source_cfg.model.name} model; this run "
                            f"trains {self.cfg.model.name}")
        channels = int(state.get("image_channels", 3))
        if channels != (1 if self.cfg.data.grayscale else 3):
            raise UserError(f"--init-from {source}: {described} takes {channels}-channel pictures; set data.grayscale "
                            "to match")
        key = family(self.cfg.model.name).inference.state_key
        fresh = self.recipe.init_from(state[key], source_cfg, int(state.get("images_seen", 0)), described)
        if self.dist.is_main:
            log.info("initialised from %s (%d px, %s images); new: %s", described, source_cfg.model.resolution,
                     f"{int(state.get('images_seen', 0)):,}", _layer_names(fresh) or "nothing")
        return fresh

    def save(self) -> Path | None:
        """A checkpoint of the current state (rank 0 writes it; every rank averages buffers first)."""
        self.recipe.sync_buffers()
        path = None
        if self.dist.is_main:
            path = save_checkpoint(self.state_dict(), self.run_dir / "checkpoints",
                                   self.counters.images_seen, self.cfg.train.keep_checkpoints)
        self.rollbacks = 0
        return path

    def roll_back(self) -> None:
        """Non-finite steps kept coming: return to the last checkpoint and take a new random path."""
        path = latest_checkpoint(self.run_dir / "checkpoints")
        self.rollbacks += 1
        if path is None or self.rollbacks > self.cfg.train.nonfinite_patience:
            where = f"; the last good checkpoint is {path}" if path else " before the first checkpoint"
            raise TrainingDiverged(f"training diverged: losses stayed non-finite at "
                                   f"{self.counters.images_seen:,} images{where}. Try a lower train.lr, "
                                   f"runtime.precision=fp32 or another loss.penalty")
        skipped = self.counters.skipped_steps
        self.load_state_dict(load_checkpoint(path), path)
        self.counters.skipped_steps = skipped
        torch.manual_seed(self.cfg.train.seed + 7_919 * self.rollbacks + 1_000 * self.dist.rank)
        log.warning("non-finite losses persisted: rolled back to %s (rollback %d of %d)",
                    path, self.rollbacks, self.cfg.train.nonfinite_patience)

    @contextlib.contextmanager
    def hold_run_folder(self) -> Iterator[None]:
        """One training per run folder: two would overwrite each other's checkpoints and interleave
        metrics.jsonl, both exiting 0. An exclusive flock on RUN/.train.lock, taken without waiting
        (the kernel drops it when the process dies, so a crash leaves no stale lock); other ranks
        write nothing and take none."""
        if not self.dist.is_main:
            yield
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / RUN_LOCK, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"run folder {self.run_dir} is being trained by another process; wait for it to "
                                "end or give another --run-dir") from None
            yield


def _layer_names(tensors: list[str]) -> str:
    """Tensor names shortened to the modules that own them, for one log line."""
    modules = dict.fromkeys(".".join(name.split(".")[:3]) for name in tensors)
    return ", ".join(modules)
