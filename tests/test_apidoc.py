"""docs/design.md lists the public API exactly as the public modules' `__all__` define it.

The section between the markers is generated (`python -m rpjax._src.apidoc --write`); a
public name added, removed or re-documented without rerunning it fails here.
"""

from __future__ import annotations

import types

import pytest

from rpjax._src import apidoc


def test_design_md_api_section_is_the_generated_one():
    found = apidoc.current(apidoc.DESIGN.read_text())
    assert found is not None, f"{apidoc.DESIGN} has no API section markers"
    assert found == apidoc.section(), (
        "docs/design.md's API section differs from the public modules' __all__: run "
        "`python -m rpjax._src.apidoc --write`")


def test_every_public_name_is_listed_once_under_its_module():
    text = apidoc.section()
    for module in apidoc.public_modules():
        names = __import__(module, fromlist=["__all__"]).__all__
        assert len(set(names)) == len(names), f"{module}.__all__ repeats a name"
        block = text.split(f"### `{module}`\n", 1)[1].split("\n### ", 1)[0]
        listed = [line.split("`")[1].removesuffix("()") for line in block.splitlines()
                  if line.startswith("- `")]
        assert listed == list(names), module


def test_counts_are_the_lengths_of_all():
    per = apidoc.counts()
    assert list(per) == apidoc.public_modules()
    assert per["rpjax.stats"] == len(__import__("rpjax.stats", fromlist=["x"]).__all__)
    assert f"{sum(per.values())} public names in {len(per)} modules" in apidoc.section()


def test_write_replaces_only_the_section(tmp_path):
    path = tmp_path / "design.md"
    path.write_text(f"# t\n\nbefore\n\n{apidoc.BEGIN}\nstale\n{apidoc.END}\n\nafter\n")
    assert apidoc.write(path) is True
    text = path.read_text()
    assert text.startswith("# t\n\nbefore\n\n") and text.endswith(f"{apidoc.END}\n\nafter\n")
    assert apidoc.current(text) == apidoc.section()
    assert apidoc.write(path) is False  # already up to date


def test_write_refuses_a_file_without_markers(tmp_path):
    path = tmp_path / "design.md"
    path.write_text("# no section\n")
    with pytest.raises(ValueError, match="no API section"):
        apidoc.write(path)
    assert path.read_text() == "# no section\n"


def test_a_public_function_without_a_docstring_is_refused():
    facade = types.ModuleType("rpjax.fake")

    def undocumented():
        pass

    facade.undocumented = undocumented
    with pytest.raises(ValueError, match="rpjax.fake.undocumented has no docstring"):
        apidoc._entry(facade, "undocumented")


def test_the_command_prints_the_counts(capsys):
    assert apidoc.main(["--count"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split() == ["total", str(sum(apidoc.counts().values()))]
