"""CycleGAN's history of generated pictures (Shrivastava et al. 2017).

The discriminators see a mix of the newest fakes and older ones, which damps the oscillation
of generator and discriminator chasing each other. The pool is part of a checkpoint so that a
resumed run sees exactly the history it would have seen; it draws from torch's global RNG,
which the checkpoint also restores.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """Up to `size` past fakes; `query` swaps each new fake for a stored one with probability 0.5."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor) -> Tensor:
        """The batch to show the discriminator, detached; fills the pool first, then swaps at random."""
        batch = batch.detach()
        if self.size == 0:
            return batch
        out = []
        for image in batch:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(0, self.size, ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        if state["size"] != self.size:
            raise ValueError(f"image pool holds {state['size']} pictures, the config says {self.size}")
        self.images = [image.to(device) for image in state["images"]]
