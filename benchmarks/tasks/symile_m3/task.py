"""Symile-M3 (Symile, Section 5.1): predict the image from (audio, text) among ALL test images.

Protocol 1.1 (1.0 scored the same; it named the 1/w level chance_w): features come from polymodal.benchmarks.tasks.symile_m3.featurizers (the `embedded` featurizer
for the digits variant, `paper` otherwise); train on `train`, keep the epoch with
the lowest validation loss, then retrieve, for every test (audio, text), the
best-scoring image among every image of the test split. A hit is a retrieved
image of the query's class. acc1 is the hit rate, its stderr and 95% interval
from 1000 bootstrap resamples of the queries (seed 0). CLIP is bounded by about
1/w (the reference level pairwise_bound): without the higher-order term it cannot
tell which word the audio selects.

Missing modalities (datasets built with --missing-p): a missing image or audio
becomes its split's mean features plus a flag the encoder embeds; a missing
text is one [MISSING] token (see polymodal.baselines.encoders.m3).
"""

from __future__ import annotations

import argparse
import functools
from typing import ClassVar

import numpy as np
import torch
from scipy import stats

from polymodal.baselines.layouts import EMBEDDED
from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.featurize import feature_source
from polymodal.benchmarks.protocols import robustness
from polymodal.benchmarks.protocols.gap import EVAL_BATCH, GAP_METRICS, gap_evaluation
from polymodal.benchmarks.protocols.missing import absent_scoring, train_means
from polymodal.benchmarks.protocols.retrieval import topk
from polymodal.benchmarks.streaming import Source, embed_source
from polymodal.benchmarks.tasks.base import Evaluation, Task, TrainConfig
from polymodal.benchmarks.tasks.symile_m3.featurizers import (
    MODALITIES,
    PAPER_TEXT_MAX,
    EmbeddedFeaturizer,
    PaperFeaturizer,
)
from polymodal.builders.symile_m3 import LANGUAGE_SETS, SymileM3Builder
from polymodal.leaderboard.declarations import Metric, Reference
from polymodal.leaderboard.outcomes import hits_outcome

#: The featurizer a dataset's image source calls for; any other source gets the paper's encoders.
FEATURES_BY_IMAGES = {"digits": "embedded"}
#: `bench --languages 2,5,10` names the paper's language sets by size.
SETS_BY_SIZE = {str(len(langs)): name for name, langs in LANGUAGE_SETS.items()}
BOOTSTRAP, BOOTSTRAP_SEED = 1000, 0
#: Model input widths per featurizer: image and audio carry a missing flag as a last column; the paper's text
#: ids are at most PAPER_TEXT_MAX wide (the featurizer's width is the dataset's longest text).
INPUTS = {
    "embedded": EMBEDDED.inputs(),
    "paper": {"image": 1024 + 1, "audio": 1280 + 1, "text": PAPER_TEXT_MAX},
}


def feature_encoder(manifest: dict) -> str:
    return FEATURES_BY_IMAGES.get(manifest["config"]["images"].partition(":")[0], "paper")


def with_missing(features: np.ndarray, missing: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    """Missing rows become `fill` (the split mean of the present rows); the flag goes last, for the encoder to embed."""
    features = features.astype(np.float32)  # copies
    if missing.any() and fill is not None:
        features[missing] = fill
    return np.concatenate([features, missing[:, None].astype(np.float32)], axis=1)


def present_means(features: Source) -> dict[str, np.ndarray | None]:
    """Per flagged modality, the mean of a split's present rows (None where none is), streamed over its pieces."""
    sums, counts = {}, {}
    for i in range(len(features.pieces)):
        arrays = features.load(i)
        present = ~arrays["missing"].astype(bool)
        for k, m in enumerate(MODALITIES[:2]):
            sums[m] = sums.get(m, 0.0) + arrays[m][present[:, k]].sum(0, dtype=np.float64)
            counts[m] = counts.get(m, 0) + int(present[:, k].sum())
    return {m: (sums[m] / counts[m]).astype(np.float32) if counts.get(m) else None for m in MODALITIES[:2]}


def model_inputs(arrays: dict[str, np.ndarray], fills: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """A piece of cached features as the model reads them: flagged image and audio rows, text ids; the other
    columns (the class) pass through."""
    missing = arrays["missing"].astype(bool)
    data = {**arrays, **{m: with_missing(arrays[m], missing[:, i], fills[m]) for i, m in enumerate(MODALITIES[:2])}}
    data["text"] = arrays["text"].astype(np.int64)
    return data


def bootstrap(hits: np.ndarray, resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(stderr, 2.5th, 97.5th percentile) of the mean of `hits` over resampled queries."""
    # The percentile interval, not scipy's default BCa: acc1_ci95_low/high are declared as these percentiles,
    # and the leaderboard's intervals are percentile bootstraps too.
    result = stats.bootstrap((hits,), np.mean, n_resamples=resamples, method="percentile",
                             rng=np.random.default_rng(seed))
    return float(result.standard_error), float(result.confidence_interval.low), float(result.confidence_interval.high)


QUERIES = ("audio", "text")  # the protocol retrieves the image


@torch.no_grad()
def retrieve(model, queries: dict[str, torch.Tensor], candidates: torch.Tensor) -> np.ndarray:
    """For each (audio, text) row, the index of the best-scoring image among all rows' images."""
    _, best = topk(lambda rows, cols: model.score({m: q[rows] for m, q in queries.items()}, "image", candidates[cols]),
                   len(candidates), len(candidates), 1)
    return best[:, 0].numpy()


class SymileM3Task(Task):
    name = "symile-m3"
    version = "1.1"
    builder = "symile-m3"
    primary_metric = "acc1"
    metrics = (
        Metric("acc1", 0, 1, True, "share of test (audio, text) queries whose best image among all test images "
               "is of their class"),
        Metric("acc1_ci95_low", 0, 1, True, "2.5th percentile of acc1 over 1000 bootstrap resamples of the queries"),
        Metric("acc1_ci95_high", 0, 1, True, "97.5th percentile of acc1 over 1000 bootstrap resamples of the queries"),
        *GAP_METRICS,
        *robustness.METRICS,
    )
    references: ClassVar[dict[str, Reference]] = {
        "pairwise_bound": Reference("pairwise bound 1/w", "what a model of pairs alone reaches at best: no pair "
                                    "tells which of the text's w words the audio's language selects"),
        "chance": Reference("chance", "1/classes: the class guessed uniformly"),
    }
    featurizers = {"embedded": EmbeddedFeaturizer, "paper": PaperFeaturizer}
    plot = {"x": "w", "symbol": "$w$"}  # against the number of languages, as the paper's Figure 4
    # Symile leaves the text-only saddle (audio ignored, acc1 ~ 1/w) only after ~30 epochs at this lr on the
    # digits variant; fewer epochs or a smaller lr stop there.
    train_defaults = TrainConfig(epochs=60, batch_size=256, lr=1e-2, weight_decay=0.01)
    model_defaults = {"encoders": "m3-embedded", "d_model": 64}
    layernorm_encoders = True

    def inputs(self, manifest: dict) -> dict[str, int]:
        return dict(INPUTS[feature_encoder(manifest)])

    def features(self, data_dir, split: str) -> Source:
        """The split's cached features, every column, streamed a shard at a time."""
        return feature_source(data_dir, feature_encoder(load_manifest(data_dir)), split)

    def source(self, data_dir, split: str) -> Source:
        features = self.features(data_dir, split)
        # Missing rows take their split's mean: one pass over the split first, where any may be missing.
        none = dict.fromkeys(MODALITIES[:2])
        fills = present_means(features) if load_manifest(data_dir)["config"]["missing_p"] else none
        return features.mapped(functools.partial(model_inputs, fills=fills), MODALITIES)

    def tiny_manifest(self) -> dict:
        return {"config": {"images": "digits"}}

    def tiny_batch(self, n: int) -> dict[str, torch.Tensor]:
        inputs = self.inputs(self.tiny_manifest())
        present = lambda width: torch.cat([torch.randn(n, width - 1), torch.zeros(n, 1)], 1)  # features, flag 0
        return {"image": present(inputs["image"]), "audio": present(inputs["audio"]),
                "text": torch.randint(1, 257, (n, inputs["text"]))}

    def dataset_params(self, manifest: dict) -> dict:
        config = manifest["config"]
        return {"w": len(config["languages"]), "missing_p": config["missing_p"], "images": config["images"]}

    def dataset_label(self, manifest: dict) -> str:
        config = manifest["config"]
        label = manifest["info"]["language_set"] if manifest["info"]["language_set"] != "custom" else ",".join(config["languages"])
        return label + (f" p={config['missing_p']:g}" if config["missing_p"] else "")

    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        test = self.source(data_dir, "test")
        embeddings = embed_source(model, test, EVAL_BATCH)  # encoded once: for retrieval and the gap measures
        cls = test.column("cls")
        queries = {m: embeddings[m] for m in QUERIES}

        def hits_of(queries: dict[str, torch.Tensor]) -> np.ndarray:
            return (cls[retrieve(model, queries, embeddings["image"])] == cls).astype(np.float64)

        hits = hits_of(queries)
        stderr, low, high = bootstrap(hits)
        n = len(hits)
        metrics = {
            "acc1": {"value": float(hits.mean()), "stderr": stderr, "n": n, "outcomes": hits_outcome(hits)},
            "acc1_ci95_low": {"value": low, "n": n},
            "acc1_ci95_high": {"value": high, "n": n},
            **gap_evaluation([embeddings]),
            **robustness.robustness_metrics(lambda q: torch.from_numpy(hits_of(q)), model, queries, train_means(
                model, self.source(data_dir, "train"))),
        }
        references = {"pairwise_bound": 1.0 / len(manifest["config"]["languages"]),
                      "chance": 1.0 / manifest["info"]["classes_used"]}
        return Evaluation(metrics, references, scoring=absent_scoring(model))

    def bench_configs(self, extra_args: list[str]) -> dict[str, object]:
        sets = argparse.ArgumentParser(add_help=False)
        sets.add_argument("--languages", default="5", help="language sets by size (2, 5, 10) or name, comma-separated")
        known, rest = sets.parse_known_args(extra_args)
        configs = {}
        for part in known.languages.split(","):
            name = SETS_BY_SIZE.get(part.strip(), part.strip())
            if name not in LANGUAGE_SETS:
                raise SystemExit(f"--languages: {part!r} is none of {sorted(SETS_BY_SIZE)} or {sorted(LANGUAGE_SETS)}")
            configs[name] = SymileM3Builder.configs_from_argv([*rest, "--languages", name], self.bench_prog)[""]
        return configs
