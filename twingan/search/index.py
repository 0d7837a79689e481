"""A searchable, growable index of shared-latent vectors: FAISS for the vectors, SQLite for the rest.

An index is a folder:

* `meta.sqlite`: the settings (checkpoint path and SHA-256, embedding settings, FAISS factory
  strings, which vector files are current), the fitted PCA, and one row per picture (id, domain,
  path, SHA-256 of the file). Row ids are the FAISS ids, so a hit maps straight back to its picture.
* `a-<generation>.faiss`, `b-<generation>.faiss`: one FAISS index per domain, written with
  faiss.write_index, so a domain filter is a choice of index rather than a post-filter.

Writes never damage a good index: new vector files get a new generation name, then meta.sqlite is
replaced in one rename (it is the only file that says which vector files are current), and only
then are the old vector files removed. A crash at any point leaves a complete index behind.
Writers hold an exclusive lock on the folder (`writing`, fcntl.flock on `.write.lock`) from
reading the index to replacing it, so a second `index add` waits and then adds to what the first
wrote, instead of replacing it with its own copy. Readers need no lock.

Each domain's vectors are first centred on that domain's mean (recorded at build time): the two
domains sit apart in the latent space, and uncentred nearly all vectors point the same way
(cosine distances of 0.001 to 0.008 between any two pictures with twingan_cpu_64); centred, a
picture is compared by where it sits within its own domain, which is what makes a photo's anime
neighbours meaningful. Then, when asked, a PCA (scikit-learn, fitted on both centred domains
together so they stay in one space), then L2 normalisation for cosine similarity (the default,
searched with inner product; without it, L2). Collections up to FLAT_LIMIT per domain get an
exact Flat index; larger ones an inverted file (IVF), unless a factory string is given.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from twingan.atomic import atomic_path
from twingan.domains import DOMAIN_LETTERS
from twingan.errors import UserError

log = logging.getLogger(__name__)
FORMAT = "twingan-index"
LOCK_NAME = ".write.lock"
VERSION = 1
FLAT_LIMIT = 50_000
HNSW_EF_SEARCH = 256
HNSW_EF_CONSTRUCTION = 100
IVF_PROBE_SHARE = 64
"""An IVF index searches 1/64 of its lists (at least 32): recall@10 0.99 at 1M vectors."""
TRAIN_PER_LIST = 64
"""k-means for an IVF index sees at most 64 vectors a list (FAISS warns below 39)."""


@dataclass(frozen=True)
class IndexSettings:
    """What a query must match to be comparable with the stored vectors."""

    checkpoint: str
    checkpoint_sha256: str
    resolution: int
    latent_dim: int
    pca_dim: int | None
    normalize: bool


@dataclass(frozen=True)
class Hit:
    rank: int
    domain: str
    distance: float
    path: str
    id: int


def default_factory(count: int) -> str:
    """Exact Flat for small collections; above FLAT_LIMIT an inverted file with about 4 sqrt(N)
    lists (FAISS's rule of thumb), which beat HNSW32 on the benchmark's 1M vectors in build time
    (30 s against 131 s) and in recall at the same latency."""
    if count <= FLAT_LIMIT:
        return "Flat"
    return f"IVF{2 ** round(math.log2(4 * math.sqrt(count)))},Flat"


def tune_search(index: faiss.Index) -> None:
    """Search breadth, which index files do not keep: FAISS's defaults (HNSW efSearch 16, IVF
    nprobe 1) gave recall@10 of 0.54 and less on the benchmark's 100k vectors."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = HNSW_EF_SEARCH
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = min(inner.nlist, max(32, inner.nlist // IVF_PROBE_SHARE))


def faiss_reason(exc: RuntimeError) -> str:
    """FAISS's C++ message without its source location: "Error in void faiss::Clustering::train...
    failed: Number of training points (24) should be ..." -> "Number of training points (24) should be ..."."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in ("failed: ", "Error: "):
        if marker in text:
            return text.rsplit(marker, 1)[1][:200]
    return text[:200]


@contextlib.contextmanager
def writing(path: str | Path, create: bool = False) -> Iterator[None]:
    """Hold the index folder's exclusive write lock for the block (made with `create`, else it
    must exist); a second writer waits, saying so, until the first is done."""
    path = Path(path)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not (path / "meta.sqlite").is_file():
        raise UserError(f"index {path} does not exist (no meta.sqlite in it); build one with `twingan index build`")
    with open(path / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("index %s is being written by another process: waiting until it is done", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Index:
    """An opened index folder: a store of vectors already encoded. Encoding needs a network, which
    is the business of the commands that fill and query it (twingan/cli/neighbors.py) and of the server."""

    def __init__(self, path: Path, settings: IndexSettings, factories: dict[str, str],
                 indexes: dict[str, faiss.Index], arrays: dict[str, np.ndarray], db: sqlite3.Connection) -> None:
        self.path, self.settings, self.factories = path, settings, factories
        self.indexes, self.arrays, self.db = indexes, arrays, db

    # ----------------------------------------------------------------- vectors
    @property
    def dim(self) -> int:
        return self.settings.pca_dim or self.settings.latent_dim

    def transform(self, vectors: np.ndarray, domain: str) -> np.ndarray:
        """Latent vectors of `domain` -> the stored space: centring, PCA, L2 normalisation (as recorded)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.settings.latent_dim:
            raise ValueError(f"vectors must be (N, {self.settings.latent_dim}), got {x.shape}")
        x = x - self.arrays[f"center_{domain}"]
        if "pca_components" in self.arrays:
            x = (x - self.arrays["pca_mean"]) @ self.arrays["pca_components"].T
        if self.settings.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(x, dtype=np.float32)

    def count(self, domain: str | None = None) -> int:
        if domain is None:
            return sum(int(i.ntotal) for i in self.indexes.values())
        return int(self.indexes[domain].ntotal)

    # ----------------------------------------------------------------- building
    @classmethod
    def create(cls, path: str | Path, settings: IndexSettings, vectors: dict[str, np.ndarray],
               factory: str | None = None) -> Index:
        """A new, empty index whose centring and PCA (if any) are fitted on `vectors` of both domains."""
        path = Path(path)
        if path.exists() and not (path / "meta.sqlite").exists() and any(p.name != LOCK_NAME for p in path.iterdir()):
            raise UserError(f"{path} exists and is not a TwinGAN index: choose another -o")
        present = {d: np.asarray(v, np.float32) for d, v in vectors.items() if len(v)}
        if not present:
            raise UserError("no picture could be encoded, so there is nothing to index")
        overall = np.concatenate(list(present.values())).mean(0)
        arrays = {f"center_{d}": present[d].mean(0) if d in present else overall for d in DOMAIN_LETTERS}
        both = np.concatenate([v - arrays[f"center_{d}"] for d, v in present.items()])
        if settings.pca_dim:
            if settings.pca_dim > min(both.shape):
                raise UserError(f"--pca {settings.pca_dim} is more than the data allows (at most "
                                f"{min(both.shape)} for {both.shape[0]} pictures of {both.shape[1]} numbers)")
            from sklearn.decomposition import PCA

            fitted = PCA(settings.pca_dim, svd_solver="randomized", random_state=0).fit(both)
            arrays |= {"pca_mean": fitted.mean_, "pca_components": fitted.components_}
        arrays = {name: np.ascontiguousarray(a, np.float32) for name, a in arrays.items()}
        db = sqlite3.connect(":memory:")
        db.executescript("""
            CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE arrays (name TEXT PRIMARY KEY, shape TEXT NOT NULL, data BLOB NOT NULL);
            CREATE TABLE pictures (id INTEGER PRIMARY KEY, domain TEXT NOT NULL, path TEXT NOT NULL,
                                   sha256 TEXT NOT NULL);
            CREATE INDEX pictures_by_file ON pictures (domain, path, sha256);
        """)
        factories = {d: factory or default_factory(len(vectors.get(d, ()))) for d in DOMAIN_LETTERS}
        metric = faiss.METRIC_INNER_PRODUCT if settings.normalize else faiss.METRIC_L2
        dim = settings.pca_dim or settings.latent_dim
        try:
            indexes = {d: faiss.index_factory(dim, f"IDMap2,{factories[d]}", metric) for d in DOMAIN_LETTERS}
        except RuntimeError as exc:
            raise UserError(f"FAISS factory string {factory!r} is not valid: {faiss_reason(exc)}") from None
        for built in indexes.values():
            tune_search(built)
        index = cls(path, settings, factories, indexes, arrays, db)
        for d, sample in present.items():
            if not indexes[d].is_trained:
                index.train(d, sample)
        return index

    def train(self, domain: str, vectors: np.ndarray) -> None:
        """Fit a trainable index (IVF's k-means) on a fixed random sample of `vectors`."""
        inner = faiss.downcast_index(self.indexes[domain].index)
        limit = TRAIN_PER_LIST * inner.nlist if isinstance(inner, faiss.IndexIVF) else len(vectors)
        if len(vectors) > limit:
            vectors = vectors[np.random.default_rng(0).choice(len(vectors), limit, replace=False)]
        try:
            self.indexes[domain].train(self.transform(vectors, domain))
        except RuntimeError as exc:
            raise UserError(f"FAISS cannot build a {self.factories[domain]} index from the {len(vectors)} pictures of "
                            f"domain {domain}: {faiss_reason(exc)}; give more pictures or another --factory "
                            "(Flat needs no training)") from None

    def contains(self, domain: str, path: str, sha256: str) -> bool:
        row = self.db.execute("SELECT 1 FROM pictures WHERE domain = ? AND path = ? AND sha256 = ?",
                              (domain, path, sha256)).fetchone()
        return row is not None

    def add(self, domain: str, vectors: np.ndarray, paths: list[str], hashes: list[str]) -> int:
        """Append pictures of one domain; returns how many were added."""
        if not len(paths):
            return 0
        index = self.indexes[domain]
        if not index.is_trained:
            self.train(domain, vectors)
        start = (self.db.execute("SELECT MAX(id) FROM pictures").fetchone()[0] or 0) + 1
        ids = np.arange(start, start + len(paths), dtype=np.int64)
        self.db.executemany("INSERT INTO pictures (id, domain, path, sha256) VALUES (?, ?, ?, ?)",
                            [(int(i), domain, p, h) for i, p, h in zip(ids, paths, hashes)])
        index.add_with_ids(self.transform(vectors, domain), ids)
        return len(paths)

    def save(self) -> None:
        """Write atomically (see the module docstring): vectors under new names, then the metadata."""
        self.path.mkdir(parents=True, exist_ok=True)
        generation = uuid.uuid4().hex[:12]
        files = {d: f"{d}-{generation}.faiss" for d in DOMAIN_LETTERS}
        previous = self._recorded_files()
        try:
            for d, name in files.items():
                with atomic_path(self.path / name) as tmp:
                    faiss.write_index(self.indexes[d], str(tmp))
            self._put_settings(files)
            with atomic_path(self.path / "meta.sqlite") as tmp:
                target = sqlite3.connect(tmp)
                self.db.backup(target)
                target.close()
        except BaseException:
            for name in files.values():
                (self.path / name).unlink(missing_ok=True)
            raise
        # Keep the generation just replaced: a reader that read the old metadata a moment ago is
        # still to open its vector files. Older ones, and leftovers of a killed run, go.
        keep = {*files.values(), *previous.values()}
        for stale in self.path.glob("*.faiss"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def _recorded_files(self) -> dict[str, str]:
        """The vector files the metadata names ({} for a new index): under the write lock the
        in-memory copy is what is on disk, so the file need not be read again."""
        row = self.db.execute("SELECT value FROM settings WHERE key = 'files'").fetchone()
        return json.loads(row[0]) if row else {}

    def _put_settings(self, files: dict[str, str]) -> None:
        values = {"format": FORMAT, "version": VERSION, "settings": asdict(self.settings),
                  "factories": self.factories, "files": files}
        self.db.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])
        self.db.executemany("INSERT OR REPLACE INTO arrays (name, shape, data) VALUES (?, ?, ?)",
                            [(name, json.dumps(a.shape), a.tobytes()) for name, a in self.arrays.items()])
        self.db.commit()

    # ----------------------------------------------------------------- opening and searching
    @classmethod
    def open(cls, path: str | Path) -> Index:
        """Open an index folder; a missing, foreign or damaged one is refused with one sentence."""
        path = Path(path)
        meta = path / "meta.sqlite"
        if not meta.is_file():
            raise UserError(f"index {path} does not exist (no {meta.name} in it); build one with `twingan index build`")
        for _ in range(OPEN_ATTEMPTS):
            values, arrays, db = _read_meta(path)
            files = values.get("files")
            if not isinstance(files, dict) or all((path / str(name)).is_file() for name in files.values()):
                break
            # A writer replaced the metadata and removed these files since we read it: read it again.
        if values.get("format") != FORMAT:
            raise UserError(f"{path} is not a TwinGAN index")
        if values.get("version") != VERSION:
            raise UserError(f"index {path} has format version {values.get('version')}; this TwinGAN reads {VERSION}")
        try:
            settings = IndexSettings(**values["settings"])
            files = {str(d): str(name) for d, name in values["files"].items()}
            factories = dict(values["factories"])
            dim = int(settings.pca_dim or settings.latent_dim)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"index {path} is damaged: its metadata lacks or mangles a field ({exc})") from None
        indexes = {}
        for d, name in files.items():
            try:
                indexes[d] = faiss.read_index(str(path / name))
            except RuntimeError:
                raise UserError(f"index {path} is damaged: vector file {name} is missing, truncated or corrupt; "
                                "rebuild it with `twingan index build`") from None
            if indexes[d].d != dim:
                raise UserError(f"index {path} is damaged: {name} holds {indexes[d].d}-number vectors, the metadata "
                                f"says {dim}; rebuild it")
            stored = db.execute("SELECT COUNT(*) FROM pictures WHERE domain = ?", (d,)).fetchone()[0]
            if stored != indexes[d].ntotal:
                raise UserError(f"index {path} is damaged: {name} holds {indexes[d].ntotal} vectors but the "
                                f"metadata lists {stored} pictures; rebuild it")
            tune_search(indexes[d])
        return cls(path, settings, factories, indexes, arrays, db)

    def use_gpu(self) -> bool:
        """Move the vector indexes to the first GPU when this faiss build has GPU support (faiss-gpu);
        index types without a GPU version (HNSW) stay on the CPU. Returns whether any moved."""
        if getattr(faiss, "get_num_gpus", lambda: 0)() == 0:
            return False
        resources, moved = faiss.StandardGpuResources(), False
        for d, index in self.indexes.items():
            try:
                self.indexes[d], moved = faiss.index_cpu_to_gpu(resources, 0, index), True
            except RuntimeError:
                continue
        return moved

    def search_vectors(self, vectors: np.ndarray, k: int, domain: str) -> list[list[Hit]]:
        """Top k of one domain for each (already transformed) query vector."""
        index = self.indexes[domain]
        if index.ntotal == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = index.search(np.ascontiguousarray(vectors, np.float32), min(k, int(index.ntotal)))
        results = []
        for row_scores, row_ids in zip(scores, ids):
            found = [int(i) for i in row_ids if i >= 0]
            paths = dict(self.db.execute(
                f"SELECT id, path FROM pictures WHERE id IN ({','.join('?' * len(found))})", found).fetchall())
            results.append([Hit(rank + 1, domain, self._distance(float(s)), paths[i], i)
                            for rank, (s, i) in enumerate(zip(row_scores, found))])
        return results

    def pictures(self, domain: str, offset: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """(id, path) of a domain's pictures in the order they were added, one page at a time."""
        return self.db.execute("SELECT id, path FROM pictures WHERE domain = ? ORDER BY id LIMIT ? OFFSET ?",
                               (domain, limit, offset)).fetchall()

    def picture(self, picture_id: int) -> tuple[str, str] | None:
        """(domain, path) of the picture with this id, or None when the index holds no such picture."""
        return self.db.execute("SELECT domain, path FROM pictures WHERE id = ?", (picture_id,)).fetchone()

    def _distance(self, score: float) -> float:
        """Cosine distance (1 - similarity) when normalised, Euclidean distance otherwise."""
        return 1.0 - score if self.settings.normalize else float(np.sqrt(max(score, 0.0)))

    def close(self) -> None:
        self.db.close()


def describe(index: Index) -> str:
    s = index.settings
    reduce = f"PCA {s.latent_dim} -> {s.pca_dim}" if s.pca_dim else f"{s.latent_dim} numbers"
    return (f"{index.count('a'):,} photos (a), {index.count('b'):,} anime pictures (b); {reduce}, "
            f"{'cosine' if s.normalize else 'Euclidean'}; FAISS {index.factories['a']} / {index.factories['b']}")


OPEN_ATTEMPTS = 5
"""Readers take no lock: a writer that replaces the metadata twice while a reader opens the
index (it keeps one previous generation of vector files) sends the reader back to read it again."""


def _read_meta(path: Path) -> tuple[dict, dict[str, np.ndarray], sqlite3.Connection]:
    """An index's settings, arrays and picture table, copied into memory from meta.sqlite."""
    meta = path / "meta.sqlite"
    try:
        on_disk = sqlite3.connect(f"file:{meta}?mode=ro", uri=True)
        # `twingan serve` reads it from request threads, one at a time (Service holds a lock).
        db = sqlite3.connect(":memory:", check_same_thread=False)
        on_disk.backup(db)
        on_disk.close()
        values = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM settings")}
        arrays = {name: np.frombuffer(data, np.float32).reshape(json.loads(shape))
                  for name, shape, data in db.execute("SELECT name, shape, data FROM arrays")}
    except (sqlite3.DatabaseError, json.JSONDecodeError, ValueError, TypeError) as exc:
        raise UserError(f"index {path} is damaged: {meta.name} cannot be read ({exc})") from None
    return values, arrays, db
