"""What the layers above ask of a model family, stated once.

A family (Twin-GAN, CycleGAN) lives in its own folder under twingan/models/ with a recipe (how it
trains) and an inference model (how a checkpoint translates). The training loop and the
translator only ever call what these protocols list, so neither names a family, and a third one
needs its folder and one line in the registry (twingan/models/__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from twingan.models.schedule import Phase


@dataclass(frozen=True)
class TrainingData:
    """What a recipe may know about the pictures before training starts.

    Every recipe gets the same description and reads what its schedule needs: Twin-GAN counts
    images, so only the channels matter to it; CycleGAN's epochs are the larger domain's size.
    """

    image_channels: int
    domain_sizes: tuple[int, int]
    """Pictures in each domain's training set, by domain index."""


class Recipe(Protocol):
    """A family's part of a training step: its networks, losses, optimisers and schedule.

    Constructed as `recipe(cfg, ctx, data)` (the RunConfig, the stepping.StepContext and a
    TrainingData); raises UserError for a config it cannot train.
    """

    phases: list[Phase]
    """The whole schedule; the run ends with the last phase (or train.max_images)."""

    def batch_size(self, phase: Phase) -> int:
        """Pictures per domain per step and process in `phase`."""

    def learning_rate(self, images_seen: int) -> float:
        """The rate a step at `images_seen` uses (logged by the loop)."""

    def step(self, reals: list[Tensor], phase: Phase, images_seen: int) -> dict[str, float] | None:
        """One update on a [-1, 1] batch per domain; its loss values, or None when it was skipped
        because a loss was not finite (on any process)."""

    def progress_note(self, phase: Phase, images_seen: int, values: dict[str, float]) -> str:
        """A few words for the progress bar."""

    def sample_rows(self, inputs: list[Tensor], phase: Phase, images_seen: int) -> list[Tensor]:
        """Rows of the sample grid in [-1, 1]: per domain, the real pictures and what the
        inference networks make of them."""

    def sync_buffers(self) -> None:
        """Average running statistics across processes before a checkpoint."""

    def state_dict(self) -> dict:
        """The family's checkpoint entries (networks, optimisers, ...), merged into the loop's."""

    def load_state_dict(self, state: dict) -> None:
        """Raises KeyError/RuntimeError/ValueError when the state is not this configuration's."""

    def init_from(self, weights: dict[str, Tensor], source_cfg: Any, images_seen: int, source: str) -> list[str]:
        """Start a new run's inference networks from a trained model's (the family's inference
        state entry, of a run configured as `source_cfg` that saw `images_seen` images); returns
        the names of tensors left new. Raises UserError for a model that cannot seed this config."""


class InferenceModel(Protocol):
    """A checkpoint's inference networks, as the translator uses them.

    Constructed as `model(cfg, state, image_channels)` from a checkpoint's RunConfig and state; raises
    KeyError/RuntimeError/ValueError when the state does not hold the networks `cfg` describes.
    """

    state_key: str
    """The checkpoint entry holding `net`'s weights (what a bundled model ships)."""
    net: nn.Module
    """Every module inference runs, so its owner can move it and put it in eval mode."""
    resolution: int
    """The largest size the checkpoint finished training at: the default output size."""
    character: str
    """The character source the model was trained with (model.character), "none" without one."""
    no_shared_latent: str | None
    """None when both domains encode to one latent space; otherwise why not, for the user."""

    def size_refusal(self, size: int, largest: int) -> str | None:
        """None when the networks take `size` x `size` pictures (at most `largest`); otherwise
        the sizes they do take, in words."""

    def one_way(self, x: Tensor, src: int, dst: int, character: Tensor | None = None) -> Tensor:
        """Domain `src` -> `dst` on NCHW in [-1, 1] at a valid size; `character` (a (1, code) or
        (N, code) code) shapes anime output of a model with a character source."""

    def reconstruct(self, x: Tensor, domain: int) -> Tensor:
        """The picture mapped back into its own domain (what the model does to a picture that
        needs no translation)."""

    def encode(self, x: Tensor, domain: int, size: int) -> Tensor:
        """The (N, D) shared-latent vectors of NCHW pictures in [-1, 1] at `size`."""

    def character_code(self, prepared: Tensor, whole: Callable[[], Tensor],
                       illust2vec_weights: str | Path | None) -> Tensor:
        """The (1, code) character code of an anime picture, given as the model takes it
        (`prepared`) and at its own size (`whole()`, made only if the source needs it), both
        (1, C, H, W) in [-1, 1] (character != "none")."""

    def tags_code(self, tags: list[str]) -> Tensor:
        """A (1, code) code with the named attributes on and the rest off; UserError for names the
        model does not know or a source without named attributes (character != "none")."""

    def mean_code(self) -> Tensor:
        """The (1, code) mean code of the training pictures (character != "none")."""
