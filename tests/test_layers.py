"""The import layering docs/architecture.md promises: every folder (or top-level module) of
`twingan` sits in one layer and imports only from its own layer or the ones below; no modules
import each other in a circle, directly or round several; `illust2vec` imports nothing of
`twingan`. A new folder or top-level module must be given a layer here, which is the point:
placing it is a decision, not an accident."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, tuple[str, ...]] = {
    "commands": ("__main__", "cli", "serve.command"),
    "services": ("train", "infer", "search", "evaluation", "serve"),
    "models and data": ("models", "data"),
    "primitives": ("__init__", "errors", "atomic", "config", "checkpoint", "bundled", "weights", "domains",
                   "distributed"),
}
TOP_LEVEL_MODULES = 10
"""Modules directly in twingan/ (the primitives, __init__ and __main__): more means a job without a folder."""
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


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except what sits under `if TYPE_CHECKING:`, which never runs."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(path: Path, package: str, root: Path = ROOT) -> set[str]:
    """Absolute dotted names of everything `path` imports when it runs, at the top or inside a
    function (relative imports resolved; annotations-only imports under TYPE_CHECKING left out)."""
    own = module_name(path, package, root).split(".")
    is_package = path.name == "__init__.py"
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
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
    (tmp_path / "twingan" / "infer").mkdir(parents=True)
    service = tmp_path / "twingan" / "infer" / "translator.py"
    service.write_text("from twingan.cli.options import SIZE\nfrom ..cli import main\n")
    model = tmp_path / "twingan" / "models" / "thing.py"
    model.write_text("from ..domains import DOMAINS\nfrom twingan import losses\n")
    assert upward_imports(service, tmp_path) == ["twingan.cli (commands)", "twingan.cli.options (commands)"]
    assert upward_imports(model, tmp_path) == []


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the twingan modules it imports (a package's own __init__ left out: importing
    twingan.infer.video runs twingan/infer/__init__.py first, which is no circle)."""
    paths = sorted((root / "twingan").rglob("*.py"))
    modules = {module_name(p, "twingan", root) for p in paths}
    graph = {}
    for path in paths:
        own = module_name(path, "twingan", root)
        targets = {inside_twingan(name) for name in imported(path, "twingan", root)}
        graph[own] = {t for t in targets if t in modules and t != own and not own.startswith(t + ".")
                      and t != "__init__"}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, f"modules that import each other: {found}"


def test_the_circle_check_sees_a_circle_and_ignores_type_checking_imports(tmp_path: Path) -> None:
    (tmp_path / "twingan" / "infer").mkdir(parents=True)
    (tmp_path / "twingan" / "infer" / "__init__.py").write_text("")
    (tmp_path / "twingan" / "infer" / "a.py").write_text("def f():\n    from twingan.infer.c import x\n")
    (tmp_path / "twingan" / "infer" / "b.py").write_text("from twingan.infer import a\n")
    (tmp_path / "twingan" / "infer" / "c.py").write_text("from .b import y\n")
    (tmp_path / "twingan" / "infer" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from twingan.infer.e import T\n")
    (tmp_path / "twingan" / "infer" / "e.py").write_text("from twingan.infer.d import U\n")
    assert circles(import_graph(tmp_path)) == [["infer.a", "infer.b", "infer.c"]]


def test_the_top_level_holds_only_primitives() -> None:
    top = sorted(p.stem for p in (ROOT / "twingan").glob("*.py"))
    assert len(top) <= TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("path", sorted((ROOT / "illust2vec").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_illust2vec_stands_alone(path: Path) -> None:
    names = [n for n in imported(path, "illust2vec") if inside_twingan(n) is not None]
    assert not names, f"{path.relative_to(ROOT)} imports {names}"
