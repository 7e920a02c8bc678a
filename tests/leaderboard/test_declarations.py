"""The exported declarations and suites match what the tasks, models and builders say today."""

from __future__ import annotations

from polymodal.benchmarks.tasks.declarations import main
from polymodal.leaderboard.declarations import task_declaration


def test_declarations_and_suites_are_up_to_date(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_each_metric_a_task_reports_is_declared_with_a_range_and_meaning():
    xor = task_declaration("xor@1.0")
    assert xor.primary_metric == "acc1" and xor.metric("acc1").high == 1
    assert xor.metric("uniformity/a").higher_is_better is False
    vgg = task_declaration("vggsound-plus@1.0")
    for name in ("zeroshot/image_audio/acc1", "retrieval/audio_to_image/recall@5",
                 "missing/audio/mean/zeroshot/image_audio/acc1", "reconstruction/text/cosine"):
        assert vgg.metric(name) is not None and vgg.metric(name).meaning, name
    assert vgg.metric("reconstruction/text/cosine").low == -1
    assert task_declaration("symile-m3@1.0").references["chance_w"].label == "1/w"  # earlier versions still read
    assert task_declaration("symile-m3@1.1").references["pairwise_bound"].label == "pairwise bound 1/w"
    assert task_declaration("xor@9.9") is None
