"""`twingan export`: one translation direction as an ONNX model, checked against PyTorch.

The exported graph takes a float NCHW batch in [0, 1] at the model's size (any batch size) and
returns the translation in [0, 1], so a deployment needs no TwinGAN code: resize, divide by
255, run, multiply by 255. Export needs the `onnx` extra (onnx, onnxscript); the numerical check
runs whenever onnxruntime is installed, and a mismatch is an error, not a warning.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import torch
from torch import Tensor, nn

from twingan.atomic import atomic_path
from twingan.cli.options import CHECKPOINT, SIZE, load_translator, writable
from twingan.data.pictures import to_unit_range
from twingan.domains import DIRECTIONS
from twingan.errors import UserError
from twingan.infer.translator import Translator

TOLERANCE = 1e-4
"""Largest absolute difference (on [0, 1] pictures) accepted between ONNX Runtime and PyTorch."""


class OneWay(nn.Module):
    """One direction of a Translator as a plain module: [0, 1] in, [0, 1] out."""

    def __init__(self, translator: Translator, direction: str) -> None:
        super().__init__()
        self.translator = translator
        self.net = translator.net
        self.src, self.dst = DIRECTIONS[direction]

    def forward(self, image: Tensor) -> Tensor:
        return to_unit_range(self.translator.one_way(image * 2 - 1, self.src, self.dst))


def export_onnx(translator: Translator, target: Path, direction: str = "a2b", size: int | None = None,
                verify: bool = True) -> float | None:
    """Write the ONNX file atomically; return the largest difference to PyTorch (None if unchecked)."""
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
        raise UserError("ONNX export needs the onnx extra: pip install -e \".[onnx]\" (onnx, onnxscript, onnxruntime)")
    size = translator.resolution if size is None else size
    translator.check_size(size)
    module = OneWay(translator, direction).eval().cpu()
    example = torch.rand(2, translator.channels, size, size, generator=torch.Generator().manual_seed(0))
    with atomic_path(target) as tmp:
        program = torch.onnx.export(module, (example,), input_names=["image"], output_names=["translated"],
                                    dynamic_shapes={"image": {0: torch.export.Dim("batch")}}, dynamo=True,
                                    verbose=False)
        program.save(str(tmp))
        difference = _check(module, tmp, example) if verify else None
    return difference


def _check(module: nn.Module, path: Path, example: Tensor) -> float | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = torch.cat([example, example.flip(-1)])
    with torch.no_grad():
        expected = module(batch).numpy()
    got = session.run(["translated"], {"image": batch.numpy()})[0]
    difference = float(abs(got - expected).max())
    if difference > TOLERANCE:
        raise UserError(f"the ONNX model differs from PyTorch by {difference:.2e} (more than {TOLERANCE:.0e}); "
                        f"nothing was written")
    return difference


@click.command("export")
@CHECKPOINT
@click.option("--onnx", "target", required=True, type=click.Path(path_type=Path), callback=writable("ONNX file"),
              help="ONNX file to write.")
@click.option("--direction", type=click.Choice(list(DIRECTIONS)), default="a2b", show_default=True)
@click.option("--size", type=SIZE, help="Input size (default: the resolution the checkpoint finished training at).")
@click.option("--no-verify", is_flag=True, help="Skip the ONNX Runtime comparison.")
def export_command(checkpoint: Path | None, target: Path, direction: str, size: int | None, no_verify: bool) -> None:
    """Export one translation direction (photo -> anime by default) to ONNX.

    The model takes float NCHW pictures in [0, 1] at the trained size, any batch size.
    """
    translator = load_translator(checkpoint, "cpu")
    click.echo(f"exporting {direction} to {target} (tracing and checking take 10-20 s on 2 CPU cores)...")
    difference = export_onnx(translator, target, direction, size, verify=not no_verify)
    checked = (f"; ONNX Runtime agrees with PyTorch to {difference:.1e}" if difference is not None
               else "; not checked (onnxruntime is not installed)" if not no_verify else "")
    click.echo(f"wrote {target} ({translator.model}, {direction}, "
               f"{translator.resolution if size is None else size} px){checked}")
