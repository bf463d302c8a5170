"""AWS runtimes: Signature Version 4 for requests (botocore's signer), computed before every
attempt so that each carries a fresh date, and the binary event stream
(``application/vnd.amazon.eventstream``) that AWS's streaming APIs answer with, decoded by
botocore's parser."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ..protocol.service import Endpoint
from .client import HttpRequest
from .errors import malformed
from .responses import MalformedResponse

SIGNED = ("authorization", "x-amz-date")
EVENT_STREAM = "application/vnd.amazon.eventstream"


def sigv4(
    service: str, region: str, secrets: Mapping[str, str]
) -> Callable[[HttpRequest, bytes], Awaitable[dict[str, str]]]:
    """A :attr:`HttpRequest.prepare` hook signing for ``service`` in ``region`` with the
    ``access_key`` and ``secret_key`` of ``secrets``."""

    async def sign(request: HttpRequest, payload: bytes) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        aws = AWSRequest(method=request.method, url=request.url, data=payload, headers=dict(request.headers))
        credentials = Credentials(secrets.get("access_key", ""), secrets.get("secret_key", ""))
        SigV4Auth(credentials, service, region).add_auth(aws)
        return {k: v for k, v in aws.headers.items() if k.lower() in SIGNED}

    return sign


async def event_stream_messages(
    endpoint: Endpoint, chunks: AsyncIterator[bytes]
) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
    """The ``(headers, payload)`` of each event-stream message in ``chunks`` (a streamed body,
    in pieces of any size); bytes that are not event-stream framing are Elasticsearch's
    "failed to parse" 500. Leaving early closes ``chunks`` (and the upstream connection)."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            buffer.add_data(chunk)
            try:
                messages = list(buffer)
            except ParserError as exc:
                raise malformed(endpoint, MalformedResponse(f"invalid event stream: {exc}")) from None
            for message in messages:
                yield message.headers, message.payload
