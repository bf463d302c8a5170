"""HTTP clients the benchmarks drive the sidecar and Elasticsearch with: a plain keep-alive
client for set-up calls and sequential latencies, and aiohttp for concurrent load."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class HttpError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {str(body)[:600]}")
        self.status = status
        self.body = body


class Conn:
    """One persistent HTTP/1.1 connection (reconnects when the server closed it)."""

    def __init__(self, base_url: str, timeout: float = 600) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def raw(self, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if body is not None else {}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = (200, 201),
             ndjson: bytes | None = None) -> Any:
        if ndjson is not None:
            status, data = self.raw(method, path, ndjson, "application/x-ndjson")
        else:
            status, data = self.raw(method, path, None if body is None else json.dumps(body).encode())
        parsed = json.loads(data) if data else None
        if status not in set(ok):
            raise HttpError(method, path, status, parsed)
        return parsed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def reachable(url: str, timeout: float = 2.0) -> bool:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()


# -- set-up calls -------------------------------------------------------------------------------


def put_endpoint(conn: Conn, inference_id: str, *, allocations: int = 1, threads: int = 1,
                 model_id: str = MODEL_ID) -> dict[str, Any]:
    return conn.json("PUT", f"/_inference/text_embedding/{inference_id}", {
        "service": "elasticsearch",
        "service_settings": {"model_id": model_id, "num_allocations": allocations, "num_threads": threads},
    })


def delete_endpoint(conn: Conn, inference_id: str) -> None:
    conn.json("DELETE", f"/_inference/{inference_id}?force=true", ok=(200, 404))


def create_semantic_index(conn: Conn, index: str, inference_id: str, *, field: str = "body",
                          chunking: dict[str, Any] | None = None, shards: int = 1) -> None:
    conn.json("DELETE", f"/{index}", ok=(200, 404))
    semantic: dict[str, Any] = {"type": "semantic_text", "inference_id": inference_id}
    if chunking is not None:
        semantic["chunking_settings"] = chunking
    conn.json("PUT", f"/{index}", {
        "settings": {"number_of_shards": shards, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, field: semantic}},
    })


def create_plain_index(conn: Conn, index: str) -> None:
    conn.json("DELETE", f"/{index}", ok=(200, 404))
    conn.json("PUT", f"/{index}", {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "n": {"type": "integer"}}},
    })


def delete_index(conn: Conn, index: str) -> None:
    conn.json("DELETE", f"/{index}", ok=(200, 404))


def bulk_body(index: str, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> bytes:
    lines = []
    for i, doc in enumerate(docs):
        meta: dict[str, Any] = {"_index": index}
        if ids is not None:
            meta["_id"] = ids[i]
        lines.append(json.dumps({"index": meta}))
        lines.append(json.dumps(doc))
    return ("\n".join(lines) + "\n").encode()


def check_bulk(answer: dict[str, Any]) -> int:
    """Number of failed items (raises on a wholly failed request)."""
    if not isinstance(answer, dict) or "items" not in answer:
        raise RuntimeError(f"bulk failed: {str(answer)[:600]}")
    return sum(1 for item in answer["items"] if next(iter(item.values())).get("error"))


# -- concurrent load (aiohttp) ------------------------------------------------------------------


async def bulk_ingest(url: str, index: str, docs: Sequence[dict[str, Any]], *, bulk_docs: int,
                      concurrency: int, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Send ``docs`` as ``_bulk`` requests of ``bulk_docs`` documents, ``concurrency`` in flight
    (as ``helpers.parallel_bulk`` does); then refresh. Returns timings and failures."""
    import asyncio

    import aiohttp

    bodies = [bulk_body(index, docs[i:i + bulk_docs], None if ids is None else ids[i:i + bulk_docs])
              for i in range(0, len(docs), bulk_docs)]
    failed = 0
    warnings: set[str] = set()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(f"{url}/_bulk", data=body,
                                        headers={"Content-Type": "application/x-ndjson"}) as resp:
                    answer = await resp.json(content_type=None)
                    if "Warning" in resp.headers:
                        warnings.add(resp.headers["Warning"][:200])
                failed += check_bulk(answer)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        sent = time.perf_counter()
        async with session.post(f"{url}/{index}/_refresh") as resp:
            await resp.read()
        done = time.perf_counter()
    return {"seconds": done - started, "bulk_seconds": sent - started, "failed": failed,
            "requests": len(bodies), "warnings": sorted(warnings)}


async def concurrent_posts(url: str, path: str, bodies: Sequence[bytes], *,
                           concurrency: int) -> tuple[float, list[float], int]:
    """POST every body with at most ``concurrency`` requests in flight (one connection each).
    Returns (wall seconds, per-request latencies, non-2xx count)."""
    import asyncio

    import aiohttp

    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        async def one(body: bytes) -> None:
            nonlocal errors
            async with sem:
                t0 = time.perf_counter()
                async with session.post(url + path, data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - started
    return wall, latencies, errors


def sequential_latencies(url: str, method: str, path: str, body: bytes | None, n: int, *,
                         warmup: int = 5) -> list[float]:
    """``n`` requests one after the other on one keep-alive connection."""
    conn = Conn(url)
    try:
        for _ in range(warmup):
            conn.raw(method, path, body)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            status, data = conn.raw(method, path, body)
            out.append(time.perf_counter() - t0)
            if status >= 300:
                raise HttpError(method, path, status, data[:300])
        return out
    finally:
        conn.close()
