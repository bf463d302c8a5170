"""Short-lived access tokens (OAuth, IAM) that some providers want with each call, fetched once
per credential and shared until shortly before they expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class TokenCache:
    """Short-lived access tokens (OAuth, IAM) per credential, fetched once and reused until a
    minute before they expire; concurrent callers share one fetch."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """``fetch`` returns (token, lifetime in seconds)."""
        async with self._locks.setdefault(key, asyncio.Lock()):
            token, expires = self._tokens.get(key, ("", 0.0))
            if time.time() > expires - 60:
                token, lifetime = await fetch()
                self._tokens[key] = (token, time.time() + lifetime)
            return token


def token_lifetime(obj: Any, default: float = 3600.0) -> float:
    value = obj.get("expires_in") if isinstance(obj, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
