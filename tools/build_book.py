#!/usr/bin/env python3
"""Execute the book's notebooks with papermill, then build the HTML with Jupyter Book.

Usage (normally through ``make book``)::

    python tools/build_book.py --profile book          # execute every chapter, build HTML
    python tools/build_book.py --profile smoke         # quick parameters (CI, smoke tests)
    python tools/build_book.py --only 03_loss_landscapes   # re-execute one chapter only
    python tools/build_book.py --skip-execute          # re-render HTML from executed copies

Pipeline
--------
1. ``_toc.yml`` is read; every entry whose source is a ``.ipynb`` file under ``notebooks/``
   is a chapter to execute. Entries whose source file does not exist are dropped from
   the staged table of contents with a warning (``--strict`` makes that an error).
2. The profile's parameters are taken from ``notebooks/profiles.yml``, a mapping
   ``{profile: {notebook_stem: {parameter: value}}}``. A profile may leave a notebook out,
   which then runs with the defaults of its ``parameters`` cell.
3. ``_build/stage/`` receives copies of ``_config.yml``, the (filtered) ``_toc.yml``,
   ``references.bib``, ``book/`` and every non-notebook file under ``notebooks/``
   (figures, data the chapters link to).
   The front page's "reproduction at a glance" (``book/at-a-glance.txt`` in the stage, which
   ``book/index.md`` includes) is computed from the shipped reference run, ``results/reference``:
   each claim judged by its written rule (:func:`xrdnb.headline.reference_at_a_glance`; claim 3b on
   the shipped landscape set, ``results/landscapes``).
4. Each chapter is executed exactly once with papermill (kernel ``python3``, working
   directory = the repository's ``notebooks/`` folder, so relative paths behave as in
   JupyterLab, environment variable ``XRDNB_PROFILE`` set to the profile name). The
   executed copy is written to ``_build/stage/notebooks/<stem>.ipynb``; the sources in
   ``notebooks/`` are never modified. A failing chapter stops the build with a non-zero
   exit status; its partly executed copy is kept in ``_build/failed/<stem>.ipynb``.
5. The JavaScript the pages load is served by the site itself, so that no page needs the
   internet (a reader offline, on a plane, still gets typeset formulas): each package of
   :data:`VENDOR_PACKAGES` (MathJax 3) is fetched once from the npm registry (the tarball named
   by the version's registry metadata, checked against the integrity pinned here) and cached in
   ``~/.cache/xrdnb/npm`` (``$XRDNB_CACHE_DIR/npm`` or ``$XDG_CACHE_HOME/xrdnb/npm``); later
   builds, after ``make clean`` too, need no network. The files the pages need are unpacked into
   ``_build/stage/_vendor/``, which ``_config.yml`` names in ``html_static_path``, so Sphinx
   copies them to ``_build/html/_static/`` (``mathjax_path: mathjax/tex-mml-chtml.js``). The
   registry is ``$npm_config_registry``, else npm's configured one, else registry.npmjs.org.
6. ``jupyter-book build _build/stage --path-output <repo> --all -W -n --keep-going``
   renders the staged book (Jupyter Book does not execute anything itself:
   ``execute_notebooks: "off"``). Jupyter Book writes into ``<path-output>/_build/html``,
   so with the repository root as path-output the HTML lands in ``_build/html``. Sphinx
   copies each staged notebook, i.e. the executed copy with its outputs, to
   ``_build/html/_sources/notebooks/``: the download button of the chapter's page links there.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "_build"
STAGE = BUILD / "stage"
EXECUTING = BUILD / "executing"
FAILED = BUILD / "failed"
HTML = BUILD / "html"
PROFILES = NOTEBOOKS / "profiles.yml"
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
IGNORED_NAMES = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}


class BuildError(RuntimeError):
    """A problem that stops the build; the message is printed without a traceback."""


# --------------------------------------------------------------------------- table of contents


def resolve_source(entry: str, root: Path) -> Path | None:
    """Return the source file for a ``_toc.yml`` ``file:`` entry, or None if it is missing."""
    path = root / entry
    if path.suffix in SOURCE_SUFFIXES:
        return path if path.is_file() else None
    for suffix in SOURCE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def filter_toc(node, root: Path, missing: list[str]):
    """Copy of a toc (sub)tree without ``file:`` entries whose source does not exist.

    Children of a missing entry are dropped with it; parts left without chapters are dropped.
    """
    if isinstance(node, list):
        out = []
        for item in node:
            kept = filter_toc(item, root, missing)
            if kept is not None:
                out.append(kept)
        return out
    if not isinstance(node, dict):
        return node
    if "file" in node and resolve_source(str(node["file"]), root) is None:
        missing.append(str(node["file"]))
        return None
    out = {}
    for key, value in node.items():
        if key in ("chapters", "sections", "parts"):
            value = filter_toc(value, root, missing)
            if not value:
                continue
        out[key] = value
    if "caption" in node and not any(k in out for k in ("chapters", "sections")):
        return None  # an emptied part
    return out


def toc_files(node) -> list[str]:
    """Every ``file:`` entry of a toc tree, in reading order."""
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    if not isinstance(node, dict):
        return []
    files = [str(node["file"])] if "file" in node else []
    for key in ("parts", "chapters", "sections"):
        files += toc_files(node.get(key, []))
    return files


def chapters_from_toc(toc: dict, root: Path) -> list[Path]:
    """The notebooks under ``notebooks/`` that the table of contents lists."""
    chapters = []
    for entry in [toc.get("root", "")] + toc_files(toc):
        src = resolve_source(entry, root) if entry else None
        if src is None or src.suffix != ".ipynb":
            continue
        try:
            src.resolve().relative_to(NOTEBOOKS.resolve())
        except ValueError:
            continue
        if src not in chapters:
            chapters.append(src)
    return chapters


# --------------------------------------------------------------------------- profiles


def load_profile(name: str, stems: list[str]) -> dict[str, dict]:
    """Parameters per notebook stem for profile ``name`` from ``notebooks/profiles.yml``."""
    if not PROFILES.is_file():
        raise BuildError(f"{PROFILES.relative_to(ROOT)} not found")
    try:
        profiles = yaml.safe_load(PROFILES.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BuildError(f"{PROFILES.relative_to(ROOT)} is not valid YAML:\n{exc}") from exc
    if not isinstance(profiles, dict):
        raise BuildError(f"{PROFILES.relative_to(ROOT)} must be a mapping of profiles")
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "(none)"
        raise BuildError(f"unknown profile {name!r}; {PROFILES.relative_to(ROOT)} defines: {known}")
    profile = profiles[name] or {}
    if not isinstance(profile, dict):
        raise BuildError(f"profile {name!r} must map notebook stems to parameter mappings")
    unknown = sorted(set(profile) - set(stems))
    if unknown:
        raise BuildError(
            f"profile {name!r} names notebooks that are not chapters of the book: "
            f"{', '.join(unknown)} (chapters: {', '.join(stems) or 'none'})"
        )
    for stem, params in profile.items():
        if params is not None and not isinstance(params, dict):
            raise BuildError(f"profile {name!r}, notebook {stem!r}: parameters must be a mapping")
    return {stem: dict(params or {}) for stem, params in profile.items()}


# --------------------------------------------------------------------------- staging


def _ignore(_dir, names):
    return [n for n in names if n in IGNORED_NAMES]


def stage_sources(toc: dict) -> None:
    """Refresh everything in the stage except the executed notebooks."""
    STAGE.mkdir(parents=True, exist_ok=True)
    staged_nb = STAGE / "notebooks"
    for item in STAGE.iterdir():
        if item == staged_nb or item.name == "_build":
            continue
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    for name in ("_config.yml", "references.bib", "logo.png", "favicon.ico"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, STAGE / name)
    (STAGE / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    if (ROOT / "book").is_dir():
        shutil.copytree(ROOT / "book", STAGE / "book", ignore=_ignore)
    # Non-notebook files under notebooks/ (images, small data) - refreshed every build.
    staged_nb.mkdir(exist_ok=True)
    for item in list(staged_nb.iterdir()):
        if item.suffix != ".ipynb":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    if NOTEBOOKS.is_dir():
        for item in NOTEBOOKS.iterdir():
            if item.name in IGNORED_NAMES or item.suffix == ".ipynb":
                continue
            if item.is_dir():
                shutil.copytree(item, staged_nb / item.name, ignore=_ignore)
            else:
                shutil.copy2(item, staged_nb / item.name)


GLANCE = "book/at-a-glance.txt"
"""The front page's "reproduction at a glance", written into the stage by :func:`stage_at_a_glance`."""
REFERENCE = ROOT / "results" / "reference"
LANDSCAPES = ROOT / "results" / "landscapes"


def stage_at_a_glance(reference: Path = REFERENCE, landscapes: Path = LANDSCAPES) -> str:
    """Judge the paper's claims on the shipped reference run and write the table the front page includes.

    Computed in every build (:func:`xrdnb.headline.reference_at_a_glance`), so the front page's
    verdicts are those of the result set in this checkout, never typed in.
    """
    from xrdnb.headline import glance_markdown, reference_at_a_glance

    if (reference / "manifest.json").is_file():
        table, run = reference_at_a_glance(reference, landscapes=landscapes)
        text = glance_markdown(table, run)
    else:
        text = f"No reference result set in this checkout (no {reference.name}/manifest.json): no claim is judged.\n"
    (STAGE / GLANCE).parent.mkdir(parents=True, exist_ok=True)
    (STAGE / GLANCE).write_text(text)
    return text


# --------------------------------------------------------------------------- execution


def execute(nb: Path, params: dict, profile: str, timeout: float | None) -> float:
    """Execute one notebook with papermill into the stage; return the elapsed seconds."""
    import nbformat
    import papermill

    EXECUTING.mkdir(parents=True, exist_ok=True)
    partial = EXECUTING / nb.name
    target = STAGE / "notebooks" / nb.name
    failed = FAILED / nb.name
    if failed.exists():
        failed.unlink()
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb),
            str(partial),
            parameters=params,
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            execution_timeout=timeout,
        )
    except Exception as exc:  # noqa: BLE001 - any failure fails the chapter
        elapsed = time.perf_counter() - t0
        FAILED.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.move(str(partial), failed)
        where = f"; partly executed copy: {failed.relative_to(ROOT)}" if failed.exists() else ""
        summary = str(exc).strip().splitlines()
        detail = "\n".join(summary[:40])
        raise BuildError(f"notebook {nb.relative_to(ROOT)} failed after {elapsed:.1f} s{where}\n{detail}") from exc
    elapsed = time.perf_counter() - t0
    executed = nbformat.read(partial, as_version=4)
    executed.metadata["xrdnb"] = {
        "profile": profile,
        "parameters": params,
        "elapsed_s": round(elapsed, 1),
        "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    nbformat.write(executed, partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(partial), target)
    return elapsed


def reuse(nb: Path) -> None:
    """Keep a previously executed copy, or stage the unexecuted source if there is none."""
    target = STAGE / "notebooks" / nb.name
    if target.is_file():
        import nbformat

        meta = nbformat.read(target, as_version=4).metadata.get("xrdnb")
        if meta:
            print(f"  {nb.stem}: reusing executed copy (profile {meta.get('profile')!r}, {meta.get('executed', '?')})")
        else:
            print(f"  WARNING {nb.stem}: the staged copy was never executed (no outputs)")
        return
    print(f"  WARNING {nb.stem}: no executed copy - staging the source without outputs")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(nb, target)


# --------------------------------------------------------------------------- vendored JavaScript


class NpmPackage(NamedTuple):
    """A package from the npm registry whose files the site serves itself (no CDN at reading time).

    ``integrity`` is the registry's ``dist.integrity`` of that version (Subresource Integrity
    format, ``sha512-<base64>``): the tarball is checked against it whenever it is used.
    ``files`` are prefixes of paths inside the tarball's ``package/`` folder; ``strip`` is removed
    from the front of each kept path, and the result lands in ``<stage>/_vendor/<dest>/``, which
    Sphinx copies to ``_build/html/_static/<dest>/`` (``html_static_path`` in ``_config.yml``).
    """

    name: str
    version: str
    integrity: str
    dest: str
    files: tuple[str, ...]
    strip: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name.replace('/', '-').lstrip('@')}-{self.version}.tgz"


VENDOR_PACKAGES = (
    # MathJax 3 for the formulas (``mathjax_path: mathjax/tex-mml-chtml.js`` in _config.yml):
    # the combined TeX+MathML/CommonHTML component Sphinx would load from cdn.jsdelivr.net, plus
    # what it loads itself, relative to its own location: the CommonHTML fonts
    # (output/chtml/fonts/woff-v2), the TeX extensions \require and autoload fetch (input/tex/
    # extensions), and what the MathJax menu can switch on (ui/, a11y/, sre/, the SVG output).
    # Left out: the other combined components and node-main.js (Node only), and latest.js,
    # which exists to load MathJax from a CDN.
    NpmPackage(
        name="mathjax",
        version="3.2.2",
        integrity="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        dest="mathjax",
        files=(
            "LICENSE",
            "es5/tex-mml-chtml.js",
            "es5/core.js",
            "es5/loader.js",
            "es5/startup.js",
            "es5/input/",
            "es5/output/",
            "es5/ui/",
            "es5/a11y/",
            "es5/sre/",
            "es5/adaptors/",
        ),
        strip="es5/",
    ),
)
"""The JavaScript packages the pages load, served from the site itself."""

VENDOR = "_vendor"  # in the stage; _config.yml's html_static_path names it
DEFAULT_NPM_REGISTRY = "https://registry.npmjs.org/"
FETCH_TIMEOUT_S = 60


def vendor_cache() -> Path:
    """The folder of the fetched npm tarballs.

    ``$XRDNB_CACHE_DIR/npm``, else ``$XDG_CACHE_HOME/xrdnb/npm`` (``~/.cache/xrdnb/npm``): outside
    ``_build``, so that ``make clean`` does not force a new fetch.
    """
    if os.environ.get("XRDNB_CACHE_DIR"):
        return Path(os.environ["XRDNB_CACHE_DIR"]).expanduser() / "npm"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "xrdnb" / "npm"


def npm_registry() -> str:
    """The npm registry to fetch from: ``$npm_config_registry``, else npm's own setting, else registry.npmjs.org."""
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
    if not registry and shutil.which("npm"):
        try:
            done = subprocess.run(
                ["npm", "config", "get", "registry"], capture_output=True, text=True, timeout=30, check=False
            )
            registry = done.stdout.strip() if done.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            registry = ""
    registry = registry if registry.startswith(("http://", "https://")) else DEFAULT_NPM_REGISTRY
    return registry.rstrip("/") + "/"


def sri_matches(data: bytes, integrity: str) -> bool:
    """Whether ``data`` matches a Subresource Integrity string (``sha512-...``, ``sha256-...``)."""
    for token in integrity.split():
        algorithm, _, expected = token.partition("-")
        if algorithm in ("sha256", "sha384", "sha512"):
            digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            if digest == expected:
                return True
    return False


def fetch_npm_tarball(package: NpmPackage, registry: str) -> bytes:
    """Download ``package``'s tarball from ``registry`` (its URL from the version's metadata), checked."""
    quoted = urllib.parse.quote(package.name, safe="@")  # a scoped name keeps its @, its / becomes %2F
    meta_url = f"{registry}{quoted}/{package.version}"
    where = f"npm package {package.spec} from the registry {registry}"
    try:
        request = urllib.request.Request(meta_url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
            dist = json.load(response).get("dist") or {}
        tarball_url, integrity = dist.get("tarball"), dist.get("integrity", "")
        if not tarball_url:
            raise BuildError(f"could not fetch {where}: its metadata ({meta_url}) names no tarball")
        if integrity and integrity != package.integrity:
            raise BuildError(
                f"could not fetch {where}: the registry gives integrity {integrity}, "
                f"tools/build_book.py pins {package.integrity}"
            )
        with urllib.request.urlopen(tarball_url, timeout=FETCH_TIMEOUT_S) as response:
            data = response.read()
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad JSON
        reason = getattr(exc, "reason", None) or exc
        raise BuildError(f"could not fetch {where}: {reason}") from exc
    if not sri_matches(data, package.integrity):
        raise BuildError(f"could not fetch {where}: the tarball does not match the pinned integrity")
    return data


def npm_tarball(package: NpmPackage) -> Path:
    """The checked tarball of ``package`` in the cache, fetched from the npm registry if not there yet."""
    cache = vendor_cache()
    path = cache / package.tarball_name
    if path.is_file():
        if sri_matches(path.read_bytes(), package.integrity):
            return path
        print(f"  WARNING {path} does not match the integrity of {package.spec}: fetching it again")
    registry = npm_registry()
    print(f"  fetching {package.spec} from {registry} (cached in {cache})", flush=True)
    data = fetch_npm_tarball(package, registry)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def extract_package(package: NpmPackage, tarball: Path, dest: Path) -> int:
    """Write the kept regular files of ``tarball`` under ``dest``; returns how many."""
    count = 0
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            _top, _, rel = member.name.partition("/")  # npm tarballs have one top folder, "package"
            kept = any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in package.files)
            if not member.isfile() or not kept:
                continue
            rel = rel[len(package.strip) :] if rel.startswith(package.strip) else rel
            parts = Path(rel).parts
            if not rel or Path(rel).is_absolute() or ".." in parts:
                raise BuildError(f"{tarball}: unexpected path {member.name!r} in the tarball of {package.spec}")
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            count += 1
    if count == 0:
        raise BuildError(f"{tarball}: none of the expected files of {package.spec} found")
    return count


def stage_vendor() -> None:
    """Put the files of :data:`VENDOR_PACKAGES` into ``<stage>/_vendor`` (fetched once, then cached)."""
    vendor = STAGE / VENDOR
    if vendor.exists():
        shutil.rmtree(vendor)
    for package in VENDOR_PACKAGES:
        count = extract_package(package, npm_tarball(package), vendor / package.dest)
        print(f"  {package.spec}: {count} files -> _static/{package.dest}/")


# --------------------------------------------------------------------------- main


def jupyter_book_cmd() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise BuildError("jupyter-book not found; run `make book` or install the [book] extra")
    return [found]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Parameters per profile live in notebooks/profiles.yml; HTML lands in _build/html.",
    )
    p.add_argument("--profile", default="book", help="parameter profile from notebooks/profiles.yml (default: book)")
    p.add_argument(
        "--only",
        metavar="STEM",
        action="append",
        default=[],
        help="execute only this notebook (repeatable); the other chapters reuse their previously executed copies",
    )
    p.add_argument(
        "--skip-execute", action="store_true", help="execute nothing; rebuild the HTML from the executed copies"
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="per-cell execution timeout in seconds, 0 = none (default: 3600)"
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="execute the remaining chapters after a failure (the build still fails)",
    )
    p.add_argument("--toc", type=Path, default=ROOT / "_toc.yml", help="table of contents to use instead of _toc.yml")
    p.add_argument("--strict", action="store_true", help="fail if _toc.yml lists a file that does not exist")
    p.add_argument("--no-html", action="store_true", help="execute the notebooks but do not run jupyter-book")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    toc_path = args.toc if args.toc.is_absolute() else Path.cwd() / args.toc
    if not toc_path.is_file():
        raise BuildError(f"table of contents {toc_path} not found")
    try:
        toc_full = yaml.safe_load(toc_path.read_text())
    except yaml.YAMLError as exc:
        raise BuildError(f"{toc_path} is not valid YAML:\n{exc}") from exc
    if not isinstance(toc_full, dict):
        raise BuildError(f"{toc_path} must be a mapping (jb-book format)")
    missing: list[str] = []
    toc = filter_toc(toc_full, ROOT, missing)
    if not isinstance(toc, dict) or resolve_source(str(toc.get("root", "")), ROOT) is None:
        raise BuildError(f"the root page of {toc_path.name} ({toc_full.get('root')!r}) is missing")
    for entry in missing:
        print(f"WARNING: {toc_path.name} lists {entry!r}, which does not exist - left out")
    if missing and args.strict:
        raise BuildError(f"{len(missing)} table-of-contents entries missing (--strict)")

    chapters = chapters_from_toc(toc, ROOT)
    stems = [nb.stem for nb in chapters]
    params = load_profile(args.profile, stems)
    unknown_only = sorted(set(args.only) - set(stems))
    if unknown_only:
        raise BuildError(f"--only {', '.join(unknown_only)}: not a chapter (chapters: {', '.join(stems) or 'none'})")
    if args.only and args.skip_execute:
        raise BuildError("--only and --skip-execute exclude each other")

    print(f"profile {args.profile!r}: {len(chapters)} chapter notebook(s)")
    stage_sources(toc)
    stage_at_a_glance()
    os.environ["XRDNB_PROFILE"] = args.profile
    timeout = args.timeout if args.timeout > 0 else None
    failures: list[str] = []
    timings: list[tuple[str, float]] = []
    for i, nb in enumerate(chapters, 1):
        if args.skip_execute or (args.only and nb.stem not in args.only):
            reuse(nb)
            continue
        p = params.get(nb.stem, {})
        shown = ", ".join(f"{k}={v!r}" for k, v in p.items()) or "defaults"
        print(f"[{i}/{len(chapters)}] executing {nb.relative_to(ROOT)} ({shown})", flush=True)
        try:
            elapsed = execute(nb, p, args.profile, timeout)
        except BuildError as err:
            print(f"ERROR: {err}", file=sys.stderr, flush=True)
            failures.append(nb.stem)
            if not args.keep_going:
                break
            continue
        timings.append((nb.stem, elapsed))
        print(f"  {nb.stem}: ok in {elapsed:.1f} s", flush=True)
    if failures:
        raise BuildError(f"notebook(s) failed: {', '.join(failures)} - no HTML built")

    if not args.no_html:
        stage_vendor()
        cmd = jupyter_book_cmd() + [
            "build",
            str(STAGE),
            "--path-output",
            str(ROOT),
            "--all",
            "-W",
            "-n",
            "--keep-going",
        ]
        print("$ " + " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise BuildError("jupyter-book build failed (warnings are errors: see above)")
        if not (HTML / "index.html").is_file():
            raise BuildError(f"jupyter-book finished but {HTML / 'index.html'} is missing")

    for stem, elapsed in timings:
        print(f"  {elapsed:8.1f} s  {stem}")
    print(f"done in {time.perf_counter() - t_start:.1f} s (profile {args.profile!r})")
    if not args.no_html:
        print(f"HTML: {HTML / 'index.html'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildError as err:
        print(f"build_book: error: {err}", file=sys.stderr)
        sys.exit(1)
