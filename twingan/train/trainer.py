"""The training loop every model shares: one readable class, no callbacks.

The loop owns what does not depend on the model: the progress bar, logging, sample grids, the
periodic checkpoints and evaluations, the non-finite guard and several processes. What a step
does is the recipe's, looked up in the model registry (twingan.models): it builds its networks and
optimisers from the config and offers what `twingan.models.protocols.Recipe` lists. The rest sits
beside it, one concern a module: the pictures (pictures.py), the run's counters and checkpoints
(run_state.py), the held-out evaluation (held_out.py) and what the run writes for people to read
(run_log.py). Stopping comes in from outside: the command turns signals into a `StopRequest`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid
from tqdm import tqdm

from twingan import distributed
from twingan.atomic import check_writable
from twingan.checkpoint import best_checkpoint
from twingan.config import RunConfig, save_config
from twingan.data.pictures import to_unit_range
from twingan.data.transforms import DeviceAugment
from twingan.domains import DOMAINS
from twingan.evaluation.metrics import WEIGHTS_ENV, check_weights
from twingan.models import family
from twingan.models.protocols import TrainingData
from twingan.models.schedule import Phase, phase_at
from twingan.models.stepping import StepContext, resolve_precision
from twingan.train.held_out import HeldOutEvaluation, held_out_swd
from twingan.train.pictures import TrainingPictures
from twingan.train.run_log import RunLog
from twingan.train.run_state import Counters, RunState, TrainingDiverged

__all__ = ["StopRequest", "TrainResult", "Trainer", "TrainingDiverged", "held_out_swd"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """How a call to `Trainer.run` ended."""

    images_seen: int
    checkpoint: Path | None
    stopped_by: str | None = None
    skipped_steps: int = 0
    best: Path | None = None
    """The best checkpoint by the held-out evaluations (train.keep_best), if any."""


class StopRequest:
    """Asks a run to end after its current step, with a checkpoint: the `train` command sets it
    from its SIGINT/SIGTERM handlers; a program driving a Trainer may set it from anywhere."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason


class _Every:
    """An "every N images" event (log, sample, checkpoint, evaluation): due once the run has seen
    the next multiple of N; `every=None` never comes due."""

    def __init__(self, every: int | None, images_seen: int) -> None:
        self.every = every
        self.next = _next_multiple(images_seen, every) if every else math.inf

    def due(self, images_seen: int) -> bool:
        return images_seen >= self.next

    def done(self, images_seen: int) -> None:
        self.next = _next_multiple(images_seen, self.every)


class Trainer:
    """Builds everything a run needs from a Config, then `run()` trains until done or stopped."""

    def __init__(self, cfg: RunConfig, run_dir: Path, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        if cfg.runtime.cpu_threads:
            torch.set_num_threads(cfg.runtime.cpu_threads)
        wants_cuda = cfg.runtime.device != "cpu" and torch.cuda.is_available()
        self.dist = distributed.init_from_env("cuda" if wants_cuda else "cpu")
        self.device = distributed.pick_device(cfg.runtime.device, self.dist)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.run_dir = self._agree_on_run_dir(run_dir)
        self._fresh = not self.run_dir.exists()
        if self.dist.is_main:
            check_writable(self.run_dir, "run folder", folder=True)
        if cfg.train.eval_every and os.environ.get(WEIGHTS_ENV):  # refused now, not at the first evaluation
            check_weights(os.environ[WEIGHTS_ENV])
        self.pictures = TrainingPictures(cfg, self.dist, self.device, self._show)
        torch.manual_seed(cfg.train.seed)
        self.memory_format = torch.channels_last if cfg.runtime.channels_last is True else torch.preserve_format
        critic_format = torch.channels_last if cfg.runtime.channels_last else torch.preserve_format
        self.precision = resolve_precision(cfg.runtime.precision, self.device)
        if self.dist.is_main:
            log.info("precision %s (runtime.precision=%s on %s)", self.precision, cfg.runtime.precision,
                     _hardware(self.device))
        ctx = StepContext(self.device, self.dist, self.precision, self.memory_format, critic_format)
        data = TrainingData(1 if cfg.data.grayscale else 3, self.pictures.domain_sizes)
        self.recipe = family(cfg.model.name).recipe(cfg, ctx, data)
        self.phases = self.recipe.phases
        self.total_images = min(self.phases[-1].end, cfg.train.max_images or math.inf)
        self.augment = DeviceAugment(cfg.data).to(self.device)
        self.state = RunState(cfg, self.recipe, self.dist, self.device, self.run_dir)
        self.evaluate = HeldOutEvaluation(cfg, self.run_dir, self.device, self.pictures)
        torch.manual_seed(cfg.train.seed + 1_000 * self.dist.rank)

    # ----------------------------------------------------------------- what the run is made of
    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def scans(self) -> list:
        return self.pictures.scans

    @property
    def held_out(self) -> list[list[Path]]:
        return self.pictures.held_out

    def state_dict(self) -> dict:
        return self.state.state_dict()

    def load_state_dict(self, state: dict, source: Path | str) -> None:
        self.state.load_state_dict(state, source)

    def resume(self, checkpoint: Path | None = None) -> Path:
        """Continue from `checkpoint` or the run folder's newest one."""
        return self.state.resume(checkpoint)

    def init_from(self, source: str) -> list[str]:
        """Start from a bundled model's or a checkpoint's inference networks (RunState.init_from)."""
        return self.state.init_from(source)

    def save(self) -> Path | None:
        return self.state.save()

    @property
    def _show(self) -> bool:
        return self.progress and self.dist.is_main

    def _agree_on_run_dir(self, run_dir: Path) -> Path:
        """Every process writes (rank 0) or reads the same folder, even if their clocks differ."""
        if not self.dist.enabled:
            return run_dir
        chosen = [str(run_dir)]
        torch.distributed.broadcast_object_list(chosen, src=0)
        return Path(chosen[0])

    # ----------------------------------------------------------------- one step
    def step(self, batch_a: Tensor, batch_b: Tensor, phase: Phase) -> dict[str, float] | None:
        """Augment both uint8 batches on the device and let the recipe update; None when skipped."""
        reals = [self.augment(b.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)
                 for b in (batch_a, batch_b)]
        return self.recipe.step(reals, phase, self.counters.images_seen)

    # ----------------------------------------------------------------- outputs
    @torch.no_grad()
    def sample_grid(self, inputs: list[Tensor], phase: Phase) -> Tensor:
        """Rows per domain: real, translated, reconstructed (the recipe's inference networks), in [0, 1]."""
        rows = self.recipe.sample_rows(inputs, phase, self.counters.images_seen)
        shown = max(phase.resolution, 64)
        rows = [F.interpolate(r.float(), size=(shown, shown), mode="nearest") for r in rows]
        grid = make_grid(torch.cat(rows), nrow=inputs[0].shape[0], padding=2, pad_value=1.0)
        return to_unit_range(grid).cpu()

    def _write_samples(self, inputs: list[Tensor], phase: Phase, run_log: RunLog) -> None:
        run_log.samples(self.sample_grid(inputs, phase), self.counters.images_seen)

    # ----------------------------------------------------------------- the loop
    def run(self, stop: StopRequest | None = None) -> TrainResult:
        """Train until the schedule (or max_images / max_minutes) ends or `stop` is set.

        A new run that fails before its first step (undecodable pictures, a full disk) removes the
        run folder it made: a folder without a checkpoint cannot be resumed, only mistaken for a
        run. A refusal of the run-folder lock happens before the try, so the folder of the run
        that holds the lock is never removed."""
        with self.state.hold_run_folder():
            try:
                return self._train(stop or StopRequest())
            except BaseException:
                if self._fresh and self.counters.images_seen == 0 and self.dist.is_main:
                    shutil.rmtree(self.run_dir, ignore_errors=True)
                raise

    def _train(self, stop: StopRequest) -> TrainResult:
        cfg, c = self.cfg, self.counters
        if self.dist.is_main:
            save_config(cfg, self.run_dir / "config.yaml")
        sample_inputs = self.pictures.sample_inputs() if self.dist.is_main else []
        bar = tqdm(total=int(self.total_images), initial=c.images_seen, unit="img", unit_scale=True,
                   disable=not self._show, dynamic_ncols=True)
        self._started = time.monotonic()
        run_log = RunLog(self.run_dir) if self.dist.is_main else None
        logs, samples, checkpoints, evaluations = (_Every(every, c.images_seen) for every in (
            cfg.train.log_every, cfg.train.sample_every, cfg.train.checkpoint_every, cfg.train.eval_every))
        streak, loaders, loader_res, stopped_by, last_ckpt = 0, None, None, None, None
        try:
            while self.counters.images_seen < self.total_images:
                c = self.counters  # a rollback replaces them with the checkpoint's
                phase = phase_at(self.phases, c.images_seen)
                if phase.resolution != loader_res:
                    loaders = self.pictures.loaders(phase.resolution, self.recipe.batch_size(phase), c.samples_drawn)
                    loader_res = phase.resolution
                batch_a, batch_b = self.pictures.next_batches(loaders)
                values = self.step(batch_a, batch_b, phase)
                for d in DOMAINS:
                    c.samples_drawn[d] += batch_a.shape[0]
                if values is None:
                    streak += 1
                    if self._skipped(streak, run_log):
                        streak, loader_res = 0, None
                    continue
                streak = 0
                images = batch_a.shape[0] * self.dist.world_size
                c.images_seen += images
                bar.update(images)
                self._aim_bar(bar)
                bar.set_postfix_str(self.recipe.progress_note(phase, c.images_seen, values), refresh=False)
                if run_log:
                    run_log.step(values, images)

                if logs.due(c.images_seen):
                    if run_log:
                        run_log.losses(c.images_seen, phase, self.recipe.learning_rate(c.images_seen))
                    logs.done(c.images_seen)
                if run_log and samples.due(c.images_seen):
                    self._write_samples(sample_inputs, phase, run_log)
                    samples.done(c.images_seen)
                if evaluations.due(c.images_seen):
                    if run_log:
                        minutes = (time.monotonic() - self._started) / 60
                        self.evaluate(run_log, phase, c.images_seen, minutes, self.state_dict())
                    evaluations.done(c.images_seen)
                ending = self._agree_to_stop(self._out_of_time() or stop.reason is not None)
                if checkpoints.due(c.images_seen) or ending:
                    last_ckpt = self.save()
                    checkpoints.done(c.images_seen)
                if ending:
                    stopped_by = stop.reason or "max_minutes"
                    if run_log and run_log.sampled_at != c.images_seen:
                        self._write_samples(sample_inputs, phase, run_log)
                    break
            else:
                if run_log:
                    self._write_samples(sample_inputs, phase_at(self.phases, c.images_seen - 1), run_log)
                last_ckpt = self.save()
        finally:
            bar.close()
            if run_log:
                run_log.close()
        c = self.counters
        if stopped_by and self.dist.is_main:
            log.info("stopped by %s at %s images; checkpoint %s (continue with --resume %s)",
                     stopped_by, f"{c.images_seen:,}", last_ckpt, self.run_dir)
        return TrainResult(c.images_seen, last_ckpt, stopped_by, c.skipped_steps,
                           best_checkpoint(self.run_dir / "checkpoints"))

    def _aim_bar(self, bar: tqdm) -> None:
        """With train.max_minutes, end the bar where the time runs out at the bar's current rate
        when that comes before the schedule's end, so that its ETA is the run's real one (the
        schedule of twingan_cpu_64 runs to 212k images; its 30 minutes stop it far earlier)."""
        limit = self.cfg.train.max_minutes
        rate = None if limit is None or bar.disable else bar.format_dict.get("rate")
        if not rate:
            return
        left = max(limit * 60 - (time.monotonic() - self._started), 0.0)
        bar.total = int(min(self.total_images, bar.n + left * rate))

    def _skipped(self, streak: int, run_log: RunLog | None) -> bool:
        """Count a step skipped for non-finite losses; roll back once `streak` of them came in a
        row. True when it rolled back (the loaders must then restart where the checkpoint was)."""
        c = self.counters
        c.skipped_steps += 1
        log.warning("non-finite loss at %s images: step skipped (%d in a row)", f"{c.images_seen:,}", streak)
        if run_log:
            run_log.skipped(c.skipped_steps, c.images_seen)
        if streak < self.cfg.train.nonfinite_patience:
            return False
        self.state.roll_back()
        return True

    def _out_of_time(self) -> bool:
        limit = self.cfg.train.max_minutes
        return limit is not None and (time.monotonic() - self._started) / 60 > limit

    def _agree_to_stop(self, wanted_here: bool) -> bool:
        """Stop on every process if any process was asked to or ran out of time."""
        wanted = 1.0 if wanted_here else 0.0
        if self.dist.enabled:
            wanted = distributed.average_scalars({"stop": wanted}, self.dist, self.device)["stop"]
        return wanted > 0


def _hardware(device: torch.device) -> str:
    """The device in words, for the log line that names the precision chosen for it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU with {torch.backends.cpu.get_cpu_capability()}" + (
        ", AMX" if torch.cpu._is_amx_tile_supported() else "")


def _next_multiple(value: int, every: int) -> int:
    return (value // every + 1) * every
