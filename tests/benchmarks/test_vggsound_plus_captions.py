"""VGG-sound+ template captions redrawn every training epoch (issue 14, item 6), as Synergy-CLIP's prompt-mode
loader draws a template and a label synonym on every load: only from the label's synonyms and the templates, the
same for a seed and epoch, on every rank and on resume; validation, test and a model's captions stay as built."""

import json
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polymodal.baselines.models import MODELS
from polymodal.benchmarks import training
from polymodal.benchmarks.feature_cache import CACHE_ENV
from polymodal.benchmarks.runs import RUN_FILE, evaluate_run, train_run
from polymodal.benchmarks.streaming import Order
from polymodal.benchmarks.tasks import load_task
from polymodal.benchmarks.tasks.base import TrainConfig
from polymodal.benchmarks.tasks.vggsound_plus.featurizer import AudioVisualFeaturizer
from polymodal.builders.core.manifest import load_manifest
from polymodal.builders.core.runner import build
from polymodal.builders.vggsound_plus import TEMPLATES, VggConfig, VggSoundPlusBuilder, class_index
from tests.benchmarks.test_vggsound_plus_task import CLASSES, clips  # noqa: F401  (clips: the fixture)
from tests.helpers import ROOT, TORCHRUN, killed_on_call, run_job

FAST = TrainConfig(epochs=3, batch_size=4, lr=1e-3, seed=5)


@pytest.fixture(scope="module")
def data(clips, tmp_path_factory):  # noqa: F811
    """The fixture clips built with template captions in two train shards, their features cached in the module's
    own folder."""
    out = tmp_path_factory.mktemp("vgg") / "data"
    build(VggSoundPlusBuilder(VggConfig(index=str(clips / "index.csv"), source=f"dir:{clips}", frame_size=32,
                                        classes=tuple(CLASSES), shard_size=9)), out, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(out.parent / "features"))  # the module's tests and commands share one cache
        yield out


def allowed_captions(cls: int) -> set[bytes]:
    """Every caption a clip of class `cls` may get, encoded: each template with each comma-separated synonym."""
    (label,) = [name for name, index in class_index().items() if index == cls]
    encode = AudioVisualFeaturizer().text
    return {encode(t.format(word.strip())).tobytes() for t in TEMPLATES for word in label.split(",")}


def drawn(data, epoch: int, seed: int) -> np.ndarray:
    """The epoch's training captions as the trainer draws them, piece by piece, in manifest order."""
    task = load_task("vggsound-plus")
    source, view = task.source(data, "train"), task.train_view(data, load_manifest(data))
    return np.concatenate([view(source.load(i), epoch, seed, i)["text"] for i in range(len(source.pieces))])


def rows(text) -> Counter:
    """The captions of some rows, as a multiset: what an epoch trains on, whatever the order."""
    return Counter(row.tobytes() for row in np.asarray(text).reshape(-1, 64))


def test_training_captions_are_redrawn_each_epoch_from_the_label_s_synonyms_and_the_templates(data):
    task = load_task("vggsound-plus")
    source = task.source(data, "train")
    assert len(source.pieces) == 2
    classes = source.column("cls")
    epochs = [drawn(data, epoch, 0) for epoch in range(8)]
    assert all(e.shape == (len(classes), 64) and e.dtype == np.int64 for e in epochs)
    for text in epochs:
        for row, cls in zip(text, classes.tolist()):
            assert row.tobytes() in allowed_captions(cls)
    assert (epochs[0] != epochs[1]).any(1).sum() >= len(classes) // 2  # 80 templates: most clips change
    assert np.array_equal(drawn(data, 1, 0), epochs[1]) and not np.array_equal(drawn(data, 1, 1), epochs[1])
    # Both synonyms of "bird chirping, tweeting" come up, and so do many templates.
    decoded = {bytes((row[row > 0] - 1).tolist()).decode() for e in epochs for row in e}
    assert any("bird chirping" in c for c in decoded) and any("tweeting" in c for c in decoded)
    assert len(decoded) > len(classes) * 4


def test_the_trainer_trains_on_each_epoch_s_draw_and_validates_on_the_built_captions(data, tmp_path, monkeypatch):
    """The rows each epoch trains on are the view's of that epoch, in the trainer's order; validation reads the
    captions as built and featurized (deterministic scoring)."""
    task = load_task("vggsound-plus")
    manifest = load_manifest(data)
    view = task.train_view(data, manifest)
    trained, validated = [], []
    epoch_batches, mean_loss = training.epoch_batches, training.mean_loss

    def kept(*args):
        batches = list(epoch_batches(*args))
        trained.append(torch.cat([b["text"] for b in batches]))
        yield from batches

    monkeypatch.setattr(training, "epoch_batches", kept)
    monkeypatch.setattr(training, "mean_loss", lambda m, val, *a: validated.append(val.column("text")) or mean_loss(m, val, *a))
    model = _clip(task, manifest)
    training.fit(model, task.source(data, "train"), task.source(data, "val"), FAST, tmp_path,
                 progress=False, train_view=view)
    assert len(trained) == FAST.epochs and rows(trained[0]) != rows(trained[1])
    for epoch, text in enumerate(trained):  # one stream: every row of the epoch's draw, once
        assert rows(text) == rows(drawn(data, epoch, FAST.seed))
    built = task.source(data, "val").column("text")
    assert all(np.array_equal(text, built) for text in validated)
    # The built captions are those of the shards, encoded as the featurizer encodes them.
    shards = _built_captions(data)
    encode = AudioVisualFeaturizer().text
    assert sorted(encode(c).tobytes() for c in shards) == sorted(
        row.tobytes() for split in ("train", "val") for row in task.source(data, split).column("text"))


def test_model_captions_are_not_redrawn(data):
    task = load_task("vggsound-plus")
    manifest = load_manifest(data)
    captioned = {**manifest, "config": {**manifest["config"], "captioner": "hf:Salesforce/blip-image-captioning-base"}}
    assert task.train_view(data, captioned) is None
    assert all(load_task(name).train_view(data, manifest) is None for name in ("xor", "symile-m3", "xnor"))


def test_a_resumed_run_equals_an_uninterrupted_one_and_the_records_state_the_redraw(data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    train_run("vggsound-plus", "clip", data, tmp_path / "whole", FAST, progress=False)
    real = training.mean_loss
    monkeypatch.setattr(training, "mean_loss", killed_on_call(2, real))  # in epoch two
    with pytest.raises(KeyboardInterrupt):
        train_run("vggsound-plus", "clip", data, tmp_path / "cut", FAST, progress=False)
    monkeypatch.setattr(training, "mean_loss", real)
    train_run("vggsound-plus", "clip", data, tmp_path / "cut", FAST, progress=False, resume=True)
    whole, cut = load_file(tmp_path / "whole" / training.BEST), load_file(tmp_path / "cut" / training.BEST)
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
    losses = lambda run: [(e["train_loss"], e["val_loss"]) for e in map(json.loads, (run / training.LOG).read_text().splitlines())]
    assert len(losses(tmp_path / "cut")) == FAST.epochs and losses(tmp_path / "cut") == losses(tmp_path / "whole")
    rule = json.loads((tmp_path / "whole" / RUN_FILE).read_text())["train_view"]
    assert rule.startswith("text: every training epoch") and "validation and test keep the built captions" in rule
    assert evaluate_run(tmp_path / "whole")["model"]["config"]["train_view"] == rule


def test_two_ranks_train_on_the_same_captions_as_one_process(data, tmp_path):
    """Under torchrun each rank trains on its part of every global batch: put together, the parts hold the
    captions one process trains on at as many streams, which come from each epoch's draw."""
    worker = ROOT / "tests" / "benchmarks" / "vgg_caption_worker.py"
    for name, launcher in {"one": [sys.executable], "two": TORCHRUN}.items():
        run_job([*launcher, worker, data, tmp_path / name, tmp_path / f"{name}.safetensors"])
    one, two = (load_file(tmp_path / f"{name}.safetensors")["text"] for name in ("one", "two"))
    order = Order(batch_size=2, streams=2, buffer=FAST.shuffle_buffer, seed=3)  # the worker's
    steps = [order.steps(load_task("vggsound-plus").source(data, "train"), epoch) for epoch in range(2)]
    assert one.shape == two.shape == (sum(steps), 2, 64) and torch.equal(one, two)
    epochs = one.split(steps)
    for epoch, text in enumerate(epochs):  # each stream's rows up to the shortest one's: part of the epoch's draw
        assert not rows(text) - rows(drawn(data, epoch, 3)) and text.shape[0] >= 6
    assert rows(epochs[0]) != rows(epochs[1])


def _clip(task, manifest):
    torch.manual_seed(0)
    return MODELS["clip"](task.inputs(manifest), **task.model_config("clip"))


def _built_captions(data) -> list[str]:
    import webdataset as wds

    urls = [str(data / s["path"]) for s in load_manifest(data)["shards"] if s["split"] == "train"]
    return [sample["txt"].decode() for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]
