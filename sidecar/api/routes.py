"""Every route the sidecar answers itself, in one table; anything else is passed through to
Elasticsearch by the catch-all route at the end.

Order matters: the first route whose method and path match wins (``/_inference/{id}/_update``
before ``/_inference/{task_type}/{id}``, ``/{index}/_doc/{id}`` before ``/{index}``).
"""

from __future__ import annotations

from aiohttp import web

from ..metrics import PROXY_ROUTE
from ..proxy import proxy_handler
from . import health, inference, mappings, ops, pipelines, reindex, root, search, trained_models, writes
from .front import guarded
from .index_apis import IndexApis

INDEX = "{index:[^_/][^/]*}"  # an index name or expression (never an API like _cat)
GET, PUT, POST, DELETE, HEAD = ("GET",), ("PUT",), ("POST",), ("DELETE",), ("HEAD",)
GET_POST, PUT_POST = ("GET", "POST"), ("PUT", "POST")

ROUTES: list[tuple[tuple[str, ...], str, object]] = [
    # Inference API
    (GET, "/_inference", inference.list_endpoints),
    (GET, "/_inference/_all", inference.list_endpoints),
    (GET, "/_inference/_services", inference.services_catalogue),
    (GET, "/_inference/_services/{task_type}", inference.services_catalogue),
    (PUT, "/_inference/{inference_id}/_update", inference.update_endpoint),
    (PUT, "/_inference/{task_type}/{inference_id}/_update", inference.update_endpoint),
    (GET, "/_inference/{task_type}/_all", inference.list_endpoints),
    (GET, "/_inference/{inference_id}", inference.get_endpoint),
    (GET, "/_inference/{task_type}/{inference_id}", inference.get_endpoint),
    (PUT, "/_inference/{inference_id}", inference.put_endpoint),
    (PUT, "/_inference/{task_type}/{inference_id}", inference.put_endpoint),
    (DELETE, "/_inference/{inference_id}", inference.delete_endpoint),
    (DELETE, "/_inference/{task_type}/{inference_id}", inference.delete_endpoint),
    (POST, "/_inference/{inference_id}/_stream", inference.stream),
    (POST, "/_inference/{task_type}/{inference_id}/_stream", inference.stream),
    (POST, "/_inference/{inference_id}", inference.perform),
    (POST, "/_inference/{task_type}/{inference_id}", inference.perform),
    # Trained models
    (GET, "/_ml/trained_models/_stats", trained_models.stats),
    (GET, "/_ml/trained_models/{model_id}/_stats", trained_models.stats),
    (GET, "/_ml/trained_models", trained_models.get_models),
    (GET, "/_ml/trained_models/{model_id}", trained_models.get_models),
    (PUT, "/_ml/trained_models/{model_id}", trained_models.put_model),
    (DELETE, "/_ml/trained_models/{model_id}", trained_models.delete_model),
    (PUT, "/_ml/trained_models/{model_id}/definition/{part}", trained_models.put_definition_part),
    (PUT, "/_ml/trained_models/{model_id}/vocabulary", trained_models.put_vocabulary),
    (POST, "/_ml/trained_models/{model_id}/deployment/_start", trained_models.start_deployment),
    (POST, "/_ml/trained_models/{model_id}/deployment/_stop", trained_models.stop_deployment),
    (POST, "/_ml/trained_models/{model_id}/deployment/_update", trained_models.update_deployment),
    (POST, "/_ml/trained_models/{model_id}/deployment/_infer", trained_models.infer),
    (POST, "/_ml/trained_models/{model_id}/_infer", trained_models.infer),
    # Ingest pipelines
    (GET_POST, "/_ingest/pipeline/_simulate", pipelines.simulate),
    (GET_POST, "/_ingest/pipeline/{id}/_simulate", pipelines.simulate),
    (GET, "/_ingest/pipeline", pipelines.get_pipeline),
    (GET, "/_ingest/pipeline/{id}", pipelines.get_pipeline),
    (PUT, "/_ingest/pipeline/{id}", pipelines.put_pipeline),
    (DELETE, "/_ingest/pipeline/{id}", pipelines.delete_pipeline),
    # Search and reads
    (GET_POST, "/_search", search.search),
    (GET_POST, f"/{INDEX}/_search", search.search),
    (GET_POST, "/_msearch", search.msearch),
    (GET_POST, f"/{INDEX}/_msearch", search.msearch),
    (GET_POST, "/_count", search.count),
    (GET_POST, f"/{INDEX}/_count", search.count),
    (GET_POST, "/_mget", search.mget),
    (GET_POST, f"/{INDEX}/_mget", search.mget),
    (GET_POST, "/_all/_search", search.search),
    (GET_POST, "/_all/_msearch", search.msearch),
    (POST, "/_async_search", search.async_search),
    (POST, f"/{INDEX}/_async_search", search.async_search),
    (GET, f"/{INDEX}/_doc/{{id}}", search.get_doc),
    (GET, f"/{INDEX}/_source/{{id}}", search.get_doc),
    (GET_POST, "/_field_caps", search.field_caps),
    (GET_POST, f"/{INDEX}/_field_caps", search.field_caps),
    # Writes
    (PUT_POST, "/_bulk", writes.bulk),
    (PUT_POST, f"/{INDEX}/_bulk", writes.bulk),
    (PUT_POST, f"/{INDEX}/_doc/{{id}}", writes.index_doc),
    (PUT_POST, f"/{INDEX}/_create/{{id}}", writes.index_doc),
    (POST, f"/{INDEX}/_doc", writes.index_doc),
    (POST, f"/{INDEX}/_update/{{id}}", writes.update_doc),
    # Mappings and templates
    (PUT, f"/{INDEX}", mappings.create_index),
    (PUT_POST, f"/{INDEX}/_mapping", mappings.put_mapping),
    (PUT_POST, "/_index_template/{name}", mappings.put_template),
    (PUT_POST, "/_component_template/{name}", mappings.put_template),
    (PUT_POST, "/_template/{name}", mappings.put_template),
    *((GET, path, mappings.get_with_mappings) for path in (
        "/_mapping", f"/{INDEX}/_mapping", "/_index_template", "/_index_template/{name}",
        "/_component_template", "/_component_template/{name}", "/_template", "/_template/{name}",
        "/_index_template/_simulate_index/{name}", "/_index_template/_simulate/{name}")),
    (POST, "/_index_template/_simulate_index/{name}", mappings.get_with_mappings),
    (GET, f"/{INDEX}", mappings.get_index),
    # Reindex and its tasks
    (POST, "/_reindex", reindex.reindex),
    (POST, f"/{INDEX}/_update_by_query", reindex.update_by_query),
    (GET, "/_tasks/{task_id}", reindex.get_task),
    (POST, "/_tasks/{task_id}/_cancel", reindex.cancel_task),
    # The sidecar's own operations
    (GET, "/_sidecar/metrics", ops.metrics_handler),
    (GET, "/_sidecar/live", ops.live_handler),
    (GET, "/_sidecar/ready", ops.ready_handler),
    (GET, "/_sidecar/health", health.health_handler),
    (GET, "/", root.root_handler),
    (HEAD, "/", root.root_handler),
]


def register(router: web.UrlDispatcher) -> None:
    """Every route behind the front door (:mod:`.front`), with its metrics label. Routes under
    ``/{index}`` are dispatched on their API segment (:mod:`.index_apis`)."""
    index_apis = IndexApis(INDEX)
    router.register_resource(index_apis)
    for methods, path, handler in ROUTES:
        resource = index_apis.add(path) if path.startswith(index_apis.prefix) else router.add_resource(path)
        counts_inputs = path.startswith("/_inference/") and "POST" in methods
        front = guarded(handler, resource.canonical, counts_inputs=counts_inputs)  # type: ignore[arg-type]
        for method in methods:
            resource.add_route(method, front)
    # Everything else goes to Elasticsearch untouched.
    router.add_resource("/{tail:.*}").add_route("*", guarded(proxy_handler, PROXY_ROUTE, passthrough=True))
