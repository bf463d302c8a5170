"""What the soak runs against: a local Elasticsearch (``scripts/es``) or a given one, the sidecar
process, a TCP relay that can cut the sidecar off from Elasticsearch, and readings of the
sidecar's memory and sockets from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
ES_SCRIPT = ROOT / "scripts" / "es"


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- /proc readings ------------------------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` of a process, in kB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


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


# -- Elasticsearch --------------------------------------------------------------------------------


class Elasticsearch:
    """A node started with ``scripts/es`` on ``port`` (stopped at the end only if started here),
    or an existing node at ``url`` (which this script never stops)."""

    def __init__(self, url: str | None, port: int, heap: str) -> None:
        self.given = url is not None
        self.url = (url or f"http://127.0.0.1:{port}").rstrip("/")
        self.port = port
        self.heap = heap
        self.started_here = False

    @property
    def can_restart(self) -> bool:
        return not self.given

    def _run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ES_PORT": str(self.port), "ES_HEAP": self.heap}
        return subprocess.run([str(ES_SCRIPT), command], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def start(self) -> str:
        if self.given:
            return self.url
        running = self._run("status").returncode == 0
        if not running:
            log(f"starting Elasticsearch on port {self.port} (heap {self.heap}) with scripts/es")
            fetched = self._run("fetch")
            if fetched.returncode != 0:
                raise SetupError(f"scripts/es fetch failed:\n{fetched.stderr[-2000:]}")
        started = self._run("start")
        if started.returncode != 0:
            raise SetupError(f"scripts/es start failed:\n{started.stderr[-2000:]}")
        lines = [line.strip() for line in started.stdout.splitlines() if line.strip()]
        if lines and lines[-1].startswith("http"):
            self.url = lines[-1]
        self.started_here = self.started_here or not running
        return self.url

    def stop_node(self) -> None:
        """Stop the node (the outage); it must be one this script may stop."""
        assert self.can_restart
        done = self._run("stop", timeout=180)
        if done.returncode != 0:
            raise SetupError(f"scripts/es stop failed:\n{done.stderr[-2000:]}")

    def start_node(self) -> None:
        started = self._run("start")
        if started.returncode != 0:
            raise SetupError(f"scripts/es start failed:\n{started.stderr[-2000:]}")

    def cleanup(self) -> None:
        if self.started_here:
            log(f"stopping the Elasticsearch started on port {self.port}")
            self._run("stop", timeout=180)
            self.started_here = False


class SetupError(Exception):
    """Something the soak needs could not be set up (not a failed property)."""


# -- the sidecar ----------------------------------------------------------------------------------


class Sidecar:
    """``python -m sidecar`` as users run it, its output in ``log_path``."""

    def __init__(self, es_url: str, log_path: Path, env: dict[str, str]) -> None:
        self.es_url = es_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 90) -> Sidecar:
        env = {**os.environ, **self.env, "SIDECAR_ES_URL": self.es_url, "SIDECAR_PORT": str(self.port),
               "SIDECAR_HOST": "127.0.0.1"}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "sidecar"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        import urllib.error
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"the sidecar exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/_sidecar/live", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                pass
            time.sleep(0.2)
        raise SetupError(f"the sidecar did not come up in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


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
