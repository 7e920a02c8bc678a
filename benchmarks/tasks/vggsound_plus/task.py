"""VGG-sound+ (Synergy-CLIP, arXiv 2504.21375): frame, audio and caption of VGGSound clips.

Protocol 1.2 (1.1 trained on the built captions, fixed per clip; 1.0 scored zero-shot with prompts worded like
the training captions, which are label/ now)
    Features: polymodal.benchmarks.tasks.vggsound_plus.featurizer (the av-embedded layout: 32x32 RGB frame,
    64x100 log-mel over the 10 s, 64 caption bytes), cached per split.
    Splits: the builder makes VGGSound's train and test. Validation is the
    VAL_FRACTION of the train clips (at least MIN_VAL, at most half) with the smallest clip_hash
    (sha256 of "<ytid>_<start>"), so the same clips whatever the shard layout;
    training uses the rest and keeps the epoch with the lowest validation loss.
    Captions: on a template-captioned build, training redraws each clip's caption every epoch
    (captions.TemplateRedraw: a template and a label synonym, seeded by the run's seed and the epoch), as
    Synergy-CLIP's prompt-mode loader does; validation and test keep the built ones. A model's captions
    (hf:MODEL) are the built ones throughout.
    Everything below is scored on the whole test split.

Metrics (CLIP_benchmark's names where it has them; "to" separates queries from target):
    zeroshot/{image,audio,image_audio}/{acc1,acc5,mean_per_class_recall}
        the class prompt ranked first/in the top 5 among one prompt per class, with
        prompts held out from every training caption (ZEROSHOT: none of the captions'
        wording or media nouns; the classes of the build's --classes, else all 309),
        scored by the model's score() with one query or with both; mean_per_class_recall
        is acc1 averaged over the classes present in test (balanced accuracy)
    label/{image,audio,image_audio}/...
        the same with protocol 1.0's prompts, worded like the training captions
        ("this is a photo and sound of {}" is one): label retrieval, not zero-shot
        A view lacking a query modality besides its target (zeroshot/image, zeroshot/audio,
        retrieval/{a}_to_{b}) is scored by the model's `absent_queries` rule, which the
        result's "scoring" states: the present queries alone (CLIP and its kin), or each
        absent one at its train mean embedding (Symile, whose MIP of two is a dot product
        it never trained).
    retrieval/{a}_to_{b}/recall@{1,5,10}          the true clip among all test clips, 6 directions
    retrieval/{a}_{b}_to_{t}/recall@{1,5,10}      the same from two modalities via score(), 3 targets
    missing/{m}/{fill}/<metric>
        <metric> (pair->third, zeroshot/image_audio and label/image_audio) with query modality m dropped at
        test time and filled by `mean` (its mean embedding over the train clips) or by
        `model` (the model's fill_missing from the other query; only where it returns a
        tensor). Dropping without filling is the one-query metrics above.
    reconstruction/{t}/recall@{1,5,10}, reconstruction/{t}/cosine, reconstruction/{t}/norm_ratio
        only for models whose fill_missing(other two, t) returns a tensor: the true
        clip's rank among all test clips of t by cosine, the mean cosine to it, and the mean ratio of the norms
    gap_centroid/{a}-{b}, alignment/{a}-{b}, uniformity/{m}   baselines.gap on the test embeddings
Hit rates carry the standard error of their mean over queries. Ties rank the
lower test index first (polymodal.benchmarks.protocols.retrieval). Primary: zeroshot/image_audio/acc1.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.baselines.layouts import AUDIO_VISUAL
from polymodal.benchmarks.featurize import feature_source
from polymodal.benchmarks.protocols import missing
from polymodal.benchmarks.protocols.gap import EVAL_BATCH, GAP_METRICS, gap_evaluation
from polymodal.benchmarks.protocols.missing import FILLS, absent_scoring, own_fill, train_means
from polymodal.benchmarks.protocols.retrieval import recall_at, target_ranks
from polymodal.benchmarks.protocols.summary import hit_metric, mean_metric
from polymodal.benchmarks.streaming import Source, embed_source
from polymodal.benchmarks.tasks.base import Evaluation, Task, TrainConfig
from polymodal.benchmarks.tasks.vggsound_plus.captions import TemplateRedraw
from polymodal.benchmarks.tasks.vggsound_plus.featurizer import ENCODER, AudioVisualFeaturizer
from polymodal.builders.vggsound_plus import class_index, fills_templates
from polymodal.leaderboard.declarations import Metric, Reference

MODALITIES = ("image", "audio", "text")
VAL_FRACTION = 0.1
MIN_VAL = 4  # a contrastive loss over one clip is 0 whatever the model: selection needs a few
RECALL_KS = (1, 5, 10)
#: zero-shot view -> (query modalities, class prompt). The prompts share no wording and no media noun with the
#: training captions (builders/vggsound_plus/captioners.py), so the model has never read them.
ZEROSHOT = {
    "image": (("image",), "a snapshot in which one sees {}"),
    "audio": (("audio",), "a noise that comes from {}"),
    "image_audio": (("image", "audio"), "a scene where one sees and hears {}"),
}
#: the same views with prompts worded like the training captions: label retrieval, in distribution
LABEL = {
    "image": (("image",), "this is a photo of {}"),
    "audio": (("audio",), "this is a sound of {}"),
    "image_audio": (("image", "audio"), "this is a photo and sound of {}"),
}
#: metric prefix -> its prompts
PROMPTED = {"zeroshot": ZEROSHOT, "label": LABEL}
#: task split -> (built split, whether it is the validation part of it; None: the whole split)
SPLITS = {"train": ("train", False), "val": ("train", True), "test": ("test", None)}


def _as_is(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return arrays  # the featurizer wrote the model's inputs


def validation_mask(clip_hash: np.ndarray) -> np.ndarray:
    """Which train clips validate: VAL_FRACTION of them, at least MIN_VAL (but never more than half)."""
    n = len(clip_hash)
    mask = np.zeros(n, bool)
    mask[np.argsort(clip_hash, kind="stable")[: max(int(n * VAL_FRACTION), min(MIN_VAL, n // 2))]] = True
    return mask


def class_names(manifest: dict) -> dict[int, str]:
    """The zero-shot classes, class index -> display name: the build's --classes, else all of VGGSound's."""
    wanted = manifest["config"]["classes"] or class_index()
    return dict(sorted((class_index()[name], name) for name in wanted))


def recall_metrics(prefix: str, ranks: Tensor) -> dict[str, dict]:
    return {f"{prefix}/recall@{k}": hit_metric(hit) for k, hit in recall_at(ranks, RECALL_KS).items()}


def model_ranks(model, queries: dict[str, Tensor], target: str, candidates: Tensor, truth: Tensor) -> Tensor:
    """The rank of each query's true candidate under model.score, a chunk of queries at a time."""
    return target_ranks(lambda rows, cols: model.score({m: q[rows] for m, q in queries.items()}, target, candidates[cols]),
                        truth, len(candidates))


def zeroshot_metrics(prefix: str, model, queries: dict[str, Tensor], prompts: Tensor, labels: Tensor) -> dict[str, dict]:
    ranks = model_ranks(model, queries, "text", prompts, labels)
    per_class = torch.stack([(ranks[labels == c] == 0).double().mean() for c in labels.unique()])
    return {
        f"{prefix}/acc1": hit_metric(ranks == 0),
        f"{prefix}/acc5": hit_metric(ranks < 5),
        f"{prefix}/mean_per_class_recall": {"value": float(per_class.mean()), "n": len(per_class)},
    }


def completed(model, queries: dict[str, Tensor], target: str, means: dict[str, Tensor]) -> dict[str, Tensor]:
    """The queries a view scores, by the model's rule for the modalities it lacks besides `target`."""
    return missing.completed(model, queries, [m for m in MODALITIES if m not in queries and m != target], means)


def with_fills(model, emb: dict[str, Tensor], dropped: str, kept: str, means: dict[str, Tensor]):
    """(fill name, the queries with `dropped` filled from `kept`) for every fill that gives an estimate."""
    for fill, make in FILLS.items():
        filled = make(model, {kept: emb[kept]}, dropped, means)
        if filled is not None:
            yield fill, {dropped: filled, kept: emb[kept]}


class VggSoundPlusTask(Task):
    name = "vggsound-plus"
    version = "1.2"
    builder = "vggsound-plus"
    primary_metric = "zeroshot/image_audio/acc1"
    metrics = (
        Metric("zeroshot/*/acc1", 0, 1, True, "zero-shot: share of test clips whose class prompt ranks first among "
               "one prompt per class, from the view's modalities"),
        Metric("zeroshot/*/acc5", 0, 1, True, "zero-shot: share of test clips whose class prompt is among the 5 best"),
        Metric("zeroshot/*/mean_per_class_recall", 0, 1, True, "zero-shot acc1 averaged over the classes in test"),
        Metric("label/*", 0, 1, True, "a zeroshot/ metric with prompts worded like the training captions: label "
               "retrieval, in distribution"),
        Metric("retrieval/*/recall@*", 0, 1, True, "share of test clips whose own clip is among the k best of all "
               "test clips of the target (queries_to_target)"),
        Metric("missing/*", 0, 1, True, "a zero-shot, label or retrieval metric with one query modality dropped at test "
               "time and filled (mean: its train mean embedding; model: the model's own fill_missing)"),
        Metric("reconstruction/*/recall@*", 0, 1, True, "share of test clips whose true embedding of the modality "
               "is among the k nearest (by cosine) to the model's reconstruction from the other two"),
        Metric("reconstruction/*/cosine", -1, 1, True, "mean cosine between the reconstructed and the true embedding"),
        Metric("reconstruction/*/norm_ratio", 0, 1e3, None, "mean norm of the reconstructed embedding over the true "
               "one's: 1 where a fill weighs in the score as a real embedding would"),
        *GAP_METRICS,
    )
    references: ClassVar[dict[str, Reference]] = {"chance": Reference("chance", "1/classes: the class guessed uniformly")}
    splits = ("train", "test")  # validation is carved from train (SPLITS)
    featurizers = {ENCODER: AudioVisualFeaturizer}
    train_defaults = TrainConfig(epochs=20, batch_size=256, lr=1e-3, weight_decay=0.01)
    model_defaults = {"encoders": "av-embedded", "d_model": 64}
    layernorm_encoders = True  # the av-embedded heads end in LayerNorm, not an L2 norm

    def inputs(self, manifest: dict) -> dict[str, int]:
        return AUDIO_VISUAL.inputs()

    def source(self, data_dir, split: str) -> Source:
        if split not in SPLITS:
            raise KeyError(f"{self.name} has splits {sorted(SPLITS)}, not {split!r}")
        built, validation = SPLITS[split]
        features = feature_source(data_dir, ENCODER, built, featurizer=AudioVisualFeaturizer()).mapped(_as_is, MODALITIES)
        if validation is None:
            return features
        hashes = features.column("clip_hash")
        if len(hashes) < 2:
            raise SystemExit(f"{data_dir} has {len(hashes)} train clips; training and validation need at least 2")
        return features.where(validation_mask(hashes) == validation)

    def train_view(self, data_dir, manifest: dict) -> TemplateRedraw | None:
        if not fills_templates(manifest["config"]["captioner"]):
            return None  # a model's caption describes its clip's frame: there is nothing to redraw it from
        return TemplateRedraw(AudioVisualFeaturizer().text)

    def tiny_manifest(self) -> dict:
        return {}

    def tiny_batch(self, n: int) -> dict[str, Tensor]:
        inputs = self.inputs(self.tiny_manifest())
        return {"image": torch.rand(n, inputs["image"]) * 2 - 1, "audio": torch.randn(n, inputs["audio"]),
                "text": torch.randint(1, 257, (n, inputs["text"]))}

    def dataset_params(self, manifest: dict) -> dict:
        config = manifest["config"]
        return {"classes": len(class_names(manifest)), "captioner": config["captioner"],
                "test_clips": manifest["splits"]["test"]["samples"]}

    def dataset_label(self, manifest: dict) -> str:
        params = self.dataset_params(manifest)
        return f"{params['test_clips']} test clips, {params['classes']} classes, {params['captioner']} captions"

    @torch.no_grad()
    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        test = self.source(data_dir, "test")
        if not test.rows:
            raise SystemExit(f"{data_dir} has no test clips to score")
        emb = embed_source(model, test, EVAL_BATCH)
        means = train_means(model, self.source(data_dir, "train"))
        classes = class_names(manifest)
        position = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([position[c] for c in test.column("cls").tolist()])
        metrics = {
            **zeroshot_all(model, emb, means, class_prompts(model, classes.values()), labels),
            **retrieval_all(model, emb, means),
            **reconstruction_metrics(model, emb),
            **gap_evaluation([emb]),
        }
        return Evaluation(metrics, {"chance": 1.0 / len(classes)}, scoring=absent_scoring(model))

    def bench_configs(self, extra_args: list[str]) -> dict[str, object]:
        (config,) = super().bench_configs(extra_args).values()
        if not {"train", "test"} <= set(config.splits):
            raise SystemExit(f"{self.name} trains on train and scores on test: build both splits, not {config.splits}")
        return {re.sub(r"[^A-Za-z0-9_.=-]+", "_", Path(config.index).stem): config}  # one folder per index


def class_prompts(model, names) -> dict[str, Tensor]:
    """Per "<prefix>/<view>" of PROMPTED, the embedded prompt of every class."""
    text = AudioVisualFeaturizer().text
    return {f"{prefix}/{view}": model.encode("text", torch.from_numpy(np.stack([text(prompt.format(n)) for n in names])))
            for prefix, views in PROMPTED.items() for view, (_, prompt) in views.items()}


def zeroshot_all(model, emb: dict[str, Tensor], means, prompts: dict[str, Tensor], labels: Tensor) -> dict[str, dict]:
    """Every view of every prompt set; the two-query view also with either query dropped and filled."""
    metrics = {}
    for prefix, views in PROMPTED.items():
        for view, (query, _) in views.items():
            name = f"{prefix}/{view}"
            queries = completed(model, {m: emb[m] for m in query}, "text", means)
            metrics |= zeroshot_metrics(name, model, queries, prompts[name], labels)
            if len(query) == 2:
                for dropped, kept in itertools.permutations(query):
                    for fill, queries in with_fills(model, emb, dropped, kept, means):
                        metrics |= zeroshot_metrics(f"missing/{dropped}/{fill}/{name}", model, queries, prompts[name],
                                                    labels)
    return metrics


def retrieval_all(model, emb: dict[str, Tensor], means) -> dict[str, dict]:
    """Each modality from each other, and from the other two, also with either of those dropped and filled."""
    every = torch.arange(len(emb[MODALITIES[0]]))
    metrics = {}
    for a, b in itertools.permutations(MODALITIES, 2):
        ranks = model_ranks(model, completed(model, {a: emb[a]}, b, means), b, emb[b], every)
        metrics |= recall_metrics(f"retrieval/{a}_to_{b}", ranks)
    for target in MODALITIES:
        query = [m for m in MODALITIES if m != target]
        name = f"retrieval/{'_'.join(query)}_to_{target}"
        metrics |= recall_metrics(name, model_ranks(model, {m: emb[m] for m in query}, target, emb[target], every))
        for dropped, kept in itertools.permutations(query):
            for fill, queries in with_fills(model, emb, dropped, kept, means):
                ranks = model_ranks(model, queries, target, emb[target], every)
                metrics |= recall_metrics(f"missing/{dropped}/{fill}/{name}", ranks)
    return metrics


def reconstruction_metrics(model, emb: dict[str, Tensor]) -> dict[str, dict]:
    """Where the model fills a modality from the other two: find the true clip by cosine, and how close it came."""
    every = torch.arange(len(emb[MODALITIES[0]]))
    metrics = {}
    for target in MODALITIES:
        filled = own_fill(model, {m: e for m, e in emb.items() if m != target}, target)
        if filled is None:
            continue
        metrics[f"reconstruction/{target}/norm_ratio"] = mean_metric(filled.norm(dim=-1) / emb[target].norm(dim=-1))
        filled, real = F.normalize(filled.float(), dim=-1), F.normalize(emb[target].float(), dim=-1)
        metrics |= recall_metrics(f"reconstruction/{target}", target_ranks(lambda rows, cols: filled[rows] @ real[cols].T, every, len(real)))
        metrics[f"reconstruction/{target}/cosine"] = mean_metric((filled * real).sum(-1))
    return metrics
