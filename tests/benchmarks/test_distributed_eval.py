"""torchrun on CPU with gloo: retrieval with the candidates sharded over 2 ranks ranks exactly as one process,
one process ranks as a stable sort of the whole score matrix, and `polymodal eval` under torchrun writes the
result one process writes."""

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from polymodal.benchmarks.protocols.retrieval import recall_at
from tests.benchmarks.retrieval_worker import CASES, K, embeddings, results, targets
from polymodal.builders.core.runner import build
from polymodal.builders.xnor import XnorBuilder, XnorConfig
from tests.helpers import ROOT, TORCHRUN, run_job

WORLD = 2  # TORCHRUN's ranks


@pytest.fixture(scope="module")
def one():
    return results()  # no process group: one rank


@pytest.fixture(scope="module")
def ranks_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrieval")
    run_job([*TORCHRUN, ROOT / "tests" / "benchmarks" / "retrieval_worker.py", folder])
    return [load_file(folder / f"{rank}.safetensors") for rank in range(WORLD)]


def test_one_process_ranks_as_a_stable_sort_of_the_whole_matrix(one):
    for name, n_q, n_c, _, _ in CASES:
        q, c = embeddings(name, n_q, n_c)
        values, order = (q @ c.T).sort(dim=1, descending=True, stable=True)  # ties to the lower index
        for k in K:
            assert torch.equal(one[f"{name}/top{k}/indices"], order[:, :k]), (name, k)
            assert torch.equal(one[f"{name}/top{k}/values"], values[:, :k]), (name, k)
        truth = targets(n_q, n_c)
        assert torch.equal(one[f"{name}/ranks"], (order == truth[:, None]).int().argmax(1)), name


def test_two_ranks_rank_exactly_as_one(one, ranks_results):
    for rank, got in enumerate(ranks_results):
        assert got.keys() == one.keys()
        for key, want in one.items():
            assert got[key].dtype == want.dtype and torch.equal(got[key], want), (rank, key)


def test_the_cases_hold_ties_across_the_shares_and_an_empty_share(one):
    """What makes the comparison above a test of the merge: equal scores at the k-th place that the two
    shares both hold, a candidate count that two ranks do not split evenly, and a rank with no candidates."""
    values, indices = one["ties/top10/values"], one["ties/top10/indices"]
    tied = (values[:, 1:] == values[:, :-1]).any(1)
    straddles = indices.lt(27).any(1) & indices.ge(27).any(1)  # 53 candidates: rank 0 holds 0..26
    assert (tied & straddles).any()
    assert any(n_c % WORLD for _, _, n_c, _, _ in CASES) and any(n_c < WORLD for _, _, n_c, _, _ in CASES)


def test_recall_from_two_ranks_equals_recall_from_one_and_the_merged_top_k(one, ranks_results):
    for name, n_q, n_c, _, _ in CASES:
        truth = targets(n_q, n_c)
        for k, hit in recall_at(one[f"{name}/ranks"], (1, 3, 10)).items():
            assert torch.equal(recall_at(ranks_results[1][f"{name}/ranks"], (k,))[k], hit), (name, k)
            # the target is in the merged top k exactly when its rank is below k
            in_top = (ranks_results[1][f"{name}/top{k}/indices"] == truth[:, None]).any(1).double()
            assert torch.equal(in_top, hit), (name, k)


def test_polymodal_eval_under_torchrun_writes_the_result_one_process_writes(tmp_path):
    """xnor ranks each query's A among all 300 test candidates (benchmarks.protocols.retrieval.topk)."""
    build(XnorBuilder(XnorConfig(bits=3, dim=12, samples=3000)), tmp_path / "data", progress=False)
    polymodal = [sys.executable, "-m", "polymodal"]
    run_job([*polymodal, "train", "--task", "xnor", "--model", "symile", "--data", tmp_path / "data", "--out",
             tmp_path / "run", "--epochs", "1", "--no-progress"])
    run_job([*polymodal, "eval", tmp_path / "run", "--out", tmp_path / "one.json"])
    printed = run_job([*TORCHRUN, "-m", "polymodal", "eval", tmp_path / "run", "--out", tmp_path / "two.json"]).stdout
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["metrics"]["acc1"]["value"] > 0  # some hits, so equal outcomes are not all misses
    assert two["metrics"] == one["metrics"]  # each query's hit or miss included
    assert printed.decode().count("acc1") == 1  # rank 0 alone reports
