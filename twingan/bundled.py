"""The models shipped inside the package, so that `twingan translate selfie.jpg` works right after install.

A bundled model is one safetensors file in twingan/assets/models/ (the inference networks only,
e.g. Twin-GAN's EMA encoder and generator, with the run's resolved config in its metadata) and one
entry in that folder's manifest.json: its SHA-256, its size and what it was trained on. safetensors
rather than a pickle: the file cannot run code, and it holds nothing a translation does not need
(no critics, no optimiser state), which keeps the package small.

The recorded hash is checked on every load, so a damaged download or a file put in its place is
refused in one line instead of translating with unknown weights. `tools/bundle_model.py` writes
both the file and its manifest entry from a training run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_type_hints

from twingan.atomic import atomic_path, write_text
from twingan.errors import UserError
from twingan.weights import file_sha256, load_weights

FOLDER = Path(__file__).resolve().parent / "assets" / "models"
"""Where the bundled files and their manifest live (package data)."""
MANIFEST = "manifest.json"
FORMAT = "twingan-bundled-model"
VERSION = "1"
PREFIX = "bundled:"
"""How an index records that it was built with a bundled model ("bundled:NAME"), so that it still
finds the model after the package moves."""


@dataclass(frozen=True)
class BundledModel:
    """One manifest entry: what `twingan models` lists and what a load checks."""

    name: str
    file: str
    sha256: str
    bytes: int
    model: str
    resolution: int
    images_seen: int
    trained_on: str
    default: bool = False

    @property
    def path(self) -> Path:
        return FOLDER / self.file


def _entry(raw: Any) -> BundledModel:
    """One manifest entry, its fields of the declared types: a field of the wrong type
    ("resolution": "64") would otherwise pass here and fail later with a traceback in
    `twingan models` or `translate`."""
    if not isinstance(raw, dict):
        raise TypeError(f"an entry is a {type(raw).__name__}, not an object")
    model = BundledModel(**raw)
    for name, kind in get_type_hints(BundledModel).items():
        value = getattr(model, name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} is {value!r}, not {kind.__name__}")
    return model


def bundled_models() -> list[BundledModel]:
    """Every model the manifest lists, the default first; none when the package ships none."""
    manifest = FOLDER / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        models = [_entry(entry) for entry in entries]
    except (ValueError, TypeError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"the bundled-model manifest {manifest} is damaged ({detail}): reinstall twingan") from None
    return sorted(models, key=lambda m: (not m.default, m.name))


def bundled_model(name: str | None = None) -> BundledModel:
    """The manifest entry called `name`, or the default model."""
    models = bundled_models()
    if not models:
        raise UserError(f"this TwinGAN installation ships no bundled model ({FOLDER / MANIFEST} is missing): "
                        "give --checkpoint, or reinstall twingan")
    if name is None:
        return models[0]
    for model in models:
        if model.name == name:
            return model
    raise UserError(f"no bundled model is called {name!r}; bundled: {', '.join(m.name for m in models)}")


def load_bundled(name: str | None = None) -> tuple[BundledModel, dict[str, Any]]:
    """The bundled model's manifest entry and a checkpoint-like state (config, images_seen,
    image_channels and the family's inference entry), after checking the file against its hash."""
    model = bundled_model(name)
    path = model.path
    if not path.is_file():
        raise UserError(f"bundled model {model.name}: {path} is missing; reinstall twingan")
    found = file_sha256(path)
    if found != model.sha256:
        raise UserError(f"bundled model {model.name}: {path} is damaged or not the file this TwinGAN shipped "
                        f"(SHA-256 {found[:12]}..., expected {model.sha256[:12]}...); reinstall twingan")
    weights = load_weights(path, f"bundled model {model.name}", formats=("safetensors",))
    meta = weights.metadata
    try:
        if meta["format"] != FORMAT or meta["version"] != VERSION:
            raise KeyError("format")
        state = {"config": json.loads(meta["config"]), "images_seen": int(meta["images_seen"]),
                 "image_channels": int(meta["image_channels"]), meta["state_key"]: weights.content}
    except (KeyError, ValueError):
        raise UserError(f"bundled model {model.name}: {path} is not a TwinGAN bundled model of format "
                        f"{VERSION}") from None
    return model, state


def write_bundle(tensors: dict, config: dict, state_key: str, images_seen: int, image_channels: int,
                 entry: BundledModel) -> BundledModel:
    """Write `tensors` (one family's inference state dict) as `entry.file` in the bundled folder and
    record it in the manifest (replacing an entry of the same name, with the file's real hash and
    size); returns the recorded entry."""
    from safetensors.torch import save_file

    target = entry.path
    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(config), "state_key": state_key,
                "images_seen": str(images_seen), "image_channels": str(image_channels)}
    with atomic_path(target) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    recorded = BundledModel(**{**asdict(entry), "sha256": file_sha256(target), "bytes": target.stat().st_size})
    others = [m for m in bundled_models() if m.name != entry.name]
    if recorded.default:
        others = [BundledModel(**{**asdict(m), "default": False}) for m in others]
    write_text(FOLDER / MANIFEST, json.dumps([asdict(m) for m in [recorded, *others]], indent=2) + "\n")
    return recorded
