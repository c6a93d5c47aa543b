#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and check what a reader would see.

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
* **console**: the browser logged no message of level SEVERE (JavaScript errors, resources
  that failed to load). The exceptions, each justified where it is defined: the known harmless
  messages of :data:`IGNORED_CONSOLE`, and resources on *other hosts* that this machine cannot
  reach (:data:`OFFLINE_ERRORS`, e.g. MathJax from its CDN in an offline sandbox), which are
  printed as warnings (failures with ``--strict-external``);
* **images**: every ``<img>`` finished loading with a non-zero natural width and height;
* **figures**: a page built from a notebook shows at least one image, unless it is listed in
  :data:`NO_FIGURE_PAGES` with a reason.

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

OFFLINE_ERRORS = re.compile(
    r"net::ERR_(NAME_NOT_RESOLVED|INTERNET_DISCONNECTED|ADDRESS_UNREACHABLE|NETWORK_ACCESS_DENIED|"
    r"CONNECTION_REFUSED|CONNECTION_TIMED_OUT|TIMED_OUT|PROXY_CONNECTION_FAILED|NAME_RESOLUTION_FAILED)\b"
)
"""Network-level failures. For a resource on another host (e.g. MathJax from cdn.jsdelivr.net)
they say that *this machine* cannot reach that host, not that the site is broken: they are
reported as warnings, and as failures only with ``--strict-external``. An external resource that
answers with an HTTP error (a wrong URL) is always a failure."""

PAGE_TIMEOUT_S = 60
IMAGE_TIMEOUT_S = 20
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
    unreachable: list[str] = field(default_factory=list)


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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    return driver


_IMAGES_JS = """
const imgs = Array.from(document.images);
imgs.forEach(img => { if (img.loading === 'lazy') { img.loading = 'eager'; } });
return imgs.map(img => ({src: img.currentSrc || img.getAttribute('src') || '', complete: img.complete,
                         w: img.naturalWidth, h: img.naturalHeight}));
"""


def _wait(predicate, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def _is_offline_failure(message: str, base_url: str) -> bool:
    """A network-level failure to load a resource from a host other than the local server."""
    url = message.split(" ", 1)[0]
    return (
        bool(OFFLINE_ERRORS.search(message))
        and url.startswith(("http://", "https://"))
        and not url.startswith(base_url)
    )


def check_page(driver, page: Page, base_url: str, site: Path, screenshots: Path, strict_external: bool = False) -> None:
    """Open ``page`` and append its failures to ``page.failures``."""
    rel = page.html.relative_to(site).as_posix()
    if not page.html.is_file():
        page.failures.append(f"page not found: {rel} is missing from the site")
        return
    url = base_url + rel
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        page.failures.append(f"HTTP {status} for {rel}")
        return

    driver.get_log("browser")  # drop messages left over from the previous page
    driver.get(url)
    _wait(lambda: driver.execute_script("return document.readyState") == "complete" and driver.title, 10)
    title = driver.title or ""
    if re.search(r"\b404\b|error response|not found", title, re.I):
        page.failures.append(f"error page: title {title!r}")
        return

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

    severe = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    ignored = 0
    for entry in severe:
        message = entry.get("message", "").strip()
        if any(p.search(message) for p in IGNORED_CONSOLE):
            ignored += 1
        elif _is_offline_failure(message, base_url) and not strict_external:
            page.unreachable.append(message.split(" ", 1)[0])
        else:
            page.failures.append(f"console error: {message}")
    if ignored:
        page.notes.append(f"{ignored} known harmless console message{'s' * (ignored != 1)} ignored")
    if page.unreachable:
        page.notes.append(f"warning: unreachable from here: {', '.join(page.unreachable)}")

    screenshots.mkdir(parents=True, exist_ok=True)
    shot = screenshots / f"{page.name.replace('/', '--')}.png"
    try:
        save_full_page_screenshot(driver, shot)
        page.notes.append(f"screenshot {shot}")
    except Exception as exc:  # a screenshot problem is reported, not fatal to the other checks
        page.failures.append(f"screenshot failed: {type(exc).__name__}: {exc}")


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
        "--strict-external",
        action="store_true",
        help="fail on external resources this machine cannot reach (default: warn)",
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
                check_page(driver, page, base_url, site, args.screenshots, args.strict_external)
            except Exception as exc:  # one broken page must not hide the verdict on the others
                page.failures.append(f"check crashed: {type(exc).__name__}: {exc}")
            verdict = "FAIL" if page.failures else "PASS"
            detail = "; ".join(page.failures) if page.failures else ", ".join(page.notes)
            print(f"{verdict}  {page.name}: {detail}", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile_dir, ignore_errors=True)

    unreachable = sorted({url for p in pages for url in p.unreachable})
    if unreachable:
        print(
            f"\nwarning: {len(unreachable)} external resource(s) could not be reached from this machine; "
            "readers without network access will not get them:"
        )
        for url in unreachable:
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
