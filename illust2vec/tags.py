"""The 1539 illust2vec tags in output order, and their four categories."""

from __future__ import annotations

import functools
import json
from importlib import resources

CATEGORIES: dict[str, slice] = {
    "general": slice(0, 512),
    "character": slice(512, 1024),
    "copyright": slice(1024, 1536),
    "rating": slice(1536, 1539),
}


@functools.cache
def tag_list() -> tuple[str, ...]:
    """The published tag list (illust2vec_tag_list.json), shipped with the package."""
    text = resources.files("illust2vec").joinpath("tag_list.json").read_text(encoding="utf-8")
    return tuple(json.loads(text))


def tag_indices(names: list[str] | tuple[str, ...]) -> list[int]:
    """Output positions of `names`; an unknown tag is refused by name, with close matches."""
    index = {name: i for i, name in enumerate(tag_list())}
    unknown = [name for name in names if name not in index]
    if unknown:
        hints = []
        for name in unknown:
            words = name.split()
            close = [t for t in tag_list() if any(w in t.split() for w in words)][:5]
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise KeyError(f"not illust2vec tags: {'; '.join(hints)}")
    return [index[name] for name in names]


def category_of(index: int) -> str:
    for name, span in CATEGORIES.items():
        if span.start <= index < span.stop:
            return name
    raise IndexError(f"tag index {index} is outside the 1539 outputs")
