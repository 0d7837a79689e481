"""`python -m twingan` runs the same command as the `twingan` console script."""

from twingan.cli import entry

entry()
