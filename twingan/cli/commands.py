"""The `twingan` command: one click group, one subcommand per capability that exists.

User mistakes (`UserError`, and illust2vec's own `Illust2VecError`) and the machine's refusals
(`OSError`: a full disk, a read-only folder) become one line on stderr and exit status 1; click's
own usage errors and a config no run can take (`ConfigError`, naming the key) exit 2.
Anything else is a bug and keeps its traceback. No torch.load of the process may unpickle code
(see twingan.weights), whichever library makes the call.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import yaml
from tqdm.contrib.logging import logging_redirect_tqdm

from illust2vec.errors import Illust2VecError
from twingan import __version__
from twingan.checkpoint import latest_checkpoint
from twingan.config import MODELS, config_to_dict, load_config, load_config_with_sources, resolve_preset
from twingan.errors import ConfigError, UserError, describe_os_error
from twingan.weights import refuse_code_loading

if TYPE_CHECKING:
    from twingan.train.trainer import StopRequest


class _Group(click.Group):
    """Turns UserError and Illust2VecError into one line, and imports a command's module only when it
    is used, so that `twingan translate` does not pay for scikit-image or ONNX start-up it does not need."""

    lazy = {"prepare": "twingan.cli.prepare:prepare_command",
            "translate": "twingan.cli.translate:translate_command",
            "export": "twingan.cli.export:export_command",
            "index": "twingan.cli.neighbors:index_command",
            "neighbors": "twingan.cli.neighbors:neighbors_command",
            "eval": "twingan.cli.evaluate:eval_command",
            "serve": "twingan.serve.command:serve_command"}
    resolved: str | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        self.resolved = name
        return name, command, rest

    def invoke(self, ctx: click.Context):
        try:
            with logging_redirect_tqdm():
                return super().invoke(ctx)
        except ConfigError as exc:
            usage = click.ClickException(str(exc))
            usage.exit_code = 2
            raise usage from None
        except (UserError, Illust2VecError) as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(describe_os_error(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="twingan")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
def main(verbose: bool) -> None:
    """TwinGAN: turn human portraits into anime characters and back.

    Run `twingan COMMAND --help` for the options of each command.
    """
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s" if verbose else "%(message)s")
    # The group runs this inside tqdm's logging redirect, whose handler is already on the root
    # logger, so basicConfig above adds nothing and sets no level: without this line every INFO
    # line (the precision a run chose, "stopped by max_minutes at ...") was dropped.
    logging.getLogger().setLevel(level)
    refuse_code_loading()


MODEL_OPTION = click.option("--model", type=click.Choice(list(MODELS)),
                            help="Model to train (sets model.name; default: the preset's, else twingan).")


def _model_override(model: str | None) -> list[str]:
    return [f"model.name={model}"] if model else []


@main.command("config")
@click.argument("preset", required=False)
@click.argument("overrides", nargs=-1)
@MODEL_OPTION
@click.option("--explain", is_flag=True,
              help="Print every key as a table: value, default where it differs, the preset or override that "
                   "set it, type, range and meaning (docs/config.md has all keys).")
def config_command(preset: str | None, overrides: tuple[str, ...], model: str | None, explain: bool) -> None:
    """Print the fully resolved config of PRESET with OVERRIDES (section.key=value) applied.

    PRESET is a YAML file or the name of one in configs/; `-` means the built-in defaults
    (the published recipe of --model). Use it to check a run's settings before starting it.
    """
    if preset and "=" in preset:
        preset, overrides = None, (preset, *overrides)
    preset = None if preset in (None, "-") else preset
    from twingan.models import family

    cfg, sources = load_config_with_sources(preset, [*_model_override(model), *overrides])
    family(cfg.model.name).check_config(cfg)
    if explain:
        from twingan.cli.config_reference import explain_markdown

        click.echo(explain_markdown(cfg, sources, title=preset or "defaults"), nl=False)
    else:
        click.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), nl=False)


@contextlib.contextmanager
def signals_stop(stop: StopRequest) -> Iterator[None]:
    """While a run trains, a first SIGINT (Ctrl-C) or SIGTERM asks it to finish its step and save a
    checkpoint; a second aborts at once."""
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.reason is not None:
            raise KeyboardInterrupt
        stop.set(signal.Signals(signum).name)
        logging.getLogger("twingan.train").warning(
            "%s received: finishing this step and saving a checkpoint (again to abort)", stop.reason)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.command("train")
@click.argument("preset", required=False)
@click.argument("overrides", nargs=-1)
@click.option("--a", "domain_a", type=click.Path(path_type=Path), help="Domain A folder (photos); sets data.domain_a.")
@click.option("--b", "domain_b", type=click.Path(path_type=Path), help="Domain B folder (anime); sets data.domain_b.")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Run folder (default: runtime.output_dir/PRESET-TIMESTAMP).")
@click.option("--resume", type=click.Path(path_type=Path),
              help="Continue the run in this folder from its newest checkpoint, with its saved config.")
@click.option("--init-from", "init_from", metavar="NAME|CHECKPOINT",
              help="Start from the encoder and generator of a bundled model (`twingan models`) or a checkpoint "
                   "or run folder: fine-tune it on your pictures, or grow it to a larger model.resolution.")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs and CI).")
@MODEL_OPTION
def train_command(preset: str | None, overrides: tuple[str, ...], domain_a: Path | None, domain_b: Path | None,
                  run_dir: Path | None, resume: Path | None, init_from: str | None, no_progress: bool,
                  model: str | None) -> None:
    """Train Twin-GAN or CycleGAN with PRESET (a configs/ name or YAML file) and section.key=value OVERRIDES.

    \b
    Examples:
      twingan train twingan_cpu_64 --a photos/ --b anime/
      twingan train cyclegan_cpu_64 --a photos/ --b anime/
      twingan train --model cyclegan --a photos/ --b anime/   (the published CycleGAN recipe)
      twingan train twingan_selfie2anime_256 --a photos/ --b anime/ runtime.precision=bf16
      twingan train --resume runs/twingan_cpu_64-20261123-101500 train.max_minutes=60
      twingan train twingan_cpu_128 --init-from selfie2anime-64 --a photos/ --b anime/
      torchrun --nproc_per_node 4 -m twingan train twingan_selfie2anime_256 --a photos/ --b anime/
    """
    from twingan import distributed
    from twingan.models import family
    from twingan.train.trainer import StopRequest, Trainer

    if preset and "=" in preset:
        preset, overrides = None, (preset, *overrides)
    extra = _model_override(model)
    extra += [f"data.domain_a={domain_a}"] if domain_a else []
    extra += [f"data.domain_b={domain_b}"] if domain_b else []
    if resume is not None:
        if preset is not None or model is not None or init_from is not None:
            raise UserError("--resume uses the run's saved config.yaml and weights; give overrides only, not a preset, "
                            "--model or --init-from")
        if not (resume / "config.yaml").is_file():
            raise UserError(f"{resume} is not a run folder (no config.yaml)")
        cfg = load_config(resume / "config.yaml", [*overrides, *extra])
        run_dir = resume
    else:
        cfg = load_config(preset, [*overrides, *extra])
        name = resolve_preset(preset).stem if preset else cfg.model.name
        run_dir = run_dir or Path(cfg.runtime.output_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if latest_checkpoint(run_dir / "checkpoints") is not None:
            raise UserError(f"run folder {run_dir} already holds checkpoints: continue it with --resume {run_dir} "
                            f"or choose another --run-dir")
    family(cfg.model.name).check_config(cfg)
    trainer = Trainer(cfg, run_dir, progress=not no_progress)
    stop = StopRequest()
    try:
        if resume is not None:
            trainer.resume()
        elif init_from is not None:
            trainer.init_from(init_from)
        with signals_stop(stop):
            result = trainer.run(stop)
    finally:
        distributed.shutdown()
    if trainer.dist.is_main:
        stopped = f"; stopped by {result.stopped_by}" if result.stopped_by else ""
        best = f"; best by held-out SWD: {result.best}" if result.best else ""
        click.echo(f"{result.images_seen:,} images seen; checkpoint: {result.checkpoint}{best}; "
                   f"run folder: {trainer.run_dir}{stopped}")


@main.command("models")
def models_command() -> None:
    """List the models shipped inside the package: what `translate`, `serve`, `export`, `index build`
    use without --checkpoint (the first, marked *), and `Translator.pretrained(NAME)` loads."""
    from twingan.bundled import bundled_models

    models = bundled_models()
    if not models:
        raise UserError("this TwinGAN installation ships no bundled model")
    click.echo(f"  {'name':<18} {'model':<8} {'size':>7} {'px':>4} {'images':>8}  trained on")
    for m in models:
        click.echo(f"{'*' if m.default else ' '} {m.name:<18} {m.model:<8} {m.bytes / 2**20:>5.1f}MB {m.resolution:>4} "
                   f"{m.images_seen:>8,}  {m.trained_on}")


QUICK_EXIT_COMMANDS = {"translate", "neighbors"}


def entry() -> None:
    """The console script. After `translate` and `neighbors` it leaves with os._exit once its output is flushed:
    tearing down the interpreter's torch module graph takes 0.6-0.8 s on a 2-core machine, a quarter
    of a one-photo translation, and nothing the command made depends on it (pictures are already
    renamed into place). Other commands, whose data-loader workers and writers rely on a normal
    shutdown, exit normally; tests call `main` directly and never reach this."""
    try:
        main()
    except SystemExit as exc:
        if main.resolved not in QUICK_EXIT_COMMANDS:
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        code = exc.code
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
