"""The static site's files: one page per suite, task, model and dataset, CSV that no spreadsheet runs."""

from __future__ import annotations

import csv

from polymodal.leaderboard import build_leaderboard, write_site
from polymodal.leaderboard.suites import load_suites
from tests.leaderboard.results import make_result, write


def test_pages_tables_and_reproduce_commands(tmp_path):
    official = load_suites()["polymodal-v1"]["tasks"][0]["datasets"][2]  # xor, p_hat=1
    write(tmp_path / "results", "a.json", make_result(model="=HYPERLINK(\"x\")", dataset_id=official["dataset_id"],
                                                      label="p_hat=1", p_hat=1.0, digest="ab" * 8))
    write(tmp_path / "results", "b.json", make_result(model="b", dataset_id=official["dataset_id"], label="p_hat=1",
                                                      p_hat=1.0, digest="ab" * 8, value=0.1))
    board = build_leaderboard(tmp_path / "results")
    site = write_site(board, tmp_path / "site").parent
    names = sorted(p.name.split("-")[0] for p in site.glob("*.html"))
    assert names == ["dataset", "index.html", "model", "model", *["suite"] * len(load_suites()), "task"]
    (dataset_page,) = site.glob("dataset-*.html")
    html = dataset_page.read_text()
    assert "abababababababab" in html and official["command"] in html
    (table,) = site.glob("csv/task-*.csv")
    rows = list(csv.reader(table.open()))
    assert rows[0][:3] == ["rank", "group", "model"] and [r[2] for r in rows[1:]] == ["'=HYPERLINK(\"x\")", "b"]
    assert (site / "plots").is_dir() and (site / "assets" / "site.js").is_file()
