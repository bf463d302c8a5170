"""``scripts/soak``: arguments, the run, the verdict (exit 0: every property held; 1: one broke;
2: the soak could not be set up)."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from sidecar.endpoints.secrets import generate_key

from . import bulk, disconnect, outage
from .context import Context
from .embeddings import EmbeddingsServer
from .report import Report, heading
from .stack import Elasticsearch, SetupError, log

PHASES = ("bulk-plain", "bulk-semantic", "outage", "disconnect")

# (full run, --quick)
DEFAULTS = {
    "bulk_mb": (500.0, 32.0),
    "clients": (6, 2),
    "warm_s": (15.0, 2.0),
    "down_s": (30.0, 3.0),
    "tail_s": (15.0, 2.0),
    # At most the batching queue's default capacity (10000 inputs): a larger request is refused whole.
    "disconnect_inputs": (8_000, 1_500),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Reliability soak of the sidecar against a real Elasticsearch: large bulks with "
                    "bounded memory, Elasticsearch down/up under traffic, client disconnects. Exits 1 "
                    "when a property breaks, printing what it measured.")
    p.add_argument("--quick", action="store_true", help="the same checks at a small scale (about a minute)")
    p.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases ({', '.join(PHASES)})")
    p.add_argument("--es-url", help="use this Elasticsearch (never stopped; the outage then uses the relay)")
    p.add_argument("--es-port", type=int, default=int(os.environ.get("SOAK_ES_PORT", "9263")),
                   help="port of the Elasticsearch started with scripts/es (default 9263)")
    p.add_argument("--es-heap", default=os.environ.get("ES_HEAP", "1g"))
    p.add_argument("--outage", choices=("auto", "es", "relay"), default="auto",
                   help="relay: cut a TCP relay between the sidecar and the node; es: scripts/es stop and "
                        "start (the node comes back empty); auto (default): both in a full run on a node "
                        "this script started, the relay otherwise")
    p.add_argument("--bulk-mb", type=float, help="size of each large bulk body (500; --quick 32)")
    p.add_argument("--doc-kb", type=float, default=10.0, help="size of each bulk document (10)")
    p.add_argument("--max-rss-mb", type=float, default=400.0, help="bound on the sidecar's VmHWM in the bulks")
    p.add_argument("--max-growth-mb", type=float, default=300.0,
                   help="bound on the VmHWM growth during one bulk (300: below the full run's body size)")
    p.add_argument("--bulk-timeout-s", type=float, default=3600.0)
    p.add_argument("--clients", type=int, help="concurrent clients per request kind in the outage (6; --quick 2)")
    p.add_argument("--warm-s", type=float, help="traffic before Elasticsearch goes away (15; --quick 2)")
    p.add_argument("--down-s", type=float, help="how long Elasticsearch stays away (30; --quick 3)")
    p.add_argument("--tail-s", type=float, help="traffic after recovery (15; --quick 2)")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait before counting sockets after the traffic")
    p.add_argument("--request-bound-s", type=float, default=30.0, help="longest acceptable answer in the outage")
    p.add_argument("--recovery-bound-s", type=float, default=30.0,
                   help="longest acceptable time to succeed again once Elasticsearch is back")
    p.add_argument("--max-outage-growth-mb", type=float, default=100.0)
    p.add_argument("--disconnect-inputs", type=int, help="inputs of the abandoned requests (8000; --quick 1500)")
    p.add_argument("--disconnect-after-items", type=int, default=64,
                   help="drop the connection once the model has run this many of the request's items")
    p.add_argument("--disconnect-bulk-after-items", type=int, default=600,
                   help="drop the bulk once the model has run this many of its items (past the first window)")
    p.add_argument("--disconnect-start-s", type=float, default=120.0)
    p.add_argument("--disconnect-bound-s", type=float, default=10.0,
                   help="inference must stop this long after the drop")
    p.add_argument("--workdir", help="where logs go (default: a new temporary directory)")
    p.add_argument("--json", help="also write the measurements and verdicts to this file")
    p.add_argument("--keep", action="store_true", help="keep the indices and endpoints created")
    args = p.parse_args(argv)
    for key, (full, quick) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.phases = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in args.phases if x not in PHASES]
    if unknown:
        p.error(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    return args


async def _run(args: argparse.Namespace, report: Report) -> None:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    es = Elasticsearch(args.es_url, args.es_port, args.es_heap)
    embeddings = EmbeddingsServer()
    loop = asyncio.get_running_loop()
    try:
        es_url = await loop.run_in_executor(None, es.start)
        await embeddings.start()
        log(f"Elasticsearch {es_url}, logs in {workdir}")
        env = {"SIDECAR_SECRETS_KEY": generate_key(), "SIDECAR_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            ctx = Context(args=args, es=es, workdir=workdir, embeddings=embeddings, sidecar_env=env,
                          session=session, report=report, prefix=f"soak-{uuid.uuid4().hex[:8]}")
            try:
                for phase in args.phases:
                    heading(phase)
                    started = time.monotonic()
                    if phase == "bulk-plain":
                        await bulk.run(ctx, "plain")
                    elif phase == "bulk-semantic":
                        await bulk.run(ctx, "semantic")
                    elif phase == "outage":
                        for mode in outage.modes(ctx):
                            await outage.run(ctx, mode)
                    elif phase == "disconnect":
                        await disconnect.run(ctx)
                    log(f"{phase} took {time.monotonic() - started:.0f}s")
            finally:
                await ctx.cleanup()
    finally:
        await embeddings.close()
        await loop.run_in_executor(None, es.cleanup)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    started = time.monotonic()
    print(f"soak: {'quick' if args.quick else 'full'} run of {', '.join(args.phases)}", flush=True)
    try:
        asyncio.run(_run(args, report))
    except SetupError as exc:
        print(f"\nsoak: could not run: {exc}", flush=True)
        if args.json:
            report.write_json(args.json)
        return 2
    except KeyboardInterrupt:
        print("\nsoak: interrupted", flush=True)
        return 130
    print(f"\n{report.summary()} ({time.monotonic() - started:.0f}s)", flush=True)
    if args.json:
        report.write_json(args.json)
    return 0 if report.checks and not report.failed else 1
