"""A hostile results folder: what is rejected and why, and that nothing in it reaches report.md, the terminal or
the site as markup, a link, a heading or an escape sequence."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from polymodal.leaderboard import build_leaderboard, write_report, write_site
from polymodal.leaderboard.text import plain
from tests.helpers import ROOT
from tests.leaderboard.hostile import EVIL, HOSTILE, NEWLINE_FILE, RANKED, write_hostile_results

MARKUP = re.compile(r"<\s*(script|img|a|svg|iframe)\b", re.IGNORECASE)


@pytest.fixture
def hostile(tmp_path) -> Path:
    write_hostile_results(tmp_path / "results", tmp_path / "outside")
    return tmp_path


def test_what_is_rejected_and_why(hostile):
    board = build_leaderboard(hostile / "results")
    reasons = {item["path"]: item["reason"] for item in board["rejected"]}
    assert set(reasons) == {"impostor.json", "future.json", NEWLINE_FILE, "below.json", "task.json", "linked.json"}
    assert "is reserved for the reference model 'symile'" in reasons["impostor.json"]
    assert "9999-12-31T00:00:00Z is in the future" in reasons["future.json"]
    assert "7.5 is outside its declared range [0, 1]" in reasons[NEWLINE_FILE]
    assert "-5 is outside its declared range [0, 1]" in reasons["below.json"]
    assert "task.name" in reasons["task.json"]
    assert "not followed" in reasons["linked.json"]
    assert board["skipped"] == 1  # the manifest
    task = board["tasks"]["xor@1.0"]
    assert [e["model"] for e in task["entries"]] == RANKED
    assert [(e["model"], e["coverage"]) for e in task["partial"]] == [("lone", [0, 3])]
    assert [d["params"]["p_hat"] for d in task["other_datasets"]] == [0.7]


def test_report_md_holds_no_markup_link_heading_or_control_character(hostile):
    text = write_report(build_leaderboard(hostile / "results"), hostile / "report").read_text()
    assert not MARKUP.search(text), MARKUP.search(text)
    assert not re.search(r"(?<!\\)\]\(javascript:", text)  # no Markdown link survives
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", text)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert all(not line.startswith("# Injected") and "Injected" not in line for line in headings), headings
    # Escaped, the hostile text is still there to read.
    assert "evil&lt;script&gt;window.pwned=1;document.title='pwned'&lt;/script&gt;" in text
    assert r"\[click\](javascript:window.pwned=1)" in text
    assert "- bad # Injected heading &lt;script&gt;x&lt;/script&gt;.json: metrics.acc1: 7.5 is outside" in text


def test_the_terminal_gets_no_escape_sequence(hostile):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "polymodal.leaderboard"]
    built = subprocess.run([*run, "build", "--results", "results", "--out", "board.json"], cwd=hostile, env=env,
                           capture_output=True, text=True, check=False)
    reported = subprocess.run([*run, "report", "--leaderboard", "board.json", "--out", "report"], cwd=hostile,
                              env=env, capture_output=True, text=True, check=False)
    sited = subprocess.run([*run, "site", "--results", "results", "--out", "site"], cwd=hostile, env=env,
                           capture_output=True, text=True, check=False)
    for proc in (built, reported, sited):
        assert proc.returncode == 0, proc.stderr
        output = proc.stdout + proc.stderr
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", output)
        assert not MARKUP.search(output)
    assert "evil&lt;script&gt;" in reported.stdout
    assert "bad # Injected heading" in built.stderr  # the newline in the file name is a space


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_the_site_shows_hostile_strings_as_text_only(hostile):
    board = build_leaderboard(hostile / "results")
    index = write_site(board, hostile / "site")
    pages = sorted(index.parent.glob("*.html"))
    assert len(pages) == 1 + len(board["suites"]) + 1 + len(board["models"]) + len(board["datasets"])  # index, suites, task, ...
    seen = ""
    for page in pages:
        parser = _Tags()
        parser.feed(page.read_text())
        for tag, attrs in parser.tags:
            assert tag != "script" or attrs == {"src": "assets/site.js", "defer": None}, (page.name, attrs)
            assert tag not in ("img", "iframe", "object") or attrs.get("src", "").startswith("plots/"), page.name
            assert not [a for a in attrs if a.startswith("on")], (page.name, tag, attrs)
            assert not attrs.get("href", "").lower().startswith("javascript"), page.name
        seen += "".join(parser.text)
    assert plain(EVIL) in seen and plain(f"GPL{HOSTILE}") in seen and plain(f"xor{HOSTILE}") in seen
    svgs = sorted((hostile / "site" / "plots").glob("*.svg"))
    assert sorted(p.name.endswith("-robustness.svg") for p in svgs) == [False, True]  # the task's plot, its sweep
    for svg in (p.read_text() for p in svgs):
        assert not re.search(r"<\s*(script|img|a|iframe|foreignObject)\b", svg) and "&lt;script&gt;" in svg
    csv_text = next((hostile / "site" / "csv").glob("task-*.csv")).read_text()
    assert "\x1b" not in csv_text and "evil<script>" in csv_text  # CSV is text: its reader escapes nothing
