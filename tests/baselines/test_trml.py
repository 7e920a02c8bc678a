"""TRML: its losses, generators and scores against loops that write the formulas out, and its
missing-modality inference against CLIP with mean imputation on a synthetic task."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines import MODELS, symile_loss
from polymodal.baselines.trml import Trml
from tests.brute_force import infonce_loop, sharded_mean, unit_rows

pytestmark = pytest.mark.usefixtures("one_thread")

INPUTS = {"a": 5, "b": 4, "c": 3}
TOL = dict(rtol=1e-9, atol=1e-9)
LOG_SCALE = 0.4


def model64(**options) -> Trml:
    torch.manual_seed(0)
    model = Trml(INPUTS, d_model=6, **{"missing_p": 0.0, **options}).double()  # complete samples unless asked
    with torch.no_grad():
        model.logit_scale.log_scale.fill_(LOG_SCALE)  # exactly, not rounded to float32 first
    return model


def unit(n: int = 7, d: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    return unit_rows(INPUTS, n, d, seed)


@torch.no_grad()
def generated_loop(model: Trml, e: dict[str, torch.Tensor], target: str, fusion: str, sources=None) -> list:
    """G_target's direction row by row: fuse the sources (by default all others), Linear, GELU, Linear, L2 norm."""
    first, _, second = model.generators[target].mlp
    sources = sources or [m for m in model.modalities if m != target]
    out = []
    for i in range(len(e[target])):
        parts = [e[m][i] for m in sources]
        x = sum(parts) / len(parts) if fusion == "mean" else torch.cat(parts)
        y = second.weight @ F.gelu(first.weight @ x + first.bias) + second.bias
        out.append(y / y.norm())
    return out


def matching_loop(model: Trml, e, fusion: str, local: range) -> float:
    """Σ_t of the mean InfoNCE of G_t's directions and t's over every source set G_t accepts: with "mean"
    fusion each single other modality and both, as a modality may go missing at test time."""
    total = 0.0
    for t in INPUTS:
        others = [m for m in INPUTS if m != t]
        sets = [[m] for m in others] + [others] if fusion == "mean" else [others]
        real = [row / row.norm() for row in e[t]]
        terms = [infonce_loop(generated_loop(model, e, t, fusion, s), real, 1 / 0.2, local) for s in sets]
        total += sum(terms) / len(sets)
    return total


@pytest.mark.parametrize("fusion", ["mean", "concat"])
@pytest.mark.parametrize("rows", [None, slice(2, 5)])
def test_loss_is_pairwise_clip_plus_the_matching_of_generated_and_real(fusion, rows):
    model = model64(fusion=fusion, alpha=0.5, sml_temperature=0.2)
    e = unit()
    local = range(7)[rows or slice(None)]
    task = sum(infonce_loop(e[a], e[b], math.exp(LOG_SCALE), local) for a, b in (("a", "b"), ("a", "c"), ("b", "c")))
    matching = matching_loop(model, e, fusion, local)
    with torch.no_grad():
        torch.testing.assert_close(model.loss(dict(reversed(e.items())), rows=rows).item(), task + 0.5 * matching, **TOL)


def test_matching_runs_on_directions_and_fills_at_the_real_norm():
    """LayerNorm heads give norms near √d: L_sml must not run at τ/norm, nor fills come out 1/norm too small."""
    model, e = model64(fusion="mean", sml_temperature=0.2), unit()
    long = {m: 8 * x for m, x in e.items()}
    with torch.no_grad():
        expected = matching_loop(model, long, "mean", range(7))
        torch.testing.assert_close(model.matching_loss(long).item(), expected, **TOL)
        filled = model.fill_missing({"a": long["a"], "c": long["c"]}, "b")
    torch.testing.assert_close(filled.norm(dim=-1), torch.full((7,), 8.0, dtype=torch.float64), **TOL)
    model.eval()  # scoring does not move the tracked norm
    with torch.no_grad():
        model.matching_loss(e)
    assert model.generators["b"].target_norm.item() == pytest.approx(8.0)


def test_the_tracked_norm_is_the_mean_then_a_moving_average():
    model = model64()
    g = model.generators["a"]
    norms = [2.0, 4.0, *[10.0] * 60]
    for k, n in enumerate(norms):
        g.track(torch.full((3, 6), n / 6**0.5, dtype=torch.float64))
        if k == 1:
            assert g.target_norm.item() == pytest.approx(3.0)  # the plain mean of the first batches
    assert g.target_norm.item() == pytest.approx(10.0, rel=1e-2)  # then it follows the latest ones


@pytest.mark.parametrize("negatives", ["n", "n_squared"])
def test_the_task_loss_is_the_base_objective(negatives):
    model, e = model64(objective="symile", negatives=negatives), unit()
    with torch.no_grad():
        ours = model.loss(e, generator=torch.Generator().manual_seed(1)) - model.matching_loss(e)
        expected = symile_loss([e["a"], e["b"], e["c"]], math.exp(LOG_SCALE), negatives, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(ours, expected, **TOL)


@pytest.mark.parametrize("options", [{}, {"objective": "symile", "negatives": "n"}, {"objective": "symile", "negatives": "n_squared"}])
def test_the_losses_of_every_rank_average_to_the_loss_of_the_batch(options):
    model, e = model64(**options), unit()
    seeded = lambda: torch.Generator().manual_seed(3)  # every rank seeds alike
    parts = [slice(0, 3), slice(3, 4), slice(4, 7)]
    with torch.no_grad():
        sharded = sharded_mean(lambda p: model.loss(e, rows=p, generator=seeded()), parts, 7)
        torch.testing.assert_close(sharded, model.loss(e, generator=seeded()), **TOL)


def test_training_time_missingness_fills_the_drawn_rows_as_a_test_would():
    model, e = model64(missing_p=0.5), unit(n=40)
    g = torch.Generator().manual_seed(5)
    dropped = torch.rand(40, generator=g) < 0.5
    which = torch.randint(3, (40,), generator=g)
    with torch.no_grad():
        filled = {t: torch.stack(generated_loop(model, e, t, "mean")) for t in INPUTS}  # norm 1 untrained
        expected = {t: torch.stack([filled[t][i] if dropped[i] and which[i] == k else e[t][i] for i in range(40)])
                    for k, t in enumerate(model.modalities)}
        ours = model.drop_modalities(e, torch.Generator().manual_seed(5))
        for t in INPUTS:
            torch.testing.assert_close(ours[t], expected[t], **TOL)
        assert 0 < int(dropped.sum()) < 40  # some rows of some modality changed
        clip = sum(infonce_loop(expected[a], expected[b], math.exp(LOG_SCALE), range(40))
                   for a, b in (("a", "b"), ("a", "c"), ("b", "c")))
        torch.testing.assert_close(model.task_loss(e, generator=torch.Generator().manual_seed(5)).item(), clip, **TOL)
        model.eval()  # scoring and validation see the samples as they are
        pairs = (("a", "b"), ("a", "c"), ("b", "c"))
        complete = sum(infonce_loop(e[a], e[b], math.exp(LOG_SCALE), range(40)) for a, b in pairs)
        torch.testing.assert_close(model.task_loss(e, generator=torch.Generator().manual_seed(5)).item(), complete, **TOL)
    with pytest.raises(ValueError, match="missing_p"):
        model64(missing_p=1.5)


def test_fill_missing_is_the_generated_embedding():
    for fusion in ("mean", "concat"):
        model, e = model64(fusion=fusion), unit()
        with torch.no_grad():
            filled = model.fill_missing({"c": e["c"], "a": e["a"]}, "b")
        torch.testing.assert_close(filled, torch.stack(generated_loop(model, e, "b", fusion)), **TOL)  # norm 1 untrained
    # The mean of one source is that source; the concatenation needs every source, so without
    # one it gives no estimate of its own (the caller imputes the mean).
    with torch.no_grad():
        single = model64().fill_missing({"a": e["a"]}, "b")
        torch.testing.assert_close(single, model64().fill_missing({"a": e["a"], "c": e["a"]}, "b"), **TOL)
    assert model64(fusion="concat").fill_missing({"a": e["a"]}, "b") is None
    with pytest.raises(ValueError, match="needs all"):
        model64(fusion="concat").generators["b"]({"a": e["a"]})
    with pytest.raises(ValueError, match="present"):
        model64().fill_missing(e, "b")


@pytest.mark.parametrize(("objective", "combine"), [("clip", sum), ("symile", math.prod)])
def test_score_is_the_base_objectives_scorer(objective, combine):
    model, e = model64(objective=objective), unit()
    candidates = e["b"][:4]
    expected = torch.tensor([
        [math.exp(LOG_SCALE) * sum(combine((float(e["a"][i][k]), float(e["c"][i][k]))) * float(c[k]) for k in range(6))
         for c in candidates]
        for i in range(7)
    ], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model.score({"c": e["c"], "a": e["a"]}, "b", candidates), expected, **TOL)
    with pytest.raises(ValueError, match="not a query"):
        model.score({"a": e["a"], "b": e["b"]}, "b", candidates)


def test_gradients_of_each_term():
    model = Trml(INPUTS, d_model=6, missing_p=0.0, recipe="joint")
    x = {m: torch.randn(8, d) for m, d in INPUTS.items()}
    model.task_loss(model(x)).backward()
    assert all(p.grad is None for p in model.generators.parameters())
    model.zero_grad(set_to_none=True)
    # Joint: no frozen foundation model, so the matching term trains the encoders too.
    model.matching_loss(model(x)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*model.generators.parameters(), *model.encoders.parameters()])
    assert model.logit_scale.log_scale.grad is None  # L_sml runs at its own fixed temperature


def test_card_rebuilds_the_same_model():
    config = dict(d_model=7, encoders="linear_l2", encoder_options=None, logit_scale_init=0.0)
    model = MODELS["trml"](INPUTS, **config, objective="symile", negatives="n_squared", fusion="concat", alpha=2.0)
    card = model.card()
    assert card["name"] == "trml"
    assert card["config"]["negatives"] == "n_squared" and card["config"]["fusion"] == "concat"
    rebuilt = MODELS["trml"](INPUTS, **json.loads(json.dumps(card["config"])))
    assert rebuilt.card() == card
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(model.state_dict())
    x = {m: torch.randn(3, d) for m, d in INPUTS.items()}
    e = model(x)
    torch.testing.assert_close(rebuilt(x), e)
    present = {"a": e["a"], "b": e["b"]}
    torch.testing.assert_close(rebuilt.fill_missing(present, "c"), model.fill_missing(present, "c"))


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="fusion"):
        Trml(INPUTS, fusion="max")
    with pytest.raises(ValueError, match="objective"):
        Trml(INPUTS, objective="simclr")
    with pytest.raises(TypeError, match="negatives"):
        Trml(INPUTS, negatives="n")  # CLIP has no negative sampler


# --- behaviour: classification with a modality missing -----------------------------------------

MODS = ("a", "b", "c")
CLASSES = 10


def class_world(seed: int, k: int = 8, dim: int = 12):
    """Classes are latent vectors; a sample is its class's latent plus a little noise, and each
    modality a different random linear map of it plus its own noise. b is clean, a and c noisy,
    so a classifier of complete samples leans on b."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(CLASSES, k, generator=g)
    maps = {m: torch.randn(k, dim, generator=g) / k**0.5 for m in MODS}
    noise = {"a": 1.0, "b": 0.2, "c": 1.0}

    def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = torch.randint(0, CLASSES, (n,), generator=gen)
        z = means[y] + 0.3 * torch.randn(n, k, generator=gen)
        return y, {m: z @ maps[m] + noise[m] * torch.randn(n, dim, generator=gen) for m in MODS}

    return sample


def trained(name: str, sample, steps: int = 300, **options) -> torch.nn.Module:
    """The model after `steps` AdamW steps in each of its training stages, as the trainer runs them."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MODELS[name](dict.fromkeys(MODS, 12), d_model=16, **options)
    for stage in getattr(model, "stages", tuple)() or (None,):
        if stage:
            model.set_stage(stage)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(steps):
            loss = model.loss(model(sample(128, g)[1]), generator=g)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def linear_probe(features: torch.Tensor, labels: torch.Tensor, steps: int = 300):
    """A softmax classifier of complete samples' concatenated embeddings: the downstream head."""
    weight = torch.zeros(features.shape[1], CLASSES, requires_grad=True)
    bias = torch.zeros(CLASSES, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(steps):
        loss = F.cross_entropy(features @ weight + bias, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return lambda f: (f @ weight + bias).detach()


def accuracy_without_b(model, sample, fill) -> tuple[float, float]:
    """(complete, b missing) test accuracy of a probe trained on complete training samples."""
    g = torch.Generator().manual_seed(99)
    (y_train, x_train), (y_test, x_test) = sample(2000, g), sample(2000, g)
    with torch.no_grad():
        train, test = model(x_train), model(x_test)
        filled = fill(model, {m: test[m] for m in ("a", "c")}, train)
    probe = linear_probe(torch.cat([train[m] for m in MODS], 1), y_train)
    complete = probe(torch.cat([test[m] for m in MODS], 1))
    missing = probe(torch.cat([test["a"], filled, test["c"]], 1))
    return tuple((logits.argmax(1) == y_test).float().mean().item() for logits in (complete, missing))


def mean_imputation(model, present, train):
    return train["b"].mean(0).expand(len(present["a"]), -1)


def generated(model, present, train):
    return model.fill_missing(present, "b")


def test_generated_embeddings_beat_mean_imputation_when_a_modality_is_missing():
    sample = class_world(0)
    clip, trml = trained("clip", sample), trained("trml", sample)
    clip_full, clip_missing = accuracy_without_b(clip, sample, mean_imputation)
    trml_full, trml_missing = accuracy_without_b(trml, sample, generated)
    _, trml_mean_imputed = accuracy_without_b(trml, sample, mean_imputation)
    assert min(clip_full, trml_full) > 0.95  # both models learnt the task
    assert trml_missing > clip_missing + 0.02, (trml_missing, clip_missing)
    assert trml_missing > trml_mean_imputed + 0.02, (trml_missing, trml_mean_imputed)  # the gain is the generator's
