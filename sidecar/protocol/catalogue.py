"""Which services and task types the node's Elasticsearch version has, for
``GET _inference/_services`` and for creating endpoints.

A service (or one of its task types) exists from a version on. Elasticsearch ships two lines
at once (8.19 next to 9.1), so a feature can arrive in both: a *since* is a tuple of the
versions, one per major, that first had it. A version has the feature when a since of its own
major is not newer than it, or when every since belongs to an older major (a new major keeps
what the old one had).

Each service class may say its own :attr:`~sidecar.protocol.service.Service.since` and
:attr:`~sidecar.protocol.service.Service.task_types_since` (``(9, 2)`` or ``((8, 19), (9, 1))``); a class that says nothing is looked
up in :data:`SERVICES_SINCE`, the versions in which Elasticsearch's source registers each of its
services (``InferencePlugin.getInferenceServiceFactories``), and a name not in it is listed on
every version.

``elastic`` (the Elastic Inference Service) is not in the list: Elasticsearch leaves it out of
``_services`` unless the node is connected to Elastic's hosted service and authorised there
(``hideFromConfigurationApi``; from 9.x its configuration is fetched from that service), which a
self-managed node without it never is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import Service, TaskType

Version = tuple[int, ...]
Since = tuple[Version, ...]

# The version of Elasticsearch's source that first registers each service, per major line.
SERVICES_SINCE: dict[str, Since] = {
    "elser": ((8, 11),),
    "hugging_face": ((8, 12),),
    "hugging_face_elser": ((8, 12),),
    "openai": ((8, 12),),
    "cohere": ((8, 13),),
    "elasticsearch": ((8, 13),),
    "azureopenai": ((8, 14),),
    "azureaistudio": ((8, 14),),
    "googleaistudio": ((8, 15),),
    "googlevertexai": ((8, 15),),
    "mistral": ((8, 15),),
    "anthropic": ((8, 15),),
    "amazonbedrock": ((8, 15),),
    "alibabacloud-ai-search": ((8, 16),),
    "watsonxai": ((8, 16),),
    "jinaai": ((8, 18),),
    "voyageai": ((8, 19), (9, 0)),
    "deepseek": ((8, 19), (9, 1)),
    "amazon_sagemaker": ((8, 19), (9, 1)),
    "custom": ((8, 19), (9, 1)),
    "llama": ((8, 19), (9, 1)),
    "ai21": ((9, 1),),
    "groq": ((9, 2),),
    "nvidia": ((9, 3),),
    "fireworksai": ((9, 3),),
    "mixedbread": ((9, 3),),
    "contextualai": ((9, 3),),
    "openshift_ai": ((9, 3),),
}


def has(since: Since | None, version: Iterable[int]) -> bool:
    """Whether ``version`` has a feature that arrived at ``since`` (None: always)."""
    if not since:
        return True
    current = tuple(version)[:2]
    same_major = [s for s in since if s[0] == current[0]]
    if same_major:
        return current >= min(same_major)[:2]
    return all(s[0] < current[0] for s in since)


def service_since(service: Service) -> Since | None:
    return _as_since(service.since) if service.since is not None else SERVICES_SINCE.get(service.name)


def listed(service: Service, version: Iterable[int]) -> bool:
    """Whether the node's version has ``service`` at all."""
    return has(service_since(service), version)


def task_types(service: Service, version: Iterable[int]) -> tuple[TaskType, ...]:
    """The task types ``service`` has on the node's version, in the service's order."""
    version = tuple(version)
    if not listed(service, version):
        return ()
    return tuple(
        t for t in service.task_types
        if t not in service.extra_task_types and has(_as_since(service.task_types_since.get(t)), version)
    )


def _as_since(value: Any) -> Since | None:
    """``(9, 2)`` and ``((8, 19), (9, 1))`` both name a since."""
    if value is None or (value and isinstance(value[0], tuple)):
        return value
    return (tuple(value),)


def describe(service: Service, version: Iterable[int]) -> dict[str, Any] | None:
    """The service's ``_services`` entry on the node's version (None when it is not listed):
    its task types, and only the settings of those task types."""
    if service.hidden_from_catalogue:
        return None
    available = task_types(service, version)
    if not available:
        return None
    names = [t.value for t in available]
    entry = service.describe()
    entry["task_types"] = names
    configurations = {}
    for key, field in entry["configurations"].items():
        supported = field.get("supported_task_types")
        if supported is not None:
            kept = [t for t in supported if t in names]
            if not kept:
                continue
            field = {**field, "supported_task_types": kept}
        configurations[key] = field
    entry["configurations"] = configurations
    return entry


def catalogue(services: Iterable[Service], version: Iterable[int], wanted: TaskType | None = None) -> list[dict[str, Any]]:
    """``GET _inference/_services`` (``/{task_type}`` with ``wanted``), sorted by service name."""
    version = tuple(version)
    out = []
    for service in sorted(services, key=lambda s: s.name):
        entry = describe(service, version)
        if entry is not None and (wanted is None or wanted.value in entry["task_types"]):
            out.append(entry)
    return out
