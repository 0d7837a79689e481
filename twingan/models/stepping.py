"""Pieces of one optimisation step that every model's recipe shares.

A recipe (Twin-GAN, CycleGAN) owns its networks, losses and optimisers; these helpers own what
must behave the same for all of them: mixed precision, the gradient all-reduce across processes,
and the agreement on whether a step's losses were finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from twingan import distributed

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is computed natively, so autocast to it pays (on an AVX2-only CPU it is emulated
    and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_precision(requested: str, device: torch.device) -> str:
    """runtime.precision as the step will run it: `auto` becomes bf16 or fp32 for this machine."""
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(device) else "fp32"


@dataclass(frozen=True)
class StepContext:
    """Where a recipe's step runs: device, process group and precision."""

    device: torch.device
    dist: distributed.DistInfo
    precision: str = "fp32"
    memory_format: torch.memory_format = torch.preserve_format
    """Layout of the pictures and of the generator side's networks."""
    critic_memory_format: torch.memory_format = torch.preserve_format
    """Layout of the discriminators (runtime.channels_last may put only them in channels-last)."""

    def autocast(self) -> AbstractContextManager:
        dtype = AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is only needed (and only enabled) for fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def finite(self, terms: dict[str, Tensor]) -> dict[str, float] | None:
        """Loss values averaged over processes, or None when any is non-finite (on every rank).

        The terms travel as one stacked tensor: one host sync and one collective per step, not one
        per term. The skip decision must be known before the update, so one per step stays."""
        if not terms:
            return {}
        keys = sorted(terms)
        packed = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
        packed = distributed.average_tensor(packed, self.dist)
        values = packed.tolist()
        return dict(zip(keys, values)) if all(math.isfinite(v) for v in values) else None

    def update(self, total: Tensor, optimizer: torch.optim.Optimizer, module: nn.Module,
               scaler: torch.amp.GradScaler, name: str = "update", keep_graph: bool = False) -> None:
        """Backward into `module`'s trainable parameters only, average gradients over processes,
        step. `keep_graph` keeps the graph for a second backward through a shared part (the
        critics' scores, reused by the D step); `name` labels both halves for the profiler
        (tools/bench_step_budget.py)."""
        optimizer.zero_grad(set_to_none=True)
        with record_function(f"{name} backward"):
            trainable = [p for p in module.parameters() if p.requires_grad]
            scaler.scale(total).backward(inputs=trainable, retain_graph=keep_graph)
            distributed.average_gradients(module.parameters(), self.dist)
        with record_function(f"{name} optimiser"):
            scaler.step(optimizer)
            scaler.update()


def adam(params: Iterable, device: torch.device, **settings) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all tensors) where this torch has it for the
    device, else the multi-tensor one: the same update as the per-tensor loop, within rounding."""
    try:
        return torch.optim.Adam(params, fused=True, **settings)
    except RuntimeError:
        return torch.optim.Adam(params, foreach=device.type == "cuda", **settings)


def keep_fused(optimizer: torch.optim.Optimizer) -> None:
    """A loaded state dict brings its own `fused`/`foreach` flags (None in checkpoints written before
    fused Adam): take this build's choice back so a resumed run keeps the fast kernel."""
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = optimizer.defaults.get("fused"), optimizer.defaults.get("foreach")
