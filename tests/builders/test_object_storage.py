"""Datasets on object storage: built into and verified on a real S3 API (moto's server on loopback), byte for byte
the local build, resumed after a kill -9 in the middle of an upload, and one clear line for a store that fails."""

import json
import subprocess
import sys

import pytest

from polymodal.builders.core import storage
from polymodal.builders.core.manifest import MANIFEST, check_dataset, verify
from polymodal.builders.core.runner import LOCK, build
from polymodal.builders.xor import XorBuilder, XorConfig
from tests.helpers import ROOT, folder_bytes

pytest.importorskip("s3fs")
pytest.importorskip("moto")

CONFIG = XorConfig(train=60, val=20, test=30, test_draws=2, shard_size=20)
FLAGS = ["--train", "60", "--val", "20", "--test", "30", "--test-draws", "2", "--shard-size", "20"]
SHARDS = 3 + 1 + 2 * 2  # train 60/20, val 20/20, two test draws of 30/20


def remote_bytes(url: str) -> dict[str, bytes]:
    """Every object below `url`, by relative key (the remote twin of folder_bytes)."""
    return {name: storage.read_bytes(storage.join(url, name)) for name in storage.find(url)}


def polymodal(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "polymodal", *args], cwd=ROOT, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def local_bytes(folder) -> dict[str, bytes]:
    """What a local build holds, less its (emptied) lock file: an object store has no lock."""
    return {name: data for name, data in folder_bytes(folder).items() if name != LOCK}


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return out, build(XorBuilder(CONFIG), out, progress=False)


def test_a_build_on_s3_is_the_local_build_byte_for_byte_and_verifies(s3_bucket, local_build, tmp_path):
    local, local_manifest = local_build
    url = f"{s3_bucket}/xor"
    manifest = build(XorBuilder(CONFIG), url, progress=False)
    assert manifest["content_digest"] == local_manifest["content_digest"]
    assert remote_bytes(url) == local_bytes(local)  # shards, stats, manifest, card and config, all of them
    assert verify(url) == [] and check_dataset(url)["content_digest"] == manifest["content_digest"]
    assert polymodal("verify", url).stdout.strip() == f"{url}: all shards match the manifest"

    # What verify catches on the store: an altered shard, a shard gone, one the manifest does not list.
    shards = [s["path"] for s in manifest["shards"]]
    storage.put_bytes(storage.join(url, shards[0]), storage.read_bytes(storage.join(url, shards[0]))[:-1] + b"x")
    storage.remove(storage.join(url, shards[1]))
    storage.put_bytes(storage.join(url, "train/stray.tar"), b"")
    problems = {(p.path, p.kind) for p in verify(url)}
    assert problems == {(shards[0], "altered"), (shards[1], "missing"), ("train/stray.tar", "extra")}
    failed = polymodal("verify", url, check=False)
    assert failed.returncode == 1 and f"BAD {shards[1]}: missing" in failed.stderr

    # The second run over the damaged prefix resumes: the two bad shards are made again, the stray stays extra.
    storage.remove(storage.join(url, "train/stray.tar"))
    build(XorBuilder(CONFIG), url, progress=False)
    assert remote_bytes(url) == local_bytes(local)


# Run as the build process: the real CLI, except that it kills itself (SIGKILL) in the middle of publishing the
# third shard: its tar is in place, its stats file uploaded under a temporary key and not yet moved onto its name.
_KILLED_MID_UPLOAD = """
import os, signal, sys
from polymodal.builders.core import storage
from polymodal.cli import main

published = []
real = storage.put_file

def put_file(source, location):
    if str(location).endswith(".stats.json") and len(published) == 2:
        fs, path = storage._fs(str(location))
        fs.put_file(str(source), storage._temporary(path))
        os.kill(os.getpid(), signal.SIGKILL)
    real(source, location)
    if str(location).endswith(".stats.json"):
        published.append(location)

storage.put_file = put_file
main(sys.argv[1:])
"""


def test_a_build_on_s3_killed_mid_upload_resumes_to_the_local_build(s3_bucket, local_build):
    local, local_manifest = local_build
    url = f"{s3_bucket}/xor"
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_UPLOAD, "build", "xor", "--out", url, *FLAGS,
                             "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    left = storage.find(url)
    stats = [n for n in left if n.endswith(".stats.json")]
    tars = [n for n in left if n.endswith(".tar")]
    temporary = [n for n in left if n.endswith(storage.TMP)]
    assert len(stats) == 2 and len(tars) == 3 and len(temporary) == 1 and MANIFEST not in left

    out = polymodal("build", "xor", "--out", url, *FLAGS, "--no-progress").stdout
    assert f"{url}: dataset {local_manifest['dataset_id']}" in out
    manifest = json.loads(storage.read_bytes(storage.join(url, MANIFEST)))
    assert manifest["content_digest"] == local_manifest["content_digest"]
    assert storage.find(url, ".tar") == sorted(s["path"] for s in local_manifest["shards"])  # none twice, no stray
    assert len(manifest["shards"]) == SHARDS
    assert remote_bytes(url) == local_bytes(local)  # and nothing temporary left behind
    polymodal("verify", url)


def test_a_sweep_on_s3_gets_one_prefix_per_value(s3_bucket):
    url = f"{s3_bucket}/sweep"
    polymodal("build", "xor", "--out", url, *FLAGS, "--p-hat", "0,1", "--no-progress")
    assert {name.split("/")[0] for name in storage.find(url, MANIFEST)} == {"p_hat=0", "p_hat=1"}
    polymodal("verify", f"{url}/p_hat=1/")


def test_a_file_url_is_a_local_folder(tmp_path, local_build):
    local, _ = local_build
    polymodal("build", "xor", "--out", f"file://{tmp_path}/xor", *FLAGS, "--no-progress")
    assert folder_bytes(tmp_path / "xor") == folder_bytes(local)
    polymodal("verify", f"file://{tmp_path}/xor")


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) in (1, 2) and all(w in lines[-1] for w in words), result.stderr  # (argparse adds a usage line)


def test_a_store_that_fails_is_one_clear_line(s3_bucket, monkeypatch):
    missing = "s3://no-such-bucket/ds"
    one_line_error(polymodal("build", "xor", "--out", missing, *FLAGS, "--no-progress", check=False),
                   missing, "bucket")
    one_line_error(polymodal("verify", missing, check=False), missing)
    one_line_error(polymodal("verify", f"{s3_bucket}/nothing", check=False), "holds no manifest.json")

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # refused at once, not after botocore's retries
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    one_line_error(polymodal("verify", f"{s3_bucket}/ds", check=False), "connect")
    one_line_error(polymodal("build", "xor", "--out", f"{s3_bucket}/ds", *FLAGS, "--no-progress", check=False),
                   "connect")

    monkeypatch.undo()  # back to no endpoint at all, then take the credentials away too
    from tests.s3_server import point_at

    point_at(monkeypatch, "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    one_line_error(polymodal("verify", f"{s3_bucket}/ds", check=False), "credentials")
