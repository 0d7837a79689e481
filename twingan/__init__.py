"""TwinGAN: unpaired human <-> anime portrait translation with one shared encoder/generator.

The Python API is importable from here (`from twingan import Translator`); the names load their
modules on first use, so `import twingan` (and every `twingan` command) does not pay for torch
until it needs it."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "Translator": "twingan.infer.translator",
    "translate_faces": "twingan.infer.face_paste",
    "translate_video": "twingan.infer.video",
    "search_pictures": "twingan.search.embedding",
    "Index": "twingan.search.index",
    "evaluate": "twingan.evaluation.scores",
    "load_config": "twingan.config",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'twingan' has no attribute {name!r}")
