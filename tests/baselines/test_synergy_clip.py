"""Synergy-CLIP: its losses and scores against loops that write the formulas out, its
missing-modality reconstruction on held-out rows, and the hf-synergy backbones (tiny, random)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines import MODELS
from polymodal.baselines.encoders.hf import CHECKPOINTS, hf_synergy_encoders
from polymodal.baselines.layouts import AUDIO_VISUAL
from polymodal.baselines.synergy_clip import SynergyClip
from tests.brute_force import infonce_loop, sharded_mean, unit_rows

pytestmark = pytest.mark.usefixtures("one_thread")

INPUTS = {"a": 5, "b": 4, "c": 3}
TOL = dict(rtol=1e-9, atol=1e-9)


def model64(**options) -> SynergyClip:
    """A float64 model with three different pair scales, so a pair mix-up shows."""
    torch.manual_seed(0)
    model = SynergyClip(INPUTS, d_model=6, bottleneck=5, **options).double()
    with torch.no_grad():
        for scale, value in zip(model.logit_scales, (0.3, 1.1, 2.0)):
            scale.log_scale.fill_(value)
    return model


def unit(n: int = 7, d: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    return unit_rows(INPUTS, n, d, seed)


@torch.no_grad()
def reconstructed_row(model: SynergyClip, e: dict[str, torch.Tensor], t: str, i: int, sources=None) -> torch.Tensor:
    """Row i of target t rebuilt from ``sources`` (by default every other modality), the bottleneck written out."""
    block = model.reconstructors[t]
    norm, down, _, up = block.bottleneck
    h = sum(block.mappers[m].weight @ e[m][i] for m in sources or [m for m in model.modalities if m != t])
    ln = (h - h.mean()) / torch.sqrt(h.var(unbiased=False) + norm.eps) * norm.weight + norm.bias
    return h + up.weight @ F.gelu(down.weight @ ln + down.bias) + up.bias


def reconstruction_loop(model: SynergyClip, e: dict[str, torch.Tensor], rows: range) -> float:
    """Σ_targets mean over rows and the source sets a test fills from (either other modality, or both) of 1 − cos."""
    total = 0.0
    for t in model.modalities:
        x, y = [m for m in model.modalities if m != t]
        for sources in ([x], [y], [x, y]):
            for i in rows:
                out = reconstructed_row(model, e, t, i, sources)
                total += (1 - float(out @ e[t][i]) / float(out.norm() * e[t][i].norm())) / len(rows) / 3
    return total


@pytest.mark.parametrize("rows", [None, slice(2, 5)])
def test_loss_is_the_weighted_pairwise_infonce_plus_the_reconstruction(rows):
    model = model64(alpha=0.5, beta=2.0, gamma=3.0, recon_weight=0.7)
    e = unit()
    local = range(7)[rows or slice(None)]
    scales = [math.exp(v) for v in (0.3, 1.1, 2.0)]
    contrastive = (
        0.5 * infonce_loop(e["a"], e["b"], scales[0], local)
        + 2.0 * infonce_loop(e["b"], e["c"], scales[1], local)
        + 3.0 * infonce_loop(e["c"], e["a"], scales[2], local)
    )
    expected = contrastive + 0.7 * reconstruction_loop(model, e, local)
    with torch.no_grad():
        torch.testing.assert_close(model.loss(dict(reversed(e.items())), rows=rows).item(), expected, **TOL)
        # The official code selects its checkpoint on the contrastive loss alone.
        torch.testing.assert_close(model.validation_loss(e, rows=rows).item(), contrastive, **TOL)


def test_the_trainer_selects_on_the_validation_loss():
    from contextlib import nullcontext

    from polymodal.benchmarks.training import Placement, mean_loss

    model = model64(recon_weight=5.0)
    val = {m: torch.randn(9, d, dtype=torch.float64) for m, d in INPUTS.items()}
    with torch.no_grad():
        e = model(val)
        ours = mean_loss(model, val, 4, 0, Placement(torch.device("cpu")), nullcontext())
        # Batches of 4, 4 and 1 rows, each weighted by its size.
        by_batch = sum(model.contrastive_loss({m: x[i:i + 4] for m, x in e.items()}).item() * len(range(9)[i:i + 4])
                       for i in (0, 4, 8)) / 9
    assert ours == pytest.approx(by_batch, rel=1e-6)  # mean_loss runs the loss in float32
    assert model.reconstruction_loss(e) > 0  # so the full loss would have selected otherwise


def test_the_losses_of_every_rank_average_to_the_loss_of_the_batch():
    model, e = model64(), unit()
    parts = [slice(0, 3), slice(3, 4), slice(4, 7)]
    with torch.no_grad():
        sharded = sharded_mean(lambda p: model.loss(e, rows=p), parts, 7)
        torch.testing.assert_close(sharded, model.loss(e), **TOL)


def test_the_reconstruction_trains_only_the_reconstructors():
    model = SynergyClip(INPUTS, d_model=6)
    x = {m: torch.randn(8, d) for m, d in INPUTS.items()}
    model.reconstruction_loss(model(x)).backward()
    encoders = [*model.encoders.parameters(), *model.projections.parameters(), *model.logit_scales.parameters()]
    assert all(p.grad is None for p in encoders)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.reconstructors.parameters())
    model.zero_grad(set_to_none=True)
    model.contrastive_loss(model(x)).backward()
    assert all(p.grad is None for p in model.reconstructors.parameters())
    assert all(p.grad is not None for p in encoders)


def test_score_sums_each_query_pair_at_its_own_scale():
    model, e = model64(), unit()
    candidates = e["a"][:4]
    expected = torch.tensor([
        [math.exp(0.3) * float(e["b"][i] @ c) + math.exp(2.0) * float(e["c"][i] @ c) for c in candidates]
        for i in range(7)
    ], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model.score({"c": e["c"], "b": e["b"]}, "a", candidates), expected, **TOL)
        torch.testing.assert_close(model.score({"b": e["b"]}, "a", candidates), math.exp(0.3) * e["b"] @ candidates.T, **TOL)
    with pytest.raises(ValueError, match="not a query"):
        model.score({"a": e["a"], "b": e["b"]}, "a", candidates)


def test_fill_missing_is_the_normalised_reconstruction_the_loss_scores():
    model, e = model64(), unit()
    with torch.no_grad():
        filled = model.fill_missing({"a": e["a"], "c": e["c"]}, "b")
        expected = torch.stack([F.normalize(reconstructed_row(model, e, "b", i), dim=0) for i in range(7)])
    # The same rows whose cosine to the real b the loss scores (reconstruction_loop, checked above).
    torch.testing.assert_close(filled, expected, **TOL)
    with pytest.raises(ValueError, match="present"):
        model.fill_missing(e, "b")


def test_card_rebuilds_the_same_model():
    model = MODELS["synergy-clip"](INPUTS, d_model=7, logit_scale_init=0.0, encoders="linear_l2", encoder_options=None,
                                   gamma=0.5, bottleneck=9)
    card = model.card()
    assert card["name"] == "synergy-clip"
    rebuilt = MODELS["synergy-clip"](INPUTS, **json.loads(json.dumps(card["config"])))
    assert rebuilt.card() == card
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(model.state_dict())
    x = {m: torch.randn(3, d) for m, d in INPUTS.items()}
    torch.testing.assert_close(rebuilt(x), model(x))


def test_any_three_modalities_in_their_given_order():
    model = SynergyClip({"text": 3, "image": 4, "audio": 5})
    assert model.modalities == ("text", "image", "audio")
    assert model.pairs == (("text", "image"), ("image", "audio"), ("audio", "text"))
    with pytest.raises(ValueError, match="exactly three"):
        SynergyClip({"a": 2, "b": 2})


# --- the hf-synergy backbones, tiny and random: nothing is downloaded ---------------------------


def av_rows(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    layout = AUDIO_VISUAL
    text = torch.randint(1, layout.vocab, (n, layout.text_len), generator=g)
    text[:, 9:] = layout.pad  # texts are short and right-padded
    return {
        "image": torch.rand(n, layout.channels * layout.image_side**2, generator=g) * 2 - 1,
        "audio": torch.randn(n, layout.n_mels * layout.frames, generator=g),
        "text": text,
    }


@pytest.fixture(scope="module")
def tiny() -> SynergyClip:
    torch.manual_seed(0)
    return SynergyClip(AUDIO_VISUAL.inputs(), d_model=8, encoders="hf-synergy", encoder_options={"size": "tiny"}).eval()


def test_tiny_hf_synergy_embeds_audio_visual_rows(tiny):
    rows = av_rows(3)
    with torch.no_grad():
        e = tiny(rows)
    for m in AUDIO_VISUAL.inputs():
        assert e[m].shape == (3, 8)
        torch.testing.assert_close(e[m].norm(dim=1), torch.ones(3))
        assert tiny.projections[m].bias is None and tiny.projections[m].in_features == 32
    card = tiny.card()
    assert card["config"]["encoder_options"] == {"size": "tiny", "augment": True}  # the default, named
    with torch.no_grad():
        rebuilt = SynergyClip(AUDIO_VISUAL.inputs(), **card["config"])
        rebuilt.load_state_dict(tiny.state_dict())
        torch.testing.assert_close(rebuilt.eval()(rows), e)


def test_tiny_backbones_read_the_layout_as_the_models_expect(tiny):
    rows, seen = av_rows(2), {}
    hooks = [
        tiny.encoders[m].model.register_forward_pre_hook(
            lambda _, args, kwargs, m=m: seen.update({m: kwargs}), with_kwargs=True
        )
        for m in AUDIO_VISUAL.inputs()
    ]
    with torch.no_grad():
        tiny(rows)
        # Trailing pads are masked out and sit at no position: cropping them changes nothing.
        torch.testing.assert_close(tiny.encode("text", rows["text"][:, :9]), tiny.encode("text", rows["text"]))
    for hook in hooks:
        hook.remove()
    side, mels, frames = AUDIO_VISUAL.image_side, AUDIO_VISUAL.n_mels, AUDIO_VISUAL.frames
    assert torch.equal(seen["image"]["pixel_values"], rows["image"].reshape(2, 3, side, side))
    # AST reads (frames, mel bins); the rows are mel-major.
    audio = seen["audio"]["input_values"]
    assert audio.shape == (2, frames, mels) and audio[1, 7, 5] == rows["audio"][1, 5 * frames + 7]
    assert torch.equal(seen["text"]["input_ids"], rows["text"])
    assert torch.equal(seen["text"]["attention_mask"], (rows["text"] != 0).long())


def test_hf_synergy_refuses_other_layouts_and_sizes():
    with pytest.raises(ValueError, match="modalities"):
        hf_synergy_encoders({"image": 3072, "audio": 6400}, 8)
    with pytest.raises(ValueError, match="widths"):
        hf_synergy_encoders({**AUDIO_VISUAL.inputs(), "image": 3 * 16 * 16}, 8)
    with pytest.raises(ValueError, match="size"):
        hf_synergy_encoders(AUDIO_VISUAL.inputs(), 8, size="huge")


@pytest.mark.parametrize("size", sorted(CHECKPOINTS))
def test_base_and_large_load_the_papers_checkpoints(size, monkeypatch):
    import transformers

    loaded = {}

    def fake(cls, name):  # stands in for the download: a tiny random model of the same class
        loaded[cls.__name__] = name
        return cls(cls.config_class(**{
            "CLIPVisionModel": dict(image_size=32, patch_size=8),
            "ASTModel": dict(num_mel_bins=64, max_length=100),
            "RobertaModel": dict(vocab_size=257, pad_token_id=0, max_position_embeddings=66),
        }[cls.__name__], hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))

    for name in ("CLIPVisionModel", "ASTModel", "RobertaModel"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", classmethod(fake))
    model = SynergyClip(AUDIO_VISUAL.inputs(), encoders="hf-synergy", encoder_options={"size": size}, d_model=8)
    assert loaded == {
        "CLIPVisionModel": CHECKPOINTS[size]["image"],
        # The official AudioConfig_BASE names the 12-12 AST.
        "ASTModel": {"base": "MIT/ast-finetuned-audioset-12-12-0.447", "large": "MIT/ast-finetuned-audioset-10-10-0.4593"}[size],
        "RobertaModel": CHECKPOINTS[size]["text"],
    }
    # The paper projects to 768 (Base) or 1024 (Large), whatever the task's d_model.
    width = {"base": 768, "large": 1024}[size]
    assert {p.out_features for p in model.projections.values()} == {width}
    assert CHECKPOINTS[size]["image"] == f"openai/clip-vit-{size}-patch{16 if size == 'base' else 14}"
    assert CHECKPOINTS[size]["text"] == f"FacebookAI/roberta-{size}"


# --- behaviour: reconstruction of held-out rows -------------------------------------------------

MODS = ("a", "b", "c")


def latent_world(seed: int, k: int = 8, dim: int = 12, noise: float = 0.3):
    """Each modality a different random linear map of a shared Gaussian latent, plus its own noise."""
    g = torch.Generator().manual_seed(seed)
    maps = {m: torch.randn(k, dim, generator=g) / k**0.5 for m in MODS}

    def sample(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        z = torch.randn(n, k, generator=gen)
        return {m: z @ maps[m] + noise * torch.randn(n, dim, generator=gen) for m in MODS}

    return sample


def test_reconstruction_of_held_out_rows_beats_the_mean_embedding():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sample = latent_world(0)
    model = SynergyClip(dict.fromkeys(MODS, 12), d_model=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(250):
        loss = model.loss(model(sample(128, g)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    n = 400
    with torch.no_grad():
        train, test = model(sample(1000, g)), model(sample(n, g))  # test rows never seen in training
        for target in MODS:
            guesses = {
                "reconstructed": model.fill_missing({m: e for m, e in test.items() if m != target}, target),
                "mean": F.normalize(train[target].mean(0), dim=0).expand(n, -1),
            }
            # Retrieval: is the true test row the best match among all n test candidates?
            accuracy = {k: ((v @ test[target].T).argmax(1) == torch.arange(n)).float().mean().item() for k, v in guesses.items()}
            cosine = {k: F.cosine_similarity(v, test[target], dim=1).mean().item() for k, v in guesses.items()}
            assert accuracy["reconstructed"] > 0.5 > 0.01 > accuracy["mean"], (target, accuracy)
            assert cosine["reconstructed"] > 0.85 and cosine["reconstructed"] > cosine["mean"] + 0.2, (target, cosine)


@pytest.mark.parametrize("name", ["clip", "symile", "alignclip", "trml"])
def test_backbones_of_their_own_width_are_refused_by_models_that_do_not_project(name):
    tiny = {"encoders": "hf-synergy", "encoder_options": {"size": "tiny"}}
    with pytest.raises(ValueError, match="only a model that projects them"):
        MODELS[name](AUDIO_VISUAL.inputs(), d_model=8, **tiny)
    assert MODELS["synergy-clip"](AUDIO_VISUAL.inputs(), d_model=8, **tiny).encode(
        "text", torch.zeros(2, AUDIO_VISUAL.inputs()["text"], dtype=torch.long)).shape == (2, 8)
