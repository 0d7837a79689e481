"""Several processes (torchrun), one per GPU or CPU slot, averaging gradients every step.

Gradients are averaged with one all_reduce of a flat buffer per optimizer step, as NVlabs'
StyleGAN3 training loop does, rather than by wrapping the networks in
DistributedDataParallel: a Twin-GAN step runs the shared encoder and generator eight times with
different domain norms before one backward, and the DRAGAN/R1 penalties need double backward;
DDP's bucketed reducer supports neither pattern reliably. Batch norm uses each process's own
batch statistics (as DDP without SyncBatchNorm does); running statistics are averaged across
processes before every checkpoint so the saved model does not depend on rank 0's batches alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from twingan.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, info: DistInfo | None = None) -> torch.device:
    """The device of this process: auto -> CUDA when present (under torchrun, the process's own
    GPU); an explicit cuda on a machine without one is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for (runtime.device or --device) but no CUDA GPU is available; "
                        "use cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", info.local_rank if info else 0)


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (or run alone)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(module: nn.Module, info: DistInfo) -> None:
    """Start every process from rank 0's weights and buffers."""
    if not info.enabled:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[nn.Parameter], info: DistInfo) -> None:
    """Mean of every process's gradients, in a single collective call."""
    if not info.enabled:
        return
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= info.world_size
    for param, grad in zip(params, flat.split([p.numel() for p in params])):
        param.grad.copy_(grad.view_as(param.grad))


def average_buffers(module: nn.Module, info: DistInfo) -> None:
    """Mean of floating-point buffers (batch-norm running statistics) across processes."""
    if not info.enabled:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer.data)
            buffer.data /= info.world_size


def average_tensor(values: Tensor, info: DistInfo) -> Tensor:
    """Mean of a tensor across processes (itself when there is one process)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / info.world_size


def average_scalars(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Mean of logged numbers across processes, so every rank takes the same decisions."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    packed = average_tensor(torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device), info)
    return dict(zip(keys, packed.tolist()))
