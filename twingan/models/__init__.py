"""The model families, one folder each, and the registry the layers above look them up in.

A family folder holds its networks, its recipe (how it trains; `protocols.Recipe`) and its
inference model (how a checkpoint translates; `protocols.InferenceModel`). The training loop,
the translator and the tools ask `family(cfg.model.name)` for these and never branch on a
family's name: a new family is its folder plus one line in FAMILIES (and its config section).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twingan.models.cyclegan.inference import CycleGANInference
from twingan.models.cyclegan.recipe import CycleGANRecipe
from twingan.models.cyclegan.recipe import check_config as check_cyclegan
from twingan.models.protocols import InferenceModel, Recipe
from twingan.models.twingan.inference import TwinGANInference
from twingan.models.twingan.recipe import TwinGANRecipe
from twingan.models.twingan.recipe import check_config as check_twingan


@dataclass(frozen=True)
class Family:
    """What the layers above need to train or load one family."""

    recipe: type[Recipe]
    inference: type[InferenceModel]
    check_config: Callable[[Any], object]
    """Raises ConfigError for keys that disagree, naming the key: `twingan config` and `twingan
    train` call it when they load a config, so the first refusal comes before any work."""
    grows: bool
    """Trains through progressively growing phases from train.start_resolution (so a benchmark
    that wants the final size must start there)."""


FAMILIES: dict[str, Family] = {
    "twingan": Family(TwinGANRecipe, TwinGANInference, check_twingan, grows=True),
    "cyclegan": Family(CycleGANRecipe, CycleGANInference, check_cyclegan, grows=False),
}
"""model.name -> its family."""


def family(name: str) -> Family:
    """The family a config's model.name names (the config schema admits only these names)."""
    return FAMILIES[name]
