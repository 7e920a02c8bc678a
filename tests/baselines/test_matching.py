"""GRAM's data–text matching term: hard negatives, its loss and the re-ranking, against loops over the rules."""

import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines import MODELS
from polymodal.baselines.matching import MatchingHead, hard_negatives, matching_loss, rerank
from polymodal.baselines.volumes import MEASURES, volume_loss
from tests.brute_force import sharded_mean, unit_rows, volume_of

INPUTS = {"a": 5, "b": 5, "c": 5}


def _draw_loop(logits: list[float], positive: int, uniforms: list[float]) -> int:
    """Gumbel-max over the official weights softmax + 1e-4, the positive excluded, one column at a time."""
    z = sum(math.exp(l) for l in logits)
    best, pick = -math.inf, None
    for j, (l, u) in enumerate(zip(logits, uniforms)):
        if j == positive:
            continue
        key = math.log(math.exp(l) / z + 1e-4) - math.log(-math.log(u))
        if key > best:
            best, pick = key, j
    return pick


def test_a_hard_negative_is_the_gumbel_max_of_the_official_weights_and_never_the_positive():
    g = torch.Generator().manual_seed(0)
    logits, uniforms = torch.randn(6, 9, generator=g, dtype=torch.float64) * 3, torch.rand(6, 9, generator=g)
    positives = torch.tensor([0, 3, 8, 2, 2, 5])
    got = hard_negatives(logits, positives, uniforms)
    for i in range(6):
        assert got[i].item() == _draw_loop(logits[i].tolist(), positives[i].item(), uniforms[i].tolist())
        assert got[i].item() != positives[i].item()


def test_hard_negatives_are_drawn_in_proportion_to_softmax_plus_the_floor():
    logits = torch.tensor([[2.0, 0.0, 1.0, -30.0]])
    draws = 40_000
    uniforms = torch.rand(draws, 4, generator=torch.Generator().manual_seed(1))
    picks = hard_negatives(logits.expand(draws, 4), torch.zeros(draws, dtype=torch.long), uniforms)
    weights = logits.softmax(-1)[0] + 1e-4
    weights[0] = 0
    expected = weights / weights.sum()
    frequency = torch.bincount(picks, minlength=4) / draws
    assert frequency[0] == 0
    assert torch.allclose(frequency, expected, atol=0.01)  # binomial se ≤ 0.0025
    assert frequency[3] < 0.002  # the far tuple is drawn, rarely: its weight is the floor alone


def _matching_loss_loop(head, e, scale, anchors, uniforms_of_anchor, rows):
    """Row by row: the hard negatives drawn from brute-force volumes with the same uniforms, then the CE of the
    head's logits on the true tuple (label 1) and the two negatives (label 0)."""
    n, total = len(e[0]), 0.0
    for a, m in enumerate(anchors):
        u = uniforms_of_anchor[a]
        others = [k for k in range(len(e)) if k != m]
        terms = 0.0
        for i in rows:
            to_tuples = [-scale * volume_of([e[m][i], *(e[k][j] for k in others)]) for j in range(n)]
            to_anchors = [-scale * volume_of([e[m][j], *(e[k][i] for k in others)]) for j in range(n)]
            j_tuple = _draw_loop(to_tuples, i, u[0][i].tolist())
            j_anchor = _draw_loop(to_anchors, i, u[1][i].tolist())
            for anchor_row, tuple_row, label in ((i, i, 1), (i, j_tuple, 0), (j_anchor, i, 0)):
                tuple_ = [e[k][anchor_row if k == m else tuple_row] for k in range(len(e))]
                logits = head([t[None] for t in tuple_])[0]
                terms -= F.log_softmax(logits, -1)[label].item()
        total += terms / (3 * len(rows))
    return total / len(anchors)


@pytest.mark.parametrize("anchors", [[0], [2], [0, 1, 2]])
def test_the_matching_loss_matches_a_loop_over_its_rules(anchors):
    torch.manual_seed(0)
    e = list(unit_rows(range(3), n=6, d=4).values())
    head = MatchingHead(3, 4, 8).double()
    got = matching_loss(head, e, 2.0, MEASURES["volume"], anchors, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    uniforms = [torch.rand(2, 6, 6, generator=g) for _ in anchors]
    with torch.no_grad():
        expected = _matching_loss_loop(head, e, 2.0, anchors, uniforms, range(6))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_local_rows_average_to_the_global_matching_loss():
    """Each rank draws the whole batch's uniforms from a shared seed and keeps its rows', as DDP needs."""
    torch.manual_seed(0)
    e = list(unit_rows(range(3), n=8, d=4).values())
    head = MatchingHead(3, 4, 8).double()

    def loss(rows=None):
        return matching_loss(head, e, 2.0, MEASURES["area"], [0, 1, 2], rows, torch.Generator().manual_seed(3))

    sharded = sharded_mean(lambda p: loss(p), [slice(0, 3), slice(3, 8)], 8)
    assert sharded.item() == pytest.approx(loss().item(), rel=1e-12)


@pytest.mark.parametrize("name", ["gram", "triangle"])
def test_the_matching_term_is_off_by_default_and_weighted_when_on(name):
    torch.manual_seed(0)
    plain = MODELS[name](INPUTS, d_model=6)
    assert not any("matching" in k for k, _ in plain.named_parameters())
    torch.manual_seed(0)
    model = MODELS[name](INPUTS, d_model=6, dtm_weight=0.1, dtm_hidden=8)
    x = {m: torch.randn(10, 5) for m in INPUTS}
    e = model(x)
    ordered = [e[m] for m in model.modalities]
    measure = MEASURES[model.objective.measure]
    volume = volume_loss(ordered, 1 / 0.07, measure, [0, 1, 2], 0.1)
    dtm = matching_loss(model.matching, ordered, 1 / 0.07, measure, [0, 1, 2], generator=torch.Generator().manual_seed(2))
    loss = model.loss(e, generator=torch.Generator().manual_seed(2))
    assert loss.item() == pytest.approx((volume + 0.1 * dtm).item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.matching.parameters())
    assert model.card()["config"]["dtm_weight"] == 0.1


def test_reranking_orders_the_best_candidates_by_the_head_and_keeps_the_rest():
    torch.manual_seed(0)
    model = MODELS["gram"](INPUTS, d_model=6, dtm_weight=0.1, dtm_hidden=8, dtm_rerank=4)
    x = {m: torch.randn(5, 5) for m in INPUTS}
    candidates = model.encode("b", torch.randn(12, 5))
    queries = {m: model.encode(m, x[m]) for m in ("a", "c")}
    with torch.no_grad():
        volume = -MEASURES["volume"]([queries["a"], queries["c"]], [candidates]) / 0.07
        got = model.score(queries, "b", candidates)
    for i in range(5):
        top = volume[i].topk(4).indices.tolist()
        p = {j: model.matching.match([queries["a"][i:i + 1], candidates[j:j + 1], queries["c"][i:i + 1]]).item()
             for j in top}
        order = got[i].argsort(descending=True).tolist()
        assert order[:4] == sorted(top, key=lambda j: -p[j])  # re-ranked by P(match) alone
        rest = [j for j in volume[i].argsort(descending=True).tolist() if j not in top]
        assert order[4:] == rest  # the others in their volume order, below
    # With a query absent there is no whole tuple for the head: the volume alone.
    one = {"a": queries["a"]}
    torch.testing.assert_close(model.score(one, "b", candidates), -MEASURES["volume"]([queries["a"]], [candidates]) / 0.07)


def test_rerank_with_more_places_than_candidates_ranks_them_all_by_the_head():
    head = MatchingHead(2, 3, 4)
    q, c = F.normalize(torch.randn(3, 3), dim=1), F.normalize(torch.randn(4, 3), dim=1)
    scores = -torch.rand(3, 4)
    got = rerank(head, scores, lambda qi, ci: [q[qi], c[ci]], top=50)
    for i in range(3):
        p = torch.stack([head.match([q[i:i + 1], c[j:j + 1]])[0] for j in range(4)])
        assert got[i].argsort(descending=True).tolist() == p.argsort(descending=True).tolist()


@pytest.mark.parametrize("bad", [{"dtm_weight": -0.1}, {"dtm_rerank": -1}, {"dtm_hidden": 0}])
def test_bad_matching_settings_are_refused(bad):
    with pytest.raises(ValueError, match="dtm_"):
        MODELS["gram"](INPUTS, d_model=6, **bad)
