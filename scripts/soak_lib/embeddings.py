"""A loopback server speaking OpenAI's embeddings API (``POST /v1/embeddings``), so that the
soak's semantic_text traffic costs almost no CPU: each text's vector is derived from its hash
(unit length, as ``dot_product`` similarity requires)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct

from aiohttp import web

DIMS = 8


def vector(text: str) -> list[float]:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=2 * DIMS).digest()
    values = [v - 32767.5 for v in struct.unpack(f"<{DIMS}H", digest)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class EmbeddingsServer:
    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0
        # Seconds each call waits before answering (a slow provider).
        self.delay_s = 0.0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1/embeddings"
        return self.url

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        self.calls += 1
        self.texts += len(inputs)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(inputs)]
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def endpoint_config(url: str) -> dict:
    """An ``openai`` text_embedding endpoint pointed at the loopback server."""
    return {"service": "openai", "service_settings": {
        "api_key": "sk-soak", "model_id": "text-embedding-3-small", "url": url, "dimensions": DIMS,
        "rate_limit": {"requests_per_minute": 1_000_000}}}
