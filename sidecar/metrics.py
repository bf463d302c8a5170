"""Prometheus metrics of the sidecar, served at ``GET /_sidecar/metrics``.

Everything lives in :data:`REGISTRY` (not the global default registry). Other modules
count what only they see through the counters below, e.g.::

    from sidecar import metrics
    metrics.PROVIDER_ERRORS.labels(service="openai", status="429").inc()
    metrics.PROVIDER_RETRIES.labels(service="openai").inc()
    metrics.BATCH_SIZE.labels(deployment_id=self.name).observe(len(items))

HTTP requests, inference inputs and failures are counted by the front door (:mod:`sidecar.api.front`);
local deployments (queue depth, allocations, batches) are read from
the model manager's ``deployments()`` at scrape time. Labels hold route templates, service names,
task types, model and deployment ids and status codes only: never a path with its values,
a header, a body or a secret.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .api.keys import ENDPOINTS

log = logging.getLogger("sidecar.metrics")

disable_created_metrics()  # no ``*_created`` series: only what the sidecar measures
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

INFERENCE_INPUTS = Counter(
    "sidecar_inference_inputs", "Inputs sent to the perform-inference API and answered",
    ["service", "task_type"], registry=REGISTRY,
)
INFERENCE_FAILURES = Counter(
    "sidecar_inference_failures", "Perform-inference requests that failed, by the status answered",
    ["service", "task_type", "status"], registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "sidecar_provider_errors", "Failed calls to remote inference providers, by the provider's status "
    "(each attempt counts)", ["service", "status"], registry=REGISTRY,
)
PROVIDER_RETRIES = Counter(
    "sidecar_provider_retries", "Calls to remote inference providers that were retried", ["service"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "sidecar_inference_batch_size", "Items per batch run by a local model", ["deployment_id"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=REGISTRY,
)

# The route label of everything passed through to Elasticsearch.
PROXY_ROUTE = "proxy"


def _input_count(raw: bytes) -> int:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    value = body.get("input") if isinstance(body, dict) else None
    if isinstance(value, str):
        return 1
    return len(value) if isinstance(value, list) else 0


def _is_perform(request: web.Request) -> bool:
    info = request.match_info
    return (request.method == "POST" and request.path.startswith("/_inference/")
            and "inference_id" in info and not request.path.endswith("/_update"))


async def _endpoint_labels(request: web.Request) -> tuple[str, str]:
    manager = request.app.get(ENDPOINTS)
    inference_id = request.match_info.get("inference_id")
    if manager is None or not inference_id:
        return "unknown", request.match_info.get("task_type", "unknown")
    # Never ``manager.lookup``: for a preconfigured endpoint that would start its model.
    try:
        endpoint = await asyncio.wait_for(manager.peek(inference_id), 2.0)
    except Exception:  # metrics never fail a request
        endpoint = None
    if endpoint is None:
        return "unknown", request.match_info.get("task_type", "unknown")
    return endpoint.service, endpoint.task_type.value


async def _count_inference(request: web.Request, status: int) -> None:
    if status >= 400:
        if status == 404:
            return  # an unknown endpoint is no failure of a service
        service, task_type = await _endpoint_labels(request)
        INFERENCE_FAILURES.labels(service, task_type, str(status)).inc()
        return
    raw = await request.read()
    count = _input_count(raw)
    if count:
        service, task_type = await _endpoint_labels(request)
        INFERENCE_INPUTS.labels(service, task_type).inc(count)


class HttpStats(Collector):
    """Requests answered, their latency and those in flight: ``sidecar_http_requests_total``,
    ``sidecar_http_request_duration_seconds`` and ``sidecar_http_requests_in_flight``.

    Counted in plain dictionaries and exported at scrape time rather than through
    ``prometheus_client``'s labelled metrics: those take a lock and look their child up by
    labels on every update, which cost about a tenth of the CPU of a proxied request. All
    updates happen on the event loop's thread, so no lock is needed."""

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.in_flight = 0
        self.requests: dict[tuple[str, str, str], int] = {}
        # (route, method) -> [count per bucket (the last one: +Inf), sum of seconds]
        self.latency: dict[tuple[str, str], list[Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        entry = self.latency.get((route, method))
        if entry is None:
            entry = self.latency[(route, method)] = [[0] * (len(self.buckets) + 1), 0.0]
        entry[0][bisect.bisect_left(self.buckets, seconds)] += 1
        entry[1] += seconds

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("sidecar_http_requests", "HTTP requests answered by the sidecar",
                                       labels=["route", "method", "status"])
        for labels, value in list(self.requests.items()):
            requests.add_metric(list(labels), value)
        latency = HistogramMetricFamily(
            "sidecar_http_request_duration_seconds",
            "Time to answer an HTTP request (streamed bodies included)", labels=["route", "method"])
        bounds = [*(str(float(b)) for b in self.buckets), "+Inf"]
        for labels, (counts, total) in list(self.latency.items()):
            cumulative = list(itertools.accumulate(counts))
            latency.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)), total)
        yield requests
        yield latency
        yield GaugeMetricFamily("sidecar_http_requests_in_flight", "HTTP requests being answered",
                                value=self.in_flight)


HTTP = HttpStats()
REGISTRY.register(HTTP)


def request_started() -> float:
    """Count a request in flight; the returned start time goes to :func:`request_finished`."""
    HTTP.in_flight += 1
    return time.perf_counter()


def request_finished(route: str, method: str, status: int, started: float) -> None:
    HTTP.in_flight -= 1
    HTTP.observe(route, method, status, time.perf_counter() - started)


async def count_inference(request: web.Request, status: int) -> None:
    """Count the inputs (or the failure) of an answered perform-inference request; never fails."""
    if not _is_perform(request):
        return
    try:
        await _count_inference(request, status)
    except Exception:
        log.debug("could not count inference inputs", exc_info=True)


class DeploymentCollector(Collector):
    """Local model deployments, read at scrape time from the model manager."""

    def __init__(self, models: Any) -> None:
        self.models = models

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        labels = ["deployment_id", "model_id"]
        gauges = {
            "queue": GaugeMetricFamily("sidecar_deployment_queue_depth", "Inputs waiting in the batching queue",
                                       labels=labels),
            "capacity": GaugeMetricFamily("sidecar_deployment_queue_capacity", "Size of the batching queue",
                                          labels=labels),
            "in_flight": GaugeMetricFamily("sidecar_deployment_in_flight", "Inputs being run by the model",
                                           labels=labels),
            "allocations": GaugeMetricFamily("sidecar_deployment_allocations", "Running allocations (workers)",
                                             labels=labels),
            "target": GaugeMetricFamily("sidecar_deployment_target_allocations", "Allocations wanted",
                                        labels=labels),
        }
        counters = {
            "items": CounterMetricFamily("sidecar_deployment_inferences", "Inputs run by the model", labels=labels),
            "errors": CounterMetricFamily("sidecar_deployment_errors", "Batches that failed", labels=labels),
            "rejected": CounterMetricFamily("sidecar_deployment_rejected",
                                            "Inputs refused because the queue was full", labels=labels),
            "timeouts": CounterMetricFamily("sidecar_deployment_timeouts", "Requests that timed out waiting",
                                            labels=labels),
            "busy": CounterMetricFamily("sidecar_deployment_busy_seconds", "Time spent running batches",
                                        labels=labels),
        }
        batches = SummaryMetricFamily("sidecar_deployment_batch_size", "Inputs per batch (count: batches run)",
                                      labels=labels)
        for deployment in self.models.deployments():
            try:
                values = [deployment.deployment_id, deployment.model_id]
                b = deployment.batcher
                gauges["queue"].add_metric(values, b.queued)
                gauges["capacity"].add_metric(values, b.max_queue)
                gauges["in_flight"].add_metric(values, b.in_flight)
                gauges["allocations"].add_metric(values, b.workers)
                gauges["target"].add_metric(values, deployment.target_allocation_count)
                counters["items"].add_metric(values, b.items)
                counters["errors"].add_metric(values, b.errors)
                counters["rejected"].add_metric(values, b.rejected)
                counters["timeouts"].add_metric(values, b.timeouts)
                counters["busy"].add_metric(values, b.busy_s)
                batches.add_metric(values, count_value=b.batches, sum_value=b.items)
            except Exception:  # a deployment stopping meanwhile must not break the scrape
                log.debug("could not read a deployment's stats", exc_info=True)
        yield from gauges.values()
        yield from counters.values()
        yield batches


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@contextlib.contextmanager
def reporting(models: Any) -> Iterator[None]:
    """Report ``models``' local deployments to the Prometheus registry while inside."""
    collector = DeploymentCollector(models)
    REGISTRY.register(collector)
    try:
        yield
    finally:
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(collector)
