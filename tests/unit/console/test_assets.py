"""The console's files: no inline script or style anywhere (the CSP forbids them, and a page
that needed one would break), every script and stylesheet from this origin, and the vendored
chart library byte-identical to the pinned npm package (``scripts/console-assets``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.console.routes import PAGES
from gateway.console.static import read_all
from tests.support import REPO

STATIC = REPO / "gateway" / "console" / "static"
HTML = sorted(STATIC.glob("*.html"))
VENDORED = {
    "uPlot.esm.js": "dist/uPlot.esm.js",
    "uPlot.min.css": "dist/uPlot.min.css",
    "uPlot.LICENSE": "LICENSE",
}


MOVES_ON = {"signed-in"}  # a page that only moves on (meta refresh): no script at all


def test_every_page_has_its_script_and_one_shell_serves_them() -> None:
    assert {p.stem for p in HTML} == {"page", "login", *MOVES_ON}
    for name in [*PAGES, "login"]:
        assert (STATIC / "js" / f"{name}.js").is_file(), name
    shell = (STATIC / "page.html").read_text(encoding="utf-8")
    for name, title in PAGES.items():
        html = shell.format(page=name, title=title)
        assert f'src="/console/static/js/{name}.js"' in html
        assert f"<h1>{title}</h1>" in html


@pytest.mark.parametrize("page", HTML, ids=lambda p: p.name)
def test_a_page_has_no_inline_script_style_or_handler(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", text, re.S | re.I)
    assert scripts or page.stem in MOVES_ON, "a page loads its module"
    for attributes, body in scripts:
        assert body.strip() == "", "inline script"
        assert re.search(r'src="/console/static/[^"]+\.js"', attributes), attributes
    assert not re.search(r"<style\b", text, re.I)
    assert not re.search(r"\sstyle\s*=", text, re.I)
    assert not re.search(r"\son[a-z]+\s*=", text, re.I), "inline event handler"
    assert not re.search(r"javascript:", text, re.I)
    for url in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert url.startswith(("/console/", "data:")), f"{url} is not from this origin"


def test_scripts_build_no_markup_from_strings() -> None:
    """Pages are built with DOM calls: nothing parses strings into HTML (no XSS from data)."""
    for script in sorted((STATIC / "js").glob("*.js")):
        text = script.read_text(encoding="utf-8")
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in text, f"{script.name} uses {risky}"


def test_the_package_serves_every_file() -> None:
    served = read_all()
    assert "js/common.js" in served
    assert "vendor/uPlot.esm.js" in served
    assert served["console.css"].media_type == "text/css; charset=utf-8"


def test_the_vendored_chart_library_is_the_pinned_npm_package() -> None:
    package = json.loads((REPO / "console" / "package.json").read_text())
    pinned = package["dependencies"]["uplot"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "an exact version, not a range"
    lock = json.loads((REPO / "console" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/uplot"]["version"] == pinned
    installed = REPO / "console" / "node_modules" / "uplot"
    assert installed.is_dir(), "run: npm ci --prefix console (scripts/test does)"
    assert json.loads((installed / "package.json").read_text())["version"] == pinned
    for copy, original in VENDORED.items():
        vendored = (STATIC / "vendor" / copy).read_bytes()
        assert vendored == (installed / original).read_bytes(), (
            f"{copy}: run scripts/console-assets"
        )
