"""The package's layers: imports inside src/tandem flow one way, never in a cycle, and never
reach for another module's private names.

Every import counts, also those inside functions (they run later, but the dependency is the
same) and under `if TYPE_CHECKING:`. A new top-level module or subpackage must be given a rank
in LAYERS before this test passes, which is where to decide what it may import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PKG = "tandem"
SRC = Path(__file__).resolve().parent.parent / "src"

# A module may import modules of its own rank or lower, never higher. Units are the top-level
# modules and subpackages of tandem (a subpackage's modules share its rank).
LAYERS: dict[str, int] = {
    # foundations: error types, the typed config, and the metric functions (metrics needs
    # nothing but errors, and config names the metrics when it checks train.valid_metric)
    "tandem.errors": 0, "tandem.config": 0, "tandem.metrics": 0,
    # data, and where the math runs (devices, threads, autocast)
    "tandem.data": 1, "tandem.cpu": 1,
    "tandem.model": 2,
    # what both training and decoding use without importing each other
    "tandem.checkpoint": 3, "tandem.evaluate": 3,
    "tandem.decode": 4,
    # the torch-free halves of the classifier's and tagger's verbs, for both backends
    "tandem.verbs": 4,
    # the server's limits and request schemas (pydantic), for both backends
    "tandem.requests": 4,
    # one module per structure: its data, model, loss, metrics, prediction and requests (the
    # searches are decode's; seq2seq's validation decodes the dev set)
    "tandem.structures": 5,
    # the lean runtime: exported models with numpy and onnxruntime (never torch, nor the
    # structures and model modules that import it)
    "tandem.runtime": 5,
    "tandem.train": 6,  # one loop that drives every structure
    # what people run: the package's public API, the command line (the tandem.cli package:
    # every tandem.cli.* module), server, demo, pictures
    "tandem": 7, "tandem.cli": 7, "tandem.serve": 7, "tandem.demo": 7, "tandem.bench": 7,
    "tandem.plots": 7, "tandem.__main__": 7, "tandem.pronounce": 7, "tandem.export": 7,
}


@dataclass(frozen=True)
class Import:
    """One import statement's dependency: `source` imports `target` (both module names)."""

    source: str
    target: str
    line: int


def module_files(src: Path = SRC, pkg: str = PKG) -> dict[str, Path]:
    """{module name: file} for every .py under src/pkg (a package is its __init__.py)."""
    mods = {}
    for f in sorted((src / pkg).rglob("*.py")):
        parts = f.relative_to(src).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _owner(name: str, mods: dict[str, Path]) -> str | None:
    """The module that defines dotted `name` (itself, or its longest module prefix)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _base(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module name of a `from ... import` (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def scan(mods: dict[str, Path], src: Path = SRC) -> tuple[list[Import], list[str]]:
    """Every import between modules of the package, and every use of another module's
    private name: `from m import _x`, or `_x` read off a name bound to module m by an
    import (`from tandem.decode import search` ... `search._norm`)."""
    imports, private = [], []
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        aliases: dict[str, str] = {}  # local name -> the tandem module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    target = _owner(a.name, mods)
                    if target is not None:
                        imports.append(Import(m, target, node.lineno))
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = _base(m, node, f.name == "__init__.py")
                for a in node.names:
                    full = f"{base}.{a.name}"
                    target = full if full in mods else _owner(base, mods)
                    if target is None:
                        continue
                    imports.append(Import(m, target, node.lineno))
                    if full in mods:
                        aliases[a.asname or a.name] = full
                    elif _private(a.name) and target != m:
                        private.append(f"{f.relative_to(src)}:{node.lineno}: {m} imports "
                                       f"{base}.{a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)
                    and aliases[node.value.id] != m):
                private.append(f"{f.relative_to(src)}:{node.lineno}: {m} uses "
                               f"{aliases[node.value.id]}.{node.attr}")
    return [i for i in imports if i.target != i.source], private


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to (tandem.data.vocab ->
    tandem.data)."""
    return ".".join(module.split(".")[:2])


def cycles(imports: list[Import]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set()).add(i.target)
        graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(imports: list[Import], mods: dict[str, Path], src: Path = SRC) -> list[str]:
    """Imports of a higher layer than the importer's, as 'file:line: a (rank) imports b
    (rank)'."""
    out = []
    for i in imports:
        a, b = LAYERS[unit(i.source)], LAYERS[unit(i.target)]
        if b > a:
            out.append(f"{mods[i.source].relative_to(src)}:{i.line}: {i.source} (layer {a}) "
                       f"imports {i.target} (layer {b})")
    return out


# --- the package ----------------------------------------------------------------------------

MODS = module_files()
IMPORTS, PRIVATE = scan(MODS)


def test_every_module_has_a_layer():
    missing = sorted({unit(m) for m in MODS} - set(LAYERS))
    assert not missing, f"give these a rank in LAYERS: {missing}"
    assert len(MODS) > 20 and len(IMPORTS) > 50  # the scan really saw the package


def test_no_import_cycles():
    assert cycles(IMPORTS) == []


def test_no_upward_imports():
    assert upward(IMPORTS, MODS) == []


def test_no_private_names_imported_across_modules():
    assert PRIVATE == []


def test_train_and_decode_share_checkpoint_and_evaluate_without_importing_each_other():
    edges = {(i.source, i.target) for i in IMPORTS}
    assert ("tandem.structures.translator", "tandem.checkpoint") in edges
    assert ("tandem.train.trainer", "tandem.checkpoint") in edges
    assert ("tandem.structures.seq2seq", "tandem.evaluate") in edges
    assert not [e for e in edges if unit(e[0]) == "tandem.decode" and unit(e[1]) == "tandem.train"]
    assert not [e for e in edges if unit(e[0]) == "tandem.structures"
                and unit(e[1]) in ("tandem.train", "tandem.serve", "tandem.cli")]


# --- the checks themselves, on a small made-up package --------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / "fake" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_files(tmp_path, "fake")


def test_the_scan_sees_imports_in_functions_relative_imports_and_private_names(tmp_path):
    mods = _fake(tmp_path, {
        "__init__.py": "",
        "low.py": "def f():\n    from fake.high import g\n",
        "high.py": "from . import low\nfrom .low import _hidden\nx = low._also_hidden\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from ..low import f\nimport fake.high as h\n",
    })
    imports, private = scan(mods, tmp_path)
    edges = {(i.source, i.target) for i in imports}
    assert edges == {("fake.low", "fake.high"), ("fake.high", "fake.low"),
                     ("fake.sub.deep", "fake.low"), ("fake.sub.deep", "fake.high")}
    assert cycles(imports) == [["fake.high", "fake.low"]]
    assert private == ["fake/high.py:2: fake.high imports fake.low._hidden",
                       "fake/high.py:3: fake.high uses fake.low._also_hidden"]


def test_an_upward_import_is_named_with_its_file_and_line(tmp_path, monkeypatch):
    mods = _fake(tmp_path, {"__init__.py": "", "a.py": "\nimport fake.b\n", "b.py": ""})
    monkeypatch.setitem(LAYERS, "fake.a", 0)
    monkeypatch.setitem(LAYERS, "fake.b", 1)
    imports, _ = scan(mods, tmp_path)
    assert upward(imports, mods, tmp_path) == [
        "fake/a.py:2: fake.a (layer 0) imports fake.b (layer 1)"]
    monkeypatch.setitem(LAYERS, "fake.b", 0)  # the same layer is allowed
    assert upward(imports, mods, tmp_path) == []


def test_private_means_a_leading_underscore_but_not_a_dunder():
    assert _private("_x") and _private("__mangled")
    assert not _private("__version__") and not _private("x_")
