"""The model families, one folder each, and the registry the layers above look them up in.

A family folder holds its networks, its recipe (how it trains; `protocols.Recipe`) and its
inference model (how a checkpoint translates; `protocols.InferenceModel`). The training loop,
the translator and the tools ask `family(cfg.model.name)` for these and never branch on a
family's name: a new family is its folder plus one line in FAMILIES (and its config section).
"""

from __future__ import annotations

from dataclasses import dataclass

from twingan.models.cyclegan.inference import CycleGANInference
from twingan.models.cyclegan.recipe import CycleGANRecipe
from twingan.models.protocols import InferenceModel, Recipe
from twingan.models.twingan.inference import TwinGANInference
from twingan.models.twingan.recipe import TwinGANRecipe


@dataclass(frozen=True)
class Family:
    """What the layers above need to train or load one family."""

    recipe: type[Recipe]
    inference: type[InferenceModel]
    grows: bool
    """Trains through progressively growing phases from train.start_resolution (so a benchmark
    that wants the final size must start there)."""


FAMILIES: dict[str, Family] = {
    "twingan": Family(TwinGANRecipe, TwinGANInference, grows=True),
    "cyclegan": Family(CycleGANRecipe, CycleGANInference, grows=False),
}
"""model.name -> its family."""


def family(name: str) -> Family:
    """The family a config's model.name names (the config schema admits only these names)."""
    return FAMILIES[name]
