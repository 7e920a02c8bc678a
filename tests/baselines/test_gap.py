"""Modality-gap measures against hand-derived values, and the gap mitigations of the
reference models: fixed and scheduled temperatures, and modality swapping."""

import json
import math

import pytest
import torch
from safetensors.torch import load_model, save_model

from polymodal.baselines import MODELS, LogitScale, clip_loss, symile_loss
from polymodal.baselines.gap import alignment, centroid_distance, gap_metrics, uniformity
from polymodal.baselines.logit_scale import ScheduledLogitScale
from polymodal.baselines.objectives import swap_modalities

E = torch.eye(3)


# --- Measures ---------------------------------------------------------------------------


def test_identical_embeddings_have_no_gap_and_full_alignment():
    x = torch.randn(10, 4)
    assert centroid_distance(x, 3 * x).item() == pytest.approx(0, abs=1e-6)  # measured after L2 norm
    assert alignment(x, 3 * x).item() == pytest.approx(1)


def test_orthogonal_clusters():
    # Every x is e1, every y is e2 (at assorted lengths): centroids e1 and e2, √2 apart, cosine 0.
    x, y = E[0] * torch.tensor([[1.0], [2], [5]]), E[1] * torch.tensor([[3.0], [1], [1]])
    assert centroid_distance(x, y).item() == pytest.approx(math.sqrt(2))
    assert alignment(x, y).item() == pytest.approx(0)
    # x = (e1, e2), y = (e1, e3): centroids (½, ½, 0) and (½, 0, ½), √(¼ + ¼) apart; cosines 1 and 0.
    x, y = E[[0, 1]], E[[0, 2]]
    assert centroid_distance(x, y).item() == pytest.approx(math.sqrt(0.5))
    assert alignment(x, y).item() == pytest.approx(0.5)


def test_uniformity_by_hand():
    # An antipodal pair: ‖u − v‖² = 4, so log exp(−2·4) = −8.
    assert uniformity(torch.tensor([[1.0, 0], [-2, 0]])).item() == pytest.approx(-8)
    # ±e1, ±e2: two antipodal pairs (‖·‖² = 4) and four orthogonal ones (‖·‖² = 2).
    cross = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    assert uniformity(cross).item() == pytest.approx(math.log((2 * math.exp(-8) + 4 * math.exp(-4)) / 6))
    assert uniformity(cross, t=1.0).item() == pytest.approx(math.log((2 * math.exp(-4) + 4 * math.exp(-2)) / 6))


def test_gap_metrics_names_every_pair_and_modality():
    metrics = gap_metrics({"a": E[[0, 1]], "b": E[[0, 2]], "c": -E[[0, 1]]})
    assert metrics["gap_centroid/a-b"] == pytest.approx(math.sqrt(0.5))
    assert metrics["alignment/a-b"] == pytest.approx(0.5)
    assert metrics["alignment/a-c"] == pytest.approx(-1)
    assert metrics["gap_centroid/b-c"] == pytest.approx(math.sqrt(1 + 0.25 + 0.25))
    assert metrics["uniformity/a"] == pytest.approx(-4)  # one orthogonal pair: ‖e1 − e2‖² = 2
    assert set(metrics) == {
        *(f"{k}/{p}" for k in ("gap_centroid", "alignment") for p in ("a-b", "a-c", "b-c")),
        *(f"uniformity/{m}" for m in "abc"),
    }


# --- Temperature ------------------------------------------------------------------------

INPUTS = {"a": 4, "b": 4, "c": 4}
START, END, STEPS = math.log(10), math.log(50), 4


def batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, d, generator=g) for m, d in INPUTS.items()}


def scheduled(name: str = "clip", **options):
    return MODELS[name](
        INPUTS, logit_scale_init=START, temperature="schedule", temperature_options={"end": END, "steps": STEPS}, **options
    )


def test_schedule_rises_linearly_in_the_inverse_temperature_then_stays():
    scale = ScheduledLogitScale(START, END, STEPS)
    values = []
    for _ in range(STEPS + 3):
        values.append(scale().item())
        scale.advance()
    assert values == pytest.approx([10, 20, 30, 40, 50, 50, 50])


def test_schedule_advances_once_per_training_loss_and_uses_the_current_step():
    model = scheduled()
    x = batch()
    for step, s in enumerate([10, 20, 30]):
        embeddings = model(x)
        assert model.loss(embeddings).item() == pytest.approx(clip_loss(list(embeddings.values()), s).item())
        assert int(model.logit_scale.step) == step + 1
    model.eval()
    model.loss(model(x))
    assert int(model.logit_scale.step) == 3  # validation does not move the schedule
    assert model.logit_scale().item() == pytest.approx(40)


def test_schedule_step_is_checkpointed_and_resumes(tmp_path):
    model = scheduled("symile")
    for _ in range(3):
        model.loss(model(batch()))
    assert "logit_scale.step" in model.state_dict()
    save_model(model, str(tmp_path / "weights.safetensors"))  # as the training harness checkpoints
    config = json.loads(json.dumps(model.card()["config"]))
    resumed = MODELS["symile"](INPUTS, **config)
    assert resumed.card() == model.card()
    load_model(resumed, str(tmp_path / "weights.safetensors"))
    assert int(resumed.logit_scale.step) == 3
    for _ in range(3):
        model.loss(model(batch()))
        resumed.loss(resumed(batch()))
        assert resumed.logit_scale().item() == model.logit_scale().item()
    assert resumed.logit_scale().item() == pytest.approx(50)


def test_fixed_temperature_gets_no_gradient_and_learned_does():
    fixed, learned = MODELS["clip"](INPUTS, temperature="fixed"), MODELS["clip"](INPUTS)
    for model in (fixed, learned):
        model.loss(model(batch())).backward()
    assert fixed.logit_scale.log_scale.grad is None and not fixed.logit_scale.log_scale.requires_grad
    assert learned.logit_scale.log_scale.grad is not None
    assert fixed.logit_scale().item() == pytest.approx(1 / 0.07)
    assert set(fixed.state_dict()) == set(learned.state_dict())  # same checkpoint layout


def test_learn_logit_scale_is_the_older_spelling_of_temperature():
    assert MODELS["clip"](INPUTS, learn_logit_scale=False).card()["config"]["temperature"] == "fixed"
    assert MODELS["symile"](INPUTS, learn_logit_scale=True).card()["config"]["temperature"] == "learned"
    assert "learn_logit_scale" not in MODELS["clip"](INPUTS).card()["config"]
    with pytest.raises(ValueError, match="contradicts"):
        MODELS["clip"](INPUTS, learn_logit_scale=True, temperature="fixed")
    with pytest.raises(ValueError, match="unknown temperature"):
        MODELS["clip"](INPUTS, temperature="annealed")
    with pytest.raises(ValueError, match="steps"):
        MODELS["clip"](INPUTS, temperature="schedule", temperature_options={"steps": 0})


def test_logit_scale_bounds():
    assert LogitScale(math.log(0.5), min_value=1.0)().item() == pytest.approx(1)
    assert LogitScale(math.log(500), min_value=1.0, max_value=100)().item() == pytest.approx(100)


# --- Modality swapping -----------------------------------------------------------------


def test_swap_p_1_exchanges_the_two_modalities_of_every_row():
    a, b = torch.tensor([[1.0, 0], [0, 1], [1, 1]]), torch.tensor([[5.0, 6], [7, 8], [9, 0]])
    swapped_a, swapped_b = swap_modalities([a, b], 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(swapped_a, b) and torch.equal(swapped_b, a)


def test_swap_p_1_exchanges_exactly_one_pair_per_row_of_three():
    n = 300
    rows = torch.arange(n, dtype=torch.float)[:, None]
    original = [rows + 0.25, rows + 0.5, rows + 0.75]  # each entry names its row and modality
    swapped = torch.stack(swap_modalities(original, 1.0, torch.Generator().manual_seed(0)), 1)[..., 0]
    moved = swapped != torch.stack(original, 1)[..., 0]
    assert (moved.sum(1) == 2).all()  # two modalities exchanged, the third kept
    assert torch.equal(swapped.floor(), rows.expand(n, 3))  # never across rows
    assert torch.equal(swapped.sort(1).values, torch.stack(original, 1)[..., 0])  # a transposition
    pairs = {tuple(torch.nonzero(row).flatten().tolist()) for row in moved}
    assert pairs == {(0, 1), (0, 2), (1, 2)}  # every pair is drawn


def test_swapping_follows_the_generator_and_is_differentiable():
    a, b = (torch.randn(50, 3, requires_grad=True) for _ in range(2))
    first = swap_modalities([a, b], 0.5, torch.Generator().manual_seed(7))
    second = swap_modalities([a, b], 0.5, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(first, second))  # ranks with one seed agree
    mask = ~torch.isclose(first[0], a).all(1)
    assert 10 < mask.sum() < 40
    first[0].sum().backward()
    torch.testing.assert_close(a.grad, (~mask).float()[:, None].expand(50, 3))
    torch.testing.assert_close(b.grad, mask.float()[:, None].expand(50, 3))


def test_swap_p_0_is_a_no_op_and_draws_nothing():
    zero = MODELS["symile"](INPUTS, swap_p=0.0)
    e = zero(batch())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    # Symile's O(N) negatives come from the same generator: the plain loss on the same embeddings
    # draws them first, so equal losses and generator states mean the model drew nothing else.
    expected = symile_loss([e[m] for m in zero.modalities], zero.logit_scale(), "n", generator=g2)
    assert zero.loss(e, generator=g1).item() == expected.item()
    assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize(("name", "options"), [("clip", {}), ("symile", {"negatives": "n_squared"})])
def test_swapping_every_row_of_two_modalities_leaves_a_symmetric_loss_unchanged(name, options):
    # With two modalities and swap_p=1 the modalities trade places wholesale; CLIP's symmetric
    # InfoNCE and exhaustive Symile do not depend on the modalities' order, so the loss stays.
    # A swap of only some rows changes which negatives each row meets, and so the loss.
    inputs = {"a": 4, "b": 4}
    x = {m: torch.randn(8, 4, generator=torch.Generator().manual_seed(k)) for k, m in enumerate(inputs)}
    plain = MODELS[name](inputs, **options)
    losses = {}
    for p in (1.0, 0.5):
        model = MODELS[name](inputs, swap_p=p, **options)
        model.load_state_dict(plain.state_dict())
        losses[p] = model.loss(model(x), generator=torch.Generator().manual_seed(0)).item()
        model.eval()  # no swapping outside training
        assert model.loss(model(x)).item() == pytest.approx(plain.loss(plain(x)).item())
    assert losses[1.0] == pytest.approx(plain.loss(plain(x)).item())
    assert losses[0.5] != pytest.approx(losses[1.0])


def test_swapped_rows_shard_like_the_whole_batch():
    model = MODELS["clip"](INPUTS, swap_p=0.5)
    embeddings = model(batch(8))

    def loss(rows=None):
        return model.loss(embeddings, rows=rows, generator=torch.Generator().manual_seed(1))

    torch.testing.assert_close((loss(slice(0, 4)) + loss(slice(4, 8))) / 2, loss())


def test_mitigations_are_in_the_card_and_rebuild():
    for name in ("clip", "symile"):
        model = scheduled(name, swap_p=0.25)
        config = json.loads(json.dumps(model.card()["config"]))
        assert config["temperature"] == "schedule"
        assert config["temperature_options"] == {"end": END, "steps": STEPS}
        assert config["swap_p"] == 0.25
        assert MODELS[name](INPUTS, **config).card() == model.card()
    with pytest.raises(ValueError, match="swap_p"):
        MODELS["clip"](INPUTS, swap_p=1.5)
