"""The `twingan` command and its subcommands: what a user types, turned into service calls.

`main` is the click group (twingan/cli/commands.py); each subcommand's module is imported only when it
runs, so `twingan translate` does not pay for what `twingan prepare` needs."""

from twingan.cli.commands import entry, main

__all__ = ["entry", "main"]
