"""Every read checks what it reads: a dataset that no longer matches its manifest is refused by name before
anything trains on it, and the readers refuse members that are not plain `key.field` names."""

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from polymodal.benchmarks import data
from polymodal.builders.core import storage
from polymodal.builders.core.manifest import DatasetError, content_digest, verify
from polymodal.builders.core.runner import build
from polymodal.builders.xor import XorBuilder, XorConfig

SMALL = XorConfig(train=40, val=10, test=20, test_draws=2, shard_size=10)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("xor")
    build(XorBuilder(SMALL), out, progress=False)
    return out


@pytest.fixture
def copy(built, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a fresh memo of passed checks
    folder = tmp_path / "data"
    shutil.copytree(built, folder)
    return folder


def _members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def _write(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def _restamp(folder: Path, shard: str) -> None:
    """Make the manifest agree with a rewritten shard, as a careless copy or a hostile one would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["shards"]:
        if entry["path"] == shard:
            raw = (folder / shard).read_bytes()
            entry["sha256"], entry["bytes"] = hashlib.sha256(raw).hexdigest(), len(raw)
    manifest["content_digest"] = content_digest(manifest["shards"])
    (folder / "manifest.json").write_text(json.dumps(manifest))


SHARD = "train/xor-000001.tar"


def truncate_at_a_sample_boundary(folder):
    members = _members(folder / SHARD)
    _write(folder / SHARD, members[: len(members) // 2])  # a valid tar with half the samples


def duplicate_a_sample(folder):
    members = _members(folder / SHARD)
    _write(folder / SHARD, members + members[:4])


def flip_payload_bytes(folder):
    raw = bytearray((folder / SHARD).read_bytes())
    raw[700] ^= 0xFF
    (folder / SHARD).write_bytes(bytes(raw))


def add_an_extra_shard(folder):
    shutil.copy(folder / SHARD, folder / "train" / "xor-000009.tar")


def remove_a_shard(folder):
    (folder / SHARD).unlink()


FAULTS = {
    truncate_at_a_sample_boundary: "truncated",
    duplicate_a_sample: "altered",
    flip_payload_bytes: "altered",
    add_an_extra_shard: "extra",
    remove_a_shard: "missing",
}


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_a_damaged_dataset_is_refused_naming_the_shard(copy, fault):
    assert data.shard_source(copy, "train", ["a"]).read_all()["a"].shape == (40, 5)  # a good copy reads
    fault(copy)
    with pytest.raises(DatasetError) as refused:
        data.shard_source(copy, "train", ["a"]).read_all()
    message = str(refused.value)
    assert FAULTS[fault] in message and ("xor-000009" if fault is add_an_extra_shard else SHARD) in message


def test_a_shard_with_its_manifest_rewritten_still_fails_on_its_count_or_members(copy):
    duplicate_a_sample(copy)
    _restamp(copy, SHARD)  # sha256 and size agree now; the samples do not
    problems = {p.kind for p in verify(copy)}
    assert problems == {"fields"}  # a sample holds its members twice


def test_a_member_outside_the_shard_folder_is_refused_by_the_check_and_by_the_reader(copy):
    members = _members(copy / SHARD)
    _write(copy / SHARD, [("../../x.a.npy" if n == 0 else name, payload) for n, (name, payload) in enumerate(members)])
    _restamp(copy, SHARD)
    assert any("not a plain file named key.field" in str(p) for p in verify(copy))
    data.skip_verification()
    try:
        with pytest.raises(DatasetError, match="not a plain sample key"):
            data.shard_source(copy, "train", ["a"]).read_all()
    finally:
        data._checks["on"] = True


def test_a_passed_check_is_remembered_until_the_shard_changes(copy, monkeypatch):
    data.load_manifest(copy)
    hashed = []
    real = storage.sha256
    monkeypatch.setattr(storage, "sha256", lambda p: hashed.append(p) or real(p))
    data._checked.cache_clear()
    data.load_manifest(copy)
    assert hashed == []  # sizes and mtimes unchanged: nothing re-hashed
    flip_payload_bytes(copy)
    with pytest.raises(DatasetError):
        data.load_manifest(copy)
    assert [Path(p).name for p in hashed] == ["xor-000001.tar"]


def test_no_verify_reads_without_checking(copy):
    add_an_extra_shard(copy)
    data.skip_verification()
    try:
        assert not data.verified()
        assert data.shard_source(copy, "train", ["a"]).read_all()["a"].shape == (40, 5)
    finally:
        data._checks["on"] = True
