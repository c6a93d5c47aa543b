"""The run record a chapter ends with: which run, at what scale, how long, with which software.

Every chapter closes with :func:`chapter_record`. In the rendered book and in JupyterLab it is a
collapsed ``<details>`` block (click to open), so it is at hand without interrupting the text; as
plain text (papermill logs, a terminal) it is a two-column listing.

>>> record = RunRecord("Run record", {"profile": "smoke", "wall time": "3.2 s"})
>>> print(record)
Run record
  profile    smoke
  wall time  3.2 s
>>> "<details" in record._repr_html_()
True
"""

from __future__ import annotations

import datetime
import html
import importlib.metadata as metadata
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "RunRecord", "chapter_record", "environment"]

PACKAGES = ("xrdnb", "torch", "numpy", "scipy", "pandas", "pymatgen", "matplotlib")
"""Distributions whose versions every run record lists (a chapter can add its own)."""


@dataclass(frozen=True)
class RunRecord:
    """A titled list of ``name → value`` strings, shown collapsed in HTML and as two columns in text."""

    title: str
    entries: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        """The record as text: the title, then one indented ``name  value`` line per entry."""
        width = max((len(name) for name in self.entries), default=0)
        lines = [self.title, *(f"  {name:<{width}}  {value}" for name, value in self.entries.items())]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in self.entries.items()
        )
        return (
            f'<details class="xrdnb-run-record"><summary>{html.escape(self.title)}</summary>'
            f'<table class="xrdnb-run-record-table"><tbody>{rows}</tbody></table></details>'
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _git_commit(start: Path) -> str | None:
    """The commit of the checkout holding ``start`` (``+ changes`` when the tree is dirty), or None."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=start, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit} + uncommitted changes" if dirty else commit


def environment(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python, the machine, the package versions and the commit of the running environment."""
    import torch

    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    out = {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPU cores, "
        f"{torch.get_num_threads()} torch thread(s)",
        "packages": ", ".join(versions),
    }
    commit = _git_commit(Path(__file__).resolve().parent)
    if commit:
        out["commit"] = commit
    return out


def chapter_record(
    chapter: str,
    started: float,
    *,
    study: Any = None,
    extra: Mapping[str, object] | None = None,
    packages: tuple[str, ...] = PACKAGES,
) -> RunRecord:
    """The record a chapter ends with.

    Parameters
    ----------
    chapter
        The chapter's title (the record's heading says ``Run record: <chapter>``).
    started
        :func:`time.perf_counter` at the chapter's start: the wall time is measured from it.
    study
        The chapter's :class:`xrdnb.runs.StudyRun`, if it analyses a sweep: its
        :meth:`~xrdnb.runs.StudyRun.record` (profile, cells, copies, steps, learning rates) is included.
    extra
        Further ``name → value`` entries of the chapter (its settings); values are formatted with ``str``.
    packages
        Distributions whose versions are listed.
    """
    seconds = time.perf_counter() - started
    entries = {
        "book profile": os.environ.get("XRDNB_PROFILE", "interactive (not run by the book build)"),
        "executed": f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "wall time": f"{seconds:.1f} s",
    }
    if study is not None:
        entries.update({f"sweep {name}": str(value) for name, value in study.record().items()})
    entries.update({name: str(value) for name, value in (extra or {}).items()})
    entries.update(environment(packages))
    return RunRecord(f"Run record: {chapter} ({entries['book profile'].split(' ')[0]}, {seconds:.0f} s)", entries)
