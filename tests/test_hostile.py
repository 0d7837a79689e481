"""The bad-input catalogue (issue 16), tried as a hostile or unlucky user would, as one table.

Each row is an input, a command, the exit status it must end with and a phrase of the one line
it must print. Every row also fails if a traceback reaches the user, if the command leaks an
exception, or if any file the user had before the command changed. Rows that passed before the
hardening are kept so that they stay passing. Cases that need more than one command (two
writers of one index, a resume) and the server's HTTP answers follow the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import gradient_image, png_header_only, write_image_folder
from PIL import Image

import test_training
from test_weights import write_code_carrying
from twingan.cli import main
from twingan.config import load_config
from twingan.search.index import Index, writing
from twingan.train.trainer import Trainer


@dataclass
class World:
    """What a user has: a finished run, a run stopped at 4 px, pictures, a preset, an index."""

    root: Path
    run: Path
    early: Path
    photos: Path
    anime: Path
    preset: Path
    index: Path
    marker: Path = field(init=False)

    def __post_init__(self) -> None:
        self.marker = self.root / "PWNED"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("user")
    preset = test_training.tiny_preset(root)
    Trainer(load_config(preset), root / "run", progress=False).run()
    Trainer(load_config(preset, ["train.max_images=4"]), root / "early", progress=False).run()
    built = CliRunner().invoke(main, ["index", "build", "-c", str(root / "run"), "--a", str(root / "a"),
                                      "--b", str(root / "b"), "-o", str(root / "faces.index"), "--no-progress"])
    assert built.exit_code == 0, built.output
    return World(root, root / "run", root / "early", root / "a", root / "b", preset, root / "faces.index")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the SHA-256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- inputs a case may make
def evil(fmt: str) -> Callable[[World, Path], Path]:
    return lambda w, d: write_code_carrying(d / f"evil-{fmt}.pt", fmt, w.marker)


def fifo(w: World, d: Path) -> Path:
    os.mkfifo(d / "pipe.png")
    return d / "pipe.png"


def a_file(w: World, d: Path) -> Path:
    (d / "file").write_text("user's notes")
    return d / "file"


def undecodable_folder(w: World, d: Path) -> Path:
    """Pictures whose headers are fine and whose pixel data is not."""
    for domain in "ab":
        (d / domain).mkdir()
        for i in range(2):
            (d / domain / f"{i}.png").write_bytes(png_header_only(16, 16))
    return d


def png_text_bomb(w: World, d: Path) -> Path:
    """A 51 KB PNG whose zTXt chunk inflates past Pillow's 1 MB text limit (Pillow: ValueError)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * 2_000_000, zip=True)
    gradient_image(16).save(d / "bomb.png", pnginfo=info)
    return d / "bomb.png"


def ppm_named_jpg(w: World, d: Path) -> Path:
    """A malformed PPM header in a file named .jpg (Pillow: ValueError)."""
    (d / "bad.jpg").write_bytes(b"P6\n48 48\n2x5\n")
    return d / "bad.jpg"


def folder_with_a_bad_header(w: World, d: Path) -> Path:
    write_image_folder(d / "photos", 2, size=24)
    png_text_bomb(w, d / "photos")
    return d / "photos"


def folder_with_a_non_utf8_name(w: World, d: Path) -> Path:
    """Second hostile pass, item 14: `bad\\xff\\xfe-name.png` beside good pictures."""
    write_image_folder(d / "photos", 2, size=24)
    gradient_image(24).save(d / "photos" / os.fsdecode(b"bad\xff\xfe-name.png"))
    return d / "photos"


def bad_files_only(w: World, d: Path) -> Path:
    for domain in "ab":
        (d / domain).mkdir()
        (d / domain / "x.png").write_bytes(b"not a picture")
        (d / domain / "y.jpg").write_bytes(b"")
    return d


def truncated_checkpoint(w: World, d: Path) -> Path:
    source = next((w.run / "checkpoints").glob("ckpt-*.pt"))
    (d / "cut.pt").write_bytes(source.read_bytes()[:2000])
    return d / "cut.pt"


def foreign_checkpoint(w: World, d: Path) -> Path:
    torch.save({"state_dict": {"w": torch.ones(1)}}, d / "other.pt")
    return d / "other.pt"


def one_photo(w: World, d: Path) -> Path:
    gradient_image(24).save(d / "me.png")
    return d / "me.png"


def photos_folder(w: World, d: Path) -> Path:
    write_image_folder(d / "photos", 2, size=24)
    return d / "photos"


@dataclass
class Case:
    """One row: `args(world, case folder, made input)` -> command line (and environment)."""

    name: str
    make: Callable[[World, Path], Path] | None
    args: Callable[[World, Path, Path | None], list[str]]
    status: int
    message: str
    env: Callable[[World, Path | None], dict[str, str]] = lambda w, made: {}


def photo(w: World) -> str:
    return str(sorted(w.photos.iterdir())[0])


def eval_identity(w: World) -> list[str]:
    return ["eval", "--identity", "--size", "16", "--a", str(w.photos), "--b", str(w.anime), "--no-progress"]


CATALOGUE = [
    # 1. Weights files that would run code: refused by every command, nothing runs.
    Case("eval --inception-weights carrying code", evil("torch-zip"),
         lambda w, d, m: [*eval_identity(w), "--inception-weights", str(m)], 1, "is refused: it holds Python objects"),
    Case("$TWINGAN_INCEPTION_WEIGHTS carrying code", evil("torch-legacy"), lambda w, d, m: eval_identity(w), 1,
         "is refused", env=lambda w, m: {"TWINGAN_INCEPTION_WEIGHTS": str(m)}),
    Case("train.eval_every with code in the Inception weights", evil("plain-pickle"),
         lambda w, d, m: ["train", str(w.preset), "--run-dir", str(d / "run"), "train.eval_every=4", "--no-progress"],
         1, "is refused", env=lambda w, m: {"TWINGAN_INCEPTION_WEIGHTS": str(m)}),
    *[Case(f"translate -c a {fmt} checkpoint carrying code", evil(fmt),
           lambda w, d, m: ["translate", photo(w), "-c", str(m), "-o", str(d / "out.png")], 1, "is refused")
      for fmt in ("torch-zip", "torch-legacy", "plain-pickle")],
    Case("export from a checkpoint carrying code", evil("torch-zip"),
         lambda w, d, m: ["export", "-c", str(m), "--onnx", str(d / "m.onnx")], 1, "is refused"),
    Case("index build from a checkpoint carrying code", evil("torch-zip"),
         lambda w, d, m: ["index", "build", "-c", str(m), "--a", str(w.photos), "-o", str(d / "ix"), "--no-progress"],
         1, "is refused"),
    Case("eval of a checkpoint carrying code", evil("torch-zip"),
         lambda w, d, m: ["eval", "-c", str(m), "--a", str(w.photos), "--b", str(w.anime), "--no-progress"],
         1, "is refused"),
    Case("serve a checkpoint carrying code", evil("torch-legacy"),
         lambda w, d, m: ["serve", "-c", str(m), "--port", "0"], 1, "is refused"),
    # 3. Numbers out of range: refused while the command line is read (click's usage error, status 2).
    *[Case(f"translate --size {size}", None,
           lambda w, d, m, size=size: ["translate", photo(w), "-c", str(w.run), "--size", size, "-o", str(d / "o.png")],
           2, "Invalid value for '--size'") for size in ("100000", "0", "-1")],
    *[Case(f"eval --identity --size {size}", None,
           lambda w, d, m, size=size: [*eval_identity(w)[:2], "--size", size, *eval_identity(w)[4:]],
           2, "Invalid value for '--size'") for size in ("-1", "3", "100000")],
    Case("export --size 100000", None,
         lambda w, d, m: ["export", "-c", str(w.run), "--onnx", str(d / "m.onnx"), "--size", "100000"],
         2, "Invalid value for '--size'"),
    Case("prepare --size 100000", None,
         lambda w, d, m: ["prepare", str(w.photos), "-o", str(d / "crops"), "--kind", "photo", "--size", "100000"],
         2, "Invalid value for '--size'"),
    Case("translate --size 16 above the trained 8 px", None,
         lambda w, d, m: ["translate", photo(w), "-c", str(w.run), "--size", "16", "-o", str(d / "o.png")],
         1, "use a power of two from 8 to 8"),
    # 5. Outputs that cannot be written: refused before any work.
    Case("export --onnx under a file", a_file,
         lambda w, d, m: ["export", "-c", str(w.run), "--onnx", str(m / "m.onnx")], 1, "is a file, not a folder"),
    Case("export --onnx onto a folder", None,
         lambda w, d, m: ["export", "-c", str(w.run), "--onnx", str(d)], 1, "is a folder; give a file name"),
    Case("index build -o onto a file", a_file,
         lambda w, d, m: ["index", "build", "-c", str(w.run), "--a", str(w.photos), "-o", str(m)],
         1, "is a file; give a folder"),
    Case("neighbors -o under a file", a_file,
         lambda w, d, m: ["neighbors", photo(w), "--index", str(w.index), "-o", str(m / "sheet.png")],
         1, "is a file, not a folder"),
    Case("train --run-dir under a file", a_file,
         lambda w, d, m: ["train", str(w.preset), "--run-dir", str(m / "run"), "--no-progress"],
         1, "is a file, not a folder"),
    Case("prepare -o onto a file", a_file,
         lambda w, d, m: ["prepare", str(w.photos), "-o", str(m), "--kind", "photo"], 1, "is a file; give a folder"),
    Case("eval -o under a file", a_file,
         lambda w, d, m: [*eval_identity(w), "-o", str(m / "report.json")], 1, "is a file, not a folder"),
    Case("translate -o under a file", a_file,
         lambda w, d, m: ["translate", photo(w), "-c", str(w.run), "-o", str(m / "o.png")], 1, "is a file"),
    # 6. Pictures that pass the header check and fail to decode.
    Case("train on undecodable pictures", undecodable_folder,
         lambda w, d, m: ["train", str(w.preset), "--run-dir", str(d / "run"), f"data.domain_a={m / 'a'}",
                          f"data.domain_b={m / 'b'}", "data.verify=header", "--no-progress"],
         1, "none of its 2 pictures can be decoded"),
    # 6b. Headers on which Pillow raises ValueError, not OSError (second hostile pass, item 8).
    *[Case(f"translate {label}", make,
           lambda w, d, m: ["translate", str(m), "-c", str(w.run), "-o", str(d / "o.png")], 1, "not a readable image")
      for label, make in (("a PNG with a zTXt bomb", png_text_bomb), ("a PPM header named .jpg", ppm_named_jpg))],
    Case("translate a folder holding a PNG with a zTXt bomb", folder_with_a_bad_header,
         lambda w, d, m: ["translate", str(m), "-c", str(w.run), "-o", str(d / "out"), "--no-progress"],
         1, "translated 2 of 3"),
    Case("index build over a folder holding a PNG with a zTXt bomb", folder_with_a_bad_header,
         lambda w, d, m: ["index", "build", "-c", str(w.run), "--a", str(m), "-o", str(d / "ix"), "--no-progress"],
         0, "skipped 1"),
    Case("neighbors of a PPM header named .jpg", ppm_named_jpg,
         lambda w, d, m: ["neighbors", str(m), "--index", str(w.index), "-o", str(d / "sheet.png")],
         1, "not a readable image"),
    Case("prepare a folder holding a PNG with a zTXt bomb", folder_with_a_bad_header,
         lambda w, d, m: ["prepare", str(m), "-o", str(d / "crops"), "--kind", "photo"], 1, "1 unreadable"),
    # 6c. A picture over the pixel limit, and the option that raises it (a 108 MP phone photo).
    Case("translate a picture over --max-pixels", one_photo,
         lambda w, d, m: ["translate", str(m), "-c", str(w.run), "--max-pixels", "100", "-o", str(d / "o.png")],
         1, "is over 100 pixels"),
    Case("translate with --max-pixels raised", one_photo,
         lambda w, d, m: ["translate", str(m), "-c", str(w.run), "--max-pixels", "200000000", "-o", str(d / "o.png")],
         0, "translated 1 of 1"),
    # 6d. File names that are not UTF-8.
    Case("index build over a file name that is not UTF-8", folder_with_a_non_utf8_name,
         lambda w, d, m: ["index", "build", "-c", str(w.run), "--a", str(m), "-o", str(d / "ix"), "--no-progress"],
         0, "file name is not valid UTF-8"),
    Case("prepare over a file name that is not UTF-8", folder_with_a_non_utf8_name,
         lambda w, d, m: ["prepare", str(m), "-o", str(d / "crops"), "--kind", "photo"], 0, "prepare_report.json"),
    # 7. What FAISS and empty folders used to turn into tracebacks.
    Case("index build --factory IVF1024,Flat on 8 pictures", None,
         lambda w, d, m: ["index", "build", "-c", str(w.run), "--a", str(w.photos), "-o", str(d / "ix"),
                          "--factory", "IVF1024,Flat", "--no-progress"],
         1, "Number of training points (8) should be at least as large as number of clusters (1024)"),
    Case("index build of folders of bad files only", bad_files_only,
         lambda w, d, m: ["index", "build", "-c", str(w.run), "--a", str(m / "a"), "--b", str(m / "b"),
                          "-o", str(d / "ix"), "--no-progress"], 1, "none of the 4 pictures could be read"),
    # 8. The user's pictures are never written over.
    Case("translate DIR -o DIR", photos_folder,
         lambda w, d, m: ["translate", str(m), "-c", str(w.run), "-o", str(m), "--no-progress"],
         1, "would overwrite the input picture"),
    Case("translate with the reference as output", one_photo,
         lambda w, d, m: ["translate", photo(w), "-c", str(w.run), "--target-character", str(m), "-o", str(m)],
         1, "would overwrite the input picture"),
    # 10. Said clearly.
    Case("translate a FIFO", fifo, lambda w, d, m: ["translate", str(m), "-c", str(w.run), "-o", str(d / "o.png")],
         1, "is not a regular file or a folder"),
    Case("a FIFO as checkpoint", fifo, lambda w, d, m: ["translate", photo(w), "-c", str(m), "-o", str(d / "o.png")],
         1, "is not a regular file"),
    # 11. A checkpoint stopped while growing works at the size it reached.
    Case("translate with a checkpoint stopped at 4 px", None,
         lambda w, d, m: ["translate", photo(w), "-c", str(w.early), "-o", str(d / "o.png")], 0, "translated 1 of 1"),
    Case("eval of a checkpoint stopped at 4 px", None,
         lambda w, d, m: ["eval", "-c", str(w.early), "--a", str(w.photos), "--b", str(w.anime), "--no-progress"],
         0, "| photo -> anime |"),
    Case("translate --size 4 with a checkpoint stopped at 4 px", None,
         lambda w, d, m: ["translate", photo(w), "-c", str(w.early), "--size", "4", "-o", str(d / "o.png")],
         0, "translated 1 of 1"),
    # Passed before the hardening; kept so that they stay passing.
    Case("translate a missing input", None,
         lambda w, d, m: ["translate", str(d / "nope.png"), "-c", str(w.run)], 1, "does not exist"),
    Case("translate with a truncated checkpoint", truncated_checkpoint,
         lambda w, d, m: ["translate", photo(w), "-c", str(m), "-o", str(d / "o.png")], 1, "cannot be read"),
    Case("translate with another project's checkpoint", foreign_checkpoint,
         lambda w, d, m: ["translate", photo(w), "-c", str(m), "-o", str(d / "o.png")],
         1, "is not a TwinGAN checkpoint"),
    Case("train into a run folder that holds checkpoints", None,
         lambda w, d, m: ["train", str(w.preset), "--run-dir", str(w.run), "--no-progress"],
         1, "already holds checkpoints"),
    Case("index add to a missing index", None,
         lambda w, d, m: ["index", "add", "--index", str(d / "none.index"), "--a", str(w.photos)], 1, "does not exist"),
    Case("an unknown config key", None, lambda w, d, m: ["config", "-", "train.lrr=1"], 2, "unknown config key"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.name)
def test_catalogue(world, tmp_path, case):
    made = case.make(world, tmp_path) if case.make else None
    before = {folder: snapshot(folder) for folder in (world.root, tmp_path)}
    result = CliRunner().invoke(main, case.args(world, tmp_path, made), env=case.env(world, made))
    assert result.exit_code == case.status, result.output
    assert case.message in result.output, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not world.marker.exists(), "a weights file ran code"
    for folder, files in before.items():
        after = snapshot(folder)
        changed = [name for name, digest in files.items() if after.get(name) != digest]
        assert not changed, f"user files changed: {changed}"
    if case.status:
        assert not (tmp_path / "run").exists(), "a failed train left a run folder"


# ----------------------------------------------------------------- beyond one command
def test_a_checkpoint_stopped_while_growing_says_so_and_translates_at_its_size(world, tmp_path, caplog):
    out = tmp_path / "o.png"
    result = CliRunner().invoke(main, ["translate", photo(world), "-c", str(world.early), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (4, 4)
    assert any("stopped growing at 4 px" in r.getMessage() and "final 8 px" in r.getMessage() for r in caplog.records)


def test_a_second_index_writer_waits_and_loses_nothing(world, tmp_path):
    """The first writer is this test, holding the lock; `index add` must wait for it, then add to
    what it wrote (without the lock it read the old index and dropped the first writer's pictures)."""
    import shutil

    from twingan.cli.neighbors import add_command, index_embedder

    shutil.copytree(world.index, tmp_path / "ix")
    write_image_folder(tmp_path / "more", 3, size=24, seed=50)
    write_image_folder(tmp_path / "first", 2, size=24, seed=70)
    finished = threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            add_command.callback(index_path=tmp_path / "ix", folder_a=tmp_path / "more", folder_b=None,
                                 checkpoint=None, device="cpu", batch_size=8, no_progress=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finished.set()

    with writing(tmp_path / "ix"):
        thread = threading.Thread(target=second_writer)
        thread.start()
        index = Index.open(tmp_path / "ix")
        embedder = index_embedder(index, device="cpu")
        first = embedder.embed_files(sorted((tmp_path / "first").iterdir()), "a", progress=False)
        index.add("a", first.vectors, [str(p.resolve()) for p in first.paths], first.hashes)
        index.save()
        assert not finished.is_set(), "the second writer did not wait for the lock"
    thread.join(timeout=300)
    assert not errors, errors
    final = Index.open(tmp_path / "ix")
    assert final.count("a") == Index.open(world.index).count("a") + 2 + 3


def test_resuming_does_not_log_the_same_images_twice(world, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"images_seen": 2')  # cut by a kill
    trainer = Trainer(load_config(run / "config.yaml"), run, progress=False)
    trainer.resume(run / "checkpoints" / "ckpt-000000000012.pt")
    trainer.run()
    seen = [json.loads(line)["images_seen"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert seen == sorted(set(seen)) and seen[-1] == 24


# ----------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def client(world):
    from fastapi.testclient import TestClient

    from twingan.serve.app import create_app
    from twingan.serve.service import Service

    with TestClient(create_app(Service.load(world.run, world.index, device="cpu"))) as c:
        yield c


HUGE = "99999999999999999999999"


@pytest.mark.parametrize("method, url, form, status", [
    ("get", f"/api/pictures/{HUGE}", None, 404),
    ("get", "/api/pictures/-1", None, 404),
    ("get", f"/api/gallery?offset={HUGE}", None, 422),
    ("post", "/api/translate", {"reference_id": HUGE}, 422),
])
def test_huge_numbers_are_client_errors_not_500(client, method, url, form, status):
    if method == "get":
        response = client.get(url)
    else:
        response = client.post(url, data=form, files={"photo": ("me.png", _png_bytes(), "image/png")})
    assert response.status_code == status, response.text
    assert len(response.json()["detail"].splitlines()) == 1


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    gradient_image(24).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decodes_share_a_pixel_budget(tmp_path):
    """Five pictures that each take the whole budget are decoded one at a time, never together."""
    from twingan.serve.uploads import PixelBudget

    budget, active, most = PixelBudget(100), [0], [0]
    lock = threading.Lock()

    def decode() -> None:
        with budget.hold(1000):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            threading.Event().wait(0.01)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=decode) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1 and budget.used == 0


def test_a_checkpoint_whose_config_asks_for_a_huge_network_is_refused_before_building_it(world, tmp_path):
    """Second hostile pass, item 11: a 2.8 MB checkpoint whose config asked for 8192 channels
    built a 27 GiB network before any shape check. Its tensors are compared with a skeleton on
    the meta device first; the refusal names the tensor."""
    import resource

    from twingan.checkpoint import load_checkpoint
    from twingan.errors import UserError
    from twingan.infer.translator import Translator

    state = load_checkpoint(world.run)
    state["config"]["model"].update(channel_base=65536, max_channels=4096)
    torch.save(state, tmp_path / "huge.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match=r"does not hold the networks its config describes \(tensor .* shape"):
        Translator.from_checkpoint(tmp_path / "huge.pt", "cpu")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB"
    state["config"]["model"]["max_channels"] = 8192
    torch.save(state, tmp_path / "huger.pt")
    result = CliRunner().invoke(main, ["translate", photo(world), "-c", str(tmp_path / "huger.pt"),
                                       "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "max_channels" in result.output and "Traceback" not in result.output
