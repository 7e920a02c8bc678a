"""Synthetic XNOR (Gated Symile, arXiv 2604.05834): retrieve A from (B, C) when one of B and C may lie.

Protocol 1.0: train on `train`, keep the epoch with the lowest validation loss, then, for every test
(B, C), score every test A with the model's score() and take the best one (ties to the lower index).
    acc1          the hit rate among all test A's, with its standard error
    acc1_inbatch  the paper's protocol: the same among the A's of the query's own batch of 128
                  consecutive test samples (the last batch partial, as the official test loader keeps it)
References: bayes_bound and bayes_bound_inbatch, the Bayes-optimal accuracy of each protocol on the test
split as built (polymodal.builders.xnor.bayes_accuracy, from the bits the test vectors show; the in-batch
one is a level of acc1_inbatch, not of acc1), and chance, 1/n_test.

Models: the official encoders, 3-layer MLPs 128-256-256-256 with L2-normalised 256-d embeddings (the
`mlp` encoder family at d_model 256). Training: batch 128 and AdamW at lr 1e-3 with
weight decay 0.01, the official settings but for its schedule-free AdamW (betas 0.9/0.95, warm-up 100) and
its bf16; 25 epochs, the official's most, with the epoch of lowest validation loss kept where the official
stops early (patience 5) on the validation in-batch accuracy. An epoch takes about a second on one CPU core.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from polymodal.benchmarks.data import shard_source
from polymodal.benchmarks.protocols import robustness
from polymodal.benchmarks.protocols.gap import GAP_METRICS, embed, gap_evaluation
from polymodal.benchmarks.protocols.missing import absent_scoring, train_means
from polymodal.benchmarks.protocols.retrieval import stable_topk, topk
from polymodal.benchmarks.protocols.summary import hit_metric
from polymodal.benchmarks.streaming import Source
from polymodal.benchmarks.tasks.base import Evaluation, Task, TrainConfig
from polymodal.builders.schema import XNOR_MODALITIES
from polymodal.builders.xnor import (
    CORRUPT_B,
    CORRUPT_C,
    NONE,
    PAPER_EVAL_BATCH,
    bayes_accuracy,
    in_batches,
)
from polymodal.leaderboard.declarations import Metric, Reference

TARGET, QUERIES = "a", ("b", "c")


def own_is_best(model, queries: dict[str, torch.Tensor], candidates: torch.Tensor) -> np.ndarray:
    """Per query, whether its own row of `candidates` scores best (ties to the lower index)."""
    _, best = stable_topk(model.score(queries, TARGET, candidates), 1)
    return best[:, 0].numpy() == np.arange(len(candidates))


def codes(signs: np.ndarray) -> np.ndarray:
    """(n, K) signal coordinates -> the int64 code of their bits (a positive coordinate is a 1)."""
    return ((signs > 0).astype(np.int64) << np.arange(signs.shape[1])).sum(axis=1)


def observed(data: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    """What a predictor reads off the test vectors for the Bayes bound: every A's u and v, the u that B shows
    and the v that C shows, and, under gaussian corruption, which modality was corrupted (its signal
    coordinates are noise, where an intact vector's constant block is exactly +scale)."""
    k, scale = config["bits"], np.float32(config["signal_scale"])
    a, b, c = (data[m] for m in XNOR_MODALITIES)
    seen = {"candidate_u": codes(a[:, :k]), "candidate_v": codes(a[:, k:2 * k]),
            "query_u": codes(b[:, :k]), "query_v": codes(c[:, k:2 * k])}
    if config["corruption"] == "gaussian":
        b_noise, c_noise = ~(b[:, k:2 * k] == scale).all(1), ~(c[:, :k] == scale).all(1)
        seen["corrupted"] = np.where(b_noise, CORRUPT_B, np.where(c_noise, CORRUPT_C, NONE))
    return seen


def bayes_bound(seen: dict[str, np.ndarray], config: dict, rows: slice) -> np.ndarray:
    """Per query of `rows`, the Bayes-optimal chance of a hit among the A's of `rows`."""
    return bayes_accuracy(**{name: values[rows] for name, values in seen.items()}, samples=config["samples"],
                          bits=config["bits"], corruption_p=config["corruption_p"], b_share=config["b_share"])


class XnorTask(Task):
    name = "xnor"
    version = "1.0"
    builder = "xnor"
    primary_metric = "acc1"
    metrics = (
        Metric("acc1", 0, 1, True, "share of test (B, C) queries whose best-scoring A among all test A's is "
               "their own"),
        Metric("acc1_inbatch", 0, 1, True, f"the paper's in-batch protocol, {PAPER_EVAL_BATCH} candidates: "
               f"the same among the A's of the query's batch of {PAPER_EVAL_BATCH} consecutive test samples"),
        *GAP_METRICS,
        *robustness.METRICS,
    )
    references: ClassVar[dict[str, Reference]] = {
        "bayes_bound": Reference("Bayes bound", "the best acc1 any predictor of A from (B, C) can reach on this "
                                 "test split, knowing the generating process"),
        "bayes_bound_inbatch": Reference(f"Bayes bound, in-batch ({PAPER_EVAL_BATCH})",
                                         "the same for acc1_inbatch (a level of that metric, not of acc1)"),
        "chance": Reference("chance", "1/n_test: an A guessed uniformly among all test A's"),
    }
    splits = ("train", "val", "test")
    plot = {"x": "corruption_p", "symbol": "$p$"}
    train_defaults = TrainConfig(epochs=25, batch_size=128, lr=1e-3, weight_decay=0.01, threads=1)
    model_defaults = {"encoders": "mlp", "d_model": 256}

    def inputs(self, manifest: dict) -> dict[str, int]:
        return {m: manifest["config"]["dim"] for m in XNOR_MODALITIES}

    def source(self, data_dir, split: str) -> Source:
        return shard_source(data_dir, split, list(XNOR_MODALITIES))

    def tiny_manifest(self) -> dict:
        return {"config": {"dim": 128}}

    def tiny_batch(self, n: int) -> dict[str, torch.Tensor]:
        return {m: torch.randn(n, w) for m, w in self.inputs(self.tiny_manifest()).items()}

    def dataset_params(self, manifest: dict) -> dict:
        config = manifest["config"]
        return {"corruption_p": config["corruption_p"], "corruption": config["corruption"], "bits": config["bits"]}

    def dataset_label(self, manifest: dict) -> str:
        config = manifest["config"]
        return f"corruption_p={config['corruption_p']:g}, {config['corruption']}"

    @torch.no_grad()
    def evaluate(self, model, data_dir, manifest: dict) -> Evaluation:
        config = manifest["config"]
        data = self.load_split(data_dir, "test")
        embeddings = embed(model, data)
        queries, candidates = {m: embeddings[m] for m in QUERIES}, embeddings[TARGET]
        n = len(candidates)

        def hits_of(queries: dict[str, torch.Tensor]) -> np.ndarray:
            _, best = topk(lambda rows, cols: model.score({m: q[rows] for m, q in queries.items()}, TARGET, candidates[cols]),
                           n, n, 1)
            return best[:, 0].numpy() == np.arange(n)

        hits = hits_of(queries)
        batches = in_batches(n)
        in_batch = np.concatenate([own_is_best(model, {m: q[rows] for m, q in queries.items()}, candidates[rows])
                                   for rows in batches])
        seen = observed({m: x.numpy() for m, x in data.items()}, config)
        references = {
            "bayes_bound": float(bayes_bound(seen, config, slice(None)).mean()),
            "bayes_bound_inbatch": float(np.concatenate([bayes_bound(seen, config, rows) for rows in batches]).mean()),
            "chance": 1.0 / n,
        }
        means = train_means(model, self.source(data_dir, "train"))
        sweep = robustness.robustness_metrics(lambda q: torch.from_numpy(hits_of(q)), model, queries, means)
        metrics = {"acc1": hit_metric(hits), "acc1_inbatch": hit_metric(in_batch), **gap_evaluation([embeddings]),
                   **sweep}
        return Evaluation(metrics, references, scoring=absent_scoring(model))
