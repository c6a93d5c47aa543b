"""tools/check_pages.py on a tiny fake site: it passes when the site is sound and fails, with the
right message, when a page is missing, an image is broken, a script logs or throws an error, a
title is wrong, a notebook chapter has no figure, a page requests another host or a resource that
is not there, raw TeX is left as text or formulas are not typeset, a table or image is wider than
the text column, or a notebook page offers no executed notebook for download.

Needs headless Chromium, ChromeDriver and selenium (``.ci/run`` installs them); skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import re
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


def html(title: str, body: str, head: str = "") -> str:
    """A page laid out like the theme's: the text in an ``article.bd-article`` column of 700 px."""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        f"<title>{title}</title>{head}</head>\n<body><main><article class='bd-article' "
        f"style='width: 700px; padding: 0 20px'>{body}</article></main></body></html>\n"
    )


DOWNLOAD = (
    "<div class='dropdown dropdown-download-buttons'><ul class='dropdown-menu'><li>"
    "<a href='_sources/ch1.ipynb' class='btn btn-download-source-button'>.ipynb</a></li></ul></div>"
)


def notebook(*markdown: str, outputs: bool = False) -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    out = [{"output_type": "stream", "name": "stdout", "text": "1\n"}] if outputs else []
    cells.append({"cell_type": "code", "metadata": {}, "source": "print(1)", "outputs": out, "execution_count": None})
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def book(tmp_path):
    """Sources (_toc.yml, index.md, ch1.ipynb, ch2.md) and their 'built' site."""
    src, site = tmp_path / "src", tmp_path / "site"
    (site / "_images").mkdir(parents=True)
    src.mkdir()
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: ch1\n  - file: ch2\n")
    (src / "index.md").write_text("---\nfront: matter\n---\n\n# Home *page*\n\nWelcome.\n")
    chapter_one = ("Some text before.\n", "# Chapter one: `xrd` & co\n\nA figure follows.")
    (src / "ch1.ipynb").write_text(notebook(*chapter_one))
    (site / "_sources").mkdir()
    (site / "_sources" / "ch1.ipynb").write_text(notebook(*chapter_one, outputs=True))
    (src / "ch2.md").write_text("```bash\n# not a heading\n```\n\n# Chapter two\n")
    (site / "_images" / "fig.png").write_bytes(png())
    (site / "index.html").write_text(html("Home page &#8212; Fake book", "<h1>Home page</h1>"))
    (site / "ch1.html").write_text(
        html(
            "1. Chapter one: xrd &amp; co &#8212; Fake book",
            f"{DOWNLOAD}<h1>Chapter one</h1><img src='_images/fig.png' alt='fig'>",
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


def add_to_page(book: Path, name: str, body: str = "", head: str = "") -> None:
    page = book / "site" / f"{name}.html"
    text = page.read_text().replace("</article>", f"{body}</article>").replace("</head>", f"{head}</head>")
    page.write_text(text)


def failures_of(out: str, name: str) -> list[str]:
    return [line[len(f"  {name}: ") :] for line in out.splitlines() if line.startswith(f"  {name}: ")]


def test_request_to_another_host_fails(book, capsys):
    # .invalid never resolves (RFC 2606): the same on a machine online and offline
    add_to_page(
        book, "ch2", head="<script src='https://cdn.example.invalid/npm/mathjax@3/es5/tex-mml-chtml.js'></script>"
    )
    code, out = run(book, capsys)
    assert code == 1
    failures = failures_of(out, "ch2")
    assert any(
        f.startswith("request to another host: https://cdn.example.invalid/npm/mathjax@3/es5/tex-mml-chtml.js")
        for f in failures
    ), out
    assert not any(f.startswith("console error:") and "Failed to load resource" in f for f in failures), out
    assert "the pages request 1 resource(s) from other hosts (cdn.example.invalid)" in out


def test_failed_local_resource_fails(book, capsys):
    add_to_page(book, "ch2", head="<link rel='stylesheet' href='_static/gone.css'>")
    code, out = run(book, capsys)
    assert code == 1
    assert "failed to load /_static/gone.css: HTTP 404" in failures_of(out, "ch2"), out


def test_raw_tex_fails(book, capsys):
    add_to_page(
        book,
        "ch2",
        "<p>inline \\(E = mc^2\\) and</p><div>$$a^2 + b^2$$</div>"
        "<pre>code may say \\(x\\) and $$</pre><code>\\[y\\]</code>",
    )
    code, out = run(book, capsys)
    assert code == 1
    raw = [f for f in failures_of(out, "ch2") if f.startswith("raw TeX left as text:")]
    assert len(raw) == 2, out  # the two in the text; the ones in code blocks are fine
    assert "E = mc^2" in raw[0] and "a^2 + b^2" in raw[1]


def test_formulas_not_typeset_fail(book, capsys):
    add_to_page(book, "ch2", "<p><span class='math notranslate nohighlight'>\\(x^2\\)</span></p>")
    code, out = run(book, capsys)
    assert code == 1
    failures = failures_of(out, "ch2")
    assert any(f.startswith("MathJax typeset nothing: 1 formulas in the page, no mjx-container") for f in failures)
    assert any(f.startswith("raw TeX left as text:") for f in failures)


def test_wide_tables_and_images_are_all_listed(book, capsys):
    wide_table = (
        "<div style='overflow-x: auto'><table><thead><tr><th></th><th>alpha</th><th>beta</th></tr></thead>"
        "<tbody><tr><td>1</td><td style='min-width: {w}px'>x</td><td>y</td></tr></tbody></table></div>"
    )
    add_to_page(
        book,
        "ch2",
        "<h2>Results</h2>"
        + wide_table.format(w=1200)
        + "<table><tr><td>narrow</td></tr></table>"
        + wide_table.format(w=900)
        + "<img src='_images/fig.png' alt='wide' style='width: 1000px; max-width: none'>",
    )
    code, out = run(book, capsys)
    assert code == 1
    failures = failures_of(out, "ch2")
    tables = [f for f in failures if f.startswith("table ")]
    assert len(tables) == 2, out
    assert re.match(
        r"table 1 \(first header cells 'alpha', 'beta'\) 12\d\d px > 700 px \(in section 'Results'\)", tables[0]
    )
    assert tables[1].startswith("table 3 (first header cells 'alpha', 'beta') 9")
    assert any(re.match(r"image 1 \(fig\.png, alt 'wide'\) 1000 px > 700 px", f) for f in failures), out


def test_notebook_download_must_be_the_executed_copy(book, capsys):
    (book / "site" / "_sources" / "ch1.ipynb").write_text(notebook("# Chapter one"))
    code, out = run(book, capsys)
    assert code == 1
    assert "notebook download ch1.ipynb has no outputs: not the executed copy" in failures_of(out, "ch1"), out
    page = book / "site" / "ch1.html"
    page.write_text(page.read_text().replace(DOWNLOAD, ""))
    code, out = run(book, capsys)
    assert code == 1
    assert "no download of the notebook: no .ipynb link in the page's download menu" in failures_of(out, "ch1")


def serve_vendored_mathjax(book) -> str:
    """Unpack the MathJax the build serves (the npm tarball build_book.py caches) into the fake site.

    Returns the ``<script>`` that loads it; skips the test where the tarball is not cached (the tests
    do not use the network).
    """
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    package = next(p for p in build_book.VENDOR_PACKAGES if p.name == "mathjax")
    tarball = build_book.vendor_cache() / package.tarball_name
    if not tarball.is_file():
        pytest.skip(f"{tarball} not cached (tools/build_book.py fetches it; the tests do not use the network)")
    build_book.extract_package(package, build_book.npm_tarball(package), book / "site" / "_static" / "mathjax")
    return "<script defer src='_static/mathjax/tex-mml-chtml.js'></script>"


def test_vendored_mathjax_typesets(book, capsys):
    """The MathJax the build serves typesets a page offline."""
    mathjax = serve_vendored_mathjax(book)
    add_to_page(
        book,
        "ch2",
        "<p>Energy <span class='math notranslate nohighlight'>\\(E = mc^2\\)</span>.</p>"
        "<div class='math notranslate nohighlight'>\\[\\int_0^1 x^2 \\, dx = \\tfrac{1}{3}\\]</div>",
        head=mathjax,
    )
    code, out = run(book, capsys)
    assert code == 0, out
    assert "2 formulas, 2 typeset (MathJax: typeset)" in out


def test_images_shrunk_far_below_their_size_fail(book, capsys):
    (book / "site" / "_images" / "big.png").write_bytes(png(1400, 10))
    (book / "site" / "_images" / "fits.png").write_bytes(png(860, 10))
    add_to_page(
        book,
        "ch2",
        "<img src='_images/big.png' alt='big' style='max-width: 100%'>"
        "<img src='_images/fits.png' alt='fits' style='max-width: 100%'>",
    )
    code, out = run(book, capsys)
    assert code == 1
    shrunk = [f for f in failures_of(out, "ch2") if "shown at" in f]
    assert len(shrunk) == 1, out
    assert re.match(r"image 1 \(big\.png, alt 'big'\) shown at 50 % of its 1400 px", shrunk[0]), shrunk


def test_display_formula_wider_than_the_column_fails(book, capsys):
    mathjax = serve_vendored_mathjax(book)
    long_sum = " + ".join(f"x_{{{i}}}" for i in range(80))
    add_to_page(
        book,
        "ch2",
        f"<h2>Sums</h2><div class='math notranslate nohighlight'>\\[{long_sum}\\]</div>"
        "<div class='math notranslate nohighlight'>\\[a + b\\]</div>",
        head=mathjax,
    )
    code, out = run(book, capsys)
    assert code == 1
    wide = [f for f in failures_of(out, "ch2") if f.startswith("display formula")]
    assert len(wide) == 1 and re.match(r"display formula 1 \d{4} px > 700 px \(in section 'Sums'\)", wide[0]), out
