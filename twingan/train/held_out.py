"""The periodic evaluation of a run: `twingan eval`'s metrics for the EMA networks on the pictures
held out of training, every train.eval_every images, and the best checkpoint by them
(train.keep_best)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from twingan.checkpoint import best_checkpoint, best_images, save_best
from twingan.config import RunConfig
from twingan.evaluation.metrics import WEIGHTS_ENV
from twingan.models.schedule import Phase
from twingan.train.pictures import TrainingPictures
from twingan.train.run_log import RunLog

log = logging.getLogger(__name__)


class HeldOutEvaluation:
    """Scores the run's current weights on its held-out pictures and keeps the best checkpoint."""

    def __init__(self, cfg: RunConfig, run_dir: Path, device: torch.device, pictures: TrainingPictures) -> None:
        self.cfg, self.run_dir, self.device, self.pictures = cfg, run_dir, device, pictures

    def __call__(self, run_log: RunLog, phase: Phase, images_seen: int, minutes: float, state: dict) -> None:
        """Evaluate `state` (the run's checkpoint state) at the phase's size and log the numbers."""
        from twingan.data.pictures import resize_for_model, to_tensor
        from twingan.evaluation.metrics import InceptionFeatures
        from twingan.evaluation.scores import evaluate
        from twingan.infer.translator import Translator

        size = phase.resolution
        if size < 8:
            return
        sets = {name: torch.stack([to_tensor(resize_for_model(p, size, self.cfg.data.resize)) for p in pictures])
                for name, pictures in zip("ab", self.pictures.held_out_pictures)}
        translator = Translator(self.cfg, state, self.device, "the run being trained")
        inception = InceptionFeatures(None, self.device) if os.environ.get(WEIGHTS_ENV) else None
        results = evaluate(sets, translator, inception, progress=False)
        run_log.evaluation(images_seen, size, minutes, results)
        if self.cfg.train.keep_best and size == self.cfg.model.resolution:
            self._keep_if_best(run_log, images_seen, state)

    def _keep_if_best(self, run_log: RunLog, images_seen: int, state: dict) -> None:
        """Save the evaluated weights as the best checkpoint when this evaluation's SWD is no
        worse than the best checkpoint's, or when there is none (a resume may have dropped it)."""
        directory = self.run_dir / "checkpoints"
        rows = {row["images_seen"]: row for row in run_log.evaluations()
                if row["resolution"] == self.cfg.model.resolution}
        current = rows.get(images_seen)
        if current is None:
            return
        best = best_checkpoint(directory)
        kept = rows.get(best_images(best)) if best is not None else None
        if kept is None or held_out_swd(current) <= held_out_swd(kept):
            path = save_best(state, directory, images_seen)
            log.info("best held-out SWD so far (%.2f x1e3): %s", 1e3 * held_out_swd(current), path)


def held_out_swd(evaluation: dict) -> float:
    """An eval.jsonl row's one number for choosing the best checkpoint: the SWD of both
    directions, averaged (each direction's own mean over its Laplacian levels)."""
    return (evaluation["a2b"]["swd_mean"] + evaluation["b2a"]["swd_mean"]) / 2
