"""The public API: each public package's names are listed in docs/design.md, and the higher
layers use only them.

The names are pinned by docs/design.md's generated API section (`tests/test_apidoc.py`):
adding or removing a public name means rerunning `python -m rpjax._src.apidoc --write`.
Everything under `rpjax._src` is private. The direction of imports between layers is
`tests/test_layers.py`.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import types

import pytest

from rpjax._src import apidoc

ROOT = pathlib.Path(__file__).resolve().parents[1]

PUBLIC: list[str] = apidoc.public_modules()

# the layers above the engine, which must reach lower layers only through public names
HIGHER = ["rpjax/_src/attacks", "rpjax/_src/baselines", "rpjax/_src/experiments", "benchmarks"]


def test_the_public_packages_are_found_on_disk():
    assert PUBLIC == ["rpjax", "rpjax.attacks", "rpjax.baselines", "rpjax.data",
                      "rpjax.experiments", "rpjax.models", "rpjax.privacy", "rpjax.stats"]


@pytest.mark.parametrize("package", PUBLIC)
def test_public_names_are_unique_and_present(package):
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__), f"{package}.__all__ repeats a name"
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ lists {name!r}, which is missing"


@pytest.mark.parametrize("package", PUBLIC)
def test_public_names_live_in_one_place(package):
    """A public name that is not a module is defined under rpjax._src (the facade is thin)."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or home is None:
            continue
        if home in ("typing", "collections.abc"):  # a type alias, e.g. Callable[...]
            continue
        assert home.startswith("rpjax._src"), (package, name, home)


def test_no_public_module_is_shadowed():
    """`import rpjax.X as m` gives a module for every public subpackage, and no function of
    `rpjax` shadows a module of the same name."""
    for package in PUBLIC:
        assert isinstance(importlib.import_module(package), types.ModuleType)
    import rpjax

    for name in rpjax.__all__:
        if not isinstance(getattr(rpjax, name), types.ModuleType):
            assert not (ROOT / "rpjax" / f"{name}.py").exists(), name
            assert not (ROOT / "rpjax" / name).is_dir(), name


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) for every `rpjax...` module a file imports, `from A import b` giving
    A.b when A.b is a module and A otherwise."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("rpjax")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("rpjax"):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(sub)
                    found.append((node.lineno, sub))
                except ImportError:
                    found.append((node.lineno, node.module))
    return sorted(set(found))


def _allowed(module: str, own: str | None) -> bool:
    if module in PUBLIC:
        return True
    if module in ("rpjax._src.validate", "rpjax._src.durable"):
        return True  # argument checks and atomic file writes: no engine state
    return own is not None and (module == own or module.startswith(own + "."))


@pytest.mark.parametrize("folder", HIGHER)
def test_higher_layers_import_only_public_modules(folder):
    own = folder.replace("/", ".") if folder.startswith("rpjax/") else None
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in _imports(path):
            if not _allowed(module, own):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "private imports from a higher layer:\n" + "\n".join(offenders)


@pytest.mark.slow
def test_every_test_marked_slow_by_name_exists():
    """`conftest.MARKED_SLOW` names the few tests that cannot carry `@pytest.mark.slow` yet
    (a doctest, tests edited on other branches) by node id: a renamed test would silently
    drop out of it (and run in the fast set), so every id must name a collected test."""
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("_root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    out = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=--doctest-modules", "tests", "rpjax"],
                         capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    collected = {line.strip() for line in out.splitlines()}
    assert conftest.MARKED_SLOW <= collected, sorted(conftest.MARKED_SLOW - collected)
