"""manifest.json: what a dataset folder must hold, and `verify` to check it."""

from __future__ import annotations

import json
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path

from polymodal import __version__
from polymodal.builders.core.base import Builder
from polymodal.builders.core.tarshards import sha256_file, write_atomic

MANIFEST = "manifest.json"


def read_stats(out_dir: Path, builder: Builder) -> list[dict]:
    return [json.loads((out_dir / f"{spec.stem(builder.prefix)}.stats.json").read_text()) for spec in builder.plan()]


def make_manifest(builder: Builder, stats: list[dict]) -> dict:
    splits: dict[str, dict] = {}
    errors: dict[str, int] = {}
    for s in stats:
        for kind, count in s["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
        split = splits.setdefault(s["split"], {"samples": 0, "shards": 0, "rows": 0, "failed": 0})
        split["samples"] += s["samples"]
        split["shards"] += 1
        split["rows"] += s["rows"]
        split["failed"] += s["failed"]
    return {
        "dataset_id": builder.dataset_id(),
        "builder": builder.name,
        "builder_version": builder.version,
        "polymodal_version": __version__,
        "config": builder.config_dict(),
        "seed": builder.config.seed,
        "tools": {"python": platform.python_version(), **builder.tool_versions()},
        "fields": list(builder.fields),
        "splits": splits,
        "errors": dict(sorted(errors.items())),  # failed rows by kind, over all shards
        "shards": [
            {k: s[k] for k in ("path", "split", "samples", "sha256", "bytes")} for s in stats
        ],
    }


def write_manifest(out_dir: Path, manifest: dict) -> None:
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def load_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir} holds no {MANIFEST}: is it a finished polymodal build?")
    return json.loads(path.read_text())


@dataclass
class Problem:
    path: str
    kind: str  # missing | truncated | altered | extra | count | fields
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def _scan_tar(path: Path, fields: set[str]) -> tuple[int, str | None]:
    """Count samples and name the first field-set mismatch, reading the tar itself."""
    members: dict[str, set[str]] = {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            key, _, suffix = member.name.rpartition("/")[2].partition(".")
            members.setdefault(key, set()).add(suffix)
    for key, got in members.items():
        if got != fields:
            return len(members), f"sample {key} has fields {sorted(got)}, expected {sorted(fields)}"
    return len(members), None


def verify(data_dir: str | Path) -> list[Problem]:
    """Re-hash every shard against the manifest; check counts, field sets and strays."""
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    fields = set(manifest["fields"])
    problems = []
    listed = set()
    for shard in manifest["shards"]:
        rel = shard["path"]
        listed.add(rel)
        path = data_dir / rel
        if not path.is_file():
            problems.append(Problem(rel, "missing", "listed in the manifest but not on disk"))
            continue
        size = path.stat().st_size
        if size < shard["bytes"]:
            problems.append(Problem(rel, "truncated", f"{size} bytes, expected {shard['bytes']}"))
            continue
        if sha256_file(path) != shard["sha256"]:
            problems.append(Problem(rel, "altered", "sha256 differs from the manifest"))
            continue
        count, mismatch = _scan_tar(path, fields)
        if count != shard["samples"]:
            problems.append(Problem(rel, "count", f"{count} samples, manifest says {shard['samples']}"))
        if mismatch:
            problems.append(Problem(rel, "fields", mismatch))
    for path in sorted(data_dir.rglob("*.tar")):
        rel = path.relative_to(data_dir).as_posix()
        if rel not in listed:
            problems.append(Problem(rel, "extra", "a shard that the manifest does not list"))
    return problems
