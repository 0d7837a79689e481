"""The command line: help, version, and user errors as one line instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

import yaml
from click.testing import CliRunner

from twingan import __version__
from twingan.cli import main


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "prepare" in result.output and "config" in result.output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_config_command_applies_overrides():
    result = CliRunner().invoke(main, ["config", "twingan_selfie2anime_256", "train.lr=3e-4"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["train"]["lr"] == 3e-4


def test_user_error_is_one_line_without_traceback():
    result = CliRunner().invoke(main, ["config", "-", "train.lrr=1"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unknown config key 'train.lrr'")
    assert "Traceback" not in result.output


def test_installed_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "twingan", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and __version__ in result.stdout


def test_torchvision_compiled_operators_work():
    """The install must not pick a torch build that torchvision's C++ operators cannot use."""
    import torch
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
