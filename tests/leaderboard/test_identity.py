"""Who a board entry is: a model by name, source and revision; a dataset by its content digest, with a unique label."""

from __future__ import annotations

import os

from polymodal.leaderboard import build_leaderboard
from polymodal.leaderboard.declarations import reserved_names
from tests.leaderboard.results import make_result, write


def test_a_reference_name_from_another_source_is_rejected_and_the_reference_keeps_its_place(tmp_path):
    write(tmp_path, "reference.json", make_result(model="symile", value=0.5))
    # A one-epoch MLP calling itself symile, in each spelling that reads as the same name.
    for i, name in enumerate(("symile", "Symile", " SYMILE ")):
        write(tmp_path, f"impostor{i}.json", make_result(model=name, source="mypkg.models:Mlp", value=0.9,
                                                         created="2025-12-01T00:00:00Z"))
    board = build_leaderboard(tmp_path)
    (entry,) = board["tasks"]["xor@1.0"]["entries"]
    assert entry["model"] == "symile" and entry["score"] == 0.5 and board["superseded"] == []
    assert len(board["rejected"]) == 3
    for item in board["rejected"]:
        assert "is reserved for the reference model 'symile' (source 'polymodal')" in item["reason"]
        assert "source 'mypkg.models:Mlp'" in item["reason"]


def test_every_registered_reference_model_name_is_reserved():
    from polymodal.baselines.models import MODELS

    assert reserved_names() == {name: "polymodal" for name in MODELS}


def test_entries_are_keyed_by_name_source_and_revision(tmp_path):
    write(tmp_path, "a.json", make_result(model="mlp", source="alice:Mlp", revision="v1", value=0.3))
    write(tmp_path, "b.json", make_result(model="mlp", source="bob:Mlp", revision="v1", value=0.2))
    write(tmp_path, "c.json", make_result(model="mlp", source="alice:Mlp", revision="v2", value=0.1, stderr=0.001))
    board = build_leaderboard(tmp_path)
    entries = board["tasks"]["xor@1.0"]["entries"]
    assert [e["model"] for e in entries] == ["mlp (alice:Mlp@v1)", "mlp (bob:Mlp@v1)", "mlp (alice:Mlp@v2)"]
    assert len({e["model_key"] for e in entries}) == 3 and board["superseded"] == []
    assert len({m["slug"] for m in board["models"].values()}) == 3


def test_datasets_are_keyed_by_content_digest_and_shared_labels_are_told_apart(tmp_path):
    # Two p_hat=0.5 builds of different sizes (their digests differ), and a third that differs in dim.
    small = {"p_hat": 0.5, "dim": 5, "train": 1000}
    large = {"p_hat": 0.5, "dim": 5, "train": 10000}
    for model in ("a", "b"):
        write(tmp_path, f"{model}/small.json", make_result(model=model, dataset_id="same-config", digest="aa" * 8,
                                                           params=small))
        write(tmp_path, f"{model}/large.json", make_result(model=model, dataset_id="same-config", digest="bb" * 8,
                                                           params=large))
        write(tmp_path, f"{model}/dim.json", make_result(model=model, digest="cc" * 8,
                                                         params={"p_hat": 0.5, "dim": 10}))
    board = build_leaderboard(tmp_path)
    labels = sorted(d["label"] for d in board["datasets"].values())
    assert labels == ["p_hat=0.5 (dim=10, train=None)", "p_hat=0.5 (dim=5, train=1000)",
                      "p_hat=0.5 (dim=5, train=10000)"]
    assert set(board["datasets"]) == {"aa" * 8, "bb" * 8, "cc" * 8}
    assert len(board["tasks"]["xor@1.0"]["datasets"]) == 3


def test_labels_that_agree_in_every_param_get_a_short_id(tmp_path):
    for digest in ("1234abcd" * 2, "9876fedc" * 2):
        for model in ("a", "b"):
            write(tmp_path, f"{model}-{digest}.json", make_result(model=model, digest=digest))
    labels = sorted(d["label"] for d in build_leaderboard(tmp_path)["datasets"].values())
    assert labels == ["p_hat=0.5 [1234abcd]", "p_hat=0.5 [9876fedc]"]


def test_a_dataset_only_one_model_ran_neither_ranks_it_nor_lowers_the_others(tmp_path):
    for model, value in (("a", 0.3), ("b", 0.2)):
        for p_hat in (0.0, 1.0):
            write(tmp_path, f"{model}/{p_hat}.json", make_result(model=model, p_hat=p_hat, value=value))
    write(tmp_path, "lone/0.7.json", make_result(model="lone", p_hat=0.7, value=0.99))
    task = build_leaderboard(tmp_path)["tasks"]["xor@1.0"]
    assert [d["label"] for d in task["datasets"]] == ["p_hat=0.0", "p_hat=1.0"]
    assert [d["label"] for d in task["other_datasets"]] == ["p_hat=0.7"]
    assert [(e["model"], e["coverage"]) for e in task["entries"]] == [("a", [2, 2]), ("b", [2, 2])]
    assert [(e["model"], e["coverage"]) for e in task["partial"]] == [("lone", [0, 2])]


def test_a_symlink_out_of_the_results_folder_is_not_followed(tmp_path):
    results, outside = tmp_path / "results", tmp_path / "elsewhere"
    write(results, "good.json", make_result(model="good"))
    target = write(outside, "secret.json", make_result(model="outsider", value=0.99))
    os.symlink(target, results / "linked.json")
    os.symlink(outside, results / "linked-folder")
    os.symlink(results / "good.json", results / "inside.json")  # inside the folder: read, a duplicate
    board = build_leaderboard(results)
    assert [e["model"] for e in board["tasks"]["xor@1.0"]["entries"]] == ["good"]
    assert board["rejected"] == [{"path": "linked.json",
                                  "reason": "a symbolic link out of the results folder: not followed"}]
    assert [s["path"] for s in board["superseded"]] == ["good.json"]
