"""When and how long to retry a provider call: Elasticsearch's ``RetryableAction`` timing
(full jitter under a doubling bound), at least the provider's ``Retry-After``, within the
attempts and the time :class:`~.options.HttpOptions` allow."""

from __future__ import annotations

import email.utils
import random
import time

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from .. import metrics
from ..errors import EsError
from .options import HttpOptions


class Retry(Exception):
    """One failed attempt that may be retried."""

    def __init__(self, error: EsError, retry_after: float | None = None, too_large: bool = False) -> None:
        super().__init__(error.reason)
        self.error = error
        self.retry_after = retry_after
        self.too_large = too_large


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retrying(options: HttpOptions, service_name: str) -> AsyncRetrying:
    """The retry loop of one call: :class:`Retry` failures are retried, anything else raises."""

    def wait(state: RetryCallState) -> float:
        """Full jitter under a doubling bound (Elasticsearch's RetryableAction), at least the
        provider's Retry-After, never past the retry timeout."""
        metrics.PROVIDER_RETRIES.labels(service_name).inc()
        bound = min(options.max_delay, options.initial_delay * (2 ** max(0, state.attempt_number - 1)))
        delay = random.uniform(0, bound)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retry):
            if exc.too_large:
                return 0.0
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, options.max_retry_after))
        left = options.retry_timeout - (state.seconds_since_start or 0.0)
        return max(0.0, min(delay, left))

    return AsyncRetrying(
        stop=stop_after_attempt(options.max_attempts) | stop_after_delay(options.retry_timeout),
        wait=wait,
        retry=retry_if_exception_type(Retry),
        reraise=True,
    )
