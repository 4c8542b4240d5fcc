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
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from atelier_contracts.common import BlobRef

_CHUNK = 1 << 20


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    """Where services keep and find the bytes of artifacts."""

    def put_bytes(self, data: bytes, content_type: str) -> BlobRef: ...

    def put_file(self, path: Path, content_type: str) -> BlobRef: ...

    def open(self, key: str) -> BinaryIO: ...

    def read_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def stage(self) -> Staging: ...

    def open_staged(self, key: str) -> BinaryIO: ...

    def discard_staged(self, key: str) -> None: ...


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
        self._file = path.open("xb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def close(self) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()
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
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._publish(Path(tmp), target)
        return BlobRef(key=key, size=len(data), content_type=content_type)

    def put_file(self, path: Path, content_type: str) -> BlobRef:
        """Copy a file in by streaming it; the caller keeps ``path``."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        key = digest.hexdigest()
        target = self.path_of(key)
        if target.exists():
            os.unlink(tmp)
        else:
            self._publish(Path(tmp), target)
        return BlobRef(key=key, size=size, content_type=content_type)

    def _publish(self, tmp: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path_of(key).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

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
        try:
            return self._staged_path(key).open("rb")
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
                yield path.name, path.stat().st_mtime

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
    "video/mp4": ".mp4",
    "application/zip": ".zip",
}


def extension_for(content_type: str) -> str:
    """The file extension users expect for a content type (``.bin`` when unknown)."""
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")
