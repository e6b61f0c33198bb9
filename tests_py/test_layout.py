"""The layout maps tell the truth: `src/lib.rs`, `python/fastkafka/__init__.py` and the docs'
layout page (docs/layout.md) name every module that exists, so a newcomer can find any concept
from them; a module added without its line on the maps fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT_PAGE = (ROOT / "docs" / "layout.md").read_text()


def rust_modules() -> list[Path]:
    """Every Rust source file of the crate, relative to src/ (lib.rs itself aside)."""
    return sorted(p.relative_to(ROOT / "src") for p in (ROOT / "src").rglob("*.rs"))


def test_the_crate_map_names_every_top_level_module() -> None:
    lib = (ROOT / "src" / "lib.rs").read_text()
    doc = "\n".join(line for line in lib.splitlines() if line.startswith("//!"))
    declared = re.findall(r"^(?:pub )?mod (\w+);", lib, re.M)
    assert len(declared) >= 10
    missing = [name for name in declared if not re.search(rf"`{name}`|\[`{name}`\]", doc)]
    assert not missing, f"src/lib.rs's map does not name {missing}"


def test_the_layout_page_names_every_rust_file() -> None:
    """A top-level file by its name; a file of a directory on that directory's row."""
    missing = []
    for path in rust_modules():
        if path.parent == Path("."):
            named = f"| `{path.name}` |" in LAYOUT_PAGE
        else:
            row = re.search(rf"^\| `{re.escape(str(path.parent))}/` \|.*$", LAYOUT_PAGE, re.M)
            named = row is not None and (path.name == "mod.rs" or f"`{path.name}`" in row[0])
        if not named:
            missing.append(str(path))
    assert not missing, f"docs/layout.md does not name {missing}"


def test_the_package_map_and_the_layout_page_name_every_python_module() -> None:
    package = ROOT / "python" / "fastkafka"
    init = (package / "__init__.py").read_text()
    docstring = init.split('"""')[1]
    modules = [*sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__"), "_core"]
    assert len(modules) >= 20
    for where, text in (("__init__.py's docstring", docstring), ("docs/layout.md", LAYOUT_PAGE)):
        missing = [
            m for m in modules if not re.search(rf"`(fastkafka\.)?{m}(\.\w+)*(\.pyi?)?`", text)
        ]
        assert not missing, f"{where} does not name {missing}"
