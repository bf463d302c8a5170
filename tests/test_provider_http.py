"""The behaviour every remote service shares (sidecar/services/http.py) and the SSE renderer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from providers.harness import SECRET, Reply, make_endpoint, make_service
from providers.openai_fake import FakeOpenAi

from sidecar.errors import EsError, status_exception
from sidecar.protocol import sse
from sidecar.protocol.registry import ServiceContext
from sidecar.protocol.service import Endpoint, TaskType
from sidecar.remote.client import HttpClient, HttpRequest
from sidecar.remote.options import HttpOptions, format_time_value, provider_url
from sidecar.remote.ratelimit import TokenBucket
from sidecar.remote.service import map_batches
from sidecar.remote.streams import ndjson_objects, sse_events
from sidecar.services.openai import OpenAiService


async def _openai(aiohttp_server: Any, settings: dict[str, Any] | None = None, **http: Any):
    fake = FakeOpenAi()
    await fake.start(aiohttp_server)
    service = make_service(OpenAiService, fake)
    service.http.options = HttpOptions(**{**vars(service.http.options), **http}) if http else service.http.options
    endpoint = make_endpoint(service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "m", **(settings or {})})
    return fake, service, endpoint


async def test_retry_after_is_honoured(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server, max_retry_after=1.0)
    limited = fake.error(429, "busy")
    limited.headers["Retry-After"] = "0.3"
    fake.queue(limited)
    started = time.monotonic()
    try:
        await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert time.monotonic() - started >= 0.3
    assert len(fake.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_not_retried(aiohttp_server: Any, status: int) -> None:
    fake, service, endpoint = await _openai(aiohttp_server)
    fake.queue(fake.error(status, "nope"))
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert len(fake.calls) == 1
    assert caught.value.status == status


async def test_error_messages_follow_elasticsearch(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server)
    fake.queue(fake.error(404, "no such model"), Reply(status=401, body=b""))
    try:
        with pytest.raises(EsError) as not_found:
            await service.complete(endpoint, ["x"], {})
        with pytest.raises(EsError) as auth:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert not_found.value.reason == (
        f"Resource not found at [{fake.url}/v1/chat/completions] for request from inference entity id "
        "[test-id] status [404]. Error message: [no such model]"
    )
    assert auth.value.reason == (
        "Received an authentication error status code for request from inference entity id [test-id] status [401]"
    )


async def test_503_then_success(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server)
    fake.queue(fake.error(503, "overloaded"), fake.error(502, "bad gateway"))
    try:
        result = await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert result[0].result == "Hello world" and len(fake.calls) == 3


async def test_retry_timeout_bounds_retrying(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server, max_attempts=1000, retry_timeout=0.3)
    fake.queue(*(fake.error(500, "down") for _ in range(1000)))
    started = time.monotonic()
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert caught.value.reason.startswith("Received a server error status code")


async def test_connection_errors_are_retried_then_reported() -> None:
    service = OpenAiService(ServiceContext(extras={"http": {"initial_delay": 0.01, "max_delay": 0.01}}))
    endpoint = make_endpoint(service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "m", "url": "http://127.0.0.1:9/x"})
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert caught.value.status == 500
    assert caught.value.reason.startswith("Http client failed to send request from inference entity id [test-id]")


async def test_unknown_host() -> None:
    service = OpenAiService(ServiceContext(extras={"http": {"initial_delay": 0.01}}))
    endpoint = make_endpoint(
        service,
        TaskType.COMPLETION,
        {"api_key": SECRET, "model_id": "m", "url": "http://no-such-host.invalid/v1?key=hidden"},
    )
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert caught.value.status == 400
    assert caught.value.reason == (
        "Invalid host [http://no-such-host.invalid/v1], please check that the URL is correct."
    )


async def test_secrets_echoed_by_the_provider_are_redacted(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server)
    fake.queue(fake.error(400, f"Incorrect API key provided: {SECRET}"))
    try:
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {})
    finally:
        await service.close()
    assert SECRET not in caught.value.reason
    assert "Incorrect API key provided: [REDACTED]" in caught.value.reason


async def test_rate_limit_queues_requests(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server, {"rate_limit": {"requests_per_minute": 600}})
    started = time.monotonic()
    try:
        results = await asyncio.gather(*(service.complete(endpoint, ["x"], {}) for _ in range(4)))
    finally:
        await service.close()
    assert len(results) == 4
    # one token at once, then one every 100 ms
    assert time.monotonic() - started >= 0.28


async def test_rate_limit_bucket_is_shared_per_endpoint(aiohttp_server: Any) -> None:
    fake, service, endpoint = await _openai(aiohttp_server, {"rate_limit": {"requests_per_minute": 60}})
    other = make_endpoint(service, TaskType.COMPLETION, {"api_key": SECRET, "model_id": "m"}, inference_id="other")
    try:
        await service.complete(endpoint, ["x"], {})
        # the same endpoint must now wait ~1 s: the call times out while queued
        with pytest.raises(EsError) as caught:
            await service.complete(endpoint, ["x"], {}, timeout=0.2)
        # another endpoint has its own bucket
        await service.complete(other, ["x"], {}, timeout=2)
    finally:
        await service.close()
    assert caught.value.status == 408


async def test_token_bucket_waits_in_order() -> None:
    bucket = TokenBucket(1200)  # one token every 50 ms
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    started = time.monotonic()
    await asyncio.gather(*(take(i) for i in range(4)))
    assert order == [0, 1, 2, 3]
    assert time.monotonic() - started >= 0.14


async def test_map_batches_keeps_order_and_limits_concurrency() -> None:
    running = 0
    peak = 0

    async def run(batch: list[str]) -> list[str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - len(batch)))
        running -= 1
        return [s.upper() for s in batch]

    texts = [f"t{i}" for i in range(23)]
    assert await map_batches(texts, 5, run, concurrency=2) == [t.upper() for t in texts]
    assert peak == 2


async def test_map_batches_raises_the_first_failure() -> None:
    async def run(batch: list[str]) -> list[str]:
        if "bad" in batch:
            raise status_exception(400, "boom")
        await asyncio.sleep(0.05)
        return batch

    with pytest.raises(EsError, match="boom"):
        await map_batches(["a", "b", "bad", "c"], 1, run)


async def _lines(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_sse_parser() -> None:
    lines = [b"\xef\xbb\xbfevent: message", b"data: {\"a\":", b"data: 1}", b"", b": comment", b"data:[DONE]", b""]
    events = [e async for e in sse_events(_lines(*lines))]
    assert [(e.event, e.data) for e in events] == [("message", '{"a":\n1}'), ("message", "[DONE]")]
    tail = [e async for e in sse_events(_lines(b"event: content-delta", b"data: x"))]
    assert [(e.event, e.data) for e in tail] == [("content-delta", "x")]


async def test_ndjson_parser() -> None:
    assert [o async for o in ndjson_objects(_lines(b'{"a": 1}', b"", b'{"b": 2}'))] == [{"a": 1}, {"b": 2}]


async def test_stream_lines_split_across_chunks(aiohttp_server: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for part in (b"one\r\ntw", b"o\n", b"thr", b"ee"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/s", handler)
    server = await aiohttp_server(app)
    client = HttpClient("test", None)
    endpoint = Endpoint("e", TaskType.COMPLETION, "test", {})
    try:
        lines = [line async for line in client.stream_lines(endpoint, HttpRequest(str(server.make_url("/s"))))]
    finally:
        await client.close()
    assert lines == [b"one", b"two", b"three"]


async def test_closing_a_stream_closes_the_upstream_connection(aiohttp_server: Any) -> None:
    closed = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for i in range(1000):
                await resp.write(f"data: {i}\n\n".encode())
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            closed.set()
            raise
        return resp

    app = web.Application()
    app.router.add_post("/s", handler)
    server = await aiohttp_server(app)
    client = HttpClient("test", None)
    endpoint = Endpoint("e", TaskType.COMPLETION, "test", {})

    async def consume() -> None:
        async for _ in client.stream_lines(endpoint, HttpRequest(str(server.make_url("/s")))):
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 2)
    await client.close()


def test_options_from_context_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HttpOptions.from_context(None) == HttpOptions()
    assert (HttpOptions().initial_delay, HttpOptions().max_delay, HttpOptions().retry_timeout) == (1.0, 5.0, 30.0)
    monkeypatch.setenv("SIDECAR_HTTP_RETRY_TIMEOUT", "7")
    options = HttpOptions.from_context(ServiceContext(extras={"http": {"initial_delay": 0.5, "unknown": 1}}))
    assert (options.initial_delay, options.retry_timeout) == (0.5, 7.0)


def test_provider_url_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider_url(None, "alibabacloud-ai-search", "https://x/") == "https://x"
    monkeypatch.setenv("SIDECAR_PROVIDER_URL_ALIBABACLOUD_AI_SEARCH", "http://env")
    assert provider_url(None, "alibabacloud-ai-search", "https://x") == "http://env"
    context = ServiceContext(extras={"provider_urls": {"alibabacloud-ai-search": "http://ctx/"}})
    assert provider_url(context, "alibabacloud-ai-search", "https://x") == "http://ctx"


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (1.5, "1.5s"), (0.2, "200ms"), (120, "2m"), (0.0005, "500micros")]
)
def test_time_values_render_like_elasticsearch(seconds: float, text: str) -> None:
    assert format_time_value(seconds) == text


def test_sse_rendering() -> None:
    assert sse.render_event({"completion": [{"delta": "Hi"}]}) == (
        b'\xef\xbb\xbfevent: message\ndata: {"completion":[{"delta":"Hi"}]}\n\n'
    )
    assert sse.DONE == b"\xef\xbb\xbfevent: message\ndata: [DONE]\n\n"
    error = status_exception(400, "bad")
    assert sse.render_error(error) == (
        b'\xef\xbb\xbfevent: error\ndata: {"error":{"root_cause":[{"type":"status_exception","reason":"bad"}],'
        b'"type":"status_exception","reason":"bad"},"status":400}\n\n'
    )
