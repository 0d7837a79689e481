"""Checks at the command line's edge, shared by the commands: what an option may hold is refused
while the command line is parsed, before a model loads or a folder is read. Out-of-range numbers
are click usage errors (exit status 2); an output that cannot be written is a UserError (one
line, exit status 1), as it would be later.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from twingan.atomic import check_writable
from twingan.bundled import BundledModel
from twingan.data.pictures import MAX_SIZE
from twingan.evaluation.metrics import check_weights
from twingan.infer.translator import Translator

SIZE = click.IntRange(4, MAX_SIZE)
"""--size of translate and export; the model then says which sizes in this range it can take."""

CHECKPOINT = click.option("--checkpoint", "-c", type=click.Path(path_type=Path),
                          help="A checkpoint file, or a run folder (its newest checkpoint); default: the bundled "
                               "model (see `twingan models`).")
"""--checkpoint of the commands that translate or encode: optional, the bundled model otherwise."""

Callback = Callable[[click.Context, click.Parameter, Path | None], Path | None]


def writable(what: str, folder: bool = False) -> Callback:
    """A click callback refusing an output path that cannot be written (see `check_writable`)."""

    def check(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        if value is not None:
            check_writable(value, what, folder)
        return value

    return check


def inception_weights(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback for --inception-weights (and its environment variable): a file that is given
    must be readable by the safe loader, so a refused file stops the command (UserError) before
    any work instead of being taken for absent weights."""
    if value is not None:
        check_weights(value)
    return value


def bundled_note(model: BundledModel) -> str:
    """The one stderr line a command prints when it falls back to the bundled model, so that
    nobody mistakes its output for their own checkpoint's."""
    return f"no --checkpoint given: using the bundled model {model.name} ({model.resolution} px; `twingan models`)"


def load_translator(checkpoint: Path | None, device: str = "auto",
                    illust2vec_weights: Path | None = None) -> Translator:
    """The checkpoint's translator, or the bundled model's with `bundled_note` on stderr."""
    translator = Translator.load(checkpoint, device, illust2vec_weights)
    if translator.bundled is not None:
        click.echo(bundled_note(translator.bundled), err=True)
    return translator


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM taken as Ctrl-C while a command runs (a context manager or a decorator), so it ends
    through the command's own KeyboardInterrupt path: `translate` drops the video being written
    with its temporary file and says so, `serve` removes its scratch folder and exits 0. The
    default action killed the process on the spot, leaving such files and not a word."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
