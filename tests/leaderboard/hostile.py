"""A results folder written by an attacker, for the report, terminal, site and browser tests.

It holds markup, script, a javascript: link, terminal escapes and a
right-to-left override in every text field a result has (and, through the
robustness sweep the hostile model carries, in both plots); a newline in a file
and a folder name; out-of-range values; a future date; a reference model's
name from another source; a symlink out of the folder; a dataset only one
model ran; and a manifest that is not a result at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.leaderboard.results import make_result, sweep_metrics, write

# document.title and window.pwned change if any of it ever runs.
SCRIPT = "<script>window.pwned=1;document.title='pwned'</script>"
IMG = "<img src=x onerror=\"window.pwned=1;document.title='pwned'\">"
LINK = "[click](javascript:window.pwned=1)"
ESCAPES = "\x1b[31m\x1b]0;pwned\x07\u202e\x00"
HOSTILE = f"{SCRIPT}{IMG}{LINK}{ESCAPES}"
EVIL = f"evil{HOSTILE}"  # the hostile model's name
P_HATS = (0.0, 0.5, 1.0)
RANKED = ["symile", "clip", EVIL]  # by score
NEWLINE_FILE = "bad\n# Injected heading <script>x</script>.json"


def hostile_result(p_hat: float, value: float = 0.2) -> dict:
    """A valid result with a hostile string in every field that takes text."""
    # Newer than the others, so its description of each dataset is the one the board shows.
    result = make_result(model=EVIL, p_hat=p_hat, value=value, created="2025-11-23T08:00:00Z",
                         source=f"evil.models:Mlp{HOSTILE}",
                         revision=f"v1{HOSTILE}", license=f"GPL{HOSTILE}", training_data=f"web{HOSTILE}",
                         modalities=["a", "b", f"c{HOSTILE}"], label=f"p_hat={p_hat:g} {HOSTILE}")
    result["model"]["config"] = {f"key{HOSTILE}": f"value{HOSTILE}"}
    result["dataset"] |= {"builder": f"xor{HOSTILE}", "builder_version": f"1{HOSTILE}"}
    result["dataset"]["params"][f"note{HOSTILE}"] = HOSTILE
    result["code_version"] = {"package": f"0.1{HOSTILE}", "git_commit": HOSTILE}
    result["hardware"] |= {"device_name": HOSTILE, "platform": HOSTILE, "extra": HOSTILE}
    result["plot"] = {"x": "p_hat", "symbol": f"$p${HOSTILE}"}
    result["metrics"] |= sweep_metrics(lambda corruption, modality, p: value * (1 - p / 2))  # its name in that plot too
    return result


def write_hostile_results(results: Path, outside: Path) -> None:
    for p_hat in P_HATS:
        write(results, f"symile/{p_hat}.json", make_result(model="symile", p_hat=p_hat, value=0.3 + p_hat / 2,
                                                           stderr=0.001, label=f"p_hat={p_hat:g} {HOSTILE}"))
        write(results, f"clip/{p_hat}.json", make_result(model="clip", p_hat=p_hat, value=0.25, stderr=0.001,
                                                         label=f"p_hat={p_hat:g} {HOSTILE}"))
    write(results, "evil/0.0.json", hostile_result(0.0))
    write(results, "evil/0.5.json", hostile_result(0.5))
    write(results, f"evil\n# Injected folder {SCRIPT}/1.0.json", hostile_result(1.0))
    # Only one model ran p_hat=0.7: it ranks nobody, and that model is not ranked.
    write(results, "lone/0.7.json", make_result(model="lone", p_hat=0.7, value=0.99, license="Apache-2.0"))
    # Rejected, each for its own reason, with the hostile text in the reason or the file name.
    write(results, "impostor.json", make_result(model="symile", source=f"evil:Mlp{HOSTILE}", value=0.99))
    write(results, "future.json", make_result(model="future", value=0.99, created="9999-12-31T00:00:00Z"))
    out_of_range = make_result(model="huge", value=7.5)
    write(results, NEWLINE_FILE, out_of_range)
    write(results, "below.json", make_result(model="negative", value=-5))
    write(results, "task.json", make_result(model="tasked") | {"task": {"name": HOSTILE, "version": "1.0"}})
    target = write(outside, "secret.json", make_result(model="outsider", value=0.99))
    os.symlink(target, results / "linked.json")
    write(results, "data/manifest.json", {"dataset_id": HOSTILE})  # not a result: skipped
