"""The files of a shipped set: its manifest, the hashes that check it, and the machine that made it.

A shipped set (a sweep's result set, :mod:`xrdnb.result_sets`; a landscape set,
:mod:`xrdnb.landscape_sets`) is a folder of compressed tidy files and a ``manifest.json`` that
names the command, commit, hardware and date, and each file's size and SHA-256. This module
writes those files reproducibly (:func:`write_csv_gz`: the same rows give the same bytes),
describes the machine (:func:`hardware`) and reads a manifest back only when every file it
lists is unchanged (:func:`read_manifest`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["MANIFEST", "sha256", "hardware", "write_csv_gz", "read_manifest"]

MANIFEST = "manifest.json"
"""The file name of every shipped set's manifest."""


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hardware() -> dict[str, Any]:
    """The machine: CPU model, cores, memory (GiB), platform, Python, torch and the GPU if any."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    import torch

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_csv_gz(rows: pd.DataFrame, path: Path) -> None:
    """``rows`` as a gzipped CSV; mtime 0 in the header, so the same rows give the same bytes."""
    buffer = io.BytesIO()
    rows.to_csv(buffer, index=False)
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(buffer.getvalue())


def read_manifest(path: str | os.PathLike, how: str) -> dict[str, Any]:
    """The manifest of the packed folder ``path``, after checking every file it lists (size and SHA-256).

    ``how`` says how the folder is made, for the error when it has no manifest. Raises
    FileNotFoundError (no manifest, or a listed file missing) or ValueError (a file changed).
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no manifest ({how})")
    manifest = json.loads(manifest_path.read_text())
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise FileNotFoundError(f"{file}: listed in the manifest but missing")
        if file.stat().st_size != expected["bytes"] or sha256(file) != expected["sha256"]:
            raise ValueError(f"{file}: does not match the manifest (size or SHA-256); re-pack or fetch it again")
    return manifest
