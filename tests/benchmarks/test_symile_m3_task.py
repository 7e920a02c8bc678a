"""The Symile-M3 task: the feature cache, the paper's encoders on tiny configs, training and scoring."""

import io
import json
import typing

import numpy as np
import pytest
import torch

from polymodal.baselines.models import MODELS
from polymodal.benchmarks.feature_cache import CACHE_ENV as FEATURES_ENV
from polymodal.benchmarks.feature_cache import cache_path
from polymodal.benchmarks.featurize import Featurizer, featurize, featurize_all, load_features
from polymodal.benchmarks.protocols.gap import embed
from polymodal.benchmarks.runs import evaluate_run, train_run
from polymodal.benchmarks.tasks import load_task
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.tasks.symile_m3.featurizers import EmbeddedFeaturizer
from polymodal.benchmarks.tasks.symile_m3.task import retrieve
from polymodal.builders.core.runner import build
from polymodal.builders.symile_m3.builder import LANGUAGE_SETS, M3Config, SymileM3Builder
from polymodal.builders.symile_m3.speech import CACHE_ENV
from polymodal.leaderboard.schema import validate_result

TINY = dict(languages=LANGUAGE_SETS["M3-2"], train=64, val=32, test=48, shard_size=32, seed=3)
FAST = TrainConfig(epochs=2, batch_size=32, lr=1e-3)


@pytest.fixture(scope="module", autouse=True)
def caches(tmp_path_factory):
    """One speech cache and one feature cache for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("tts")))
        mp.setenv(FEATURES_ENV, str(tmp_path_factory.mktemp("features")))
        yield


@pytest.fixture(scope="module")
def m3(tmp_path_factory):
    out = tmp_path_factory.mktemp("m3")
    build(SymileM3Builder(M3Config(**TINY)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def m3_missing(tmp_path_factory):
    out = tmp_path_factory.mktemp("m3-missing")
    build(SymileM3Builder(M3Config(**TINY, missing_p=0.5)), out, progress=False)
    return out


class Refuses(Featurizer):
    """A featurizer that fails if called: proves a cached split is not recomputed."""

    info: typing.ClassVar[dict] = {}

    def prepare(self, rows):
        raise AssertionError("recomputed a cached split")


def test_featurize_caches_once_and_reuses(m3, tmp_path, run_cli):
    paths = featurize_all(m3, "embedded", out=tmp_path)
    assert [p.name for p in paths] == ["test.json", "train.json", "val.json"]  # the indexes
    assert paths[0] == cache_path(m3, "embedded", "test", tmp_path) and paths[0].parent.parent.parent == tmp_path
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert featurize_all(m3, "embedded", out=tmp_path, featurizer=Refuses()) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert not list(tmp_path.rglob("*.tmp"))
    arrays, info = load_features(m3, "embedded", "train", out=tmp_path)
    assert arrays["image"].shape == (64, 256) and arrays["text"].shape == (64, 128) and info["missing_token"] == 257
    assert np.isfinite(arrays["audio"]).all() and arrays["missing"].sum() == 0
    run_cli("polymodal", "featurize", "--data", str(m3), "--encoder", "embedded", "--out", str(tmp_path))
    assert [p.stat().st_mtime_ns for p in paths] == stamps


class FakeTokenizer:
    """Stands in for XLM-R's tokenizer (no download here): same call signature, ids from UTF-8 bytes."""

    pad_token_id = 1

    def __len__(self):
        return 300

    def __call__(self, texts, padding=False, max_length=None):
        ids = [[0] + [b + 3 for b in t.encode()] + [2] for t in texts]
        width = max_length if padding == "max_length" else 0
        return {"input_ids": [row + [self.pad_token_id] * (width - len(row)) for row in ids]}


def tiny_xlmr_tokenizer(corpus: list[str]):
    """XLM-R's tokenizer pipeline (SentencePiece unigram pieces, "▁" for spaces, <s> … </s>, pad id 1) over a
    tiny vocabulary of the corpus's characters and their first bigrams: the real one cannot be downloaded here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    chars = sorted({c for text in corpus for c in text.replace(" ", "▁")} | {"▁"})
    bigrams = sorted({text[i : i + 2] for text in corpus for i in range(0, len(text) - 1, 3)} - {""})
    vocab = [(t, 0.0) for t in specials] + [(c, -8.0) for c in chars] + [(b, -5.0) for b in bigrams if " " not in b]
    tok = Tokenizer(models.Unigram([*vocab, ("<mask>", 0.0)], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>", mask_token="<mask>")
    assert tokenizer.pad_token_id == 1
    return tokenizer


def cut(row: np.ndarray, text: str, tokenizer) -> bool:
    """Whether a featurized row is not the whole of the text's own tokenization, then pads."""
    own = tokenizer(text)["input_ids"]
    return row[: len(own)].tolist() != own or bool((row[len(own) :] != tokenizer.pad_token_id).any())


@pytest.fixture(scope="module")
def tiny_paper_models(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("paper-models")
    image, audio = path / "clip", path / "whisper"
    transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16,
    )).save_pretrained(image)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(image)
    transformers.WhisperModel(transformers.WhisperConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500, max_target_positions=8,
    )).save_pretrained(audio)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(audio)
    return {"image": str(image), "audio": str(audio), "device": "cpu"}


def test_paper_featurizer_runs_on_tiny_models(m3, tmp_path, tiny_paper_models):
    from polymodal.benchmarks.tasks.symile_m3.featurizers import PaperFeaturizer

    featurizer = PaperFeaturizer(**tiny_paper_models, tokenizer=FakeTokenizer(), data_dir=m3)
    width = featurizer.text_len  # the longest text's bytes and two specials (tested below with XLM-R's pipeline)
    path = featurize(m3, "paper-tiny", "test", out=tmp_path, featurizer=featurizer)
    # The processors in two loader workers, the models in this process: the same file.
    assert featurize(m3, "paper-tiny", "test", out=tmp_path / "w2", featurizer=featurizer, workers=2).read_bytes() == path.read_bytes()
    arrays, info = load_features(m3, "paper-tiny", "test", out=tmp_path)
    assert arrays["image"].shape == (48, 16) and arrays["audio"].shape == (48, 16) and arrays["text"].shape == (48, width)
    assert np.isfinite(arrays["image"]).all() and np.isfinite(arrays["audio"]).all()
    assert info == {"text_vocab": 301, "text_pad": 1, "missing_token": 300, "text_len": width} and path.is_file()


def test_the_paper_text_width_is_the_longest_text_of_every_split(m3, tmp_path, tiny_paper_models):
    """One width for every split, taken from all of them: the longest text, whole, and no other text cut."""
    import tarfile

    from polymodal.benchmarks.tasks.symile_m3.featurizers import PaperFeaturizer

    texts: dict[str, list[str]] = {}  # split -> its texts in key order, read from the shards without the featurizer
    for shard in json.loads((m3 / "manifest.json").read_text())["shards"]:
        with tarfile.open(m3 / shard["path"]) as tar:
            texts.setdefault(shard["split"], []).extend(
                tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".txt"))
    every = [t for split in texts.values() for t in split]
    tokenizer = tiny_xlmr_tokenizer(every)
    longest = max(len(tokenizer(t)["input_ids"]) for t in every)
    featurizer = PaperFeaturizer(**tiny_paper_models, tokenizer=tokenizer, data_dir=m3)
    assert featurizer.info["text_len"] == longest
    featurize_all(m3, "paper-tiny", out=tmp_path, featurizer=featurizer)
    for split, split_texts in texts.items():
        arrays, info = load_features(m3, "paper-tiny", split, out=tmp_path)
        assert arrays["text"].shape == (len(split_texts), longest) and info["text_len"] == longest
        assert not any(cut(row, text, tokenizer) for row, text in zip(arrays["text"], split_texts))
    with pytest.raises(ValueError, match="text_len, or data_dir"):
        PaperFeaturizer(**tiny_paper_models, tokenizer=tokenizer)


def test_no_m3_10_text_is_cut():
    """Texts as the builder draws them from M3-10 (all ten languages, the Babel-ImageNet names it ships), and one
    of every language's longest name: each featurized whole, though some are longer than the old 64 tokens."""
    pytest.importorskip("transformers")
    from polymodal.benchmarks.tasks.symile_m3.featurizers import PaperFeaturizer, longest_text
    from polymodal.builders.symile_m3.builder import draw
    from polymodal.builders.symile_m3.names import SEPARATOR, load_table
    from polymodal.builders.symile_m3.sources import default_names

    languages = LANGUAGE_SETS["M3-10"]
    classes = load_table(default_names("imagenet:unused"), languages)
    assert len(classes) > 100  # the bundled table, not the digits
    ones = lambda k: np.ones(k, int)  # noqa: E731  one clip per language, one image per class: only the words matter
    d = draw(np.random.default_rng(0), 2000, len(languages), ones(len(languages)), ones(len(classes)), 0.0)
    texts = [SEPARATOR.join(classes[k].names[languages[lang]] for lang, k in zip(langs, ks))
             for langs, ks in zip(d.word_language, d.word_cls)]
    texts.append(SEPARATOR.join(max((c.names[lang] for c in classes), key=len) for lang in languages))
    tokenizer = tiny_xlmr_tokenizer(texts)
    featurizer = PaperFeaturizer.__new__(PaperFeaturizer)  # the text path only: no model is loaded
    featurizer.tokenizer, featurizer.text_len = tokenizer, longest_text(texts, tokenizer, batch=128)
    ids = featurizer.text_ids(texts)
    assert not any(cut(row, text, tokenizer) for row, text in zip(ids, texts))
    assert any(len(tokenizer(t)["input_ids"]) > 64 for t in texts)  # the old fixed width cut these
    featurizer.text_len = 64
    with pytest.raises(ValueError, match="more than the 64"):
        featurizer.text_ids(texts)


def test_paper_featurizer_normalizes_audio_as_the_official_code():
    """save_representations.py passes do_normalize=True: a clip at 10x the volume gives the same features."""
    transformers = pytest.importorskip("transformers")
    import soundfile as sf
    from PIL import Image

    from polymodal.benchmarks.tasks.symile_m3.featurizers import MODALITIES, PaperFeaturizer
    from polymodal.builders.schema import SAMPLE_RATE

    featurizer = PaperFeaturizer.__new__(PaperFeaturizer)  # its processors only: no model is loaded
    featurizer.image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    featurizer.audio_extractor = transformers.WhisperFeatureExtractor(feature_size=80)
    featurizer.tokenizer, featurizer.text_len = FakeTokenizer(), 8
    featurizer.info = {"text_pad": 1, "missing_token": 300}
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32)).save(jpeg, format="JPEG")
    wave = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE)

    def features(scale: float) -> np.ndarray:
        flac = io.BytesIO()
        sf.write(flac, wave * scale, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
        meta = {"class_id": 0, "missing": dict.fromkeys(MODALITIES, 0)}
        return featurizer.prepare([(jpeg.getvalue(), flac.getvalue(), "hi", meta)])["input_features"]

    np.testing.assert_allclose(features(1.0), features(10.0), atol=1e-3)


def test_train_and_eval_write_a_valid_result(m3, tmp_path):
    train_run("symile-m3", "symile", m3, tmp_path / "run", FAST, progress=False)
    result = evaluate_run(tmp_path / "run")
    validate_result(result)
    assert result["primary_metric"] == "acc1" and result["metrics"]["acc1"]["n"] == 48
    assert result["references"] == {"pairwise_bound": 0.5, "chance": 0.1}
    acc = result["metrics"]["acc1"]
    assert result["metrics"]["acc1_ci95_low"]["value"] <= acc["value"] <= result["metrics"]["acc1_ci95_high"]["value"]
    assert result["model"]["config"]["model"]["encoders"] == "m3-embedded"
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == result


@pytest.mark.parametrize("name", ["clip", "symile"])
def test_scorer_retrieves_among_all_test_images(m3, name):
    task = load_task("symile-m3")
    torch.manual_seed(0)
    model = MODELS[name](task.inputs(json.loads((m3 / "manifest.json").read_text())), **task.model_config(name)).eval()
    data = task.load_split(m3, "test")
    with torch.no_grad():
        image, audio, text = (model.encode(m, data[m]) for m in ("image", "audio", "text"))
        brute = []
        for q in range(len(audio)):  # one query against every test image, one at a time
            scores = [model.score({"audio": audio[q : q + 1], "text": text[q : q + 1]}, "image", image[c : c + 1]).item()
                      for c in range(len(image))]
            brute.append(int(np.argmax(scores)))
    embeddings = embed(model, data)
    assert retrieve(model, {m: embeddings[m] for m in ("audio", "text")}, embeddings["image"]).tolist() == brute


def test_missing_modalities_train_without_nan(m3_missing, tmp_path):
    task = load_task("symile-m3")
    features = task.features(m3_missing, "train")
    missing = features.column("missing").astype(bool)
    assert missing.any(axis=0).all() and not task.features(m3_missing, "test").column("missing").any()
    data = task.load_split(m3_missing, "train")
    gone = missing[:, 0]
    assert torch.allclose(data["image"][gone, :-1], torch.from_numpy(features.column("image")[~gone].mean(0)).expand(int(gone.sum()), -1))
    assert data["image"][:, -1].numpy().tolist() == gone.astype(float).tolist()
    assert (data["text"][missing[:, 2], 0] == 257).all() and (data["text"][missing[:, 2], 1:] == 0).all()
    record = train_run("symile-m3", "symile", m3_missing, tmp_path / "run", FAST, progress=False)
    assert np.isfinite(record["summary"]["best_val_loss"])
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(e["train_loss"]) and np.isfinite(e["val_loss"]) for e in log)
    assert np.isfinite(evaluate_run(tmp_path / "run")["metrics"]["acc1"]["value"])


def test_bench_maps_language_set_sizes():
    configs = load_task("symile-m3").bench_configs(["--languages", "2,5", "--train", "100", "--missing-p", "0.5"])
    assert list(configs) == ["M3-2", "M3-5"]
    assert configs["M3-5"].languages == LANGUAGE_SETS["M3-5"] and configs["M3-2"].train == 100
    assert configs["M3-2"].missing_p == 0.5
    with pytest.raises(SystemExit):
        load_task("symile-m3").bench_configs(["--languages", "3"])


def test_featurize_marks_missing_text_with_its_token(m3_missing, tmp_path):
    featurize(m3_missing, "embedded", "val", out=tmp_path, featurizer=EmbeddedFeaturizer())
    arrays, _ = load_features(m3_missing, "embedded", "val", out=tmp_path)
    gone = arrays["missing"][:, 2].astype(bool)
    assert gone.any() and (arrays["text"][gone, 0] == 257).all() and (arrays["text"][gone, 1:] == 0).all()
