"""AlignCLIP: IMSep against a brute-force loop, the DDP row split, the semantic encoders,
the model card, and the paper's claim in miniature (a higher paired cosine than CLIP)."""

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.baselines import ENCODERS, MODELS, LinearL2, clip_loss, clip_scores
from polymodal.baselines.alignclip import TEXT_WEIGHTS, AlignClip, BytesNgram, decode_bytes
from polymodal.baselines.gap import alignment
from tests.brute_force import sharded_mean, unit_rows

TWO = {"image": 3, "text": 3}
THREE = {"image": 3, "text": 3, "audio": 3}  # text in the middle: the model must find it by name


def with_semantics(inputs: dict[str, int], n: int, d: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Row-aligned float64 unit embeddings per modality, plus raw (unnormalised) semantic rows."""
    g = torch.Generator().manual_seed(seed + 1)
    return {**unit_rows(inputs, n, d, seed), "text:semantic": torch.randn(n, 7, generator=g, dtype=torch.float64)}


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v))


def mean_ce(logits: list[list[float]], rows: range) -> float:
    """Mean over ``rows`` of CE(logits[i], label i), from the definition."""
    return sum(math.log(sum(math.exp(v) for v in logits[i])) - logits[i][i] for i in rows) / len(rows)


def brute_force(emb: dict, order: list[str], s: float, sides: str, rows: range, alpha=1.0, beta=0.5) -> float:
    """The spec's loss, every matrix built entry by entry."""
    e = {m: emb[m].tolist() for m in order}
    n = len(e["text"])
    sem = [[v / math.sqrt(dot(row, row)) for v in row] for row in emb["text:semantic"].tolist()]
    distance = [[0.0 if i == j else 1 - dot(sem[i], sem[j]) for j in range(n)] for i in range(n)]
    total = 0.0
    for a, b in itertools.combinations(order, 2):
        ab = [[s * dot(e[a][i], e[b][j]) for j in range(n)] for i in range(n)]
        ba = [[s * dot(e[b][i], e[a][j]) for j in range(n)] for i in range(n)]
        total += alpha * (mean_ce(ab, rows) + mean_ce(ba, rows))

    def imsep(x, t):
        m = [[0.0] * n for _ in range(n)]
        for i in range(n):
            for j in range(n):
                m[i][j] = dot(x[i], x[j]) * distance[i][j] + (dot(x[i], t[i]) if i == j else 0.0)
        return mean_ce([[s * v for v in row] for row in m], rows)

    for other in order:
        if other == "text":
            continue
        if sides in ("both", "image"):
            total += beta * imsep(e[other], e["text"])
        if sides == "both":
            total += beta * imsep(e["text"], e[other])
    return total


@pytest.mark.parametrize("inputs", [TWO, THREE], ids=["2 modalities", "3 modalities"])
@pytest.mark.parametrize("sides", ["both", "image"])
def test_loss_matches_the_brute_force_imsep(inputs, sides):
    model = AlignClip(inputs, imsep_sides=sides, logit_scale_init=1.5)
    emb = with_semantics(inputs, 7)
    s = model.logit_scale().item()
    torch.testing.assert_close(model.loss(emb).item(), brute_force(emb, list(inputs), s, sides, range(7)), rtol=1e-9, atol=1e-9)
    # Each rank's rows, labelled by global index, weighted by their share, give the whole batch's loss.
    split = [slice(0, 2), slice(2, 3), slice(3, 7)]
    for part in split:
        expected = brute_force(emb, list(inputs), s, sides, range(part.start, part.stop))
        torch.testing.assert_close(model.loss(emb, rows=part).item(), expected, rtol=1e-9, atol=1e-9)
    parts = sharded_mean(lambda p: model.loss(emb, rows=p), split, 7)
    torch.testing.assert_close(parts, model.loss(emb), rtol=1e-12, atol=1e-12)


def test_row_shards_give_the_whole_batch_gradient():
    model = AlignClip(THREE)
    emb = {k: v.requires_grad_() for k, v in with_semantics(THREE, 6).items()}
    leaves = [emb[m] for m in THREE]
    whole = torch.autograd.grad(model.loss(emb), leaves)
    shards = torch.autograd.grad(sum(model.loss(emb, rows=slice(r, r + 3)) / 2 for r in (0, 3)), leaves)
    for a, b in zip(whole, shards):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_weights_and_a_task_without_text():
    emb = with_semantics(TWO, 6)
    scale = AlignClip(TWO).logit_scale()
    torch.testing.assert_close(AlignClip(TWO, beta=0.0).loss(emb), 2 * clip_loss([emb["image"], emb["text"]], scale))
    alpha0 = AlignClip(TWO, alpha=0.0, imsep_sides="image").loss(emb)
    torch.testing.assert_close(alpha0.item(), brute_force(emb, list(TWO), scale.item(), "image", range(6), alpha=0.0))
    # XOR-like modalities: no text, so no IMSep and no semantic key; the loss is the unhalved CLIP sum.
    xor = AlignClip({"a": 2, "b": 2, "c": 2})
    assert xor.semantic is None
    out = xor({m: torch.randn(4, 2) for m in "abc"})
    assert list(out) == ["a", "b", "c"]
    torch.testing.assert_close(xor.loss(out), 2 * clip_loss(list(out.values()), xor.logit_scale()))


def test_the_text_side_weighs_per_partner_or_averaged():
    emb = with_semantics(THREE, 6)
    clip_only = AlignClip(THREE, beta=0.0).loss(emb)
    text_side = {w: AlignClip(THREE, imsep_sides="text", text_weight=w).loss(emb) - clip_only for w in TEXT_WEIGHTS}
    # Two partners: averaged, each of the two text-side terms weighs β/2, so they weigh β in all.
    torch.testing.assert_close(text_side["averaged"], text_side["per_partner"] / 2)
    assert text_side["per_partner"] > 0
    other_side = {w: AlignClip(THREE, imsep_sides="image", text_weight=w).loss(emb) for w in TEXT_WEIGHTS}
    torch.testing.assert_close(other_side["averaged"], other_side["per_partner"])  # the other modalities' terms stay
    two = with_semantics(TWO, 6)  # one partner: the authors' loss either way
    torch.testing.assert_close(AlignClip(TWO, text_weight="averaged").loss(two), AlignClip(TWO).loss(two))
    with pytest.raises(ValueError, match="text_weight"):
        AlignClip(THREE, text_weight="sum")


def test_loss_explains_a_missing_semantic_key():
    model = AlignClip(TWO)
    emb = with_semantics(TWO, 4)
    del emb["text:semantic"]
    with pytest.raises(KeyError, match="model\\(batch\\)"):
        model.loss(emb)


def test_logit_scale_is_kept_between_1_and_100():
    assert AlignClip(TWO, logit_scale_init=math.log(1000)).logit_scale().item() == pytest.approx(100)
    assert AlignClip(TWO, logit_scale_init=-3.0).logit_scale().item() == pytest.approx(1)


def test_training_clamps_the_logit_scale_parameter_so_its_gradient_flows_at_the_bound():
    """The official trainer clamps the parameter to [0, ln 100] after each step; clamping only the output
    would leave a parameter past the bound with zero gradient, stuck there for good."""
    model = AlignClip(TWO, logit_scale_init=math.log(1000)).double().train()
    model.loss(with_semantics(TWO, 6)).backward()
    assert model.logit_scale.log_scale.item() == pytest.approx(math.log(100))
    assert model.logit_scale.log_scale.grad.abs().item() > 0


def test_weight_decay_spares_gains_biases_and_the_logit_scale_as_openclip_does():
    """With zero gradients one AdamW step only decays: a decayed weight shrinks by exactly (1 - lr * wd), and
    what OpenCLIP exempts (every parameter below two dimensions, the logit scale among them) stays put."""
    from polymodal.benchmarks.training import param_groups

    model = AlignClip(TWO, tokens=2, layers=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(param_groups(model, 0.5, 0.1))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    exempt = {n for n, p in model.named_parameters() if p.ndim < 2}
    assert "logit_scale.log_scale" in exempt and any(n.endswith("bias") for n in exempt)
    for n, p in model.named_parameters():
        expected = before[n] if n in exempt else before[n] * (1 - 0.1 * 0.5)
        torch.testing.assert_close(p.detach(), expected, msg=n)


def byte_ids(texts: list[str], length: int = 24) -> torch.Tensor:
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    for r, text in enumerate(texts):
        raw = list(text.encode())[:length]
        ids[r, : len(raw)] = torch.tensor(raw) + 1
    return ids


def test_bytes_ngram_is_a_fixed_offline_text_similarity():
    texts = ["a red cube", "a red cube", "a red ball", "zzz qqq", ""]
    ids = byte_ids(texts)
    assert decode_bytes(ids) == texts
    bag = BytesNgram()
    v = bag(ids)
    torch.testing.assert_close(v.norm(dim=1), torch.tensor([1.0, 1, 1, 1, 0]))
    sim = v @ v.T
    assert sim[0, 1] == pytest.approx(1)
    assert sim[0, 2] > sim[0, 3] + 0.3  # shared words share n-grams
    torch.testing.assert_close(bag(byte_ids(texts, 40)), v)  # pads carry nothing
    torch.testing.assert_close(bag(ids.float()), v)  # rows may arrive as floats
    torch.testing.assert_close(BytesNgram()(ids), v)  # no state, no randomness


def test_token_ids_are_refused_rather_than_read_as_bytes():
    """m3-paper texts are XLM-R token ids: read as bytes, most fall outside 1-256 and every text looks alike."""
    tokens = torch.tensor([[0, 9064, 250001, 2, 1, 1], [0, 31, 7, 2, 1, 1]])
    with pytest.raises(ValueError, match="token ids"):
        BytesNgram()(tokens)
    with pytest.raises(ValueError, match="token ids"):
        decode_bytes(tokens)
    assert decode_bytes(byte_ids(["ok"])) == ["ok"]  # byte ids still read


def test_forward_adds_the_semantic_embeddings_of_the_texts():
    model = AlignClip(TWO, encoders="linear_l2", semantic="bytes-ngram")
    ids = byte_ids(["one", "two", "three"], 3).float()
    out = model({"image": torch.randn(3, 3), "text": ids})
    assert list(out) == ["image", "text", "text:semantic"]
    torch.testing.assert_close(out["text:semantic"], BytesNgram()(ids))
    assert not out["text:semantic"].requires_grad
    torch.testing.assert_close(out["text"], model.encode("text", ids))
    assert model.loss(out).ndim == 0


def test_hf_semantic_encoder_mean_pools_a_local_frozen_model(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub lookup would fail, not download
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # The vocab file goes positionally: its keyword is vocab_file in transformers 4, vocab in 5.
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    transformers.BertModel(config).save_pretrained(tmp_path)

    inputs = {"image": 3, "text": 24}
    model = AlignClip(inputs, semantic=f"hf:{tmp_path}")
    texts = ["red cube", "blue ball and cone", "red"]
    out = model({"image": torch.randn(3, 3), "text": byte_ids(texts, 24).float()})

    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    reference = transformers.AutoModel.from_pretrained(tmp_path).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["input_ids"] != tokenizer.unk_token_id).all()  # the texts really were tokenised
    with torch.no_grad():
        hidden = reference(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    torch.testing.assert_close(out["text:semantic"], expected)
    # Frozen and outside the model: not trained, not counted, not checkpointed.
    assert not out["text:semantic"].requires_grad
    assert model.card()["parameters"] == AlignClip(inputs).card()["parameters"]
    assert set(model.state_dict()) == set(AlignClip(inputs).state_dict())
    assert model.loss(out).ndim == 0
    with pytest.raises(ValueError, match="semantic encoder"):
        AlignClip(TWO, semantic="hf")


def test_the_default_semantic_encoder_is_the_official_sentence_bert_loaded_on_first_use(monkeypatch):
    import transformers

    loaded = []
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name: loaded.append(name) or None)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda name: loaded.append(name) or torch.nn.Identity())
    model = AlignClip(TWO)
    emb = with_semantics(TWO, 4)
    model.loss(emb)  # the semantic rows given: nothing loads
    assert loaded == []
    assert model.semantic is not None and loaded == ["sentence-transformers/all-mpnet-base-v2"] * 2
    # The offline variants' layouts keep their texts' distances offline.
    from polymodal.benchmarks.tasks import load_task

    for task in ("vggsound-plus", "symile-m3"):
        assert load_task(task).model_config("alignclip")["semantic"] == "bytes-ngram"


def test_card_rebuilds_the_model_and_its_weights_load():
    model = MODELS["alignclip"](THREE, d_model=8, tokens=2, layers=1, heads=2, imsep_sides="image", beta=0.25)
    card = model.card()
    assert card["name"] == "alignclip"
    config = json.loads(json.dumps(card["config"]))
    rebuilt = MODELS["alignclip"](THREE, **config)
    assert rebuilt.card() == card
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(rebuilt.encode("audio", x), model.encode("audio", x))
    with pytest.raises(ValueError, match="imsep_sides"):
        AlignClip(TWO, imsep_sides="neither")
    with pytest.raises(ValueError, match="unknown encoders"):
        AlignClip(TWO, encoders="nope")


def test_shared_tower_embeds_every_modality_on_the_sphere_and_scores_like_clip():
    model = AlignClip(THREE)
    x = {m: torch.randn(5, 3) for m in THREE}
    e = {m: model.encode(m, v) for m, v in x.items()}
    for v in e.values():
        torch.testing.assert_close(v.norm(dim=1), torch.ones(5))
    # One tower: only the input embedders, token maps, CLS tokens and position embeddings are per modality.
    shared = {n.split(".")[1] for n, _ in model.named_parameters() if n.startswith("tower.")}
    assert shared == {"embedders", "to_tokens", "class_embedding", "positional_embedding", "transformer", "norm",
                      "projection"}
    scores = model.score({"audio": e["audio"], "image": e["image"]}, "text", e["text"][:3])
    torch.testing.assert_close(scores, clip_scores([e["image"], e["audio"]], e["text"][:3], model.logit_scale()))
    with pytest.raises(ValueError, match="not a query"):
        model.score({"text": e["text"]}, "text", e["text"])


# --- The shared tower: several tokens per sample, read at CLS or EOT. ------------------------


class GivenStates(nn.Module):
    """A text embedder whose token states are its input, as given: (N, L, d + 1), the last column 1 for a pad."""

    def token_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., :-1], x[..., -1] == 0


@pytest.fixture
def tower_with_given_text(monkeypatch):
    """An AlignCLIP whose text tokens are given as they are (GivenStates), at most 6 of them, d_model 8."""
    monkeypatch.setitem(ENCODERS, "given-text", lambda inputs, d: nn.ModuleDict(
        {"image": LinearL2(inputs["image"], d), "text": GivenStates()}))
    torch.manual_seed(0)
    return AlignClip({"image": 3, "text": 6}, d_model=8, heads=2, encoders="given-text").double().eval()


def given_texts(lengths: list[int], length: int = 6, d: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(len(lengths), length, d, generator=g, dtype=torch.float64)
    pads = (torch.arange(length) >= torch.tensor(lengths)[:, None]).double()
    return torch.cat([states, pads[..., None]], -1)


def read_by_hand(model: AlignClip, tokens: torch.Tensor, at: list[int], causal: bool) -> torch.Tensor:
    """The tower's layers on ``tokens`` (positions added here), with no pad mask: the output at ``at``."""
    t = model.tower
    tokens = tokens + t.positional_embedding["text" if causal else "image"][: tokens.shape[1]]
    mask = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).triu(1) if causal else None
    out = t.norm(t.transformer(tokens, mask=mask))
    return F.normalize(t.projection(out[torch.arange(len(out)), at]), dim=-1)


def test_the_default_tower_reads_several_tokens_per_sample_and_mixes_them(tower_with_given_text):
    """With one token a layer's attention is a fixed linear map; the default gives every modality several."""
    model = AlignClip(THREE).eval()
    lengths = []
    model.tower.transformer.register_forward_pre_hook(lambda _, args: lengths.append(args[0].shape[1]))
    for m in THREE:
        model.encode(m, torch.randn(2, 3))
    assert model.config.tokens > 1 and len(lengths) == 3 and min(lengths) > 1
    # A token's output depends on the other tokens: change one token, the EOT read of the last changes.
    text = tower_with_given_text
    x = given_texts([6, 6])
    changed = x.clone()
    changed[:, 0, :-1] = given_texts([6, 6], seed=1)[:, 0, :-1]  # another first token (a shift alone LayerNorm removes)
    assert (text.encode("text", x) - text.encode("text", changed)).abs().amax() > 1e-3


def test_eot_reads_the_last_real_token_and_ignores_the_pads(tower_with_given_text):
    model = tower_with_given_text
    x = given_texts([6, 3, 1])
    masks = []
    model.tower.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: masks.append(kwargs.get("src_key_padding_mask")), with_kwargs=True)
    out = model.encode("text", x)
    torch.testing.assert_close(masks[0], x[..., -1] == 1)  # the pads reach the transformer's key padding mask
    # Each row read by hand at its last real token, run on the real tokens alone (no pads anywhere).
    for row, n in enumerate([6, 3, 1]):
        alone = read_by_hand(model, x[row : row + 1, :n, :-1], [n - 1], causal=True)
        torch.testing.assert_close(out[row : row + 1], alone)
    noisy = x.clone()
    noisy[..., :-1] += 100 * x[..., -1:]  # the pads' contents changed
    torch.testing.assert_close(model.encode("text", noisy), out, rtol=0, atol=0)
    # Left-aligned pads after the last real token: the last non-pad position, not the last column.
    assert not torch.allclose(out[1], read_by_hand(model, x[1:2, :, :-1], [5], causal=True)[0])


def test_cls_reads_a_learned_token_prepended_to_the_vector_tokens(tower_with_given_text):
    model = tower_with_given_text
    t = model.tower
    x = torch.randn(4, 3, dtype=torch.float64)
    tokens = t.to_tokens["image"](t.embedders["image"](x)).unflatten(-1, (model.config.tokens, -1))
    by_hand = torch.cat([t.class_embedding["image"].expand(4, 1, -1), tokens], 1)
    torch.testing.assert_close(model.encode("image", x), read_by_hand(model, by_hand, [0] * 4, causal=False))


def test_every_modality_runs_through_one_transformer():
    model = AlignClip(THREE, encoders="linear_l2")
    towers = [m for m in model.modules() if isinstance(m, nn.TransformerEncoder)]
    assert towers == [model.tower.transformer]
    seen = []
    for module in (model.tower.transformer, model.tower.norm, model.tower.projection):
        module.register_forward_hook(lambda mod, *_: seen.append(mod))
    for m in THREE:
        model.encode(m, torch.randn(2, 3))
    assert seen == [model.tower.transformer, model.tower.norm, model.tower.projection] * 3
    assert model.tower.pooling == {"image": "cls", "text": "eot", "audio": "cls"}
    assert AlignClip({"a": 2, "b": 2, "c": 2}).tower.pooling == dict.fromkeys("abc", "cls")  # no text: all CLS
    with pytest.raises(ValueError, match="tokens"):
        AlignClip(TWO, tokens=0)


def test_byte_texts_feed_the_tower_their_tokens_and_pad_mask():
    """On the VGG-sound+ layout the caption's bytes are the text's tokens (0 pads), not one vector."""
    from polymodal.baselines.layouts import AUDIO_VISUAL

    torch.manual_seed(0)
    model = AlignClip(AUDIO_VISUAL.inputs(), encoders="av-embedded", d_model=16, heads=2, semantic="bytes-ngram").eval()
    assert model.tower.sequences == {"text"} and "text" not in model.tower.to_tokens
    ids = byte_ids(["a dog barks", "rain"], AUDIO_VISUAL.text_len)
    masks = []
    model.tower.transformer.register_forward_pre_hook(
        lambda _, args, kwargs: masks.append(kwargs.get("src_key_padding_mask")), with_kwargs=True)
    with torch.no_grad():
        out = model.encode("text", ids)
        short = model.encode("text", ids[1:, :4])  # "rain" alone, no pads at all
    assert masks[0].shape == (2, len("a dog barks")) and masks[0][1].tolist() == [False] * 4 + [True] * 7
    torch.testing.assert_close(out[1:], short)


# --- The claim in miniature: AlignCLIP closes the gap that CLIP leaves. -------------------

ADJECTIVES = ["red", "green", "blue", "small", "large", "shiny"]
NOUNS = ["cube", "ball", "cone", "ring", "star"]
CONCEPTS = list(itertools.product(range(len(ADJECTIVES)), range(len(NOUNS))))
CAPTIONS = byte_ids([f"{ADJECTIVES[a]} {NOUNS[b]}" for a, b in CONCEPTS], 16)


class ByteBag(nn.Module):
    """Mean of learned byte embeddings, onto the unit sphere: a tiny text embedder."""

    def __init__(self, d_model: int):
        super().__init__()
        self.bag = nn.EmbeddingBag(257, d_model, mode="mean", padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.bag(ids.long()), dim=-1)


def captioned_images(inputs: dict[str, int], d_model: int) -> nn.ModuleDict:
    return nn.ModuleDict({"image": LinearL2(inputs["image"], d_model), "text": ByteBag(d_model)})


def sample(n: int, g: torch.Generator, mixing: torch.Tensor) -> dict[str, torch.Tensor]:
    """Images: a noisy linear view of (adjective, noun) one-hots; texts: their captions."""
    c = torch.randint(len(CONCEPTS), (n,), generator=g)
    parts = torch.tensor(CONCEPTS)[c]
    onehot = torch.cat([F.one_hot(parts[:, 0], len(ADJECTIVES)), F.one_hot(parts[:, 1], len(NOUNS))], 1).float()
    return {"image": onehot @ mixing + 0.3 * torch.randn(n, mixing.shape[1], generator=g), "text": CAPTIONS[c]}


def trained_alignment(name: str) -> float:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(len(ADJECTIVES) + len(NOUNS), 12, generator=g)
    offline = {"semantic": "bytes-ngram"} if name == "alignclip" else {}
    model = MODELS[name]({"image": 12, "text": CAPTIONS.shape[1]}, d_model=16, encoders="captioned-images", **offline)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model.loss(model(sample(64, g, mixing)), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        e = model(sample(512, g, mixing))
    return alignment(e["image"], e["text"]).item()


def test_alignclip_aligns_pairs_better_than_clip(monkeypatch, one_thread):
    monkeypatch.setitem(ENCODERS, "captioned-images", captioned_images)
    clip, align = trained_alignment("clip"), trained_alignment("alignclip")
    assert align > clip + 0.2, (clip, align)
