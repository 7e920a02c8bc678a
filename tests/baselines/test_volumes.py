"""GRAM's volume and TRIANGLE's area, their losses and models, against loops over the formulas."""

import math

import pytest
import torch

from polymodal.baselines import MODELS
from polymodal.baselines.objectives import GramObjective, TriangleObjective
from polymodal.baselines.volumes import MEASURES, gram_volume, triangle_area2, volume_loss
from tests.brute_force import heron_area, sharded_mean, triangle_of, unit_rows, volume_loss_loop, volume_of

INPUTS = {"a": 5, "b": 5, "c": 5}


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2), (3, 2)])
def test_the_volume_is_the_determinant_of_each_stacked_gram_matrix(rows, cols):
    e = unit_rows(range(rows + cols), n=5, d=7)
    row_side, col_side = [e[k] for k in range(rows)], [e[k][:4] for k in range(rows, rows + cols)]
    got = gram_volume(row_side, col_side)
    assert got.shape == (5, 4)
    for i in range(5):
        for j in range(4):
            expected = volume_of([*(x[i] for x in row_side), *(x[j] for x in col_side)])
            assert got[i, j].item() == pytest.approx(expected, abs=1e-9)


def test_two_unit_vectors_span_the_sine_of_their_angle():
    e = unit_rows("ab", n=6)
    cos = (e["a"] * e["b"]).sum(-1)
    assert torch.allclose(gram_volume([e["a"]], [e["b"]]).diagonal(), (1 - cos**2).sqrt(), atol=1e-9)


@pytest.mark.parametrize(("rows", "cols"), [(1, 2), (2, 1)])
def test_the_o_n2_area_equals_the_direct_computation_and_herons_formula(rows, cols):
    e = unit_rows(range(3), n=6, d=5)
    row_side, col_side = [e[k] for k in range(rows)], [e[k] for k in range(rows, 3)]
    got = triangle_area2(row_side, col_side)
    for i in range(6):
        for j in range(6):
            vertices = [*(x[i] for x in row_side), *(x[j] for x in col_side)]
            assert got[i, j].item() == pytest.approx(triangle_of(*vertices), abs=1e-9)
            assert got[i, j].item() == pytest.approx(2 * heron_area(*vertices) ** 2, abs=1e-9)


def _volume(*vectors):
    return volume_of(vectors)


@pytest.mark.parametrize(("measure", "loop", "k"), [("volume", _volume, 3), ("volume", _volume, 4), ("area", triangle_of, 3)])
@pytest.mark.parametrize("anchors", [[0], [1], "all"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_volume_loss_matches_a_loop_over_the_formula(measure, loop, k, anchors, smoothing):
    e = list(unit_rows(range(k), n=6, d=5).values())
    anchors = list(range(k)) if anchors == "all" else anchors
    got = volume_loss(e, 3.0, MEASURES[measure], anchors, smoothing)
    assert got.item() == pytest.approx(volume_loss_loop(e, 3.0, loop, anchors, smoothing, range(6)), abs=1e-9)


@pytest.mark.parametrize("measure", ["volume", "area"])
def test_local_rows_average_to_the_global_loss(measure):
    """What DDP computes, each rank's rows against every gathered row, averages to the whole batch's loss."""
    e = list(unit_rows(range(3), n=8).values())
    whole = volume_loss(e, 2.0, MEASURES[measure], [0, 1, 2], 0.1)
    parts = [slice(0, 3), slice(3, 8)]
    sharded = sharded_mean(lambda p: volume_loss(e, 2.0, MEASURES[measure], [0, 1, 2], 0.1, rows=p), parts, 8)
    assert sharded.item() == pytest.approx(whole.item(), abs=1e-12)


def test_the_anchor_is_text_where_there_is_one_else_every_modality():
    assert GramObjective().anchors(("image", "text", "audio")) == [1]
    assert GramObjective().anchors(("a", "b", "c")) == [0, 1, 2]
    assert GramObjective(anchor="c").anchors(("a", "b", "c")) == [2]
    assert TriangleObjective(anchor="all").anchors(("image", "text", "audio")) == [0, 1, 2]
    with pytest.raises(ValueError, match="anchor 'text' is not a modality"):
        GramObjective(anchor="text").anchors(("a", "b", "c"))


@pytest.mark.parametrize("name", ["gram", "triangle"])
def test_the_models_score_by_the_smallest_measure_and_learn_tau_as_a_divisor(name):
    torch.manual_seed(0)
    model = MODELS[name](INPUTS, d_model=6)
    assert model.logit_scale.tau.item() == pytest.approx(0.07)  # the official contra_temp init
    x = {m: torch.randn(9, 5) for m in INPUTS}
    e = {m: model.encode(m, v) for m, v in x.items()}
    assert torch.allclose(e["a"].norm(dim=1), torch.ones(9))
    measure = MEASURES[model.objective.measure]
    scores = model.score({"a": e["a"], "c": e["c"]}, "b", e["b"])
    assert torch.allclose(scores, -measure([e["a"], e["c"]], [e["b"]]) / 0.07, atol=1e-5)
    loss = model.loss(e)
    expected = volume_loss_loop([v.detach().double() for v in e.values()], 1 / 0.07,
                                _volume if name == "gram" else triangle_of, [0, 1, 2], 0.1, range(9))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert model.logit_scale.tau.grad is not None and model.logit_scale.tau.grad.abs() > 0


def test_two_vertices_measure_their_squared_edge():
    e = unit_rows("ab", n=5)
    expected = ((e["a"][:, None] - e["b"][None]) ** 2).sum(-1)
    torch.testing.assert_close(triangle_area2([e["a"]], [e["b"]]), expected)
    with pytest.raises(ValueError, match="3 vertices, got 4"):
        triangle_area2([e["a"], e["b"]], [e["a"], e["b"]])


def test_triangle_refuses_other_than_three_modalities():
    with pytest.raises(ValueError, match="exactly 3 modalities"):
        MODELS["triangle"]({"a": 2, "b": 2})


def test_the_volume_stays_float32_under_autocast():
    e = unit_rows(range(3), n=4)
    row, cols = [e[0].float()], [e[1].float(), e[2].float()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = gram_volume(row, cols)
    assert got.dtype == torch.float32
    assert torch.allclose(got, gram_volume(row, cols), atol=1e-6)
    assert math.isfinite(got.sum().item())
