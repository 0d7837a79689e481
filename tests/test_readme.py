"""Every example in README.md works: Python blocks run, shell lines name real commands and options.

The second new-user pass found a README example that raised AttributeError (an `Index.search`
that did not exist). Here each ```python block runs, in order, in a folder that holds what the
examples name (a tiny trained run as runs/cpu64, an index, pictures, tiny illust2vec weights);
each `twingan` / `illust2vec` line of a ```bash block is parsed by the command it names: the
command must exist and every option it uses must be one of that command's options.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import gradient_image

import test_training
from illust2vec.cli import main as illust2vec_main
from twingan.cli import main as twingan_main
from twingan.config import load_config
from twingan.train.trainer import Trainer

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str) -> list[tuple[int, str]]:
    """(first line number, text) of every fenced block of `language`."""
    found, inside, start, lines = [], False, 0, []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if not inside and line.strip() == f"```{language}":
            inside, start, lines = True, number + 1, []
        elif inside and line.strip() == "```":
            inside = False
            found.append((start, "\n".join(lines)))
        elif inside:
            lines.append(line)
    return found


def command_lines() -> list[tuple[int, list[str]]]:
    """Each shell line that calls twingan or illust2vec, as words, comments dropped."""
    found = []
    for start, text in blocks("bash"):
        for offset, line in enumerate(text.splitlines()):
            words = shlex.split(line, comments=True)
            if words and words[0] in ("twingan", "illust2vec"):
                found.append((start + offset, words))
    return found


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name and the words left for it."""
    command: click.Command = twingan_main if words[0] == "twingan" else illust2vec_main
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"{words[0]} has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


@pytest.mark.parametrize(("line", "words"), command_lines(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_a_shell_example_uses_a_real_command_and_its_options(line, words):
    command, rest = resolve(words)
    known = {name for param in command.get_params(click.Context(command)) for name in param.opts + param.secondary_opts}
    used = {word.split("=", 1)[0] for word in rest if re.match(r"^--?[A-Za-z]", word)}
    assert used <= known, f"README.md line {line}: {' '.join(words)}: unknown option(s) {sorted(used - known)}"
    shown = CliRunner().invoke(twingan_main if words[0] == "twingan" else illust2vec_main,
                               [*words[1:len(words) - len(rest)], "--help"])
    assert shown.exit_code == 0, shown.output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder with what the Python examples name."""
    from test_illust2vec import caffemodel, small_net

    from illust2vec.convert import convert_caffemodel

    root = tmp_path_factory.mktemp("readme")
    Trainer(load_config(test_training.tiny_preset(root)), root / "runs" / "cpu64", progress=False).run()
    for name in ("selfie.jpg", "me.jpg", "miku.png"):
        gradient_image(96, seed=len(name)).save(root / name)
    built = CliRunner().invoke(twingan_main, ["index", "build", "-c", str(root / "runs" / "cpu64"), "--a",
                                              str(root / "a"), "--b", str(root / "b"), "-o", str(root / "faces.index"),
                                              "--no-progress"])
    assert built.exit_code == 0, built.output
    for variant, name in (("tag", "illust2vec_tag_ver200"), ("feature", "illust2vec_ver200")):
        (root / f"{name}.caffemodel").write_bytes(caffemodel(small_net(variant).state_dict(), legacy=True))
        convert_caffemodel(root / f"{name}.caffemodel", root / f"{name}.safetensors")
    return root


@pytest.mark.parametrize(("line", "code"), blocks("python"), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_a_python_example_runs(workspace, monkeypatch, line, code):
    monkeypatch.chdir(workspace)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_example"})  # noqa: S102 - our own README
