"""The Elasticsearch action each of the sidecar's own APIs performs, and the cluster privileges
that grant it (the list :mod:`.authorizer` asks Elasticsearch about)."""

from __future__ import annotations

from dataclasses import dataclass

_MANAGE = ("manage_inference", "manage", "all")
_MONITOR = ("monitor_inference", "manage_inference", "monitor", "manage", "all")
_STATS_ACTION = "cluster:monitor/xpack/ml/inference/stats/get"


@dataclass(frozen=True)
class Action:
    """An Elasticsearch action name, the privileges that grant it (as Elasticsearch lists them
    in its denial message), and any other privilege the sidecar also accepts for it."""

    name: str
    granted_by: tuple[str, ...]
    also: tuple[str, ...] = ()


PUT = Action("cluster:admin/xpack/inference/put", _MANAGE)
UPDATE = Action("cluster:admin/xpack/inference/update", _MANAGE)
DELETE = Action("cluster:admin/xpack/inference/delete", _MANAGE)
GET = Action("cluster:monitor/xpack/inference/get", _MONITOR)
SERVICES = Action("cluster:monitor/xpack/inference/services/get", _MONITOR)
INFER = Action("cluster:monitor/xpack/inference", _MONITOR)
TASK_GET = Action("cluster:monitor/task/get", ("monitor", "manage", "all"))
TASK_CANCEL = Action("cluster:admin/tasks/cancel", ("cancel_task", "manage", "all"))
STATS = Action(
    _STATS_ACTION,
    ("monitor_inference", "monitor_ml", "manage_inference", "manage_ml", "monitor", "manage", "all"),
    also=("monitor_inference",),
)

# The trained model API: Elasticsearch's ML actions, granted by the ML privileges.
_ML_MANAGE = ("manage_ml", "manage", "all")
_ML_MONITOR = ("monitor_ml", "manage_ml", "monitor", "manage", "all")
ML_GET = Action("cluster:monitor/xpack/ml/inference/get", _ML_MONITOR)
ML_PUT = Action("cluster:admin/xpack/ml/inference/put", _ML_MANAGE)
ML_DELETE = Action("cluster:admin/xpack/ml/inference/delete", _ML_MANAGE)
ML_PART = Action("cluster:admin/xpack/ml/trained_models/part/put", _ML_MANAGE)
ML_VOCABULARY = Action("cluster:admin/xpack/ml/trained_models/vocabulary/put", _ML_MANAGE)
ML_START = Action("cluster:admin/xpack/ml/trained_models/deployment/start", _ML_MANAGE)
ML_STOP = Action("cluster:admin/xpack/ml/trained_models/deployment/stop", _ML_MANAGE)
ML_UPDATE = Action("cluster:admin/xpack/ml/trained_models/deployment/update", _ML_MANAGE)
ML_INFER = Action("cluster:monitor/xpack/ml/inference/infer", _ML_MONITOR)


def _trained_model_action(method: str, parts: list[str]) -> Action | None:
    tail = parts[2:]
    if method in ("GET", "HEAD"):
        return STATS if tail and tail[-1] == "_stats" else ML_GET
    if method == "PUT" and len(tail) == 1:
        return ML_PUT
    if method == "DELETE" and len(tail) == 1:
        return ML_DELETE
    if method == "PUT" and len(tail) == 3 and tail[1] == "definition":
        return ML_PART
    if method == "PUT" and len(tail) == 2 and tail[1] == "vocabulary":
        return ML_VOCABULARY
    if method == "POST" and tail and tail[-1] == "_infer":
        return ML_INFER
    if method == "POST" and len(tail) == 3 and tail[1] == "deployment":
        return {"_start": ML_START, "_stop": ML_STOP, "_update": ML_UPDATE}.get(tail[2])
    return None


def action_for(method: str, path: str) -> Action | None:
    """The action a request to one of the sidecar's own APIs performs, or None."""
    if "_inference" not in path and "_ml" not in path and "_tasks" not in path:
        return None  # most requests: the split below would find nothing
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "_inference":
        if parts[-1] == "_update" and method in ("PUT", "POST"):
            return UPDATE
        if method == "PUT":
            return PUT
        if method == "DELETE":
            return DELETE
        if method in ("GET", "HEAD"):
            return SERVICES if len(parts) > 1 and parts[1] == "_services" else GET
        if method == "POST":
            return INFER
        return None
    if parts[:2] == ["_ml", "trained_models"]:
        return _trained_model_action(method, parts)
    if parts[0] == "_tasks" and len(parts) == 2 and method in ("GET", "HEAD"):
        return TASK_GET
    if parts[0] == "_tasks" and len(parts) == 3 and parts[2] == "_cancel" and method == "POST":
        return TASK_CANCEL
    return None
