"""``atelier-orchestrator``: run the service, migrate or rebuild the read models, release blobs,
list and re-drive dead letters."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.blobstore import open_blobs
from atelier_contracts.envelope import commit_decoder
from atelier_contracts.readmodel import dump, make_engine
from atelier_contracts.runtime import deadletter, logs, service, telemetry
from atelier_contracts.runtime.nats import close_quietly, connect, ready_check
from atelier_contracts.runtime.ops import serve_ops
from atelier_contracts.runtime.service import install_stop_signals, run_until_stopped
from atelier_contracts.subjects import JOBS_STREAM, LOG_STREAMS, SCHEDULES_STREAM, SESSIONS_STREAM
from atelier_orchestrator.adapters.blobgc import release_blobs
from atelier_orchestrator.adapters.documents import DocumentProjection
from atelier_orchestrator.adapters.migrate import upgrade
from atelier_orchestrator.adapters.projection import Applied, SqlProjection
from atelier_orchestrator.adapters.replay import rebuild, rebuild_documents
from atelier_orchestrator.bootstrap import bootstrap, schedule_projection, session_projection
from atelier_orchestrator.config import Settings
from atelier_orchestrator.entrypoints import subscribers as subs

log = logging.getLogger("atelier_orchestrator")


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    orch = await bootstrap(settings)
    checks = {"nats": ready_check(orch.nc), "sql": orch.check_sql}

    async def ops(stop: asyncio.Event) -> None:
        await serve_ops(
            "orchestrator",
            version("atelier-orchestrator"),
            settings.ops_host,
            settings.ops_port,
            checks,
            stop,
        )

    log.info("orchestrator started", extra={"nats": settings.nats_url, "ops_port": settings.ops_port})
    try:
        await run_until_stopped(stop, ops, *orch.parts())
    finally:
        await orch.close()
    log.info("orchestrator stopped")


COMMAND_CONNECT_S = 5.0


async def connect_for_command(settings: Settings, command: str) -> Client:
    """A command's connection: a NATS that does not answer within seconds ends it with the reason."""
    try:
        return await connect(settings.nats_url, f"atelier-orchestrator-{command}", COMMAND_CONNECT_S)
    except TimeoutError:
        print(
            f"atelier-orchestrator {command}: no NATS at {settings.nats_url} within {COMMAND_CONNECT_S:g}s "
            "(set ATELIER_NATS_URL, or start the platform with `make up`)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


async def rebuild_read_models(settings: Settings, target_url: str, verify: bool) -> int:
    """Rebuild into ``target_url``; with ``verify``, compare against the live read models."""
    nc = await connect_for_command(settings, "rebuild")
    target = make_engine(target_url)
    try:
        commits = await rebuild(nc, target)
        sessions, schedules = session_projection(target), schedule_projection(target)
        try:
            session_commits = await rebuild_documents(
                nc, SESSIONS_STREAM, "atelier.session.>", subs.session_commits, sessions
            )
            schedule_commits = await rebuild_documents(
                nc, SCHEDULES_STREAM, "atelier.schedule.>", subs.schedule_commits, schedules
            )
        finally:
            sessions.close()
            schedules.close()
        rebuilt = {
            "rebuilt_commits": commits,
            "session_commits": session_commits,
            "schedule_commits": schedule_commits,
        }
        print(json.dumps({**rebuilt, "database": target_url}))
        if not verify:
            return 0
        live = make_engine(settings.database_url)
        try:
            async with live.connect() as a, target.connect() as b:
                left, right = await dump(a), await dump(b)
        finally:
            await live.dispose()
        diffs = {t: (len(left[t]), len(right[t])) for t in left if left[t] != right[t]}
        print(json.dumps({"equal": not diffs, "differences": diffs}))
        return 1 if diffs else 0
    finally:
        await target.dispose()
        await close_quietly(nc)


async def dead_letters(
    settings: Settings, consumer: str | None, seqs: set[int], do_redrive: bool, discard: bool = False
) -> int:
    """List the dead letters (one JSON line each, then a total); with ``do_redrive``, send them
    again: a command or report to where it came from, a commit of an event log re-applied from
    the log; with ``discard``, remove them (a message no redrive can mend)."""
    nc = await connect_for_command(settings, "dead-letters")
    engine = make_engine(settings.database_url) if do_redrive else None
    projection = LogProjections(engine) if engine is not None else None
    failed = 0
    try:
        letters = [d async for d in deadletter.dead_letters(nc, consumer) if not seqs or d.seq in seqs]
        for letter in sorted(letters, key=lambda d: (d.stream, d.origin_seq)):
            row: dict[str, object] = {
                "seq": letter.seq, "consumer": letter.consumer, "subject": letter.subject,
                "error": letter.error, "deliveries": letter.deliveries, "size": letter.size,
                "truncated": letter.truncated,
                "buried_at": letter.buried_at.isoformat() if letter.buried_at else None,
            }  # fmt: skip
            if discard:
                await deadletter.forget(nc, letter)
                row["discarded"] = True
            elif projection is not None:
                try:
                    row["redriven"] = await _redrive(nc, projection, letter)
                except deadletter.NotRedrivable as exc:
                    row["redriven"], row["why_not"] = False, str(exc)
                failed += not row["redriven"]
            print(json.dumps(row))
        print(json.dumps({"dead_letters": len(letters), "not_redriven": failed}))
    finally:
        if projection is not None:
            projection.close()
        if engine is not None:
            await engine.dispose()
        await close_quietly(nc)
    return 1 if failed else 0


class LogProjections:
    """Each event log's projection, to re-apply a dead-lettered commit read from its log."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.jobs = SqlProjection(engine)
        self.documents: dict[str, tuple[DocumentProjection[Any, Any], msgspec.json.Decoder[Any]]] = {
            SESSIONS_STREAM: (session_projection(engine), subs.session_commits),
            SCHEDULES_STREAM: (schedule_projection(engine), subs.schedule_commits),
        }

    async def reapply(self, stream: str, data: bytes, seq: int) -> Applied:
        if stream == JOBS_STREAM:
            [outcome] = await self.jobs.apply_batch([(commit_decoder.decode(data), seq)])
            return outcome
        documents, decoder = self.documents[stream]
        [outcome] = await documents.apply_batch([(decoder.decode(data), seq)])
        return outcome

    def close(self) -> None:
        self.jobs.close()
        for documents, _ in self.documents.values():
            documents.close()


async def _redrive(nc: Client, projections: LogProjections, letter: deadletter.DeadLetter) -> bool:
    if letter.stream not in LOG_STREAMS:
        await deadletter.redrive(nc, letter)
        return True
    raw = await nc.jetstream().get_msg(letter.stream, letter.origin_seq)
    assert raw.data is not None
    if await projections.reapply(letter.stream, raw.data, letter.origin_seq) is Applied.OUT_OF_ORDER:
        raise deadletter.NotRedrivable(
            f"commit {letter.origin_seq} still waits for an earlier one of its log"
        )
    await deadletter.forget(nc, letter)
    return True


async def gc_blobs(settings: Settings, blob_dir: str, grace_s: float, dry_run: bool) -> None:
    engine = make_engine(settings.database_url)
    try:
        report = await release_blobs(engine, open_blobs(Path(blob_dir)), grace_s, dry_run)
    finally:
        await engine.dispose()
    print(json.dumps(dataclasses.asdict(report)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atelier-orchestrator")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("run", help="run the service (the default)")
    sub.add_parser("migrate", help="bring the read-model database to the latest schema")
    rb = sub.add_parser("rebuild", help="rebuild read models from the job event log")
    rb.add_argument("--into", help="database URL to rebuild into (default: the live one, in place)")
    rb.add_argument("--verify", action="store_true", help="compare the rebuilt models with the live ones")
    gc = sub.add_parser("gc-blobs", help="release blobs that no live job refers to")
    gc.add_argument("--blob-dir", default=os.environ.get("ATELIER_BLOB_DIR", ".state/blobs"))
    gc.add_argument("--grace-s", type=float, default=86400.0, help="spare blobs younger than this")
    gc.add_argument("--dry-run", action="store_true", help="count, release nothing")
    dl = sub.add_parser(
        "dead-letters", help="list the messages consumers gave up on; --redrive sends them again"
    )
    dl.add_argument("--consumer", help="only this consumer's (e.g. orchestrator-commands)")
    dl.add_argument("--seq", type=int, action="append", default=[], help="only this dead letter (repeatable)")
    what = dl.add_mutually_exclusive_group()
    what.add_argument("--redrive", action="store_true", help="send them again, then remove them")
    what.add_argument("--discard", action="store_true", help="remove them (what no redrive can mend)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logs.setup("orchestrator", settings.log_level)
    telemetry.setup("orchestrator")
    if args.cmd == "migrate":
        upgrade(settings.database_url)
    elif args.cmd == "gc-blobs":
        service.run(gc_blobs(settings, args.blob_dir, args.grace_s, args.dry_run))
    elif args.cmd == "dead-letters":
        found = dead_letters(settings, args.consumer, set(args.seq), args.redrive, args.discard)
        sys.exit(service.run(found))
    elif args.cmd == "rebuild":
        target = args.into or settings.database_url
        upgrade(target)
        sys.exit(service.run(rebuild_read_models(settings, target, args.verify)))
    else:
        service.run(serve(settings))


if __name__ == "__main__":
    main()
