"""Deployments of local models: allocations, threads, adaptive scaling, shared weights.

A :class:`Deployment` is what Elasticsearch calls a trained model deployment: a model id, a
task, ``number_of_allocations`` (parallel workers, each running one batch at a time) and
``threads_per_allocation`` (torch intra-op threads per worker, on CPU). Each deployment has its own
bounded micro-batching queue (:mod:`.batcher`), so its allocations, queue capacity and stats
are its own, as in Elasticsearch.

The weights are shared: the :class:`ModelManager` keeps **one loaded copy per distinct
resolved model directory and task**, reference-counted across deployments (ten deployments
of one model hold one copy), and frees it when the last deployment using it is undeployed.

Adaptive allocations (``{"enabled": true, "min_number_of_allocations": m,
"max_number_of_allocations": M}``) scale a deployment's workers between ``m`` and ``M``:
up by one whenever more items wait than the current workers can take in one round, down by
one when they have been mostly idle for ``scale_down_after_s``, and — when ``m`` is 0 — to
zero after ``scale_to_zero_after_s`` without requests (Elasticsearch: 15 minutes). Scaling
to zero only stops the workers; the model stays loaded, and a request arriving at zero
starts a worker at once and waits in the queue (bounded by its timeout).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EsError, not_found, status_exception, unavailable, validation
from ..errors import timeout as timeout_error
from .batcher import MicroBatcher
from .models import TASKS, LoadedModel, ModelInfo, load_model, resolve_device
from .resolve import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

# Items per batch when --max-batch-size is not set. On a CPU small batches are as fast per
# item as large ones and keep latency low; a GPU needs large batches to be busy (measured on
# an H100 with all-MiniLM-L6-v2: 1,000 concurrent single-text calls ran at 0.38x the offline
# encode rate with batches of 32 and 0.70-0.93x with 128-256).
BATCH_SIZE_CPU = 32
BATCH_SIZE_GPU = 256

# Requests up to this many characters are counted in tokens on the event loop (tens of
# microseconds, less than a hand-off to a thread); larger ones in the manager's tokenising
# thread, so that a bulk window never blocks the loop.
INLINE_TOKENIZE_CHARS = 2_000

_NODE_NAME = socket.gethostname() or "sidecar"
_NODE_ID = uuid.uuid5(uuid.NAMESPACE_DNS, f"es-inference-sidecar.{_NODE_NAME}").hex[:22]
_EPHEMERAL_ID = uuid.uuid4().hex[:22]


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s"


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a shared future's exception as seen (its waiters may all have gone)."""
    if not fut.cancelled():
        fut.exception()


@dataclass
class AdaptiveAllocations:
    enabled: bool = False
    min_number_of_allocations: int = 0
    max_number_of_allocations: int = 32

    @classmethod
    def parse(cls, value: dict[str, Any] | None) -> AdaptiveAllocations | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise validation("[adaptive_allocations] must be an object")
        enabled = bool(value.get("enabled", False))
        lo = value.get("min_number_of_allocations")
        hi = value.get("max_number_of_allocations")
        lo = 0 if lo is None else int(lo)
        hi = max(lo, 1, 32) if hi is None else int(hi)
        errors = []
        if lo < 0:
            errors.append("[min_number_of_allocations] must be greater than or equal to 0")
        if hi < 1:
            errors.append("[max_number_of_allocations] must be greater than or equal to 1")
        if hi < lo:
            errors.append(
                "[max_number_of_allocations] must be greater than or equal to [min_number_of_allocations]"
            )
        if errors:
            raise validation(*errors)
        return cls(enabled, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "min_number_of_allocations": self.min_number_of_allocations,
            "max_number_of_allocations": self.max_number_of_allocations,
        }


class _SharedModel:
    """One loaded copy of a model (directory + task), shared by deployments."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.refs = 0
        self.load: asyncio.Future[LoadedModel] | None = None


class Deployment:
    """A started (or starting) model deployment. Create through :meth:`ModelManager.deploy`."""

    def __init__(
        self,
        manager: ModelManager,
        deployment_id: str,
        model_id: str,
        task: str,
        *,
        num_allocations: int,
        num_threads: int,
        adaptive: AdaptiveAllocations | None,
    ) -> None:
        self._manager = manager
        self.deployment_id = deployment_id
        self.model_id = model_id
        self.task = task
        # Unknown (dimensions None, max_seq_length 0) until the model has loaded.
        self.info = ModelInfo(None, None, 0, False)
        self.state = "starting"
        self.reason: str | None = None
        self.threads_per_allocation = num_threads
        self.adaptive = adaptive
        self.resolved: ResolvedModel | None = None
        self.start_time = time.time()
        self.query_prefix = ""
        self.passage_prefix = ""
        self._target = num_allocations
        self._model: LoadedModel | None = None
        self._shared: _SharedModel | None = None
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._start_task: asyncio.Task | None = None
        self._monitor: asyncio.Task | None = None
        self._batcher = MicroBatcher(
            self._run,
            name=deployment_id,
            length=LoadedModel.item_length,
            max_batch_size=manager.max_batch_size or BATCH_SIZE_CPU,
            max_batch_wait_ms=manager.max_batch_wait_ms,
            max_queue=manager.max_queue,
        )
        now = time.monotonic()
        self._last_request = now
        self._last_scale = now
        self._busy_mark = (now, 0.0)
        self._utilisation = 0.0

    # -- public state --------------------------------------------------------------------

    @property
    def allocation_count(self) -> int:
        return self._batcher.workers if self.state == "started" else 0

    @property
    def target_allocation_count(self) -> int:
        return self._target

    @property
    def queue_capacity(self) -> int:
        return self._batcher.max_queue

    @property
    def batcher(self) -> MicroBatcher:
        return self._batcher

    @property
    def model(self) -> LoadedModel | None:
        """The loaded model (shared with other deployments of the same model)."""
        return self._model

    def allocation_state(self) -> str:
        count, target = self.allocation_count, self.target_allocation_count
        if count == 0 and target > 0:
            return "starting"
        if count < target:
            return "started"
        return "fully_allocated"

    # -- inference -----------------------------------------------------------------------

    async def embed(
        self, texts: list[str], *, input_type: str | None = None, timeout: float | None = None
    ) -> np.ndarray:
        """Dense embeddings, float32 ``(len(texts), dims)``."""
        vectors, _ = await self.embed_with_truncation(texts, input_type=input_type, timeout=timeout)
        return vectors

    async def embed_with_truncation(
        self, texts: list[str], *, input_type: str | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, list[bool]]:
        """Dense embeddings and, per text, whether it was truncated to the model window."""
        self._check_task("text_embedding")

        def items() -> list[str]:
            prefix = self.query_prefix if _is_search(input_type) else self.passage_prefix
            return [prefix + t for t in texts] if prefix else list(texts)

        results = await self._infer(items, len(texts), timeout)
        dims = self.info.dimensions or 0
        if not results:
            return np.zeros((0, dims), dtype=np.float32), []
        vectors = np.stack([r[0] for r in results]).astype(np.float32, copy=False)
        return vectors, [bool(r[1]) for r in results]

    async def sparse(
        self, texts: list[str], *, timeout: float | None = None
    ) -> list[tuple[dict[str, float], bool]]:
        """Per text: ``({token: weight}, is_truncated)``, tokens ordered by weight."""
        self._check_task("sparse_embedding")
        results = await self._infer(lambda: list(texts), len(texts), timeout)
        return [(r[0], bool(r[1])) for r in results]

    async def rerank(self, query: str, docs: list[str], *, timeout: float | None = None) -> list[float]:
        """One relevance score per doc, in input order (the model's raw score)."""
        self._check_task("rerank")
        results = await self._infer(lambda: [(query, d) for d in docs], len(docs), timeout)
        return [float(r[0]) for r in results]

    def _check_task(self, task: str) -> None:
        if self.task != task:
            raise status_exception(
                400,
                f"Deployment [{self.deployment_id}] of model [{self.model_id}] serves task "
                f"[{self.task}], not [{task}]",
            )

    async def _infer(self, make_items: Callable[[], list[Any]], n: int, timeout: float | None) -> list[Any]:
        if self.state == "stopping":
            raise self._stopped_error()
        if n == 0:
            return []
        self._last_request = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await self.wait_started()
                items = make_items()
                self._on_demand(len(items))
                return await self._batcher.submit(items, await self._token_lengths(items))
        except TimeoutError:
            self._batcher.timeouts += 1
            raise timeout_error(
                f"inference on deployment [{self.deployment_id}] of model [{self.model_id}] "
                f"timed out after [{_fmt_seconds(timeout or 0)}]"
            ) from None
        except EsError:
            raise
        except Exception as exc:  # the model itself failed on this input
            raise status_exception(
                500,
                f"inference on deployment [{self.deployment_id}] of model [{self.model_id}] failed: "
                f"{type(exc).__name__}: {exc}",
            ) from exc

    async def _token_lengths(self, items: list[Any]) -> list[int] | None:
        """The items' token counts, by which the queue groups them into batches."""
        model = self._model
        if model is None:
            return None
        if sum(map(LoadedModel.item_length, items)) <= INLINE_TOKENIZE_CHARS:
            return model.token_lengths(items)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._manager.tokenize_pool, model.token_lengths, items)

    def _run(self, items: list[Any], lengths: list[int]) -> list[Any]:
        """Worker thread: run one batch on the shared model."""
        model = self._model
        if model is None:
            raise unavailable(f"deployment [{self.deployment_id}] has no model loaded")
        return model.run_batch(items, threads=self.threads_per_allocation, lengths=lengths)

    # -- lifecycle -----------------------------------------------------------------------

    async def wait_started(self) -> None:
        """Wait until the model is loaded and workers run (raises the load error, if any)."""
        await asyncio.shield(self._started)

    def _stopped_error(self) -> EsError:
        return status_exception(409, f"deployment [{self.deployment_id}] is stopping")

    def _set_started(self, model: LoadedModel, resolved: ResolvedModel, shared: _SharedModel) -> None:
        self._model = model
        self._shared = shared
        self.resolved = resolved
        self.info = model.info
        self.query_prefix, self.passage_prefix = model.query_prefix, model.passage_prefix
        if resolved.is_e5 and not (self.query_prefix or self.passage_prefix):
            self.query_prefix, self.passage_prefix = "query: ", "passage: "
        self.state = "started"
        if not self._manager.max_batch_size:
            self._batcher.max_batch_size = BATCH_SIZE_CPU if model.on_cpu else BATCH_SIZE_GPU
        self._batcher.set_workers(self._target)
        self._last_request = self._last_scale = time.monotonic()
        if not self._started.done():
            self._started.set_result(None)
        if self.adaptive and self.adaptive.enabled:
            self._start_monitor()

    def _set_failed(self, error: EsError) -> None:
        if self.state != "stopping":
            self.state = "failed"
            self.reason = error.reason
        if not self._started.done():
            self._started.set_exception(error)
            # Nobody may be waiting any more (deploy timed out): mark the exception retrieved.
            self._started.exception()

    # -- allocations ---------------------------------------------------------------------

    def _set_allocations(self, n: int) -> None:
        n = max(0, int(n))
        if n != self._target:
            log.info(
                "deployment [%s] allocations %d -> %d (queued %d)",
                self.deployment_id,
                self._target,
                n,
                self._batcher.queued,
            )
            self._last_scale = time.monotonic()
        self._target = n
        if self.state == "started":
            self._batcher.set_workers(n)

    def _on_demand(self, n_items: int) -> None:
        """A request arrived: wake from zero, or add a worker when the backlog grows."""
        adaptive = self.adaptive
        if not adaptive or not adaptive.enabled or self.state != "started":
            return
        if self._target == 0:
            self._set_allocations(max(1, adaptive.min_number_of_allocations))
            return
        backlog = self._batcher.queued + n_items
        if (
            backlog > self._target * self._batcher.max_batch_size
            and self._target < adaptive.max_number_of_allocations
        ):
            self._set_allocations(self._target + 1)

    def _start_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._adapt_loop(), name=f"{self.deployment_id}-adaptive")

    async def _adapt_loop(self) -> None:
        interval = self._manager.adaptive_interval_s
        while self.state == "started" and self.adaptive and self.adaptive.enabled:
            await asyncio.sleep(interval)
            try:
                self.adapt()
            except Exception:  # never let the monitor die silently
                log.exception("adaptive allocations failed for deployment [%s]", self.deployment_id)

    def adapt(self, now: float | None = None) -> None:
        """One adaptive-allocations decision (run periodically)."""
        adaptive = self.adaptive
        if not adaptive or not adaptive.enabled or self.state != "started":
            return
        now = time.monotonic() if now is None else now
        b = self._batcher
        # Utilisation of the running workers since the last decision (EWMA).
        last_t, last_busy = self._busy_mark
        elapsed = max(1e-6, now - last_t)
        workers = max(1, self._target)
        sample = min(1.0, (b.busy_s - last_busy) / (elapsed * workers))
        self._utilisation = 0.5 * self._utilisation + 0.5 * sample
        self._busy_mark = (now, b.busy_s)

        lo, hi = adaptive.min_number_of_allocations, adaptive.max_number_of_allocations
        idle = b.queued == 0 and b.in_flight == 0
        if self._target < lo:
            self._set_allocations(lo)
        elif self._target > hi:
            self._set_allocations(hi)
        elif self._target == 0:
            if b.queued:
                self._set_allocations(max(1, lo))
        elif b.queued > self._target * b.max_batch_size and self._target < hi:
            self._set_allocations(self._target + 1)
        elif lo == 0 and idle and now - self._last_request >= self._manager.scale_to_zero_after_s:
            self._set_allocations(0)
        elif (
            self._target > max(1, lo)
            and b.queued == 0
            and now - self._last_scale >= self._manager.scale_down_after_s
            and self._utilisation < 0.5 * (self._target - 1) / self._target
        ):
            self._set_allocations(self._target - 1)

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The ``deployment_stats`` object of ``GET _ml/trained_models/_stats``."""
        b = self._batcher
        start_ms = int(self.start_time * 1000)
        out: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "model_id": self.model_id,
            "threads_per_allocation": self.threads_per_allocation,
            "number_of_allocations": self.target_allocation_count,
        }
        if self.adaptive is not None:
            out["adaptive_allocations"] = self.adaptive.to_dict()
        out["queue_capacity"] = b.max_queue
        out["state"] = self.state
        if self.reason:
            out["reason"] = self.reason
        out["allocation_status"] = {
            "allocation_count": self.allocation_count,
            "target_allocation_count": self.target_allocation_count,
            "state": self.allocation_state(),
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
            "routing_state": {"routing_state": _routing_state(self.state)},
            "inference_count": b.items,
        }
        if self.reason:
            node["routing_state"]["reason"] = self.reason
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
        node["threads_per_allocation"] = self.threads_per_allocation
        node["number_of_allocations"] = self.allocation_count
        node["peak_throughput_per_minute"] = b.throughput.peak
        node["throughput_last_minute"] = b.throughput.last()
        node["inference_cache_hit_count_last_minute"] = 0
        out["nodes"] = [node] if self.state != "failed" else []
        return out


def _routing_state(state: str) -> str:
    return {"starting": "starting", "started": "started", "stopping": "stopping", "failed": "failed"}.get(
        state, "stopped"
    )


def _is_search(input_type: str | None) -> bool:
    return bool(input_type) and input_type.lower() in ("search", "internal_search", "query")


class ModelManager:
    """Owns every deployment and the loaded models behind them."""

    def __init__(
        self,
        *,
        aliases: dict[str, str] | None = None,
        cache_dir: str | None = None,
        max_batch_size: int | None = None,
        max_batch_wait_ms: float = 0.0,
        max_queue: int = 10_000,
        device: str = "auto",
        backend: str = "torch",
        scale_to_zero_after_s: float = 900.0,
        scale_down_after_s: float = 60.0,
        adaptive_interval_s: float = 1.0,
    ) -> None:
        self.aliases = dict(aliases or {})
        self.cache_dir = cache_dir
        self.max_batch_size = max_batch_size
        self.max_batch_wait_ms = max_batch_wait_ms
        self.max_queue = max_queue
        self.device = device
        self.backend = backend
        self.scale_to_zero_after_s = scale_to_zero_after_s
        self.scale_down_after_s = scale_down_after_s
        self.adaptive_interval_s = adaptive_interval_s
        self._deployments: dict[str, Deployment] = {}
        self._models: dict[tuple[str, str], _SharedModel] = {}
        self._resolving: dict[str, asyncio.Future[ResolvedModel]] = {}
        self._closed = False
        # Counts tokens of large requests off the event loop (a fast tokenizer spreads one
        # call over the cores itself).
        self.tokenize_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")

    # -- queries -------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def deployments(self) -> list[Deployment]:
        return list(self._deployments.values())

    def loaded_models(self) -> dict[tuple[str, str], LoadedModel]:
        """Loaded model copies by (model directory, task)."""
        out = {}
        for key, shared in self._models.items():
            if shared.load is not None and shared.load.done() and not shared.load.cancelled():
                if shared.load.exception() is None:
                    out[key] = shared.load.result()
        return out

    # -- deploy --------------------------------------------------------------------------

    async def deploy(
        self,
        deployment_id: str,
        model_id: str,
        task: str,
        *,
        num_allocations: int | None = 1,
        num_threads: int = 1,
        adaptive: dict | None = None,
        timeout: float | None = None,
    ) -> Deployment:
        """Start (or return the existing) deployment; returns once the model is loaded."""
        if self._closed:
            raise unavailable("the model runtime is shutting down")
        if task not in TASKS:
            raise status_exception(
                400, f"task [{task}] is not supported by local models; use one of {list(TASKS)}"
            )
        existing = self._deployments.get(deployment_id)
        if existing is not None and existing.state == "failed":
            await self.undeploy(deployment_id)
            existing = None
        if existing is not None:
            if existing.model_id != model_id or existing.task != task:
                raise status_exception(
                    400,
                    f"Could not start model deployment because an existing deployment with the same id "
                    f"[{deployment_id}] exists for model [{existing.model_id}] and task [{existing.task}]",
                )
            await self._wait_deploy(existing, timeout)
            return existing

        settings = AdaptiveAllocations.parse(adaptive)
        if num_threads is None or int(num_threads) < 1:
            raise validation("[threads_per_allocation] must be a positive integer")
        if settings is not None and settings.enabled:
            lo, hi = settings.min_number_of_allocations, settings.max_number_of_allocations
            initial = max(1, lo) if num_allocations is None else int(num_allocations)
            initial = min(max(initial, lo, 1), hi)
        else:
            if num_allocations is None or int(num_allocations) < 1:
                raise validation("[number_of_allocations] must be a positive integer")
            initial = int(num_allocations)

        dep = Deployment(
            self,
            deployment_id,
            model_id,
            task,
            num_allocations=initial,
            num_threads=int(num_threads),
            adaptive=settings,
        )
        self._deployments[deployment_id] = dep
        dep._start_task = asyncio.create_task(self._start(dep), name=f"{deployment_id}-start")
        try:
            await self._wait_deploy(dep, timeout)
        except EsError as exc:
            if exc.status != 408 and self._deployments.get(deployment_id) is dep:
                # The caller learns about the failure; do not keep a failed deployment around.
                self._deployments.pop(deployment_id, None)
            raise
        return dep

    async def _wait_deploy(self, dep: Deployment, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await dep.wait_started()
        except TimeoutError:
            raise timeout_error(
                f"Timed out after [{_fmt_seconds(timeout or 0)}] waiting for model deployment "
                f"[{dep.deployment_id}] to start. Use the trained model stats API to track the state "
                "of the deployment."
            ) from None

    async def _resolve(self, model_id: str) -> ResolvedModel:
        pending = self._resolving.get(model_id)
        if pending is None:
            pending = asyncio.ensure_future(
                asyncio.to_thread(resolve_model, model_id, aliases=self.aliases, cache_dir=self.cache_dir)
            )
            self._resolving[model_id] = pending
            pending.add_done_callback(lambda _f: self._resolving.pop(model_id, None))
            pending.add_done_callback(_retrieve)
        return await asyncio.shield(pending)

    async def _start(self, dep: Deployment) -> None:
        try:
            if self.backend == "torch":
                # A device this host does not have fails the deployment before anything loads.
                await asyncio.to_thread(resolve_device, self.device)
            resolved = await self._resolve(dep.model_id)
            shared = self._acquire(os.path.realpath(resolved.path), dep.task)
            try:
                model = await asyncio.shield(shared.load)  # type: ignore[arg-type]
            except BaseException:
                self._release(shared)
                raise
            if dep.state != "starting":  # undeployed while loading
                self._release(shared)
                return
            dep._set_started(model, resolved, shared)
            log.info(
                "deployment [%s] started: model [%s] (%s, %s) task [%s] on [%s], %d allocation(s) x %d thread(s)",
                dep.deployment_id,
                dep.model_id,
                resolved.source,
                resolved.path,
                dep.task,
                getattr(model, "device", self.device),
                dep.target_allocation_count,
                dep.threads_per_allocation,
            )
        except asyncio.CancelledError:
            dep._set_failed(
                status_exception(409, f"deployment [{dep.deployment_id}] was stopped while starting")
            )
            raise
        except EsError as exc:
            log.warning("deployment [%s] failed: %s", dep.deployment_id, exc.reason)
            dep._set_failed(exc)
        except Exception as exc:  # loading errors from torch/transformers
            error = status_exception(
                400,
                f"Could not load model [{dep.model_id}] for task [{dep.task}]: {type(exc).__name__}: {exc}",
            )
            log.warning("deployment [%s] failed: %s", dep.deployment_id, error.reason)
            dep._set_failed(error)

    def _acquire(self, path: str, task: str) -> _SharedModel:
        key = (path, task)
        shared = self._models.get(key)
        if shared is None:
            shared = _SharedModel(key)
            self._models[key] = shared
        if shared.load is None or (
            shared.load.done() and (shared.load.cancelled() or shared.load.exception())
        ):
            log.info("loading model [%s] for task [%s]", path, task)
            load = asyncio.to_thread(
                load_model, path, task, device=self.device, backend=self.backend, cache_dir=self.cache_dir
            )
            shared.load = asyncio.ensure_future(load)
            shared.load.add_done_callback(_retrieve)
        shared.refs += 1
        return shared

    def _release(self, shared: _SharedModel) -> None:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if self._models.get(shared.key) is shared:
            del self._models[shared.key]
        load = shared.load

        def _free(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is None:
                fut.result().close()
                log.info("unloaded model [%s] for task [%s]", *shared.key)

        if load is not None:
            if load.done():
                _free(load)
            else:
                load.add_done_callback(_free)

    # -- update / undeploy ---------------------------------------------------------------

    async def update(
        self, deployment_id: str, *, num_allocations: int | None = None, adaptive: dict | None = None
    ) -> Deployment:
        """Change allocations. ``num_allocations`` alone switches adaptive scaling off;
        ``adaptive`` alone replaces the adaptive settings; both with adaptive enabled is an error."""
        dep = self._deployments.get(deployment_id)
        if dep is None:
            raise not_found(f"Could not find trained model deployment [{deployment_id}]")
        settings = AdaptiveAllocations.parse(adaptive) if adaptive is not None else dep.adaptive
        if num_allocations is not None:
            if adaptive is not None and settings is not None and settings.enabled:
                raise validation("[number_of_allocations] cannot be set if adaptive allocations is enabled")
            if int(num_allocations) < 1:
                raise validation("[number_of_allocations] must be a positive integer")
            if settings is not None and settings.enabled:
                # A fixed number of allocations replaces adaptive scaling.
                settings = AdaptiveAllocations(
                    False, settings.min_number_of_allocations, settings.max_number_of_allocations
                )
        dep.adaptive = settings
        if settings is not None and settings.enabled:
            lo, hi = settings.min_number_of_allocations, settings.max_number_of_allocations
            dep._set_allocations(min(max(dep.target_allocation_count, lo), hi))
            if dep.state == "started":
                dep._start_monitor()
        elif num_allocations is not None:
            dep._set_allocations(int(num_allocations))
        elif dep.target_allocation_count == 0:
            dep._set_allocations(1)
        return dep

    async def undeploy(self, deployment_id: str) -> None:
        dep = self._deployments.pop(deployment_id, None)
        if dep is None:
            return
        dep.state = "stopping"
        if dep._monitor is not None:
            dep._monitor.cancel()
        if dep._start_task is not None and not dep._start_task.done():
            dep._start_task.cancel()
            await asyncio.gather(dep._start_task, return_exceptions=True)
        dep._set_failed(dep._stopped_error())  # wakes requests still waiting for the start
        await dep._batcher.close(dep._stopped_error())
        shared, dep._shared, dep._model = dep._shared, None, None
        if shared is not None:
            self._release(shared)
        log.info("deployment [%s] stopped", deployment_id)

    async def close(self) -> None:
        self._closed = True
        for deployment_id in list(self._deployments):
            await self.undeploy(deployment_id)
        self.tokenize_pool.shutdown(wait=False)
