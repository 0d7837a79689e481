"""Shared-latent search: exactness against brute force, domains, persistence, growth, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest
import test_cyclegan
import test_training
from click.testing import CliRunner
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from twingan.search import index as index_module
from twingan.cli import main
from twingan.config import load_config
from twingan.domains import DOMAIN_LETTERS
from twingan.errors import UserError
from twingan.search.embedding import search_pictures
from twingan.search.index import Index, IndexSettings
from twingan.cli.neighbors import index_embedder
from twingan.train.trainer import Trainer
from twingan.weights import file_sha256


def settings(dim: int = 16, pca: int | None = None, normalize: bool = True) -> IndexSettings:
    return IndexSettings("none.pt", "0" * 64, 8, dim, pca, normalize)


def clustered(n: int, rng: np.random.Generator) -> np.ndarray:
    """Vectors in 50 clusters, as embeddings come, rather than isotropic noise."""
    centres = rng.normal(size=(50, 16))
    return (centres[rng.integers(0, 50, n)] + 0.4 * rng.normal(size=(n, 16))).astype(np.float32)


def filled(path: Path, rng: np.random.Generator, pca: int | None = None, normalize: bool = True,
           factory: str | None = None, n: int = 200) -> tuple[Index, dict[str, np.ndarray]]:
    vectors = {d: clustered(n, rng) for d in "ab"}
    index = Index.create(path, settings(pca=pca, normalize=normalize), vectors, factory)
    for d, v in vectors.items():
        index.add(d, v, [f"{d}/{i}.png" for i in range(len(v))], [f"h{i}" for i in range(len(v))])
    return index, vectors


@pytest.mark.parametrize(("pca", "normalize"), [(None, True), (8, True), (None, False)])
def test_exact_index_agrees_with_brute_force(tmp_path, pca, normalize):
    rng = np.random.default_rng(0)
    index, vectors = filled(tmp_path / "ix", rng, pca, normalize)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    stored, asked = index.transform(vectors["b"], "b"), index.transform(queries, "b")
    metric = "cosine" if normalize else "euclidean"
    exact = NearestNeighbors(n_neighbors=5, metric=metric, algorithm="brute").fit(stored)
    distances, expected = exact.kneighbors(asked)
    for hits, want, want_distances in zip(index.search_vectors(asked, 5, "b"), expected, distances):
        assert [h.path for h in hits] == [f"b/{i}.png" for i in want]
        np.testing.assert_allclose([h.distance for h in hits], want_distances, atol=1e-4)
        assert all(h.domain == "b" for h in hits)


def test_domain_filter_and_persistence_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    index, vectors = filled(tmp_path / "ix", rng, pca=8)
    index.save()
    queries = index.transform(vectors["a"][:3], "a")
    before = index.search_vectors(queries, 4, "a")
    reopened = Index.open(tmp_path / "ix")
    assert reopened.search_vectors(queries, 4, "a") == before
    assert [h.path for h in before[0]][0] == "a/0.png" and before[0][0].distance == pytest.approx(0, abs=1e-5)
    assert all(h.domain == "b" for h in reopened.search_vectors(queries, 4, "b")[0])
    assert reopened.count("a") == reopened.count("b") == 200
    for name in ("center_a", "center_b", "pca_mean", "pca_components"):
        np.testing.assert_array_equal(reopened.arrays[name], index.arrays[name])


@pytest.mark.parametrize("factory", [None, "HNSW32"])
def test_large_collections_get_an_approximate_index_with_high_recall(tmp_path, monkeypatch, factory):
    monkeypatch.setattr(index_module, "FLAT_LIMIT", 100)
    rng = np.random.default_rng(2)
    index, vectors = filled(tmp_path / "ix", rng, n=2000, factory=factory)
    assert index.factories == {d: factory or "IVF128,Flat" for d in "ab"}
    index.save()
    reopened = Index.open(tmp_path / "ix")
    queries = reopened.transform(clustered(50, rng), "a")
    exact = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute")
    exact.fit(reopened.transform(vectors["a"], "a"))
    truth = exact.kneighbors(queries, return_distance=False)
    found = reopened.search_vectors(queries, 10, "a")
    recall = np.mean([len({f"a/{i}.png" for i in t} & {h.path for h in f}) / 10 for t, f in zip(truth, found)])
    assert recall > 0.95


def test_an_interrupted_save_leaves_the_previous_index(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    index, vectors = filled(tmp_path / "ix", rng)
    index.save()
    index.add("a", vectors["a"][:5], [f"new/{i}.png" for i in range(5)], ["x"] * 5)
    calls, write_index = [], faiss.write_index

    def failing_write(ix, name):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write_index(ix, name)

    monkeypatch.setattr(index_module.faiss, "write_index", failing_write)
    with pytest.raises(KeyboardInterrupt):
        index.save()
    assert len(calls) == 2
    reopened = Index.open(tmp_path / "ix")
    assert reopened.count("a") == 200
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "ix").iterdir()) == ["a", "b", "meta.sqlite"]


def test_damaged_and_foreign_indexes_are_refused_with_one_line(tmp_path):
    rng = np.random.default_rng(4)
    index, _ = filled(tmp_path / "ix", rng)
    index.save()
    with pytest.raises(UserError, match="does not exist"):
        Index.open(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "ix", broken)
    vector_file = next(broken.glob("a-*.faiss"))
    vector_file.write_bytes(vector_file.read_bytes()[:100])
    with pytest.raises(UserError, match="damaged.*truncated or corrupt"):
        Index.open(broken)
    (broken / "meta.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(UserError, match="damaged"):
        Index.open(broken)


# ---------------------------------------------------------------- with a real (tiny) checkpoint
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("world")
    Trainer(load_config(test_training.tiny_preset(tmp)), tmp / "run", progress=False).run()
    other = tmp_path_factory.mktemp("other")
    Trainer(load_config(test_training.tiny_preset(other), ["train.seed=5"]), other / "run", progress=False).run()
    cyc = tmp_path_factory.mktemp("cyc")
    Trainer(load_config(test_cyclegan.tiny_preset(cyc)), cyc / "run", progress=False).run()
    return {"run": tmp / "run", "a": tmp / "a", "b": tmp / "b", "other": other / "run", "cyclegan": cyc / "run"}


def build(world: dict[str, Path], out: Path, *extra: str):
    return CliRunner().invoke(main, ["index", "build", "-c", str(world["run"]), "--a", str(world["a"]),
                                     "--b", str(world["b"]), "-o", str(out), "--no-progress", *extra])


def test_build_then_neighbors_finds_the_picture_itself(tmp_path, world):
    result = build(world, tmp_path / "ix")
    assert result.exit_code == 0, result.output
    assert "8 photos (a), 8 anime pictures (b)" in result.output
    query = sorted(world["b"].iterdir())[3]
    found = CliRunner().invoke(main, ["neighbors", str(query), "--index", str(tmp_path / "ix"), "-k", "3",
                                      "--query-domain", "b", "--domain", "b", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)[str(query)]
    assert hits[0]["path"] == str(query.resolve()) and hits[0]["distance"] == pytest.approx(0, abs=1e-5)
    sheet = CliRunner().invoke(main, ["neighbors", str(query), "--index", str(tmp_path / "ix"), "-k", "4",
                                      "-o", str(tmp_path / "sheet.png")])
    assert sheet.exit_code == 0, sheet.output
    assert "rank  domain" in sheet.output and sheet.output.count("photos ") == 4
    assert Image.open(tmp_path / "sheet.png").size == (96 * 5 + 8, (96 + 16) * 2)


def test_python_api_matches_the_command(tmp_path, world):
    build(world, tmp_path / "ix")
    query = sorted(world["a"].iterdir())[0]
    index = Index.open(tmp_path / "ix")
    vector = index.transform(index_embedder(index).embed_picture(Image.open(query).convert("RGB"), "a"), "a")
    hits = [hit for domain in DOMAIN_LETTERS for hit in index.search_vectors(vector, 2, domain)[0]]
    assert [h.domain for h in hits] == ["a", "a", "b", "b"]
    assert hits[0].path == str(query.resolve())
    readme = search_pictures(Index.open(tmp_path / "ix"), [Image.open(query)], k=2, domain="a")[0]
    assert [(h.path, h.distance) for h in readme] == [(h.path, h.distance) for h in hits[:2]]


def test_add_keeps_old_entries_and_skips_known_pictures(tmp_path, world):
    assert build(world, tmp_path / "ix", "--pca", "4").exit_code == 0
    more = tmp_path / "more"
    more.mkdir()
    for i, picture in enumerate(sorted(world["b"].iterdir())[:3]):
        Image.open(picture).rotate(90).save(more / f"turned_{i}.png")
    (more / "broken.png").write_bytes(b"nope")
    added = CliRunner().invoke(main, ["index", "add", "--index", str(tmp_path / "ix"), "--b", str(more),
                                      "--a", str(world["a"]), "--no-progress"])
    assert added.exit_code == 0, added.output
    assert "8 photos (a), 11 anime pictures (b)" in added.output and "broken.png" in added.output
    index = Index.open(tmp_path / "ix")
    assert index.settings.pca_dim == 4
    first = sorted(world["b"].iterdir())[0]
    assert index.contains("b", str(first.resolve()), file_sha256(first))


def test_another_checkpoint_and_cyclegan_are_refused(tmp_path, world):
    build(world, tmp_path / "ix")
    query = str(sorted(world["a"].iterdir())[0])
    other = CliRunner().invoke(main, ["neighbors", query, "--index", str(tmp_path / "ix"), "-c", str(world["other"])])
    assert other.exit_code == 1 and "is not the one index" in other.output
    cyc = CliRunner().invoke(main, ["index", "build", "-c", str(world["cyclegan"]), "--a", str(world["a"]),
                                    "-o", str(tmp_path / "c")])
    assert cyc.exit_code == 1 and "needs Twin-GAN" in cyc.output
    bad_factory = build(world, tmp_path / "f", "--factory", "NoSuchIndex7")
    assert bad_factory.exit_code == 1 and "factory string" in bad_factory.output


def test_each_domain_is_centred_on_its_own_mean(tmp_path):
    """Two domains with the same layout in different places: a photo finds its anime counterpart."""
    base = np.random.default_rng(5).normal(size=(50, 16)).astype(np.float32)
    vectors = {"a": base + 10.0, "b": base - 3.0}
    index = Index.create(tmp_path / "ix", settings(), vectors)
    for d, v in vectors.items():
        index.add(d, v, [f"{d}/{i}.png" for i in range(len(v))], [""] * len(v))
    hits = index.search_vectors(index.transform(vectors["a"][:5], "a"), 1, "b")
    assert [h[0].path for h in hits] == [f"b/{i}.png" for i in range(5)]


@pytest.mark.parametrize("writes", [1, 2])
def test_a_reader_that_read_the_metadata_before_a_write_still_opens_the_index(tmp_path, monkeypatch, writes):
    """Second hostile pass, item 13: `save` removed the old vector files right after replacing
    the metadata, so a reader holding that metadata was told the index was damaged (34 of 44,554
    opens during 150 writes). Now one previous generation stays, and a reader finding its files
    gone reads the metadata again."""
    index, _ = filled(tmp_path / "ix", np.random.default_rng(4))
    index.save()
    real, pending = index_module._read_meta, [writes]

    def read_then_let_a_writer_in(path):
        found = real(path)
        if pending[0]:
            count, pending[0] = pending[0], 0
            for _ in range(count):
                index.save()
        return found

    monkeypatch.setattr(index_module, "_read_meta", read_then_let_a_writer_in)
    opened = Index.open(tmp_path / "ix")
    assert opened.count("a") == 200 and opened.count("b") == 200
    assert len(list((tmp_path / "ix").glob("a-*.faiss"))) == 2  # the newest and the one before


@pytest.mark.parametrize("damage", ["settings of the wrong shape", "no files field", "vectors of another size"])
def test_a_hand_damaged_index_is_refused_with_one_line(tmp_path, damage):
    """Second hostile pass, item 15: these gave tracebacks."""
    import sqlite3

    index, _ = filled(tmp_path / "ix", np.random.default_rng(5))
    index.save()
    meta = sqlite3.connect(tmp_path / "ix" / "meta.sqlite")
    if damage == "settings of the wrong shape":
        meta.execute("UPDATE settings SET value = ? WHERE key = 'settings'", (json.dumps([1, 2, 3]),))
    elif damage == "no files field":
        meta.execute("DELETE FROM settings WHERE key = 'files'")
    else:
        other = faiss.IndexFlatIP(7)
        other.add(np.zeros((200, 7), np.float32))
        faiss.write_index(other, str(next((tmp_path / "ix").glob("a-*.faiss"))))
    meta.commit()
    meta.close()
    with pytest.raises(UserError, match="is damaged"):
        Index.open(tmp_path / "ix")
