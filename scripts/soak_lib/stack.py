"""What the soak runs against: a local Elasticsearch (``scripts/es``) or a given one, the sidecar
process, a TCP relay that can cut the sidecar off from Elasticsearch, and readings of the
sidecar's memory and sockets from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sidecar.testing.elasticsearch import Elasticsearch as LocalElasticsearch
from sidecar.testing.process import SetupError, SidecarProcess, free_port, memory_kb

__all__ = ["Elasticsearch", "Relay", "SetupError", "Sidecar", "call", "es_shaped", "free_port", "log",
           "memory_kb", "sockets"]


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


# -- /proc readings ------------------------------------------------------------------------------


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    """socket inode → (local port, remote port, state) for every TCP socket of the machine."""
    states = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING"}
    table: dict[str, tuple[int, int, str]] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                    table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16),
                                    states.get(state, state))
        except OSError:
            continue
    return table


@dataclass
class Sockets:
    total: int           # every socket fd of the process
    clients: int         # TCP connections accepted on the sidecar's port
    upstream: int        # TCP connections to Elasticsearch's port
    close_wait: int      # TCP connections the peer closed and the sidecar has not
    other: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def sockets(pid: int, own_port: int, es_port: int) -> Sockets:
    inodes = []
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(target[8:-1])
    table = _tcp_table()
    clients = upstream = close_wait = other = 0
    for inode in inodes:
        entry = table.get(inode)
        if entry is None:
            other += 1
            continue
        local, remote, state = entry
        if state == "CLOSE_WAIT":
            close_wait += 1
        if state == "LISTEN":
            other += 1
        elif local == own_port:
            clients += 1
        elif remote == es_port:
            upstream += 1
        else:
            other += 1
    return Sockets(len(inodes), clients, upstream, close_wait, other)


# -- Elasticsearch and the sidecar ----------------------------------------------------------------


class Elasticsearch(LocalElasticsearch):
    """A node started with ``scripts/es`` on ``port`` (stopped at the end only if started here),
    or an existing node at ``url`` (which this script never stops)."""

    def __init__(self, url: str | None, port: int, heap: str) -> None:
        super().__init__(url, port, heap, name="soak")

    def cleanup(self) -> None:
        self.stop()


class Sidecar(SidecarProcess):
    """``python -m sidecar`` as users run it, its output in ``log_path``; given 40 s to stop
    (a soak phase may leave it draining large bulks)."""

    def __init__(self, es_url: str, log_path: Path, env: dict[str, str]) -> None:
        super().__init__(es_url, env, log_path, stop_wait_s=40)


# -- a relay that can cut the sidecar off from Elasticsearch --------------------------------------


class Relay:
    """A loopback TCP relay between the sidecar and Elasticsearch. :meth:`cut` makes
    Elasticsearch vanish as a killed process does (new connections refused, open ones reset);
    :meth:`restore` brings it back. Used where this script may not stop the node itself."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(256 * 1024):
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (OSError, asyncio.CancelledError):
                pass

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pair in list(self._pairs):
            for w in pair:
                w.transport.abort()
        self._pairs.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()


# -- HTTP helpers ---------------------------------------------------------------------------------


async def call(session: aiohttp.ClientSession, method: str, url: str, body=None, *, timeout: float = 120,
               ndjson: bool = False) -> tuple[int, object]:
    """(status, parsed JSON body or raw text) of one request."""
    import orjson

    headers = {}
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else orjson.dumps(body)
        headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
    async with session.request(method, url, data=data, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        raw = await resp.read()
    try:
        return resp.status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return resp.status, raw.decode(errors="replace")


def es_shaped(status: int, body: object) -> bool:
    """An Elasticsearch error body: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``."""
    if not isinstance(body, dict) or body.get("status") != status:
        return False
    error = body.get("error")
    return (isinstance(error, dict) and isinstance(error.get("type"), str) and "reason" in error
            and isinstance(error.get("root_cause"), list))
