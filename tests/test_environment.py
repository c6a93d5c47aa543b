"""The environment: constraints.txt is the lock that make, CI and conda install from; pyproject keeps ranges.

``pyproject.toml`` states what a library user needs (torch as a 2.x range); ``constraints.txt`` pins
what ``make`` and CI install (``make lock`` writes it from ``.venv``). The last test builds the wheel
and asks pip, offline, what ``pip install xrdnb`` would do beside another torch 2.x.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11 (tomllib)")

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = sorted(PYPROJECT["project"]["optional-dependencies"])
TORCH_PIN = "2.13.0"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.!]+)$")
"""One line of the lock: ``name==version``, no URL, no local label (``+cpu``), no extras, no marker."""


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: {line!r} is not a portable name==version pin"
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def _installed() -> dict[str, metadata.Distribution]:
    """The running environment's distributions by name, the first on sys.path winning as at import.

    The tree itself is left out: its ``xrdnb.egg-info`` (written by the editable install) is no installation.
    """
    paths = [p for p in sys.path if p and Path(p).resolve() != ROOT]
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=paths):
        found.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    return found


def _installed_from_this_tree(installed) -> bool:
    dist = installed.get("xrdnb")
    text = dist.read_text("direct_url.json") if dist is not None else None
    if not text:
        return False
    direct = json.loads(text)
    return direct.get("dir_info", {}).get("editable", False) and direct.get("url") == ROOT.as_uri()


def _editable_extras(line: str) -> set[str]:
    """The extras of ``pip install -e .[a,b]`` (quoted or not) in a command or requirements line, or none."""
    match = re.search(r"-e '?\.\[([^\]]*)\]", line)
    return set(match[1].split(",")) if match else set()


def _requirements(extras=EXTRAS) -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    return [Requirement(line) for line in lines]


def test_lock_is_portable_and_pins_torch():
    pins = _pins()
    assert pins.get("torch") == TORCH_PIN, "make and CI install torch 2.13.0 (the CPU wheel on this machine)"
    assert "xrdnb" not in pins, "the lock pins the dependencies, not the package itself"
    assert {"pip", "setuptools", "numpy", "pymatgen", "chgnet", "jupyter-book", "pytest", "ruff", "mypy"} <= set(pins)


def test_lock_satisfies_pyproject():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} (pyproject.toml) has no pin in constraints.txt: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt pins {name}=={pins[name]}, {req}"


def test_pyproject_torch_is_a_2x_range():
    (torch,) = [req for req in _requirements(extras=[]) if req.name == "torch"]
    for version in (TORCH_PIN, TORCH_PIN + "+cpu", "2.3.0", "2.5.0", "2.9.1", "2.14.1"):
        assert torch.specifier.contains(version), f"pyproject's {torch} refuses torch {version}"
    assert not torch.specifier.contains("3.0.0"), f"{torch}: a new major release is not promised to work"
    assert not torch.specifier.contains("1.13.1")


def test_installed_versions_are_the_pinned_ones():
    installed = _installed()
    if not _installed_from_this_tree(installed):
        pytest.skip("xrdnb is not installed editable from this tree, so this environment was not made by make")
    wrong = []
    for name, pinned in _pins().items():
        dist = installed.get(name)
        # A local label is the build (torch 2.13.0+cpu); the pin, without one, fits every build.
        if dist is not None and Version(Version(dist.version).public) != Version(pinned):
            wrong.append(f"{name} {dist.version} (pinned {pinned})")
    assert not wrong, "installed versions differ from constraints.txt: " + ", ".join(wrong)


def test_lock_covers_what_make_installs():
    """Every distribution that xrdnb[all extras] pulls in, as installed here, is pinned."""
    installed = _installed()
    if not _installed_from_this_tree(installed):
        pytest.skip("xrdnb is not installed editable from this tree, so this environment was not made by make")
    pins = _pins()
    todo = [("xrdnb", tuple(EXTRAS))]
    seen, missing = set(), []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name not in installed:
            continue
        seen.add((name, extras))
        if name != "xrdnb" and name not in pins:
            missing.append(name)
        for line in installed[name].requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or ("",)):
                todo.append((canonicalize_name(req.name), tuple(sorted(req.extras))))
    assert not missing, f"installed but not pinned in constraints.txt (run make lock): {sorted(set(missing))}"


def test_make_installs_torch_first_then_the_package_from_the_lock():
    # make -n prints the recipe with its variables expanded and runs nothing; -B as if .venv were new.
    make = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    installs = [line for line in make.stdout.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    torch_at = next(i for i, line in enumerate(installs) if f"torch=={TORCH_PIN}" in line)
    package_at = next(i for i, line in enumerate(installs) if _editable_extras(line) == set(EXTRAS))
    assert torch_at < package_at, installs
    database = subprocess.run(["make", "-pn", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True).stdout
    prerequisites = {
        word for line in database.splitlines() if line.startswith(".venv/.installed: ") for word in line.split()[1:]
    }
    assert {"pyproject.toml", "constraints.txt"} <= prerequisites


def test_conda_environment_installs_from_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [dep for dep in env["dependencies"] if isinstance(dep, str)]
    (pip,) = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    assert "-c constraints.txt" in pip
    assert any(_editable_extras(line) == set(EXTRAS) for line in pip), pip
    assert not any(dep.split("=")[0].strip() in {"torch", "pytorch"} for dep in conda), "torch comes from pip"
    assert any(dep.startswith("python=3.11") for dep in conda)


def _clean_pip_env() -> dict[str, str]:
    """No pip configuration of this machine (find-links, extra indexes, constraints): only what the test says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("test\n")
    (info / "RECORD").write_text("")


def _fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A metadata-only wheel, as an index would offer it."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_wheel_install_keeps_another_torch(tmp_path):
    """``pip install xrdnb`` (the wheel) beside torch 2.5.0 installs xrdnb and leaves torch alone.

    The wheel is built offline from a copy of the tree. A venv without pip sees this environment's packages
    through a ``.pth`` file, but its own site-packages, first on sys.path, holds a metadata-only torch 2.5.0
    (and an xrdnb 0.0.0) that shadow the real ones, as pip's first-found-wins scan of sys.path sees them. pip
    then resolves with no index, only a folder offering torch 2.13.0 (metadata only): a requirement that
    2.5.0 does not meet (``torch==2.13.0``) plans to replace it.
    """
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / "xrdnb", src / "xrdnb", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = _clean_pip_env()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + ["-w", str(tmp_path / "dist"), str(src)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("xrdnb-*.whl")

    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    here = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "project-env.pth").write_text("".join(f"{path}\n" for path in here))
    _fake_dist(site, "torch", "2.5.0")
    _fake_dist(site, "xrdnb", "0.0.0")

    _fake_wheel(tmp_path / "offered", "torch", TORCH_PIN)
    report = tmp_path / "report.json"
    dry_run = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--no-index", "--report", str(report), "-q"]
        + ["--find-links", str(tmp_path / "offered"), str(wheel)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    planned = {
        item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(report.read_text())["install"]
    }
    assert planned == {"xrdnb": PYPROJECT["project"]["version"]}, (
        f"beside torch 2.5.0, pip install xrdnb plans {planned}"
    )
