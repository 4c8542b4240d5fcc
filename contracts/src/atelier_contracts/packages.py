"""Packages: a ZIP of a job's files with a manifest, and the rules every ZIP Atelier writes keeps.

The gateway streams a job's package as it is built (``GET /v1/jobs/{id}/package``), naming
members with ``member_name``; the export service writes a story's bundle, with flat names of its
own. Both check every name with ``sanitize_arcname`` and put ``manifest.json`` first, listing
each file with its SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MANIFEST_NAME = "manifest.json"
PACKAGE_SCHEMA = "atelier.package/1"


def sanitize_arcname(name: str) -> str:
    """A safe relative ZIP path: ``/`` separators, no leading ``/``, no ``.`` or empty parts.

    Raises ``ValueError`` for ``..`` parts, drive letters, control characters and empty names,
    which could write outside the folder a bundle is unpacked into or confuse unpacking tools.
    """
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise ValueError(f"entry name {name!r} is empty")
    if ".." in parts:
        raise ValueError(f"entry name {name!r} must not contain '..'")
    if parts[0].endswith(":"):
        raise ValueError(f"entry name {name!r} must not start with a drive")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ValueError(f"entry name {name!r} contains control characters")
    return "/".join(parts)


def member_name(step: str, name: str, extension: str) -> str:
    """``<step>/<name>.<ext>``: one folder per step, so two steps' ``out`` never collide. Parts a
    ZIP path cannot safely hold (separators, control characters, ``..``) become ``_``."""

    def part(text: str) -> str:
        clean = "".join("_" if ch in "/\\" or ord(ch) < 32 or ch == "\x7f" else ch for ch in text).strip()
        return "_" if clean in ("", ".", "..") else clean

    return sanitize_arcname(f"{part(step)}/{part(name)}.{extension.lstrip('.')}")


def manifest(job: Mapping[str, Any], files: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What ``manifest.json`` says: the job, and each file (path, step, name, kind, content type,
    size, sha256)."""
    return {"schema": PACKAGE_SCHEMA, **job, "files": list(files)}
