"""``atelier-fake-openai``: the fake OpenAI-compatible server on a port of your choice, with the
faults you ask for, until Ctrl-C — to watch failover, breakers and budgets on a running platform.

    atelier-fake-openai --port 9100 --rate-429 0.3 --retry-after-s 2 --rate-500 0.1

Each field of :class:`atelier_devstack.fake_openai.Faults` is a flag; ``POST /_faults`` changes
them while it runs and ``GET /_stats`` counts what it answered.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from atelier_devstack.fake_openai import FakeOpenAI, Faults
from atelier_devstack.natsserver import free_port


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="atelier-fake-openai", description=__doc__.split("\n\n")[0])
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--port", type=int, default=9100)
    for field in dataclasses.fields(Faults):
        if field.name == "models":
            cli.add_argument("--models", nargs="*", default=[], help="answer 404 for any other model")
            continue
        flag = f"--{field.name.replace('_', '-')}"
        if str(field.type) == "bool":
            cli.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
            continue
        kind = {"int": int, "float": float, "str": str}[str(field.type)]
        cli.add_argument(flag, type=kind, default=field.default)
    return cli


def main(argv: list[str] | None = None) -> None:
    args = vars(parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    try:
        faults = Faults(**args)
    except ValueError as exc:
        raise SystemExit(f"atelier-fake-openai: {exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeOpenAI(faults, host=host, port=port) as fake:
        print(f"fake OpenAI-compatible server at {fake.base_url} (stats: {fake.url}/_stats); Ctrl-C stops it")
        stop.wait()


if __name__ == "__main__":
    main()


@contextmanager
def child_process(*flags: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """This command in a child process on a free port, with ``flags``: yields its base URL once it
    listens (it prints it then), and the process; Ctrl-C (SIGINT) stops it when the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "atelier_devstack.fake_openai_cli", "--port", str(port), *flags]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            if url not in child.stdout.readline():
                raise RuntimeError(f"the fake OpenAI server did not start on {url}")
            yield url, child
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
