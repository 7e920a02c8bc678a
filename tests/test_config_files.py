"""`--config FILE`: a command's options from YAML or JSON, flags over the file, and the folders a command writes
storing the options that make them again."""

import json

import pytest
import yaml

from polymodal import configfile
from polymodal.cli import make_parser
from tests.helpers import folder_bytes

TINY_XOR = ["--dim", "3", "--train", "600", "--val", "200", "--test", "300", "--test-draws", "2", "--no-progress"]


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    from polymodal.builders import BUILDERS
    from polymodal.builders.core.runner import build

    out = tmp_path_factory.mktemp("xor")
    (config,) = BUILDERS["xor"].configs_from_argv(TINY_XOR[:-1], "xor").values()
    build(BUILDERS["xor"](config), out, progress=False)
    return out


def parse(argv):
    """What the command line means once --config is expanded, as `polymodal` parses it."""
    parser = make_parser()
    argv, tokens = configfile.expand(parser, argv)
    args, extra = parser.parse_known_args(argv)
    args.config_tokens, args.extra = tokens, extra
    return args


def test_the_file_gives_the_options_and_the_command_line_overrides_it(tmp_path, xor_data):
    config = tmp_path / "run.yaml"
    config.write_text(f"task: xor\nmodel: symile\ndata: {xor_data}\nout: runs/a\nepochs: 3\nmodel-config: {{d_model: 8}}\n")
    args = parse(["train", "--epochs", "5", "--config", str(config), "--lr", "0.01"])
    assert (args.task, args.model, args.epochs, args.lr, args.model_config) == ("xor", "symile", 5, 0.01, {"d_model": 8})
    assert str(args.out) == "runs/a"


def test_json_files_and_underscored_keys_are_read_alike(tmp_path, xor_data):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"task": "xor", "model": "clip", "data": str(xor_data), "out": "o", "batch_size": 64, "amp": True}))
    args = parse(["train", "--config", str(config)])
    assert (args.batch_size, args.amp, args.compile) == (64, True, False)


def test_bench_passes_unknown_keys_on_as_dataset_options_and_a_suite_is_a_file(tmp_path):
    bench = tmp_path / "bench.yaml"
    bench.write_text("task: xor\nmodels: [clip, symile]\nout: b\np-hat: [0, 0.5, 1]\ndim: 2\n")
    args = parse(["bench", "--config", str(bench)])
    assert args.models == ["clip", "symile"] and args.extra == ["--p-hat", "0,0.5,1", "--dim", "2"]
    stored = configfile.write_config(args, tmp_path)
    again = parse(["bench", "--config", str(stored)])
    assert (again.task, again.models, again.extra) == (args.task, args.models, args.extra)

    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: polymodal-v3\nmodels: clip\nout: s\n")
    args = parse(["bench", "--config", str(suite)])
    assert (args.suite, args.task, args.models) == ("polymodal-v3", None, ["clip"])


@pytest.mark.parametrize("content, says", [
    ("task: xor\nepoch: 3\n", "unknown option 'epoch' for `polymodal train`"),
    ("task: [xor\n", "not valid YAML"),
    ("- xor\n", "expected a mapping"),
    ("task: xor\nmodel: symile\ndata: DATA\nout: o\nepochs: -1\n", "argument --epochs: must be >= 1"),
    ("task: xor\nmodel: no-such-model\ndata: DATA\nout: o\n", "argument --model"),
])
def test_a_bad_file_gets_one_line_naming_what_is_wrong(tmp_path, run_cli, xor_data, content, says):
    config = tmp_path / "bad.yaml"
    config.write_text(content.replace("DATA", str(xor_data)))
    proc = run_cli("polymodal", "train", "--config", config, check=False)
    assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if says in line]) == 1


def test_missing_files_and_commands_without_config_are_refused(tmp_path, run_cli):
    proc = run_cli("polymodal", "train", "--config", tmp_path / "none.yaml", check=False)
    assert proc.returncode == 1 and "none.yaml: No such file" in proc.stderr
    proc = run_cli("polymodal", "verify", tmp_path, "--config", tmp_path / "none.yaml", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_a_dataset_folder_builds_again_from_its_config(tmp_path, run_cli):
    run_cli("polymodal", "build", "xor", "--out", tmp_path / "one", *TINY_XOR)
    stored = yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())
    assert stored["dim"] == 3 and "out" not in stored and "no-progress" not in stored
    run_cli("polymodal", "build", "xor", "--config", tmp_path / "one" / "config.yaml", "--out", tmp_path / "two")
    assert folder_bytes(tmp_path / "two") == folder_bytes(tmp_path / "one")
    run_cli("polymodal", "build", "xor", "--config", tmp_path / "one" / "config.yaml", "--dim", "4",
            "--out", tmp_path / "four")
    assert json.loads((tmp_path / "four" / "manifest.json").read_text())["config"]["dim"] == 4


def test_how_a_build_runs_stays_out_of_the_dataset_config():
    from polymodal.builders.core.options import option_words
    from polymodal.builders.vggsound_plus.builder import VggConfig

    config = VggConfig(index="vggsound.csv", proxy="socks5://user:secret@10.0.0.1:1080", cookies="c.txt")
    stored = configfile.from_flags(option_words(config, portable=False))
    assert stored["index"] == "vggsound.csv" and not {"proxy", "cookies"} & set(stored)


def test_a_run_made_again_from_its_stored_config_gives_identical_metrics(tmp_path, run_cli):
    data, first, second = tmp_path / "data", tmp_path / "first", tmp_path / "second"
    run_cli("polymodal", "build", "xor", "--out", data, *TINY_XOR)
    run_cli("polymodal", "train", "--task", "xor", "--model", "symile", "--data", data, "--out", first,
            "--epochs", "2", "--batch-size", "100", "--model-config", '{"d_model": 8}', "--no-progress")
    run_cli("polymodal", "train", "--config", first / "config.yaml", "--out", second, "--no-progress")
    for run in (first, second):
        run_cli("polymodal", "eval", run)
    stored = [yaml.safe_load((run / "config.yaml").read_text()) for run in (first, second)]
    assert stored[0]["model-config"] == {"d_model": 8} and stored[0]["batch-size"] == 100
    assert {**stored[0], "out": None} == {**stored[1], "out": None}
    metrics = [json.loads((run / "result.json").read_text())["metrics"] for run in (first, second)]
    assert metrics[0] == metrics[1] and metrics[0]["acc1"]["value"] > 0
