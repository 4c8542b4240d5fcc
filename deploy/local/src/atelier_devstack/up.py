"""``atelier-up``: start the whole platform on this machine and keep it running until Ctrl-C.

State (NATS store, SQLite file, blobs, logs) lives in ``ATELIER_STATE_DIR`` (default ``.state``),
so a second start finds the previous jobs. A service or nats-server that dies is restarted.
Where NATS and the database are is written to ``.state/stack.env``, so that commands run from
the checkout (``atelier-orchestrator rebuild``) find them without an environment.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from atelier_devstack.stack import Stack


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> None:
    state = Path(os.environ.get("ATELIER_STATE_DIR", ".state")).resolve()
    ports = {
        "gateway": _port("ATELIER_HTTP_PORT", 8080),
        "orchestrator": _port("ATELIER_ORCHESTRATOR_OPS_PORT", 8081),
        "provider-router": _port("ATELIER_PROVIDER_ROUTER_OPS_PORT", 8082),
        "media": _port("ATELIER_MEDIA_OPS_PORT", 8083),
        "export": _port("ATELIER_EXPORT_OPS_PORT", 8084),
    }
    # 4222 is the conventional NATS port and often taken by a system server: use our own.
    stack = Stack(state, ports, _port("ATELIER_NATS_PORT", 4333))
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"Starting Atelier (state in {state}) ...", flush=True)
    try:
        stack.start()
    except Exception as exc:
        print(f"Atelier failed to start: {exc}", file=sys.stderr, flush=True)
        stack.stop()
        sys.exit(1)
    url = stack.gateway_url
    print(
        f"""
Atelier is running.
  API:      {url}            (docs: {url}/docs)
  NATS:     nats://127.0.0.1:{stack.nats_port}
  Logs:     {state}/logs/
Try a first job:
  curl -s -X POST {url}/v1/jobs -H 'content-type: application/json' \\
    -d '{{"kind": "story", "title": "The Lighthouse Cat",
         "input": {{"prompt": "a cat who keeps a lighthouse"}}}}'
  curl -s {url}/v1/jobs
Press Ctrl-C to stop.
""",
        flush=True,
    )
    while not stopping:
        for name in stack.supervise():
            log = "nats.log" if name == "nats-server" else f"{name}.log"
            print(f"{name} had exited; restarted it (log: {state}/logs/{log})", flush=True)
        time.sleep(0.5)
    print("Stopping Atelier ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
