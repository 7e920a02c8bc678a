"""The xnor task: its two retrieval protocols, its Bayes bounds as the data shows them, and a bench end to end."""

import json

import numpy as np
import pytest
import torch

from polymodal.benchmarks.bench import bench
from polymodal.benchmarks.data import load_manifest
from polymodal.benchmarks.tasks.xnor import XnorTask
from polymodal.builders.core.runner import build
from polymodal.builders.xnor import XnorBuilder, XnorConfig, realised_bounds
from polymodal.leaderboard.outcomes import decode
from polymodal.leaderboard.schema import validate_result

pytestmark = pytest.mark.usefixtures("one_thread")


class SignalOracle(torch.nn.Module):
    """Reads the signal coordinates and scores a candidate A by its agreement with B⊙C: right whenever nothing
    is corrupted and no other candidate shares the query's (u, v)."""

    absent_queries = "mean"  # the robustness sweep drops a query: score it at its mean

    def __init__(self, bits: int):
        super().__init__()
        self.signal = 3 * bits

    def encode(self, modality, x):
        return x[:, :self.signal]

    def score(self, queries, target, candidates):
        return (queries["b"] * queries["c"]) @ candidates.T


@pytest.mark.parametrize("corruption", ["swap_signal", "gaussian"])
def test_the_bounds_the_task_reads_off_the_data_are_the_builder_s(tmp_path, corruption):
    config = XnorConfig(bits=5, dim=16, samples=3000, corruption_p=0.7, corruption=corruption)
    build(XnorBuilder(config), tmp_path, progress=False)
    evaluation = XnorTask().evaluate(SignalOracle(5), tmp_path, load_manifest(tmp_path))
    bounds = realised_bounds(config)
    assert evaluation.references["bayes_bound"] == pytest.approx(bounds["all"], rel=1e-12)
    assert evaluation.references["bayes_bound_inbatch"] == pytest.approx(bounds["inbatch"], rel=1e-12)
    assert evaluation.references["chance"] == 1 / 300
    assert bounds["all"] < bounds["inbatch"] < 1  # fewer candidates, fewer look-alikes


def test_both_protocols_score_every_query_among_their_candidates(tmp_path):
    """At p = 0 with 12 bits no two test samples look alike: the oracle finds every A, in both protocols."""
    build(XnorBuilder(XnorConfig(bits=12, dim=40, samples=3000, corruption_p=0.0)), tmp_path, progress=False)
    evaluation = XnorTask().evaluate(SignalOracle(12), tmp_path, load_manifest(tmp_path))
    for name in ("acc1", "acc1_inbatch"):
        metric = evaluation.metrics[name]
        assert metric["value"] == 1.0 and metric["n"] == 300 and metric["stderr"] == 0.0
        assert decode(metric["outcomes"]).tolist() == [1.0] * 300
    assert evaluation.references["bayes_bound"] == evaluation.references["bayes_bound_inbatch"] == 1.0


def test_bench_writes_results_with_both_protocols_and_the_bounds(tmp_path):
    args = ["--bits", "6", "--dim", "24", "--samples", "1500", "--corruption-p", "0,1", "--seed", "3"]
    board = bench("xnor", ["clip", "symile"], tmp_path, args, workers=1, progress=False)
    task = board["tasks"]["xnor@1.0"]
    assert [d["label"] for d in task["datasets"]] == ["corruption_p=0, swap_signal", "corruption_p=1, swap_signal"]
    assert not board["rejected"] and (tmp_path / "report" / "xnor.png").is_file()
    for p in (0, 1):
        config = XnorConfig(bits=6, dim=24, samples=1500, corruption_p=float(p), seed=3)
        for model in ("clip", "symile"):
            result = json.loads((tmp_path / "results" / "xnor" / f"corruption_p={p}" / f"{model}.json").read_text())
            validate_result(result)
            for name in ("acc1", "acc1_inbatch"):
                metric = result["metrics"][name]
                hits = decode(metric["outcomes"])
                assert metric["n"] == 150 and hits.mean() == pytest.approx(metric["value"])
                assert metric["stderr"] == pytest.approx(np.std(hits, ddof=1) / np.sqrt(150))
            bounds = realised_bounds(config)
            assert result["references"] == pytest.approx(
                {"bayes_bound": bounds["all"], "bayes_bound_inbatch": bounds["inbatch"], "chance": 1 / 150})
            assert result["dataset"]["params"] == {"corruption_p": p, "corruption": "swap_signal", "bits": 6}
            assert result["plot"]["x"] == "corruption_p" and result["model"]["config"]["model"]["d_model"] == 256
