"""Pieces of one optimisation step that every model's recipe shares.

A recipe (Twin-GAN, CycleGAN) owns its networks, losses and optimisers; these helpers own what
must behave the same for all of them: mixed precision, the gradient all-reduce across processes,
and the agreement on whether a step's losses were finite.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from twingan import distributed

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StepContext:
    """Where a recipe's step runs: device, process group and precision."""

    device: torch.device
    dist: distributed.DistInfo
    precision: str = "fp32"
    memory_format: torch.memory_format = torch.preserve_format

    def autocast(self) -> AbstractContextManager:
        dtype = AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is only needed (and only enabled) for fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def finite(self, values: dict[str, float]) -> dict[str, float] | None:
        """Loss values averaged over processes, or None when any is non-finite (on every rank)."""
        averaged = distributed.average_scalars(values, self.dist, self.device)
        return averaged if all(math.isfinite(v) for v in averaged.values()) else None

    def update(self, total: Tensor, optimizer: torch.optim.Optimizer, module: nn.Module,
               scaler: torch.amp.GradScaler) -> None:
        """Backward, average gradients over processes, step."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        distributed.average_gradients(module.parameters(), self.dist)
        scaler.step(optimizer)
        scaler.update()


def detached_values(terms: dict[str, Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}
