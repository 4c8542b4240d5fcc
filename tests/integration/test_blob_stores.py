"""The blob store port's contract, on both stores: the filesystem one, and the S3-compatible one
against a local server that speaks S3's wire protocol (moto's)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from atelier_contracts.blobstore import BlobNotFound, Blobs, BlobStoreUnavailable, FileBlobStore, open_blobs
from atelier_contracts.blobstore_s3 import S3BlobStore, S3Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["file", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    if request.param == "file":
        return FileBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_server")
    bucket = f"b{os.urandom(4).hex()}"  # one bucket per test: nothing left from another
    settings = S3Settings(endpoint=endpoint, bucket=bucket, access_key="test", secret_key="test-secret")
    return S3BlobStore(settings, tmp_path / "cache")


def test_blobs_are_named_by_their_content_and_read_back(blobs: Blobs, tmp_path: Path) -> None:
    ref = blobs.put_bytes(b"a fox found a lantern", "text/plain")
    assert ref.key == hashlib.sha256(b"a fox found a lantern").hexdigest()
    assert (ref.size, ref.content_type) == (21, "text/plain")
    assert blobs.put_bytes(b"a fox found a lantern", "text/plain") == ref, "the same bytes, the same blob"
    assert blobs.read_bytes(ref.key) == b"a fox found a lantern"
    with blobs.open(ref.key) as f:
        assert f.read() == b"a fox found a lantern"
    assert blobs.exists(ref.key)
    assert blobs.path_of(ref.key).read_bytes() == b"a fox found a lantern", "a file on this machine"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    from_file = blobs.put_file(big, "application/octet-stream")
    assert blobs.read_bytes(from_file.key) == big.read_bytes()
    assert from_file.size == 3 << 20


def test_missing_and_malformed_keys_are_not_found(blobs: Blobs) -> None:
    assert not blobs.exists("0" * 64)
    assert not blobs.exists("../etc/passwd")
    with pytest.raises(BlobNotFound):
        blobs.read_bytes("0" * 64)
    with pytest.raises(BlobNotFound):
        blobs.open("not-a-key")
    assert not blobs.path_of("0" * 64).exists()


def test_staged_bytes_are_read_once_and_discarded(blobs: Blobs) -> None:
    staging = blobs.stage()
    staging.write(b"an upload, ")
    staging.write(b"not a blob yet")
    staging.close()
    with blobs.open_staged(staging.key) as f:
        assert f.read() == b"an upload, not a blob yet"
    blobs.discard_staged(staging.key)
    with pytest.raises(BlobNotFound):
        blobs.open_staged(staging.key)
    aborted = blobs.stage()
    aborted.write(b"cut short")
    aborted.abort()
    with pytest.raises(BlobNotFound):
        blobs.open_staged(aborted.key)
    with pytest.raises(BlobNotFound):
        blobs.open_staged("../../etc/passwd")
    assert [k for k, _ in blobs.stored()] == [], "staged bytes are no blobs"


def test_the_clean_up_sees_what_is_stored_and_kept(blobs: Blobs) -> None:
    old = blobs.put_bytes(b"old", "text/plain")
    new = blobs.put_bytes(b"new", "text/plain")
    assert sorted(k for k, _ in blobs.stored()) == sorted([old.key, new.key])
    assert blobs.size_of(old.key) == 3
    written = dict(blobs.stored())[old.key]
    time.sleep(1.1)  # S3 keeps last-modified to the second: the kept time must be a later second
    assert blobs.keep(old.key)
    assert dict(blobs.stored())[old.key] > written, "a kept blob counts as just written"
    assert not blobs.keep("0" * 64)
    assert blobs.delete(old.key)
    assert not blobs.delete(old.key)
    assert not blobs.exists(old.key)
    assert [k for k, _ in blobs.stored()] == [new.key]
    assert list(blobs.leftovers(time.time() + 60)) == []


def test_an_unreachable_s3_store_is_unavailable_not_missing(tmp_path: Path) -> None:
    nobody = S3Settings(endpoint="127.0.0.1:1", bucket="reach", access_key="t", secret_key="t-secret")
    with pytest.raises(BlobStoreUnavailable):
        S3BlobStore(nobody, tmp_path)


def test_the_store_is_chosen_by_the_environment(tmp_path: Path, s3_server: str) -> None:
    assert isinstance(open_blobs(tmp_path / "a", {}), FileBlobStore)
    env = {"ATELIER_BLOB_STORE": "s3", "ATELIER_S3_ENDPOINT": s3_server, "ATELIER_S3_BUCKET": "chosen",
           "ATELIER_S3_ACCESS_KEY": "t", "ATELIER_S3_SECRET_KEY": "t-secret"}  # fmt: skip
    assert isinstance(open_blobs(tmp_path / "b", env), S3BlobStore)
    with pytest.raises(ValueError, match="file or s3"):
        open_blobs(tmp_path / "c", {"ATELIER_BLOB_STORE": "nfs"})
