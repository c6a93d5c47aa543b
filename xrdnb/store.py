"""Result files of resumable experiments: atomic writes, completeness checks and claims.

Every resumable experiment of the package (the gradient-descent sweep, :mod:`xrdnb.sweep`;
the CHGNet relaxations, :mod:`xrdnb.relax_sweep`) stores one finished cell as a CSV of tidy
rows, ``<folder>/<cell id>.csv``, plus companion files beside it (same stem, other
suffixes: trajectories, structures). This module is how they are written and read back:

* :func:`write_cell` writes the companions first and the CSV last, each under a temporary
  name of this process and then renamed (``os.replace``), so a file is either absent or
  whole, and the CSV's presence means "done" — a ``kill -9`` loses at most the cells in flight;
* :func:`is_complete` checks a CSV has a header and the expected number of rows and that
  its companions exist (a truncated file does not count, so the cell runs again);
* :func:`claim` / :func:`release`: an exclusive ``<cell id>.claim`` file per cell in flight,
  so that two processes working on one folder do not compute the same cell. A claim whose
  process has ended on this host is stale and taken over.

>>> import tempfile, pandas as pd
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "cells" / "demo.csv"
>>> write_cell(path, pd.DataFrame({"copy": [0, 1]}), {".txt": lambda h: h.write(b"x")})
>>> is_complete(path, 2, (".txt",)), is_complete(path, 3, (".txt",))
(True, False)
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["write_cell", "is_complete", "claim", "release", "process_token", "check_writable"]


def write_cell(path: Path, rows: pd.DataFrame, companions: Mapping[str, Callable] = {}) -> None:
    """Write ``rows`` to ``path`` (CSV) and each companion ``path.with_suffix(suffix)``, atomically.

    Parameters
    ----------
    path
        the CSV's path; its folder is created.
    rows
        the cell's tidy rows (written without the index).
    companions
        ``{suffix: write(binary_handle)}``, written before the CSV, in order.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.tmp"  # temporary names of this process only: two writers never share one
    for suffix, write in companions.items():
        tmp = path.with_suffix(f"{suffix}.{tag}")
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path.with_suffix(suffix))
    tmp = path.with_suffix(f".csv.{tag}")
    rows.to_csv(tmp, index=False)
    os.replace(tmp, path)  # the CSV appears last and whole: its presence (complete) means "done"


def is_complete(path: Path, n_rows: int, companions: Sequence[str] = ()) -> bool:
    """Whether ``path`` holds a header and ``n_rows`` rows and every companion suffix exists beside it."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            lines = handle.read().count(b"\n")
    except OSError:
        return False
    return lines == n_rows + 1 and all(path.with_suffix(s).exists() for s in companions)


def process_token(pid: int) -> str | None:
    """A token that changes when ``pid`` is reused (its start time on Linux); None if no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def claim(path: Path) -> bool:
    """Take the cell of CSV ``path`` for this process (``<stem>.claim``); False if a live process holds it.

    A claim whose process has ended on this host (killed, crashed) is stale and taken over.
    Claims of other hosts are respected: remove the file by hand if that host is gone.
    """
    claim_path = Path(path).with_suffix(".claim")
    claim_path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "token": process_token(os.getpid())}
    for _ in range(2):
        try:
            fd = os.open(claim_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(claim_path)
            if _is_this_process(holder):
                return True
            if not holder:  # being written right now, or left empty by a crash long ago
                try:
                    if time.time() - claim_path.stat().st_mtime < 10:
                        return False
                except OSError:
                    continue
            alive = holder.get("host") != mine["host"] or (
                isinstance(holder.get("pid"), int) and process_token(holder["pid"]) == holder.get("token")
            )
            if alive and holder:
                return False
            claim_path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        return True
    return False


def _holder(claim_path: Path) -> dict:
    """Who holds a claim (``host``, ``pid``, ``token``); empty when the file is missing, empty or unreadable."""
    try:
        return json.loads(claim_path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _is_this_process(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid()


def release(path: Path) -> None:
    """Drop this process's claim of the cell of CSV ``path`` (nothing if there is none, or another's)."""
    claim_path = Path(path).with_suffix(".claim")
    if _is_this_process(_holder(claim_path)):
        claim_path.unlink(missing_ok=True)


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a probe file in it; OSError naming the folder if that fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"results folder {folder} is not writable ({exc.strerror or exc})") from None
