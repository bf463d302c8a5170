"""A deployment of a local model: what Elasticsearch calls a trained model deployment.

A :class:`Deployment` has a model id, a task, ``number_of_allocations`` (parallel workers,
each running one batch at a time) and ``threads_per_allocation`` (torch intra-op threads per
worker, on CPU). Each deployment has its own bounded micro-batching queue (:mod:`.batcher`),
so its allocations, queue capacity and stats are its own, as in Elasticsearch; the loaded
model behind it is shared (:mod:`.manager`).

Adaptive allocations (``{"enabled": true, "min_number_of_allocations": m,
"max_number_of_allocations": M}``, :mod:`.allocations`) scale a deployment's workers between
``m`` and ``M``: up by one whenever more items wait than the current workers can take in one
round, down by one when they have been mostly idle for ``scale_down_after_s``, and — when
``m`` is 0 — to zero after ``scale_to_zero_after_s`` without requests (Elasticsearch: 15
minutes). Scaling to zero only stops the workers; the model stays loaded, and a request
arriving at zero starts a worker at once and waits in the queue (bounded by its timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EsError, status_exception, unavailable
from ..errors import timeout as timeout_error
from .allocations import AdaptiveAllocations
from .batcher import MicroBatcher
from .deployment_stats import deployment_stats
from .models import LoadedModel, ModelInfo
from .resolve import ResolvedModel

if TYPE_CHECKING:
    from .manager import ModelManager, SharedModel

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


def format_seconds(value: float) -> str:
    return f"{value:g}s"


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
        self._shared: SharedModel | None = None
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
            # "none": no prefix at all (Elasticsearch's ``_infer`` API adds neither).
            prefix = "" if input_type == "none" else (
                self.query_prefix if _is_search(input_type) else self.passage_prefix)
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
                f"timed out after [{format_seconds(timeout or 0)}]"
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

    def _set_started(self, model: LoadedModel, resolved: ResolvedModel, shared: SharedModel) -> None:
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

    def stats(self) -> dict[str, Any]:
        """The ``deployment_stats`` object of ``GET _ml/trained_models/_stats``."""
        return deployment_stats(self)


def _is_search(input_type: str | None) -> bool:
    return bool(input_type) and input_type.lower() in ("search", "internal_search", "query")
