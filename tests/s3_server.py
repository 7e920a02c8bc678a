"""A real S3 API on loopback for the tests: moto's server on 127.0.0.1, started and stopped by the session, and a
fresh bucket per test with the environment that points s3fs at it (for this process and the commands it starts).

tests/conftest.py imports both fixtures for every test.
"""

from __future__ import annotations

import itertools
import logging

import pytest

#: Credentials moto accepts, and no other place for botocore to look for any.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
_names = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of a moto S3 server on a free loopback port, for the whole session."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def point_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Send s3:// to `endpoint`: fsspec's config for this process, FSSPEC_S3_ENDPOINT_URL for its children."""
    import fsspec.config
    import s3fs

    for key, value in {**FAKE_AWS, "FSSPEC_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    s3fs.S3FileSystem.clear_instance_cache()  # none made for another endpoint or without these credentials


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    """`s3://NAME`, a new empty bucket on the session's server, with s3:// pointed at that server."""
    import s3fs

    point_at(monkeypatch, s3_endpoint)
    name = f"polymodal-test-{next(_names)}"
    s3fs.S3FileSystem().mkdir(name)
    yield f"s3://{name}"
    s3fs.S3FileSystem.clear_instance_cache()
