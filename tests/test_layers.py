"""The import graph of `rpjax/`: no cycle, and no import from a lower layer to a higher one.

Every module under `rpjax/` is parsed with `ast`; its imports of `rpjax...` (at module level,
inside functions and under `if TYPE_CHECKING`) are the graph's edges, `from A import b` giving
`A.b` when that is a module file and `A` otherwise. Each private module belongs to the layer
of its first name under `rpjax._src` (`LAYERS`, low to high). A public facade
(`rpjax/__init__.py`, `rpjax/stats.py`, `rpjax/X/__init__.py`) sits in the layer of the
highest module it re-exports, so a module may import the facade of its own layer or of a
lower one. Modules of one layer may import each other; the cycle check covers them.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, ...]] = [
    # `durable` (atomic writes) imports nothing from rpjax and every layer that writes a file
    # uses it (docs/design.md, "Files on disk"), so it sits with the argument checks
    ("validate", "stats", "confseq", "noise", "durable"),
    ("plan",),
    ("smoothing",),
    ("sequential",),
    ("decision",),
    ("certify",),
    ("privacy",),
    ("attacks", "baselines", "models", "data"),
    ("experiments",),
    ("runs",),
    ("cli", "apidoc"),
]
"""The layers of `rpjax._src`, low to high (by the first name under `rpjax._src`)."""

KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}
"""Edges left out of the cycle check, each with its reason. Each must still exist (else the
test asks to delete the entry), so an exception cannot outlive the cycle it excuses."""


def module_graph(root: pathlib.Path, package: str = "rpjax") -> dict[str, set[str]]:
    """`{module: {imported rpjax modules}}` for every `.py` file under `root / package`."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        files[".".join(parts)] = (path, is_package)

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in files.items():
        edges: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges |= {resolve(a.name) for a in node.names
                          if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package
                    anchor = module.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in files else resolve(base))
        edges.discard(None)
        edges.discard(module)
        graph[module] = edges  # type: ignore[assignment]
    return graph


def _is_facade(module: str, package: str = "rpjax") -> bool:
    return module == package or not module.startswith(f"{package}._src")


def layers(graph: dict[str, set[str]], package: str = "rpjax") -> dict[str, int]:
    """Each module's layer index (`LAYERS`); facades: the highest layer they import."""
    rank = {name: i for i, group in enumerate(LAYERS) for name in group}
    out: dict[str, int] = {}
    unknown = []
    for module in graph:
        if _is_facade(module, package):
            continue
        rest = module.split(".")[2:]  # below "<package>._src"
        if not rest:
            out[module] = 0  # the empty `_src/__init__.py`
        elif rest[0] in rank:
            out[module] = rank[rest[0]]
        else:
            unknown.append(module)
    assert not unknown, f"modules in no layer (add them to LAYERS in {__file__}): {unknown}"
    facades = [m for m in graph if _is_facade(m, package)]
    for _ in facades:  # facades may import facades: settle in at most len(facades) rounds
        for f in facades:
            out[f] = max((out.get(m, 0) for m in graph[f]), default=0)
    return out


def upward_edges(graph: dict[str, set[str]], package: str = "rpjax") -> list[str]:
    """`"a (layer i) imports b (layer j > i)"` for every edge to a higher layer."""
    level = layers(graph, package)
    names = [" / ".join(g) for g in LAYERS]
    return sorted(f"{a} ({names[level[a]]}) imports {b} ({names[level[b]]})"
                  for a, edges in graph.items() for b in edges if level[b] > level[a])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path `[a, b, ..., a]`, or None if the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_goes_from_a_lower_layer_to_a_higher_one():
    offenders = upward_edges(module_graph(ROOT))
    assert not offenders, "imports from a lower layer to a higher one:\n" + "\n".join(offenders)


def test_the_import_graph_has_no_cycle():
    graph = module_graph(ROOT)
    stale = [edge for edge in KNOWN_CYCLE_EDGES if edge[1] not in graph.get(edge[0], ())]
    assert not stale, f"these KNOWN_CYCLE_EDGES no longer exist; delete them: {stale}"
    for a, b in KNOWN_CYCLE_EDGES:
        graph[a] = graph[a] - {b}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_is_in_a_layer():
    graph = module_graph(ROOT)
    level = layers(graph)
    assert set(level) == set(graph)
    assert level["rpjax.stats"] == 0 and level["rpjax"] == level["rpjax._src.certify"]
    assert level["rpjax.experiments"] == level["rpjax._src.experiments.reproduce"]


def _tree(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.fixture
def bad_tree(tmp_path):
    """validate imports certify (upward, inside a function); certify and plan import each
    other (a cycle: certify -> plan is downward, plan -> certify upward)."""
    return _tree(tmp_path, {
        "rpjax/__init__.py": "from rpjax._src.certify import certify\n",
        "rpjax/_src/__init__.py": "",
        "rpjax/_src/validate.py": "def f():\n    from rpjax._src import certify\n",
        "rpjax/_src/plan.py": "import rpjax._src.certify\n",
        "rpjax/_src/certify.py": "from rpjax._src.plan import Fixed\n",
    })


def test_the_checks_find_an_upward_import_and_a_cycle(bad_tree):
    graph = module_graph(bad_tree)
    assert graph["rpjax._src.validate"] == {"rpjax._src.certify"}
    assert graph["rpjax._src.certify"] == {"rpjax._src.plan"}
    assert upward_edges(graph) == [
        "rpjax._src.plan (plan) imports rpjax._src.certify (certify)",
        "rpjax._src.validate (validate / stats / confseq / noise / durable) imports "
        "rpjax._src.certify (certify)",
    ]
    assert find_cycle(graph) == ["rpjax._src.certify", "rpjax._src.plan", "rpjax._src.certify"]
    del graph["rpjax._src.plan"]
    assert find_cycle(graph) is None


def test_a_module_outside_every_layer_is_reported(tmp_path):
    graph = module_graph(_tree(tmp_path, {"rpjax/_src/newthing.py": ""}))
    with pytest.raises(AssertionError, match="rpjax._src.newthing"):
        layers(graph)
