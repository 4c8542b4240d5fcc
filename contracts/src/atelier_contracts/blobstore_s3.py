"""The blob store every machine can reach: an S3-compatible bucket (MinIO, Ceph RGW, AWS S3).

The same port as ``FileBlobStore``, and the same content addressing: an object's name is its
SHA-256, so it never changes once written. Hence the local read-through cache: ``path_of``
downloads a blob once into this machine's ``cache_dir`` and hands out the file there, which every
consumer that needs a path (downloads, PyAV, ZIPs) keeps using unchanged. Staged uploads live
under ``staging/`` in the bucket, so the gateway on one machine and the media service on another
see the same bytes. ``docs/media.md`` says why S3 and not the JetStream object store.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError

from atelier_contracts.blobstore import _STAGED, BlobNotFound, BlobStoreUnavailable, Staging
from atelier_contracts.common import BlobRef

_PART = 16 << 20
STAGING = "staging/"


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    """``host:port`` (``ATELIER_S3_ENDPOINT``)."""
    bucket: str = "atelier-blobs"
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    secure: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        return cls(
            endpoint=env["ATELIER_S3_ENDPOINT"],
            bucket=env.get("ATELIER_S3_BUCKET", cls.bucket),
            access_key=env.get("ATELIER_S3_ACCESS_KEY", ""),
            secret_key=env.get("ATELIER_S3_SECRET_KEY", ""),
            region=env.get("ATELIER_S3_REGION", cls.region),
            secure=env.get("ATELIER_S3_SECURE", "") == "1",
        )


@contextmanager
def _s3_errors(key: str = "") -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            raise BlobNotFound(key) from exc
        raise BlobStoreUnavailable(f"the blob store answered {exc.code}: {exc.message}") from exc
    except (MinioException, HTTPError, OSError) as exc:
        if isinstance(exc, BlobNotFound | BlobStoreUnavailable):
            raise
        raise BlobStoreUnavailable(f"the blob store is unreachable: {exc}") from exc


class _S3Staging:
    """Written to a local temporary file, sent to ``staging/<key>`` when closed."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self.key = key
        self._store = store
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close() or abort()

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def close(self) -> None:
        try:
            size = self._file.tell()
            self._file.seek(0)
            with _s3_errors(self.key):
                self._store.client.put_object(
                    self._store.bucket, STAGING + self.key, self._file, size, part_size=_PART
                )
        finally:
            self._file.close()

    def abort(self) -> None:
        self._file.close()


class S3BlobStore:
    def __init__(self, settings: S3Settings, cache_dir: Path) -> None:
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key or None,
            secret_key=settings.secret_key or None,
            region=settings.region,
            secure=settings.secure,
        )
        self.bucket = settings.bucket
        self.cache = cache_dir
        (cache_dir / "tmp").mkdir(parents=True, exist_ok=True)
        with _s3_errors():
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # another service made it between the two calls
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    # --- the port -------------------------------------------------------------------------

    def path_of(self, key: str) -> Path:
        """The blob as a file on this machine: fetched once into the cache (it never changes)."""
        local = self._cached(key)
        if not local.exists():
            fd, name = tempfile.mkstemp(dir=self.cache / "tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    self._download(key, key, out)
                local.parent.mkdir(parents=True, exist_ok=True)
                os.replace(name, local)
            except BlobNotFound:
                return local  # not there: a path that does not exist, as the filesystem store's
            finally:
                Path(name).unlink(missing_ok=True)
        return local

    def put_bytes(self, data: bytes, content_type: str) -> BlobRef:
        key = hashlib.sha256(data).hexdigest()
        if not self.keep(key):
            with _s3_errors(key):
                self.client.put_object(
                    self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
                )
        return BlobRef(key=key, size=len(data), content_type=content_type)

    def put_file(self, path: Path, content_type: str) -> BlobRef:
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        key = digest.hexdigest()
        if not self.keep(key):
            with _s3_errors(key), path.open("rb") as src:
                self.client.put_object(
                    self.bucket, key, src, size, content_type=content_type, part_size=_PART
                )
        return BlobRef(key=key, size=size, content_type=content_type)

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        if not path.exists():
            raise BlobNotFound(key)
        return path.open("rb")

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        try:
            self._valid(key)
        except BlobNotFound:
            return False
        with _s3_errors(key):
            try:
                self.client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return False
                raise
        return True

    def keep(self, key: str) -> bool:
        """Here, and marked as just written: a copy onto itself renews its last-modified time, on
        the server, without moving its bytes."""
        if not self.exists(key):
            return False
        with _s3_errors(key):
            self.client.copy_object(
                self.bucket,
                key,
                CopySource(self.bucket, key),
                metadata={"atelier-kept": "1"},
                metadata_directive=REPLACE,
            )
        return True

    def stage(self) -> Staging:
        return _S3Staging(self, f"stg_{uuid.uuid4().hex}")

    def open_staged(self, key: str) -> BinaryIO:
        if not _STAGED.fullmatch(key):
            raise BlobNotFound(key)
        out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
        try:
            self._download(STAGING + key, key, out)
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return out

    def discard_staged(self, key: str) -> None:
        if _STAGED.fullmatch(key):
            with _s3_errors(key):
                self.client.remove_object(self.bucket, STAGING + key)

    # --- the clean-up ---------------------------------------------------------------------

    def stored(self) -> Iterator[tuple[str, float]]:
        with _s3_errors():
            for obj in self.client.list_objects(self.bucket):
                name = obj.object_name or ""
                if len(name) == 64 and obj.last_modified is not None:
                    yield name, obj.last_modified.timestamp()

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        with _s3_errors(key):
            self.client.remove_object(self.bucket, key)
        self._cached(key).unlink(missing_ok=True)
        return existed

    def size_of(self, key: str) -> int:
        with _s3_errors(key):
            return int(self.client.stat_object(self.bucket, key).size or 0)

    def leftovers(self, older_than: float) -> Iterator[Path]:
        """Local temporary files older than ``older_than``; staged objects that old are removed
        here too (they are in the bucket, not on this machine)."""
        cutoff = datetime.fromtimestamp(older_than, UTC)
        with _s3_errors():
            for obj in self.client.list_objects(self.bucket, prefix=STAGING):
                if obj.last_modified is not None and obj.last_modified < cutoff and obj.object_name:
                    self.client.remove_object(self.bucket, obj.object_name)
        for path in (self.cache / "tmp").iterdir():
            try:
                if path.stat().st_mtime < older_than:
                    yield path
            except FileNotFoundError:
                continue

    def _download(self, name: str, key: str, out: BinaryIO) -> None:
        """The object ``name`` into ``out``, 1 MiB at a time; ``BlobNotFound(key)`` if absent."""
        with _s3_errors(key):
            response = self.client.get_object(self.bucket, name)
            try:
                for chunk in response.stream(1 << 20):
                    out.write(chunk)
            finally:
                response.close()
                response.release_conn()

    def _valid(self, key: str) -> str:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise BlobNotFound(key)
        return key

    def _cached(self, key: str) -> Path:
        self._valid(key)
        return self.cache / key[:2] / key[2:4] / key
