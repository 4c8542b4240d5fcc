"""The blob store port and its filesystem implementation.

Blobs are content-addressed: the key is the SHA-256 of the bytes, so writing the same
content twice stores it once and a retried step reproduces the same reference. A shared
backend (S3-compatible or the JetStream object store) implements the same port.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from atelier_contracts.common import BlobRef

_CHUNK = 1 << 20


class BlobNotFound(KeyError):
    pass


class BlobStoreUnavailable(OSError):
    """The store could not be written or read (disk full, read-only, unmounted, unreachable):
    a wait, not a bad blob. Work that meets it waits and resumes (``storage_unavailable``)."""


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except (BlobNotFound, BlobStoreUnavailable):
        raise
    except FileNotFoundError as exc:
        if exc.filename and Path(exc.filename).parent.exists():
            raise  # a blob that is not there: for the caller to say (BlobNotFound)
        raise BlobStoreUnavailable(f"the blob store is unreachable: {exc}") from exc
    except OSError as exc:
        raise BlobStoreUnavailable(f"the blob store refused: {exc}") from exc


class BlobStore(Protocol):
    """Where services keep and find the bytes of artifacts."""

    def put_bytes(self, data: bytes, content_type: str) -> BlobRef: ...

    def put_file(self, path: Path, content_type: str) -> BlobRef: ...

    def open(self, key: str) -> BinaryIO: ...

    def read_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def keep(self, key: str) -> bool:
        """``exists``, and the blob is in use again: the clean-up spares it for its grace period."""
        ...

    def stage(self) -> Staging: ...

    def open_staged(self, key: str) -> BinaryIO: ...

    def discard_staged(self, key: str) -> None: ...


class Blobs(BlobStore, Protocol):
    """A store whose blobs this machine can have as files, and that the clean-up can sweep:
    ``FileBlobStore``, or ``S3BlobStore`` (``atelier_contracts.blobstore_s3``) with its local cache.
    ``open_blobs`` picks one from the environment."""

    def path_of(self, key: str) -> Path:
        """The blob as a file here (it may not exist); ``BlobNotFound`` for a malformed key."""
        ...

    def stored(self) -> Iterator[tuple[str, float]]: ...

    def delete(self, key: str) -> bool: ...

    def size_of(self, key: str) -> int: ...

    def leftovers(self, older_than: float) -> Iterator[Path]: ...


def open_blobs(blob_dir: Path, env: Mapping[str, str] | None = None) -> Blobs:
    """``ATELIER_BLOB_STORE``: ``file`` (the default: ``blob_dir`` on this machine) or ``s3``
    (the bucket every machine reaches, ``ATELIER_S3_*``, with ``blob_dir`` as its local cache)."""
    env = os.environ if env is None else env
    kind = env.get("ATELIER_BLOB_STORE", "file")
    if kind == "s3":
        from atelier_contracts.blobstore_s3 import S3BlobStore, S3Settings

        return S3BlobStore(S3Settings.from_env(env), blob_dir)
    if kind != "file":
        raise ValueError(f"ATELIER_BLOB_STORE must be file or s3, not {kind!r}")
    return FileBlobStore(blob_dir)


class Staging(Protocol):
    """A file being written into the staging area: bytes that are not a blob yet (an upload
    before it is sanitised). Not content-addressed, so nothing can reference it by accident."""

    key: str

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Done writing: the bytes are readable under ``key`` (``open_staged``)."""

    def abort(self) -> None:
        """Give up: nothing stays behind."""


_STAGED = re.compile(r"stg_[0-9a-f]{32}")


class _FileStaging:
    def __init__(self, path: Path, key: str) -> None:
        self.key = key
        self._path = path
        with _storage_errors():
            self._file = path.open("xb")

    def write(self, data: bytes) -> None:
        try:
            with _storage_errors():
                self._file.write(data)
        except BlobStoreUnavailable:
            self.abort()
            raise

    def close(self) -> None:
        with _storage_errors():
            self._file.close()

    def abort(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # what it could not write is dropped with the file
        finally:
            self._path.unlink(missing_ok=True)


class FileBlobStore:
    """Content-addressed blobs under ``root/ab/cd/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise BlobNotFound(key)
        return self.root / key[:2] / key[2:4] / key

    def put_bytes(self, data: bytes, content_type: str) -> BlobRef:
        key = hashlib.sha256(data).hexdigest()
        target = self.path_of(key)
        with _storage_errors():
            if not self.keep(key):
                with self._temp() as (f, tmp):
                    f.write(data)
                    f.close()
                    self._publish(tmp, target)
        return BlobRef(key=key, size=len(data), content_type=content_type)

    def keep(self, key: str) -> bool:
        """Whether the blob is here; if so, marked as just written, so the clean-up's grace period
        spares it (a blob written again, or handed out again by a cache, is in use once more)."""
        try:
            os.utime(self.path_of(key))
        except (FileNotFoundError, BlobNotFound):
            return False
        return True

    def put_file(self, path: Path, content_type: str) -> BlobRef:
        """Copy a file in by streaming it; the caller keeps ``path``."""
        digest = hashlib.sha256()
        size = 0
        with _storage_errors(), self._temp() as (out, tmp):
            with path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            out.close()
            key = digest.hexdigest()
            if not self.keep(key):
                self._publish(tmp, self.path_of(key))
        return BlobRef(key=key, size=size, content_type=content_type)

    @contextmanager
    def _temp(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A temporary file in the store, gone afterwards whatever happened (published or not)."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f, tmp
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, tmp: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        try:
            return path.open("rb")
        except FileNotFoundError as exc:
            if not self.root.is_dir():
                raise BlobStoreUnavailable(f"the blob store {self.root} is not there") from exc
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise BlobStoreUnavailable(f"the blob store refused a read: {exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        try:
            return self.path_of(key).exists()
        except BlobNotFound:
            return False

    def stage(self) -> Staging:
        key = f"stg_{uuid.uuid4().hex}"
        return _FileStaging(self._staged_path(key), key)

    def open_staged(self, key: str) -> BinaryIO:
        path = self._staged_path(key)
        try:
            with _storage_errors():
                return path.open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def discard_staged(self, key: str) -> None:
        self._staged_path(key).unlink(missing_ok=True)

    def _staged_path(self, key: str) -> Path:
        if not _STAGED.fullmatch(key):
            raise BlobNotFound(key)
        return self.root / "tmp" / key

    def leftovers(self, older_than: float) -> Iterator[Path]:
        """Temporary and staged files last written before ``older_than`` (epoch seconds): what a
        writer that died mid-write left behind."""
        for path in (self.root / "tmp").iterdir():
            try:
                if path.stat().st_mtime < older_than:
                    yield path
            except FileNotFoundError:
                continue

    def stored(self) -> Iterator[tuple[str, float]]:
        """Every blob's key and the time it was last written (epoch seconds)."""
        for path in self.root.glob("??/??/*"):
            if len(path.name) == 64:
                try:
                    yield path.name, path.stat().st_mtime
                except FileNotFoundError:  # released meanwhile (by another replica's clean-up)
                    continue

    def size_of(self, key: str) -> int:
        return self.path_of(key).stat().st_size

    def delete(self, key: str) -> bool:
        try:
            self.path_of(key).unlink()
        except FileNotFoundError:
            return False
        return True


_EXTENSIONS = {
    "text/markdown": ".md",
    "text/plain": ".txt",
    "application/json": ".json",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/jpeg": ".jpg",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "video/mp4": ".mp4",
    "application/zip": ".zip",
    "application/x-subrip": ".srt",
}


def extension_for(content_type: str) -> str:
    """The file extension users expect for a content type (``.bin`` when unknown)."""
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")
