"""Exports expire on a schedule and take their files with them; uploads and live jobs keep theirs."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa

from atelier_contracts import ids
from atelier_contracts.commands import SubmitJob
from atelier_contracts.common import Artifact
from atelier_contracts.readmodel import make_engine, uploads
from atelier_contracts.uploads import Ingested
from atelier_devstack.natsserver import NatsServer
from tests.hostile_uploads import image
from tests.integration.harness import Platform, platform
from tests.support import eventually

pytestmark = pytest.mark.integration


async def uploaded(p: Platform, database_url: str) -> tuple[str, Artifact]:
    """An upload as the gateway records it once media made it safe."""
    original = p.blobs.put_bytes(image("PNG", (1600, 1200)), "image/png")
    thumb = p.blobs.put_bytes(image("WEBP", (256, 192)), "image/webp")
    info = Ingested(kind="image", original=original, thumbnail=thumb, format="png", source_type="image/png")
    upload_id = ids.derived_id("upl", "t1", original.key)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(uploads).values(
                    id=upload_id,
                    tenant="t1",
                    filename="chair.png",
                    blob_key=original.key,
                    thumbnail_key=thumb.key,
                    info=msgspec.json.encode(info).decode(),
                    created_at=datetime.now(UTC),
                )
            )
    finally:
        await engine.dispose()
    return upload_id, Artifact(name="original", kind="image", blob=original)


async def test_an_export_expires_with_its_variants_and_the_upload_stays(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    # A grace period as in production, only shorter: the upload's files are written before its row
    # exists, and a sweep between the two (every 0.2 s, under load) released them with none.
    settings = {"export_ttl_s": 0.0, "retention_every_s": 0.2, "blob_grace_s": 3.0}
    async with platform(nats_server.url, database_url, tmp_path, **settings) as p:
        p.pool("media")
        upload_id, original = await uploaded(p, database_url)
        leftover = p.blobs.root / "tmp" / "stg_0123456789abcdef0123456789abcdef"
        leftover.write_bytes(b"an upload a gateway died writing")
        os.utime(leftover, (time.time() - 60, time.time() - 60))

        job_id = ids.new_job_id()
        job_input = {
            "upload": upload_id,
            "presets": ["web-1080", "market-1500"],
            "attached": {upload_id: msgspec.to_builtins(original)},
        }
        outcome = await p.send(job_id, SubmitJob(kind="export", title="chair", input=job_input))
        assert outcome.accepted, outcome
        done = await p.wait_status(job_id, "succeeded")
        variants = [a.blob.key for s in done.steps.values() if s.name != "source" for a in s.outputs]
        assert len(variants) == 2
        assert all(key != original.blob.key for key in variants)

        async def released() -> bool:
            snap = await p.snapshot(job_id)
            gone = not any(p.blobs.exists(key) for key in variants)
            return bool(snap and snap.deleted and gone)

        await eventually(released, within=30)
        assert p.blobs.exists(original.blob.key), "the upload's files are kept"
        assert not leftover.exists(), "what a crashed writer left in staging is cleaned up"
