"""Shared test helpers: tiny pictures made on the fly, and the optional real data folder."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn of every test subprocess: the kernel sends it SIGTERM when pytest ends, however
    it ends (Ctrl-C, kill), so no child such as a `twingan train` with an endless schedule
    outlives the test run. (Linux; elsewhere the child is on its own, as before.)"""
    name = ctypes.util.find_library("c")
    if name:
        ctypes.CDLL(name).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def gradient_image(size: int = 32, seed: int = 0) -> Image.Image:
    """A small RGB picture with structure (so resizes and crops are visible) and some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], axis=-1)
    noise = rng.integers(0, 40, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_image_folder(root: Path, count: int, size: int = 32, ext: str = ".png", seed: int = 0) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"img_{i:03d}{ext}"
        gradient_image(size, seed + i).save(path)
        paths.append(path)
    return paths


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data: a cheap 'bomb'."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: integration tests must pass on a machine without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def write_preset(tmp_path: Path, base: dict, sections: dict, image_size: int) -> Path:
    """tmp_path/tiny.yaml: `base` updated per section, pointing at 8 + 8 synthetic pictures
    (written once per tmp_path; domain B as JPEG so both decoders are exercised)."""
    preset = json.loads(json.dumps(base))
    for section, values in sections.items():
        preset.setdefault(section, {}).update(values)
    if not (tmp_path / "a").exists():
        write_image_folder(tmp_path / "a", 8, size=image_size, seed=0)
        write_image_folder(tmp_path / "b", 8, size=image_size, seed=100, ext=".jpg")
    preset["data"].update(domain_a=str(tmp_path / "a"), domain_b=str(tmp_path / "b"))
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


RANK_SCRIPT = """
import sys
from pathlib import Path
import torch
import torch.distributed as dist
from twingan.config import load_config
from twingan.train.trainer import Trainer

trainer = Trainer(load_config(sys.argv[1]), Path(sys.argv[2]), progress=False)
nets = [getattr(trainer.recipe, name) for name in sys.argv[3:]]
def flat():
    return torch.cat([t.detach().flatten().clone() for m in nets for t in (*m.parameters(), *m.buffers())
                      if t.is_floating_point()])
initial = flat()
trainer.run()
final = flat()
gathered = [torch.zeros_like(final) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, final)
assert all(torch.equal(g, gathered[0]) for g in gathered), "ranks disagree"
assert not torch.equal(initial, final), "training changed nothing"
print(f"rank {dist.get_rank()} of {dist.get_world_size()} agrees", flush=True)
dist.destroy_process_group()
"""


def run_two_ranks(tmp_path: Path, preset: Path, *networks: str) -> subprocess.CompletedProcess:
    """Train `preset` with torchrun, 2 CPU processes over gloo; each rank checks that `networks`
    (recipe attributes) trained and agree bit for bit across ranks."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(preset), str(tmp_path / "run"), *networks],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False,
        preexec_fn=die_with_parent)


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a background thread; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=300)


def load_tool(name: str):
    """A script of tools/ as a module (tests reuse the benchmark and screenshot code)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
