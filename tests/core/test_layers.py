"""Layers point down: no module imports from a layer above its own (the README's development
section lists the layers). Imports needed only for type annotations (``if TYPE_CHECKING:``)
are not dependencies and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    (
        "runner.errors",
        "runner.paths",
        "runner.logs",
        "runner.versions",
        "runner.hashing",
        "runner.proc",
        "runner.registry",
        "runner.dataset",
    ),
    (
        "runner.recipe.fields",
        "runner.recipe.yamlfile",
        "runner.recipe.problems",
        "runner.recipe.walk",
        "runner.run.context",
    ),
    (
        "runner.llamacpp",
        "runner.models",
        "runner.prompt",
        "runner.grammars",
        "runner.languages",
        "runner.compute",
    ),
    ("runner.data", "runner.train", "runner.export", "runner.eval", "runner.sweep.section"),
    ("runner.recipe",),
    ("runner.run",),
    ("runner.pipeline", "runner.doctor", "runner.compute.dispatch", "runner.sweep"),
    ("runner.serve",),
    ("runner.commands", "runner.cli"),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or module.startswith(prefix + ".")
            if named and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return best[0] if best else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every runner import in a file, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                skipped.add(id(inner))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            for alias in node.names:
                name = f"{base}.{alias.name}" if base == "runner" else base
                if name.startswith("runner"):
                    found.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("runner"))
    return found


def test_every_module_has_a_layer():
    missing = []
    for path in sorted((ROOT / "runner").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module != "runner" and layer_of(module) is None:
            missing.append(module)
    assert missing == []


def test_no_import_points_up():
    upward = []
    for path in sorted((ROOT / "runner").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = layer_of(module)
        for line, target in imports(path):
            theirs = layer_of(target)
            if theirs is not None and own is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} -> {target}")
    assert upward == []


def test_only_axolotl_imports_the_training_plugin():
    """The plugin imports Axolotl (about 12 s): Axolotl loads it by name in its own process
    (``runner.train.handshake.PLUGIN``); no runner module may import it and pay that again."""
    importers = []
    for path in sorted((ROOT / "runner").rglob("*.py")):
        if path == ROOT / "runner" / "train" / "plugin.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            else:
                continue
            if "runner.train.plugin" in names:
                importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert importers == []


def test_the_plugin_path_names_the_plugin_class():
    import importlib

    from runner.train.handshake import PLUGIN

    module, name = PLUGIN.rsplit(".", 1)
    assert module == "runner.train.plugin"
    source = (ROOT / "runner" / "train" / "plugin.py").read_text(encoding="utf-8")
    assert f"class {name}(BasePlugin)" in source
    assert importlib.util.find_spec(module) is not None
