"""`twingan serve`: load a checkpoint once and serve the page and the JSON API with uvicorn."""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import shutil
import socket
import tempfile
from pathlib import Path

import click

from twingan.cli.options import CHECKPOINT, bundled_note, sigterm_as_ctrl_c
from twingan.errors import UserError

LOOPBACK_NAMES = {"localhost"}
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
"""Allocations from 1 MiB up (decoded pictures, Pillow's blocks) come straight from the kernel."""


def return_freed_memory_promptly() -> None:
    """Make glibc give large freed blocks back to the kernel at once. By default it raises its
    mmap threshold after the first large free, so later decodes land on the heap and the server
    stays at its peak (2.2 GB after five 6000x6000 PNGs). A C library without mallopt is left alone."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def check_port(host: str, port: int) -> None:
    """Fail in a second, before the model loads, when the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host} cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "is another server using it? Choose another --port") from None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@CHECKPOINT
@click.option("--index", "index_path", type=click.Path(path_type=Path),
              help="A neighbour index (nearest faces and a character gallery), served with the model it was "
                   "built with: --checkpoint, else the one it recorded.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the server to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--illust2vec-weights", type=click.Path(path_type=Path),
              help="The converted illust2vec tag model, if not where the checkpoint's config says.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
              help="Largest request body accepted.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Largest picture accepted (width x height), checked before decoding.")
@click.option("--max-batch", type=click.IntRange(min=1),
              help="Most requests translated together in one model call (default: 16 on a GPU; on a CPU "
                   "2 at 256 px, 32 at 64 px).")
def serve_command(checkpoint: Path | None, index_path: Path | None, host: str, port: int, device: str,
                  illust2vec_weights: Path | None, max_upload_mb: float, max_pixels: int,
                  max_batch: int | None) -> None:
    """Serve a web page (and a JSON API) that turns photos into anime characters.

    \b
    Examples:
      twingan serve                                          (the bundled model; open http://127.0.0.1:8000)
      twingan serve --checkpoint runs/cpu64                  (your own model)
      twingan serve -c runs/char64 --index runs/faces.index  (character gallery and nearest faces)
    """
    import uvicorn

    from twingan.serve.app import create_app
    from twingan.serve.service import Service
    from twingan.serve.uploads import Limits

    check_port(host, port)
    service = Service.load(checkpoint, index_path, device, illust2vec_weights)
    if service.translator.bundled is not None:
        click.echo(bundled_note(service.translator.bundled), err=True)
    return_freed_memory_promptly()
    app = create_app(service, Limits(int(max_upload_mb * 2**20), max_pixels), max_batch)
    if not is_loopback(host):
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can use the server", err=True)
    # Uploads are parsed in memory (the request is capped at --max-upload-mb), and whatever a library
    # may still spool goes to a private folder that is removed on exit.
    scratch = tempfile.mkdtemp(prefix="twingan-serve-")
    tempfile.tempdir = scratch
    click.echo(f"serving {service.translator.source} on http://{host}:{port} (Ctrl+C to stop)")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: turn that into
    # an exception here, so the folder is removed and the process ends with status 0, no traceback.
    try:
        with sigterm_as_ctrl_c():
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        timeout_keep_alive=5, timeout_graceful_shutdown=SHUTDOWN_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        tempfile.tempdir = None
        shutil.rmtree(scratch, ignore_errors=True)
    click.echo("stopped")


SHUTDOWN_SECONDS = 30
"""On SIGTERM, requests in flight get this long to finish; a client that stalls its upload or
never sends a request no longer keeps the server alive after it (uvicorn's graceful-shutdown
timeout)."""
