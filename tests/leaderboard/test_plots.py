"""Task plots: models against the task's parameter, reference levels only where datasets were run."""

from __future__ import annotations

import re

import pytest

from polymodal.leaderboard import build_leaderboard
from polymodal.leaderboard.plot import plot_data
from polymodal.leaderboard.svg import render_svg
from tests.leaderboard.results import make_result, write

M3_PLOT = {"x": "w", "symbol": "$w$"}


def _m3(folder, model, w, value):
    result = make_result(model=model, value=value, task="symile-m3", plot=M3_PLOT, dataset_id=f"m3-{w}",
                         label=f"M3-{w}", params={"w": w, "images": "digits"})
    result["metrics"] = {"acc1": result["metrics"]["acc1"]}
    result["references"] = {"chance_w": 1 / w, "chance": 0.1}
    write(folder, f"{model}-{w}.json", result)


def test_m3_plot_draws_each_model_and_one_over_w_as_levels_at_the_points_run(tmp_path):
    for model, scores in {"symile": {2: 0.99, 5: 0.68, 10: 0.5}, "clip": {2: 0.5, 5: 0.19, 10: 0.1}}.items():
        for w, value in scores.items():
            _m3(tmp_path, model, w, value)
    task = build_leaderboard(tmp_path)["tasks"]["symile-m3@1.0"]
    plot = plot_data(task)
    curves = {c.label: [(x, y) for x, y, _, _ in c.points] for c in plot.curves}
    assert curves == {"#1 symile": [(2, 0.99), (5, 0.68), (10, 0.5)], "#2 clip": [(2, 0.5), (5, 0.19), (10, 0.1)]}
    (one_over_w,) = [lv for lv in plot.levels if lv.name == "chance_w"]
    assert one_over_w.label == "1/w"  # the declared label, not the key
    # A level per w run, each flat and centred there, none spanning from one w to the next.
    assert [(round((a + b) / 2, 9), y) for a, b, y in one_over_w.segments] == [(2, 0.5), (5, 0.2), (10, 0.1)]
    assert all(b - a == pytest.approx(0.6 * 3) for a, b, _ in one_over_w.segments)  # 0.3 of the smallest gap, 3
    svg = render_svg(plot, "m3")
    levels = re.findall(r'<line class="level" x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)" y2="([\d.]+)"', svg)
    assert len(levels) == 6 and all(y1 == y2 for _, _, y1, y2 in levels)
    assert "1/w" in svg and "<script" not in svg


def test_two_datasets_at_the_same_x_are_not_drawn_on_one_curve(tmp_path):
    for train, value in ((1000, 0.2), (10000, 0.4)):
        write(tmp_path, f"m-{train}.json", make_result(model="m", value=value, digest=f"{train:016d}",
                                                       params={"p_hat": 0.5, "dim": 5, "train": train}))
    plot = plot_data(build_leaderboard(tmp_path)["tasks"]["xor@1.0"])
    assert sorted(len(c.points) for c in plot.curves) == [1, 1]
    assert len({c.label for c in plot.curves}) == 2
