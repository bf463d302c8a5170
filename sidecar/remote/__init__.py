"""What every remote inference service shares, written once (the providers themselves are
the modules of :mod:`sidecar.services`).

* One pooled :class:`aiohttp.ClientSession` per service, created on first use.
* Connect/read timeouts per attempt, and the caller's ``timeout`` honoured end to end
  (queueing for the rate limit, every attempt and every back-off sleep count against it).
* Retries (tenacity) on connection errors and on 408/429/5xx with exponential back-off and
  jitter, honouring ``Retry-After``; other 4xx are not retried. Elasticsearch's timing is the
  default: first delay up to 1 s, delay bound capped at 5 s, at most 3 attempts and 30 s.
* A per-endpoint ``rate_limit.requests_per_minute`` token bucket shared by every request of
  that endpoint in the process; requests queue for a token instead of failing.
* Provider HTTP errors become Elasticsearch-shaped :class:`~sidecar.errors.EsError` s with the
  provider's status and message (``Received an authentication error status code for request
  from inference entity id [id] status [401]. Error message: [...]``). Secrets are scrubbed
  from every message.
* Malformed responses become a clear 500 error, never a crash or a half result.
* "Content too large" answers are retried once with every input cut in half, as
  Elasticsearch does; the result reports which inputs were truncated.
* Raw, line, SSE and NDJSON readers for streamed responses; closing the iterator (or
  cancelling the task that reads it) closes the upstream connection.

Tuning (all in seconds): ``ServiceContext.extras["http"]`` (a dict or
:class:`~.options.HttpOptions`) or the environment variables
``SIDECAR_HTTP_RETRY_INITIAL_DELAY``, ``SIDECAR_HTTP_RETRY_MAX_DELAY``,
``SIDECAR_HTTP_RETRY_TIMEOUT``, ``SIDECAR_HTTP_MAX_ATTEMPTS``, ``SIDECAR_HTTP_CONNECT_TIMEOUT``,
``SIDECAR_HTTP_READ_TIMEOUT``.

Base URLs that Elasticsearch hard-codes can be redirected (tests, proxies, private gateways):
``ServiceContext.extras["provider_urls"][<service name>]`` or the environment variable
``SIDECAR_PROVIDER_URL_<SERVICE_NAME_UPPER_WITH_UNDERSCORES>``.

Where each part lives: :mod:`.options` (timing, URL overrides), :mod:`.errors` (how provider
failures read), :mod:`.responses` (checked reading of provider answers), :mod:`.retry`,
:mod:`.ratelimit`, :mod:`.access_tokens`, :mod:`.client` (the pooled client), :mod:`.streams`
(SSE/NDJSON readers), :mod:`.service` (:class:`~.service.RemoteService`, the base of the
providers); and the pieces several providers speak: :mod:`.common_settings`,
:mod:`.configuration`, :mod:`.chat`, :mod:`.openai_style`, :mod:`.gemini`.
"""
