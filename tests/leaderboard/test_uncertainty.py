"""Intervals, paired bootstrap differences, rank groups and the outcomes behind them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.leaderboard import build_leaderboard
from polymodal.leaderboard.outcomes import decode, hits_outcome
from polymodal.leaderboard.uncertainty import (
    BOOTSTRAP,
    NONE,
    NORMAL,
    PAIRED,
    RESAMPLES,
    _resampled_difference,
    difference_interval,
    rank_groups,
    score_interval,
    shared_ranks,
)
from tests.leaderboard.results import make_result, with_draws, with_hits, write


def test_hits_round_trip_through_their_packed_form():
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 2000):
        hits = rng.integers(0, 2, n)
        outcome = hits_outcome(hits)
        assert outcome["n"] == n and len(outcome["bits"]) == 4 * math.ceil(math.ceil(n / 8) / 3)  # base64 of n bits
        assert decode(outcome).tolist() == hits.astype(float).tolist()


def test_the_multinomial_shortcut_matches_resampling_query_indices():
    rng = np.random.default_rng(2)
    a = (rng.random(500) < 0.6).astype(float)
    b = np.where(rng.random(500) < 0.8, a, 1 - a)
    fast = _resampled_difference(a, b, np.random.default_rng(0))
    index = np.random.default_rng(1).integers(500, size=(RESAMPLES, 500))
    slow = (a[index] - b[index]).mean(axis=1)
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.003)
    assert fast.std() == pytest.approx(slow.std(), rel=0.1)


def test_pairing_separates_models_whose_own_intervals_overlap(tmp_path):
    rng = np.random.default_rng(3)
    base = (rng.random(2000) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:30]] = 1  # right on 30 more queries, wrong on none more
    noisy = np.where(rng.random(2000) < 0.02, 1 - base, base)  # differs both ways
    write(tmp_path, "better.json", with_hits(better, model="better"))
    write(tmp_path, "base.json", with_hits(base, model="base"))
    write(tmp_path, "noisy.json", with_hits(noisy, model="noisy"))
    task = build_leaderboard(tmp_path)["tasks"]["xor@1.0"]
    by_model = {e["model"]: e for e in task["entries"]}
    # Unpaired, the intervals overlap: the gap of 0.015 is under their width of about 0.044.
    assert by_model["better"]["interval"]["low"] < by_model["base"]["interval"]["high"]
    assert by_model["better"]["group"] == 1
    assert {by_model["base"]["group"], by_model["noisy"]["group"]} == {2}
    assert all(e["interval"]["method"] == BOOTSTRAP for e in task["entries"])
    paired = difference_interval([{"value": better.mean(), "outcomes": hits_outcome(better)}],
                                 [{"value": base.mean(), "outcomes": hits_outcome(base)}])
    assert paired.method == PAIRED and 0 < paired.low < 0.015 < paired.high


def test_per_draw_scores_are_bootstrapped_over_draws(tmp_path):
    write(tmp_path, "a.json", with_draws([0.50, 0.52, 0.51, 0.49, 0.50], model="a"))
    write(tmp_path, "b.json", with_draws([0.30, 0.31, 0.29, 0.32, 0.30], model="b"))
    task = build_leaderboard(tmp_path)["tasks"]["xor@1.0"]
    a, b = task["entries"]
    assert (a["model"], a["group"], b["group"]) == ("a", 1, 2)
    assert 0.49 <= a["interval"]["low"] < a["score"] < a["interval"]["high"] <= 0.52


def test_every_interval_states_its_method(tmp_path):
    write(tmp_path, "outcomes.json", with_hits([1, 0, 1, 1], model="outcomes"))
    write(tmp_path, "stderr.json", make_result(model="stderr", value=0.5, stderr=0.1))
    write(tmp_path, "bare.json", make_result(model="bare", value=0.25, stderr=None))
    entries = {e["model"]: e for e in build_leaderboard(tmp_path)["tasks"]["xor@1.0"]["entries"]}
    assert entries["outcomes"]["interval"]["method"] == BOOTSTRAP
    assert entries["stderr"]["interval"] == {"low": pytest.approx(0.5 - 0.196, abs=1e-4), "high": pytest.approx(0.5 + 0.196, abs=1e-4),
                                             "method": NORMAL}
    assert entries["bare"]["interval"] == {"low": None, "high": None, "method": NONE}
    # Nothing shows bare to overlap the others, so it is not grouped with them.
    assert entries["bare"]["group"] != entries["stderr"]["group"]


def test_shared_ranks_and_groups():
    assert shared_ranks([0.9, 0.9, 0.5, 0.5, 0.1]) == [1, 1, 3, 3, 5]
    assert shared_ranks([0.3, 0.1 + 0.2]) == [1, 1]  # equal but for the last bits of a sum
    # 0 and 1 overlap, 2 differs from 0 (the group's best) even if it overlaps 1; 3 ties 2.
    overlaps = {(0, 1): False, (0, 2): True, (2, 3): True}
    assert rank_groups([0.9, 0.8, 0.7, 0.7], lambda i, j: overlaps[i, j]) == [1, 1, 2, 2]
    assert rank_groups([0.9, 0.8], lambda i, j: None) == [1, 2]


def test_score_interval_of_several_datasets_averages_their_resamples():
    one = {"value": 0.5, "outcomes": hits_outcome([1, 0] * 500)}
    other = {"value": 0.9, "outcomes": hits_outcome([1] * 900 + [0] * 100)}
    interval = score_interval([one, other])
    assert interval.low < 0.7 < interval.high and interval.high - interval.low < 0.05
