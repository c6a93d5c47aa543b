"""tools/build_book.py's vendored JavaScript (MathJax from the npm registry, served by the site).

The registry is played by a local HTTP server with a small synthetic package, so these tests need
no network: the fetch (metadata, then the tarball named there), the integrity check, the cache
(a second build fetches nothing), the choice of files and the one-line error when the registry
cannot be reached.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.util
import io
import json
import socket
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)

FILES = {
    "package/LICENSE": b"Apache-2.0",
    "package/package.json": b'{"name": "fakejax"}',
    "package/es5/tex-mml-chtml.js": b"window.MathJax = {startup: {}};",
    "package/es5/latest.js": b"// loads from a CDN: must be left out",
    "package/es5/output/chtml/fonts/woff-v2/Main.woff": b"wOFF",
}


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def package(integrity: str) -> build_book.NpmPackage:
    return build_book.NpmPackage(
        name="@fake/jax",
        version="1.0.0",
        integrity=integrity,
        dest="fakejax",
        files=("LICENSE", "es5/tex-mml-chtml.js", "es5/output/"),
        strip="es5/",
    )


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fake npm registry on 127.0.0.1 serving @fake/jax 1.0.0; yields (package, requests seen)."""
    data = tarball(FILES)
    root = tmp_path / "registry"
    (root / "@fake%2Fjax").mkdir(parents=True)
    (root / "tarballs").mkdir()
    (root / "tarballs" / "jax-1.0.0.tgz").write_bytes(data)
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            seen.append(path)
            return str(root / path.lstrip("/").replace("@fake%2Fjax/1.0.0", "@fake%2Fjax/meta.json"))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    meta = {"name": "@fake/jax", "version": "1.0.0", "dist": {"tarball": base + "tarballs/jax-1.0.0.tgz"}}
    meta["dist"]["integrity"] = sri(data)
    (root / "@fake%2Fjax" / "meta.json").write_text(json.dumps(meta))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("npm_config_registry", base)
    monkeypatch.setenv("XRDNB_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield package(sri(data)), seen
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_check_cache_and_extract(registry, tmp_path, capsys):
    pkg, seen = registry
    path = build_book.npm_tarball(pkg)
    assert path == tmp_path / "cache" / "npm" / "fake-jax-1.0.0.tgz"
    assert seen == ["/@fake%2Fjax/1.0.0", "/tarballs/jax-1.0.0.tgz"]  # metadata, then the tarball it names
    assert "fetching @fake/jax@1.0.0 from http://127.0.0.1:" in capsys.readouterr().out
    assert build_book.npm_tarball(pkg) == path and len(seen) == 2  # cached: no second fetch

    dest = tmp_path / "site" / "fakejax"
    assert build_book.extract_package(pkg, path, dest) == 3
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert kept == ["LICENSE", "output/chtml/fonts/woff-v2/Main.woff", "tex-mml-chtml.js"]


def test_corrupt_cache_is_fetched_again(registry, tmp_path):
    pkg, seen = registry
    path = build_book.npm_tarball(pkg)
    path.write_bytes(b"not the tarball")
    assert build_book.npm_tarball(pkg) == path and len(seen) == 4
    assert build_book.sri_matches(path.read_bytes(), pkg.integrity)


def test_wrong_integrity_is_refused(registry, tmp_path):
    _, _seen = registry
    pinned = sri(b"something else")
    with pytest.raises(build_book.BuildError, match="the registry gives integrity sha512-.*tools/build_book.py pins"):
        build_book.npm_tarball(package(pinned))
    assert not (tmp_path / "cache" / "npm" / "fake-jax-1.0.0.tgz").exists()


def test_unreachable_registry_is_one_clear_line(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("XRDNB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(build_book.BuildError) as err:
        build_book.npm_tarball(package(sri(b"x")))
    message = str(err.value)
    assert "\n" not in message
    registry = f"http://127.0.0.1:{port}/"
    assert message.startswith(f"could not fetch npm package @fake/jax@1.0.0 from the registry {registry}: ")


def test_config_serves_the_vendored_mathjax():
    """_config.yml points Sphinx at the files build_book stages, and nothing at a CDN."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    mathjax = next(p for p in build_book.VENDOR_PACKAGES if p.name == "mathjax")
    assert config["html_static_path"][0] == build_book.VENDOR
    for path in config["html_static_path"][1:]:  # the book's own static files (its style sheet), no vendored code
        assert (ROOT / path).is_dir() and not list((ROOT / path).rglob("*.js")), path
    assert config["mathjax_path"] == f"{mathjax.dest}/tex-mml-chtml.js"
    assert f"{mathjax.strip}tex-mml-chtml.js" in mathjax.files
    assert config["nb_ipywidgets_js"] == {}
