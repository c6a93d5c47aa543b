import time

import pandas as pd

import xrdnb
from xrdnb.run_record import RunRecord, chapter_record, environment


class _Study:
    def record(self):
        return pd.Series({"profile": "book", "copies per cell": 4}, name="value")


def test_record_is_collapsed_in_html_and_escaped():
    record = RunRecord("Run record: <x>", {"a & b": "<1>"})
    html = record._repr_html_()
    assert html.startswith('<details class="xrdnb-run-record"><summary>')
    assert "open" not in html.split(">")[0], "the record starts collapsed"
    assert "&lt;x&gt;" in html and "a &amp; b" in html and "&lt;1&gt;" in html
    assert "<1>" not in html


def test_text_form_lists_every_entry_in_two_aligned_columns():
    text = str(RunRecord("T", {"a": "1", "longer": "2"}))
    assert text.splitlines() == ["T", "  a       1", "  longer  2"]


def test_chapter_record_has_profile_wall_time_sweep_and_versions(monkeypatch):
    monkeypatch.setenv("XRDNB_PROFILE", "smoke")
    record = chapter_record("Gradient descent", time.perf_counter() - 5.0, study=_Study(), extra={"loss": "cosine"})
    entries = record.entries
    assert entries["book profile"] == "smoke"
    assert 5.0 <= float(entries["wall time"].removesuffix(" s")) < 60
    assert entries["sweep profile"] == "book" and entries["sweep copies per cell"] == "4"
    assert entries["loss"] == "cosine"
    assert f"xrdnb {xrdnb.__version__}" in entries["packages"]
    assert record.title.startswith("Run record: Gradient descent (smoke, ")


def test_interactive_run_says_so_and_missing_packages_are_named(monkeypatch):
    monkeypatch.delenv("XRDNB_PROFILE", raising=False)
    record = chapter_record("Explorer", time.perf_counter())
    assert record.entries["book profile"].startswith("interactive")
    assert "no-such-distribution (not installed)" in environment(("no-such-distribution",))["packages"]
