"""The leaderboard: result validation, ranking, reports, CLI, and independence from torch."""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from polymodal.leaderboard import (
    ModelCard,
    ResultError,
    build_leaderboard,
    format_table,
    load_result,
    load_schema,
    validate_result,
    write_report,
)
from polymodal.leaderboard.aggregate import dumps_leaderboard, write_leaderboard
from polymodal.leaderboard.cli import add_commands, main
from polymodal.leaderboard.outcomes import hits_outcome
from tests.helpers import ROOT as REPO
from tests.leaderboard.results import make_result, write, write_sample

P_HATS = (0.0, 0.5, 1.0)


# --- schema and model card -------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_accepts_the_helper_result():
    Draft202012Validator.check_schema(load_schema())
    validate_result(make_result())
    validate_result(make_result(stderr=None))


def test_schema_model_object_mirrors_model_card():
    model_schema = load_schema()["properties"]["model"]
    fields = ModelCard.model_fields
    assert set(model_schema["properties"]) == set(fields)
    assert set(model_schema["required"]) == {name for name, field in fields.items() if field.is_required()}
    minimal = ModelCard(name="m", source="huggingface", parameters=0, modalities=["text"])
    for card in (minimal.model_dump(), ModelCard(**make_result()["model"]).model_dump()):
        validate_result(make_result() | {"model": card})


def test_model_card_forbids_unknown_fields():
    with pytest.raises(ValueError):
        ModelCard(name="m", source="s", parameters=1, modalities=["a"], paramters=2)
    with pytest.raises(ValueError):
        ModelCard(name="m", source="s", parameters=1, modalities=["a", "a"])


def test_validate_result_rejects_in_memory_nan_naming_the_metric():
    result = make_result()
    result["metrics"]["acc1"]["value"] = float("nan")
    with pytest.raises(ResultError, match=r"metrics\.acc1\.value: nan is not a finite number"):
        validate_result(result)


def test_load_result_error_names_the_path(tmp_path):
    path = write(tmp_path, "r.json", "{")
    with pytest.raises(ResultError) as caught:
        load_result(path)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: malformed JSON at line 1 column 2")


# --- ranking ---------------------------------------------------------------------------


def test_ranking_matches_independent_means_and_a_partial_model_is_listed_unranked(tmp_path):
    scores = write_sample(tmp_path)
    board = build_leaderboard(tmp_path)
    assert board["rejected"] == [] and board["results_scanned"] == 8
    task = board["tasks"]["xor@1.0"]
    assert task["primary_metric"] == "acc1"
    assert [d["params"]["p_hat"] for d in task["datasets"]] == list(P_HATS)
    assert task["datasets"][0]["references"] == {"bayes_bound": 0.03125, "chance": 0.03125}

    expected = {model: statistics.mean(by_p.values()) for model, by_p in scores.items()}
    entries = task["entries"]
    assert [(e["model"], e["rank"]) for e in entries] == [("symile", 1), ("clip", 2)]
    for entry in entries:
        assert entry["score"] == pytest.approx(expected[entry["model"]], abs=1e-12)
        assert entry["coverage"] == [3, 3]
    # Run on 2 of the 3 datasets: below the ranking, with its coverage, never above a model that ran all three.
    (worst,) = task["partial"]
    assert worst["model"] == "worst" and worst["rank"] is None and worst["coverage"] == [2, 3]
    assert set(worst["scores"]) == {"id:ds-0.0", "id:ds-0.5"}
    assert worst["scores"]["id:ds-0.5"]["acc1"]["value"] == 0.05
    assert list(worst["results"].values()) == ["worst/0.0.json", "worst/0.5.json"]


def test_a_model_run_on_one_of_four_datasets_ranks_below_one_run_on_three(tmp_path):
    for p_hat in (0.0, 0.25, 0.5):
        write(tmp_path, f"three/{p_hat}.json", make_result(model="three", p_hat=p_hat, value=0.2))
        write(tmp_path, f"full/{p_hat}.json", make_result(model="full", p_hat=p_hat, value=0.1))
    write(tmp_path, "full/1.0.json", make_result(model="full", p_hat=1.0, value=0.1))
    write(tmp_path, "one/1.0.json", make_result(model="one", p_hat=1.0, value=0.9))
    task = build_leaderboard(tmp_path)["tasks"]["xor@1.0"]
    assert [e["model"] for e in task["entries"]] == ["full"]
    assert [(e["model"], e["coverage"]) for e in task["partial"]] == [("three", [3, 4]), ("one", [1, 4])]


def test_tied_scores_share_a_rank(tmp_path):
    for model in ("zeta", "alpha", "mid"):
        write(tmp_path, f"{model}.json", make_result(model=model, value=0.25))
    write(tmp_path, "low.json", make_result(model="low", value=0.1, stderr=0.001))
    entries = build_leaderboard(tmp_path)["tasks"]["xor@1.0"]["entries"]
    assert [(e["rank"], e["model"]) for e in entries] == [(1, "alpha"), (1, "mid"), (1, "zeta"), (4, "low")]


def test_duplicates_keep_the_newest(tmp_path):
    # The newest file sorts first by path, so path order cannot be what picks it.
    write(tmp_path, "a_new.json", make_result(value=0.9, created="2025-11-23T08:00:00+00:00"))
    write(tmp_path, "b_old.json", make_result(value=0.1, created="2025-11-22T08:00:00Z"))
    write(tmp_path, "c_older.json", make_result(value=0.2, created="2025-11-23T09:00:00+02:00"))
    board = build_leaderboard(tmp_path)
    (entry,) = board["tasks"]["xor@1.0"]["entries"]
    assert entry["score"] == 0.9 and list(entry["results"].values()) == ["a_new.json"]
    assert board["superseded"] == [
        {"path": "b_old.json", "superseded_by": "a_new.json"},
        {"path": "c_older.json", "superseded_by": "a_new.json"},
    ]


def test_a_result_for_an_undeclared_task_version_is_rejected(tmp_path):
    write(tmp_path, "v1.json", make_result(value=0.2, version="1.0"))
    write(tmp_path, "v2.json", make_result(value=0.8, version="2.0"))
    board = build_leaderboard(tmp_path)
    assert set(board["tasks"]) == {"xor@1.0"}
    (rejection,) = board["rejected"]
    assert rejection["path"] == "v2.json" and "xor@2.0 is not a task version this leaderboard knows" in rejection["reason"]


def test_a_primary_metric_other_than_the_declared_one_is_rejected_not_mixed(tmp_path):
    write(tmp_path, "a.json", make_result(model="a"))
    odd = make_result(model="c")
    odd["metrics"]["acc5"] = {"value": 0.5}
    write(tmp_path, "c.json", odd | {"primary_metric": "alignment/a-b"})
    board = build_leaderboard(tmp_path)
    assert [e["model"] for e in board["tasks"]["xor@1.0"]["entries"]] == ["a"]
    (rejection,) = board["rejected"]
    assert rejection["path"] == "c.json" and "xor@1.0 ranks by 'acc1', not 'alignment/a-b'" in rejection["reason"]


def test_output_is_deterministic_and_skips_leaderboard_json(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    write_sample(first)
    for path in sorted(first.rglob("*.json"), reverse=True):  # other creation order
        write(second, path.relative_to(first).as_posix(), path.read_text())
    for folder in (first, second):  # a board among the results is skipped
        write_leaderboard(build_leaderboard(folder), folder / "leaderboard.json")
    text = dumps_leaderboard(build_leaderboard(first))
    assert text == dumps_leaderboard(build_leaderboard(second))
    assert json.loads(text)["results_scanned"] == 8
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_a_bench_folder_s_other_json_is_skipped_not_rejected(tmp_path):
    write(tmp_path, "results/xor/p_hat=0/symile.json", make_result())
    write(tmp_path, "data/xor/p_hat=0/manifest.json", {"dataset_id": "x", "shards": []})
    write(tmp_path, "data/xor/p_hat=0/train/xor-000000.stats.json", {"samples": 3})
    write(tmp_path, "runs/xor/p_hat=0/symile/run.json", {"task": "xor", "model": "symile"})
    write(tmp_path, "runs/xor/p_hat=0/symile/other.json", {"anything": "else"})
    board = build_leaderboard(tmp_path)
    assert board["rejected"] == [] and board["skipped"] == 4 and board["results_scanned"] == 1
    # runs/.../result.json is a result, the same as the one under results/: a duplicate, not a second entry.
    write(tmp_path, "runs/xor/p_hat=0/symile/result.json", make_result())
    board = build_leaderboard(tmp_path)
    assert board["rejected"] == [] and len(board["superseded"]) == 1


# --- hostile input ---------------------------------------------------------------------


def _bad(**fields) -> dict:
    """A valid result of model "bad" with top-level `fields` replaced."""
    return make_result(model="bad") | fields


def _raw(old: str, new: str) -> str:
    """The JSON text of _bad() with one piece of text swapped, for what json.dumps cannot write."""
    text = json.dumps(_bad())
    assert old in text
    return text.replace(old, new, 1)


def _without(key: str) -> dict:
    result = _bad()
    del result[key]
    return result


def _nested(depth: int) -> dict:
    result = _bad()
    for _ in range(depth):
        result["dataset"]["params"] = {"x": result["dataset"]["params"]}
    return result


ACC1 = '"value": 0.5, "n": 10'
ACC1_AT = "metrics.acc1.value: "
# file name -> (content, a piece of the rejection reason)
HOSTILE = {
    "malformed.json": ('{"schema_version": 1,,}', "malformed JSON at line 1 column 22"),
    "truncated.json": (json.dumps(_bad())[:-40], "malformed JSON at line 1 column"),
    "empty.json": ("", "malformed JSON at line 1 column 1"),
    "missing_field.json": (_without("seed"), "'seed' is a required property"),
    "missing_nested.json": (_bad(task={"name": "xor"}), "task: 'version' is a required property"),
    "nan.json": (_raw(ACC1, '"value": NaN'), ACC1_AT + "NaN is not a finite number"),
    "infinity.json": (_raw(ACC1, '"value": Infinity'), ACC1_AT + "Infinity is not a finite number"),
    "neg_infinity.json": (_raw('"wall_time_s": 12.3', '"wall_time_s": -Infinity'), "wall_time_s: -Infinity is not"),
    "overflow.json": (_raw(ACC1, '"value": 1e999'), ACC1_AT + "1e999 is not a finite number"),
    "huge_int.json": (_raw(ACC1, f'"value": {10**400}'), ACC1_AT + "a number larger in magnitude than 1e+300"),
    "string_value.json": (_raw(ACC1, '"value": "0.5"'), ACC1_AT + "'0.5' is not of type 'number'"),
    "schema_version.json": (_bad(schema_version=2), "schema_version is 2, but this leaderboard reads version 1"),
    "schema_version_str.json": (_bad(schema_version="1"), "schema_version: 1 was expected"),
    "primary_missing.json": (_bad(primary_metric="acc10"),
                             "primary_metric 'acc10' is not among the metrics (acc1, alignment/a-b)"),
    "array.json": ([_bad()], "expected a JSON object at the top level, got an array"),
    "extra_field.json": (_bad(extra=1), "top level: Additional properties are not allowed ('extra' was unexpected)"),
    "bad_metric_name.json": (_bad(metrics={"acc 1": {"value": 0.5}}), "metrics: 'acc 1' does not match"),
    "naive_created.json": (_bad(created="2026-11-22T08:00:00"), "has no UTC offset"),
    "bad_created.json": (_bad(created="yesterday"), "created: Invalid isoformat string: 'yesterday'"),
    "duplicate_key.json": (_raw('"seed": 0', '"seed": 0, "seed": 1'), "duplicate key 'seed'"),
    "too_deep.json": (_nested(40), "nested deeper than 32 levels"),
    "recursion.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    # What the declarations and the outcomes add: ranges, known metrics, dates, and outcomes that back the value.
    "accuracy_7_5.json": (_bad(metrics={"acc1": {"value": 7.5}}), "metrics.acc1: 7.5 is outside its declared range [0, 1]"),
    "accuracy_negative.json": (_bad(metrics={"acc1": {"value": -5}}), "-5 is outside its declared range [0, 1]"),
    "accuracy_1e300.json": (_bad(metrics={"acc1": {"value": 1e300}}), "1e+300 is outside its declared range [0, 1]"),
    "reference_range.json": (_bad(references={"chance": 2.0}), "references.chance: 2.0 is outside its declared range"),
    "undeclared_metric.json": (_bad(metrics={"acc1": {"value": 0.5}, "magic": {"value": 0.1}}),
                               "metrics.magic: not a metric that xor@1.0 declares"),
    "undeclared_reference.json": (_bad(references={"oracle": 0.9}), "references.oracle: not a reference level"),
    "future.json": (_bad(created="9999-12-31T00:00:00Z"), "created: 9999-12-31T00:00:00Z is in the future"),
    "outcomes_disagree.json": (_bad(metrics={"acc1": {"value": 0.9, "outcomes": hits_outcome([1, 0, 0, 0])}}),
                               "outcomes average 0.25, not the value 0.9"),
    "outcomes_bits.json": (_bad(metrics={"acc1": {"value": 0.5, "outcomes": {"form": "hits", "n": 30, "bits": "AA=="}}}),
                           "bits holds 1 bytes; 30 queries take 4"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_file_is_rejected_with_a_reason_and_the_build_goes_on(tmp_path, name):
    content, reason = HOSTILE[name]
    write(tmp_path, "good.json", make_result(model="good"))
    write(tmp_path, f"sub/{name}", content)
    board = build_leaderboard(tmp_path)
    assert board["rejected"] == [{"path": f"sub/{name}", "reason": board["rejected"][0]["reason"]}]
    assert reason in board["rejected"][0]["reason"]
    assert "\n" not in board["rejected"][0]["reason"]
    assert [e["model"] for e in board["tasks"]["xor@1.0"]["entries"]] == ["good"]


def test_unreadable_things_named_json_are_rejected(tmp_path):
    write(tmp_path, "good.json", make_result(model="good"))
    (tmp_path / "latin1.json").write_bytes(b'{"label": "caf\xe9"}')
    (tmp_path / "folder.json").mkdir()  # a folder is searched, whatever its name
    os.mkfifo(tmp_path / "pipe.json")  # reading it would block forever
    board = build_leaderboard(tmp_path)
    reasons = {item["path"]: item["reason"] for item in board["rejected"]}
    assert reasons == {
        "latin1.json": "not UTF-8 text (bad byte at offset 14)",
        "pipe.json": "not a regular file",
    }
    assert board["results_scanned"] == 3
    assert board["tasks"]["xor@1.0"]["entries"][0]["model"] == "good"


def test_all_hostile_files_together_still_build_and_report(tmp_path):
    results = tmp_path / "results"
    write_sample(results)
    for name, (content, _) in HOSTILE.items():
        write(results, f"hostile/{name}", content)
    write(results, "hostile/pipes.json", make_result(model="a|b\nc $x$ $\\frac$", p_hat=0.5))
    extreme = make_result(model="big", value=1.0, stderr=1.0, p_hat=-1e300) | {"references": {"chance": 0.0}}
    write(results, "hostile/extreme.json", extreme)
    board = build_leaderboard(results)
    assert len(board["rejected"]) == len(HOSTILE)
    json.loads(dumps_leaderboard(board))
    report = write_report(board, tmp_path / "report").read_text()
    assert "| a\\|b c $x$ $\\\\frac$ |" in report
    assert report.count("\n- hostile/") == len(HOSTILE)


# --- report ----------------------------------------------------------------------------


def test_report_has_the_ranked_table_with_intervals_and_a_readable_xor_plot(tmp_path):
    write_sample(tmp_path / "results")
    write(tmp_path / "results", "broken.json", "{")
    board = build_leaderboard(tmp_path / "results")
    report = write_report(board, tmp_path / "out")
    text = report.read_text()
    assert report == tmp_path / "out" / "report.md"
    assert text.startswith("# ")
    rows = [
        "| Rank | Group | Model | acc1 (95% CI) | p_hat=0.0 | p_hat=0.5 | p_hat=1.0 |",
        "| 1 | 1 | symile | 0.2967 (0.2854–0.3080) | 0.0400 (0.0204–0.0596) | 0.3000 (0.2804–0.3196) | 0.5500 (0.5304–0.5696) |",
        "| 2 | 2 | clip | 0.1533 (0.1420–0.1646) |",
        "| — |  | worst | unranked: 2/3 datasets | 0.0200 (0.0004–0.0396) | 0.0500 (0.0304–0.0696) | — |",
        "|  |  | *Bayes bound* |  | 0.0312 | 0.2812 | 0.5312 |",
    ]
    positions = [text.index(row) for row in rows]
    assert positions == sorted(positions)
    assert "Intervals: normal approximation, ±1.96 × the results' standard error." in text
    assert format_table(board, "xor@1.0") in text
    assert "![xor: acc1 per model](xor.png)" in text
    assert "## Rejected files" in text and "- broken.json: malformed JSON" in text
    # Every declared metric is explained.
    assert "- `acc1` in [0, 1], higher is better: top-1 accuracy" in text
    assert "- *Bayes bound* (`bayes_bound`): the best accuracy" in text

    png = tmp_path / "out" / "xor.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels.std() > 0.05  # not a blank canvas


def test_report_without_rejections_or_plot_has_no_such_sections(tmp_path):
    write(tmp_path / "results", "r.json", make_result(plot=None))
    write_report(build_leaderboard(tmp_path / "results"), tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Rejected files" not in text and "![" not in text
    assert not list((tmp_path / "out").glob("*.png"))


# --- no torch --------------------------------------------------------------------------

HEAVY = ("polymodal.builders", "polymodal.baselines", "polymodal.benchmarks")  # what the leaderboard must not import


def test_leaderboard_builds_and_reports_without_torch(tmp_path):
    write_sample(tmp_path / "results")
    code = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from polymodal import leaderboard
from polymodal.leaderboard.cli import main
for name in leaderboard.__all__:  # load every lazily exported module
    getattr(leaderboard, name)
assert main(["build", "--results", "results", "--out", "leaderboard.json"]) == 0
assert main(["report", "--leaderboard", "leaderboard.json", "--out", "out"]) == 0
assert main(["site", "--results", "results", "--out", "site"]) == 0
assert main(["check", "results"]) == 1  # its datasets belong to no suite
assert leaderboard.build_leaderboard("results")["tasks"]["xor@1.0"]["entries"][0]["model"] == "symile"
forbidden = [m for m in sys.modules if m.startswith(HEAVY)]
assert not forbidden, forbidden
""".replace("HEAVY", repr(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "xor.png").is_file() and (tmp_path / "site" / "index.html").is_file()


def test_no_module_imports_torch_or_the_heavy_packages_even_lazily():
    for path in sorted((REPO / "leaderboard").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "torch" or name.startswith(HEAVY) for name in names), (path.name, names)


# --- CLI -------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO)}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polymodal.leaderboard", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, check=False)


def test_cli_build_and_report(tmp_path):
    write_sample(tmp_path / "results")
    write(tmp_path / "results", "broken.json", "{")
    board_path = tmp_path / "board" / "leaderboard.json"

    built = _cli("build", "--results", "results", "--out", str(board_path), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "8 accepted (0 superseded by newer duplicates), 1 rejected, 0 other JSON files skipped" in built.stdout
    assert built.stderr.strip() == f"{Path('results') / 'broken.json'}: malformed JSON at line 1 column 2: " \
        "Expecting property name enclosed in double quotes"
    assert json.loads(board_path.read_text())["tasks"]["xor@1.0"]["entries"][0]["model"] == "symile"

    reported = _cli("report", "--leaderboard", str(board_path), "--out", "site", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "| 1 | 1 | symile |" in reported.stdout
    assert (tmp_path / "site" / "report.md").is_file() and (tmp_path / "site" / "xor.png").is_file()


def test_cli_strict_fails_only_when_something_is_rejected(tmp_path, capsys):
    results, out = tmp_path / "results", str(tmp_path / "b.json")
    write_sample(results)
    assert main(["build", "--results", str(results), "--out", out, "--strict"]) == 0
    write(results, "broken.json", "{")
    assert main(["build", "--results", str(results), "--out", out]) == 0
    assert main(["build", "--results", str(results), "--out", out, "--strict"]) == 1
    assert "broken.json: malformed JSON" in capsys.readouterr().err


def test_cli_reports_usage_errors_without_traceback(tmp_path, capsys):
    assert main(["build", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b.json")]) == 2
    assert "nowhere" in capsys.readouterr().err
    write(tmp_path, "bad.json", "[]")
    assert main(["report", "--leaderboard", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")]) == 2
    assert "schema_version" in capsys.readouterr().err


def test_add_commands_plugs_into_a_parent_cli(tmp_path, capsys):
    write_sample(tmp_path / "results")
    parser = argparse.ArgumentParser(prog="polymodal")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["leaderboard", "build", "--results", str(tmp_path / "results"),
                              "--out", str(tmp_path / "b.json")])
    assert args.command == "leaderboard" and args.func(args) == 0
    args = parser.parse_args(["leaderboard", "report", "--leaderboard", str(tmp_path / "b.json"),
                              "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["leaderboard"])  # a sub-subcommand is required
    for command in ("", "build", "report", "site", "check"):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["leaderboard", *([command] if command else []), "--help"])
        assert exited.value.code == 0
    helps = capsys.readouterr().out
    for phrase in ("build", "report", "--strict", "--results", "--leaderboard", "recursively", "report.md", "file system"):
        assert phrase in helps
