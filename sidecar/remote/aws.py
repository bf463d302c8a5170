"""AWS Signature Version 4 for requests to AWS runtimes (botocore's signer): the headers a
request needs, computed before every attempt so that each carries a fresh date."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from .client import HttpRequest

SIGNED = ("authorization", "x-amz-date")


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
