"""The design card, checked: small modules with one job, thin chapters that define no machinery."""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

MODULE_LINES = 500
"""Lines a module of ``xrdnb/`` may have unless it is listed in :data:`COHESIVE`."""

COHESIVE = {
    "explore.py": "the explorer view: widgets, observers and live figures of one object (its state: exploration.py)",
    "landscape.py": "slices, cuts, minima and roughness of one landscape: one data type and its measures",
    "losses.py": "the four losses of SI §1.2 with their shared peak-matching and normalisation",
    "optimize.py": "the Adam loop, its batched state and stopping rule: one engine",
    "peak_shapes.py": "one peak shape and its two renderers (the dense reference, the windowed one with FFT tails)",
    "relax.py": "the CHGNet edge: the model, relaxations, energies and their lattice gradients from the stress",
    "relax_sweep.py": "the CHGNet sweep's cells, profiles and runner: one resumable experiment, like sweep.py",
    "sweep.py": "cells, their files and claims, and the runner that fills them: one resumable store",
}
"""Modules above :data:`MODULE_LINES` lines that are one cohesive thing, with the reason."""

HIDDEN = {"remove-input", "remove-cell", "hide-input", "hide-cell"}
VISIBLE_CODE_LINES = 150
"""Code lines a reader sees in a chapter (the aim), unless :data:`LONGER_CHAPTERS` says why not."""

LONGER_CHAPTERS = {
    "01_xrd_representation": (
        180,
        "walks through the SI §1.2 pipeline one stage at a time: the package calls are the content",
    ),
}
FUNCTION_LINES = 5


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def visible_code_lines(path) -> int:
    """Non-blank, non-comment code lines of the cells a reader sees on the rendered page."""
    count = 0
    for cell in _code_cells(path):
        if HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
            continue
        lines = "".join(cell["source"]).splitlines()
        count += sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))
    return count


@pytest.mark.parametrize("path", sorted((ROOT / "xrdnb").rglob("*.py")), ids=lambda p: p.name)
def test_modules_are_small_or_one_cohesive_thing(path):
    lines = len(path.read_text().splitlines())
    if path.name in COHESIVE:
        return
    assert lines <= MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it or say why it is one thing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_define_no_machinery(path):
    for cell in _code_cells(path):
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert not isinstance(node, ast.ClassDef), f"{path.stem} defines class {node.name}"
                assert length <= FUNCTION_LINES, f"{path.stem} defines {node.name} ({length} lines): move it to xrdnb"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_are_short_to_read(path):
    count = visible_code_lines(path)
    limit = LONGER_CHAPTERS.get(path.stem, (VISIBLE_CODE_LINES, ""))[0]
    assert count <= limit, f"{path.stem} shows {count} code lines (aim: {VISIBLE_CODE_LINES})"


READER_FILES = [
    *CHAPTERS,
    *sorted((ROOT / "book").glob("*.md")),
    ROOT / "README.md",
    *sorted((ROOT / "xrdnb").rglob("*.py")),
]


@pytest.mark.parametrize("path", READER_FILES, ids=lambda p: p.name)
def test_pages_cite_only_what_the_repository_holds(path):
    """The paper's notes outside the repository (``../shared``) are not the reader's: pages link to the book."""
    text = path.read_text()
    assert "shared/" not in text and "study-facts" not in text, f"{path.name} points at a file outside the repository"
