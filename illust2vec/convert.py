"""Caffe weights -> a safetensors file the PyTorch network loads, every layer and shape checked.

The model kind comes from the layers present: `conv6_4` makes the tag model, `encode1` the
feature model. Layers with weights that the network does not have are refused by name, except
`encode2`, the feature model's training-time decoder (4096 -> 1539), which inference never uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from illust2vec.caffe import read_caffemodel
from illust2vec.network import Illust2VecNet, Variant, infer_width
from illust2vec.weights_file import atomic_path, read_safetensors

FORMAT = "illust2vec-weights"
UNUSED_LAYERS = {"encode2"}


def _variant(layers: dict[str, list[np.ndarray]]) -> Variant:
    if "encode1" in layers:
        return "feature"
    if "conv6_4" in layers:
        return "tag"
    raise ValueError("neither conv6_4 (tag model) nor encode1 (feature model) is in this Caffe model; "
                     f"its layers with weights are {', '.join(layers)}")


def _fit(blob: np.ndarray, expected: torch.Size, where: str) -> torch.Tensor:
    """Caffe's V1 blobs are always 4-D ((1, 1, out, in) for a fully connected weight); drop the
    leading ones, then insist on the exact shape."""
    shape = blob.shape
    while len(shape) > len(expected) and shape[0] == 1:
        shape = shape[1:]
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{where}: the Caffe model has shape {tuple(blob.shape)}, "
                         f"the network expects {tuple(expected)}")
    return torch.from_numpy(np.ascontiguousarray(blob.reshape(shape)))


def caffe_state_dict(layers: dict[str, list[np.ndarray]]) -> tuple[Variant, dict[str, torch.Tensor]]:
    """Map Caffe layers onto Illust2VecNet's parameters; raise ValueError naming any misfit."""
    variant = _variant(layers)
    if "conv1_1" not in layers:
        raise ValueError("layer conv1_1 is missing from the Caffe model")
    net = Illust2VecNet(variant, width=layers["conv1_1"][0].shape[0] / 64)
    expected = net.state_dict()
    modules = {name.rsplit(".", 1)[0] for name in expected}
    unknown = sorted(set(layers) - modules - UNUSED_LAYERS)
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}: not part of the illust2vec {variant} model")
    missing = sorted(modules - set(layers))
    if missing:
        raise ValueError(f"layer(s) {', '.join(missing)} of the illust2vec {variant} model are missing")
    state = {}
    for module in sorted(modules):
        blobs = layers[module]
        if len(blobs) != 2:
            raise ValueError(f"layer {module}: expected weights and bias, found {len(blobs)} blob(s)")
        for blob, kind in zip(blobs, ("weight", "bias")):
            key = f"{module}.{kind}"
            state[key] = _fit(blob, expected[key].shape, f"layer {module} {kind}")
    return variant, state


def convert_caffemodel(source: str | Path, target: str | Path) -> Variant:
    """Read `source` (.caffemodel), check it, write `target` (.safetensors) atomically."""
    variant, state = caffe_state_dict(read_caffemodel(source))
    with atomic_path(target) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "variant": variant})
    return variant


def load_weights(path: str | Path) -> tuple[Variant, float, dict[str, torch.Tensor]]:
    """A converted file -> (variant, width, state dict), read by the safe reader: a file that is not
    safetensors (a pickle, which could carry code) is an Illust2VecError, a foreign safetensors a ValueError."""
    metadata, state = read_safetensors(path, "illust2vec weights")
    if metadata.get("format") != FORMAT or metadata.get("variant") not in ("tag", "feature"):
        raise ValueError("not an illust2vec weights file made by `illust2vec convert`")
    return metadata["variant"], infer_width(state), state
