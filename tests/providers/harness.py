"""The fake-provider base, and the scenarios every remote service must pass.

A provider test module subclasses :class:`ProviderSuite` once per task type, naming the
service class, the fake, and the settings; the suite then checks success, 429 + Retry-After,
exhausted 5xx retries, a timeout, malformed JSON, an authentication failure, streaming (with
a connection cut mid-stream) and settings validation.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from aiohttp import web

from sidecar.errors import EsError
from sidecar.protocol.registry import ServiceContext
from sidecar.protocol.service import Endpoint, InputType, TaskType

# Retry timing small enough for the suite to run in seconds.
FAST_HTTP = {
    "initial_delay": 0.01,
    "max_delay": 0.02,
    "retry_timeout": 5.0,
    "max_attempts": 3,
    "max_retry_after": 0.05,
    "connect_timeout": 2.0,
    "read_timeout": 5.0,
}

SECRET = "sk-test-very-secret-key-0042"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    raw_path: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


@dataclass
class Reply:
    """A scripted answer. ``chunks``: a streamed body written piece by piece; ``cut``: drop
    the connection after the chunks instead of finishing the response."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunks: list[bytes] | None = None
    cut: bool = False
    content_type: str = "application/json"


def sse(*payloads: Any, event: str | None = None, done: bool = False) -> list[bytes]:
    """SSE chunks, one per payload (dicts are JSON-encoded)."""
    out = []
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        prefix = f"event: {event}\n" if event else ""
        out.append(f"{prefix}data: {data}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


class FakeProvider:
    """One provider's HTTP API on loopback. Subclasses implement :meth:`authorized`,
    :meth:`validate`, :meth:`answer` and :meth:`error`."""

    key: ClassVar[str] = SECRET

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.side_calls: list[Call] = []
        self.problems: list[str] = []
        self.replies: deque[Reply] = deque()
        self.url = ""
        # Streamed replies the client hung up on before their end.
        self.disconnects = 0

    # -- to implement ---------------------------------------------------------------------------
    def authorized(self, call: Call) -> bool:
        raise NotImplementedError

    def validate(self, call: Call) -> str | None:
        """A problem with the request the sidecar sent, or None."""
        return None

    def answer(self, call: Call) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Reply:
        return Reply(status=status, json={"error": {"message": message}})

    def side_channel(self, call: Call) -> Reply | None:
        """An answer for a call outside the provider API under test (an OAuth token
        endpoint…), or None."""
        return None

    # -- machinery ------------------------------------------------------------------------------
    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, aiohttp_server: Any) -> str:
        server = await aiohttp_server(self.app())
        self.url = str(server.make_url("")).rstrip("/")
        return self.url

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        call = Call(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            await request.read(),
            request.raw_path.split("?")[0],
        )
        side = self.side_channel(call)
        if side is not None:  # token endpoints and the like: not scripted, not counted
            self.side_calls.append(call)
            return await self._render(request, side)
        self.calls.append(call)
        if not self.authorized(call):
            return await self._render(request, self.error(401, "Incorrect API key provided"))
        if self.replies:
            return await self._render(request, self.replies.popleft())
        try:
            problem = self.validate(call)
        except Exception as exc:  # a body of the wrong shape
            problem = f"malformed request: {exc!r}"
        if problem:
            self.problems.append(problem)
            return await self._render(request, self.error(400, problem))
        return await self._render(request, self.answer(call))

    async def _render(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        waited = 0.0
        while waited < reply.delay:
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(0.02)
            waited += 0.02
        if reply.chunks is None:
            body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            return web.Response(
                status=reply.status, body=body, headers=reply.headers, content_type=reply.content_type
            )
        resp = web.StreamResponse(status=reply.status, headers=reply.headers)
        resp.content_type = reply.content_type
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for chunk in reply.chunks:
                await resp.write(chunk)
                await asyncio.sleep(0.005)
        except ConnectionError:  # the client closed the stream
            self.disconnects += 1
            return resp
        except asyncio.CancelledError:  # the server noticed the client leave
            self.disconnects += 1
            raise
        if reply.cut:
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp


def make_service(cls: type, fake: FakeProvider, **extras: Any) -> Any:
    context = ServiceContext(extras={"provider_urls": {cls.name: fake.url}, "http": dict(FAST_HTTP), **extras})
    return cls(context)


def make_endpoint(
    service: Any,
    task_type: TaskType,
    service_settings: dict[str, Any],
    task_settings: dict[str, Any] | None = None,
    inference_id: str = "test-id",
) -> Endpoint:
    parsed = service.parse(inference_id, task_type, dict(service_settings), dict(task_settings or {}))
    return Endpoint(
        inference_id=inference_id,
        task_type=task_type,
        service=service.name,
        service_settings=parsed.service_settings,
        task_settings=parsed.task_settings,
        secrets=parsed.secrets,
    )


async def invoke(service: Any, endpoint: Endpoint, timeout: float | None = None) -> Any:
    """Run the endpoint's task once with small inputs."""
    task = endpoint.task_type
    if task == TaskType.TEXT_EMBEDDING:
        return await service.embed(endpoint, ["first text", "second text"], InputType.INGEST, {}, timeout)
    if task == TaskType.SPARSE_EMBEDDING:
        return await service.sparse_embed(endpoint, ["first text", "second text"], InputType.INGEST, {}, timeout)
    if task == TaskType.RERANK:
        return await service.rerank(endpoint, "the query", ["doc a", "doc b", "doc c"], {}, timeout)
    if task == TaskType.COMPLETION:
        return await service.complete(endpoint, ["Say hello"], {}, timeout)
    if task == TaskType.EMBEDDING:
        from sidecar.protocol.embedding import Content

        groups = [(Content("text", t, "text"),) for t in ("first text", "second text")]
        return await service.embed_contents(endpoint, groups, InputType.INGEST, {}, timeout)
    raise AssertionError(f"no single-shot call for {task}")


async def collect(iterator: Any) -> list[Any]:
    return [event async for event in iterator]


async def events_until_error(service: Any, endpoint: Endpoint, request: dict[str, Any]) -> tuple[list[Any], EsError]:
    """The events a stream delivers before it fails, and the failure (the service is closed)."""
    received: list[Any] = []
    try:
        with pytest.raises(EsError) as caught:
            async for event in service.stream(endpoint, request):
                received.append(event)
    finally:
        await service.close()
    return received, caught.value


async def first_then_close(fake: FakeProvider, service: Any, endpoint: Endpoint, request: dict[str, Any]) -> Any:
    """Read a stream's first event, close the stream, and wait (up to 2 s) for the fake to see
    the client hang up; return the first event (the service is closed)."""
    try:
        iterator = service.stream(endpoint, request)
        first = await anext(iterator)
        await iterator.aclose()
        for _ in range(200):
            if fake.disconnects:
                break
            await asyncio.sleep(0.01)
    finally:
        await service.close()
    return first


def stream_request(task: TaskType) -> dict[str, Any]:
    if task == TaskType.CHAT_COMPLETION:
        return {"messages": [{"role": "user", "content": "Say hello"}]}
    return {"input": "Say hello"}


def assert_no_secret(*texts: Iterable[Any] | Any, secret: str = SECRET) -> None:
    for text in texts:
        assert secret not in json.dumps(text, default=str), "a secret leaked"


class ProviderSuite:
    """Scenarios shared by every service. Subclass per (service, task type); name the
    subclass ``Test…`` so pytest collects it."""

    service_cls: ClassVar[type]
    fake_cls: ClassVar[type[FakeProvider]]
    task: ClassVar[TaskType]
    settings: ClassVar[dict[str, Any]]
    task_settings: ClassVar[dict[str, Any]] = {}
    # Settings whose absence is an error, and the message it gives.
    required: ClassVar[tuple[str, str]] = ("model_id", "[service_settings] does not contain the required setting [model_id]")
    secret_keys: ClassVar[tuple[str, ...]] = ("api_key",)
    streams: ClassVar[bool] = False
    # Upstream calls one task call makes (providers that embed one text per call make more).
    calls_per_invoke: ClassVar[int] = 1

    # -- helpers ----------------------------------------------------------------------------------
    def with_secret(self, settings: dict[str, Any]) -> dict[str, Any]:
        return dict(settings)

    async def setup(self, aiohttp_server: Any, **extras: Any) -> tuple[FakeProvider, Any, Endpoint]:
        fake = self.fake_cls()
        await fake.start(aiohttp_server)
        service = make_service(self.service_cls, fake, **extras)
        endpoint = make_endpoint(service, self.task, self.fixed(fake), self.task_settings)
        return fake, service, endpoint

    def fixed(self, fake: FakeProvider | None = None) -> dict[str, Any]:
        """The settings, with any URL setting pointed at the fake (or at a closed port)."""
        url = fake.url if fake is not None else "http://127.0.0.1:9"
        return {k: (v.replace("{url}", url) if isinstance(v, str) else v) for k, v in self.settings.items()}

    def check_result(self, result: Any) -> None:
        """Assert the success result's shape (overridden where the task has specifics)."""
        if self.task == TaskType.TEXT_EMBEDDING:
            assert len(result.vectors) == 2 and len(result.vectors[0]) > 0
        elif self.task == TaskType.SPARSE_EMBEDDING:
            assert len(result) == 2 and result[0].tokens
        elif self.task == TaskType.RERANK:
            scores = [d.relevance_score for d in result]
            assert scores == sorted(scores, reverse=True) and result
        elif self.task == TaskType.COMPLETION:
            assert result[0].result

    async def call(self, service: Any, endpoint: Endpoint, timeout: float | None = None) -> Any:
        if self.task == TaskType.CHAT_COMPLETION:
            return await collect(service.stream(endpoint, stream_request(self.task), timeout))
        return await invoke(service, endpoint, timeout)

    # -- scenarios --------------------------------------------------------------------------------
    async def test_success(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        try:
            result = await self.call(service, endpoint)
        finally:
            await service.close()
        assert fake.problems == []
        if self.task != TaskType.CHAT_COMPLETION:
            self.check_result(result)
        assert_no_secret(endpoint.service_settings, endpoint.task_settings)

    async def test_rate_limited_then_success(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        limited = fake.error(429, "Rate limit reached")
        limited.headers["Retry-After"] = "0.03"
        fake.queue(limited)
        try:
            await self.call(service, endpoint)
        finally:
            await service.close()
        assert len(fake.calls) == self.calls_per_invoke + 1 and fake.problems == []

    async def test_server_errors_exhaust_retries(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(*(fake.error(500, "upstream exploded") for _ in range(5)))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert len(fake.calls) == 3 if self.calls_per_invoke == 1 else len(fake.calls) >= 3
        err = caught.value
        assert err.status == 400 and err.type == "status_exception"
        assert err.reason.startswith(
            "Received a server error status code for request from inference entity id [test-id] status [500]"
        ), err.reason
        assert "upstream exploded" in err.reason
        assert_no_secret(err.to_body())

    async def test_authentication_error(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.key = "some-other-key"
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        err = caught.value
        assert 1 <= len(fake.calls) <= self.calls_per_invoke
        assert err.status in (401, 403), err.reason
        assert "authentication" in err.reason or "permission" in err.reason, err.reason
        assert "inference entity id [test-id]" in err.reason
        assert_no_secret(err.to_body())

    async def test_timeout(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(Reply(delay=2.0, json={}))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint, timeout=0.2)
        finally:
            await service.close()
        assert caught.value.status == 408
        assert caught.value.reason == "Request timed out waiting to be sent after [200ms]"

    async def test_malformed_json(self, aiohttp_server: Any) -> None:
        fake, service, endpoint = await self.setup(aiohttp_server)
        if self.task == TaskType.CHAT_COMPLETION:
            fake.queue(Reply(chunks=[b"data: {not json\n\n"], content_type="text/event-stream"))
        else:
            fake.queue(Reply(body=b"{this is not json"))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert caught.value.status == 500
        assert "inference entity id [test-id]" in caught.value.reason

    async def test_unexpected_shape(self, aiohttp_server: Any) -> None:
        if self.task == TaskType.CHAT_COMPLETION:
            return
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(Reply(json={"unexpected": True}))
        try:
            with pytest.raises(EsError) as caught:
                await self.call(service, endpoint)
        finally:
            await service.close()
        assert caught.value.status == 500, caught.value.reason

    async def test_streaming(self, aiohttp_server: Any) -> None:
        if not self.streams:
            fake, service, endpoint = await self.setup(aiohttp_server)
            await service.close()
            with pytest.raises(EsError) as caught:
                service.stream(endpoint, stream_request(self.task))
            assert caught.value.status == 405
            return
        fake, service, endpoint = await self.setup(aiohttp_server)
        try:
            events = await collect(service.stream(endpoint, stream_request(self.task)))
        finally:
            await service.close()
        assert fake.problems == []
        self.check_stream(events)

    def check_stream(self, events: list[dict[str, Any]]) -> None:
        if self.task == TaskType.CHAT_COMPLETION:
            assert events and all("choices" in e and "object" in e for e in events)
            text = "".join(c["delta"].get("content", "") for e in events for c in e["choices"])
        else:
            assert events and all(list(e) == ["completion"] for e in events)
            text = "".join(d["delta"] for e in events for d in e["completion"])
        assert text == "Hello world", text

    async def test_stream_cut_mid_way(self, aiohttp_server: Any) -> None:
        if not self.streams:
            return
        fake, service, endpoint = await self.setup(aiohttp_server)
        fake.queue(self.cut_stream_reply())
        received: list[Any] = []
        try:
            with pytest.raises(EsError) as caught:
                async for event in service.stream(endpoint, stream_request(self.task)):
                    received.append(event)
        finally:
            await service.close()
        assert received, "events before the cut are delivered"
        assert caught.value.status == 500 and "interrupted" in caught.value.reason

    def cut_stream_reply(self) -> Reply:
        """The provider's stream without its last event, then a dropped connection."""
        fake = self.fake_cls()
        full = fake.stream_reply(["Hello", " world"])  # type: ignore[attr-defined]
        return Reply(chunks=full.chunks[:-1], cut=True, content_type=full.content_type, headers=full.headers)

    async def test_stream_closed_early_closes_upstream(self, aiohttp_server: Any) -> None:
        if not self.streams:
            return
        fake, service, endpoint = await self.setup(aiohttp_server)
        try:
            iterator = service.stream(endpoint, stream_request(self.task))
            first = await anext(iterator)
            assert first
            await iterator.aclose()
        finally:
            await service.close()

    # -- settings ---------------------------------------------------------------------------------
    def test_required_setting_missing(self) -> None:
        key, message = self.required
        service = self.service_cls(ServiceContext())
        settings = {k: v for k, v in self.fixed().items() if k != key}
        with pytest.raises(EsError) as caught:
            service.parse("x", self.task, settings, dict(self.task_settings))
        assert caught.value.status == 400
        assert message in caught.value.reason, caught.value.reason
        assert_no_secret(caught.value.to_body())

    def test_secret_missing(self) -> None:
        service = self.service_cls(ServiceContext())
        settings = {k: v for k, v in self.fixed().items() if k not in self.secret_keys}
        with pytest.raises(EsError) as caught:
            service.parse("x", self.task, settings, dict(self.task_settings))
        assert caught.value.status == 400 and "secret_settings" in caught.value.reason, caught.value.reason

    def test_unknown_setting(self) -> None:
        service = self.service_cls(ServiceContext())
        with pytest.raises(EsError) as caught:
            service.parse("x", self.task, {**self.fixed(), "bogus": 1}, dict(self.task_settings))
        assert caught.value.reason == (
            f"Configuration contains settings [{{bogus=1}}] unknown to the [{self.service_cls.name}] service"
        )
        assert_no_secret(caught.value.to_body())

    def test_unknown_task_setting(self) -> None:
        service = self.service_cls(ServiceContext())
        with pytest.raises(EsError) as caught:
            service.parse("x", self.task, self.fixed(), {**self.task_settings, "bogus": "x"})
        assert "unknown to the" in caught.value.reason

    def test_secrets_kept_out_of_settings(self) -> None:
        service = self.service_cls(ServiceContext())
        parsed = service.parse("x", self.task, self.fixed(), dict(self.task_settings))
        assert set(parsed.secrets) >= {k for k in self.secret_keys if k in self.settings}
        for key in self.secret_keys:
            assert key not in parsed.service_settings
        assert_no_secret(parsed.service_settings, parsed.task_settings)

    def test_unsupported_task_type(self) -> None:
        service = self.service_cls(ServiceContext())
        missing = [t for t in TaskType if t not in service.task_types]
        if not missing:
            return
        with pytest.raises(EsError) as caught:
            service.parse("x", missing[0], self.fixed(), {})
        assert caught.value.reason == (
            f"The [{service.name}] service does not support task type [{missing[0].value}]"
        )
