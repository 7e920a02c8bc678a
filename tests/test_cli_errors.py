"""Common mistakes on the command line get one line naming the flag and what it allows, before any work.

Each command runs through the real entry point: `polymodal.cli.main` where argparse refuses the value (it
prints and exits itself), else `python -m polymodal` as a user would type it.
"""

import json
import subprocess
import sys

import pytest

from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig
from polymodal.cli import main
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "xor"
    build(XorBuilder(XorConfig(train=64, val=16, test=16, test_draws=1)), data, progress=False)
    return data


def polymodal(*args):
    return subprocess.run([sys.executable, "-m", "polymodal", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          check=False)


def one_line_error(proc, *wanted: str) -> str:
    """The failed command's stderr, once it is one line with no traceback that says every `wanted` text."""
    assert proc.returncode != 0, proc.stdout
    return one_line(proc.stderr, *wanted)


def one_line(stderr: str, *wanted: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    for text in wanted:
        assert text in lines[0], lines[0]
    return lines[0]


def train(data, out, *extra, model="clip", command="train"):
    return [command, "--task", "xor", "--model", model, "--data", data, "--out", out, *extra]


# Caught as argparse parses the value: exit 2 and argparse's "argument FLAG: what is allowed".
@pytest.mark.parametrize("case, wanted", [
    (lambda d, o: train(d.parent / "nowhere", o), ["argument --data: no folder"]),
    (lambda d, o: train(d.parent, o), ["argument --data:", "holds no manifest.json"]),
    (lambda d, o: train(d, o, model="clipp"), ["argument --model:", "'clipp'", "symile", "trml"]),
    (lambda d, o: train(d, o, "--model-config", "{d_model: 3}"), ["argument --model-config:", "not JSON"]),
    (lambda d, o: train(d, d / "manifest.json"), ["argument --out:", "is a file, not a folder"]),
    (lambda d, o: ["build", "xor", "--out", d / "manifest.json"], ["argument --out:", "is a file, not a folder"]),
    (lambda d, o: train(d, o, "--epochs", "0"), ["argument --epochs: must be >= 1, got 0"]),
    (lambda d, o: train(d, o, "--batch-size", "0"), ["argument --batch-size: must be >= 1, got 0"]),
    (lambda d, o: train(d, o, "--lr", "-1"), ["argument --lr: must be > 0"]),
    (lambda d, o: train(d, o, "--seed", "-1"), ["argument --seed: must be >= 0"]),
    (lambda d, o: ["build", "xor", "--out", o, "--p-hat", "1.5"], ["argument --p-hat: must lie in [0, 1], got 1.5"]),
    (lambda d, o: ["build", "xor", "--out", o, "--p-hat", "0,0.5,2"], ["argument --p-hat: must lie in [0, 1], got 2"]),
    (lambda d, o: ["build", "xor", "--out", o, "--train", "-5"], ["argument --train: must be >= 0, got -5"]),
    (lambda d, o: ["build", "xor", "--out", o, "--shard-size", "0"], ["argument --shard-size: must be >= 1"]),
    (lambda d, o: ["build", "xor", "--out", o, "--workers", "0"], ["argument --workers: must be >= 1"]),
    (lambda d, o: ["build", "symile-m3", "--out", o, "--missing-p", "2"], ["argument --missing-p: must lie in [0, 1]"]),
    # vggsound-plus declares no bounds of its own: a negative number is refused for every builder option.
    (lambda d, o: ["build", "vggsound-plus", "--out", o, "--index", "i.csv", "--retries", "-1"],
     ["argument --retries: must be >= 0"]),
    (lambda d, o: ["verify", d.parent / "nowhere"], ["argument data: no folder"]),
    (lambda d, o: ["bench", "--task", "xor", "--models", "clip,symlie", "--out", o], ["argument --models:", "'symlie'"]),
    (lambda d, o: ["bench", "--task", "xor", "--out", o, "--dim", "0"], ["argument --dim: must be >= 1"]),
])
def test_a_bad_value_is_refused_where_it_is_parsed(xor_data, tmp_path, capsys, case, wanted):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main([str(word) for word in case(xor_data, out)])
    assert exit_.value.code == 2
    one_line(capsys.readouterr().err, *wanted)
    assert not out.exists()


def test_an_unknown_model_setting_lists_the_allowed_ones_before_training(xor_data, tmp_path):
    proc = polymodal(*train(xor_data, tmp_path / "run", "--model-config", '{"d_modle": 8}'))
    one_line_error(proc, "--model-config", "'d_modle'", "d_model", "temperature")
    assert not (tmp_path / "run").exists()


def test_a_dataset_of_another_task_is_refused_before_training(xor_data, tmp_path):
    proc = polymodal("train", "--task", "symile-m3", "--model", "clip", "--data", xor_data, "--out", tmp_path / "run")
    one_line_error(proc, "--data", "symile-m3", "'xor'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("card, wanted", [
    ({"name": 5, "revision": ["v1"]}, ["name: Input should be a valid string", "revision:"]),
    ({"name": ""}, ["name: String should have at least 1 character"]),
    ({"nmae": "mine"}, ["a card may set only", "unknown: nmae"]),
])
def test_a_model_card_is_checked_before_training(xor_data, tmp_path, card, wanted):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    proc = polymodal(*train(xor_data, tmp_path / "run", "--card", path, command="submit"))
    one_line_error(proc, "argument --card:", *wanted)
    assert not (tmp_path / "run").exists()


def test_an_unknown_language_lists_the_known_ones_and_leaves_no_folder(tmp_path):
    proc = polymodal("build", "symile-m3", "--out", tmp_path / "m3", "--languages", "en,xx",
                     "--train", "4", "--val", "4", "--test", "4", "--no-progress")
    line = one_line_error(proc, "'xx'")
    assert {"el", "en", "fr", "ja", "zh-CN"} <= set(line.rpartition("known: ")[2].split(", ")), line
    assert not (tmp_path / "m3").exists()


def test_train_refuses_a_dataset_with_an_empty_split_the_task_reads(tmp_path):
    data = tmp_path / "no-val"
    build(XorBuilder(XorConfig(train=64, val=0, test=16, test_draws=1)), data, progress=False)
    proc = polymodal(*train(data, tmp_path / "run"))
    one_line_error(proc, str(data), "val has no sample")
    assert not (tmp_path / "run").exists()


def test_bench_refuses_a_misspelt_model_before_it_builds(tmp_path):
    proc = polymodal("bench", "--task", "xor", "--models", "clip,symlie", "--out", tmp_path / "bench",
                     "--p-hat", "0.5", "--train", "64", "--val", "16", "--test", "16", "--test-draws", "1")
    one_line_error(proc, "--models", "'symlie'")
    assert not (tmp_path / "bench").exists()


def test_bench_refuses_a_dataset_with_an_empty_split_the_task_reads(tmp_path):
    proc = polymodal("bench", "--task", "xor", "--models", "clip", "--out", tmp_path / "bench",
                     "--p-hat", "0.5", "--train", "64", "--val", "0", "--test", "16", "--test-draws", "1")
    one_line_error(proc, "val has no sample")
    assert not (tmp_path / "bench").exists()


def test_a_vggsound_bench_with_no_train_row_fails_in_one_line_before_it_builds(tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("aaaaaaaaaaa,0,dog barking,test\nbbbbbbbbbbb,0,dog barking,test\n")
    clips = tmp_path / "clips"
    clips.mkdir()
    proc = polymodal("bench", "--task", "vggsound-plus", "--out", tmp_path / "bench", "--index", index,
                     "--media-dir", clips, "--no-progress")
    one_line_error(proc, "vggsound-plus", "train has no sample")
    assert not (tmp_path / "bench").exists()


def test_verbose_makes_polymodal_logging_visible(xor_data):
    # After a command has run, log as a retried download does (builders.vggsound_plus.fetch: INFO, detail DEBUG).
    code = ("import logging, sys; from polymodal.cli import main; main(sys.argv[1:]); "
            "log = logging.getLogger('polymodal.builders.vggsound_plus.fetch'); log.info('again in 5 s'); log.debug('detail')")
    shown = {flags: subprocess.run([sys.executable, "-c", code, *flags, "verify", str(xor_data)], capture_output=True,
                                   text=True, cwd=ROOT, check=True).stderr
             for flags in [(), ("-v",), ("-vv",)]}
    assert "again in 5 s" not in shown[()]
    assert "INFO polymodal.builders.vggsound_plus.fetch: again in 5 s" in shown[("-v",)]
    assert "detail" not in shown[("-v",)] and "DEBUG polymodal.builders.vggsound_plus.fetch: detail" in shown[("-vv",)]
