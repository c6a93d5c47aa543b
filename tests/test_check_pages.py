"""tools/check_pages.py on a tiny fake site: it passes when the site is sound and fails, with the
right message, when a page is missing, an image is broken, a script logs or throws an error, a
title is wrong, or a notebook chapter has no figure.

Needs headless Chromium, ChromeDriver and selenium (``.ci/run`` installs them); skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

spec = importlib.util.spec_from_file_location("check_pages", ROOT / "tools" / "check_pages.py")
check_pages = importlib.util.module_from_spec(spec)
sys.modules.setdefault("check_pages", check_pages)  # dataclasses look their module up there
spec.loader.exec_module(check_pages)

_missing = [p for p in (check_pages.CHROMIUM, check_pages.CHROMEDRIVER) if not Path(p).is_file()]
if importlib.util.find_spec("selenium") is None:
    _missing.append("the selenium package")
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"browser check needs {', '.join(_missing)} "
    "(apt-get install chromium chromium-driver; pip install selenium)",
)


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of the given size (pure Python)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x20\x60\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def html(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        f"<title>{title}</title></head>\n<body>{body}</body></html>\n"
    )


def notebook(*markdown: str) -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    cells.append({"cell_type": "code", "metadata": {}, "source": "print(1)", "outputs": [], "execution_count": None})
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def book(tmp_path):
    """Sources (_toc.yml, index.md, ch1.ipynb, ch2.md) and their 'built' site."""
    src, site = tmp_path / "src", tmp_path / "site"
    (site / "_images").mkdir(parents=True)
    src.mkdir()
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: ch1\n  - file: ch2\n")
    (src / "index.md").write_text("---\nfront: matter\n---\n\n# Home *page*\n\nWelcome.\n")
    (src / "ch1.ipynb").write_text(notebook("Some text before.\n", "# Chapter one: `xrd` & co\n\nA figure follows."))
    (src / "ch2.md").write_text("```bash\n# not a heading\n```\n\n# Chapter two\n")
    (site / "_images" / "fig.png").write_bytes(png())
    (site / "index.html").write_text(html("Home page &#8212; Fake book", "<h1>Home page</h1>"))
    (site / "ch1.html").write_text(
        html(
            "1. Chapter one: xrd &amp; co &#8212; Fake book",
            "<h1>Chapter one</h1><img src='_images/fig.png' alt='fig'>",
        )
    )
    (site / "ch2.html").write_text(html("2. Chapter two &#8212; Fake book", "<h1>Chapter two</h1>"))
    return tmp_path


def run(book: Path, capsys) -> tuple[int, str]:
    shots = book / "shots"
    code = check_pages.main(
        ["--site", str(book / "site"), "--toc", str(book / "src" / "_toc.yml"), "--screenshots", str(shots)]
    )
    return code, capsys.readouterr().out


def test_titles_from_sources(book):
    assert check_pages.source_title(book / "src" / "index.md") == "Home *page*"
    assert check_pages.source_title(book / "src" / "ch1.ipynb") == "Chapter one: `xrd` & co"
    assert check_pages.source_title(book / "src" / "ch2.md") == "Chapter two"
    assert check_pages.plain_text("{doc}`Loss <landscapes>` -- *rough*") == "loss - rough"


def test_sound_site_passes(book, capsys):
    code, out = run(book, capsys)
    assert code == 0, out
    for name in ("index", "ch1", "ch2"):
        assert f"PASS  {name}:" in out
        shot = book / "shots" / f"{name}.png"
        assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    assert "1 image," in out and "all 3 pages passed" in out


def test_missing_page_fails(book, capsys):
    (book / "site" / "ch2.html").unlink()
    code, out = run(book, capsys)
    assert code == 1
    assert "FAIL  ch2: page not found: ch2.html is missing from the site" in out
    assert "PASS  ch1:" in out and "1 of 3 pages failed" in out


@pytest.mark.parametrize("how", ["missing file", "zero-byte png"])
def test_broken_image_fails(book, capsys, how):
    page = book / "site" / "ch1.html"
    if how == "missing file":
        page.write_text(page.read_text().replace("_images/fig.png", "_images/gone.png"))
        bad = "gone.png"
    else:
        (book / "site" / "_images" / "fig.png").write_bytes(b"")
        bad = "fig.png"
    code, out = run(book, capsys)
    assert code == 1
    assert "FAIL  ch1:" in out
    line = next(line for line in out.splitlines() if line.startswith("  ch1: broken image"))
    assert line.endswith(bad)


@pytest.mark.parametrize(
    "script, message",
    [
        ("console.error('boom from ch2')", "boom from ch2"),
        ("throw new Error('kaboom')", "Uncaught Error: kaboom"),
    ],
)
def test_console_error_fails(book, capsys, script, message):
    page = book / "site" / "ch2.html"
    page.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    code, out = run(book, capsys)
    assert code == 1
    assert "FAIL  ch2: console error:" in out
    assert any(line.startswith("  ch2: console error:") and message in line for line in out.splitlines()), out


def test_wrong_title_fails(book, capsys):
    (book / "src" / "ch2.md").write_text("# Chapter deux\n")
    code, out = run(book, capsys)
    assert code == 1
    assert "does not contain the chapter title 'Chapter deux'" in out


def test_notebook_chapter_without_figure_fails(book, capsys):
    page = book / "site" / "ch1.html"
    page.write_text(page.read_text().replace("<img src='_images/fig.png' alt='fig'>", ""))
    code, out = run(book, capsys)
    assert code == 1
    assert "FAIL  ch1: no figure" in out
    check_pages.NO_FIGURE_PAGES["ch1"] = "a test: this chapter is text only"
    try:
        code, out = run(book, capsys)
    finally:
        del check_pages.NO_FIGURE_PAGES["ch1"]
    assert code == 0, out


def test_no_site_is_a_usage_error(book, capsys):
    shutil.rmtree(book / "site")
    code = check_pages.main(["--site", str(book / "site"), "--toc", str(book / "src" / "_toc.yml")])
    assert code == 2
    assert "build the book first" in capsys.readouterr().err
