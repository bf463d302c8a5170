"""Load generators for the pass-through figure: ``wrk`` when it is installed (C, cheap on the
client side), else an aiohttp client with the same number of connections."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stats import latency_summary_ms, rnd


@dataclass
class Scenario:
    """Requests a round sends: ``bodies`` are rotated (one per request)."""

    name: str
    method: str
    path: str
    bodies: list[str]


def have_wrk() -> bool:
    """wrk is used when installed, unless ``BENCH_LOADGEN=aiohttp``."""
    import os

    return os.environ.get("BENCH_LOADGEN", "wrk") != "aiohttp" and shutil.which("wrk") is not None


_LUA = """
local bodies = {%s}
local i = 0
wrk.method = "%s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%s", nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write("BENCH_JSON ")
  io.write(string.format('{"requests": %%d, "seconds": %%f, "errors_status": %%d, "errors_connect": %%d, "errors_timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(base_url: str, scenario: Scenario, *, connections: int, duration_s: float,
            threads: int = 2) -> dict[str, Any]:
    script = _LUA % (", ".join(_lua_string(b) for b in scenario.bodies), scenario.method, scenario.path)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        proc = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
             "-s", path, base_url],
            capture_output=True, text=True, timeout=duration_s + 60,
        )
    finally:
        Path(path).unlink(missing_ok=True)
    match = re.search(r"BENCH_JSON (\{.*\})", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-800:]} {proc.stderr[-800:]}")
    data = json.loads(match.group(1))
    errors = data["errors_status"] + data["errors_connect"] + data["errors_timeout"]
    return {
        "tool": "wrk",
        "requests": data["requests"],
        "errors": errors,
        "req_per_s": rnd(data["requests"] / data["seconds"], 1),
        "p50_ms": rnd(data["p50_us"] / 1000), "p90_ms": rnd(data["p90_us"] / 1000),
        "p99_ms": rnd(data["p99_us"] / 1000), "mean_ms": rnd(data["mean_us"] / 1000),
    }


async def _aiohttp_round(base_url: str, scenario: Scenario, connections: int, duration_s: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    bodies = [b.encode() for b in scenario.bodies]
    deadline = time.perf_counter() + duration_s
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += 1
                t0 = time.perf_counter()
                async with session.request(scenario.method, base_url + scenario.path, data=body,
                                           headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        seconds = time.perf_counter() - t0
    summary = latency_summary_ms(latencies)
    return {"tool": "aiohttp", "requests": len(latencies), "errors": errors,
            "req_per_s": rnd(len(latencies) / seconds, 1), **{k: v for k, v in summary.items() if k != "n"}}


def run_round(base_url: str, scenario: Scenario, *, connections: int, duration_s: float) -> dict[str, Any]:
    if have_wrk():
        return run_wrk(base_url, scenario, connections=connections, duration_s=duration_s)
    return asyncio.run(_aiohttp_round(base_url, scenario, connections, duration_s))
