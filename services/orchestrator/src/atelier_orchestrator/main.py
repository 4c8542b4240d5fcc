"""``atelier-orchestrator``: run the service, migrate the read models, or rebuild them from the log."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from importlib.metadata import version

from atelier_contracts.readmodel import dump, make_engine
from atelier_contracts.runtime import logs
from atelier_contracts.runtime.nats import close_quietly, connect, ready_check
from atelier_contracts.runtime.ops import serve_ops
from atelier_contracts.runtime.service import install_stop_signals, run_until_stopped
from atelier_orchestrator.adapters.migrate import upgrade
from atelier_orchestrator.adapters.replay import rebuild
from atelier_orchestrator.bootstrap import bootstrap
from atelier_orchestrator.config import Settings

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


async def rebuild_read_models(settings: Settings, target_url: str, verify: bool) -> int:
    """Rebuild into ``target_url``; with ``verify``, compare against the live read models."""
    nc = await connect(settings.nats_url, name="atelier-orchestrator-rebuild")
    target = make_engine(target_url)
    try:
        commits = await rebuild(nc.jetstream(), target)
        print(json.dumps({"rebuilt_commits": commits, "database": target_url}))
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atelier-orchestrator")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("run", help="run the service (the default)")
    sub.add_parser("migrate", help="bring the read-model database to the latest schema")
    rb = sub.add_parser("rebuild", help="rebuild read models from the job event log")
    rb.add_argument("--into", help="database URL to rebuild into (default: the live one, in place)")
    rb.add_argument("--verify", action="store_true", help="compare the rebuilt models with the live ones")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logs.setup("orchestrator", settings.log_level)
    if args.cmd == "migrate":
        upgrade(settings.database_url)
    elif args.cmd == "rebuild":
        target = args.into or settings.database_url
        upgrade(target)
        sys.exit(asyncio.run(rebuild_read_models(settings, target, args.verify)))
    else:
        asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
