"""The documentation site (`make docs`): it builds offline in strict mode (a link to a missing
page or anchor fails the build), every page opens in headless Chromium with its links, anchors,
images and assets all there, and every Python example on it at least compiles (the complete
apps it shows are included from `examples/`, which `test_examples.py` runs)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from browser import headless

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Page(HTMLParser):
    """What a rendered page refers to, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()
        self.headings: list[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        for name in ("href", "src"):
            url = attributes.get(name)
            if url and tag in ("a", "img", "link", "script"):
                self.references.append((tag, url))
        self._in_h1 = tag == "h1"

    def handle_data(self, data: str) -> None:
        if self._in_h1 and data.strip():
            self.headings.append(data.strip())
            self._in_h1 = False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs` builds it, into a directory of its own."""
    built = tmp_path_factory.mktemp("site")
    guide_app = ROOT / "docs" / "guide-app"
    subprocess.run(
        [BIN / "fastkafka", "docs", "generate", "--root-path", guide_app,
         "examples.multi_cluster_example:app"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    done = subprocess.run(
        [BIN / "mkdocs", "build", "--strict", "--site-dir", built],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return built


def pages(site: Path) -> list[Path]:
    """The site's pages (404.html is for a server, its links are rooted at the server's /)."""
    return sorted(page for page in site.glob("*.html") if page.name != "404.html")


def test_every_page_in_the_nav_is_built(site: Path) -> None:
    built = {page.name for page in pages(site)}
    nav = re.findall(r"^  - [^:]+: (\S+)\.md$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert {f"{name}.html" for name in nav} <= built, built
    assert len(nav) >= 12


def test_every_page_opens_offline_with_its_links_anchors_images_and_assets(
    site: Path, tmp_path: Path
) -> None:
    rendered: dict[Path, Page] = {}
    for page in pages(site):
        dom = headless("--dump-dom", page.as_uri(), user_data=tmp_path / "profile")
        for _ in range(2):
            if dom.stdout.strip():
                break
            # Chromium sometimes exits without printing anything (its crash handler complains
            # about this machine's missing cpufreq files): that says nothing of the page.
            dom = headless("--dump-dom", page.as_uri(), user_data=tmp_path / "profile")
        parsed = Page()
        parsed.feed(dom.stdout.decode())
        assert parsed.headings, f"{page.name} rendered no title: {dom.stderr.decode()[-1000:]}"
        rendered[page] = parsed
    broken = []
    for page, parsed in rendered.items():
        for tag, url in parsed.references:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "mailto", "data", "javascript"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file() or target.stat().st_size == 0:
                broken.append(f"{page.name}: <{tag}> {url} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = rendered[target].ids if target in rendered else set()
                if target in rendered and parts.fragment not in ids:
                    broken.append(f"{page.name}: <{tag}> {url} (no such anchor)")
            elif tag == "img" and target.suffix == ".png":
                assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{url} is no PNG"
    assert not broken, "\n".join(broken)


def python_examples() -> list[tuple[str, str]]:
    """Every ```python block of the docs' pages and the README, as (where, code)."""
    found = []
    for source in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"^```python\n(.*?)^```", source.read_text(), re.M | re.S)
        found.extend((f"{source.name} #{i + 1}", code) for i, code in enumerate(blocks))
    return found


def test_every_python_example_compiles() -> None:
    examples = python_examples()
    assert len(examples) >= 8, examples
    for where, code in examples:
        if code.strip().startswith("--8<--"):
            included = ROOT / code.strip().split('"')[1]
            assert included.is_file(), f"{where} includes a missing {included}"
            code = included.read_text()
        try:
            compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as error:
            raise AssertionError(f"{where} does not compile: {error}\n{code}") from None
