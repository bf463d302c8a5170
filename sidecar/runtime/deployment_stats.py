"""How a deployment reads in ``GET _ml/trained_models/_stats``: Elasticsearch's
``deployment_stats`` object, with the sidecar standing in for one ML node."""

from __future__ import annotations

import socket
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .deployment import Deployment

_NODE_NAME = socket.gethostname() or "sidecar"
_NODE_ID = uuid.uuid5(uuid.NAMESPACE_DNS, f"es-inference-sidecar.{_NODE_NAME}").hex[:22]
_EPHEMERAL_ID = uuid.uuid4().hex[:22]


def deployment_stats(dep: Deployment) -> dict[str, Any]:
    """The ``deployment_stats`` object of ``GET _ml/trained_models/_stats``."""
    b = dep.batcher
    start_ms = int(dep.start_time * 1000)
    out: dict[str, Any] = {
        "deployment_id": dep.deployment_id,
        "model_id": dep.model_id,
        "threads_per_allocation": dep.threads_per_allocation,
        "number_of_allocations": dep.target_allocation_count,
    }
    if dep.adaptive is not None:
        out["adaptive_allocations"] = dep.adaptive.to_dict()
    out["queue_capacity"] = b.max_queue
    out["state"] = dep.state
    if dep.reason:
        out["reason"] = dep.reason
    out["allocation_status"] = {
        "allocation_count": dep.allocation_count,
        "target_allocation_count": dep.target_allocation_count,
        "state": dep.allocation_state(),
    }
    out["priority"] = "normal"
    out["start_time"] = start_ms
    if b.errors:
        out["error_count"] = b.errors
    if b.rejected:
        out["rejected_execution_count"] = b.rejected
    if b.timeouts:
        out["timeout_count"] = b.timeouts
    if b.items:
        out["inference_count"] = b.items
    out["peak_throughput_per_minute"] = b.throughput.peak

    node: dict[str, Any] = {
        "node": {
            _NODE_ID: {
                "name": _NODE_NAME,
                "ephemeral_id": _EPHEMERAL_ID,
                "transport_address": f"{_NODE_NAME}:0",
                "attributes": {},
                "roles": ["ml"],
            }
        },
        "routing_state": {"routing_state": _routing_state(dep.state)},
        "inference_count": b.items,
    }
    if dep.reason:
        node["routing_state"]["reason"] = dep.reason
    if b.items:
        avg_ms = b.busy_s * 1000.0 / b.items
        node["average_inference_time_ms"] = round(avg_ms, 3)
        node["average_inference_time_ms_excluding_cache_hits"] = round(avg_ms, 3)
    node["inference_cache_hit_count"] = 0
    if b.last_access is not None:
        node["last_access"] = int(b.last_access * 1000)
    node["number_of_pending_requests"] = b.queued
    if b.errors:
        node["error_count"] = b.errors
    if b.rejected:
        node["rejected_execution_count"] = b.rejected
    if b.timeouts:
        node["timeout_count"] = b.timeouts
    node["start_time"] = start_ms
    node["threads_per_allocation"] = dep.threads_per_allocation
    node["number_of_allocations"] = dep.allocation_count
    node["peak_throughput_per_minute"] = b.throughput.peak
    node["throughput_last_minute"] = b.throughput.last()
    node["inference_cache_hit_count_last_minute"] = 0
    out["nodes"] = [node] if dep.state != "failed" else []
    return out


def _routing_state(state: str) -> str:
    return {"starting": "starting", "started": "started", "stopping": "stopping", "failed": "failed"}.get(
        state, "stopped"
    )
