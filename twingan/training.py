"""The training loop every model shares: one readable class, no callbacks.

The loop owns what does not depend on the model: data streams, the progress bar, logging,
sample grids, checkpoints (atomic, keep-N, exact resume), the non-finite guard with rollback,
signals and several processes. What a step does is the recipe's, looked up in the model
registry (twingan.models): it builds its networks and optimisers from the config and offers
what `twingan.models.protocols.Recipe` lists. What the run writes for people to read (logs,
sample grids, TensorBoard) is run_log.RunLog's.
Schedules are pure functions of images seen, so a checkpoint only has to remember counts,
weights, optimizer moments and RNG states to continue exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid
from tqdm import tqdm

from twingan import distributed
from twingan.atomic import check_writable
from twingan.checkpoint import (best_checkpoint, best_images, drop_best_after, find_checkpoint, latest_checkpoint,
                                load_checkpoint, save_best, save_checkpoint)
from twingan.config import RunConfig, config_from_dict, config_to_dict, save_config
from twingan.data.dataset import DomainDataset, scan_domain
from twingan.data.images import BadImage, load_image
from twingan.data.loader import LoaderSettings, make_loader
from twingan.data.transforms import DeviceAugment, loader_transform, to_model_range
from twingan.domains import DOMAINS
from twingan.errors import UserError
from twingan.metrics import WEIGHTS_ENV, check_weights
from twingan.models import family
from twingan.models.protocols import TrainingData
from twingan.run_log import RunLog
from twingan.schedule import Phase, phase_at
from twingan.stepping import StepContext, resolve_precision

log = logging.getLogger(__name__)
SAMPLES_PER_DOMAIN = 8
RUN_LOCK = ".train.lock"


class TrainingDiverged(UserError):
    """Non-finite losses that survived skipping and rolling back."""


@dataclass
class TrainResult:
    """How a call to `Trainer.run` ended."""

    images_seen: int
    checkpoint: Path | None
    stopped_by: str | None = None
    skipped_steps: int = 0
    best: Path | None = None
    """The best checkpoint by the held-out evaluations (train.keep_best), if any."""


@dataclass
class _Counters:
    images_seen: int = 0
    samples_drawn: list[int] = field(default_factory=lambda: [0, 0])
    skipped_steps: int = 0


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
        self.scans = [scan_domain(cfg.data.domain_a, "A", cfg.data.max_pixels, cfg.data.verify, self._show),
                      scan_domain(cfg.data.domain_b, "B", cfg.data.max_pixels, cfg.data.verify, self._show)]
        self.held_out = self._hold_out() if cfg.train.eval_every else []
        torch.manual_seed(cfg.train.seed)
        self.memory_format = torch.channels_last if cfg.runtime.channels_last is True else torch.preserve_format
        critic_format = torch.channels_last if cfg.runtime.channels_last else torch.preserve_format
        self.precision = resolve_precision(cfg.runtime.precision, self.device)
        if self.dist.is_main:
            log.info("precision %s (runtime.precision=%s on %s)", self.precision, cfg.runtime.precision,
                     _hardware(self.device))
        ctx = StepContext(self.device, self.dist, self.precision, self.memory_format, critic_format)
        data = TrainingData(1 if cfg.data.grayscale else 3, (len(self.scans[0].paths), len(self.scans[1].paths)))
        self.recipe = family(cfg.model.name).recipe(cfg, ctx, data)
        self.phases = self.recipe.phases
        self.total_images = min(self.phases[-1].end, cfg.train.max_images or math.inf)
        self.augment = DeviceAugment(cfg.data).to(self.device)
        self.counters = _Counters()
        torch.manual_seed(cfg.train.seed + 1_000 * self.dist.rank)
        self._stop_signal: str | None = None
        self._rollbacks = 0

    # ----------------------------------------------------------------- set-up helpers
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

    def _loaders(self, phase: Phase) -> list:
        settings = LoaderSettings(batch_size=self.recipe.batch_size(phase), num_workers=self.cfg.runtime.num_workers,
                                  world_size=self.dist.world_size, rank=self.dist.rank,
                                  pin_memory=self.device.type == "cuda")
        transform = loader_transform(self.cfg.data, phase.resolution, train=True)
        iterators = []
        for domain, scan in zip(DOMAINS, self.scans):
            dataset = DomainDataset(scan.paths, transform, self.cfg.data.max_pixels, self.cfg.data.grayscale,
                                    draft_size=(phase.resolution, phase.resolution))
            domain_settings = dataclasses.replace(settings, seed=self.cfg.train.seed * 2 + domain)
            iterators.append(iter(make_loader(dataset, domain_settings, start=self.counters.samples_drawn[domain])))
        return iterators

    def _hold_out(self) -> list[list[Path]]:
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

    @functools.cached_property
    def _held_out_pictures(self) -> list[list]:
        """The held-out pictures, decoded once for every evaluation of the run."""
        return [[load_image(p, grayscale=self.cfg.data.grayscale) for p in paths] for paths in self.held_out]

    def _evaluate(self, run_log: RunLog, phase: Phase) -> None:
        """`twingan eval`'s metrics for the EMA networks on the held-out pictures, at the phase's size."""
        from twingan.data.pictures import resize_for_model, to_tensor
        from twingan.evaluation import evaluate
        from twingan.metrics import InceptionFeatures
        from twingan.translator import Translator

        size = phase.resolution
        if size < 8:
            return
        sets = {name: torch.stack([to_tensor(resize_for_model(p, size, self.cfg.data.resize)) for p in pictures])
                for name, pictures in zip("ab", self._held_out_pictures)}
        translator = Translator(self.cfg, self.state_dict(), self.device, "the run being trained")
        inception = InceptionFeatures(None, self.device) if os.environ.get(WEIGHTS_ENV) else None
        results = evaluate(sets, translator, inception, progress=False)
        run_log.evaluation(self.counters.images_seen, size, (time.monotonic() - self._started) / 60, results)
        if self.cfg.train.keep_best and size == self.cfg.model.resolution:
            self._keep_if_best(run_log)

    def _keep_if_best(self, run_log: RunLog) -> None:
        """Save the evaluated weights as the best checkpoint when this evaluation's SWD is no
        worse than the best checkpoint's, or when there is none (a resume may have dropped it)."""
        directory = self.run_dir / "checkpoints"
        rows = {row["images_seen"]: row for row in run_log.evaluations()
                if row["resolution"] == self.cfg.model.resolution}
        current = rows.get(self.counters.images_seen)
        if current is None:
            return
        best = best_checkpoint(directory)
        kept = rows.get(best_images(best)) if best is not None else None
        if kept is None or held_out_swd(current) <= held_out_swd(kept):
            path = save_best(self.state_dict(), directory, self.counters.images_seen)
            log.info("best held-out SWD so far (%.2f x1e3): %s", 1e3 * held_out_swd(current), path)

    def _sample_inputs(self) -> list[Tensor]:
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

    def _next_batches(self, loaders: list) -> list[Tensor]:
        batches = []
        for domain, loader in zip(DOMAINS, loaders):
            with self._undecodable(domain):
                batches.append(next(loader))
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

    # ----------------------------------------------------------------- one step
    def step(self, batch_a: Tensor, batch_b: Tensor, phase: Phase) -> dict[str, float] | None:
        """Augment both uint8 batches on the device and let the recipe update; None when skipped."""
        reals = [self.augment(b.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)
                 for b in (batch_a, batch_b)]
        return self.recipe.step(reals, phase, self.counters.images_seen)

    # ----------------------------------------------------------------- state
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
        self.counters = _Counters(state["images_seen"], list(state["samples_drawn"]), state["skipped_steps"])
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
        if path.exists():
            resolved = find_checkpoint(path)
            state, described = load_checkpoint(resolved), f"checkpoint {resolved}"
        elif source in {m.name for m in bundled_models()}:
            state, described = load_bundled(source)[1], f"bundled model {source}"
        else:
            names = ", ".join(m.name for m in bundled_models()) or "none"
            raise UserError(f"--init-from {source}: no such checkpoint, run folder or bundled model "
                            f"(bundled: {names})")
        source_cfg = config_from_dict(state.get("config"), described)
        if source_cfg.model.name != self.cfg.model.name:
            raise UserError(f"--init-from {source}: {described} holds a {source_cfg.model.name} model; this run "
                            f"trains {self.cfg.model.name}")
        channels = int(state.get("image_channels", 3))
        if channels != (1 if self.cfg.data.grayscale else 3):
            raise UserError(f"--init-from {source}: {described} takes {channels}-channel pictures; set data.grayscale "
                            "to match")
        key = family(self.cfg.model.name).inference.state_key
        fresh = self.recipe.init_from(state[key], source_cfg.model.resolution, described)
        if self.dist.is_main:
            log.info("initialised from %s (%d px, %s images); new: %s", described, source_cfg.model.resolution,
                     f"{int(state.get('images_seen', 0)):,}", _layer_names(fresh) or "nothing")
        return fresh

    def save(self) -> Path | None:
        self.recipe.sync_buffers()
        path = None
        if self.dist.is_main:
            path = save_checkpoint(self.state_dict(), self.run_dir / "checkpoints",
                                   self.counters.images_seen, self.cfg.train.keep_checkpoints)
        self._rollbacks = 0
        return path

    def _roll_back(self) -> None:
        """Non-finite steps kept coming: return to the last checkpoint and take a new random path."""
        path = latest_checkpoint(self.run_dir / "checkpoints")
        self._rollbacks += 1
        if path is None or self._rollbacks > self.cfg.train.nonfinite_patience:
            where = f"; the last good checkpoint is {path}" if path else " before the first checkpoint"
            raise TrainingDiverged(f"training diverged: losses stayed non-finite at "
                                   f"{self.counters.images_seen:,} images{where}. Try a lower train.lr, "
                                   f"runtime.precision=fp32 or another loss.penalty")
        skipped = self.counters.skipped_steps
        self.load_state_dict(load_checkpoint(path), path)
        self.counters.skipped_steps = skipped
        torch.manual_seed(self.cfg.train.seed + 7_919 * self._rollbacks + 1_000 * self.dist.rank)
        log.warning("non-finite losses persisted: rolled back to %s (rollback %d of %d)",
                    path, self._rollbacks, self.cfg.train.nonfinite_patience)

    # ----------------------------------------------------------------- outputs
    @torch.no_grad()
    def sample_grid(self, inputs: list[Tensor], phase: Phase) -> Tensor:
        """Rows per domain: real, translated, reconstructed (the recipe's inference networks), in [0, 1]."""
        rows = self.recipe.sample_rows(inputs, phase, self.counters.images_seen)
        shown = max(phase.resolution, 64)
        rows = [F.interpolate(r.float(), size=(shown, shown), mode="nearest") for r in rows]
        grid = make_grid(torch.cat(rows), nrow=inputs[0].shape[0], padding=2, pad_value=1.0)
        return grid.add(1).div(2).clamp(0, 1).cpu()

    def _write_samples(self, inputs: list[Tensor], phase: Phase, run_log: RunLog) -> None:
        run_log.samples(self.sample_grid(inputs, phase), self.counters.images_seen)

    # ----------------------------------------------------------------- the loop
    def _on_signal(self, signum: int, frame) -> None:
        if self._stop_signal is not None:
            raise KeyboardInterrupt
        self._stop_signal = signal.Signals(signum).name
        log.warning("%s received: finishing this step and saving a checkpoint (again to abort)", self._stop_signal)

    def run(self) -> TrainResult:
        """Train until the schedule (or max_images / max_minutes) ends or a signal arrives.

        A new run that fails before its first step (undecodable pictures, a full disk) removes the
        run folder it made: a folder without a checkpoint cannot be resumed, only mistaken for a run."""
        with self._hold_run_folder():
            try:
                return self._train()
            except BaseException:
                if self._fresh and self.counters.images_seen == 0 and self.dist.is_main:
                    shutil.rmtree(self.run_dir, ignore_errors=True)
                raise

    @contextlib.contextmanager
    def _hold_run_folder(self) -> Iterator[None]:
        """One training per run folder: two would overwrite each other's checkpoints and interleave
        metrics.jsonl, both exiting 0. An exclusive flock on RUN/.train.lock, taken without waiting
        (the kernel drops it when the process dies, so a crash leaves no stale lock); other ranks
        write nothing and take none. A refusal happens before the try in `run`, so the folder of
        the run that holds the lock is never removed."""
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

    def _train(self) -> TrainResult:
        cfg, c = self.cfg, self.counters
        if self.dist.is_main:
            save_config(cfg, self.run_dir / "config.yaml")
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        sample_inputs = self._sample_inputs() if self.dist.is_main else []
        bar = tqdm(total=int(self.total_images), initial=c.images_seen, unit="img", unit_scale=True,
                   disable=not self._show, dynamic_ncols=True)
        self._started = time.monotonic()
        run_log = RunLog(self.run_dir) if self.dist.is_main else None
        logs, samples, checkpoints, evaluations = (_Every(every, c.images_seen) for every in (
            cfg.train.log_every, cfg.train.sample_every, cfg.train.checkpoint_every, cfg.train.eval_every))
        streak, loaders, loader_res, stopped_by, last_ckpt = 0, None, None, None, None
        try:
            while c.images_seen < self.total_images:
                phase = phase_at(self.phases, c.images_seen)
                if phase.resolution != loader_res:
                    loaders, loader_res = self._loaders(phase), phase.resolution
                batch_a, batch_b = self._next_batches(loaders)
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
                        self._evaluate(run_log, phase)
                    evaluations.done(c.images_seen)
                stop = self._agree_to_stop(self._out_of_time())
                if checkpoints.due(c.images_seen) or stop:
                    last_ckpt = self.save()
                    checkpoints.done(c.images_seen)
                if stop:
                    stopped_by = self._stop_signal or "max_minutes"
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
            for sig, handler in previous.items():
                signal.signal(sig, handler)
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
        self._roll_back()
        return True

    def _out_of_time(self) -> bool:
        limit = self.cfg.train.max_minutes
        return limit is not None and (time.monotonic() - self._started) / 60 > limit

    def _agree_to_stop(self, out_of_time: bool) -> bool:
        """Stop on every process if any process got a signal or ran out of time."""
        wanted = 1.0 if (out_of_time or self._stop_signal) else 0.0
        if self.dist.enabled:
            wanted = distributed.average_scalars({"stop": wanted}, self.dist, self.device)["stop"]
        return wanted > 0


def held_out_swd(evaluation: dict) -> float:
    """An eval.jsonl row's one number for choosing the best checkpoint: the SWD of both
    directions, averaged (each direction's own mean over its Laplacian levels)."""
    return (evaluation["a2b"]["swd_mean"] + evaluation["b2a"]["swd_mean"]) / 2


def _hardware(device: torch.device) -> str:
    """The device in words, for the log line that names the precision chosen for it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU with {torch.backends.cpu.get_cpu_capability()}" + (
        ", AMX" if torch.cpu._is_amx_tile_supported() else "")


def _layer_names(tensors: list[str]) -> str:
    """Tensor names shortened to the modules that own them, for one log line."""
    modules = dict.fromkeys(".".join(name.split(".")[:3]) for name in tensors)
    return ", ".join(modules)


def _next_multiple(value: int, every: int) -> int:
    return (value // every + 1) * every
