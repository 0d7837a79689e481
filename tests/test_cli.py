"""The command line: help, version, and user errors as one line instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


def test_a_config_error_is_one_line_exit_2_without_traceback():
    result = CliRunner().invoke(main, ["config", "-", "train.lrr=1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unknown config key 'train.lrr'")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("override, key", [
    ("model.resolution=100", "model.resolution must be a power of two"),
    ("train.start_resolution=128", "start_resolution 128 is above the final resolution 64"),
    ("train.start_resolution=6", "start_resolution must be a power of two >= 4, got 6"),
    ("model.min_channels=128", "model.min_channels (128) is above model.max_channels (64)"),
])
def test_config_refuses_keys_that_disagree_as_training_would(override, key):
    result = CliRunner().invoke(main, ["config", "twingan_cpu_64", override])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and key in result.output


def test_config_checks_cyclegan_keys_too():
    result = CliRunner().invoke(main, ["config", "cyclegan_cpu_64", "model.resolution=66"])
    assert result.exit_code == 2 and "must be a multiple of 4" in result.output


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
