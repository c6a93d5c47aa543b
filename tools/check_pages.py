#!/usr/bin/env python3
r"""Open every page of the built book in headless Chromium and check what a reader would see.

Usage (normally through ``make check-pages``, after ``make book``)::

    python tools/check_pages.py [--site _build/html] [--toc _toc.yml] [--screenshots _build/screenshots]

The pages are the site's front page (``index.html``) and every ``file:`` entry of the table of
contents (its ``root`` first). The site is served by a local HTTP server (``http.server`` in a
thread, on a free port of 127.0.0.1) and each page is opened in headless Chromium through
Selenium (``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` from Debian's ``chromium`` and
``chromium-driver`` packages; ``--chromium`` / ``--chromedriver`` or the environment variables
``CHROMIUM`` / ``CHROMEDRIVER`` point elsewhere). For each page:

* **loaded**: the HTML file exists, the server answers 200, and the browser's title is not an
  error page;
* **title**: the page title contains the page's own title, read from its source (the first
  ``# `` heading of the ``.md`` file, or of the notebook's first markdown cell that has one);
* **self-contained**: the page requests nothing from another host (the build serves MathJax
  itself, see ``tools/build_book.py``): every such request is a failure, listed with its URL,
  whether or not this machine can reach that host. Chromium's DevTools network log is read for
  this, so fonts, scripts and styles loaded later by other scripts count too;
* **resources**: every request to the local server succeeded (no HTTP error, no failed load);
* **console**: the browser logged no message of level SEVERE (JavaScript errors, resources
  that failed to load), apart from the known harmless messages of :data:`IGNORED_CONSOLE`, each
  justified where it is defined;
* **math**: no raw TeX delimiter (``\(``, ``\[``, ``$$``) is left in the rendered text outside
  code; a page with formulas (elements of class ``math`` in its HTML) shows them typeset
  (MathJax put an ``mjx-container`` in each), and MathJax reported no TeX error (``mjx-merror``);
* **images**: every ``<img>`` finished loading with a non-zero natural width and height;
* **figures**: a page built from a notebook shows at least one image, unless it is listed in
  :data:`NO_FIGURE_PAGES` with a reason;
* **width**: at the 1280 px window, no table (its ``scrollWidth``: a table in a scrolling
  wrapper counts at its full width) and no image, figure or other embedded element is wider than
  the text column (the content box of :data:`TEXT_COLUMN`), and the page does not scroll
  sideways (display formulas count too), and no image is shrunk below :data:`MIN_FIGURE_SCALE`
  of its own width (its labels would shrink with it). Every offender is listed, as
  ``table N (first header cells ...) W px > C px`` or ``figure N shown at S % of its W px``, with
  its section; collapsed ``<details>`` are opened for this;
* **download**: a page built from a notebook offers the notebook in its download menu, and the
  file it links to is the executed copy (its code cells have outputs).

A full-page screenshot of each page goes to ``<screenshots>/<page>.png`` (the toc entry with
``/`` replaced by ``--``). One line per page says PASS or FAIL; the exit status is 1 if any page
failed (with the list of failures at the end), 2 if the check could not run at all.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_book import toc_files  # noqa: E402  (tools/ is not a package)

ROOT = Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--hide-scrollbars",
)

NO_FIGURE_PAGES: dict[str, str] = {
    # "notebooks/NN_topic": "why this chapter has no figure",
}
"""Notebook pages (toc entries) allowed to show no image, each with the reason."""

IGNORED_CONSOLE = (
    # Sphinx < 8.2 writes every inline script added with ``app.add_js_file(None, body=...)`` after
    # the builder started twice (sphinx-doc/sphinx#13402, fixed in Sphinx 8.2; Jupyter Book 1.x
    # needs Sphinx 7). sphinx-thebe's configuration script is one of them, so its second copy
    # re-declares ``const THEBE_JS_URL`` and stops there. The first copy has already defined all
    # four constants with the same values, and thebe is off in _config.yml: nothing is lost.
    re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),
    # pydata-sphinx-theme (under sphinx-book-theme) reads the colour mode from localStorage and
    # falls back to its ``default_mode`` option, which Jupyter Book leaves empty; on a reader's
    # first visit (always, with this check's fresh profile) the theme logs this and sets "auto"
    # itself, which is the intended default. Setting html_theme_options.default_mode would
    # silence it at the source.
    re.compile(r"Got invalid theme mode: \. Resetting to auto\."),
    # Chromium requests /favicon.ico by itself for a page that declares no icon (the front page
    # index.html is Jupyter Book's bare meta-refresh redirect). Nothing on the site refers to it.
    re.compile(r"/favicon\.ico - Failed to load resource: the server responded with a status of 404\b"),
)
"""SEVERE console messages that are not failures (each with its justification above)."""

PAGE_TIMEOUT_S = 60
IMAGE_TIMEOUT_S = 20
MATH_TIMEOUT_S = 30  # for MathJax's first typesetting pass, after the page has loaded
SETTLE_S = 0.3  # before reading the network log: late requests (fonts) get there
MAX_LISTED = 10  # raw-TeX places and TeX errors listed per page (the rest are counted)

TEXT_COLUMN = "article.bd-article"
"""The element of the text column (sphinx-book-theme): tables and figures must fit its content box."""
WIDTH_TOLERANCE_PX = 1  # sub-pixel rounding
MIN_FIGURE_SCALE = 0.75
"""Smallest share of its own width at which an image may be shown. A wider image is shrunk to the
column, and its labels with it: the chapters draw with matplotlib at 110 dpi and 8-9 pt type, which
stays at 10 px or more at 75 % (an image at most ``column / 0.75`` = 917 px wide at the 688 px column)."""
BROWSER_PAGES = ("chrome:", "chrome-untrusted:", "devtools:", "chrome-search:")
MAX_SCREENSHOT_HEIGHT = 30_000  # px; longer pages are cut, to keep the PNG files reasonable


# --------------------------------------------------------------------------- pages and titles


@dataclass
class Page:
    """One page to check: its toc entry (or ``index`` for the front page), HTML path and source."""

    name: str
    html: Path
    source: Path | None
    expected_title: str | None
    is_notebook: bool
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


def toc_entries(toc: dict) -> list[str]:
    """The root and every ``file:`` entry of a jb-book ``_toc.yml``, in reading order, without duplicates."""
    entries = ([str(toc["root"])] if toc.get("root") else []) + toc_files(toc)
    out: list[str] = []
    for entry in entries:
        entry = strip_suffix(entry)
        if entry not in out:
            out.append(entry)
    return out


def strip_suffix(entry: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return entry


def find_source(entry: str, root: Path) -> Path | None:
    for suffix in SOURCE_SUFFIXES:
        path = root / f"{entry}{suffix}"
        if path.is_file():
            return path
    return None


def _first_heading(text: str) -> str | None:
    """The first level-1 ATX heading (``# Title``) of markdown text, outside front matter and code fences."""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                lines = lines[i + 1 :]
                break
    fence = None
    for line in lines:
        stripped = line.strip()
        match = re.match(r"^(`{3,}|~{3,})", stripped)
        if match:
            if fence is None:
                fence = match.group(1)[0] * len(match.group(1))
            elif stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                fence = None
            continue
        if fence is None and re.match(r"^# \S", line):
            return line[2:].strip()
    return None


def source_title(path: Path) -> str | None:
    """The title a page gets from its source: first ``# `` heading (of the first markdown cell for notebooks)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") == "markdown":
                source = cell.get("source", "")
                title = _first_heading("".join(source) if isinstance(source, list) else source)
                if title:
                    return title
        return None
    if path.suffix == ".rst":
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, under in zip(lines, lines[1:], strict=False):
            if line.strip() and re.fullmatch(r"([=\-~^#*])\1+", under.strip() or "x"):
                return line.strip()
        return None
    return _first_heading(path.read_text(encoding="utf-8"))


def plain_text(text: str) -> str:
    """Markdown heading → the text Sphinx puts in ``<title>`` (roles, links, emphasis, smart quotes removed)."""
    text = re.sub(r"\{[^}]+\}`([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # {role}`text <target>`
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(\*\*|__|\*|_)(\S(?:.*?\S)?)\1", r"\2", text)
    text = re.sub(r"\$([^$]*)\$", r"\1", text)
    return normalise(text)


def normalise(text: str) -> str:
    table = {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\xa0": " ",
    }
    for old, new in table.items():
        text = text.replace(old, new)
    text = re.sub(r"-{2,}", "-", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def collect_pages(site: Path, toc_path: Path) -> list[Page]:
    """The pages to check: the front page, then every toc entry (the root is the front page's target)."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8")) or {}
    source_root = toc_path.resolve().parent
    entries = toc_entries(toc)
    pages = []
    for entry in entries:
        source = find_source(entry, source_root)
        title = source_title(source) if source else None
        pages.append(Page(entry, site / f"{entry}.html", source, title, bool(source and source.suffix == ".ipynb")))
    root_entry = strip_suffix(str(toc.get("root", ""))) if toc.get("root") else None
    if root_entry != "index":
        root = next((p for p in pages if p.name == root_entry), None)
        front = Page(
            "index", site / "index.html", root.source if root else None, root.expected_title if root else None, False
        )
        pages.insert(0, front)
    return pages


# --------------------------------------------------------------------------- server and browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the browser dropped a connection it no longer needed (page left, request cancelled)
        super().handle_error(request, client_address)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on a free port of 127.0.0.1 in a daemon thread; returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="check-pages-http", daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def start_browser(chromium: str, chromedriver: str, profile_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    # "performance" is the DevTools event log: every request the page makes, with its outcome.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(MATH_TIMEOUT_S + 10)
    driver.get("about:blank")  # away from the new-tab page Chromium starts with (its requests are not the book's)
    return driver


_IMAGES_JS = """
const imgs = Array.from(document.images);
imgs.forEach(img => { if (img.loading === 'lazy') { img.loading = 'eager'; } });
return imgs.map(img => ({src: img.currentSrc || img.getAttribute('src') || '', complete: img.complete,
                         w: img.naturalWidth, h: img.naturalHeight}));
"""

_MATHJAX_JS = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
if (!document.querySelector('script[src*="mathjax" i]') && !(mj && mj.startup)) { done('none'); return; }
if (!(mj && mj.startup && mj.startup.promise)) { done('not loaded'); return; }
const timer = setTimeout(() => done('timeout'), arguments[0] * 1000);
mj.startup.promise
  .then(() => document.fonts ? document.fonts.ready : null)
  .then(() => { clearTimeout(timer); done('typeset'); },
        err => { clearTimeout(timer); done('error: ' + err); });
"""
"""Wait for MathJax's first typesetting pass (and the fonts it asked for). The script is ``defer``
(or ``async``): once the document is complete it has run, or failed to load."""

_TEXT_JS = r"""
const skip = 'pre, code, kbd, samp, script, style, textarea, noscript, template, mjx-container, .highlight';
const found = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  if (!el || el.closest(skip)) { continue; }
  const text = node.nodeValue;
  const re = /\\\([^]*?(\\\)|$)|\\\[[^]*?(\\\]|$)|\$\$[^]*?(\$\$|$)/g;  // one match per formula
  let m;
  while ((m = re.exec(text)) !== null) {
    found.push(text.slice(Math.max(0, m.index - 30), m.index + Math.min(m[0].length, 60) + 10)
      .replace(/\s+/g, ' ').trim());
  }
}
const math = Array.from(document.querySelectorAll('.math')).filter(el => !el.parentElement.closest('.math'));
return {
  raw: found,
  math: math.length,
  untypeset: math.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.trim().slice(0, 60)),
  containers: document.querySelectorAll('mjx-container').length,
  errors: texErrors(),
};
function texErrors() {  // MathJax's message and the formula's TeX, for each formula it could not parse
  const doc = window.MathJax && MathJax.startup && MathJax.startup.document;
  const message = el => el.getAttribute('data-mjx-error') || el.textContent.trim().slice(0, 60);
  try {
    return Array.from(doc.math).filter(item => item.typesetRoot && item.typesetRoot.querySelector('mjx-merror'))
      .map(item => message(item.typesetRoot.querySelector('mjx-merror')) + ' in '
                   + String(item.math).trim().slice(0, 120));
  } catch (err) {
    return Array.from(document.querySelectorAll('mjx-merror')).map(message);
  }
}
"""
"""Raw TeX delimiters left in the rendered text (outside code), and the state of the formulas:
``.math`` is the class Sphinx and myst-nb give every formula, which MathJax fills with an
``mjx-container`` when it typesets it; ``mjx-merror`` marks a formula MathJax could not parse."""

_WIDTHS_JS = """
const col = document.querySelector(arguments[0]);
if (!col) { return null; }
document.querySelectorAll('details').forEach(d => { d.open = true; });  // collapsed outputs count too
const style = getComputedStyle(col);
const column = col.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const clip = (s, n) => { s = s.replace(/\\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; };
const section = el => {
  const h = document.evaluate('preceding::*[self::h1 or self::h2 or self::h3 or self::h4][1]', el, null,
                              XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
  return h ? clip(h.textContent.replace(/#$/, ''), 60) : '';
};
const tables = Array.from(col.querySelectorAll('table'))
  .filter(t => !t.closest('.highlight, pre') && !t.parentElement.closest('table'));
const media = Array.from(col.querySelectorAll('img, svg, canvas, video, iframe, object, embed'))
  .filter(e => !e.closest('mjx-container, button, .headerlink'))
  .filter(e => !(e.parentElement && e.parentElement.closest('svg')));
const formulas = Array.from(col.querySelectorAll('mjx-container[display="true"]'))
  .map(e => e.querySelector('mjx-math') || e);
return {
  column: column,
  page: document.documentElement.scrollWidth,
  formulas: formulas.map((e, i) => ({n: i + 1, width: Math.max(e.scrollWidth || 0, e.getBoundingClientRect().width),
                                      text: clip(e.closest('mjx-container').textContent, 40), section: section(e)})),
  window: window.innerWidth,
  tables: tables.map((t, i) => {
    const row = t.tHead && t.tHead.rows.length ? t.tHead.rows[0] : t.rows[0];
    const cells = Array.from(row ? row.cells : []).map(c => clip(c.textContent, 24)).filter(s => s).slice(0, 4);
    return {n: i + 1, width: Math.max(t.scrollWidth, t.getBoundingClientRect().width), cells: cells,
            caption: t.caption ? clip(t.caption.textContent, 60) : '', section: section(t)};
  }),
  media: media.map((e, i) => {
    const fig = e.closest('figure, .figure');
    const cap = fig ? fig.querySelector('figcaption, .caption') : null;
    const src = e.currentSrc || e.getAttribute('src') || e.getAttribute('data') || '';
    const width = Math.max(e.scrollWidth || 0, e.getBoundingClientRect().width);
    return {n: i + 1, tag: e.tagName.toLowerCase(), width: width, natural: e.naturalWidth || 0,
            src: clip(src.split('/').pop(), 50), alt: clip(e.getAttribute('alt') || '', 40),
            caption: cap ? clip(cap.textContent, 60) : '', section: section(e)};
  }),
};
"""
"""Widths, in CSS px, of the text column (its content box), of every table (``scrollWidth``: the
full table, also where a scrolling wrapper shows only part of it) and of every image-like element
in it. Tables nested in tables and code blocks' line-number tables are not counted."""

_DOWNLOADS_JS = """
return Array.from(document.querySelectorAll('.dropdown-download-buttons a[href], a.btn-download-source-button'))
  .map(a => a.href).filter(h => /\\.ipynb([?#]|$)/.test(h));
"""


def _wait(predicate, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def _network_events(entries: list[dict]) -> dict[str, dict]:
    """Requests of a Chromium performance log, by request id: url, HTTP status, failure."""
    requests: dict[str, dict] = {}
    browser_own: set[str] = set()
    for entry in entries:
        try:
            message = json.loads(entry["message"])["message"]
        except (KeyError, TypeError, ValueError):
            continue
        method, params = message.get("method", ""), message.get("params", {})
        if not method.startswith("Network.") or "requestId" not in params:
            continue
        if params["requestId"] in browser_own or str(params.get("documentURL", "")).startswith(BROWSER_PAGES):
            browser_own.add(params["requestId"])  # Chromium's own pages (its new-tab page), not the book's
            continue
        request = requests.setdefault(params["requestId"], {"url": "", "status": None, "failed": None})
        if method == "Network.requestWillBeSent":
            request["url"] = params.get("request", {}).get("url", request["url"])
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            request["url"] = request["url"] or response.get("url", "")
            request["status"] = response.get("status")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            request["failed"] = params.get("blockedReason") or params.get("errorText") or "failed"
    # without a URL: the end of a request sent before the log was last read (not this page's)
    return {key: request for key, request in requests.items() if request["url"]}


def _is_ignored_console(message: str) -> bool:
    return any(p.search(message) for p in IGNORED_CONSOLE)


def _short(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _describe(item: dict, kind: str) -> tuple[str, str]:
    """``table 3 (first header cells 'a', 'b') ...`` / ``image 2 (fig.png, alt '...')``."""
    if kind == "table":
        what = ", ".join(repr(c) for c in item["cells"])
        label = f"table {item['n']} (first header cells {what})" if what else f"table {item['n']} (no header cells)"
        extra = [f"caption {item['caption']!r}"] if item["caption"] else []
    else:
        bits = [item["src"] or item["tag"]] + ([f"alt {item['alt']!r}"] if item["alt"] else [])
        label = f"{'figure' if item['caption'] else 'image'} {item['n']} ({', '.join(bits)})"
        extra = [f"caption {item['caption']!r}"] if item["caption"] else []
    if item["section"]:
        extra.append(f"in section {item['section']!r}")
    return label, (f" ({'; '.join(extra)})" if extra else "")


def check_math(driver, page: Page, html_text: str) -> None:
    """Raw TeX left as text, formulas MathJax did not typeset, and formulas it could not parse."""
    state = driver.execute_async_script(_MATHJAX_JS, MATH_TIMEOUT_S)
    text = driver.execute_script(_TEXT_JS)
    for snippet in text["raw"][:MAX_LISTED]:
        page.failures.append(f'raw TeX left as text: "{snippet}"')
    if len(text["raw"]) > MAX_LISTED:
        page.failures.append(f"raw TeX left as text: {len(text['raw']) - MAX_LISTED} more places")
    in_html = len(re.findall(r"""class=["']math\b""", html_text))
    if in_html or text["math"]:
        page.notes.append(f"{text['math']} formulas, {text['containers']} typeset (MathJax: {state})")
    if (in_html or text["math"]) and not text["containers"]:
        page.failures.append(
            f"MathJax typeset nothing: {max(in_html, text['math'])} formulas in the page, no mjx-container "
            f"(MathJax: {state})"
        )
    elif text["untypeset"]:
        first = "; ".join(f'"{s}"' for s in text["untypeset"][:3])
        page.failures.append(f"{len(text['untypeset'])} of {text['math']} formulas not typeset, e.g. {first}")
    for error in text["errors"][:MAX_LISTED]:
        page.failures.append(f"TeX error in a formula: {_short(error, 200)}")
    if state not in ("typeset", "none") and text["containers"]:
        page.failures.append(f"MathJax did not finish: {state}")


def check_widths(driver, page: Page) -> None:
    """Every table and figure must fit the text column; all offenders are listed."""
    widths = driver.execute_script(_WIDTHS_JS, TEXT_COLUMN)
    if widths is None:
        page.failures.append(f"no text column ({TEXT_COLUMN}) to measure the tables and figures against")
        return
    column = widths["column"]
    offenders = 0
    for kind, items in (("table", widths["tables"]), ("figure", widths["media"])):
        for item in items:
            if item["width"] > column + WIDTH_TOLERANCE_PX:
                label, extra = _describe(item, kind)
                page.failures.append(f"{label} {round(item['width'])} px > {round(column)} px{extra}")
                offenders += 1
    for item in widths.get("formulas", []):
        if item["width"] > column + WIDTH_TOLERANCE_PX:
            where = f" (in section '{item['section']}')" if item["section"] else ""
            page.failures.append(f"display formula {item['n']} {round(item['width'])} px > {round(column)} px{where}")
            offenders += 1
    for item in widths["media"]:
        if item["natural"] and item["width"] < MIN_FIGURE_SCALE * item["natural"] - WIDTH_TOLERANCE_PX:
            label, extra = _describe(item, "figure")
            page.failures.append(
                f"{label} shown at {100 * item['width'] / item['natural']:.0f} % of its {item['natural']} px "
                f"(labels shrink with it; at most {column / MIN_FIGURE_SCALE:.0f} px wide){extra}"
            )
            offenders += 1
    if widths["page"] > widths["window"] + WIDTH_TOLERANCE_PX:
        page.failures.append(f"the page scrolls sideways: {widths['page']} px wide in a {widths['window']} px window")
    page.notes.append(
        f"{len(widths['tables'])} table{'s' * (len(widths['tables']) != 1)} "
        f"and {len(widths['media'])} image{'s' * (len(widths['media']) != 1)} within the {round(column)} px column"
        if not offenders
        else f"{offenders} wider than the {round(column)} px column"
    )


def check_download(driver, page: Page) -> None:
    """A notebook page offers its notebook as a download, and that file is the executed copy."""
    links = list(dict.fromkeys(driver.execute_script(_DOWNLOADS_JS)))
    if not links:
        page.failures.append("no download of the notebook: no .ipynb link in the page's download menu")
        return
    for link in links:
        try:
            with urllib.request.urlopen(link, timeout=30) as response:
                notebook = json.load(response)
        except urllib.error.HTTPError as exc:
            page.failures.append(f"notebook download {link}: HTTP {exc.code}")
            continue
        except (OSError, ValueError) as exc:
            page.failures.append(f"notebook download {link}: not a notebook ({type(exc).__name__}: {exc})")
            continue
        cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
        with_outputs = sum(1 for c in cells if c.get("outputs"))
        name = link.rsplit("/", 1)[-1]
        if cells and not with_outputs:
            page.failures.append(f"notebook download {name} has no outputs: not the executed copy")
        else:
            meta = (notebook.get("metadata") or {}).get("xrdnb") or {}
            how = f", profile {meta['profile']!r}" if meta.get("profile") else ""
            page.notes.append(f"download {name}: {with_outputs}/{len(cells)} code cells with outputs{how}")


def check_network(page: Page, requests: dict[str, dict], console: list[dict], base_url: str) -> None:
    """Requests to other hosts, resources that failed to load, and console errors."""
    reported: set[str] = set()
    for request in requests.values():
        url = request["url"]
        if not url.startswith(("http://", "https://")) or url in reported:
            continue  # data:, blob:, about: - nothing was fetched
        if not url.startswith(base_url):
            why = f" ({request['failed']})" if request["failed"] else ""
            page.failures.append(f"request to another host: {_short(url)}{why}")
            page.external.append(url)
        elif request["failed"]:
            page.failures.append(f"failed to load {url[len(base_url) - 1 :]}: {request['failed']}")
        elif request["status"] and request["status"] >= 400:
            message = f"{url} - Failed to load resource: the server responded with a status of {request['status']}"
            if _is_ignored_console(message):
                continue
            page.failures.append(f"failed to load {url[len(base_url) - 1 :]}: HTTP {request['status']}")
        else:
            continue
        reported.add(url)
    ignored = 0
    for entry in console:
        if entry.get("level") != "SEVERE":
            continue
        message = entry.get("message", "").strip()
        if _is_ignored_console(message):
            ignored += 1
        elif message.split(" ", 1)[0] in reported and "Failed to load resource" in message:
            continue  # the same failed request, reported above
        else:
            page.failures.append(f"console error: {_short(message, 300)}")
    if ignored:
        page.notes.append(f"{ignored} known harmless console message{'s' * (ignored != 1)} ignored")
    local = sum(1 for r in requests.values() if r["url"].startswith(base_url))
    page.notes.append(f"{local} requests, all to the local server" if not page.external else "")


def check_page(driver, page: Page, base_url: str, site: Path, screenshots: Path) -> None:
    """Open ``page`` and append its failures to ``page.failures``."""
    rel = page.html.relative_to(site).as_posix()
    if not page.html.is_file():
        page.failures.append(f"page not found: {rel} is missing from the site")
        return
    url = base_url + rel
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, html_text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, html_text = exc.code, ""
    if status != 200:
        page.failures.append(f"HTTP {status} for {rel}")
        return

    driver.get_log("browser")  # drop messages left over from the previous page
    driver.get_log("performance")
    driver.get(url)
    _wait(lambda: driver.execute_script("return document.readyState") == "complete" and driver.title, 10)
    title = driver.title or ""
    if re.search(r"\b404\b|error response|not found", title, re.I):
        page.failures.append(f"error page: title {title!r}")
        return
    if page.name == "index" and driver.current_url != url:  # the front page redirects to the root
        html_text = _fetch_text(driver.current_url)

    if page.source is None:
        page.failures.append("no source file for this toc entry (so no expected title)")
    elif not page.expected_title:
        page.failures.append(f"no '# ' heading in {page.source.name} to compare the title with")
    elif plain_text(page.expected_title) not in normalise(title):
        page.failures.append(f"title {title!r} does not contain the chapter title {page.expected_title!r}")

    def all_loaded():
        images = driver.execute_script(_IMAGES_JS)
        return (images,) if all(i["complete"] for i in images) else None  # a tuple: true even when empty

    loaded = _wait(all_loaded, IMAGE_TIMEOUT_S)
    images = loaded[0] if loaded else driver.execute_script(_IMAGES_JS)
    broken = [i["src"] for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    for src in broken:
        page.failures.append(f"broken image: {src}")
    page.notes.append(f"{len(images)} image{'s' * (len(images) != 1)}")
    if page.is_notebook and not images and page.name not in NO_FIGURE_PAGES:
        page.failures.append(
            "no figure: a notebook chapter must show at least one image (or be listed in NO_FIGURE_PAGES)"
        )

    check_math(driver, page, html_text)
    if page.is_notebook:
        check_download(driver, page)

    screenshots.mkdir(parents=True, exist_ok=True)
    shot = screenshots / f"{page.name.replace('/', '--')}.png"
    try:
        save_full_page_screenshot(driver, shot)
        page.notes.append(f"screenshot {shot}")
    except Exception as exc:  # a screenshot problem is reported, not fatal to the other checks
        page.failures.append(f"screenshot failed: {type(exc).__name__}: {exc}")

    check_widths(driver, page)  # after the screenshot: it opens collapsed outputs
    time.sleep(SETTLE_S)  # late requests (fonts for the formulas just drawn) reach the log
    check_network(page, _network_events(driver.get_log("performance")), driver.get_log("browser"), base_url)
    page.notes[:] = [n for n in page.notes if n]


def _fetch_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def save_full_page_screenshot(driver, path: Path) -> None:
    """Capture the whole page through the DevTools protocol.

    The viewport is first made as tall as the page (``Emulation.setDeviceMetricsOverride``,
    same width) and restored afterwards: ``captureBeyondViewport`` alone renders long pages
    of this theme shifted sideways, cutting off the navigation and the start of every line.
    """
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width = max(1, int(metrics.get("cssLayoutViewport", {}).get("clientWidth") or size["width"]))
    height = max(1, min(int(size["height"]), MAX_SCREENSHOT_HEIGHT))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--site", type=Path, default=ROOT / "_build" / "html", help="built HTML folder (default _build/html)"
    )
    parser.add_argument(
        "--toc",
        type=Path,
        default=ROOT / "_toc.yml",
        help="table of contents; sources are found relative to it (default _toc.yml)",
    )
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=ROOT / "_build" / "screenshots",
        help="folder for one PNG per page (default _build/screenshots)",
    )
    parser.add_argument(
        "--chromium", default=os.environ.get("CHROMIUM", CHROMIUM), help=f"Chromium binary (default {CHROMIUM})"
    )
    parser.add_argument(
        "--chromedriver",
        default=os.environ.get("CHROMEDRIVER", CHROMEDRIVER),
        help=f"ChromeDriver binary (default {CHROMEDRIVER})",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    site, toc = args.site.resolve(), args.toc.resolve()
    problems = []
    if not (site / "index.html").is_file():
        problems.append(f"{site / 'index.html'} not found: build the book first (make book)")
    if not toc.is_file():
        problems.append(f"{toc} not found")
    for name, path in (("Chromium", args.chromium), ("ChromeDriver", args.chromedriver)):
        if not (Path(path).is_file() or shutil.which(path)):
            problems.append(f"{name} not found at {path} (Debian: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("selenium is not installed (pip install selenium, or the 'test' extra)")
    if problems:
        for problem in problems:
            print(f"check_pages: error: {problem}", file=sys.stderr)
        return 2

    pages = collect_pages(site, toc)
    server, base_url = serve(site)
    profile_dir = tempfile.mkdtemp(prefix="check-pages-chromium-")
    driver = None
    try:
        driver = start_browser(args.chromium, args.chromedriver, profile_dir)
        for page in pages:
            try:
                check_page(driver, page, base_url, site, args.screenshots)
            except Exception as exc:  # one broken page must not hide the verdict on the others
                page.failures.append(f"check crashed: {type(exc).__name__}: {exc}")
            if page.failures:
                print(f"FAIL  {page.name}: {'; '.join(page.failures)}", flush=True)
                print(f"        ({', '.join(page.notes)})", flush=True)
            else:
                print(f"PASS  {page.name}: {', '.join(page.notes)}", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile_dir, ignore_errors=True)

    external = sorted({url for p in pages for url in p.external})
    if external:
        hosts = sorted({urllib.parse.urlsplit(url).netloc for url in external})
        print(f"\nthe pages request {len(external)} resource(s) from other hosts ({', '.join(hosts)}):")
        for url in external:
            print(f"  {url}")
    failed = [p for p in pages if p.failures]
    if failed:
        print(f"\n{len(failed)} of {len(pages)} pages failed:")
        for page in failed:
            for failure in page.failures:
                print(f"  {page.name}: {failure}")
        return 1
    print(f"\nall {len(pages)} pages passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
