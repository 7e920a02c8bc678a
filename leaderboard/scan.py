"""Finding the result files under a results folder.

A bench folder holds other JSON too (manifests, run records, shard stats,
model cards beside submitted results); those are skipped without a word, by
name or because they carry none of a result's fields. A symlink is followed
only while it stays inside the folder: one pointing out could pull any file
of the machine onto the board.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from polymodal.leaderboard.schema import MAX_FILE_BYTES

BOARD_FILENAME = "leaderboard.json"
CARD_SUFFIX = ".card.json"  # the model card `polymodal submit` writes beside each result
# Files of a bench folder that are never results: what builders, runs and the board itself write.
NOT_RESULTS = {BOARD_FILENAME, "manifest.json", "run.json", ".polymodal-build.json"}
NOT_RESULT_SUFFIXES = (".stats.json", CARD_SUFFIX)
# A JSON object with none of these keys is some other document, not a broken result.
RESULT_KEYS = {"schema_version", "task", "metrics", "primary_metric"}


@dataclass(frozen=True)
class Found:
    path: Path
    relative: str  # as the board names it, relative to the results folder
    outside: bool = False  # a symlink that leaves the folder: rejected, never read


def scan(root: Path) -> tuple[list[Found], int]:
    """(candidate result files sorted by relative path, how many other JSON files were skipped)."""
    top = root.resolve()
    found, skipped = [], 0
    # os.walk does not descend into symlinked folders; a symlinked file is checked below.
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if name in NOT_RESULTS or name.endswith(NOT_RESULT_SUFFIXES):
                skipped += 1
            elif path.is_symlink() and not path.resolve().is_relative_to(top):
                found.append(Found(path, relative, outside=True))
            elif _other_document(path):
                skipped += 1
            else:
                found.append(Found(path, relative))
    return sorted(found, key=lambda f: f.relative), skipped


def _other_document(path: Path) -> bool:
    """A readable JSON object that is plainly not a result; anything broken is left for the validator to name."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return False
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and not RESULT_KEYS & obj.keys()
