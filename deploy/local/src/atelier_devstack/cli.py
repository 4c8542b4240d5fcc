"""``atelier``: the platform's own command line. ``atelier eval golden`` runs the studio's golden
set (``golden.py``) against a platform at ``--url``, or against one it starts for the run — on
the offline providers, or with the fault-injecting OpenAI-compatible server as primary
(``--primary fake``) — and writes the CSV and the summary line."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from atelier_devstack import golden
from atelier_devstack.fake_openai import FakeOpenAI, Faults
from atelier_devstack.stack import Stack

FAKE_MATRIX = Path(__file__).resolve().parents[2] / "providers.fake.toml"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="atelier", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("eval", help="evaluations").add_subparsers(dest="what", required=True)
    g = evaluate.add_parser("golden", help="the studio's golden set, as a CSV and a summary line")
    g.add_argument("--url", help="a running gateway (default: start a platform for the run)")
    g.add_argument("--cases", type=int, default=len(golden.CASES), help="how many of the cases")
    g.add_argument("--out", type=Path, default=Path("golden.csv"), help="the CSV to write")
    g.add_argument("--size", type=int, default=800, help="the photos' side in pixels")
    g.add_argument("--candidates", type=int, default=4)
    g.add_argument("--primary", choices=("offline", "fake"), default="offline")
    g.add_argument("--rate-429", type=float, default=0.3, help="with --primary fake")
    g.add_argument("--rate-5xx", type=float, default=0.1, help="with --primary fake")
    g.add_argument("--max-p95-s", type=float, help="exit 1 if the P95 first-image latency is higher")
    g.add_argument("--max-failures", type=float, help="exit 1 if the failure rate is higher")
    g.add_argument("--min-fallback", type=float, help="exit 1 if the fallback success rate is lower")
    return top


@contextlib.contextmanager
def platform(primary: str, rate_429: float, rate_5xx: float) -> Iterator[str]:
    """A platform of its own for the run (its state in a temporary directory), on the offline
    providers or behind the fake server."""
    tmp = Path(tempfile.mkdtemp(prefix="atelier-golden-"))
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {"ATELIER_PROVIDER_ROUTER_CONCURRENCY": "16"}
        if primary == "fake":
            faults = Faults(rate_429=rate_429, rate_500=rate_5xx, retry_after_s=1.0)
            fake = stack.enter_context(FakeOpenAI(faults))
            matrix = tmp / "providers.toml"
            matrix.write_text(FAKE_MATRIX.read_text().replace("http://127.0.0.1:9100/v1", fake.base_url))
            env["ATELIER_PROVIDERS_FILE"] = str(matrix)
        running = Stack.with_free_ports(tmp / "state", **env)
        try:
            running.start()
            yield running.gateway_url
        finally:
            running.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    cases = golden.CASES[: args.cases]
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(platform(args.primary, args.rate_429, args.rate_5xx))
        rows, summary = golden.run(url, cases, args.out, size=args.size, candidates=args.candidates)
    for row in rows:
        if not row.ok:
            print(f"  {row.case}: {row.error}", file=sys.stderr)
    print(f"{summary.line()}  (CSV: {args.out})")
    missed = [
        name
        for name, bad in (
            ("P95 first image", args.max_p95_s is not None and summary.p95_first_image_s > args.max_p95_s),
            ("failures", args.max_failures is not None and summary.failure_rate > args.max_failures),
            (
                "fallback success",
                args.min_fallback is not None and summary.fallback_success_rate < args.min_fallback,
            ),
        )
        if bad
    ]
    if missed:
        print(f"golden: missed {', '.join(missed)}", file=sys.stderr)
        sys.exit(1)
