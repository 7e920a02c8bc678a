"""The model interface, the reference CLIP and Symile models, and model resolution."""

import importlib.util
import json
import math
import re
import textwrap

import pytest
import torch

from polymodal.baselines import ENCODERS, MODELS, OBJECTIVES, ContrastiveModel, clip_loss, clip_scores, resolve_model, symile_loss
from tests.helpers import ROOT

INPUTS = {"a": 5, "b": 4, "c": 3}


def batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, d, generator=g) for m, d in INPUTS.items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_card_counts_parameters_and_rebuilds_the_model(name):
    model = MODELS[name](INPUTS, d_model=8)
    card = model.card()
    assert card["name"] == name
    if name in OBJECTIVES:  # counted by hand; card_of serves every model alike
        assert card["parameters"] == sum((d + 1) * 8 for d in INPUTS.values()) + 1  # encoders and the logit scale
    config = json.loads(json.dumps(card["config"]))
    assert MODELS[name](INPUTS, **config).card() == card
    assert resolve_model(name) is MODELS[name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_encode_maps_every_modality_onto_the_unit_sphere(name):
    model = MODELS[name](INPUTS, d_model=8)
    embeddings = model(batch())
    assert [m for m in embeddings if m in INPUTS] == list(INPUTS)  # forward may add loss inputs (ConFu's fused pairs)
    for m in INPUTS:
        e = embeddings[m]
        assert e.shape == (6, 8)
        torch.testing.assert_close(e.norm(dim=1), torch.ones(6))
        torch.testing.assert_close(e, model.encode(m, batch()[m]))


@pytest.mark.parametrize(
    ("name", "options", "loss"),
    [
        ("clip", {}, lambda e, s, g: clip_loss(e, s)),
        ("symile", {}, lambda e, s, g: symile_loss(e, s, "n", generator=g)),
        ("symile", {"negatives": "n_squared"}, lambda e, s, g: symile_loss(e, s, "n_squared")),
    ],
)
def test_loss_is_the_objective_on_embeddings_in_modality_order(name, options, loss):
    model = MODELS[name](INPUTS, logit_scale_init=0.5, **options)
    embeddings = model(batch())
    # The dict's order must not matter: the model orders modalities itself.
    shuffled = dict(reversed(embeddings.items()))
    ours = model.loss(shuffled, generator=torch.Generator().manual_seed(1))
    expected = loss(list(embeddings.values()), math.exp(0.5), torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours, expected)


def test_score_ranks_candidates_with_the_objective_scorer():
    model = MODELS["clip"](INPUTS)
    e = model(batch())
    scores = model.score({"c": e["c"], "a": e["a"]}, "b", e["b"][:4])
    assert scores.shape == (6, 4)
    torch.testing.assert_close(scores, clip_scores([e["a"], e["c"]], e["b"][:4]) / 0.07)
    with pytest.raises(ValueError, match="not a query"):
        model.score({"a": e["a"], "b": e["b"]}, "b", e["b"])


def test_unknown_objective_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown objective"):
        MODELS["clip"](INPUTS, objective="simclr")
    with pytest.raises(ValueError, match="negatives"):
        MODELS["symile"](INPUTS, negatives="all")
    with pytest.raises(TypeError, match="negatives"):
        MODELS["clip"](INPUTS, negatives="n")  # CLIP has no negative sampler
    assert set(OBJECTIVES) <= set(MODELS)


def xor(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    a, b = (torch.randint(0, 2, (n, 1), generator=g).float() for _ in range(2))
    return {"a": a, "b": b, "c": (a != b).float()}


def zero_shot_xor_accuracy(name: str, batch_size: int, **options) -> float:
    """Train on c = a XOR b, then predict c from (a, b) among the candidates {0, 1}."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MODELS[name]({"a": 1, "b": 1, "c": 1}, **options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(40):
        loss = model.loss(model(xor(batch_size, g)), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = xor(1000, g)
    with torch.no_grad():
        e = model(test)
        scores = model.score({"a": e["a"], "b": e["b"]}, "c", model.encode("c", torch.tensor([[0.0], [1.0]])))
    return (scores.argmax(1) == test["c"][:, 0]).float().mean().item()


@pytest.mark.parametrize(("negatives", "batch_size"), [("n", 128), ("n_squared", 48)])
def test_symile_learns_xor_that_clip_cannot(negatives, batch_size):
    # Each of a, b alone says nothing about c, and CLIP's score is a sum of pairwise
    # terms, a linear threshold on (a, b): it gets at most 3 of the 4 cells right.
    assert zero_shot_xor_accuracy("symile", batch_size, negatives=negatives) > 0.99
    assert zero_shot_xor_accuracy("clip", batch_size) < 0.85


def test_the_documented_example_is_a_working_model():
    """examples/my_model/my_model.py, which the interface's docstring names."""
    spec = importlib.util.spec_from_file_location("my_model", ROOT / "examples" / "my_model" / "my_model.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model = example.MyModel(INPUTS, width=8)
    embeddings = model(batch())
    loss = model.loss(embeddings, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.score({"a": embeddings["a"], "b": embeddings["b"]}, "c", embeddings["c"]).shape == (6, 6)
    assert model.card()["config"] == {"width": 8}


def test_the_base_class_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        ContrastiveModel()


USER_MODULE = '''
import torch
from polymodal.baselines import ContrastiveModel, clip_loss, clip_scores


class TinyModel(ContrastiveModel):
    """A user model: one shared linear map for every modality."""

    def __init__(self, inputs, width=3):
        super().__init__()
        self.modalities = tuple(inputs)
        self.width = width
        self.proj = torch.nn.Linear(max(inputs.values()), width)

    def encode(self, modality, x):
        return self.proj(x)

    def loss(self, embeddings, rows=None, generator=None):
        return clip_loss([embeddings[m] for m in self.modalities], 1.0, rows)

    def score(self, queries, target, candidates):
        return clip_scores(list(queries.values()), candidates)

    def card(self):
        return {"name": "tiny", "parameters": 0, "config": {"width": self.width}}


class Unfinished(ContrastiveModel):
    def encode(self, modality, x):
        return x


class NotAModule:
    encode = loss = score = card = staticmethod(lambda *a: None)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "polymodal_user_models.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "polymodal_user_models"


def test_resolve_model_imports_a_user_class(user_module):
    cls = resolve_model(f"{user_module}:TinyModel")
    model = cls({"x": 2, "y": 2, "z": 2}, width=4)
    embeddings = model({m: torch.randn(5, 2) for m in model.modalities})
    assert model.loss(embeddings).ndim == 0
    assert model.score({"x": embeddings["x"]}, "y", embeddings["y"]).shape == (5, 5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", re.escape(f"expected a built-in ({', '.join(sorted(MODELS))}), an installed one (")),
        ("module_that_does_not_exist_123:Model", "cannot import"),
        ("{module}:Missing", "has no class"),
        ("{module}:Unfinished", "missing: loss, score, card"),
        ("{module}:NotAModule", "nn.Module"),
    ],
)
def test_resolve_model_explains_bad_specs(user_module, spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_model(spec.format(module=user_module))


def test_the_mlp_family_is_the_official_xnor_encoder():
    torch.manual_seed(0)
    encoder = ENCODERS["mlp"]({"a": 128}, 64)["a"]
    linears = [layer for layer in encoder if isinstance(layer, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(128, 256), (256, 256), (256, 64)]
    assert all((l.bias == 0).all() for l in linears)
    # Kaiming-normal, fan_out: std sqrt(2 / out_features).
    assert linears[1].weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    torch.testing.assert_close(encoder(torch.randn(4, 128)).norm(dim=1), torch.ones(4))
    raw = ENCODERS["mlp"]({"a": 3}, 5, width=7, depth=1, unit=False)["a"]
    with torch.no_grad():
        assert len(raw) == 1 and raw(torch.ones(2, 3)).norm(dim=1).max().item() != pytest.approx(1.0)
