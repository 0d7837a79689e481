"""Load test for `twingan serve`: REQUESTS translations from CLIENTS concurrent clients on loopback.

    python tools/bench_serve.py --checkpoint runs/cpu64 --photos ../shared/data/selfie2anime/trainA
    python tools/bench_serve.py --checkpoint runs/char64 --index runs/faces.index --endpoint neighbors

It starts the real `twingan serve` in a subprocess on a free port, waits for /api/health, then
each client sends one request at a time (the clients together keep CLIENTS in flight) and the
script prints requests/s, p50/p90/p99 latency, failed requests, the server's batching (from
/api/health) and its peak resident memory (VmHWM). The test suite runs `hammer` against an
in-process server with a tiny checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import numpy as np


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def summary(self) -> str:
        return (f"{len(self.latencies)} ok, {len(self.failures)} failed in {self.seconds:.1f} s: "
                f"{self.per_second:.1f} requests/s; latency p50 {self.percentile(50) * 1000:.0f} ms, "
                f"p90 {self.percentile(90) * 1000:.0f} ms, p99 {self.percentile(99) * 1000:.0f} ms")


def hammer(url: str, photos: list[tuple[str, bytes]], requests: int = 200, clients: int = 8,
           endpoint: str = "translate", timeout_s: float = 120.0) -> LoadResult:
    """Send `requests` uploads of `photos` (name, bytes) round-robin from `clients` concurrent clients."""
    return asyncio.run(_hammer(url, photos, requests, clients, endpoint, timeout_s))


async def _hammer(url: str, photos: list[tuple[str, bytes]], requests: int, clients: int, endpoint: str,
                  timeout_s: float) -> LoadResult:
    next_request = iter(range(requests))
    result = LoadResult(0.0)

    async def client(http: httpx.AsyncClient) -> None:
        for i in next_request:
            name, data = photos[i % len(photos)]
            started = time.perf_counter()
            try:
                response = await http.post(f"{url}/api/{endpoint}", files={"photo": (name, data, "image/jpeg")})
                ok = response.status_code == 200
                problem = f"{name}: HTTP {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                ok, problem = False, f"{name}: {type(exc).__name__} {exc}"
            if ok:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.failures.append(problem)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(serve_args: list[str], startup_s: float = 180.0, env: dict[str, str] | None = None,
                   preexec_fn: Callable[[], None] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`twingan serve SERVE_ARGS` on a free loopback port, until the block ends (then stopped with SIGTERM).
    `preexec_fn` runs in the child before it starts (the tests make it die with them)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "twingan", "serve", *serve_args, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise SystemExit(f"twingan serve exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"twingan serve did not answer within {startup_s:.0f} s")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident memory (Linux VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint")
    source.add_argument("--preset", help="Serve an untrained checkpoint of this preset (speed does not depend on "
                                         "training), e.g. twingan_selfie2anime_256.")
    parser.add_argument("--max-batch", type=int, help="Pass --max-batch to the server (1: no batching).")
    parser.add_argument("--index", help="Pass --index to the server (needed for --endpoint neighbors).")
    parser.add_argument("--photos", type=Path, help="A folder of photos (default: 8 synthetic 128 px pictures).")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--endpoint", choices=["translate", "neighbors"], default="translate")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    photos = sorted(args.photos.glob("*.jpg"))[:64] if args.photos else []
    loaded = [(p.name, p.read_bytes()) for p in photos] or _synthetic()
    with tempfile.TemporaryDirectory() as tmp:
        if args.preset:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_translate import make_checkpoint

            args.checkpoint = str(make_checkpoint(args.preset, Path(tmp), "cpu" if args.device == "auto" else
                                                  args.device))
        _run(args, loaded)


def _run(args: argparse.Namespace, loaded: list[tuple[str, bytes]]) -> None:
    serve_args = ["--checkpoint", args.checkpoint, "--device", args.device]
    serve_args += ["--index", args.index] if args.index else []
    serve_args += ["--max-batch", str(args.max_batch)] if args.max_batch else []
    with running_server(serve_args) as (url, process):
        hammer(url, loaded[:4], requests=8, clients=2, endpoint=args.endpoint)  # warm-up
        result = hammer(url, loaded, args.requests, args.clients, args.endpoint)
        health = httpx.get(f"{url}/api/health").json()
        peak = peak_memory_mib(process.pid)
    batching, model = health["batching"], health["model"]
    print(f"{args.endpoint}: {args.requests} requests from {args.clients} clients, {len(loaded)} distinct photos, "
          f"--max-batch {args.max_batch or 'default'}; {model['name']} {model['resolution']} px on {model['device']}")
    print(result.summary())
    print(f"server: {batching['batches']} model batches for {batching['requests']} requests "
          f"(mean {batching['requests'] / max(1, batching['batches']):.1f}, largest {batching['largest']}); "
          f"peak memory {peak:.0f} MiB")
    for failure in result.failures[:5]:
        print("failed:", failure)
    sys.exit(1 if result.failures else 0)


def _synthetic() -> list[tuple[str, bytes]]:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = []
    for i in range(8):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        pictures.append((f"synthetic_{i}.jpg", buffer.getvalue()))
    return pictures


if __name__ == "__main__":
    main()
