"""``GET _inference/_services`` lists the services and task types of the node's version, and
creating an endpoint of a service or task type newer than the node fails as on that node.

The expected lists are those of Elasticsearch 8.19 and 9.5 (each version's API specification of
``PUT _inference``, checked against the source: transport versions date watsonx completion to
9.2). Services whose module is not in ``sidecar/services`` are left out of the comparison."""

from __future__ import annotations

import uuid

import http_util as http
import pytest

from sidecar.protocol.catalogue import catalogue, has
from sidecar.protocol.registry import ServiceContext, Services
from sidecar.protocol.service import TaskType

CE, C, TE, SE, R, E = "chat_completion", "completion", "text_embedding", "sparse_embedding", "rerank", "embedding"
ES_8_19 = {
    "alibabacloud-ai-search": {C, R, SE, TE},
    "amazonbedrock": {C, TE},
    "amazon_sagemaker": {CE, C, R, SE, TE},
    "anthropic": {C},
    "azureaistudio": {C, TE},
    "azureopenai": {C, TE},
    "cohere": {C, R, TE},
    "deepseek": {CE, C},
    "elasticsearch": {R, SE, TE},
    "elser": {SE},
    "googleaistudio": {C, TE},
    "googlevertexai": {CE, C, R, TE},
    "hugging_face": {CE, C, R, SE, TE},
    "jinaai": {R, TE},
    "llama": {CE, C, TE},
    "mistral": {CE, C, TE},
    "openai": {CE, C, TE},
    "voyageai": {R, TE},
    "watsonxai": {R, TE},
}
ES_9_5 = {
    **ES_8_19,
    "ai21": {CE, C},
    "amazonbedrock": {CE, C, TE},
    "anthropic": {CE, C},
    "azureaistudio": {C, R, TE},
    "azureopenai": {CE, C, TE},
    "fireworksai": {CE, C, TE},
    "groq": {CE},
    "jinaai": {E, R, TE},
    "nvidia": {CE, C, R, TE},
    "openshift_ai": {CE, C, R, TE},
    "watsonxai": {CE, C, R, TE},
}
# Added in 9.x after 8.19 was cut: never on an 8.19 node.
NINE_ONLY = {"ai21", "groq", "nvidia", "fireworksai", "mixedbread", "contextualai", "openshift_ai"}
# Usable, yet hidden by Elasticsearch itself (hideFromConfigurationApi); `elastic` needs Elastic's
# hosted service and is not served here at all.
NOT_LISTED = {"hugging_face_elser", "custom", "elastic"}
# The services whose task types this test holds exactly; the others (each tested in its own
# module) are held to the version gate: nothing of 9.x on an 8.19 node.
EXACT = {"alibabacloud-ai-search", "amazonbedrock", "anthropic", "azureaistudio", "azureopenai", "cohere",
         "deepseek", "elasticsearch", "elser", "googleaistudio", "googlevertexai", "hugging_face", "jinaai",
         "mistral", "openai", "voyageai", "watsonxai"}


def expected(version: tuple[int, ...]) -> dict[str, set[str]]:
    return ES_8_19 if version < (9, 0) else ES_9_5


def check(listing: list[dict], version: tuple[int, ...], present: set[str]) -> None:
    wanted = expected(version)
    got = {s["service"]: set(s["task_types"]) for s in listing}
    assert [s["service"] for s in listing] == sorted(got)
    for name, task_types in wanted.items():
        if name in present and name in EXACT:
            assert got.get(name) == task_types, (name, got.get(name), task_types)
        elif name in got:
            assert got[name] <= task_types, (name, got[name], task_types)
    assert not NOT_LISTED & set(got)
    if version < (9, 0):
        assert not NINE_ONLY & set(got), NINE_ONLY & set(got)
        assert set(got) <= set(wanted)
    for entry in listing:
        for key, field in entry["configurations"].items():
            assert set(field.get("supported_task_types", entry["task_types"])) <= set(entry["task_types"]), key


@pytest.fixture(scope="module")
def services() -> Services:
    return Services(ServiceContext())


@pytest.mark.parametrize("version", [(8, 19, 21), (9, 5, 3)])
def test_catalogue_per_version(services: Services, version: tuple[int, ...]) -> None:
    present = {s.name for s in services.all()}
    check(catalogue(services.all(), version), version, present)
    only_chat = catalogue(services.all(), version, TaskType.CHAT_COMPLETION)
    assert only_chat and all(CE in s["task_types"] for s in only_chat)


def test_since_rules() -> None:
    both_lines = ((8, 19), (9, 1))
    assert has(both_lines, (8, 19, 0)) and has(both_lines, (9, 1, 2)) and has(both_lines, (9, 5, 3))
    assert not has(both_lines, (8, 18, 1)) and not has(both_lines, (9, 0, 5))
    assert has(((8, 15),), (9, 0, 0)) and not has(((9, 2),), (8, 19, 21)) and has(None, (7, 17, 0))


def test_settings_of_later_task_types_are_left_out_on_older_nodes(services: Services) -> None:
    azure = next(s for s in catalogue(services.all(), (8, 19, 21)) if s["service"] == "azureopenai")
    assert all(CE not in f["supported_task_types"] for f in azure["configurations"].values())
    azure = next(s for s in catalogue(services.all(), (9, 5, 3)) if s["service"] == "azureopenai")
    assert CE in azure["configurations"]["deployment_id"]["supported_task_types"]


@pytest.mark.es
def test_services_through_the_sidecar(sidecar_url, es_url, services: Services) -> None:
    version = http.node_version(es_url)
    status, listing = http.json_request("GET", f"{sidecar_url}/_inference/_services")
    assert status == 200
    check(listing, version, {s.name for s in services.all()})
    status, chat = http.json_request("GET", f"{sidecar_url}/_inference/_services/chat_completion")
    assert status == 200
    assert {s["service"] for s in chat} == {s["service"] for s in listing if CE in s["task_types"]}
    # A task type newer than the node is refused when an endpoint is created.
    inference_id = f"azure-chat-{uuid.uuid4().hex[:8]}"
    body = {"service": "azureopenai", "service_settings": {
        "api_key": "k", "resource_name": "r", "deployment_id": "d", "api_version": "2024-02-01"}}
    status, created = http.json_request("PUT", f"{sidecar_url}/_inference/chat_completion/{inference_id}", body)
    try:
        if version < (9, 2):
            assert status == 400, created
            assert created["error"]["reason"] == "The [azureopenai] service does not support task type [chat_completion]"
            status, _ = http.json_request("GET", f"{sidecar_url}/_inference/{inference_id}")
            assert status == 404  # nothing stored
        else:
            assert status == 200 and created["task_type"] == CE, created
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")
