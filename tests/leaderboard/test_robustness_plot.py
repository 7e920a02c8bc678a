"""The robustness sweep's plot: curves averaged over the corrupted query modalities, drawn as a grid of panels
(a row per dataset, a panel per corruption) in the report and on the task's page; none for older results."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from polymodal.leaderboard import build_leaderboard, read_leaderboard, write_leaderboard, write_report, write_site
from polymodal.leaderboard.plot import CORRUPTIONS, sweep_data
from polymodal.leaderboard.svg import render_sweep_svg
from tests.leaderboard.hostile import EVIL
from tests.leaderboard.results import SWEEP_RATES, make_result, with_sweep, write

SVG = "{http://www.w3.org/2000/svg}"
# Per model, (corruption, modality) -> the accuracy at p = 0, 0.25, 0.5, 0.75, 1; the others fall linearly.
TABLES = {
    "symile": {("missing-own", "a"): [0.9, 0.7, 0.5, 0.3, 0.1], ("missing-own", "c"): [0.9, 0.8, 0.7, 0.6, 0.5]},
    "clip": {("missing-own", "a"): [0.6, 0.6, 0.5, 0.5, 0.4], ("missing-own", "c"): [0.6, 0.4, 0.4, 0.2, 0.2]},
}
SLOPE = {"missing-own": 0.1, "missing-mean": 0.2, "misaligned": 0.4, "noisy": 0.3}


def _value(model: str, clean: float):
    def value(corruption: str, modality: str, p: float) -> float:
        table = TABLES[model].get((corruption, modality))
        if table:
            return table[SWEEP_RATES.index(p)]
        return clean - SLOPE[corruption] * p * (1.0 if modality == "a" else 0.5)
    return value


def _sweep_results(folder, models=("symile", "clip"), p_hats=(0.5, 1.0), name=None):
    for model in models:
        clean = 0.9 if model == "symile" else 0.6
        for p_hat in p_hats:
            write(folder, f"{model}-{p_hat}.json", with_sweep(_value(model, clean), model=name or model, p_hat=p_hat,
                                                              value=clean))


def _points(curve):
    return [(p, pytest.approx(y)) for p, y in curve.points]


def test_curves_are_the_means_over_the_query_modalities_computed_by_hand(tmp_path):
    _sweep_results(tmp_path / "results")
    board = build_leaderboard(tmp_path / "results")
    sweep = sweep_data(board["tasks"]["xor@1.0"])
    assert sweep.corruptions == list(CORRUPTIONS) and sweep.modalities == ["a", "c"]
    assert sweep.models == ["#1 symile", "#2 clip"] and sweep.metric == "acc1"
    assert [row.label for row in sweep.rows] == ["p_hat=0.5", "p_hat=1.0"]
    row = sweep.rows[0]
    assert [(name, y) for name, _, y in row.levels] == [("bayes_bound", 0.28125), ("chance", 0.03125)]
    symile, clip = row.panels["missing-own"]
    assert (symile.label, clip.label) == ("#1 symile", "#2 clip")
    assert _points(symile) == [(0.0, 0.9), (0.25, 0.75), (0.5, 0.6), (0.75, 0.45), (1.0, 0.3)]
    assert _points(clip) == [(0.0, 0.6), (0.25, 0.5), (0.5, 0.45), (0.75, 0.35), (1.0, 0.3)]
    # misaligned: a falls by 0.4 p, c by 0.2 p, so their mean by 0.3 p.
    assert _points(row.panels["misaligned"][0]) == [(0.0, 0.9), (0.25, 0.825), (0.5, 0.75), (0.75, 0.675), (1.0, 0.6)]
    # The per-modality values stay with each curve, and in leaderboard.json, which the report is drawn from.
    assert symile.by_modality["a"] == [(p, v) for p, v in zip(SWEEP_RATES, TABLES["symile"]["missing-own", "a"])]
    path = write_leaderboard(board, tmp_path / "leaderboard.json")
    (entry, _) = read_leaderboard(path)["tasks"]["xor@1.0"]["entries"]
    prefix = "robustness/missing-own/c@"
    kept = {k: v["value"] for k, v in entry["scores"][row.dataset].items() if k.startswith(prefix)}
    assert kept == {f"{prefix}{p:g}": v for p, v in zip(SWEEP_RATES, TABLES["symile"]["missing-own", "c"])}
    assert sweep_data(read_leaderboard(path)["tasks"]["xor@1.0"]) == sweep


def test_a_modality_missing_at_some_rate_averages_what_there_is_and_odd_names_are_no_point(tmp_path):
    result = make_result(model="m")
    result["metrics"] |= {"robustness/noisy/a@0": {"value": 0.8, "n": 9},
                          "robustness/noisy/c@0": {"value": 0.6, "n": 9},
                          "robustness/noisy/a@1": {"value": 0.2, "n": 9},  # c not at p = 1
                          "robustness/noisy/a@1.5": {"value": 0.1, "n": 9},  # no share of the queries
                          "robustness/noisy": {"value": 0.1}, "robustness/noisy/a@high": {"value": 0.1}}
    write(tmp_path, "m.json", result)
    (row,) = sweep_data(build_leaderboard(tmp_path)["tasks"]["xor@1.0"]).rows
    (curve,) = row.panels["noisy"]
    assert curve.points == [(0.0, pytest.approx(0.7)), (1.0, 0.2)] and row.modalities == ["a", "c"]


def test_results_without_the_sweep_draw_no_robustness_plot_and_fail_nothing(tmp_path):
    write(tmp_path / "results", "old.json", make_result(model="old"))
    board = build_leaderboard(tmp_path / "results")
    assert sweep_data(board["tasks"]["xor@1.0"]) is None
    text = write_report(board, tmp_path / "report").read_text()
    assert "-robustness.png" not in text and "Robustness:" not in text
    assert [p.name for p in (tmp_path / "report").glob("*.png")] == ["xor.png"]
    site = write_site(board, tmp_path / "site").parent
    assert [p.name for p in (site / "plots").iterdir()] == [next((site / "plots").iterdir()).name]
    assert "<h2>Robustness</h2>" not in next(site.glob("task-*.html")).read_text()


def test_an_older_result_beside_newer_ones_only_lacks_its_own_curve(tmp_path):
    _sweep_results(tmp_path, models=("symile",), p_hats=(0.5,))
    write(tmp_path, "old.json", make_result(model="old", value=0.1))
    sweep = sweep_data(build_leaderboard(tmp_path)["tasks"]["xor@1.0"])
    assert sweep.models == ["#1 symile", "#2 old"]
    assert all([c.label for c in curves] == ["#1 symile"] for curves in sweep.rows[0].panels.values())


def test_svg_parses_and_has_one_line_per_model_in_each_panel(tmp_path):
    _sweep_results(tmp_path)
    sweep = sweep_data(build_leaderboard(tmp_path)["tasks"]["xor@1.0"])
    root = ET.fromstring(render_sweep_svg(sweep, "xor"))
    panels = root.findall(f".//{SVG}g[@class='panel']")
    assert [p.get("data-corruption") for p in panels] == list(CORRUPTIONS) * 2  # a row of four per dataset
    for panel in panels:
        curves = panel.findall(f"{SVG}polyline[@class='curve']")
        assert len(curves) == 2 and len({c.get("stroke") for c in curves}) == 2
        assert len(panel.findall(f"{SVG}circle")) == 2 * len(SWEEP_RATES)  # a marker at every p
        assert len(panel.findall(f"{SVG}line[@class='level']")) == 2  # Bayes bound and chance
        for curve in curves:  # inside the panel: x and y both span 0..1
            frame = panel.find(f"{SVG}rect")
            x0, y0 = float(frame.get("x")), float(frame.get("y"))
            xs, ys = zip(*(map(float, point.split(",")) for point in curve.get("points").split()))
            assert min(xs) == x0 and max(xs) == x0 + float(frame.get("width"))
            assert all(y0 <= y <= y0 + float(frame.get("height")) for y in ys)
    # The same colour for a model in every panel, and in the legend.
    colours = [[c.get("stroke") for c in p.findall(f"{SVG}polyline")] for p in panels]
    assert all(c == colours[0] for c in colours)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "#1 symile" in texts and "#2 clip" in texts and "missing-own" in texts


def test_a_hostile_model_name_is_escaped_in_the_svg_the_page_and_the_report(tmp_path):
    name = f'{EVIL} & "quoted"'
    _sweep_results(tmp_path / "results", models=("symile",), name=name)
    board = build_leaderboard(tmp_path / "results")
    svg = render_sweep_svg(sweep_data(board["tasks"]["xor@1.0"]), f"title {name}")
    root = ET.fromstring(svg)  # well-formed: nothing broke out of a text node or an attribute
    assert not re.search(r"<\s*(script|img|a|iframe|foreignObject)\b", svg)
    assert "&lt;script&gt;" in svg and "&amp; &quot;quoted&quot;" in svg
    assert root.find(f"{SVG}title").text.startswith("title evil<script>")  # read back, it is the name as text
    site = write_site(board, tmp_path / "site").parent
    (robust,) = (site / "plots").glob("*-robustness.svg")
    ET.parse(robust)
    page = next(site.glob("task-*.html")).read_text()
    assert '<img class="plot" src="plots/' in page and "<h2>Robustness</h2>" in page
    assert "polymodal bench --task xor --models ..." in page
    text = write_report(board, tmp_path / "report").read_text()
    assert "![xor: robustness of acc1 per model](xor-robustness.png)" in text
    assert "part of every evaluation: `polymodal bench --task xor --models ...` writes it." in text
    assert "mean over the query modalities (a, c)" in text
    png = (tmp_path / "report" / "xor-robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_leaderboard_lists_the_producers_corruptions_in_its_order():
    from polymodal.benchmarks.protocols import robustness

    assert tuple(robustness.CORRUPTIONS) == CORRUPTIONS and robustness.RATES == SWEEP_RATES
    assert robustness.metric_name("missing-own", "a", 0.25) == "robustness/missing-own/a@0.25"
