"""The per-endpoint ``rate_limit.requests_per_minute`` of remote services: a token bucket
shared by every request of the endpoint in the process; requests queue for a token instead of
failing."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``capacity`` saved up; waiters queue in order."""

    def __init__(self, per_minute: float, capacity: float = 1.0) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)
