"""Deployments of trained models (``_start``, ``_stop``, ``_update``), ``_infer`` and
``_stats``, as a mixin of :class:`~.service.TrainedModels`.

Deployments started through this API are recorded in Elasticsearch: a restarted sidecar (and
every replica, on first use) starts them again from that record. Deployments that inference
endpoints of the ``elasticsearch`` service made are the endpoints' own; they show in
``_stats`` but are stopped through the inference API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import EsError, action_request_validation, not_found, status_exception, x_content_parse
from ..protocol.service import Endpoint, TaskType
from ..runtime.allocations import AdaptiveAllocations
from ..runtime.deployment_stats import deployment_stats
from . import builtin
from . import config as cfg

if TYPE_CHECKING:
    from ..runtime import Deployment

log = logging.getLogger(__name__)

WAIT_FOR = ("starting", "started", "fully_allocated")
MEMORY_OVERHEAD = 240 * 1024 * 1024
# How long an id resolved for a query or pipeline is reused without asking Elasticsearch again
# (a deployment stopped on another replica is noticed within this time).
RESOLVED_TTL_S = 1.0
_ENDPOINT_TASKS = {"text_embedding": TaskType.TEXT_EMBEDDING, "sparse_embedding": TaskType.SPARSE_EMBEDDING,
                   "rerank": TaskType.RERANK}


def _not_allocated(model_id: str) -> EsError:
    return status_exception(409, f"Trained model [{model_id}] is not allocated to any nodes")


def _iso(ms: float) -> str:
    return dt.datetime.fromtimestamp(ms, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_start(params: dict[str, Any]) -> dict[str, Any]:
    """Start parameters (query string merged with the body), validated as Elasticsearch does."""
    errors: list[str] = []

    def integer(name: str, default: int | None) -> int | None:
        value = params.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise EsError(400, "illegal_argument_exception",
                          f"Failed to parse int parameter [{name}] with value [{value}]") from None

    adaptive = params.get("adaptive_allocations")
    parsed_adaptive = AdaptiveAllocations.parse(adaptive) if adaptive is not None else None
    allocations = integer("number_of_allocations", None)
    threads = integer("threads_per_allocation", 1)
    queue = integer("queue_capacity", 1024)
    if parsed_adaptive is not None and parsed_adaptive.enabled and allocations is not None:
        errors.append("[number_of_allocations] cannot be set if adaptive allocations is enabled")
    if allocations is not None and allocations < 1:
        errors.append("[number_of_allocations] must be a positive integer")
    if threads is None or threads < 1:
        errors.append("[threads_per_allocation] must be a positive integer")
    elif threads & (threads - 1) or threads > 32:
        errors.append("[threads_per_allocation] must be a power of 2 less than or equal to 32")
    if queue is None or queue < 1:
        errors.append("[queue_capacity] must be a positive integer")
    elif queue > 1_000_000:
        errors.append("[queue_capacity] must be less than 1000000")
    priority = params.get("priority", "normal")
    if priority not in ("normal", "low"):
        raise EsError(400, "illegal_argument_exception", f"No enum constant Priority.{str(priority).upper()}")
    wait_for = params.get("wait_for", "started")
    if wait_for not in WAIT_FOR:
        raise EsError(400, "illegal_argument_exception",
                      f"No enum constant org.elasticsearch.xpack.core.ml.inference.assignment.AllocationStatus"
                      f".State.{str(wait_for).upper()}")
    if errors:
        raise action_request_validation(*errors)
    out = {"number_of_allocations": allocations if allocations is not None else (
        None if parsed_adaptive and parsed_adaptive.enabled else 1),
           "threads_per_allocation": threads, "queue_capacity": queue, "priority": priority,
           "wait_for": wait_for}
    if parsed_adaptive is not None:
        out["adaptive_allocations"] = parsed_adaptive.to_dict()
    return out


class DeploymentsMixin:
    # Provided by TrainedModels.
    store: Any
    models: Any
    downloads: builtin.Downloads
    default_timeout_s: float
    _resolved: dict[str, tuple[float, Endpoint]]

    # -- start / stop / update -----------------------------------------------------------------
    async def start(self, model_id: str, params: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        config = await self.config(model_id)  # type: ignore[attr-defined]
        settings = parse_start(params)
        deployment_id = settings["deployment_id"] = params.get("deployment_id") or model_id
        if config.get("model_type") != "pytorch":
            raise status_exception(
                400, f"model [{model_id}] of type [{config.get('model_type')}] cannot be deployed. "
                     "Only PyTorch models can be deployed")
        if deployment_id != model_id and await self.store.get(deployment_id) is not None:
            raise status_exception(
                400, f"Deployment id [{deployment_id}] is the same as an another model which is not the model "
                     "being deployed. Deployment id can be the same as the model being deployed but cannot match "
                     "a different model")
        if self.models.get(deployment_id) is not None:
            raise status_exception(
                409, f"Could not start model deployment because an existing deployment with the same id "
                     f"[{deployment_id}] exist")
        task = self.runtime_task(config)  # type: ignore[attr-defined]
        if model_id in builtin.PACKAGES:
            await self.downloads.wait(model_id, timeout_s)
        await self.store.put_deployment(deployment_id, model_id, settings)
        starting = asyncio.ensure_future(self._deploy(deployment_id, model_id, task, settings, None))
        if settings["wait_for"] == "starting":
            starting.add_done_callback(lambda f: f.cancelled() or f.exception())
        else:
            try:
                await asyncio.wait_for(asyncio.shield(starting), timeout_s)
            except TimeoutError:
                starting.add_done_callback(lambda f: f.cancelled() or f.exception())
                raise status_exception(
                    408, f"Timed out after [{timeout_s:g}s] waiting for model deployment to start. Use the trained "
                         "model stats API to track the state of the deployment.") from None
            except EsError:
                await self.store.delete_deployment(deployment_id)
                raise
        deployment = self.models.get(deployment_id)
        return {"assignment": self._assignment(deployment, settings, config)}

    async def _deploy(self, deployment_id: str, model_id: str, task: str, settings: dict[str, Any],
                      timeout: float | None) -> Deployment:
        adaptive = settings.get("adaptive_allocations")
        return await self.models.deploy(
            deployment_id, model_id, task, num_allocations=settings.get("number_of_allocations"),
            num_threads=settings["threads_per_allocation"],
            adaptive=adaptive if adaptive and adaptive.get("enabled") else None, timeout=timeout)

    def _assignment(self, deployment: Deployment | None, settings: dict[str, Any],
                    config: dict[str, Any]) -> dict[str, Any]:
        from ..runtime.deployment_stats import _NODE_ID

        size = int(config.get("model_size_bytes") or 0)
        state = deployment.state if deployment is not None else "starting"
        allocations = deployment.allocation_count if deployment is not None else 0
        target = deployment.target_allocation_count if deployment is not None else (
            settings.get("number_of_allocations") or 1)
        out: dict[str, Any] = {
            "task_parameters": {
                "model_id": config["model_id"],
                "deployment_id": deployment.deployment_id if deployment else settings.get("deployment_id"),
                "model_bytes": size,
                "threads_per_allocation": settings["threads_per_allocation"],
                "number_of_allocations": target,
                "queue_capacity": settings["queue_capacity"],
                "cache_size": f"{size}b",
                "priority": settings["priority"],
                "per_deployment_memory_bytes": 0,
                "per_allocation_memory_bytes": 0,
            },
            "routing_table": {_NODE_ID: {"current_allocations": allocations, "target_allocations": target,
                                         "routing_state": "started" if state == "started" else state,
                                         "reason": deployment.reason or "" if deployment else ""}},
            "assignment_state": "started" if state == "started" else "starting",
            "start_time": _iso(deployment.start_time if deployment else 0),
            "max_assigned_allocations": max(allocations, 1 if state == "started" else 0),
        }
        if settings.get("adaptive_allocations"):
            out["adaptive_allocations"] = settings["adaptive_allocations"]
        return out

    async def _stored_deployments(self) -> dict[str, dict[str, Any]]:
        return {d["deployment_id"]: d for d in await self.store.deployments()}

    async def stop(self, id_: str, *, force: bool = False, allow_no_match: bool = True) -> dict[str, Any]:
        stored = await self._stored_deployments()
        if id_ in ("_all", "*"):
            targets = list(stored)
        elif id_ in stored:
            targets = [id_]
        else:
            matching = [d for d, doc in stored.items() if doc["model_id"] == id_ or fnmatch.fnmatchcase(d, id_)]
            if not matching:
                local = self.models.get(id_)
                if local is not None:
                    raise status_exception(
                        409, f"Cannot stop deployment [{id_}] as it was created by inference endpoint [{id_}]. "
                             "Use the inference API to delete the endpoint and stop the deployment")
                if "*" in id_ and allow_no_match:
                    return {"stopped": True}
                if await self.store.get(id_) is None:
                    raise not_found(f"No known trained model with deployment with id [{id_}]")
            targets = matching
        if not force:
            for deployment_id in targets:
                if await self.referencing_pipelines(deployment_id):  # type: ignore[attr-defined]
                    raise status_exception(
                        409, f"Cannot stop deployment [{deployment_id}] as it is referenced by ingest processors; "
                             "use force to stop the deployment")
        self._resolved.clear()
        for deployment_id in targets:
            await self.models.undeploy(deployment_id)
            await self.store.delete_deployment(deployment_id)
        return {"stopped": True}

    async def update(self, deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = (await self._stored_deployments()).get(deployment_id)
        if stored is None:
            raise not_found(f"Could not find trained model deployment [{deployment_id}]")
        unknown = [k for k in body if k not in ("number_of_allocations", "adaptive_allocations")]
        if unknown:
            raise x_content_parse(f"[update_trained_model_deployment_request] unknown field [{unknown[0]}]")
        if body.get("number_of_allocations") is None and body.get("adaptive_allocations") is None:
            raise action_request_validation("At least one of [number_of_allocations] or [adaptive_allocations] "
                                            "must be provided")
        deployment = await self.ensure_deployment(deployment_id)
        await self.models.update(deployment_id, num_allocations=body.get("number_of_allocations"),
                                 adaptive=body.get("adaptive_allocations"))
        settings = dict(stored["config"])
        if body.get("number_of_allocations") is not None:
            settings["number_of_allocations"] = int(body["number_of_allocations"])
        if body.get("adaptive_allocations") is not None:
            settings["adaptive_allocations"] = AdaptiveAllocations.parse(body["adaptive_allocations"]).to_dict()
        await self.store.put_deployment(deployment_id, stored["model_id"], settings)
        config = await self.config(stored["model_id"])  # type: ignore[attr-defined]
        return {"assignment": self._assignment(deployment, settings, config)}

    async def ensure_deployment(self, deployment_id: str, timeout: float | None = None) -> Deployment:
        """The running deployment, started here from its stored record when another replica
        (or this process before a restart) started it."""
        local = self.models.get(deployment_id)
        if local is not None and local.state != "failed":
            return local
        stored = (await self._stored_deployments()).get(deployment_id)
        if stored is None:
            raise not_found(f"Could not find trained model deployment [{deployment_id}]")
        config = await self.config(stored["model_id"])  # type: ignore[attr-defined]
        return await self._deploy(deployment_id, stored["model_id"], self.runtime_task(config),  # type: ignore[attr-defined]
                                  stored["config"], timeout)

    async def restore(self) -> None:
        """Start every recorded deployment (at sidecar start)."""
        try:
            if not await self.store.present():
                return
            stored = await self.store.deployments()
        except EsError as exc:
            log.warning("could not read stored trained model deployments: %s", exc.reason)
            return
        for doc in stored:
            try:
                await self.ensure_deployment(doc["deployment_id"])
            except EsError as exc:
                log.warning("could not restart deployment [%s]: %s", doc["deployment_id"], exc.reason)

    # -- resolution ------------------------------------------------------------------------------
    async def find_deployment(self, id_: str, timeout: float | None = None) -> tuple[Deployment, dict[str, Any]] | None:
        """A deployment id or a trained model id → (running deployment, model config), None when
        the id is neither; raises 409 for a known model that is not deployed."""
        stored = await self._stored_deployments()
        if id_ in stored:
            deployment = await self.ensure_deployment(id_, timeout)
            return deployment, await self.config(stored[id_]["model_id"])  # type: ignore[attr-defined]
        config = await self.store.get(id_)
        if config is None:
            return None
        for deployment_id, doc in stored.items():
            if doc["model_id"] == id_:
                return await self.ensure_deployment(deployment_id, timeout), config
        for deployment in self.models.deployments():
            if deployment.model_id == id_ and deployment.state != "failed":
                return deployment, config
        raise _not_allocated(id_)

    async def as_endpoint(self, id_: str) -> Endpoint | None:
        """A deployment id or trained model id as the ``elasticsearch`` endpoint that runs its
        deployment (for the callers that accept model ids, :attr:`sidecar.inference.Inference.fallbacks`)."""
        cached = self._resolved.get(id_)
        if cached is not None and time.monotonic() - cached[0] < RESOLVED_TTL_S:
            running = self.models.get(cached[1].service_settings["deployment_id"])
            if running is not None and running.state != "failed":
                return cached[1]
        if not await self.store.present():  # nothing was ever uploaded: no index is created
            return None
        found = await self.find_deployment(id_, self.default_timeout_s)
        if found is None:
            return None
        deployment, config = found
        endpoint = Endpoint(
            inference_id=id_, task_type=_ENDPOINT_TASKS[deployment.task], service="elasticsearch",
            service_settings={"model_id": config["model_id"], "deployment_id": deployment.deployment_id,
                              "num_allocations": max(1, deployment.target_allocation_count),
                              "num_threads": deployment.threads_per_allocation},
            task_settings={})
        self._resolved[id_] = (time.monotonic(), endpoint)
        return endpoint

    # -- inference -------------------------------------------------------------------------------
    async def infer(self, id_: str, body: Any, *, timeout_s: float) -> dict[str, Any]:
        cfg.object_body(body, "infer_trained_model_request", ("docs", "inference_config", "timeout"))
        docs = body.get("docs")
        if not isinstance(docs, list) or not docs:
            raise action_request_validation("at least one document is required")
        found = await self.find_deployment(id_, timeout_s)
        if found is None:
            raise not_found(f"Could not find trained model [{id_}]")
        deployment, config = found
        task = cfg.task_of(config) or ""
        options = dict((config.get("inference_config") or {}).get(task) or {})
        override = body.get("inference_config")
        if override is not None:
            parsed = cfg.parse_inference_config(override, for_update=True)
            name, values = next(iter(parsed.items()))
            if name != task:
                raise status_exception(
                    403, f"Trained model [{id_}] is configured for task [{task}] but called with task [{name}]")
            options.update(values)
        field = (config.get("input") or {}).get("field_names", ["text_field"])[0]
        texts = []
        for doc in docs:
            value = doc.get(field) if isinstance(doc, dict) else None
            if value is None:
                raise status_exception(400, f"Input field [{field}] does not exist in the source document")
            texts.append(str(value))
        results_field = options.get("results_field") or "predicted_value"
        async with asyncio.timeout(timeout_s):
            if deployment.task == "text_embedding":
                vectors, truncated = await deployment.embed_with_truncation(texts, input_type="none",
                                                                            timeout=timeout_s)
                values = [[float(x) for x in v] for v in vectors]
            elif deployment.task == "sparse_embedding":
                pairs = await deployment.sparse(texts, timeout=timeout_s)
                values = [tokens for tokens, _ in pairs]
                truncated = [t for _, t in pairs]
            else:
                query = options.get("text")
                if not query:
                    raise action_request_validation("[text_similarity] inference requires [text] to be set")
                values = await deployment.rerank(query, texts, timeout=timeout_s)
                truncated = [False] * len(texts)
        results = []
        for value, trunc in zip(values, truncated, strict=True):
            result: dict[str, Any] = {results_field: value}
            if trunc:
                result["is_truncated"] = True
            results.append(result)
        return {"inference_results": results}

    # -- stats -----------------------------------------------------------------------------------
    async def stats(self, expression: str, *, allow_no_match: bool = True) -> dict[str, Any]:
        everything = expression in ("", "_all", "*")
        try:
            configs = await self.store.list() if await self.store.present() else []
        except EsError as exc:
            if exc.status < 500:
                raise
            # Elasticsearch unreachable: the deployments running here are still reported.
            log.warning("trained model stats without stored models: %s", exc.reason)
            configs = []
        deployments = self.models.deployments()
        patterns = [p.strip() for p in expression.split(",") if p.strip()] if not everything else ["*"]

        def matches(*names: str) -> bool:
            return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names if n)

        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for config in configs:
            model_id = config["model_id"]
            own = [d for d in deployments if d.model_id == model_id]
            if not (matches(model_id, *config.get("tags", [])) or any(matches(d.deployment_id) for d in own)):
                continue
            seen.add(model_id)
            size = await self._model_size(config)
            base = {"model_id": model_id,
                    "model_size_stats": {"model_size_bytes": size,
                                         "required_native_memory_bytes": MEMORY_OVERHEAD + 2 * size if size else 0},
                    "pipeline_count": 0}
            if not own:
                entries.append(base)
            for deployment in sorted(own, key=lambda d: d.deployment_id):
                entries.append(self._deployment_entry(base, deployment))
        # Deployments of models that are not stored here (inference endpoints' models).
        for deployment in sorted(deployments, key=lambda d: d.deployment_id):
            if deployment.model_id in seen or not matches(deployment.model_id, deployment.deployment_id):
                continue
            base = {"model_id": deployment.model_id,
                    "model_size_stats": {"model_size_bytes": 0, "required_native_memory_bytes": 0},
                    "pipeline_count": 0}
            entries.append(self._deployment_entry(base, deployment))
        if not entries and not everything:
            wildcard = all("*" in p for p in patterns)
            if not (wildcard and allow_no_match):
                raise not_found(f"No known trained model with model_id [{expression}]")
        return {"count": len(entries), "trained_model_stats": entries}

    @staticmethod
    def _deployment_entry(base: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
        stats = deployment_stats(deployment)
        return {**base, "inference_stats": {
            "failure_count": 0, "inference_count": stats.get("inference_count", 0), "cache_miss_count": 0,
            "missing_all_fields_count": 0, "timestamp": stats.get("start_time", 0)},
            "deployment_stats": stats}

    async def _model_size(self, config: dict[str, Any]) -> int:
        model_id = config["model_id"]
        if model_id in builtin.PACKAGES:
            download = self.downloads.get(model_id) or self.downloads.start(model_id)
            return download.size_bytes
        _, _, length = await self.store.parts_summary(model_id)
        return int(length or config.get("model_size_bytes") or 0)
