"""The book's chapter notebooks: structure, parameter tables and `notebooks/profiles.yml`.

Every notebook chapter of ``_toc.yml`` must

* have exactly one cell tagged ``parameters`` and be stored without outputs;
* open with a markdown ``# `` title and, before the parameters cell, a parameter table with
  the columns ``| name | default | meaning | paper | `paper` profile |`` that names every
  variable of the parameters cell in its first column (backticked; a row may group several);
* state in the table's last column what the ``paper`` profile of ``notebooks/profiles.yml``
  sets, or ``(default)`` where it sets nothing;
* except for the last chapter, end with a markdown cell ``## Where this leaves the argument``
  that links the next chapter with ``{doc}``.

``notebooks/profiles.yml`` may only name chapters of the toc and parameters of their
parameters cells (``tools/build_book.py`` checks the chapter names but not the parameters).

The checks read JSON and YAML only: nothing is executed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)
TOC = ROOT / "_toc.yml"
PROFILES = ROOT / "notebooks" / "profiles.yml"
HEADER = ["name", "default", "meaning", "paper", "`paper` profile"]
DEFAULT = "(default)"
CLOSING = "## Where this leaves the argument"


# --------------------------------------------------------------------------- helpers


def _toc_files(node) -> list[str]:
    return build_book.toc_files(node)


def toc_chapters() -> list[str]:
    """Stems of the notebook chapters of ``_toc.yml`` (``file: notebooks/...``), in order."""
    toc = yaml.safe_load(TOC.read_text())
    stems = []
    for entry in _toc_files(toc):
        if entry.startswith("notebooks/"):
            stem = Path(entry).name
            stem = stem[: -len(".ipynb")] if stem.endswith(".ipynb") else stem
            if "/" not in entry[len("notebooks/") :] and stem not in stems:
                stems.append(stem)
    return stems


CHAPTERS = toc_chapters()


def notebook_path(stem: str) -> Path:
    return ROOT / "notebooks" / f"{stem}.ipynb"


def load(stem: str):
    path = notebook_path(stem)
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist yet")
    return nbformat.read(path, as_version=4)


def parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def parameter_names(source: str) -> list[str]:
    """Variables assigned at the top level of a parameters cell."""
    names: list[str] = []

    def add(target):
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                add(element)

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(target)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            add(node.target)
    return list(dict.fromkeys(names))


def split_row(line: str) -> list[str]:
    """Cells of one markdown table row; pipes inside backticks or escaped as ``\\|`` do not split."""
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells, current, in_code, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            current += "|"
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    cells.append(current.strip())
    return cells


def markdown_tables(source: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of every pipe table in a markdown text."""
    lines = source.splitlines()
    tables = []
    i = 0
    while i + 1 < len(lines):
        if lines[i].lstrip().startswith("|") and re.fullmatch(
            r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[i + 1]
        ):
            header = split_row(lines[i])
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append(split_row(lines[j]))
                j += 1
            tables.append((header, rows))
            i = j
        else:
            i += 1
    return tables


def parameter_table(nb) -> list[list[str]]:
    """Rows of the five-column parameter table in the markdown before the parameters cell."""
    before = nb.cells[: parameters_index(nb)]
    found = []
    for cell in before:
        if cell.cell_type == "markdown":
            found += [rows for header, rows in markdown_tables(cell.source) if header == HEADER]
    headers = [
        header for cell in nb.cells if cell.cell_type == "markdown" for header, _ in markdown_tables(cell.source)
    ]
    assert found, (
        f"no parameter table with header | {' | '.join(HEADER)} | before the parameters cell; "
        f"table headers found: {headers}"
    )
    assert len(found) == 1, "more than one parameter table before the parameters cell"
    return found[0]


def row_for(rows: list[list[str]], name: str) -> list[str] | None:
    for row in rows:
        if name in re.findall(r"`([^`]+)`", row[0]):
            return row
    return None


def value_texts(value) -> list[str]:
    """Ways the text of a profile value may be written (a list: its first element)."""
    if isinstance(value, (list, tuple)):
        return ["[]"] if not value else value_texts(value[0])
    if isinstance(value, bool):
        return [str(value), str(value).lower()]
    if isinstance(value, float):
        return list(dict.fromkeys([str(value), repr(value), f"{value:g}"]))
    return [str(value)]


def profiles() -> dict:
    return yaml.safe_load(PROFILES.read_text()) or {}


# --------------------------------------------------------------------------- tests


def test_toc_has_notebook_chapters():
    assert CHAPTERS, "_toc.yml lists no notebook chapters under notebooks/"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_one_parameters_cell(stem):
    nb = load(stem)
    i = parameters_index(nb)
    assert nb.cells[i].cell_type == "code"
    assert parameter_names(nb.cells[i].source), "the parameters cell assigns no variable"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_stored_without_outputs(stem):
    nb = load(stem)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"code cells with outputs or an execution count: {dirty} (clear them before committing)"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_cells_have_unique_ids(stem):
    """nbformat 4.5 cell ids, read from the raw file (nbformat.read would add missing ones with a warning)."""
    path = notebook_path(stem)
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} does not exist yet")
    raw = json.loads(path.read_text(encoding="utf-8"))
    ids = [c.get("id") for c in raw["cells"]]
    missing = [i for i, x in enumerate(ids) if not x]
    assert not missing, f"cells without an id: {missing} (nbformat 4.5; papermill warns and will fail in future)"
    assert len(set(ids)) == len(ids), "duplicate cell ids"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_opens_with_title(stem):
    nb = load(stem)
    first = nb.cells[0]
    assert first.cell_type == "markdown", "the first cell must be markdown"
    assert first.source.startswith("# "), "the first cell must start with a '# ' title"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_parameter_table_names_every_parameter(stem):
    nb = load(stem)
    rows = parameter_table(nb)
    bad = [row for row in rows if len(row) != len(HEADER)]
    assert not bad, f"rows without exactly {len(HEADER)} columns: {bad}"
    names = parameter_names(nb.cells[parameters_index(nb)].source)
    missing = [n for n in names if row_for(rows, n) is None]
    assert not missing, f"parameters without a row (backticked in the first column): {missing}"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_parameter_table_states_the_paper_profile(stem):
    nb = load(stem)
    rows = parameter_table(nb)
    names = parameter_names(nb.cells[parameters_index(nb)].source)
    paper = (profiles().get("paper") or {}).get(stem) or {}
    problems = []
    for name in names:
        row = row_for(rows, name)
        if row is None or len(row) != len(HEADER):
            continue  # reported by test_parameter_table_names_every_parameter
        cell = row[-1]
        if name in paper:
            texts = value_texts(paper[name])
            if cell == DEFAULT or not any(t in cell for t in texts):
                problems.append(f"{name}: the paper profile sets {paper[name]!r}, the table says {cell!r}")
        elif cell != DEFAULT:
            problems.append(
                f"{name}: the paper profile does not set it, so the table should say {DEFAULT!r}, not {cell!r}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stem", CHAPTERS)
def test_says_how_to_run_it_from_a_clone(stem):
    """The first cell's tip opens this very notebook in JupyterLab and re-runs it with real parameters."""
    nb = load(stem)
    intro = nb.cells[0].source
    name = notebook_path(stem).relative_to(ROOT).as_posix()
    assert "Run this chapter yourself" in intro
    assert f".venv/bin/jupyter lab {name}\n" in intro
    assert f".venv/bin/papermill {name} out.ipynb --cwd notebooks" in intro
    command = intro.split(f".venv/bin/papermill {name}")[1].split("```")[0]
    names = parameter_names(nb.cells[parameters_index(nb)].source)
    passed = re.findall(r"-p (\w+) ", command) + re.findall(r"-y '(\w+):", command)
    assert passed and set(passed) <= set(names), f"{passed} are not all parameters of the chapter"
    assert "make .venv/.installed" in intro


@pytest.mark.parametrize("stem", CHAPTERS[:-1])
def test_closes_with_where_the_argument_goes(stem):
    nb = load(stem)
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.lstrip().startswith(CLOSING), (
        f"the last cell must be markdown starting with {CLOSING!r}"
    )
    following = CHAPTERS[CHAPTERS.index(stem) + 1]
    link = re.compile(r"\{doc\}`(?:[^`<]*<)?(?:\.\./notebooks/|\./)?" + re.escape(following) + r">?`")
    assert link.search(last.source), f"the closing cell does not link the next chapter with {{doc}}`{following}`"


def test_profiles_name_chapters_and_their_parameters():
    data = profiles()
    assert isinstance(data, dict) and data, "notebooks/profiles.yml must map profile names to notebooks"
    assert {"smoke", "book", "paper"} <= set(data)
    problems = []
    for profile, notebooks in data.items():
        notebooks = notebooks or {}
        assert isinstance(notebooks, dict), f"profile {profile!r} must map notebook stems to parameters"
        for stem, params in notebooks.items():
            if stem not in CHAPTERS:
                problems.append(f"{profile}: {stem!r} is not a notebook chapter of _toc.yml")
                continue
            params = params or {}
            if not isinstance(params, dict):
                problems.append(f"{profile}/{stem}: parameters must be a mapping")
                continue
            if not notebook_path(stem).is_file():
                continue  # listed in the toc but not written yet: its parameters cannot be checked
            nb = nbformat.read(notebook_path(stem), as_version=4)
            known = set(parameter_names(nb.cells[parameters_index(nb)].source))
            unknown = sorted(set(params) - known)
            if unknown:
                problems.append(f"{profile}/{stem}: {unknown} are not in its parameters cell")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the helpers themselves


def test_helpers():
    assert split_row("| `a`, `b` | `[1, 2]` | x \\| y | `p|q` |") == ["`a`, `b`", "`[1, 2]`", "x | y", "`p|q`"]
    text = "intro\n\n| name | default |\n| --- | --- |\n| `x` | `1` |\n\nafter"
    assert markdown_tables(text) == [(["name", "default"], [["`x`", "`1`"]])]
    assert parameter_names("a = 1\nb: int = 2\nc, d = 3, 4\nif a:\n    e = 5\n") == ["a", "b", "c", "d"]
    assert value_texts([0.01, 0.1]) == ["0.01"] and value_texts([]) == ["[]"] and value_texts("paper") == ["paper"]
