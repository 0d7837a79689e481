"""The import layering README.md's "Architecture" section promises: every module of `twingan`
sits in one layer and imports only from its own layer or the ones below; `illust2vec` imports
nothing of `twingan`. A new module must be given a layer here, which is the point: placing it
is a decision, not an accident."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, tuple[str, ...]] = {
    "commands": ("__main__", "cli", "options", "prepare", "translate_files", "evaluate", "export",
                 "neighbors", "serve.command"),
    "services": ("training", "run_log", "translator", "evaluation", "face_rate", "face_paste",
                 "embedding", "index", "config_reference", "face_track", "video", "serve"),
    "models and data": ("models", "data", "losses", "schedule", "stepping"),
    "primitives": ("__init__", "errors", "atomic", "config", "checkpoint", "bundled", "weights", "metrics",
                   "faces", "domains", "distributed"),
}
RANK = {layer: rank for rank, layer in enumerate(reversed(LAYERS))}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside twingan ("models.twingan.recipe" -> models)."""
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"twingan.{module} has no layer in tests/test_layers.py LAYERS")


def module_name(path: Path, package: str, root: Path = ROOT) -> str:
    parts = path.relative_to(root / package).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported(path: Path, package: str, root: Path = ROOT) -> set[str]:
    """Absolute dotted names of everything `path` imports (relative imports resolved)."""
    own = module_name(path, package, root).split(".")
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [package, *own][: len(own) + 1 - node.level + is_package]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            if (root / module.replace(".", "/")).is_dir():
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def twingan_modules() -> list[Path]:
    return sorted((ROOT / "twingan").rglob("*.py"))


def inside_twingan(name: str) -> str | None:
    """"twingan.models.family" -> "models.family"; None for names outside the package."""
    if name == "twingan":
        return "__init__"
    if name.startswith("twingan."):
        return name.removeprefix("twingan.")
    return None


def upward_imports(path: Path, root: Path = ROOT) -> list[str]:
    """What `path` (a module of root/twingan) imports from a layer above its own."""
    own = layer_of(module_name(path, "twingan", root))
    upward = []
    for name in imported(path, "twingan", root):
        inner = inside_twingan(name)
        if inner is None or (path.name == "__init__.py" and inner == "__init__"):
            continue
        try:
            target = layer_of(inner)
        except AssertionError:
            continue
        if RANK[target] > RANK[own]:
            upward.append(f"{name} ({target})")
    return sorted(upward)


@pytest.mark.parametrize("path", twingan_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_own_layer_or_lower(path: Path) -> None:
    upward = upward_imports(path)
    assert not upward, f"{path.relative_to(ROOT)} imports upwards: {', '.join(upward)}"


def test_every_module_has_a_layer() -> None:
    for path in twingan_modules():
        layer_of(module_name(path, "twingan"))


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule itself can fail: a service importing a command, relatively or not, is caught;
    a model importing a primitive is not."""
    (tmp_path / "twingan" / "models").mkdir(parents=True)
    service = tmp_path / "twingan" / "translator.py"
    service.write_text("from twingan.options import SIZE\nfrom .cli import main\n")
    model = tmp_path / "twingan" / "models" / "thing.py"
    model.write_text("from ..domains import DOMAINS\nfrom twingan import losses\n")
    assert upward_imports(service, tmp_path) == ["twingan.cli (commands)", "twingan.options (commands)"]
    assert upward_imports(model, tmp_path) == []


@pytest.mark.parametrize("path", sorted((ROOT / "illust2vec").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_illust2vec_stands_alone(path: Path) -> None:
    names = [n for n in imported(path, "illust2vec") if inside_twingan(n) is not None]
    assert not names, f"{path.relative_to(ROOT)} imports {names}"
