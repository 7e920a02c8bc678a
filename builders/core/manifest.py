"""manifest.json: what a dataset folder must hold, and `verify` to check it; the folder may be an fsspec URL."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path

from polymodal import __version__
from polymodal.builders.core import storage
from polymodal.builders.core.base import Builder
from polymodal.builders.core.storage import Location
from polymodal.builders.core.tarshards import write_atomic
from polymodal.builders.schema import split_member

MANIFEST = "manifest.json"


def read_stats(out_dir: Location, builder: Builder) -> list[dict]:
    return [json.loads(storage.read_bytes(storage.join(out_dir, f"{spec.stem(builder.prefix)}.stats.json")))
            for spec in builder.plan()]


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
        "content_digest": content_digest(stats),
        "local": builder.local_config(),  # this machine's paths: neither the id nor the card uses them
    }


def content_digest(shards: list[dict]) -> str:
    """What was built: a hash over every shard's path and sha256, in manifest order."""
    lines = "".join(f"{s['path']} {s['sha256']}\n" for s in shards)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def write_manifest(out_dir: Location, manifest: dict) -> None:
    storage.put_bytes(storage.join(out_dir, MANIFEST), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def load_manifest(data_dir: Location) -> dict:
    path = storage.join(data_dir, MANIFEST)
    if not storage.is_file(path):
        raise FileNotFoundError(f"{data_dir} holds no {MANIFEST}: is it a finished polymodal build?")
    manifest = json.loads(storage.read_bytes(path))
    manifest.setdefault("content_digest", content_digest(manifest["shards"]))  # manifests written before it
    return manifest


@dataclass
class Problem:
    path: str
    kind: str  # missing | truncated | altered | extra | count | fields
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def _scan_tar(path: Location, fields: set[str]) -> tuple[int, str | None]:
    """Count samples and name the first bad member (not a plain `key.field`, a repeated one) or field-set
    mismatch, reading the tar itself."""
    members: dict[str, set[str]] = {}
    try:
        with storage.open_read(path) as raw, tarfile.open(fileobj=raw, mode="r") as tar:
            for member in tar:
                key, field = split_member(member.name)
                if key is None or not member.isfile():
                    return len(members), f"member {member.name!r} is not a plain file named key.field"
                if field in members.setdefault(key, set()):
                    return len(members), f"sample {key} holds {field} twice"
                members[key].add(field)
    except tarfile.TarError as err:
        return len(members), f"unreadable tar ({err})"
    for key, got in members.items():
        if got != fields:
            return len(members), f"sample {key} has fields {sorted(got)}, expected {sorted(fields)}"
    return len(members), None


def verify(data_dir: Location, known: dict | None = None) -> list[Problem]:
    """Re-hash every shard against the manifest; check counts, member names, field sets and strays.

    `known` maps a shard's path to the (size, version, sha256) of its last good check, the version being the
    mtime_ns of a local file or the ETag (or like) of an object: a shard that still has that size and version is
    not hashed again. It is updated with every shard that passes. A remote shard is hashed as it streams in.
    """
    manifest = load_manifest(data_dir)
    fields = set(manifest["fields"])
    problems = []
    listed = set()
    known = {} if known is None else known
    for shard in manifest["shards"]:
        rel = shard["path"]
        listed.add(rel)
        path = storage.join(data_dir, rel)
        if not storage.is_file(path):
            problems.append(Problem(rel, "missing", "listed in the manifest but not on disk"))
            continue
        size, version = storage.stat(path)
        seen = [size, version, shard["sha256"]]
        if known.get(rel) == seen:
            continue
        if size != shard["bytes"]:
            kind = "truncated" if size < shard["bytes"] else "altered"
            problems.append(Problem(rel, kind, f"{size} bytes, the manifest says {shard['bytes']}"))
            continue
        if storage.sha256(path) != shard["sha256"]:
            problems.append(Problem(rel, "altered", "sha256 differs from the manifest"))
            continue
        count, mismatch = _scan_tar(path, fields)
        if count != shard["samples"]:
            problems.append(Problem(rel, "count", f"{count} samples, manifest says {shard['samples']}"))
        if mismatch:
            problems.append(Problem(rel, "fields", mismatch))
        if count == shard["samples"] and not mismatch:
            known[rel] = seen
    for rel in storage.find(data_dir, ".tar"):
        if rel not in listed:
            problems.append(Problem(rel, "extra", "a shard that the manifest does not list"))
    digest = content_digest(manifest["shards"])
    if manifest.get("content_digest", digest) != digest:
        problems.append(Problem(MANIFEST, "altered", "its content digest does not match its shards' sha256"))
    return problems


class DatasetError(SystemExit):
    """A dataset that does not match its manifest; the message names each bad shard."""


def check_dataset(data_dir: Location) -> dict:
    """The manifest of `data_dir` once every shard matches it, else DatasetError naming each problem.

    What passed is remembered per shard (size, mtime, sha256) in the user's cache, so checking a dataset
    that has not changed costs a stat per shard.
    """
    memo = _memo_path(data_dir)
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    problems = verify(data_dir, known)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise DatasetError(f"{data_dir} does not match its manifest ({len(problems)} problem(s)); rebuild it with "
                           f"the command in its README.md, or pass --no-verify to use it anyway:\n{lines}")
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo, json.dumps(known, sort_keys=True).encode())
    except OSError:
        pass  # a read-only cache only costs the next run a re-hash
    return load_manifest(data_dir)


def _memo_path(data_dir: Location) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polymodal" / "verified"
    return root / f"{hashlib.sha256(storage.canonical(data_dir).encode()).hexdigest()[:24]}.json"
