"""The commands of book/run-it-yourself.md that are marked as cheap really run.

How blocks are marked
    A fenced ``bash`` block whose fence line comes directly after a MyST comment line
    ``% test: run`` (a comment renders nothing). The marker may name the files the block must
    write, relative to the repository root, as globs: ``% test: run creates: results/x/*.csv``.

How they run
    The page's commands are written for a reader at the repository root with the virtual
    environment active. The test copies the repository's sources (everything except ``.git``,
    ``.venv``, ``_build``, ``results`` and caches; a few MB) into a temporary folder once, and
    runs every marked block there with ``bash -euo pipefail``, in page order, with the folder of
    ``sys.executable`` (the environment running pytest, whichever it is) first on ``PATH``, so
    ``xrdnb``, ``papermill`` and ``python`` are that environment's. Relative paths therefore mean
    what they mean for the reader, and whatever the commands write lands in the copy, never in
    the repository. After each block, its exit status must be 0 and every ``creates:`` glob must
    match at least one non-empty file in the copy.

The page must mark at least :data:`MIN_BLOCKS` blocks, so that an emptied or renamed page cannot
pass silently. The marked blocks are chosen to take about a minute together.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "run-it-yourself.md"
MIN_BLOCKS = 6
BLOCK_TIMEOUT_S = 300
NOT_COPIED = {
    ".git",
    ".venv",
    "_build",
    "results",
    ".pytest_cache",
    "__pycache__",
    ".ipynb_checkpoints",
    ".cache",
    "my-sweep.yml",
}
MARKER = re.compile(r"^% test: run(?:\s+creates:\s*(?P<creates>.*?))?\s*$")


@dataclass
class Block:
    line: int  # 1-based line of the marker in the page
    script: str
    creates: list[str]

    @property
    def id(self) -> str:
        first = self.script.strip().splitlines()[0]
        return f"L{self.line}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', first)[:40]}"


def parse_page(text: str) -> tuple[list[Block], list[str]]:
    """Marked blocks of the page, and problems with markers (a marker not followed by a bash fence)."""
    lines = text.splitlines()
    blocks, problems = [], []
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            if line.startswith("% test:"):
                problems.append(f"line {i + 1}: unreadable marker {line!r}")
            continue
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        opening = re.match(r"^(`{3,})bash\s*$", fence)
        if not opening:
            problems.append(
                f"line {i + 1}: '% test: run' must be directly followed by a ```bash fence, found {fence!r}"
            )
            continue
        body = []
        for j in range(i + 2, len(lines)):
            if lines[j].strip() == opening.group(1):
                break
            body.append(lines[j])
        else:
            problems.append(f"line {i + 1}: the bash block is never closed")
            continue
        creates = (match.group("creates") or "").split()
        blocks.append(Block(i + 1, "\n".join(body) + "\n", creates))
    return blocks, problems


BLOCKS, PROBLEMS = parse_page(PAGE.read_text(encoding="utf-8")) if PAGE.is_file() else ([], [f"{PAGE} is missing"])


def test_page_marks_enough_blocks():
    assert not PROBLEMS, "\n".join(PROBLEMS)
    assert len(BLOCKS) >= MIN_BLOCKS, (
        f"only {len(BLOCKS)} blocks marked '% test: run' in {PAGE.name}; expected at least {MIN_BLOCKS}"
    )
    assert sum(bool(b.creates) for b in BLOCKS) >= 3, (
        "at least three marked blocks should declare the files they write (creates:)"
    )


def test_parser_reads_markers():
    text = (
        "% test: run creates: a/*.csv b.txt\n```bash\necho hi\n```\n\n"
        "% test: run\n````bash\nls\n````\n% test: run\n```python\nx\n```\n"
    )
    blocks, problems = parse_page(text)
    assert [(b.line, b.script, b.creates) for b in blocks] == [(1, "echo hi\n", ["a/*.csv", "b.txt"]), (6, "ls\n", [])]
    assert len(problems) == 1 and "line 10" in problems[0]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the repository's sources to run the page's commands in."""
    copy = tmp_path_factory.mktemp("run-it-yourself") / "xrdnb"

    def ignore(folder, names):
        return [n for n in names if n in NOT_COPIED or n.endswith(".egg-info")]

    shutil.copytree(ROOT, copy, ignore=ignore, symlinks=True)
    return copy


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs(block: Block, checkout: Path):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env.pop("XRDNB_PROFILE", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    report = (
        f"block at {PAGE.name}:{block.line} failed with exit status {result.returncode}\n"
        f"--- script\n{block.script}--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    assert result.returncode == 0, report
    for pattern in block.creates:
        found = [p for p in checkout.glob(pattern) if p.is_file()]
        assert found, f"{PAGE.name}:{block.line}: no file matches {pattern!r} after the block ran\n{report}"
        empty = [str(p.relative_to(checkout)) for p in found if p.stat().st_size == 0]
        assert not empty, f"{PAGE.name}:{block.line}: empty files {empty}"
