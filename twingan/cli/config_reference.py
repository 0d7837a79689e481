"""The configuration reference: every key of each model family with its type, default, range and meaning.

Why generated: twingan/config.py is the one place the keys are defined (types, pydantic ranges, Literal
choices, and the docstring after each field). docs/config.md and `twingan config PRESET --explain` are
rendered from it here, so neither can drift from what a run accepts; a test compares docs/config.md
with `reference_markdown()`, and `python tools/write_config_reference.py` rewrites it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal

from twingan import config
from twingan.atomic import write_text

REFERENCE_PATH = Path(__file__).resolve().parents[2] / "docs" / "config.md"
WRITER = "python tools/write_config_reference.py"
_LIMITS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
"""pydantic.Field's bounds, as the annotated_types objects in its metadata name them."""
_FLOAT_DIGITS = 10
"""Floats longer than this (32 / 255) are rounded for reading; `twingan config` prints them exactly."""
_LONG_LIST = 4
"""Lists longer than this show their first items and their length (the tag list has 49)."""


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """One config key as a reader needs it: where it lives, what it takes, what it is for."""

    key: str
    """Dotted key, as a preset nests it and an override spells it: `train.lr`."""
    section: str
    field: str
    type: str
    range: str
    """Accepted values beyond the type: bounds, or the choices of a Literal; empty if any."""
    meaning: str


def family_keys(family: type) -> list[tuple[str, str, list[KeyDoc]]]:
    """(section name, section docstring, its keys) for each section of a family's config class."""
    out = []
    for section, section_cls in typing.get_type_hints(family).items():
        hints = typing.get_type_hints(section_cls, include_extras=True)
        keys = []
        for f in dataclasses.fields(section_cls):
            kind, limits = _type_and_range(hints[f.name])
            keys.append(KeyDoc(f"{section}.{f.name}", section, f.name, kind, limits, _meaning(section_cls, f.name)))
        out.append((section, _one_line(section_cls.__doc__ or ""), keys))
    return out


def reference_markdown() -> str:
    """docs/config.md: one table per section of each family in `config.MODELS`, with the family's defaults."""
    parts = [
        "# Configuration reference\n",
        f"<!-- Generated from twingan/config.py by `{WRITER}`; edit the docstrings there, not this file. -->\n",
        "Every key a preset (`configs/*.yaml`, or any YAML file) or a `section.key=value` override may set. "
        "`model.name` picks the model family, and with it the defaults and the keys the `model`, `loss` and "
        "`train` sections accept; a preset only states what differs from its family's defaults. A value "
        "outside its type or range is refused with one line naming the key and where it came from. "
        "`twingan config PRESET --explain` prints these tables for one preset, with its values and where "
        "each came from.\n",
    ]
    for name, family in config.MODELS.items():
        defaults = family()
        parts.append(f"## `model.name: {name}`\n\n{_one_line(family.__doc__ or '')}\n")
        for section, doc, keys in family_keys(family):
            rows = [[f"`{k.key}`", k.type, f"`{format_value(_value(defaults, k))}`", k.range, k.meaning]
                    for k in keys]
            parts.append(f"### `{section}` ({name})\n\n{doc}\n\n"
                         + _table(["key", "type", "default", "range", "meaning"], rows))
    return "\n".join(parts)


def explain_markdown(cfg: config.RunConfig, sources: dict[str, str], title: str) -> str:
    """The reference's tables for one resolved config: every key's value, and for a value that is not
    its family's default that default, plus the preset or override that set it (`sources`, as returned
    by `config.load_config_with_sources`)."""
    family = type(cfg)
    defaults = family()
    parts = [f"# {title}: `model.name: {cfg.model.name}`\n",
             f"{_one_line(family.__doc__ or '')} `*` marks a value that differs from the family's default "
             "(shown beside it); \"set by\" names the preset or override that gave a value. All keys and "
             "families: docs/config.md.\n"]
    for section, doc, keys in family_keys(family):
        rows = []
        for k in keys:
            value, default = _value(cfg, k), _value(defaults, k)
            changed = value != default
            given = dict.fromkeys(src for leaf, src in sources.items() if leaf == k.key or leaf.startswith(f"{k.key}."))
            rows.append([f"`{k.key}`" + (" *" if changed else ""), f"`{format_value(value)}`",
                         f"`{format_value(default)}`" if changed else "", "; ".join(given),
                         k.type, k.range, k.meaning])
        parts.append(f"## `{section}`\n\n{doc}\n\n"
                     + _table(["key", "value", "default", "set by", "type", "range", "meaning"], rows))
    return "\n".join(parts)


def write_reference(path: Path = REFERENCE_PATH) -> None:
    """Rewrite docs/config.md atomically, so a reader or the test never sees half a file."""
    write_text(path, reference_markdown())


def format_value(value: Any) -> str:
    """A value as a preset would write it (YAML flow style), long lists shortened to their head."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        exact = repr(value)
        return exact if len(exact) <= _FLOAT_DIGITS else format(value, f".{_FLOAT_DIGITS - 4}g")
    if isinstance(value, list):
        head = ", ".join(format_value(v) for v in value[:_LONG_LIST])
        return f"[{head}, ... ({len(value)} in all)]" if len(value) > _LONG_LIST else f"[{head}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _value(cfg: Any, key: KeyDoc) -> Any:
    return getattr(getattr(cfg, key.section), key.field)


def _type_and_range(hint: Any) -> tuple[str, str]:
    """Reader's spelling of a field's type, and what pydantic accepts beyond it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        kind, _ = _type_and_range(args[0])
        bounds = [f"{symbol} {format_value(getattr(m, attr))}" for info in args[1:] for m in info.metadata
                  for attr, symbol in _LIMITS if hasattr(m, attr)]
        return kind, ", ".join(bounds)
    if origin is Literal:
        return type(args[0]).__name__, " / ".join(f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        inner = [_type_and_range(a) for a in args if a is not type(None)]
        nullable = " or null" if type(None) in args else ""
        return " or ".join(kind for kind, _ in inner) + nullable, "; ".join(r for _, r in inner if r)
    if origin is dict:
        key_kind, _ = _type_and_range(args[0])
        value_kind, value_range = _type_and_range(args[1])
        return f"dict[{key_kind}, {value_kind}]", f"values {value_range}" if value_range else ""
    if origin is list:
        item_kind, item_range = _type_and_range(args[0])
        return f"list[{item_kind}]", f"items {item_range}" if item_range else ""
    return hint.__name__, ""


@functools.cache
def _field_docstrings() -> dict[tuple[str, str], str]:
    """(class name, field name) -> the string literal right after the field in config.py's source.

    Python keeps no such attribute docstrings at run time, so they are read from the syntax tree."""
    out = {}
    for node in ast.walk(ast.parse(inspect.getsource(config))):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt, after in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                out[node.name, stmt.target.id] = _one_line(after.value.value)
    return out


def _meaning(section_cls: type, name: str) -> str:
    """The field's docstring, from the nearest class that has one (CycleGAN's train section redefines
    some of LoopConfig's fields with other defaults only)."""
    docs = _field_docstrings()
    return next((docs[c.__name__, name] for c in section_cls.__mro__ if (c.__name__, name) in docs), "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"
    return line(header) + line(["---"] * len(header)) + "".join(line(r) for r in rows)
