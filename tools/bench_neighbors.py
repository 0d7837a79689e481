"""Nearest-face search speed: FAISS at 100k and 1M vectors, and `twingan neighbors` end to end.

1. For each collection size: synthetic vectors at the index dimension (--dim, what `--pca` makes;
   the raw latent is 4*4*C = 1,024 for twingan_cpu_64 and 4,096 for the paper model), built with
   the index's own default for that size (Flat up to 50,000, IVF above) through twingan.search.index;
   prints build time, resident memory growth, single-query p50/p99 latency, batched queries/s and
   recall@10 against exact search by scikit-learn.
   The vectors have a decaying spectrum (dimension i has standard deviation (i + 1) ** -0.5, as
   PCA-reduced data has) and come in 1,000 clusters, which is closer to real embeddings than
   isotropic noise (the hardest case for any approximate index).
2. `twingan neighbors photo.png --index IX -o sheet.png` in a fresh process on an index of 10,000
   pictures (an untrained twingan_cpu_64 checkpoint; speed does not depend on training): median
   of 5 runs from process start to the sheet on disk.

    python tools/bench_neighbors.py                          # 100k and 1M at 128 dims, and the CLI
    python tools/bench_neighbors.py --sizes 100000 --dim 256 --skip-cli
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from twingan.search.index import Index, IndexSettings
from twingan.weights import file_sha256

QUERIES = 1000


def vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    scale = (np.arange(dim) + 1.0) ** -0.5
    centres = rng.normal(size=(1000, dim)) * scale
    return (centres[rng.integers(0, 1000, n)] + 0.5 * rng.normal(size=(n, dim)) * scale).astype(np.float32)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def bench_size(n: int, dim: int, threads: int) -> None:
    rng = np.random.default_rng(0)
    data, queries = vectors(n, dim, rng), vectors(QUERIES, dim, rng)
    before = rss_mb()
    start = time.perf_counter()
    index = Index.create(Path("unused"), IndexSettings("bench", "0" * 64, 64, dim, None, True), {"b": data})
    index.add("b", data, [str(i) for i in range(n)], [""] * n)
    build = time.perf_counter() - start
    memory = rss_mb() - before
    stored, asked = index.transform(data, "b"), index.transform(queries, "b")
    faiss_index = index.indexes["b"]
    single = []
    for q in asked[:300]:
        t = time.perf_counter()
        faiss_index.search(q[None], 10)
        single.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    _, found = faiss_index.search(asked, 10)
    batched = len(asked) / (time.perf_counter() - t)
    truth = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(stored).kneighbors(
        asked, return_distance=False) + 1  # the index's ids start at 1
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    print(f"{n:>9,} vectors x {dim}: {index.factories['b']:<7} build {build:7.1f} s, +{memory:6.0f} MB, "
          f"one query p50 {np.percentile(single, 50):.2f} ms / p99 {np.percentile(single, 99):.2f} ms, "
          f"batch of {QUERIES}: {batched:,.0f} queries/s, recall@10 {recall:.3f}  ({threads} threads)")


def bench_cli(tmp: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_translate import make_checkpoint

    checkpoint = make_checkpoint("twingan_cpu_64", tmp, "cpu")
    pictures = []
    for i in range(16):
        path = tmp / f"face_{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        pictures.append(str(path))
    from twingan.infer.translator import Translator
    from twingan.search.embedding import Embedder

    dim = Embedder(Translator.from_checkpoint(checkpoint, "cpu")).dim
    rng = np.random.default_rng(1)
    stored = {d: vectors(5000, dim, rng) for d in "ab"}
    index = Index.create(tmp / "ix", IndexSettings(str(checkpoint), file_sha256(checkpoint), 64, dim, None, True),
                         stored)
    for d, v in stored.items():
        index.add(d, v, [pictures[i % 16] for i in range(len(v))], [""] * len(v))
    index.save()
    command = [sys.executable, "-m", "twingan", "neighbors", pictures[0], "--index", str(tmp / "ix"),
               "-o", str(tmp / "sheet.png"), "--device", "cpu"]
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    print(f"twingan neighbors, 10,000-picture index ({dim} numbers a picture, Flat), process start to sheet "
          f"written: median {statistics.median(runs):.2f} s (best {min(runs):.2f}, worst {max(runs):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    threads = faiss.omp_get_max_threads()
    for n in args.sizes:
        bench_size(n, args.dim, threads)
    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as name:
            bench_cli(Path(name))


if __name__ == "__main__":
    main()
