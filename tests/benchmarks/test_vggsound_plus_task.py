"""The VGG-sound+ task: `polymodal bench` end to end on clips made here with ffmpeg, the av feature cache,
the derived validation split, and the metrics (zero-shot, retrieval, missing modalities, reconstruction, gap)."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import polymodal.benchmarks.tasks.vggsound_plus.featurizer as av_features
from polymodal.baselines.layouts import AUDIO_VISUAL, AudioVisualLayout
from polymodal.baselines.models import MODELS, ReferenceModel
from polymodal.benchmarks.feature_cache import CACHE_ENV, cache_path
from polymodal.benchmarks.featurize import load_features
from polymodal.benchmarks.tasks import load_task
from polymodal.benchmarks.tasks.vggsound_plus.featurizer import ENCODER
from polymodal.benchmarks.tasks.vggsound_plus.task import MIN_VAL, MODALITIES, VAL_FRACTION, validation_mask
from polymodal.builders.core.manifest import load_manifest
from polymodal.builders.vggsound_plus.index import class_index
from polymodal.leaderboard.schema import validate_result
from polymodal.baselines.models import model_class
from polymodal.baselines.objectives import OBJECTIVES
from tests.helpers import REFERENCE_MODELS, ROOT

CLASSES = {"dog barking": "0x803020", "playing piano": "0x208030", "bird chirping, tweeting": "0x203080"}
TONES = (330, 550, 770)  # clips of a class share its colour and differ in tone
ROWS_PER_CLASS = {"train": 6, "test": 2}


def make_clip(path, colour: str, tone: int) -> None:
    """10.5 s of one colour at 64x48 and a sine tone, made by ffmpeg from lavfi sources."""
    import ffmpeg

    video = ffmpeg.input(f"color=c={colour}:size=64x48:rate=10:duration=10.5", f="lavfi")
    audio = ffmpeg.input(f"sine=frequency={tone}:sample_rate=16000:duration=10.5", f="lavfi")
    ffmpeg.output(video, audio, str(path), vcodec="mpeg4", acodec="aac", **{"b:a": "32k"}).global_args(
        "-v", "error").overwrite_output().run()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A folder of cut clips `<ytid>_000000.mp4` (9 distinct media, 24 rows) and its VGGSound index."""
    folder = tmp_path_factory.mktemp("clips")
    media = {}
    for (label, colour), tone in ((c, t) for c in CLASSES.items() for t in TONES):
        media[label, tone] = folder / f"{colour}-{tone}.mp4"
        make_clip(media[label, tone], colour, tone)
    lines = []
    for split, count in ROWS_PER_CLASS.items():
        for c, label in enumerate(CLASSES):
            for n in range(count):
                ytid = f"{split[:2]}{c:03d}{n:06d}"  # 11 characters, as YouTube ids
                (folder / f"{ytid}_000000.mp4").write_bytes(media[label, TONES[n % len(TONES)]].read_bytes())
                lines.append(f'{ytid},0,"{label}",{split}')
    (folder / "index.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def bench(clips, tmp_path_factory):
    """`polymodal bench` over every present model, in a subprocess as a user runs it; its folder."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--task", "vggsound-plus", "--models", ",".join(REFERENCE_MODELS), "--out", out, "--no-progress",
            "--index", clips / "index.csv", "--media-dir", clips, "--frame-size", "32", "--classes", *CLASSES]
    # One thread: on batches this small more only add synchronisation, which costs seconds on a shared 2-core box.
    env = {**os.environ, CACHE_ENV: str(out / "features"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "polymodal", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, f"bench exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return out


@pytest.fixture
def data(bench, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(bench / "features"))
    return bench / "data" / "vggsound-plus" / "index"


def test_bench_trains_and_scores_every_model_into_a_valid_leaderboard(bench):
    board = json.loads((bench / "leaderboard.json").read_text())
    assert board["rejected"] == []
    (task,) = board["tasks"].values()
    assert task["primary_metric"] == "zeroshot/image_audio/acc1" and task["name"] == "vggsound-plus"
    assert len(task["entries"]) == len(REFERENCE_MODELS)
    assert task["datasets"][0]["references"] == {"chance": pytest.approx(1 / 3)}
    report = (bench / "report" / "report.md").read_text()
    assert "vggsound-plus (version 1.2)" in report
    assert task["datasets"][0]["label"] == "6 test clips, 3 classes, template captions"
    for model in REFERENCE_MODELS:
        result = json.loads((bench / "results" / "vggsound-plus" / "index" / f"{model}.json").read_text())
        validate_result(result)
        metrics = result["metrics"]
        for view in ("image", "audio", "image_audio"):
            for name in ("acc1", "acc5", "mean_per_class_recall"):
                assert f"zeroshot/{view}/{name}" in metrics and f"label/{view}/{name}" in metrics
        directions = [n for n in metrics if n.startswith("retrieval/") and n.endswith("/recall@1")]
        assert len(directions) == 6 + 3  # every pair both ways, and each modality from the other two
        assert metrics["retrieval/audio_text_to_image/recall@10"]["value"] == 1.0  # 6 test clips: always in the top 10
        for dropped, pair_to_target in (("audio", "audio_text_to_image"), ("text", "audio_text_to_image"),
                                        ("image", "image_text_to_audio")):
            assert f"missing/{dropped}/mean/retrieval/{pair_to_target}/recall@1" in metrics
        assert {"missing/image/mean/zeroshot/image_audio/acc1", "missing/audio/mean/zeroshot/image_audio/acc5"} <= set(metrics)
        assert {"gap_centroid/image-audio", "alignment/audio-text", "uniformity/text"} <= set(metrics)
        assert metrics["zeroshot/image/acc1"]["n"] == 6 and metrics["zeroshot/image/mean_per_class_recall"]["n"] == 3
        assert all(np.isfinite(m["value"]) for m in metrics.values())
        assert result["model"]["config"]["model"]["encoders"] in ("av-embedded", "hf-synergy")
        assert result["model"]["config"]["train_view"].startswith("text: every training epoch")  # template captions


def test_symile_scores_a_missing_query_at_its_mean_and_the_result_says_so(bench):
    """Symile's MIP of two embeddings is a dot product it never trained: a one-query view takes the absent
    modality's train mean, which must equal the two-query view with that modality dropped and mean-filled."""
    results = {m: json.loads((bench / "results" / "vggsound-plus" / "index" / f"{m}.json").read_text()) for m in REFERENCE_MODELS}
    for model, result in results.items():
        objective = result["model"]["config"]["model"].get("objective")  # clip, symile, trml, gram, triangle
        rule = OBJECTIVES[objective].absent_queries if objective else getattr(model_class(model), "absent_queries", None)
        assert result["scoring"]["absent_queries"].startswith(f"{rule or 'none'}: "), model
    assert results["symile"]["scoring"]["absent_queries"].startswith("mean: ")
    metrics = results["symile"]["metrics"]
    # (The one-query zero-shot views read prompts of their own, so test_zeroshot_accuracy_is_the_argmax_over_class_prompts
    # checks them against the mean fill; retrieval views share their candidates.)
    for a, b in itertools.permutations(MODALITIES, 2):
        (c,) = set(MODALITIES) - {a, b}
        for k in (1, 5, 10):
            pair = "_".join(m for m in MODALITIES if m != b)  # the two-query view's name lists its queries in order
            assert metrics[f"retrieval/{a}_to_{b}/recall@{k}"] == metrics[f"missing/{c}/mean/retrieval/{pair}_to_{b}/recall@{k}"]


def test_trml_fills_at_the_norm_of_real_embeddings(bench):
    """The av heads end in LayerNorm (norm near √d): a fill of norm 1 would barely count in CLIP's additive score."""
    metrics = json.loads((bench / "results" / "vggsound-plus" / "index" / "trml.json").read_text())["metrics"]
    for target in MODALITIES:
        assert metrics[f"reconstruction/{target}/norm_ratio"]["value"] == pytest.approx(1, abs=0.05), target


def av_features_of(data, split: str, layout: AudioVisualLayout = AUDIO_VISUAL) -> dict[str, np.ndarray]:
    """A built split's cached av-embedded arrays, checked to be of `layout`."""
    return load_features(data, ENCODER, split, featurizer=av_features.AudioVisualFeaturizer(layout))[0]


def test_features_have_the_layout_and_are_cached(data, monkeypatch):
    arrays = av_features_of(data, "train")
    assert arrays["image"].shape == (18, 3 * 32 * 32) and arrays["audio"].shape == (18, 64 * 100)
    assert arrays["text"].shape == (18, 64) and arrays["text"].dtype == np.int64
    assert -1 <= arrays["image"].min() and arrays["image"].max() <= 1 and np.isfinite(arrays["audio"]).all()
    assert set(arrays["cls"].tolist()) == {class_index()[c] for c in CLASSES}
    # A clip's colour is its class's: the frame's dominant channel says which class it is.
    dominant = arrays["image"].reshape(18, 3, 32, 32).mean((2, 3)).argmax(1)
    pairs = set(zip(arrays["cls"].tolist(), dominant.tolist()))
    assert len(pairs) == 3 and len({channel for _, channel in pairs}) == 3
    monkeypatch.setattr(av_features.AudioVisualFeaturizer, "prepare", lambda *a: pytest.fail("recomputed a cached split"))
    assert np.array_equal(av_features_of(data, "train")["audio"], arrays["audio"])
    assert cache_path(data, ENCODER, "test").is_file() and not list(cache_path(data, ENCODER, "test").parent.glob("*.tmp"))
    with pytest.raises(SystemExit, match="holds features made with .*image_side.*; delete it to recompute"):
        av_features_of(data, "test", AudioVisualLayout(image_side=16))


def test_validation_is_a_fixed_part_of_train(data):
    task = load_task("vggsound-plus")
    built = av_features_of(data, "train")
    train, val = (task.source(data, split).column("clip_hash") for split in ("train", "val"))
    assert len(val) == MIN_VAL and len(train) + len(val) == 18
    assert not set(train.tolist()) & set(val.tolist())
    order = np.random.default_rng(0).permutation(18)  # the same clips, whatever their order
    assert set(built["clip_hash"][order][validation_mask(built["clip_hash"][order])]) == set(val)
    assert validation_mask(np.arange(1000)).sum() == 1000 * VAL_FRACTION
    assert validation_mask(np.array([5, 1, 3])).tolist() == [False, True, False]  # never more than half
    shapes = {m: v.shape[1:] for m, v in task.load_split(data, "val").items()}
    assert shapes == {"image": (3072,), "audio": (6400,), "text": (64,)}


class FillingClip(ReferenceModel):
    """CLIP that fills a missing modality with the mean of the present embeddings."""

    def __init__(self, inputs, **config):
        super().__init__(inputs, **{"objective": "clip", **config})

    def fill_missing(self, present, target):
        return torch.stack(list(present.values())).mean(0)


def test_fill_missing_adds_the_models_own_fill_and_reconstruction(data):
    task = load_task("vggsound-plus")
    manifest = load_manifest(data)
    torch.manual_seed(0)
    model = FillingClip(task.inputs(manifest), **task.model_config("clip")).eval()
    metrics = task.evaluate(model, data, manifest).metrics
    for target in MODALITIES:
        assert {f"reconstruction/{target}/recall@1", f"reconstruction/{target}/cosine"} <= set(metrics)
    assert "missing/audio/model/retrieval/audio_text_to_image/recall@5" in metrics
    assert "missing/image/model/zeroshot/image_audio/mean_per_class_recall" in metrics
    plain = task.evaluate(MODELS["clip"](task.inputs(manifest), **task.model_config("clip")).eval(), data, manifest).metrics
    assert not any("/model/" in n or n.startswith("reconstruction/") for n in plain)
    assert set(metrics) - set(plain) == {n for n in metrics if "/model/" in n or n.startswith("reconstruction/")}


def test_zeroshot_accuracy_is_the_argmax_over_class_prompts(data):
    task = load_task("vggsound-plus")
    manifest = load_manifest(data)
    torch.manual_seed(1)
    model = MODELS["symile"](task.inputs(manifest), **task.model_config("symile")).eval()
    metrics = task.evaluate(model, data, manifest).metrics
    test = task.load_split(data, "test")
    order = sorted(CLASSES, key=class_index().get)  # the task's candidates, by VGGSound class index
    truth = torch.tensor([order.index(name) for name in map({class_index()[n]: n for n in CLASSES}.get,
                                                                task.source(data, "test").column("cls").tolist())])
    text = av_features.AudioVisualFeaturizer().text
    for metric, prompt in (("zeroshot", "a scene where one sees and hears {}"), ("label", "this is a photo and sound of {}")):
        with torch.no_grad():
            prompts = np.stack([text(prompt.format(n)) for n in order])
            prompts = model.encode("text", torch.from_numpy(prompts))
            image, audio = model.encode("image", test["image"]), model.encode("audio", test["audio"])
            predicted = (image * audio @ prompts.T).argmax(1)  # Symile's score: the multilinear inner product
        expected = (predicted == truth).double().mean().item()
        assert metrics[f"{metric}/image_audio/acc1"]["value"] == pytest.approx(expected), metric
    # A one-query view scores Symile's MIP with the absent modality at its train mean embedding.
    with torch.no_grad():
        train = {m: model.encode(m, x) for m, x in task.load_split(data, "train").items()}
        for kept, dropped, prompt in (("image", "audio", "a snapshot in which one sees {}"),
                                      ("audio", "image", "a noise that comes from {}")):
            prompts = model.encode("text", torch.from_numpy(np.stack([text(prompt.format(n)) for n in order])))
            predicted = (model.encode(kept, test[kept]) * train[dropped].mean(0) @ prompts.T).argmax(1)
            expected = (predicted == truth).double().mean().item()
            assert metrics[f"zeroshot/{kept}/acc1"]["value"] == pytest.approx(expected), kept


def test_zero_shot_prompts_are_held_out_from_every_training_caption():
    """Zero-shot means wording the model never trained on: no caption template, no media noun of theirs."""
    from polymodal.benchmarks.tasks.vggsound_plus.task import LABEL, ZEROSHOT
    from polymodal.builders.vggsound_plus.captioners import MEDIA, TEMPLATES

    seen = {t.format("X").rstrip(".").casefold() for t in TEMPLATES}
    nouns = {word for medium in MEDIA for word in medium.split() if word != "and"}
    for _, prompt in ZEROSHOT.values():
        assert prompt.format("X").casefold() not in seen and not nouns & set(prompt.split()), prompt
    assert LABEL["image_audio"][1].format("X").casefold() in seen  # what protocol 1.0 called zero-shot was a training caption


def test_bench_options_name_the_folder_and_need_both_splits():
    task = load_task("vggsound-plus")
    configs = task.bench_configs(["--index", "/x/my index.csv", "--media-dir", "/clips", "--limit", "5"])
    assert list(configs) == ["my_index"] and configs["my_index"].source == "dir:/clips" and configs["my_index"].limit == 5
    with pytest.raises(SystemExit, match="train and scores on test"):
        task.bench_configs(["--index", "x.csv", "--splits", "test"])


def test_featurize_command_writes_the_cache_the_task_reads(data, tmp_path, run_cli):
    run_cli("polymodal", "featurize", "--data", data, "--encoder", ENCODER, "--out", tmp_path, "--no-progress")
    for split in ("train", "test"):
        assert cache_path(data, ENCODER, split, tmp_path).read_bytes() == cache_path(data, ENCODER, split).read_bytes()
    wrong = run_cli("polymodal", "featurize", "--data", data, "--encoder", "embedded", "--out", tmp_path / "m3",
                    check=False)
    assert wrong.returncode != 0 and not (tmp_path / "m3").exists()
    assert "reads symile-m3 datasets" in wrong.stderr and "its encoders: av-embedded" in wrong.stderr
