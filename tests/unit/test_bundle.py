"""Bundles: manifest first, contents intact, reproducible bytes, and safe entry names."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atelier_contracts.packages import sanitize_arcname
from atelier_export.domain.bundle import CHUNK_SIZE, BundleEntry, write_bundle

MANIFEST: dict[str, Any] = {
    "schema": "atelier.bundle/1",
    "job_id": "job-1",
    "title": "Pip's Moon",
    "files": [{"path": "story.md"}],
}


class Unseekable(io.RawIOBase):
    """A write-only stream, like an HTTP response body."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)


def make_entries(folder: Path) -> list[BundleEntry]:
    files = {
        "story.md": (b"# Pip's Moon\n\nOnce upon a time...\n" * 50, "text/markdown; charset=utf-8"),
        "art/cover.png": (bytes(range(256)) * 40, "image/png"),
        "speech.wav": (b"RIFF" + bytes(4000), "audio/wav"),
        "data.json": (b'{"a": 1}', "application/json"),
    }
    entries = []
    for name, (data, content_type) in files.items():
        source = folder / name.replace("/", "_")
        source.write_bytes(data)
        entries.append(BundleEntry(arcname=name, source=source, content_type=content_type))
    return entries


def bundle(entries: list[BundleEntry], manifest: dict[str, Any] = MANIFEST) -> bytes:
    out = io.BytesIO()
    write_bundle(out, entries, manifest)
    return out.getvalue()


def test_manifest_comes_first_then_entries_in_order(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle(make_entries(tmp_path)))) as zf:
        assert zf.namelist() == ["manifest.json", "story.md", "art/cover.png", "speech.wav", "data.json"]
        assert zf.testzip() is None


def test_manifest_is_pretty_sorted_json(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle(make_entries(tmp_path)))) as zf:
        text = zf.read("manifest.json").decode()

    assert json.loads(text) == MANIFEST
    assert text == json.dumps(MANIFEST, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_contents_round_trip(tmp_path: Path) -> None:
    entries = make_entries(tmp_path)
    with zipfile.ZipFile(io.BytesIO(bundle(entries))) as zf:
        for entry in entries:
            assert zf.read(entry.arcname) == entry.source.read_bytes()


def test_large_files_stream_through_in_chunks(tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(os.urandom(CHUNK_SIZE * 2 + 123))
    with zipfile.ZipFile(io.BytesIO(bundle([BundleEntry("big.wav", big, "audio/wav")]))) as zf:
        assert zf.read("big.wav") == big.read_bytes()


def test_compressed_media_is_stored_and_text_is_deflated(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle(make_entries(tmp_path)))) as zf:
        methods = {info.filename: info.compress_type for info in zf.infolist()}

    assert methods == {
        "manifest.json": zipfile.ZIP_DEFLATED,
        "story.md": zipfile.ZIP_DEFLATED,
        "art/cover.png": zipfile.ZIP_STORED,
        "speech.wav": zipfile.ZIP_DEFLATED,
        "data.json": zipfile.ZIP_DEFLATED,
    }


def test_same_inputs_give_identical_bytes_whatever_the_file_times(tmp_path: Path) -> None:
    entries = make_entries(tmp_path)
    first = bundle(entries)
    for entry in entries:
        os.utime(entry.source, (1_700_000_000, 1_700_000_000))

    assert bundle(entries) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_writes_to_unseekable_streams(tmp_path: Path) -> None:
    entries = make_entries(tmp_path)
    out = Unseekable()
    write_bundle(out, entries, MANIFEST)  # type: ignore[arg-type]

    with zipfile.ZipFile(io.BytesIO(bytes(out.buffer))) as zf:
        assert zf.read("story.md") == entries[0].source.read_bytes()


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b.txt", "..", "a\\..\\b.txt"])
def test_parent_references_are_rejected(tmp_path: Path, name: str) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    out = io.BytesIO()

    with pytest.raises(ValueError, match=r"\.\."):
        write_bundle(out, [BundleEntry(name, source, "text/plain")], MANIFEST)
    assert out.getvalue() == b""  # checked before anything was written


@pytest.mark.parametrize(
    ("first", "second"),
    [("story.md", "story.md"), ("Story.md", "story.MD"), ("a/./b.txt", "a/b.txt"), ("/x.txt", "x.txt")],
)
def test_duplicate_names_are_rejected(tmp_path: Path, first: str, second: str) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")

    with pytest.raises(ValueError, match="twice"):
        bundle([BundleEntry(first, source, "text/plain"), BundleEntry(second, source, "text/plain")])


def test_manifest_name_is_reserved(tmp_path: Path) -> None:
    source = tmp_path / "f.json"
    source.write_text("{}")

    with pytest.raises(ValueError, match="reserved"):
        bundle([BundleEntry("manifest.json", source, "application/json")])


def test_missing_source_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable file"):
        bundle([BundleEntry("gone.txt", tmp_path / "gone.txt", "text/plain")])


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("/abs/story.md", "abs/story.md"),
        ("a\\b.png", "a/b.png"),
        ("./x//y.txt", "x/y.txt"),
        ("ok.wav", "ok.wav"),
    ],
)
def test_names_are_made_relative(name: str, safe: str) -> None:
    assert sanitize_arcname(name) == safe


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("/", "empty"),
        ("./.", "empty"),
        ("C:/x.txt", "drive"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
    ],
)
def test_unusable_names_are_rejected(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        sanitize_arcname(name)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\:. \x01é")), max_size=24))
def test_sanitised_names_are_always_safe_and_stable(name: str) -> None:
    try:
        safe = sanitize_arcname(name)
    except ValueError:
        return
    parts = safe.split("/")

    assert not safe.startswith("/")
    assert "\\" not in safe
    assert all(part not in ("", ".", "..") for part in parts)
    assert not parts[0].endswith(":")
    assert sanitize_arcname(safe) == safe
