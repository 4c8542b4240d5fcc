"""A job's bundle: a reproducible ZIP of its files with ``manifest.json`` first.

Entries carry fixed timestamps and attributes, so the same files and manifest always give the same
bytes, and checksums of bundles can be compared. Sources are streamed in chunks, never read whole.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from atelier_contracts.packages import MANIFEST_NAME, sanitize_arcname

CHUNK_SIZE = 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP entry can hold
# Formats that are compressed already: deflating them again costs time and saves nothing.
STORED_TYPES = frozenset(
    {
        "image/png",
        "image/webp",
        "image/jpeg",
        "image/gif",
        "image/avif",
        "video/mp4",
        "video/webm",
        "audio/mpeg",
        "audio/ogg",
        "audio/aac",
        "audio/mp4",
        "application/zip",
        "application/gzip",
    }
)


@dataclass(frozen=True)
class BundleEntry:
    """One file to bundle: its path inside the ZIP, where to read it, and its content type."""

    arcname: str
    source: Path
    content_type: str


def write_bundle(out: BinaryIO, entries: list[BundleEntry], manifest: dict[str, Any]) -> None:
    """Write a ZIP of ``entries`` to ``out``, with ``manifest`` as pretty, key-sorted JSON first.

    Every entry is checked before anything is written: arcnames are made relative and must not
    contain ``..``, repeat another entry (ignoring case, since many file systems do), or take the
    manifest's name; each source must be a regular file. Violations raise ``ValueError``.
    """
    names = [sanitize_arcname(e.arcname) for e in entries]
    _check_unique(names)
    for entry in entries:
        if not entry.source.is_file():
            raise ValueError(f"bundle source {entry.source} is not a readable file")
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(_info(MANIFEST_NAME, zipfile.ZIP_DEFLATED), manifest_bytes)
        for name, entry in zip(names, entries, strict=True):
            info = _info(name, compression_for(entry.content_type))
            # A known size lets zipfile choose ZIP64 up front for files over 4 GiB.
            info.file_size = entry.source.stat().st_size
            with entry.source.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)


def compression_for(content_type: str) -> int:
    """``ZIP_STORED`` for already-compressed media, ``ZIP_DEFLATED`` for everything else."""
    base = content_type.split(";", 1)[0].strip().lower()
    return zipfile.ZIP_STORED if base in STORED_TYPES else zipfile.ZIP_DEFLATED


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name.casefold() == MANIFEST_NAME:
            raise ValueError(f"bundle entry name {name!r} is reserved for the manifest")
        if name.casefold() in seen:
            raise ValueError(f"bundle entry name {name!r} is used twice (names are compared ignoring case)")
        seen.add(name.casefold())


def _info(name: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = compression
    info.create_system = 3  # Unix on every platform, so the bytes do not depend on where we run
    info.external_attr = 0o644 << 16
    return info
